#!/bin/bash
# run.sh boots Debian's kernel under qemu (TCG) with cgroup v2 mounted alone at /sys/fs/cgroup
# and runs the black-box guest tests (guest-tests.sh) against a fockker binary inside the VM.
#
# Usage: tests/vm/run.sh FOCKKER_BIN IMAGE_DIR
#   FOCKKER_BIN  the fockker binary to test (dynamic is fine: its libraries ride along)
#   IMAGE_DIR    a busybox rootfs directory (as `make image` builds it under the image root)
#
# Environment:
#   FOCKKER_VM_CACHE    cache dir for the kernel and the base initramfs
#                       (default /var/cache/fockker-vmtest)
#   FOCKKER_VM_TIMEOUT  seconds before a VM that has not finished counts as failed (default 1200)
#   FOCKKER_VM_IDLE     seconds of console silence that count as a hang (default 300)
#   FOCKKER_VM_MEM      guest memory in MiB (default 512)
#   FOCKKER_VM_TESTS    guest test script (default tests/vm/guest-tests.sh next to this file)
#   FOCKKER_VM_LOG      also keep the raw console log at this path
#
# What it does: installs missing tools with apt-get; `apt-get download`s the kernel that
# linux-image-amd64 points to (never installs it) and extracts the ELF vmlinux for a fast PVH
# boot; builds a base initramfs (static busybox, the host's iptables and iproute2 with their
# libraries, the kernel modules the tests need with their dependencies, the image, init scripts)
# cached under FOCKKER_VM_CACHE by kernel version and a hash of its inputs; appends a small
# per-run archive (fockker, its libraries, the test script); boots qemu with
# cgroup_no_v1=all, so cgroup2 is mounted alone at /sys/fs/cgroup.
#
# The guest prints "VMTEST ok NAME", "VMTEST FAIL NAME: detail", "VMTEST skip NAME: reason" and
# finally "VMTEST DONE pass=N fail=M skip=K" on the serial console, then exits qemu through
# isa-debug-exit. This script streams the console, prints a summary and exits non-zero on any
# FAIL, on a missing or inconsistent DONE line, and on a timeout. The VM has no network device:
# nothing the guest does reaches the host.
#
# tests/vm/selfcheck.sh (FOCKKER_VM_TESTS=tests/vm/selfcheck.sh) checks the VM itself without
# fockker: cgroup v2 limits, overlay + pivot_root, bridge/veth/DNAT/MASQUERADE.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
	echo "usage: $0 FOCKKER_BIN IMAGE_DIR" >&2
	exit 2
}

log() { echo "vmtest: $*" >&2; }
die() {
	echo "vmtest: error: $*" >&2
	exit 1
}

[ $# -eq 2 ] || usage
fockker_bin=$1
image_dir=${2%/}
[ -f "$fockker_bin" ] && [ -x "$fockker_bin" ] || die "$fockker_bin: not an executable file"
[ -x "$image_dir/bin/busybox" ] || [ -x "$image_dir/bin/sh" ] ||
	die "$image_dir: not a busybox rootfs (no bin/busybox or bin/sh)"
[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get, depmod on a temp tree, device nodes)"

cache=${FOCKKER_VM_CACHE:-/var/cache/fockker-vmtest}
timeout_s=${FOCKKER_VM_TIMEOUT:-1200}
idle_s=${FOCKKER_VM_IDLE:-300}
mem=${FOCKKER_VM_MEM:-512}
tests=${FOCKKER_VM_TESTS:-$here/guest-tests.sh}
[ -f "$tests" ] || die "$tests: no such guest test script"
case $timeout_s in '' | *[!0-9]*) die "FOCKKER_VM_TIMEOUT=$timeout_s: not a number of seconds" ;; esac
case $idle_s in '' | *[!0-9]*) die "FOCKKER_VM_IDLE=$idle_s: not a number of seconds" ;; esac
case $mem in '' | *[!0-9]*) die "FOCKKER_VM_MEM=$mem: not a number of MiB" ;; esac

