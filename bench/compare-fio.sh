#!/usr/bin/env bash
# compare-fio.sh: each engine_bench workload (on each I/O backend asked for)
# next to fio --ioengine=io_uring on a plain file of the same size, in one run on one file system, then a
# markdown table of the IOPS ratios against the floors of issue #3:
#   COW reads and rewrites           >= 0.8x fio (same block size and depth)
#   first writes, ordered durability >= 0.5x fio with --fdatasync=32
# Other rows (backing reads, unordered first writes) are shown for reference.
# First-write rows also show fio on a fresh sparse file (one pass at most),
# which pays the same block allocation as a fresh COW file does.
#
# Engine and fio runs alternate, workload by workload, so drift in a shared
# machine's load hits both sides alike. Each fio peer runs once and serves
# every engine workload that maps to it.
#
# Usage: bench/compare-fio.sh [-d DIR] [-s SIZE] [-t SECONDS] [-c writeback|none]
#                             [-w PATTERNS] [-i BACKENDS] [-b ENGINE_BENCH] [-o OUTDIR]
#   -d  directory on a real file system, not tmpfs (default /var/tmp/cowblk-bench)
#   -s  image and fio file size (default 1G)
#   -t  seconds per workload, a whole number (default 5)
#   -c  COW file cache mode; fio gets --direct=1 for `none` (default writeback)
#   -w  engine_bench --workloads patterns, comma-separated (default: all)
#   -i  the engine's I/O backends, comma-separated: uring, threads (default
#       uring); each workload runs once per backend, next to the same fio peer
#   -b  engine_bench binary (default build/bin/engine_bench)
#   -o  keep the JSON results, the table and summary.md here (default: a new
#       directory under $COWBLK_BENCH_OUT, see bench/README.md)
# DIR is scratch space: the script removes the files it made there on exit.
# Needs fio and python3.
set -eu
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

dir=/var/tmp/cowblk-bench
size=1G
secs=5
cache=writeback
patterns=
backends=uring
bin=$bench_root/build/bin/engine_bench
while getopts d:s:t:c:w:i:b:o:h opt; do
  case $opt in
    c) cache=$OPTARG ;;
    w) patterns=$OPTARG ;;
    i) backends=$OPTARG ;;
    *) bench_opt "$opt" "${OPTARG-}" ;;
  esac
done
need_whole_seconds
case $cache in writeback) direct=0 ;; none) direct=1 ;;
  *) die 2 "-c must be writeback or none" ;; esac
IFS=, read -r -a backend_list <<<"$backends"
for b in "${backend_list[@]}"; do
  case $b in uring | threads) ;; *) die 2 "-i takes uring and threads" ;; esac
done
need_tools fio python3 "$bin"
need_disk_dir "$dir"
bench_rm_at_exit "$dir"/backing.img "$dir"/full.cow "$dir"/empty.cow "$dir"/first.cow \
  "$dir"/fio.img "$dir"/fio-sparse.img
