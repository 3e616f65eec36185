package image

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// This file decompresses Zstandard (RFC 8878), the compression of "+zstd" OCI layers: frames
// of raw, RLE and compressed blocks (Huffman-coded literals, FSE-coded sequences), skippable
// frames, content checksums. Dictionaries are refused: image layers never use them. Every
// length and offset is checked against the data at hand, and a layer's content is checked
// against its diff ID anyway, so a wrong stream can only fail, never yield a wrong image.

const (
	zstdMagic          = 0xFD2FB528
	zstdSkippableMask  = 0xFFFFFFF0
	zstdSkippableMagic = 0x184D2A50
	zstdMaxBlock       = 128 << 10
	// zstdMaxWindow bounds the history a frame may ask for (and so the memory it takes):
	// 512 MiB, as the decoder fockker used before.
	zstdMaxWindow = 1 << 29
	// zstdMaxLiteralsLog..zstdMaxMatchLog are the largest FSE accuracy logs per table.
	zstdMaxLiteralsLog = 9
	zstdMaxOffsetLog   = 8
	zstdMaxMatchLog    = 9
	zstdMaxWeightsLog  = 6
	zstdMaxHuffmanBits = 11
)

// zstdError reports a stream that is not valid Zstandard.
func zstdError(format string, args ...any) error {
	return fmt.Errorf("zstd: %s: %w", fmt.Sprintf(format, args...), ErrCorrupt)
}

// zstdReader decompresses a stream of Zstandard frames.
type zstdReader struct {
	in  *bufio.Reader
	err error // sticky

	// hist holds the frame's output: the window's history, then what Read has not returned
	// yet (hist[pos:]).
	hist []byte
	pos  int

	// The current frame.
	inFrame   bool
	window    int
	blockMax  int
	checksum  bool
	hash      xxh64
	produced  uint64
	wantSize  uint64 // the frame's content size, when hasSize
	hasSize   bool
	reps      [3]int
	huffman   *huffmanTable // the last block's literals table, for treeless literals
	seqTables [3]*fseTable  // the last block's literals length, offset and match length tables
	predef    [3]*fseTable  // the predefined tables, built on first use

	block []byte // a compressed block's bytes
	lits  []byte // its literals
	codes zstdCodes
}

// newZstdReader returns a reader of the decompressed content of r.
func newZstdReader(r io.Reader) *zstdReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &zstdReader{in: br, codes: newZstdCodes()}
}

func (z *zstdReader) Read(p []byte) (int, error) {
	for z.pos == len(z.hist) {
		if z.err != nil {
			return 0, z.err
		}
		z.err = z.next()
	}
	n := copy(p, z.hist[z.pos:])
	z.pos += n
	return n, nil
}

// next decodes the next block, or frame header, or frame end; io.EOF at the end of the
// stream, between frames.
func (z *zstdReader) next() error {
	if !z.inFrame {
		return z.frameHeader()
	}
	var h [3]byte
	if _, err := io.ReadFull(z.in, h[:]); err != nil {
		return z.truncated(err)
	}
	hdr := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
	last, typ, size := hdr&1 == 1, (hdr>>1)&3, int(hdr>>3)
	z.makeRoom()
	start := len(z.hist)
	switch typ {
	case 0: // raw
		if size > z.blockMax {
			return zstdError("raw block of %d bytes exceeds %d", size, z.blockMax)
		}
		z.hist = append(z.hist, make([]byte, size)...)
		if _, err := io.ReadFull(z.in, z.hist[start:]); err != nil {
			return z.truncated(err)
		}
	case 1: // RLE
		if size > z.blockMax {
			return zstdError("RLE block of %d bytes exceeds %d", size, z.blockMax)
		}
		c, err := z.in.ReadByte()
		if err != nil {
			return z.truncated(err)
		}
		for i := 0; i < size; i++ {
			z.hist = append(z.hist, c)
		}
	case 2: // compressed
		if size > z.blockMax {
			return zstdError("compressed block of %d bytes exceeds %d", size, z.blockMax)
		}
		if cap(z.block) < size {
			z.block = make([]byte, size, zstdMaxBlock)
		}
		z.block = z.block[:size]
		if _, err := io.ReadFull(z.in, z.block); err != nil {
			return z.truncated(err)
		}
		if err := z.compressedBlock(z.block); err != nil {
			return err
		}
	default:
		return zstdError("reserved block type")
	}
	out := z.hist[start:]
	z.produced += uint64(len(out))
	if z.hasSize && z.produced > z.wantSize {
		return zstdError("frame holds more than its content size %d", z.wantSize)
	}
	if z.checksum {
		z.hash.write(out)
	}
	if last {
		return z.frameEnd()
	}
	return nil
}

