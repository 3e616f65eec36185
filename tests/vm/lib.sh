# lib.sh: result reporting for the guest (sourced by busybox sh inside the VM).
# Each check prints one line on the console that the host side (run.sh) parses:
#   VMTEST ok NAME | VMTEST FAIL NAME: detail | VMTEST skip NAME: reason
# and appends it to $VMTEST_RESULTS, from which stage2 prints the final DONE line.

VMTEST_RESULTS=${VMTEST_RESULTS:-/run/vmtest.results}

# Details stay on one line so the host can pair them with their check.
_vmtest_line() {
	printf '%s\n' "$*" | tr '\r\n' '  ' | sed 's/ *$//'
}

# _vmtest_tick: $_vmtest_dt = seconds since the previous report (from /proc/uptime).
_vmtest_tick() {
	read -r _now _ </proc/uptime
	_vmtest_dt=$(awk -v a="${_vmtest_last:-$_now}" -v b="$_now" 'BEGIN { printf "%.1fs", b - a }')
	_vmtest_last=$_now
}
read -r _vmtest_last _ </proc/uptime

ok() {
	_vmtest_tick
	echo "VMTEST ok $1 ($_vmtest_dt)"
	echo "ok $1" >>"$VMTEST_RESULTS"
}

fail() {
	_name=$1
	shift
	_vmtest_tick
	echo "VMTEST FAIL $_name: $(_vmtest_line "$*") ($_vmtest_dt)"
	echo "FAIL $_name" >>"$VMTEST_RESULTS"
}

skip() {
	_name=$1
	shift
	_vmtest_tick
	echo "VMTEST skip $_name: $(_vmtest_line "$*") ($_vmtest_dt)"
	echo "skip $_name" >>"$VMTEST_RESULTS"
}

# Debian's static busybox runs its own applets before searching PATH (standalone shell), so the
# real iproute2 `ip` that the guest carries must be named by path.
ip() { /usr/sbin/ip "$@"; }
