#!/bin/sh
# guest-tests.sh: the black-box cgroup v2 subset of fockker's tests, run by busybox sh as root
# inside the vmtest VM (tests/vm/run.sh): a pure cgroup v2 kernel, nothing else running. Every
# check asks the kernel (cgroupfs, mountinfo, links, iptables) or the container, never fockker's
# own records, and reports one line through lib.sh: ok, FAIL with the evidence, or skip with the
# reason when fockker does not offer the feature yet.
. /vmtest/lib.sh

SR=/run/fockker
IR=/var/lib/fockker-img
CG=/sys/fs/cgroup
T=120 # seconds any single fockker command may take before it counts as hung

fk() { timeout $T fockker --state-root $SR --image-root $IR "$@"; }

# run CMD...: runs a command, keeping its combined output in $out and its status in $rc.
run() {
	out=$("$@" 2>&1)
	rc=$?
}

# poll SECONDS COMMAND...: retries COMMAND every 0.2 s until it succeeds or time runs out.
poll() {
	_n=$(($1 * 5))
	shift
	while [ "$_n" -gt 0 ]; do
		"$@" && return 0
		sleep 0.2
		_n=$((_n - 1))
	done
	return 1
}

# cgval NAME FILE [KEY]: a cgroup file of container NAME, or KEY's value in a flat-keyed file.
cgval() {
	if [ $# -eq 3 ]; then
		awk -v k="$3" '$1 == k { print $2 }' "$CG/fockker/$1/$2" 2>/dev/null
	else
		cat "$CG/fockker/$1/$2" 2>/dev/null
	fi
}

gt0() { [ "${1:-0}" -gt 0 ] 2>/dev/null; }

logs_have() { fk logs "$1" 2>/dev/null | grep -q "$2"; }

# residue NAME: whatever container NAME left behind (empty when nothing).
residue() {
	_r=
	[ -e "$CG/fockker/$1" ] && _r="$_r cgroup:$CG/fockker/$1"
	for _d in mnt writeLayer workLayer; do
		[ -e "$IR/$_d/$1" ] && _r="$_r dir:$IR/$_d/$1"
	done
	[ -e "$SR/$1" ] && _r="$_r state:$SR/$1"
	_m=$(grep -E "/(mnt|writeLayer|workLayer)/$1( |/)" /proc/self/mountinfo | awk '{ print $5 }')
	[ -n "$_m" ] && _r="$_r mounts:$(echo $_m)"
	fk inspect "$1" >/dev/null 2>&1 && _r="$_r record(inspect still finds it)"
	echo "$_r"
}

# check_gone CHECK NAME: after `rm`, nothing of NAME may remain.
check_gone() {
	_left=$(residue "$2")
	if [ -z "$_left" ]; then ok "$1"; else fail "$1" "left behind:$_left"; fi
}

# --- preconditions ---------------------------------------------------------------------------
if ! command -v fockker >/dev/null; then
	fail fockker-binary "fockker not in PATH"
	exit 0
fi
echo "vmtest: $(fockker --version 2>&1)"
[ -d $IR/busybox ] || fail image "no busybox image at $IR/busybox"

# --- basics: the container sees itself as PID 1 with its own hostname -------------------------
run fk run --rm --name basic busybox sh -c 'echo "pid=$$ host=$(hostname)"'
if [ "$rc" -eq 0 ] && [ "$out" = "pid=1 host=basic" ]; then
	ok run-basic
else
	fail run-basic "rc=$rc out: $out"
fi
check_gone run-rm-teardown basic

run fk run --rm busybox sh -c 'exit 3'
[ "$rc" -eq 3 ] && ok exit-code || fail exit-code "sh -c 'exit 3' gave rc=$rc: $out"
run fk run --rm busybox /no/such/command
[ "$rc" -eq 127 ] && ok exit-code-not-found || fail exit-code-not-found "rc=$rc (want 127): $out"

# --- memory: -m 32m OOM-kills a 100 MB allocation ----------------------------------------------
# dd's buffer is the allocation: one read(2) of /dev/zero touches every page of it (fast under
# TCG, unlike growing a buffer through realloc).
run fk run --rm --name m0 -m 32m busybox sh -c 'dd if=/dev/zero of=/dev/null bs=10M count=1 2>/dev/null && echo alloc-ok'
if [ "$rc" -eq 0 ] && [ "$out" = alloc-ok ]; then
	ok memory-under-limit
else
	fail memory-under-limit "10 MB under -m 32m: rc=$rc out: $out"
fi

run fk run --rm --name m2 -m 32m busybox dd if=/dev/zero of=/dev/null bs=100M count=1
[ "$rc" -eq 137 ] && ok memory-oom-exit-137 || fail memory-oom-exit-137 "rc=$rc (want 137): $out"

run fk run -d --name m1 -m 32m busybox sh -c \
	'dd if=/dev/zero of=/dev/null bs=100M count=1; echo "alloc-exit=$?"; exec sleep 1000'
if [ "$rc" -ne 0 ]; then
	fail memory-oom "run -d: rc=$rc: $out"
else
	v=$(cgval m1 memory.max)
	[ "$v" = 33554432 ] && ok memory-max || fail memory-max "memory.max='$v' (want 33554432)"
	poll 60 logs_have m1 alloc-exit=
	alloc=$(fk logs m1 2>&1 | grep -o 'alloc-exit=[0-9]*')
	oom=$(cgval m1 memory.events oom_kill)
	if [ "$alloc" = alloc-exit=137 ] && gt0 "$oom"; then
		ok memory-oom-kill
	else
		fail memory-oom-kill "logs: '$alloc' memory.events oom_kill='$oom' ($(cgval m1 memory.events | tr '\n' ' '))"
	fi
	# The container survived the kill of its child and is still running.
	procs=$(cgval m1 cgroup.procs | wc -l)
	gt0 "$procs" && ok memory-survivor-running || fail memory-survivor-running "no process left in the cgroup"
fi
fk rm -f m1 >/dev/null 2>&1
check_gone memory-teardown m1

# --- cpu: --cpus 0.5 writes cpu.max and throttles a busy loop ---------------------------------
run fk run -d --name c1 --cpus 0.5 busybox sh -c 'while :; do :; done'
if [ "$rc" -ne 0 ]; then
	fail cpu-max "run -d: rc=$rc: $out"
else
	v=$(cgval c1 cpu.max)
	[ "$v" = "50000 100000" ] && ok cpu-max || fail cpu-max "cpu.max='$v' (want '50000 100000')"
	throttled() { gt0 "$(cgval c1 cpu.stat nr_throttled)"; }
	if poll 30 throttled; then
		ok cpu-throttled
	else
		fail cpu-throttled "cpu.stat: $(cgval c1 cpu.stat | tr '\n' ' ')"
	fi
fi
fk rm -f c1 >/dev/null 2>&1
check_gone cpu-teardown c1

# --- pids: --pids-limit 10 stops a fork burst --------------------------------------------------
# The burst runs in a subshell (ash gives up at the first failed fork); the container's init then
# execs without forking, so it stays alive for the checks.
run fk run -d --name p1 --pids-limit 10 busybox sh -c \
	'(i=0; while [ $i -lt 30 ]; do sleep 1000 & i=$((i+1)); done) 2>/dev/null; echo burst-done; exec sleep 1000'
if [ "$rc" -ne 0 ]; then
	fail pids-max "run -d: rc=$rc: $out"
else
	v=$(cgval p1 pids.max)
	[ "$v" = 10 ] && ok pids-max || fail pids-max "pids.max='$v' (want 10)"
	poll 30 logs_have p1 burst-done
	hit=$(cgval p1 pids.events max)
	cur=$(cgval p1 pids.current)
	if gt0 "$hit" && [ "${cur:-99}" -le 10 ]; then
		ok pids-limit-hit
	else
		fail pids-limit-hit "pids.events max='$hit' pids.current='$cur' logs: $(fk logs p1 2>&1 | tail -n 3)"
	fi
fi
fk rm -f p1 >/dev/null 2>&1
check_gone pids-teardown p1

# --- cpuset and cpushare -----------------------------------------------------------------------
run fk run -d --name s1 --cpuset 0 --cpushare 512 busybox sleep 1000
if [ "$rc" -ne 0 ]; then
	fail cpuset "run -d: rc=$rc: $out"
else
	v=$(cgval s1 cpuset.cpus)
	[ "$v" = 0 ] && ok cpuset || fail cpuset "cpuset.cpus='$v' (want 0)"
	# The field's conversion of v1 shares to a v2 weight (opencontainers/cgroups
	# ConvertCPUSharesToCgroupV2Value, runc >= 1.3), which maps 2..262144 onto 1..10000 with the
	# default 1024 -> 100: ceil(10^((l^2 + 125 l) / 612 - 7/34)), l = log2(shares): 512 -> 59.
	# (The older linear formula, 1 + (shares - 2) * 9999 / 262142, gave 20.)
	want=59
	v=$(cgval s1 cpu.weight)
	[ "$v" = "$want" ] && ok cpushare-weight || fail cpushare-weight "cpu.weight='$v' (want $want for --cpushare 512)"
fi
fk rm -f s1 >/dev/null 2>&1
check_gone cpuset-teardown s1

# --- device rules: a device node outside the default set cannot be opened ---------------------
# /dev/kmsg (c 1:11) is harmless to read; a container with device rules cannot open a node for it
# even when it may create one. A node for /dev/null (c 1:3), on the default allow list, must work:
# that tells device rules apart from a blanket refusal.
run fk run --rm --name d1 busybox sh -c '
	mknod /tmp/kmsg c 1 11 2>&1 || { echo mknod-refused; exit 0; }
	mknod /tmp/null2 c 1 3 && echo x >/tmp/null2 && echo null-ok
	head -c 16 /dev/urandom | wc -c
	dd if=/tmp/kmsg of=/dev/null bs=8192 count=1 2>&1 && echo opened'
case $out in
*mknod-refused*) skip devices "the container may not mknod (CAP_MKNOD dropped?), so device rules cannot be exercised this way" ;;
*opened*) fail devices "the container created /dev/kmsg (c 1:11) and read it: no device rules on cgroup v2" ;;
*"Operation not permitted"*)
	if echo "$out" | grep -q null-ok && echo "$out" | grep -qx 16; then
		ok devices
	else
		fail devices "allowed devices (c 1:3 node, /dev/urandom) do not work either: $out"
	fi
	;;