// truncated turns the end of the input inside a frame into an error.
func (z *zstdReader) truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return zstdError("stream ends inside a frame")
	}
	return err
}

// makeRoom keeps the window's history and room for one more block, moving the history to the
// front once the buffer holds twice the window (so that moving costs at most one copy of the
// output).
func (z *zstdReader) makeRoom() {
	if len(z.hist)+z.blockMax <= cap(z.hist) {
		return
	}
	if len(z.hist) > z.window {
		n := copy(z.hist, z.hist[len(z.hist)-z.window:])
		z.hist, z.pos = z.hist[:n], n
	}
	if len(z.hist)+z.blockMax > cap(z.hist) {
		c := min(max(2*cap(z.hist), 64<<10), 2*z.window+z.blockMax)
		c = max(c, len(z.hist)+z.blockMax)
		h := make([]byte, len(z.hist), c)
		copy(h, z.hist)
		z.hist = h
	}
}

// frameHeader reads frames up to the next Zstandard frame's header, skipping skippable ones.
func (z *zstdReader) frameHeader() error {
	var m [4]byte
	for {
		n, err := io.ReadFull(z.in, m[:])
		if n == 0 && errors.Is(err, io.EOF) {
			return io.EOF
		}
		if err != nil {
			return z.truncated(err)
		}
		magic := binary.LittleEndian.Uint32(m[:])
		if magic&zstdSkippableMask != zstdSkippableMagic {
			if magic != zstdMagic {
				return zstdError("bad magic number %#x", magic)
			}
			break
		}
		if _, err := io.ReadFull(z.in, m[:]); err != nil {
			return z.truncated(err)
		}
		if _, err := z.in.Discard(int(binary.LittleEndian.Uint32(m[:]))); err != nil {
			return z.truncated(err)
		}
	}
	fhd, err := z.in.ReadByte()
	if err != nil {
		return z.truncated(err)
	}
	if fhd&0x08 != 0 {
		return zstdError("reserved bit set in the frame header")
	}
	single := fhd&0x20 != 0
	var window uint64
	if !single {
		wd, err := z.in.ReadByte()
		if err != nil {
			return z.truncated(err)
		}
		base := uint64(1) << (10 + wd>>3)
		window = base + base/8*uint64(wd&7)
	}
	dictBytes := [4]int{0, 1, 2, 4}[fhd&3]
	sizeBytes := [4]int{0, 2, 4, 8}[fhd>>6]
	if sizeBytes == 0 && single {
		sizeBytes = 1
	}
	var buf [12]byte
	if _, err := io.ReadFull(z.in, buf[:dictBytes+sizeBytes]); err != nil {
		return z.truncated(err)
	}
	var dict uint64
	for i := dictBytes - 1; i >= 0; i-- {
		dict = dict<<8 | uint64(buf[i])
	}
	if dict != 0 {
		return zstdError("frame needs dictionary %d", dict)
	}
	var size uint64
	for i := sizeBytes - 1; i >= 0; i-- {
		size = size<<8 | uint64(buf[dictBytes+i])
	}
	if sizeBytes == 2 {
		size += 256
	}
	if single {
		window = size
	}
	if window > zstdMaxWindow {
		return zstdError("frame needs a window of %d bytes, more than %d", window, zstdMaxWindow)
	}
	*z = zstdReader{
		in: z.in, hist: z.hist[:0], codes: z.codes, block: z.block, lits: z.lits, predef: z.predef,
		inFrame: true, window: int(window), blockMax: min(int(window), zstdMaxBlock),
		checksum: fhd&0x04 != 0, wantSize: size, hasSize: sizeBytes > 0, reps: [3]int{1, 4, 8},
	}
	z.hash.reset()
	return nil
}

