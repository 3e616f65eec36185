#!/bin/sh
# Builds the busybox image: a root filesystem directory made from Debian's static busybox,
# with every applet linked, /etc/passwd and /etc/group, and the usual empty directories.
# Usage: busybox-image.sh IMAGE_ROOT   (creates IMAGE_ROOT/busybox atomically)
set -eu
root=${1:?usage: busybox-image.sh IMAGE_ROOT}
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "busybox-image: $bb not found (apt-get install busybox-static)" >&2; exit 1; }
if ! "$bb" --list-full >/dev/null 2>&1; then
	echo "busybox-image: $bb cannot list its applets" >&2; exit 1
fi
if ldd "$bb" >/dev/null 2>&1; then
	echo "busybox-image: $bb is dynamically linked; install busybox-static" >&2; exit 1
fi
dst=$root/busybox
if [ -d "$dst" ]; then
	echo "busybox-image: $dst already exists"
	exit 0
fi
mkdir -p "$root"
tmp=$(mktemp -d "$root/.busybox-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for d in bin sbin usr/bin usr/sbin etc root home tmp var/tmp proc sys dev lib; do
	mkdir -p "$tmp/$d"
done
ln -s lib "$tmp/lib64"
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
chmod 700 "$tmp/root"
cp "$bb" "$tmp/bin/busybox"
chmod 755 "$tmp/bin/busybox"
"$bb" --list-full | while read -r applet; do
	[ "$applet" = bin/busybox ] && continue
	dir=$(dirname "$applet")
	case $dir in
	.) rel=. ;;
	*) rel=$(echo "$dir" | sed 's|[^/][^/]*|..|g') ;;
	esac
	ln -sf "$rel/bin/busybox" "$tmp/$applet"
done
cat >"$tmp/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$tmp/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
tty:x:5:
nogroup:x:65534:
GROUP
echo 'hosts: files dns' >"$tmp/etc/nsswitch.conf"
: >"$tmp/etc/hosts"
: >"$tmp/etc/resolv.conf"
chmod 755 "$tmp"
mv -T "$tmp" "$dst"
trap - EXIT
echo "busybox-image: built $dst"