*) fail devices "rc=$rc out: $out" ;;
esac

# --- overlay and volumes -----------------------------------------------------------------------
mkdir -p /tmp/vol /tmp/volro
echo from-host >/tmp/vol/h
echo read-only >/tmp/volro/r
run fk run --name o1 -v /tmp/vol:/data -v /tmp/volro:/ro:ro busybox sh -c \
	'echo written >/newfile; echo from-container >/data/c; cat /data/h; cat /ro/r; echo x >/ro/w 2>/dev/null && echo ro-writable; true'
if [ "$rc" -ne 0 ]; then
	fail overlay-volumes "rc=$rc: $out"
else
	if [ -f $IR/writeLayer/o1/newfile ] && [ ! -e $IR/busybox/newfile ]; then
		ok overlay-write-layer
	else
		fail overlay-write-layer "writeLayer/o1: $(ls $IR/writeLayer/o1 2>&1 | tr '\n' ' ') image has newfile: $([ -e $IR/busybox/newfile ] && echo yes || echo no)"
	fi
	if [ "$(cat /tmp/vol/c 2>/dev/null)" = from-container ] && echo "$out" | grep -qx from-host; then
		ok volume-both-ways
	else
		fail volume-both-ways "host sees c='$(cat /tmp/vol/c 2>&1)', container printed: $out"
	fi
	if echo "$out" | grep -qx read-only && ! echo "$out" | grep -q ro-writable && [ ! -e /tmp/volro/w ]; then
		ok volume-read-only
	else
		fail volume-read-only "container printed: $out"
	fi