// frameEnd checks the frame's content size and checksum.
func (z *zstdReader) frameEnd() error {
	z.inFrame = false
	if z.hasSize && z.produced != z.wantSize {
		return zstdError("frame holds %d bytes, its header says %d", z.produced, z.wantSize)
	}
	if z.checksum {
		var c [4]byte
		if _, err := io.ReadFull(z.in, c[:]); err != nil {
			return z.truncated(err)
		}
		if got, want := uint32(z.hash.sum()), binary.LittleEndian.Uint32(c[:]); got != want {
			return zstdError("content checksum %#08x, the frame says %#08x", got, want)
		}
	}
	return nil
}

// compressedBlock decodes a compressed block onto z.hist.
func (z *zstdReader) compressedBlock(b []byte) error {
	n, err := z.literals(b)
	if err != nil {
		return err
	}
	return z.sequences(b[n:])
}

// literals decodes the block's literals section into z.lits and returns its length.
func (z *zstdReader) literals(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, zstdError("empty compressed block")
	}
	typ, format := b[0]&3, (b[0]>>2)&3
	if typ < 2 { // raw or RLE
		var size, hdr int
		switch format {
		case 0, 2:
			size, hdr = int(b[0]>>3), 1
		case 1:
			if len(b) < 2 {
				return 0, zstdError("truncated literals header")
			}
			size, hdr = int(b[0]>>4)|int(b[1])<<4, 2
		case 3:
			if len(b) < 3 {
				return 0, zstdError("truncated literals header")
			}
			size, hdr = int(b[0]>>4)|int(b[1])<<4|int(b[2])<<12, 3
		}
		if size > z.blockMax {
			return 0, zstdError("%d literals exceed the block size", size)
		}
		if typ == 0 {
			if len(b) < hdr+size {
				return 0, zstdError("truncated raw literals")
			}
			z.lits = append(z.lits[:0], b[hdr:hdr+size]...)
			return hdr + size, nil
		}
		if len(b) < hdr+1 {
			return 0, zstdError("truncated RLE literals")
		}
		z.lits = z.lits[:0]
		for i := 0; i < size; i++ {
			z.lits = append(z.lits, b[hdr])
		}
		return hdr + 1, nil
	}
	// Huffman-coded: compressed (with a table) or treeless (the previous block's table).
	hdr := [4]int{3, 3, 4, 5}[format]
	if len(b) < hdr {
		return 0, zstdError("truncated literals header")
	}
	var h uint64
	for i := hdr - 1; i >= 0; i-- {
		h = h<<8 | uint64(b[i])
	}
	var size, csize int
	switch format {
	case 0, 1:
		size, csize = int(h>>4&0x3ff), int(h>>14&0x3ff)
	case 2:
		size, csize = int(h>>4&0x3fff), int(h>>18&0x3fff)
	case 3:
		size, csize = int(h>>4&0x3ffff), int(h>>22&0x3ffff)
	}
	if size > z.blockMax {
		return 0, zstdError("%d literals exceed the block size", size)
	}
	if len(b) < hdr+csize {
		return 0, zstdError("truncated compressed literals")
	}
	data := b[hdr : hdr+csize]
	if typ == 2 {
		t, n, err := readHuffmanTable(data)
		if err != nil {
			return 0, err
		}
		z.huffman, data = t, data[n:]
	} else if z.huffman == nil {
		return 0, zstdError("treeless literals without a previous table")
	}
	if cap(z.lits) < size {
		z.lits = make([]byte, 0, max(size, zstdMaxBlock))
	}
	z.lits = z.lits[:size]
	if format == 0 {
		if err := z.huffman.decode(z.lits, data); err != nil {
			return 0, err
		}
		return hdr + csize, nil
	}
	if len(data) < 6 {
		return 0, zstdError("truncated jump table")
	}
	s1, s2, s3 := int(binary.LittleEndian.Uint16(data)), int(binary.LittleEndian.Uint16(data[2:])), int(binary.LittleEndian.Uint16(data[4:]))
	data = data[6:]
	if s1+s2+s3 > len(data) {
		return 0, zstdError("jump table points past the literals")
	}
	seg := (size + 3) / 4
	if 3*seg > size {
		return 0, zstdError("%d literals in four streams", size)
	}
	streams := [4][]byte{data[:s1], data[s1 : s1+s2], data[s1+s2 : s1+s2+s3], data[s1+s2+s3:]}
	outs := [4][]byte{z.lits[:seg], z.lits[seg : 2*seg], z.lits[2*seg : 3*seg], z.lits[3*seg:]}
	for i := range streams {
		if err := z.huffman.decode(outs[i], streams[i]); err != nil {
			return 0, err
		}
	}
	return hdr + csize, nil
}