bench_out
rm -f "$out"/*.fio.json "$out"/*.cowblk.json "$out"/engine_bench.log  # a reused -o

# The fio peer of an engine workload: "job-name fio-rw bs depth fdatasync floor".
peer_of() {
  local w=$1 pat rw bs qd target dur
  IFS=- read -r pat bs qd target dur <<<"$w"
  case $pat in
    randread) rw=randread ;; seqread) rw=read ;;
    randwrite) rw=randwrite ;; seqwrite) rw=write ;;
  esac
  qd=${qd#qd}
  case $target-$dur in
    cow-)            echo "$rw-$bs-qd$qd $rw $bs $qd 0 0.8" ;;
    backing-)        echo "$rw-$bs-qd$qd $rw $bs $qd 0 -" ;;
    first-ordered)   echo "$rw-$bs-qd$qd-fdatasync32 $rw $bs $qd 32 0.5" ;;
    first-unordered | first-deferred) echo "$rw-$bs-qd$qd $rw $bs $qd 0 -" ;;
    rewrite-*)       echo "$rw-$bs-qd$qd $rw $bs $qd 0 0.8" ;;
  esac
}

# run_fio NAME RW BS DEPTH FDATASYNC [sparse]
# Plain: fio.img, written in full beforehand, for --runtime seconds.
# Sparse: a fresh sparse file, one pass at most (like the engine's first
# writes, which stop once every block was written).
run_fio() {
  local name=$1 rw=$2 bs=$3 qd=$4 sync=$5 mode=${6:-plain}
  local file=$dir/fio.img extra=(--time_based)
  if [ "$mode" = sparse ]; then
    file=$dir/fio-sparse.img
    rm -f "$file"
    truncate -s "$size" "$file"
    extra=(--fallocate=none)
  fi
  [ "$sync" = 0 ] || extra+=(--fdatasync="$sync")
  # --invalidate=0: keep the page cache warm, as the engine's files are.
  # --iomem=mmap: page-aligned buffers like the engine's (fio's malloc'ed
  # buffers copy from the page cache at a fraction of the speed here).
  fio --name="$name" --filename="$file" --size="$size" --ioengine=io_uring \
      --rw="$rw" --bs="$bs" --iodepth="$qd" --direct="$direct" --invalidate=0 \
      --iomem=mmap --runtime="$secs" --randrepeat=0 "${extra[@]}" \
      --output-format=json --output="$out/$name.fio.json" >/dev/null
  [ "$mode" = plain ] || rm -f "$file"
  sync -f "$dir"
}

list_args=(--list)
[ -z "$patterns" ] || list_args+=(--workloads "$patterns")
mapfile -t workloads < <("$bin" "${list_args[@]}")
[ ${#workloads[@]} -gt 0 ] || die 2 "no workloads"

log "fio file $dir/fio.img ($size)"
rm -f "$dir/fio.img"
fio --name=layout --filename="$dir/fio.img" --size="$size" --rw=write --bs=1M \
    --ioengine=psync --iomem=mmap --end_fsync=1 --output-format=json >/dev/null
[ "$direct" = 1 ] || cat "$dir/fio.img" >/dev/null

: >"$out/peers"
for w in "${workloads[@]}"; do
  read -r name rw bs qd sync floor <<<"$(peer_of "$w")"
  for b in "${backend_list[@]}"; do
    log "cowblk $w ($b)"
    "$bin" --dir "$dir" --size "$size" --seconds "$secs" --cache "$cache" --keep \
           --io-backend "$b" --workloads "$w" --json "$out/$w.$b.cowblk.json" \
           >>"$out/engine_bench.log"
  done
  if [ ! -f "$out/$name.fio.json" ]; then
    log "fio    $name"
    run_fio "$name" "$rw" "$bs" "$qd" "$sync"
  fi
  sparse=-
  case $w in *-first-*)
    sparse=$name-sparse
    if [ ! -f "$out/$sparse.fio.json" ]; then
      log "fio    $sparse"
      run_fio "$sparse" "$rw" "$bs" "$qd" "$sync" sparse
    fi ;;
  esac
  for b in "${backend_list[@]}"; do echo "$w $name $floor $sparse $b" >>"$out/peers"; done
done
log "done"

python3 - "$out" "$cache" "$size" "$secs" <<'PY' | tee "$out/table.md"
import json, sys
out, cache, size, secs = sys.argv[1:]

def fio(name, op):
    text = open(f"{out}/{name}.fio.json").read()
    job = json.loads(text[text.index("{"):])["jobs"][0]  # after any fio warnings
    d = job["read" if op == "read" else "write"]
    syncs = job["sync"]["lat_ns"]["N"] / d["total_ios"] if d["total_ios"] else 0
    p99 = d["clat_ns"].get("percentile", {}).get("99.000000", 0) / 1e3
    return d["iops"], p99, syncs, job["job_runtime"] / 1e3

def us(v):
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"

print(f"cache={cache}, size={size}, {secs} s per workload\n")
print("| workload | backend | fio peer | cowblk IOPS | fio IOPS | ratio | floor | met "
      "| fio IOPS, sparse file | ratio to sparse | p99 µs cowblk / fio "
      "| fsyncs/write cowblk / fio | bitmap writes/write |")
print("|" + "---|" * 13)
for line in open(f"{out}/peers"):
    w, peer, floor, sparse, backend = line.split()
    c = json.load(open(f"{out}/{w}.{backend}.cowblk.json"))["results"][0]
    write = c["op"] == "write"
    iops, p99, syncs, _ = fio(peer, c["op"])
    ratio = c["iops"] / iops if iops else 0
    met = "-" if floor == "-" else ("yes" if ratio >= float(floor) else "**no**")
    name = w + (f" (full after {c['seconds']:.1f} s)" if c["ended_early_device_full"] else "")
    cells = [name, backend, peer, f"{c['iops']:.0f}", f"{iops:.0f}", f"{ratio:.2f}", floor, met]
    if sparse != "-":
        s_iops, _, _, s_secs = fio(sparse, c["op"])
        full = f" (full after {s_secs:.1f} s)" if s_secs < float(secs) - 0.5 else ""
        cells += [f"{s_iops:.0f}{full}", f"{c['iops'] / s_iops:.2f}" if s_iops else "-"]
    else:
        cells += ["-", "-"]
    cells.append(f"{us(c['lat_us']['p99'])} / {us(p99)}")
    if write:
        cells += [f"{c['fsyncs_per_write']:.3f} / {syncs:.3f}", f"{c['bitmap_writes_per_write']:.3f}"]
    else:
        cells += ["-", "-"]
    print("| " + " | ".join(cells) + " |")
PY
bench_summary "$out/table.md"
