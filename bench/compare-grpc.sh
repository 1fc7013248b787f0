#!/usr/bin/env bash
# compare-grpc.sh: each workload end to end through cowblkd (grpc_bench over
# BlockService.Session on loopback) next to the engine alone (engine_bench),
# in one run on one file system, then a markdown table of the IOPS ratios,
# p99 latencies and the CPU each request cost.
#
# The script starts its own cowblkd (ephemeral port, data directory under
# DIR, default --durability ordered and --cache writeback, as engine_bench's
# defaults) and stops it with SIGTERM at the end. Engine and gRPC runs
# alternate, workload by workload, so drift in a shared machine's load hits
# both sides alike. Depth-32 rows run once per stream count of -S.
#
# CPU columns, in microseconds of CPU time per completed request:
#   engine_bench  the whole process (engine thread, io_uring workers, runner)
#   cowblkd       the whole server; in brackets its engine thread alone (the
#                 thread named cowblkd that is not the main thread)
#   grpc_bench    the whole client
#
# Usage: bench/compare-grpc.sh [-d DIR] [-s SIZE] [-t SECONDS] [-w PATTERNS]
#                              [-S STREAMS] [-e NAME=VALUE]... [-b BUILD_BIN] [-o OUTDIR]
#   -d  directory on a real file system, not tmpfs (default /var/tmp/cowblk-grpc-bench)
#   -s  image and volume size (default 1G)
#   -t  seconds per workload, a whole number (default 5)
#   -w  workload patterns, comma-separated (default: COW reads, ordered first
#       writes and ordered rewrites: '*-cow,*-first-ordered,*-rewrite-ordered')
#   -S  stream counts for the depth-32 rows, comma-separated (default 1,4);
#       other rows use one stream
#   -e  environment for cowblkd and grpc_bench (not engine_bench), repeatable,
#       e.g. -e GLIBC_TUNABLES=glibc.malloc.mmap_threshold=67108864
#   -b  directory holding cowblkd, engine_bench and grpc_bench (default build/bin)
#   -o  keep the JSON results, cowblkd's log, the table and summary.md here
#       (default: a new directory under $COWBLK_BENCH_OUT, see bench/README.md)
# DIR is scratch space: the script removes what it made there on exit.
# Needs python3.
set -eu
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

dir=/var/tmp/cowblk-grpc-bench
size=1G
secs=5
patterns='*-cow,*-first-ordered,*-rewrite-ordered'
stream_counts=1,4
envs=()
while getopts d:s:t:w:S:e:b:o:h opt; do
  case $opt in
    w) patterns=$OPTARG ;;
    S) stream_counts=$OPTARG ;;
    e) envs+=("$OPTARG") ;;
    *) bench_opt "$opt" "${OPTARG-}" ;;
  esac