fi
run fk rm o1
[ "$rc" -eq 0 ] || fail overlay-rm "rm o1: rc=$rc: $out"
check_gone overlay-teardown o1
[ "$(cat /tmp/vol/c 2>/dev/null)" = from-container ] && ok volume-survives-rm || fail volume-survives-rm "volume content lost"
rm -rf /tmp/vol /tmp/volro

# --- network (issue 3) -------------------------------------------------------------------------
has_network() { fockker --help 2>&1 | grep -Eq '^ +network([ ,]|$)'; }

net_tests() {
	# An "outside" namespace with a route only to the host's 10.99.0.1: replies from it reach a
	# container only through fockker's MASQUERADE, and it reaches containers only through DNAT.
	ip netns add out || { fail network-setup "ip netns add"; return; }
	ip link add vo type veth peer name eth0 netns out
	ip addr add 10.99.0.1/24 dev vo
	ip link set vo up
	ip -n out addr add 10.99.0.2/24 dev eth0
	ip -n out link set eth0 up
	ip -n out link set lo up

	run fk network create --subnet 10.88.0.0/24 vmnet
	if [ "$rc" -ne 0 ]; then
		fail network-create "rc=$rc: $out"
		return
	fi
	ok network-create
	run fk network ls
	echo "$out" | grep -q '10\.88\.0\.1/24' && ok network-ls || fail network-ls "$out"

	run fk run -d --name n1 --net vmnet -p 8080:80 busybox sh -c 'while :; do echo hello-n1 | nc -l -p 80; done'
	if [ "$rc" -ne 0 ]; then
		fail network-run "rc=$rc: $out"
		return
	fi
	ip1=$(fk inspect n1 2>/dev/null | grep -o '10\.88\.0\.[0-9]*' | grep -vx '10\.88\.0\.[01]' | head -n1)
	if [ -n "$ip1" ]; then ok network-ip; else fail network-ip "no 10.88.0.x in inspect n1: $(fk inspect n1 2>&1 | tr '\n' ' ')"; fi
	sleep 1
	got=$(timeout 10 nc "$ip1" 80 </dev/null 2>&1)
	[ "$got" = hello-n1 ] && ok network-host-to-container || fail network-host-to-container "nc $ip1 80: '$got'"
	got=$(timeout 10 nc 10.99.0.1 8080 </dev/null 2>&1)
	[ "$got" = hello-n1 ] && ok network-port-map-from-host || fail network-port-map-from-host "nc 10.99.0.1 8080: '$got'"
	got=$(ip netns exec out timeout 10 nc 10.99.0.1 8080 </dev/null 2>&1)
	[ "$got" = hello-n1 ] && ok network-port-map-from-outside || fail network-port-map-from-outside "nc 10.99.0.1 8080 from outside: '$got'"

	ip netns exec out sh -c 'echo hello-outside | nc -l -p 9000' >/dev/null 2>&1 &
	sleep 1
	run fk run --rm --name n2 --net vmnet busybox sh -c "ping -c 1 -W 5 $ip1 >/dev/null && echo ping-ok; timeout 10 nc 10.99.0.2 9000 </dev/null"
	echo "$out" | grep -q ping-ok && ok network-container-to-container || fail network-container-to-container "rc=$rc: $out"
	echo "$out" | grep -q hello-outside && ok network-masquerade || fail network-masquerade "rc=$rc: $out"

	run fk run --rm --net none busybox sh -c 'ls /sys/class/net | tr "\n" " "'
	[ "$out" = "lo " ] && ok network-none || fail network-none "rc=$rc links: $out"

	run fk rm -f n1
	[ "$rc" -eq 0 ] || fail network-rm "rm -f n1: rc=$rc: $out"
	check_gone network-container-teardown n1
	veths=$(ip -o link show type veth | awk -F': ' '{ print $2 }' | sed 's/@.*//' | grep -vx vo)
	rules=$(iptables-save | grep -e "$ip1" -e 8080)
	if [ -z "$veths" ] && [ -z "$rules" ]; then
		ok network-rm-cleans-veth-rules
	else
		fail network-rm-cleans-veth-rules "veths: $(echo $veths) rules: $(echo "$rules" | tr '\n' ';')"
	fi
	run fk network rm vmnet
	[ "$rc" -eq 0 ] || fail network-rm-network "rc=$rc: $out"
	left=$(
		ip -o link show vmnet 2>/dev/null
		iptables-save | grep '10\.88\.0\.'
	)
	[ -z "$left" ] && ok network-rm-cleans-bridge-rules || fail network-rm-cleans-bridge-rules "$(echo "$left" | tr '\n' ';')"
}

if has_network; then
	net_tests
	fk rm -f n1 n2 >/dev/null 2>&1
	fk network rm vmnet >/dev/null 2>&1
	ip netns del out 2>/dev/null
	ip link del vo 2>/dev/null
else
	skip network "fockker has no network command yet (issue 3)"
fi

# --- nothing left --------------------------------------------------------------------------------
run fk ps -q
left=$(
	[ -n "$out" ] && echo "ps: $out"
	ls $CG/fockker 2>/dev/null | grep -v '^cgroup\.\|^cpu\|^io\.\|^memory\.\|^pids\.\|^hugetlb\.\|^rdma\.\|^misc\.' | sed 's/^/cgroup child: /'
	grep -E "$IR|overlay" /proc/self/mountinfo | awk '{ print "mount: " $5 }'
	for d in mnt writeLayer workLayer; do ls $IR/$d 2>/dev/null | sed "s|^|$d: |"; done
)
[ -z "$left" ] && ok no-residue || fail no-residue "$(echo "$left" | tr '\n' ';')"
exit 0
