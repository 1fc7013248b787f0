#!/usr/bin/env bash
# check-generator.sh: cowblk-bench against fio's NBD engine on the same
# nbdkit export (`nbdkit --filter=cow file IMG`, TCP loopback), workload by
# workload, then a markdown table of IOPS ratios and p99 latencies. The two
# must agree within 15% (issue #5): rows outside 0.85-1.15 are flagged.
#
# Every measurement gets a fresh nbdkit (so writes start on an empty COW
# overlay for both tools); fio and cowblk-bench alternate, and the order
# flips from row to row, so drift in a shared machine's load hits both
# alike. Both tools ramp 1 s first; fio runs with --norandommap (uniform
# offsets with replacement, as cowblk-bench draws them; fio's default random
# map is extra per-request work). Latency is submit to completion (fio's
# lat_ns percentiles with --lat_percentiles=1).
#
# Usage: bench/check-generator.sh [-d DIR] [-s SIZE] [-t SECONDS] [-r REPEATS]
#                                 [-b BUILD_BIN] [-o OUTDIR]
#   -d  scratch directory for the image (default /var/tmp/cowblk-gencheck)
#   -s  image size (default 1G), filled with random data once
#   -t  seconds per measurement (default 5)
#   -r  measurements per tool and row, averaged (default 1)
#   -b  directory holding cowblk-bench (default build/bin)
#   -o  keep the JSON results, the table and summary.md here (default: a new
#       directory under $COWBLK_BENCH_OUT, see bench/README.md)
# Needs nbdkit, fio (with the nbd engine) and /usr/bin/python3. Exit status 1
# if a row is outside 0.85-1.15.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

dir=/var/tmp/cowblk-gencheck
size=1G
secs=5
while getopts d:s:t:r:b:o:h opt; do
  bench_opt "$opt" "${OPTARG-}"
done
need_tools "$bin/cowblk-bench" nbdkit fio
mkdir -p "$dir"
bench_rm_at_exit "$dir"
bench_out
rm -f "$out"/*.json "$out"/*.log  # a reused -o

img=$dir/base.img
random_image "$img" "$size"

# run TOOL OUT.json RW BS DEPTH: one measurement on a fresh nbdkit.
# shellcheck disable=SC2317 # called through measure_rows
run() {
  local tool=$1 json=$2 rw=$3 bs=$4 depth=$5
  nbdkit_start "$img"
  if [ "$tool" = fio ]; then
    fio --name=x --ioengine=nbd --uri="$nbdkit_uri" --rw="$rw" --bs="$bs" \
      --iodepth="$depth" --numjobs=1 --norandommap --time_based --runtime="$secs" --ramp_time=1 \
      --lat_percentiles=1 --output-format=json --output="$json" >"$json.log" 2>&1 ||
      { cat "$json.log" >&2; die 1 "fio ${json##*/} failed"; }
  else
    bench_cell "$nbdkit_uri" "$rw" "$bs" "$depth" "$size" "$json"
  fi
  nbdkit_stop
}

# name rw bs depth
rows="randread-4k-qd1 randread 4k 1
randread-4k-qd32 randread 4k 32
randwrite-4k-qd32 randwrite 4k 32
read-1m-qd8 read 1m 8"

measure_rows run "$rows" fio bench

status=0
/usr/bin/python3 - "$out" "$repeats" <<'EOF2' | tee "$out/table.md" || status=$?
import json, sys
out, repeats = sys.argv[1], int(sys.argv[2])
rows = ["randread-4k-qd1", "randread-4k-qd32", "randwrite-4k-qd32", "read-1m-qd8"]
bad = 0
print("| workload | fio IOPS | cowblk-bench IOPS | ratio | fio p99 us | cowblk-bench p99 us | |")
print("|---|---:|---:|---:|---:|---:|---|")
for name in rows:
    kind = "write" if "write" in name else "read"
    fi, fp, bi, bp = [], [], [], []
    for r in range(1, repeats + 1):
        f = json.load(open(f"{out}/{name}.fio.{r}.json"))["jobs"][0][kind]
        fi.append(f["iops"])
        fp.append(f["lat_ns"]["percentile"]["99.000000"] / 1000)
        b = json.load(open(f"{out}/{name}.bench.{r}.json"))[kind]
        bi.append(b["iops"])
        bp.append(b["lat_us"]["p99"])
    avg = lambda v: sum(v) / len(v)
    ratio = avg(bi) / avg(fi)
    flag = "" if 0.85 <= ratio <= 1.15 else "**outside 0.85-1.15**"
    bad += bool(flag)
    print(f"| {name} | {avg(fi):.0f} | {avg(bi):.0f} | {ratio:.2f} | {avg(fp):.0f} | {avg(bp):.0f} | {flag} |")
sys.exit(1 if bad else 0)
EOF2
bench_summary "$out/table.md"
exit $status
