#!/usr/bin/env bash
# Side-by-side benchmarks of fockker against its peers, measured in one run on this machine.
# Never a timed assertion: it prints a table and writes BENCHMARKS.md.
#
# Usage: bench/bench.sh FOCKKER_BIN [OUT.md]      (root; installs hyperfine/runc/podman if missing)
# Env:   BENCH_RUNS (default 60), BENCH_ROUNDS (6), BENCH_SEQ (200), BENCH_PAR (100), BENCH_PS (1000),
#        BENCH_LATENCY_ONLY=1 (start-up latencies only)
set -euo pipefail
bin=$(readlink -f "${1:?usage: bench.sh FOCKKER_BIN [OUT.md]}")
out=${2:-BENCHMARKS.md}
runs=${BENCH_RUNS:-60}
nseq=${BENCH_SEQ:-200}
npar=${BENCH_PAR:-100}
nps=${BENCH_PS:-1000}
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench: must run as root" >&2; exit 1; }

need=""
command -v hyperfine >/dev/null || need="$need hyperfine"
command -v runc >/dev/null || need="$need runc"
command -v podman >/dev/null || need="$need podman"
if [ -n "$need" ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null || true
fi

work=$(mktemp -d /tmp/fockker-bench.XXXXXX)
holder=""
cleanup() {
	set +e
	if [ -n "$holder" ]; then
		FK ps -q 2>/dev/null | xargs -r -n 50 $NS "$bin" --state-root "$work/state" --image-root "$work/img" rm -f >/dev/null 2>&1
		FK system prune >/dev/null 2>&1 # the empty parent cgroup too
		kill "$holder" 2>/dev/null
	fi
	if command -v podman >/dev/null; then
		podman rm -af >/dev/null 2>&1
		podman rmi -f fkbench-busybox >/dev/null 2>&1
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# Everything runs in a network namespace of its own, made here.
unshare --net -- sleep 100000 &
holder=$!
sleep 0.2
NS="nsenter --net=/proc/$holder/ns/net --"
$NS ip link set lo up
FK() { $NS "$bin" --state-root "$work/state" --image-root "$work/img" "$@"; }

mkdir -p "$work/img"
"$here/scripts/busybox-image.sh" "$work/img" >/dev/null
rootfs=$work/img/busybox

results=$work/results.tsv
: >"$results"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; } # name, median seconds, note

write_table() {
# The table: medians, ratios to the floor and to each peer.
python3 - "$results" "$out" "$bin" <<'PY'
import sys, platform, subprocess, datetime
res, out, binp = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [l.rstrip("\n").split("\t") for l in open(res) if l.strip()]
val = {r[0]: (float(r[1]) if r[1] else None) for r in rows}
def ratio(a, b):
    if val.get(a) is None or val.get(b) is None: return "-"
    return "%.2fx" % (val[a] / val[b])
lines = []
lines.append("| measurement | median | vs floor | vs runc run | vs podman (runc) | note |")
lines.append("|---|---|---|---|---|---|")
for name, v, note in rows:
    if v and "KiB" not in name and "(s)" not in name:
        shown = "%.1f ms" % (float(v) * 1000)
        rf, rr, rp = ratio(name, "floor"), ratio(name, "runc run"), ratio(name, "podman run (runc)")
    elif v:
        shown = v if "KiB" in name else "%.2f s" % float(v)
        rf = rr = rp = ""
    else:
        shown, rf, rr, rp = "missing", "", "", ""
    lines.append("| %s | %s | %s | %s | %s | %s |" % (name, shown, rf, rr, rp, note))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "?")
def ver(cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
    except Exception: return "missing"
cg = "v2" if open("/proc/self/mountinfo").read().find(" /sys/fs/cgroup rw") >= 0 and "cgroup2 " in open("/proc/self/mountinfo").read().split(" /sys/fs/cgroup ")[1][:80] else "v1/hybrid"
head = [
    "# Benchmarks",
    "",
    "Written by `make bench` (bench/bench.sh) on %s. Medians of hyperfine runs, all measured in one run" % datetime.date.today(),
    "on the same machine, side by side; the machine is shared and noisy, so compare ratios, not absolutes.",
    "The floor, both fockker rows and runc are measured in interleaved rounds (each round runs each of them",
    "in turn), so that the machine's drift falls on all of them alike; the note gives each round's ratio.",
    "",
    "Machine: %s, %s CPUs, %d MiB, kernel %s, cgroups %s." % (cpu, subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(), int(mem) // 1024, platform.release(), cg),
    "Peers: %s; %s; %s; %s." % (ver([binp, "--version"]), ver(["runc", "--version"]), ver(["podman", "--version"]), ver(["hyperfine", "--version"])),
    "",
    "`floor` is `unshare --fork --pid --mount --uts --ipc --net true`: the namespaces alone.",
    "",
]
text = "\n".join(head + lines) + "\n"
print("\n".join(lines))
# Hand-written history below the marker survives a new measurement.
marker = "## Before and after"
try:
    old = open(out).read()
    if marker in old:
        text += "\n" + old[old.index(marker):]
except FileNotFoundError:
    pass
open(out, "w").write(text)
PY
}

# hyperfine one command; record its median.
hf() {
	local name=$1
	shift
	if hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/h.json" "$*" >"$work/h.log" 2>&1; then
		record "$name" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$work/h.json")" ""
	else
		# The peer's own error line says why (e.g. crun on a hybrid cgroup host).
		# hyperfine hides the command's own output: run it once more for its error line.
		why=$(bash -c "$*" 2>&1 >/dev/null | grep -m1 -oE '(crun|runc): .*|OCI runtime error: .*|[Ee]rror: .*' ||
			grep -m1 -oE '(Error|error)[: ].*' "$work/h.log" || tail -n 1 "$work/h.log")
		why=$(printf '%s\n' "$why" | head -n 1 | tr '\t' ' ')
		record "$name" "" "failed: $(echo "$why" | tr '|' '/' | cut -c1-160)"
	fi
}

if command -v runc >/dev/null; then
	bundle=$work/bundle
	mkdir -p "$bundle"
	cp -a "$rootfs" "$bundle/rootfs" # runc refuses a symlinked rootfs
	(cd "$bundle" && runc spec)
	python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
c["root"] = {"path": "rootfs", "readonly": True}
json.dump(c, open(p, "w"))
PY
fi

# The floor, fockker and runc are measured in interleaved rounds: each round runs every command
# runs/rounds times, one after the other, and the medians are over all rounds. The machine drifts
# (the floor alone moved between 3.9 and 6.0 ms from one hyperfine run to the next), and a ratio
# is only fair when both sides were measured under the same drift.
rounds=${BENCH_ROUNDS:-6}
names=(floor "fockker --net none" "fockker bridge")
cmds=("$NS unshare --fork --pid --mount --uts --ipc --net true"
	"$NS $bin --state-root $work/state --image-root $work/img run --rm --net none busybox true"
	"$NS $bin --state-root $work/state --image-root $work/img run --rm busybox true")
if command -v runc >/dev/null; then
	names+=("runc run")
	cmds+=("$NS runc --root $work/runc run --bundle $bundle fkbench")
else
	record "runc run" "" "missing: runc not installed"
fi
echo "bench: start-up latency ($rounds interleaved rounds, $runs runs each in all)" >&2
for i in "${!cmds[@]}"; do # a command that fails is recorded with its own error, not measured
	if ! why=$(bash -c "${cmds[$i]}" 2>&1 >/dev/null); then
		record "${names[$i]}" "" "failed: $(printf '%s\n' "$why" | head -n 1 | tr '\t|' ' /' | cut -c1-160)"
		unset "cmds[$i]" "names[$i]"
	fi
done
for r in $(seq 1 "$rounds"); do
	hyperfine -N --warmup 2 --runs $(((runs + rounds - 1) / rounds)) --export-json "$work/round$r.json" "${cmds[@]}" >"$work/h.log" 2>&1 ||
		{ cat "$work/h.log" >&2; exit 1; }
done
python3 - "$results" "$rounds" "$work" "${names[@]}" <<'PY'
import json, statistics, sys
res, rounds, work, names = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
times = {n: [] for n in names}
per_round = {n: [] for n in names}
for r in range(1, rounds + 1):
    for n, result in zip(names, json.load(open("%s/round%d.json" % (work, r)))["results"]):
        times[n] += result["times"]
        per_round[n].append(statistics.median(result["times"]))
with open(res, "a") as f:
    for n in names:
        note = ""
        if n != "floor":
            ratios = [a / b for a, b in zip(per_round[n], per_round["floor"])]
            note = "per round vs floor: %.2fx-%.2fx" % (min(ratios), max(ratios))
        else:
            note = "per round: %.1f-%.1f ms" % (min(per_round[n]) * 1000, max(per_round[n]) * 1000)
        f.write("%s\t%s\t%s\n" % (n, statistics.median(times[n]), note))
PY

if [ "${BENCH_LATENCY_ONLY:-0}" = 1 ]; then # for development: the first table rows only
	write_table
	exit 0
fi

if command -v podman >/dev/null; then
	# podman raises nofile/nproc by default and this machine refuses (no CAP_SYS_RESOURCE):
	# pin both below the hard limits, which is always allowed.
	lim="--ulimit nofile=1024:1024 --ulimit nproc=4096:4096"
	tar -C "$rootfs" -cf "$work/busybox.tar" .
	if podman import "$work/busybox.tar" fkbench-busybox >/dev/null 2>&1; then
		hf "podman run (runc)" "$NS podman run --rm --runtime runc --cgroup-manager cgroupfs --network none $lim fkbench-busybox true"
		if command -v crun >/dev/null; then
			hf "podman run (crun)" "$NS podman run --rm --runtime crun --cgroup-manager cgroupfs --network none $lim fkbench-busybox true"
		fi
	else
		record "podman run (runc)" "" "failed: podman import"
	fi
else
	record "podman run (runc)" "" "missing: podman not installed"
fi

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "bench: watcher memory" >&2
FK run -d --name rss1 busybox sleep 1000 >/dev/null
wpid=$(FK inspect rss1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["watcherPid"])')
record "watcher RSS (KiB)" "$(rss "$wpid")" "fockker watch"
FK rm -f rss1 >/dev/null
if command -v podman >/dev/null && podman image exists fkbench-busybox 2>/dev/null; then
	cid=$($NS podman run -d --runtime runc --cgroup-manager cgroupfs --network none $lim fkbench-busybox sleep 1000 2>/dev/null || true)
	cpid=$(pgrep -f "conmon.*${cid:0:12}" | head -1 || true)
	if [ -n "$cpid" ]; then
		record "conmon RSS (KiB)" "$(rss "$cpid")" "podman's conmon"
	else
		record "conmon RSS (KiB)" "" "failed: no conmon found"
	fi
	[ -n "$cid" ] && podman rm -f "$cid" >/dev/null 2>&1
fi

echo "bench: $nseq detached containers one after another" >&2
t0=$(date +%s.%N)
for i in $(seq 1 "$nseq"); do FK run -d --name "seq$i" busybox sleep 1000 >/dev/null; done
t1=$(date +%s.%N)
mem=0
for w in $(FK ps --format json | python3 -c 'import json,sys; [print(r.get("watcherPid",0), r["pid"]) for r in json.load(sys.stdin)]'); do
	mem=$((mem + $(rss "$w")))
done
record "$nseq x run -d, sequential (s)" "$(echo "$t1 - $t0" | bc -l)" "watchers+inits RSS: $((mem / 1024)) MiB"
t0=$(date +%s.%N)
FK ps -q | xargs -n 20 -P 4 $NS "$bin" --state-root "$work/state" --image-root "$work/img" rm -f >/dev/null
t1=$(date +%s.%N)
record "rm -f of those (s)" "$(echo "$t1 - $t0" | bc -l)" ""

echo "bench: $npar detached containers at once" >&2
t0=$(date +%s.%N)
seq 1 "$npar" | xargs -P "$npar" -I{} $NS "$bin" --state-root "$work/state" --image-root "$work/img" run -d --name par{} busybox sleep 1000 >/dev/null
t1=$(date +%s.%N)
record "$npar x run -d, concurrent (s)" "$(echo "$t1 - $t0" | bc -l)" "$(FK ps -q | wc -l) running"
FK ps -q | xargs -n 20 -P 4 $NS "$bin" --state-root "$work/state" --image-root "$work/img" rm -f >/dev/null

echo "bench: ps with $nps records" >&2
FK run --name proto busybox true >/dev/null
python3 - "$work/state" "$nps" <<'PY'
import json, os, sys, random
root, n = sys.argv[1], int(sys.argv[2])
proto = json.load(open(os.path.join(root, "proto", "config.json")))
for i in range(n):
    r = dict(proto)
    r["name"] = "ps%d" % i
    r["id"] = str(2000000000 + i)
    d = os.path.join(root, r["name"])
    os.mkdir(d)
    json.dump(r, open(os.path.join(d, "config.json"), "w"))
PY
hf "ps ($nps records)" "$NS $bin --state-root $work/state --image-root $work/img ps"
rm -rf "$work/state"/ps*
FK rm -f proto >/dev/null

write_table
echo "bench: wrote $out" >&2