# Modules the guest loads at boot, in this order (busybox modprobe ignores soft dependencies, so
# crc32c_generic goes first: nf_conntrack needs crc32c and crc32c-intel does not load under TCG).
# Anything else the kernel asks for is autoloaded through /sbin/modprobe from the extra set
# (br_netfilter among them: loading it would send bridged traffic through iptables, which a
# plain host does not do).
boot_modules="crc32c_generic overlay veth bridge nf_tables nft_chain_nat nft_compat
nft_ct nft_nat nft_masq xt_MASQUERADE xt_nat xt_addrtype xt_conntrack xt_comment xt_multiport
xt_tcpudp xt_mark ip_tables iptable_nat iptable_filter"
extra_modules="br_netfilter xt_state xt_REDIRECT nft_redir nft_fib_ipv4 nft_reject_ipv4 ipt_REJECT nf_nat
nf_conntrack ip6_tables ip6table_nat ip6table_filter dummy xfrm_user"

tmp=$(mktemp -d /tmp/fockker-vmtest.XXXXXX)
qemu_pid=
cleanup() {
	[ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- host tools ----------------------------------------------------------------------------

need_pkgs=()
need() { # need COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$1" >/dev/null 2>&1 ||
		need_pkgs+=("$2")
}
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
need qemu-system-x86_64 qemu-system-x86
need cpio cpio
need depmod kmod
need modprobe kmod
need xtables-nft-multi iptables
need xtables-legacy-multi iptables
need ip iproute2
need xz xz-utils
need gzip gzip
need timeout coreutils
need dpkg-deb dpkg
need apt-get apt
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)

apt_updated=
apt_update() {
	if [ -z "$apt_updated" ]; then
		log "apt-get update"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		apt_updated=1
	fi
}
if [ ${#need_pkgs[@]} -gt 0 ]; then
	mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u)
	apt_update
	log "installing ${need_pkgs[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
is_static() { ! ldd "$1" >/dev/null 2>&1; }

mkdir -p "$cache"
chmod 0755 "$cache"
exec 9>"$cache/lock"
flock 9 # one builder at a time; the VM itself runs after the lock is released

# A static busybox for the guest. /bin/busybox is static when busybox-static is installed; when
# the dynamic `busybox` package owns it instead, take busybox-static's binary from its .deb.
static_busybox=/bin/busybox
if ! is_static "$static_busybox"; then
	static_busybox=$cache/busybox-static
	if [ ! -x "$static_busybox" ]; then
		log "/bin/busybox is dynamic; fetching busybox-static without installing it"
		mkdir "$tmp/bb"
		(cd "$tmp/bb" && apt-get download busybox-static >&2) ||
			{ apt_update && (cd "$tmp/bb" && apt-get download busybox-static >&2); }
		dpkg-deb -x "$tmp"/bb/busybox-static_*.deb "$tmp/bb/x"
		install -m 0755 "$tmp/bb/x/bin/busybox" "$static_busybox.tmp"
		mv "$static_busybox.tmp" "$static_busybox"
	fi
fi

# --- kernel --------------------------------------------------------------------------------

# linux-image-amd64 is a metapackage; its candidate depends on the versioned image package
# (linux-image-6.1.0-56-amd64 = 6.1.192-2, say). Sets kpkg, kver, krel, deb, vmlinux.
resolve_kernel() {
	kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }')
	[ -n "$kpkg" ] || return 1
	kver=$(apt-cache policy "$kpkg" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
	[ -n "$kver" ] && [ "$kver" != "(none)" ] || return 1
	krel=${kpkg#linux-image-} # the kernel's `uname -r`
	deb=$cache/${kpkg}_${kver}_amd64.deb
	vmlinux=$cache/vmlinux-${krel}_${kver}
}

download_kernel() {
	rm -rf "$tmp/dl"
	mkdir -p "$tmp/dl"
	chmod 0755 "$tmp"
	chown _apt "$tmp/dl" 2>/dev/null || true # lets apt download sandboxed
	log "downloading $kpkg $kver"
	(cd "$tmp/dl" && apt-get download -q "$kpkg=$kver" >&2) || return 1
	mv "$tmp"/dl/"${kpkg}"_*.deb "$deb.tmp"
	mv "$deb.tmp" "$deb"
}

if ! resolve_kernel; then
	apt_update || true
	resolve_kernel || die "cannot resolve linux-image-amd64's kernel package (apt-cache depends linux-image-amd64)"
fi
if [ ! -s "$deb" ] && ! download_kernel; then
	# Stale package lists name a version the mirror no longer has: refresh and resolve again.
	apt_update
	resolve_kernel || die "cannot resolve linux-image-amd64's kernel package"
	[ -s "$deb" ] || download_kernel || die "apt-get download $kpkg=$kver failed"
fi
# Only the current kernel is kept.
find "$cache" -maxdepth 1 \( -name 'linux-image-*.deb' -o -name 'vmlinux-*' \) ! -path "$deb" ! -path "$vmlinux" -delete

kroot=
extract_deb() {
	if [ -z "$kroot" ]; then
		kroot=$tmp/kernel
		mkdir -p "$kroot"
		dpkg-deb -x "$deb" "$kroot"
		# Newer packages ship usr/lib/modules; depmod -b and modprobe -d want lib/modules.
		[ -e "$kroot/lib" ] || ln -s usr/lib "$kroot/lib"
		[ -d "$kroot/lib/modules/$krel" ] || die "$deb has no lib/modules/$krel"
	fi
}

# Under TCG, decompressing bzImage takes ~11 s; the ELF vmlinux (an xz stream inside vmlinuz)
# boots through PVH in under a second.
if [ ! -s "$vmlinux" ]; then
	extract_deb
	vmlinuz=$kroot/boot/vmlinuz-$krel
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1)
	[ -n "$off" ] || die "$vmlinuz: no xz stream found"
	# xz stops at the end of its stream; tail may then die of SIGPIPE, which is fine.
	{ tail -c +"$((off + 1))" "$vmlinuz" || true; } | xz -dc --single-stream >"$vmlinux.tmp" ||
		die "$vmlinuz: xz extraction failed"
	[ "$(head -c 4 "$vmlinux.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
		die "$vmlinuz: extracted payload is not an ELF vmlinux"
	mv "$vmlinux.tmp" "$vmlinux"
fi

# --- base initramfs ------------------------------------------------------------------------
# Everything but the fockker binary and the test script; rebuilt when any input changes.

host_tools="/usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi $(command -v ip)"
xtables_dir=$(dirname "$(ldd /usr/sbin/xtables-nft-multi | awk '$1 ~ /^libxtables/ { print $3 }')")/xtables
[ -d "$xtables_dir" ] || die "$xtables_dir: iptables extensions not found"
case $(readlink -f "$(command -v iptables 2>/dev/null || echo /usr/sbin/iptables)") in
*legacy*) ipt_default=legacy ;;
*) ipt_default=nft ;;
esac

# Shared libraries a dynamic binary needs, as ldd resolves them on this host.
libs_of() {
	ldd "$@" 2>/dev/null | awk '/:$/ { next } { for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u
}

image_sig() { # the image tree by content (not mtimes: `make vmtest` builds it afresh each run)
	(cd "$image_dir" && find . -printf '%p %y %l %m\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
}

base_key=$(
	{
		echo "$kpkg $kver"
		echo "$boot_modules $extra_modules $ipt_default"
		cat "$here/run.sh" "$here/init" "$here/stage2" "$here/lib.sh"
		sha256sum "$static_busybox" $host_tools "$xtables_dir"/*.so $(libs_of $host_tools "$xtables_dir"/*.so)
		image_sig
	} | sha256sum | cut -c1-16
)
base=$cache/base-$base_key.cpio.gz

# usrmerge DIR: /bin, /sbin, /lib, /lib64 as links into /usr, in every archive: the kernel's
# unpacker replaces a symlink by a directory of the same name from a later archive.
usrmerge() {
	local d
	mkdir -p "$1"/usr/{bin,sbin,lib,lib64}
	for d in bin sbin lib lib64; do ln -s "usr/$d" "$1/$d"; done
}

# copy_with_libs STAGE FILE...: the shared libraries of FILE... at their host paths in STAGE.
copy_with_libs() {
	local stage=$1
	shift
	local f
	for f in $(libs_of "$@"); do
		mkdir -p "$stage$(dirname "$f")"
		cp -L "$f" "$stage$f"
	done
}

build_base() {
	local stage=$tmp/base
	log "building base initramfs (kernel $krel)"
	extract_deb
	usrmerge "$stage"
	mkdir -p "$stage"/usr/local/bin "$stage"/{dev,proc,sys,run,tmp,root,etc,mnt,newroot,vmtest}
	chmod 1777 "$stage/tmp"
	mknod -m 600 "$stage/dev/console" c 5 1
	mknod -m 666 "$stage/dev/null" c 1 3

	# Kernel modules: the wanted ones plus everything they depend on, then a fresh depmod.
	local kmods=$kroot/lib/modules/$krel m line
	depmod -b "$kroot" "$krel"
	mkdir -p "$stage/lib/modules/$krel"
	for m in $boot_modules $extra_modules; do
		modprobe -d "$kroot" -S "$krel" --show-depends "$m" >"$tmp/deps" ||
			die "module $m: not found in $kpkg"
		while read -r line; do
			set -- $line
			[ "$1" = insmod ] || continue
			mkdir -p "$stage$(dirname "${2#"$kroot"}")"
			cp "$2" "$stage${2#"$kroot"}"
		done <"$tmp/deps"
	done
	for m in modules.order modules.builtin modules.builtin.modinfo; do
		[ -f "$kmods/$m" ] && cp "$kmods/$m" "$stage/lib/modules/$krel/"
	done
	# busybox modprobe cannot read compressed modules on every build: store them plain.
	find "$stage/lib/modules" -name '*.ko.xz' -exec xz -d {} +
	find "$stage/lib/modules" -name '*.ko.zst' -exec sh -c 'for f; do zstd -qd --rm "$f"; done' sh {} +
	depmod -b "$stage" "$krel"
	echo "$boot_modules" | tr -s ' \n' '\n\n' | sed '/^$/d' >"$stage/vmtest/modules"

	# Userland: static busybox with applet links where no real tool sits.
	cp "$static_busybox" "$stage/usr/bin/busybox"
	for f in $host_tools; do
		mkdir -p "$stage$(dirname "$f")"
		cp -L "$f" "$stage$f"
	done
	copy_with_libs "$stage" $host_tools "$xtables_dir"/*.so
	mkdir -p "$stage$xtables_dir"
	cp -L "$xtables_dir"/*.so "$stage$xtables_dir/"
	local n
	for n in iptables ip6tables; do
		for s in "" -save -restore; do
			ln -s xtables-nft-multi "$stage/usr/sbin/$n-nft$s"
			ln -s xtables-legacy-multi "$stage/usr/sbin/$n-legacy$s"
			ln -s "xtables-$ipt_default-multi" "$stage/usr/sbin/$n$s"
		done
	done
	[ -d /etc/iproute2 ] && cp -a /etc/iproute2 "$stage/etc/"
	for f in /etc/protocols /etc/services /etc/ethertypes; do
		[ -f "$f" ] && cp -L "$f" "$stage/etc/"
	done
	for n in $("$static_busybox" --list); do
		[ -e "$stage/usr/bin/$n" ] || [ -e "$stage/usr/sbin/$n" ] || ln -s busybox "$stage/usr/bin/$n"
	done
	# The kernel autoloads modules (netlink families, xt matches...) through /sbin/modprobe.
	ln -sf ../bin/busybox "$stage/usr/sbin/modprobe"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
	printf 'root:x:0:\n' >"$stage/etc/group"
	: >"$stage/etc/fstab"

	# The image under the guest's image root.
	mkdir -p "$stage/var/lib/fockker-img"
	cp -a "$image_dir" "$stage/var/lib/fockker-img/busybox"

	install -m 0755 "$here/init" "$stage/init"
	install -m 0755 "$here/stage2" "$stage/vmtest/stage2"
	install -m 0644 "$here/lib.sh" "$stage/vmtest/lib.sh"

	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
		gzip -6 >"$base.tmp"
	mv "$base.tmp" "$base"
	find "$cache" -maxdepth 1 -name 'base-*.cpio.gz' ! -path "$base" -delete
	rm -rf "$stage" "$kroot"
	kroot=
}

t0=$(date +%s%N)
if [ -s "$base" ]; then
	log "using cached base initramfs $base"
else
	build_base
fi
exec 9>&- # release the cache lock

# --- per-run initramfs: fockker and the test script ----------------------------------------
run=$tmp/run
usrmerge "$run"
mkdir -p "$run/usr/local/bin" "$run/vmtest"
cp -L "$fockker_bin" "$run/usr/local/bin/fockker"
chmod 0755 "$run/usr/local/bin/fockker"
is_static "$fockker_bin" || copy_with_libs "$run" "$fockker_bin"
install -m 0755 "$tests" "$run/vmtest/guest-tests.sh"
(cd "$run" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$tmp/run.cpio.gz"
cat "$base" "$tmp/run.cpio.gz" >"$tmp/initrd"
rm -rf "$run" "$tmp/run.cpio.gz"
t1=$(date +%s%N)
log "initramfs ready in $(secs "$t0" "$t1")s ($(du -h "$tmp/initrd" | cut -f1)); booting $krel under TCG (timeout ${timeout_s}s)"

# --- boot ----------------------------------------------------------------------------------
# The console streams through a FIFO so that a silent guest (a hung boot or test) is stopped
# after FOCKKER_VM_IDLE seconds, not only at the overall FOCKKER_VM_TIMEOUT.
console=$tmp/console.log
mkfifo "$tmp/console.fifo"
timeout -k 10 "$timeout_s" qemu-system-x86_64 \
	-accel tcg -smp 1 -m "$mem" \
	-nodefaults -nographic -serial stdio -nic none -no-reboot \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	-kernel "$vmlinux" -initrd "$tmp/initrd" \
	-append "console=ttyS0 cgroup_no_v1=all panic=-1 quiet loglevel=4 rdinit=/init" \
	</dev/null >"$tmp/console.fifo" 2>&1 &
qemu_pid=$!
idle_hit=
while :; do
	line=
	st=0
	IFS= read -r -t "$idle_s" line || st=$?
	if [ "$st" -eq 0 ]; then
		printf '%s\n' "$line"
		printf '%s\n' "$line" >&3
		continue
	fi
	if [ -n "$line" ]; then # a last line without newline
		printf '%s\n' "$line"
		printf '%s\n' "$line" >&3
	fi
	if [ "$st" -gt 128 ]; then
		idle_hit=1
		kill "$qemu_pid" 2>/dev/null || true
	fi
	break
done <"$tmp/console.fifo" 3>"$console"
set +e
wait "$qemu_pid"
rc=$?
qemu_pid=
set -e
t2=$(date +%s%N)
[ -z "${FOCKKER_VM_LOG:-}" ] || cp "$console" "$FOCKKER_VM_LOG"

# --- verdict -------------------------------------------------------------------------------
# Markers may follow firmware escapes or kernel output on the same line; lines end in \r\n.
summary=$(awk '
	{ sub(/\r+$/, "") }
	match($0, /VMTEST (ok|FAIL|skip|DONE)( .*)?$/) {
		s = substr($0, RSTART + 7)
		split(s, w, " ")
		if (w[1] == "ok") { pass++; next }
		if (w[1] == "FAIL") { fail++; fails = fails "  FAIL " substr(s, 6) "\n"; next }
		if (w[1] == "skip") { skip++; skips = skips "  skip " substr(s, 6) "\n"; next }
		if (w[1] == "DONE") { done = s }
	}
	END {
		printf "%d %d %d %s\n", pass, fail, skip, (done == "" ? "-" : done)
		printf "%s%s", fails, skips
	}' "$console")
read -r pass fail skip done_line <<<"$(head -n1 <<<"$summary")"
details=$(tail -n +2 <<<"$summary")

echo
echo "=== vmtest summary ($krel, cgroup v2, $(secs "$t1" "$t2")s in the VM) ==="
[ -z "$details" ] || echo "$details"
echo "passed $pass, failed $fail, skipped $skip"

verdict=0
if [ -n "$idle_hit" ]; then
	echo "vmtest: FAIL: the console was silent for ${idle_s}s; VM stopped"
	verdict=1
elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "vmtest: FAIL: the VM did not finish within ${timeout_s}s"
	verdict=1
fi
if [ "$done_line" = "-" ]; then
	echo "vmtest: FAIL: the guest never reported DONE (qemu exit status $rc)"
	verdict=1
else
	want="DONE pass=$pass fail=$fail skip=$skip"
	if [ "$done_line" != "$want" ]; then
		echo "vmtest: FAIL: guest reported '$done_line' but the console shows '$want'"
		verdict=1
	fi
	# isa-debug-exit: qemu exits with 2*code+1; the guest writes 0 when all passed.
	if [ "$fail" -eq 0 ] && [ "$rc" -ne 1 ]; then
		echo "vmtest: FAIL: qemu exit status $rc (want 1: guest exit code 0)"
		verdict=1
	fi
fi
[ "$fail" -eq 0 ] || verdict=1
[ "$verdict" -eq 0 ] && echo "vmtest: PASS" || echo "vmtest: FAILED"
exit "$verdict"
