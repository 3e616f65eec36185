package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestStoreReserveIsExclusive(t *testing.T) {
	s := NewStore(t.TempDir())
	const n = 16
	var wg sync.WaitGroup
	wins := make(chan int, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			lk, err := s.Reserve(&Record{ID: fmt.Sprint(1000000000 + i), Name: "same"})
			if err != nil {
				errs <- err
				return
			}
			lk.Unlock()
			wins <- i
		}(i)
	}
	wg.Wait()
	close(wins)
	close(errs)
	if len(wins) != 1 {
		t.Fatalf("%d reservations of one name succeeded, want 1", len(wins))
	}
	for err := range errs {
		if !errors.Is(err, ErrNameInUse) {
			t.Errorf("loser got %v, want ErrNameInUse", err)
		}
	}
	ents, _ := os.ReadDir(s.root)
	if len(ents) != 1 || ents[0].Name() != "same" {
		t.Fatalf("state root holds %v, want only same/ (losers must leave nothing)", ents)
	}
}

func TestStoreUpdateListResolve(t *testing.T) {
	s := NewStore(t.TempDir())
	for i, name := range []string{"alpha", "beta", "1234567890"} {
		lk, err := s.Reserve(&Record{ID: fmt.Sprintf("12345%05d", i), Name: name, CreateTime: fmt.Sprint(i), Status: Created})
		if err != nil {
			t.Fatal(err)
		}
		lk.Unlock()
	}
	if _, err := s.Update("beta", func(r *Record) error { r.Status = Stopped; return nil }); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Load("beta")
	if err != nil || rec.Status != Stopped {
		t.Fatalf("Load after Update: %+v, %v", rec, err)
	}
	recs, err := s.List()
	if err != nil || len(recs) != 3 || recs[0].Name != "alpha" || recs[2].Name != "1234567890" {
		t.Fatalf("List: %v, %v", recs, err)
	}
	for ref, want := range map[string]string{
		"alpha": "alpha", "1234500001": "beta", "1234500000": "alpha", "123450000": "", // ambiguous
		"1234500002": "1234567890", "1234567890": "1234567890", "nope": "", "../x": "", "": "",
	} {
		got, err := s.Resolve(ref)
		if want == "" {
			if err == nil {
				t.Errorf("Resolve(%q) = %q, want an error", ref, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	if _, err := s.Resolve("123450000"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("ambiguous prefix: %v", err)
	}
	// An update that fails changes nothing on disk.
	boom := errors.New("boom")
	if _, err := s.Update("alpha", func(r *Record) error { r.Status = Running; return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if rec, _ := s.Load("alpha"); rec.Status != Created {
		t.Errorf("failed update was saved: %s", rec.Status)
	}
	if _, err := s.Update("ghost", func(*Record) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update of a missing container: %v", err)
	}
	if err := s.Delete("alpha"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("alpha"); err != nil {
		t.Errorf("second Delete: %v (teardown must be idempotent)", err)
	}
	if _, err := s.Lock("alpha"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lock of a deleted container: %v", err)
	}
}

func TestLockSeesRemoval(t *testing.T) {
	s := NewStore(t.TempDir())
	lk, err := s.Reserve(&Record{ID: "1111111111", Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		l2, err := s.Lock("x") // blocks until the remover is done
		l2.Unlock()
		got <- err
	}()
	if err := s.Delete("x"); err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if err := <-got; !errors.Is(err, ErrNotFound) {
		t.Fatalf("a waiter on a removed container got %v, want ErrNotFound", err)
	}
}

func TestWriteRecordLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 3; i++ {
		if err := writeRecord(dir, &Record{ID: fmt.Sprint(1000000000 + i), Name: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != configName {
		t.Fatalf("dir holds %v, want only %s", ents, configName)
	}
	rec, err := NewStore(filepath.Dir(dir)).Load(filepath.Base(dir))
	if err != nil || rec.ID != "1000000002" {
		t.Fatalf("record %+v, %v", rec, err)
	}
}
