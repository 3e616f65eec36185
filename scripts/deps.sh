#!/bin/sh
# Installs the OS packages fockker's demo and tests need, when run as root on Debian/Ubuntu.
# It only installs what is missing, and runs `apt-get update` only if something is.
set -eu
need=""
have() { command -v "$1" >/dev/null 2>&1; }
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need="$need busybox-static"
have iptables || need="$need iptables"
have ip || need="$need iproute2"
have script || need="$need bsdutils"
have unshare || need="$need util-linux"
have musl-gcc || need="$need musl-tools" # the build's C library (see the Makefile)
if [ "${1:-}" = "--vm" ]; then
	have qemu-system-x86_64 || need="$need qemu-system-x86"
	have cpio || need="$need cpio"
	have depmod || need="$need kmod"
	have xz || need="$need xz-utils"
fi
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$need (run as root to install them)" >&2
	exit 1
fi
if ! have apt-get; then
	echo "deps: missing packages:$need and no apt-get to install them" >&2
	exit 1
fi
echo "deps: installing$need"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
