#!/bin/sh
# selfcheck.sh: proves the VM itself (no fockker involved) offers what guest-tests.sh relies on:
# cgroup v2 memory/pids/cpu/cpuset controllers, overlayfs on tmpfs, namespaces, pivot_root, and
# bridge + veth + iptables DNAT/MASQUERADE carrying traffic. Run it with
#   FOCKKER_VM_TESTS=tests/vm/selfcheck.sh tests/vm/run.sh /bin/true IMAGE_DIR
. /vmtest/lib.sh
cg=/sys/fs/cgroup
img=/var/lib/fockker-img/busybox

# cgroup v2 controllers available and delegable.
ctrls=$(cat $cg/cgroup.controllers)
for c in cpu cpuset memory pids; do
	case " $ctrls " in *" $c "*) ;; *) fail self-controllers "$c missing from '$ctrls'" ;; esac
done
echo "+cpu +cpuset +memory +pids" >$cg/cgroup.subtree_control && ok self-controllers

# memory.max OOM-kills a 100 MB allocation.
mkdir $cg/selfmem
echo 33554432 >$cg/selfmem/memory.max
sh -c "echo \$\$ >$cg/selfmem/cgroup.procs; exec dd if=/dev/zero of=/dev/null bs=100M count=1"
rc=$?
oom=$(awk '$1 == "oom_kill" { print $2 }' $cg/selfmem/memory.events)
if [ "$rc" -ne 0 ] && [ "${oom:-0}" -gt 0 ]; then ok self-memory-oom; else fail self-memory-oom "rc=$rc oom_kill=$oom"; fi
rmdir $cg/selfmem

# pids.max stops a fork loop.
mkdir $cg/selfpids
echo 10 >$cg/selfpids/pids.max
sh -c "echo \$\$ >$cg/selfpids/cgroup.procs; for i in \$(seq 30); do sleep 1 & done 2>/dev/null; wait"
max=$(awk '$1 == "max" { print $2 }' $cg/selfpids/pids.events)
if [ "${max:-0}" -gt 0 ]; then ok self-pids; else fail self-pids "pids.events max=$max"; fi
# ash gives up at the first failed fork, leaving its sleeps behind: let them finish.
for i in $(seq 50); do [ -n "$(cat $cg/selfpids/cgroup.procs)" ] || break; sleep 0.1; done
rmdir $cg/selfpids || fail self-pids-rmdir "busy"

# cpu.max throttles a busy loop.
mkdir $cg/selfcpu
echo "50000 100000" >$cg/selfcpu/cpu.max
sh -c "echo \$\$ >$cg/selfcpu/cgroup.procs; exec timeout 1 sh -c 'while :; do :; done'"
thr=$(awk '$1 == "nr_throttled" { print $2 }' $cg/selfcpu/cpu.stat)
if [ "${thr:-0}" -gt 0 ]; then ok self-cpu-throttle; else fail self-cpu-throttle "nr_throttled=$thr"; fi
rmdir $cg/selfcpu

# cpuset.cpus and cpu.weight are writable.
mkdir $cg/selfset
if echo 0 >$cg/selfset/cpuset.cpus && echo 20 >$cg/selfset/cpu.weight &&
	[ "$(cat $cg/selfset/cpuset.cpus)" = 0 ] && [ "$(cat $cg/selfset/cpu.weight)" = 20 ]; then
	ok self-cpuset-weight
else
	fail self-cpuset-weight "cpuset.cpus=$(cat $cg/selfset/cpuset.cpus) cpu.weight=$(cat $cg/selfset/cpu.weight)"
fi
rmdir $cg/selfset

