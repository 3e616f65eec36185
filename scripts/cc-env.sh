# Sourced by the Makefile's recipes: picks the C library fockker is linked with, at the time
# the recipe runs (after `make deps` may have installed musl-tools). With musl-gcc it exports
# CC and CGO_CFLAGS for a static musl build; musl ships no kernel headers, so linux/, asm/ and
# asm-generic/ come from the system's, through a directory that holds only those, searched
# after musl's own. Without it, the default C compiler links glibc's libc.a.
if command -v musl-gcc >/dev/null 2>&1; then
	fockker_inc=$(pwd)/.cache/musl-include
	fockker_asm=/usr/include/$(gcc -print-multiarch 2>/dev/null)/asm
	if [ ! -e "$fockker_inc/linux/sched.h" ] || [ ! -e "$fockker_inc/asm/unistd.h" ]; then
		mkdir -p "$fockker_inc"
		ln -sfn /usr/include/linux "$fockker_inc/linux"
		ln -sfn /usr/include/asm-generic "$fockker_inc/asm-generic"
		ln -sfn "$fockker_asm" "$fockker_inc/asm"
		if [ ! -e "$fockker_inc/linux/sched.h" ] || [ ! -e "$fockker_inc/asm/unistd.h" ]; then
			echo "cc-env: no kernel headers for musl-gcc (install linux-libc-dev)" >&2
			return 1
		fi
	fi
	export CC=musl-gcc CGO_CFLAGS="-O2 -g -idirafter $fockker_inc"
	echo "cc-env: C library musl (musl-gcc)" >&2
else
	echo "cc-env: C library glibc (no musl-gcc: install musl-tools for a faster start-up)" >&2
fi