// sequences decodes the block's sequences section and executes the sequences: literals and
// matches onto z.hist.
func (z *zstdReader) sequences(b []byte) error {
	if len(b) == 0 {
		return zstdError("missing sequences section")
	}
	var nseq, n int
	switch {
	case b[0] < 128:
		nseq, n = int(b[0]), 1
	case b[0] < 255:
		if len(b) < 2 {
			return zstdError("truncated sequences header")
		}
		nseq, n = int(b[0]-128)<<8|int(b[1]), 2
	default:
		if len(b) < 3 {
			return zstdError("truncated sequences header")
		}
		nseq, n = int(b[1])|int(b[2])<<8+0x7f00, 3
	}
	b = b[n:]
	if nseq == 0 {
		if len(b) != 0 {
			return zstdError("%d bytes after an empty sequences section", len(b))
		}
		return z.emit(z.lits)
	}
	if len(b) == 0 {
		return zstdError("truncated sequences header")
	}
	modes := b[0]
	if modes&3 != 0 {
		return zstdError("reserved bits set in the compression modes")
	}
	b = b[1:]
	// Literals lengths, offsets, match lengths: mode bits 7-6, 5-4, 3-2.
	limits := [3]struct {
		maxSym, maxLog int
		predef         func() *fseTable
	}{
		{35, zstdMaxLiteralsLog, predefinedLiteralsTable},
		{31, zstdMaxOffsetLog, predefinedOffsetsTable},
		{52, zstdMaxMatchLog, predefinedMatchTable},
	}
	for i, l := range limits {
		switch (modes >> (6 - 2*i)) & 3 {
		case 0:
			if z.predef[i] == nil {
				z.predef[i] = l.predef()
			}
			z.seqTables[i] = z.predef[i]
		case 1:
			if len(b) == 0 {
				return zstdError("truncated RLE table")
			}
			if int(b[0]) > l.maxSym {
				return zstdError("RLE symbol %d out of range", b[0])
			}
			z.seqTables[i] = rleTable(b[0])
			b = b[1:]
		case 2:
			t, n, err := readFSETable(b, l.maxSym, l.maxLog)
			if err != nil {
				return err
			}
			z.seqTables[i], b = t, b[n:]
		case 3:
			if z.seqTables[i] == nil {
				return zstdError("repeated table without a previous one")
			}
		}
	}
	llT, ofT, mlT := z.seqTables[0], z.seqTables[1], z.seqTables[2]
	br, err := newRevBits(b)
	if err != nil {
		return err
	}
	ll, of, ml := br.read(llT.log), br.read(ofT.log), br.read(mlT.log)
	// makeRoom left room for a whole block after the history.
	lits := z.lits
	out := z.hist[:cap(z.hist)]
	o := len(z.hist)
	limit := o + z.blockMax
	for i := 0; i < nseq; i++ {
		ofCode, llCode, mlCode := ofT.d[of].sym, llT.d[ll].sym, mlT.d[ml].sym
		if ofCode > 31 {
			return zstdError("offset code %d", ofCode)
		}
		offValue := 1<<ofCode + br.read(int(ofCode))
		mlen := int(z.codes.mlBase[mlCode]) + br.read(int(z.codes.mlBits[mlCode]))
		llen := int(z.codes.llBase[llCode]) + br.read(int(z.codes.llBits[llCode]))
		offset, err := z.offset(offValue, llen)
		if err != nil {
			return err
		}
		if i < nseq-1 {
			ll = int(llT.d[ll].base) + br.read(int(llT.d[ll].bits))
			ml = int(mlT.d[ml].base) + br.read(int(mlT.d[ml].bits))
			of = int(ofT.d[of].base) + br.read(int(ofT.d[of].bits))
		}
		if br.pos < 0 {
			return zstdError("sequences read past their bit stream")
		}
		if llen > len(lits) {
			return zstdError("sequence takes %d literals, %d left", llen, len(lits))
		}
		if o+llen+mlen > limit {
			return zstdError("block decodes to more than %d bytes", z.blockMax)
		}
		o += copy(out[o:], lits[:llen])
		lits = lits[llen:]
		if offset > o || offset > z.window {
			return zstdError("match offset %d reaches before the frame's start or window", offset)
		}
		// An overlapping match repeats its first offset bytes: each copy doubles the run.
		for from := o - offset; mlen > 0; {
			n := copy(out[o:o+mlen], out[from:o])
			o += n
			mlen -= n
		}
	}
	if br.pos != 0 {
		return zstdError("%d bits left in the sequences' bit stream", br.pos)
	}
	if o+len(lits) > limit {
		return zstdError("block decodes to more than %d bytes", z.blockMax)
	}
	o += copy(out[o:], lits)
	z.hist = out[:o]
	return nil
}

