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
#   -o  keep the JSON results and the table here (default: a temporary directory)
# Needs nbdkit, fio (with the nbd engine) and /usr/bin/python3. Exit status 1
# if a row is outside 0.85-1.15.
set -euo pipefail

dir=/var/tmp/cowblk-gencheck
size=1G
secs=5
repeats=1
bin=build/bin
out=
while getopts d:s:t:r:b:o:h opt; do
  case $opt in
    d) dir=$OPTARG ;;
    s) size=$OPTARG ;;
    t) secs=$OPTARG ;;
    r) repeats=$OPTARG ;;
    b) bin=$OPTARG ;;
    o) out=$OPTARG ;;
    h) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
    *) echo "check-generator.sh: see -h" >&2; exit 2 ;;
  esac
done
bench=$(cd "$bin" && pwd)/cowblk-bench
[ -x "$bench" ] || { echo "check-generator.sh: no $bench (cmake --build build --target cowblk-bench)" >&2; exit 2; }
for tool in nbdkit fio; do
  command -v $tool >/dev/null || { echo "check-generator.sh: $tool is not installed" >&2; exit 2; }
done
py=/usr/bin/python3
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

mkdir -p "$dir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gencheck-XXXXXX")
[ -n "$out" ] || out=$tmp
mkdir -p "$out"
trap 'rm -rf "$tmp" "$dir"' EXIT INT TERM

img=$dir/base.img
bytes=$(size_bytes "$size")
echo "image: $img, $size of random data" >&2
head -c "$bytes" /dev/urandom >"$img"

# run TOOL NAME RW BS DEPTH OUT.json: one measurement on a fresh nbdkit.
run() {
  local tool=$1 name=$2 rw=$3 bs=$4 depth=$5 json=$6 port cmd
  port=$(free_port)
  if [ "$tool" = fio ]; then
    cmd="fio --name=$name --ioengine=nbd --uri=nbd://127.0.0.1:$port --rw=$rw --bs=$bs \
--iodepth=$depth --numjobs=1 --norandommap --time_based --runtime=$secs --ramp_time=1 --lat_percentiles=1 \
--output-format=json --output=$json"
  else
    cmd="$bench --target nbd://127.0.0.1:$port --rw $rw --bs $bs --iodepth $depth \
--runtime $secs --ramp 1 --json $json"
  fi
  nbdkit -i 127.0.0.1 -p "$port" --filter=cow file "$img" --run "$cmd" >"$json.log" 2>&1 ||
    { cat "$json.log" >&2; echo "check-generator.sh: $tool $name failed" >&2; exit 1; }
}

# name rw bs depth
rows="randread-4k-qd1 randread 4k 1
randread-4k-qd32 randread 4k 32
randwrite-4k-qd32 randwrite 4k 32
read-1m-qd8 read 1m 8"

i=0
while read -r name rw bs depth; do
  for r in $(seq 1 "$repeats"); do
    if [ $(( (i + r) % 2 )) -eq 0 ]; then order="fio bench"; else order="bench fio"; fi
    for tool in $order; do
      echo "$name: $tool ($r/$repeats)" >&2
      run "$tool" "$name" "$rw" "$bs" "$depth" "$out/$name.$tool.$r.json"
    done
  done
  i=$((i + 1))
done <<EOF2
$rows
EOF2

$py - "$out" "$repeats" <<'EOF2' | tee "$out/table.md"
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