done
need_whole_seconds
need_tools python3 "$bin/cowblkd" "$bin/engine_bench" "$bin/grpc_bench"
[ -d "$dir" ] || bench_rm_at_exit "$dir"  # made for this run
need_disk_dir "$dir"
bench_rm_at_exit "$dir/data" "$dir/engine"
bench_out
rm -f "$out"/*.json "$out"/rows "$out"/*.log "$out"/cpu? "$out"/times  # a reused -o

# CPU clock ticks of cowblkd's engine threads (named cowblk-engine, see
# docs/cowblkd.md "Threads"; with --engine-threads 1 there is one).
engine_ticks() {
  local t sum=0
  for t in /proc/"$1"/task/*; do
    [ "$(cat "$t/comm")" = cowblk-engine ] || continue
    sum=$((sum + $(awk '{print $14 + $15}' "$t/stat")))
  done
  echo $sum
}
# Children's CPU seconds so far (user + system), from the `times` builtin,
# which must run in this shell (in $(...) it would see the subshell's).
children_cpu() {
  times >"$out/times"
  sed -n 2p "$out/times" | tr 'ms' '  ' | awk '{print $1 * 60 + $2 + $3 * 60 + $4}'
}

mkdir -p "$dir/data" "$dir/engine"
log "cowblkd on $dir/data"
cowblkd_start "$out/cowblkd.log" env ${envs[@]+"${envs[@]}"} "$bin/cowblkd" --data-dir "$dir/data" \
    --drain-seconds 5
server_pid=$cowblkd_pid
grpc=(env ${envs[@]+"${envs[@]}"} "$bin/grpc_bench" --server "$cowblkd_addr" --size "$size" --seconds "$secs" --keep)

mapfile -t workloads < <("$bin/grpc_bench" --list --workloads "$patterns")
[ ${#workloads[@]} -gt 0 ] || die 2 "no workloads"

log "grpc_bench --prepare: upload the image, fill the full volume ($size)"
"${grpc[@]}" --prepare
log "engine_bench: create the image and the full COW file ($size)"
"$bin/engine_bench" --dir "$dir/engine" --size "$size" --seconds 1 --keep \
    --workloads randread-4k-qd1-cow >"$out/engine_bench.log"

: >"$out/rows"
for w in "${workloads[@]}"; do
  log "engine $w"
  children_cpu >"$out/cpu0"
  "$bin/engine_bench" --dir "$dir/engine" --size "$size" --seconds "$secs" --keep \
      --workloads "$w" --json "$out/$w.engine.json" >>"$out/engine_bench.log"
  children_cpu >"$out/cpu1"
  engine_cpu=$(cat "$out/cpu0" "$out/cpu1" | awk 'NR == 1 {a = $1} NR == 2 {print $1 - a}')
  counts=1
  case $w in *-qd32-*) counts=$stream_counts ;; esac
  for n in ${counts//,/ }; do
    log "grpc   $w, $n stream(s)"
    load=$(cut -d' ' -f1 /proc/loadavg)
    s0=$(proc_ticks "$server_pid") e0=$(engine_ticks "$server_pid")
    "${grpc[@]}" --streams "$n" --workloads "$w" --json "$out/$w.s$n.grpc.json" \
        >>"$out/grpc_bench.log"
    s1=$(proc_ticks "$server_pid") e1=$(engine_ticks "$server_pid")
    echo "$w $n $engine_cpu $((s1 - s0)) $((e1 - e0)) $load" >>"$out/rows"
  done
done
log "done; stopping cowblkd"
rc=0
cowblkd_stop "$server_pid" || rc=$?
[ "$rc" = 0 ] || echo "$bench_name: cowblkd exited with $rc (see $out/cowblkd.log)" >&2

python3 - "$out" "$size" "$secs" "$(getconf CLK_TCK)" ${envs[@]+"${envs[@]}"} <<'PY' | tee "$out/table.md"
import json, sys
out, size, secs, hz = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
envs = " ".join(sys.argv[5:])

def us(v):
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"

def per_req(cpu_s, ops):
    return f"{cpu_s / ops * 1e6:.1f}" if ops else "-"

print(f"size={size}, {secs} s per workload, cowblkd --durability=ordered --cache=writeback"
      + (f", environment of cowblkd and grpc_bench: {envs}" if envs else "") + "\n")
print("| workload | streams | engine IOPS | gRPC IOPS | ratio | p99 µs engine / gRPC "
      "| gRPC MiB/s | CPU µs/req engine_bench | CPU µs/req cowblkd (engine thread) "
      "| CPU µs/req grpc_bench | load |")
print("|" + "---|" * 11)
for line in open(f"{out}/rows"):
    w, n, engine_cpu, s_ticks, e_ticks, load = line.split()
    e = json.load(open(f"{out}/{w}.engine.json"))["results"][0]
    g = json.load(open(f"{out}/{w}.s{n}.grpc.json"))["results"][0]
    name = w
    if g["ended_early_device_full"]:
        name += f" (full after {e['seconds']:.1f} / {g['seconds']:.1f} s)"
    ratio = g["iops"] / e["iops"] if e["iops"] else 0
    # engine_bench's CPU includes its set-up (cache warming, sync): an upper bound.
    server = f"{per_req(float(s_ticks) / hz, g['ops'])} ({per_req(float(e_ticks) / hz, g['ops'])})"
    print(f"| {name} | {n} | {e['iops']:.0f} | {g['iops']:.0f} | {ratio:.3f} "
          f"| {us(e['lat_us']['p99'])} / {us(g['lat_us']['p99'])} | {g['mib_s']:.0f} "
          f"| {per_req(float(engine_cpu), e['ops'])} | {server} "
          f"| {per_req(g['client_cpu_seconds'], g['ops'])} | {load} |")
PY
bench_summary "$out/table.md"
exit "$rc"