// emit appends literals to the output, within the block size.
func (z *zstdReader) emit(lits []byte) error {
	if len(lits) > z.blockMax {
		return zstdError("block decodes to more than %d bytes", z.blockMax)
	}
	z.hist = append(z.hist, lits...)
	return nil
}

// offset turns an offset value into a match offset, keeping the repeated offsets.
func (z *zstdReader) offset(value, llen int) (int, error) {
	if value > 3 {
		off := value - 3
		z.reps = [3]int{off, z.reps[0], z.reps[1]}
		return off, nil
	}
	idx := value - 1
	if llen == 0 {
		idx++
	}
	if idx == 0 {
		return z.reps[0], nil
	}
	var off int
	if idx == 3 {
		off = z.reps[0] - 1
	} else {
		off = z.reps[idx]
	}
	if off <= 0 {
		return 0, zstdError("repeated offset %d", off)
	}
	if idx != 1 {
		z.reps[2] = z.reps[1]
	}
	z.reps[1] = z.reps[0]
	z.reps[0] = off
	return off, nil
}

// zstdCodes are the baselines and extra bits of the literals length and match length codes.
type zstdCodes struct {
	llBase [36]uint32
	llBits [36]uint8
	mlBase [53]uint32
	mlBits [53]uint8
}

func newZstdCodes() zstdCodes {
	var c zstdCodes
	for i := 0; i < 16; i++ {
		c.llBase[i] = uint32(i)
	}
	llExtra := [20]uint8{1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	base := uint32(16)
	for i, b := range llExtra {
		c.llBase[16+i], c.llBits[16+i] = base, b
		base += 1 << b
	}
	for i := 0; i < 32; i++ {
		c.mlBase[i] = uint32(i) + 3
	}
	mlExtra := [21]uint8{1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	base = 35
	for i, b := range mlExtra {
		c.mlBase[32+i], c.mlBits[32+i] = base, b
		base += 1 << b
	}
	return c
}

// fseTable decodes one FSE-coded symbol per state.
type fseTable struct {
	log int
	d   []fseEntry
}

type fseEntry struct {
	sym  uint8
	bits uint8
	base uint16
}

// rleTable always decodes sym, reading no bits.
func rleTable(sym uint8) *fseTable {
	return &fseTable{d: []fseEntry{{sym: sym}}}
}

func predefinedLiteralsTable() *fseTable {
	t, _ := buildFSETable([]int16{4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1,
		2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1, -1, -1, -1, -1}, 6)
	return t
}

func predefinedOffsetsTable() *fseTable {
	t, _ := buildFSETable([]int16{1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1}, 5)
	return t
}

func predefinedMatchTable() *fseTable {
	t, _ := buildFSETable([]int16{1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
		1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1}, 6)
	return t
}

// readFSETable reads an FSE table description and returns the table and the bytes it took.
func readFSETable(b []byte, maxSym, maxLog int) (*fseTable, int, error) {
	var br fwdBits
	br.b = b
	if len(b) == 0 {
		return nil, 0, zstdError("truncated FSE table")
	}
	log := int(br.read(4)) + 5
	if log > maxLog {
		return nil, 0, zstdError("FSE accuracy log %d exceeds %d", log, maxLog)
	}
	remaining := 1<<log + 1
	threshold := 1 << log
	nbits := log + 1
	var norm []int16
	prev0 := false
	for remaining > 1 && len(norm) <= maxSym {
		if prev0 {
			zeros := 0
			for {
				r := int(br.read(2))
				zeros += r
				if r != 3 {
					break
				}
				if br.over() {
					return nil, 0, zstdError("truncated FSE table")
				}
			}
			if len(norm)+zeros > maxSym+1 {
				return nil, 0, zstdError("FSE table has symbols beyond %d", maxSym)
			}
			for ; zeros > 0; zeros-- {
				norm = append(norm, 0)
			}
			if len(norm) > maxSym {
				break
			}
		}
		maxV := 2*threshold - 1 - remaining
		v := int(br.peek(nbits))
		var count int
		if v&(threshold-1) < maxV {
			count = v & (threshold - 1)
			br.skip(nbits - 1)
		} else {
			count = v & (2*threshold - 1)
			if count >= threshold {
				count -= maxV
			}
			br.skip(nbits)
		}
		count--
		if count < 0 {
			remaining--
		} else {
			remaining -= count
		}
		norm = append(norm, int16(count))
		prev0 = count == 0
		for remaining < threshold {
			nbits--
			threshold >>= 1
		}
		if br.over() {
			return nil, 0, zstdError("truncated FSE table")
		}
	}
	if remaining != 1 {
		return nil, 0, zstdError("FSE probabilities do not add up")
	}
	t, err := buildFSETable(norm, log)
	if err != nil {
		return nil, 0, err
	}
	return t, (br.pos + 7) / 8, nil
}

// buildFSETable spreads the symbols over the states as RFC 8878 4.1.1 says.
func buildFSETable(norm []int16, log int) (*fseTable, error) {
	size := 1 << log
	if len(norm) > 256 {
		return nil, zstdError("FSE table with %d symbols", len(norm))
	}
	t := &fseTable{log: log, d: make([]fseEntry, size)}
	var next [256]uint16
	high := size - 1
	for s, n := range norm {
		if n == -1 {
			if high < 0 {
				return nil, zstdError("FSE table overfull")
			}
			t.d[high].sym = uint8(s)
			high--
			next[s] = 1
		} else if n >= 0 {
			next[s] = uint16(n)
		} else {
			return nil, zstdError("FSE probability %d", n)
		}
	}
	step := size>>1 + size>>3 + 3
	pos := 0
	for s, n := range norm {
		for i := 0; i < int(n); i++ {
			if pos > high {
				return nil, zstdError("FSE table overfull")
			}
			t.d[pos].sym = uint8(s)
			for pos = (pos + step) & (size - 1); pos > high; pos = (pos + step) & (size - 1) {
			}
		}
	}
	if pos != 0 {
		return nil, zstdError("FSE probabilities do not fill the table")
	}
	for u := range t.d {
		s := t.d[u].sym
		n := next[s]
		next[s]++
		if n == 0 {
			return nil, zstdError("FSE symbol without probability")
		}
		nb := log - (bits.Len16(n) - 1)
		t.d[u].bits = uint8(nb)
		t.d[u].base = uint16(int(n)<<nb - size)
	}
	return t, nil
}

// huffmanTable decodes literals: the next maxBits bits index d.
type huffmanTable struct {
	maxBits int
	d       []huffmanEntry
}

type huffmanEntry struct {
	sym  uint8
	bits uint8
}

// readHuffmanTable reads a Huffman tree description and returns the table and the bytes it
// took.
func readHuffmanTable(b []byte) (*huffmanTable, int, error) {
	if len(b) == 0 {
		return nil, 0, zstdError("truncated Huffman table")
	}
	var weights []uint8
	var n int
	if hb := int(b[0]); hb < 128 {
		// FSE-compressed weights, two interleaved states.
		if len(b) < 1+hb {
			return nil, 0, zstdError("truncated Huffman weights")
		}
		data := b[1 : 1+hb]
		t, tn, err := readFSETable(data, 255, zstdMaxWeightsLog)
		if err != nil {
			return nil, 0, err
		}
		br, err := newRevBits(data[tn:])
		if err != nil {
			return nil, 0, err
		}
		s1, s2 := br.read(t.log), br.read(t.log)
		for {
			if len(weights) >= 255 {
				return nil, 0, zstdError("too many Huffman weights")
			}
			weights = append(weights, t.d[s1].sym)
			s1 = int(t.d[s1].base) + int(br.read(int(t.d[s1].bits)))
			if br.pos < 0 {
				weights = append(weights, t.d[s2].sym)
				break
			}
			weights = append(weights, t.d[s2].sym)
			s2 = int(t.d[s2].base) + int(br.read(int(t.d[s2].bits)))
			if br.pos < 0 {
				weights = append(weights, t.d[s1].sym)
				break
			}
		}
		n = 1 + hb
	} else {
		// Direct: four bits per weight.
		count := hb - 127
		n = 1 + (count+1)/2
		if len(b) < n {
			return nil, 0, zstdError("truncated Huffman weights")
		}
		for i := 0; i < count; i++ {
			w := b[1+i/2]
			if i%2 == 0 {
				w >>= 4
			}
			weights = append(weights, w&0xf)
		}
	}
	if len(weights) > 255 {
		return nil, 0, zstdError("too many Huffman weights")
	}
	total := 0
	for _, w := range weights {
		if w > zstdMaxHuffmanBits {
			return nil, 0, zstdError("Huffman weight %d", w)
		}
		if w > 0 {
			total += 1 << (w - 1)
		}
	}
	if total == 0 {
		return nil, 0, zstdError("Huffman weights all zero")
	}
	maxBits := bits.Len(uint(total))
	if maxBits > zstdMaxHuffmanBits {
		return nil, 0, zstdError("Huffman codes of %d bits", maxBits)
	}
	rest := 1<<maxBits - total
	if rest&(rest-1) != 0 {
		return nil, 0, zstdError("Huffman weights do not complete a tree")
	}
	weights = append(weights, uint8(bits.Len(uint(rest))))
	// Symbols by weight, then value; the lowest weights (longest codes) first.
	var start [zstdMaxHuffmanBits + 2]int
	for _, w := range weights {
		if w > 0 {
			start[w] += 1 << (w - 1)
		}
	}
	next := 0
	for w := 1; w <= maxBits; w++ {
		start[w], next = next, next+start[w]
	}
	t := &huffmanTable{maxBits: maxBits, d: make([]huffmanEntry, 1<<maxBits)}
	for s, w := range weights {
		if w == 0 {
			continue
		}
		e := huffmanEntry{sym: uint8(s), bits: uint8(maxBits + 1 - int(w))}
		for i := 0; i < 1<<(w-1); i++ {
			t.d[start[w]+i] = e
		}
		start[w] += 1 << (w - 1)
	}
	return t, n, nil
}

// decode fills out from one Huffman-coded stream, which must be used up exactly.
func (t *huffmanTable) decode(out, stream []byte) error {
	br, err := newRevBits(stream)
	if err != nil {
		return err
	}
	mask := uint64(1)<<t.maxBits - 1
	for i := range out {
		// br.peek, inlined: the window always covers the next 57 bits after a fill.
		start := br.pos - t.maxBits
		if start < br.lo {
			if br.pos < 0 {
				return zstdError("Huffman stream too short")
			}
			br.fill()
		}
		e := t.d[br.win>>(start-br.lo)&mask]
		out[i] = e.sym
		br.pos -= int(e.bits)
	}
	if br.pos != 0 {
		return zstdError("Huffman stream not used up exactly (%d bits)", br.pos)
	}
	return nil
}

// revBits reads a bit stream from its end towards its start, the way FSE and Huffman streams
// are written: the last byte's highest set bit marks where the stream starts. Bits before the
// start read as zeros and make pos negative.
type revBits struct {
	b   []byte
	pos int // bits [0, pos) are unread
	// win caches the 64 bits from bit lo (a multiple of 8, possibly negative) on.
	win uint64
	lo  int
}

func newRevBits(b []byte) (revBits, error) {
	if len(b) == 0 || b[len(b)-1] == 0 {
		return revBits{}, zstdError("bit stream without its end mark")
	}
	r := revBits{b: b, pos: (len(b)-1)*8 + bits.Len8(b[len(b)-1]) - 1}
	r.fill()
	return r, nil
}

// fill caches the 64 bits that end at pos or just above it, so that the next 57 bits or more
// can be peeked without loading.
func (r *revBits) fill() {
	lo := r.pos - 64
	if lo < 0 {
		lo = -((-lo) &^ 7) // rounded towards zero, to a whole byte
	} else {
		lo = (lo + 7) &^ 7
	}
	r.lo = lo
	if i := lo / 8; i >= 0 && i+8 <= len(r.b) {
		r.win = binary.LittleEndian.Uint64(r.b[i:])
		return
	}
	r.win = 0
	for j := min(lo/8+7, len(r.b)-1); j >= lo/8 && j >= 0; j-- {
		r.win |= uint64(r.b[j]) << (8 * (j - lo/8))
	}
}

// peek returns the next n (at most 56) bits without reading them.
func (r *revBits) peek(n int) uint64 {
	start := r.pos - n
	if start < r.lo || r.pos > r.lo+64 {
		r.fill()
		if start < r.lo {
			// Only below the stream's start: those bits are zeros.
			return r.win << (r.lo - start) & (1<<n - 1)
		}
	}
	return r.win >> (start - r.lo) & (1<<n - 1)
}

// read returns the next n (at most 56) bits.
func (r *revBits) read(n int) int {
	if n == 0 {
		return 0
	}
	v := r.peek(n)
	r.pos -= n
	return int(v)
}

// fwdBits reads bits from the start of a byte slice, lowest bits first, as FSE table
// descriptions are written. Reading past the end gives zeros; over reports it.
type fwdBits struct {
	b   []byte
	pos int
}

func (r *fwdBits) peek(n int) uint64 {
	var v uint64
	for i := 0; i < n; i++ {
		p := r.pos + i
		if p/8 < len(r.b) && r.b[p/8]>>(p%8)&1 == 1 {
			v |= 1 << i
		}
	}
	return v
}

func (r *fwdBits) skip(n int) { r.pos += n }

func (r *fwdBits) read(n int) uint64 {
	v := r.peek(n)
	r.pos += n
	return v
}

func (r *fwdBits) over() bool { return r.pos > len(r.b)*8 }

// xxh64 is XXH64 with seed 0, the content checksum of Zstandard frames.
type xxh64 struct {
	v     [4]uint64
	buf   [32]byte
	n     int // bytes in buf
	total uint64
}

const (
	xxPrime1 uint64 = 11400714785074694791
	xxPrime2 uint64 = 14029467366897019727
	xxPrime3 uint64 = 1609587929392839161
	xxPrime4 uint64 = 9650029242287828579
	xxPrime5 uint64 = 2870177450012600261
)

func (x *xxh64) reset() {
	p1 := xxPrime1 // wrapping arithmetic: the seed's lanes are defined modulo 2^64
	*x = xxh64{v: [4]uint64{p1 + xxPrime2, xxPrime2, 0, 0 - p1}}
}

func xxRound(acc, in uint64) uint64 {
	return bits.RotateLeft64(acc+in*xxPrime2, 31) * xxPrime1
}

func (x *xxh64) stripe(b []byte) {
	for i := range x.v {
		x.v[i] = xxRound(x.v[i], binary.LittleEndian.Uint64(b[8*i:]))
	}
}

func (x *xxh64) write(b []byte) {
	x.total += uint64(len(b))
	if x.n > 0 {
		c := copy(x.buf[x.n:], b)
		x.n += c
		b = b[c:]
		if x.n < 32 {
			return
		}
		x.stripe(x.buf[:])
		x.n = 0
	}
	for ; len(b) >= 32; b = b[32:] {
		x.stripe(b)
	}
	x.n = copy(x.buf[:], b)
}

func (x *xxh64) sum() uint64 {
	var h uint64
	if x.total >= 32 {
		v := x.v
		h = bits.RotateLeft64(v[0], 1) + bits.RotateLeft64(v[1], 7) + bits.RotateLeft64(v[2], 12) + bits.RotateLeft64(v[3], 18)
		for _, vi := range v {
			h = (h^xxRound(0, vi))*xxPrime1 + xxPrime4
		}
	} else {
		h = xxPrime5
	}
	h += x.total
	b := x.buf[:x.n]
	for ; len(b) >= 8; b = b[8:] {
		h ^= xxRound(0, binary.LittleEndian.Uint64(b))
		h = bits.RotateLeft64(h, 27)*xxPrime1 + xxPrime4
	}
	if len(b) >= 4 {
		h ^= uint64(binary.LittleEndian.Uint32(b)) * xxPrime1
		h = bits.RotateLeft64(h, 23)*xxPrime2 + xxPrime3
		b = b[4:]
	}
	for _, c := range b {
		h ^= uint64(c) * xxPrime5
		h = bits.RotateLeft64(h, 11) * xxPrime1
	}
	h ^= h >> 33
	h *= xxPrime2
	h ^= h >> 29
	h *= xxPrime3
	h ^= h >> 32
	return h
}