# overlay (lower: the image on tmpfs; upper/work on tmpfs) + pivot_root in new namespaces.
d=/tmp/ovl
mkdir -p $d/upper $d/work $d/mnt
if mount -t overlay overlay -o lowerdir=$img,upperdir=$d/upper,workdir=$d/work $d/mnt; then
	out=$(unshare -m -p -u -i -n -f sh -c "
		mount --make-rprivate /
		mount --bind $d/mnt $d/mnt && cd $d/mnt && mkdir -p old && pivot_root . old &&
		b=/bin/busybox && \$b umount -l /old && \$b mkdir -p /proc && \$b mount -t proc proc /proc &&
		echo hi >/newfile && \$b hostname c1 && echo \$\$ \$(\$b hostname) \$(\$b ls /old | \$b wc -l)" 2>&1)
	if [ "$out" = "1 c1 0" ] && [ -f $d/upper/newfile ] && [ ! -e $img/newfile ]; then
		ok self-overlay-pivot
	else
		fail self-overlay-pivot "out='$out' upper: $(ls $d/upper)"
	fi
	umount $d/mnt
else
	fail self-overlay-pivot "mount overlay failed"
fi
rm -rf $d

# bridge + veth + DNAT: a "container" namespace serves on :80, reached through host port 8080
# from an "outside" namespace; MASQUERADE for the container's outbound traffic.
net() {
	ip netns add c && ip netns add out || return 1
	ip link add br0 type bridge && ip addr add 192.168.77.1/24 dev br0 && ip link set br0 up || return 1
	ip link add vc type veth peer name eth0 netns c && ip link set vc master br0 up || return 1
	ip -n c addr add 192.168.77.2/24 dev eth0 && ip -n c link set eth0 up && ip -n c link set lo up || return 1
	ip -n c route add default via 192.168.77.1 || return 1
	ip link add vo type veth peer name eth0 netns out && ip addr add 10.99.0.1/24 dev vo && ip link set vo up || return 1
	ip -n out addr add 10.99.0.2/24 dev eth0 && ip -n out link set eth0 up && ip -n out route add default via 10.99.0.1 || return 1
	echo 1 >/proc/sys/net/ipv4/ip_forward
	iptables -t nat -A PREROUTING -p tcp --dport 8080 -m addrtype --dst-type LOCAL -m comment --comment selfcheck -j DNAT --to-destination 192.168.77.2:80 || return 1
	iptables -t nat -A OUTPUT -p tcp --dport 8080 -m addrtype --dst-type LOCAL -j DNAT --to-destination 192.168.77.2:80 || return 1
	iptables -t nat -A POSTROUTING -s 192.168.77.0/24 ! -o br0 -j MASQUERADE || return 1
	iptables -A FORWARD -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -m multiport --dports 1:65535 -j ACCEPT || return 1
}
if out=$(net 2>&1); then
	ip netns exec c sh -c 'echo from-container | nc -l -p 80' >/dev/null 2>&1 &
	sleep 1
	got=$(ip netns exec out timeout 10 nc 10.99.0.1 8080 </dev/null 2>&1)
	[ "$got" = from-container ] && ok self-dnat-outside || fail self-dnat-outside "got '$got'"
	ip netns exec c sh -c 'echo from-container2 | nc -l -p 80' >/dev/null 2>&1 &
	sleep 1
	got=$(timeout 10 nc 192.168.77.1 8080 </dev/null 2>&1)
	[ "$got" = from-container2 ] && ok self-dnat-host || fail self-dnat-host "got '$got'"
	ip netns exec out sh -c 'echo from-outside | nc -l -p 9000' >/dev/null 2>&1 &
	sleep 1
	got=$(ip netns exec c timeout 10 nc 10.99.0.2 9000 </dev/null 2>&1)
	cnt=$(iptables -t nat -L POSTROUTING -v -n | awk '/MASQUERADE/ { print $1 }')
	[ "$got" = from-outside ] && [ "${cnt:-0}" -gt 0 ] && ok self-masquerade || fail self-masquerade "got '$got' masq packets=$cnt"
	iptables-legacy -t nat -S >/dev/null 2>&1 && ok self-iptables-legacy || fail self-iptables-legacy "$(iptables-legacy -t nat -S 2>&1)"
else
	fail self-net-setup "$out"
fi
iptables -t nat -F
iptables -F
# A veth dies with its namespace, but asynchronously: delete the host ends explicitly.
ip link del vc 2>/dev/null
ip link del vo 2>/dev/null
ip link del br0
ip netns del c
ip netns del out
left=$(ip -o link | grep -v ': lo:')
[ -z "$left" ] && ok self-net-teardown || fail self-net-teardown "$left"
exit 0
