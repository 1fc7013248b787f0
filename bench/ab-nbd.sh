#!/usr/bin/env bash
# ab-nbd.sh: cowblkd variants side by side over their NBD exports, next to
# nbdkit --filter=cow, on one image (an A/B of a flag or of two builds).
# Every variant gets its own cowblkd and a volume over the image, filled
# first (allocated sectors: rewrites and COW reads); then each workload runs
# ROUNDS times, the variants one after another within a round (so drift in
# a shared machine's load hits all alike). Prints a markdown table: per
# cell, IOPS, p99 and the server's CPU per request (user+system ticks of its
# process, from /proc/PID/stat, over the ramp and the cell, divided by the
# cell's requests: larger than the truth by up to (SECONDS+1)/SECONDS, alike
# for every variant, so compare them with each other).
#
# Usage: bench/ab-nbd.sh [-d DIR] [-s SIZE] [-t SECONDS] [-r ROUNDS]
#                        [-b BUILD_BIN] [-o OUTDIR] [-w WORKLOADS] LABEL=FLAGS...
#   LABEL=FLAGS  one variant: extra cowblkd flags (may be empty); a variant
#                may name another binary first: LABEL=@/path/to/cowblkd FLAGS
#   -w  workloads, ';'-separated "RW BS DEPTH" (default
#       "randwrite 4k 32;write 1m 8;randwrite 4k 1")
#   -t  seconds per cell after a 1 s ramp (default 3); -r rounds (default 3)
#   -s  image size (default 256M); -d scratch directory (default
#       /var/tmp/cowblk-ab, removed on exit); -b the build's bin/ (default
#       build/bin)
#   -o  each cell's JSON, the servers' logs, the table and summary.md
#       (default: a new directory under $COWBLK_BENCH_OUT, see bench/README.md)
# Example: bench/ab-nbd.sh off="--nbd-inline-writes off" on=""
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
dir=/var/tmp/cowblk-ab size=256M secs=3 repeats=3
work="randwrite 4k 32;write 1m 8;randwrite 4k 1"
while getopts d:s:t:r:b:o:w:h opt; do
  case $opt in
    w) work=$OPTARG ;;
    *) bench_opt "$opt" "${OPTARG-}" ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || die 2 "no LABEL=FLAGS variant (see -h)"
need_tools "$bin/cowblk" "$bin/cowblk-bench" nbdkit
rm -rf "$dir" && mkdir -p "$dir"
bench_rm_at_exit "$dir"
bench_out
rm -f "$out"/*.json "$out"/*.log  # a reused -o
random_image "$dir/base.img" "$size"

labels=() uris=() spids=()
# add_variant LABEL FLAGS: a cowblkd serving volume v over the image.
add_variant() {
  local label=$1 flags=$2 exe=$bin/cowblkd
  if [[ $flags == @* ]]; then exe=${flags%% *}; exe=${exe#@}; flags=${flags#"@$exe"}; fi
  mkdir -p "$dir/$label"
  # shellcheck disable=SC2086 # $flags is a list of flags
  cowblkd_start "$out/$label.log" "$exe" --data-dir "$dir/$label" --metrics-listen "" \
    --nbd-listen 127.0.0.1:0 $flags
  COWBLK_SERVER=$cowblkd_addr "$bin/cowblk" image upload "$dir/base.img" base >/dev/null
  COWBLK_SERVER=$cowblkd_addr "$bin/cowblk" volume create v --image base >/dev/null
  labels+=("$label") uris+=("nbd://$cowblkd_nbd/v") spids+=("$cowblkd_pid")
}
for v in "$@"; do add_variant "${v%%=*}" "${v#*=}"; done
nbdkit_start "$dir/base.img"
labels+=(nbdkit) uris+=("$nbdkit_uri/") spids+=("$nbdkit_pid")

for i in "${!uris[@]}"; do  # allocate everything
  bench_prefill "${uris[$i]}" "$size" "$out/${labels[$i]}.prefill.log"
done
hz=$(getconf CLK_TCK)
{
  echo "${secs} s cells after a 1 s ramp, $repeats rounds; server µs/op: CPU per request."
  echo
  echo "| workload | variant | IOPS | p99 µs | server µs/op |"
  echo "|---|---|---:|---:|---:|"
} | tee "$out/table.md"
IFS=';' read -ra rows <<<"$work"
for row in "${rows[@]}"; do
  read -r rw bs depth <<<"$row"
  for ((round = 1; round <= repeats; round++)); do
    for i in "${!labels[@]}"; do
      json=$out/${labels[$i]}.$rw-$bs-qd$depth.$round.json
      t0=$(proc_ticks "${spids[$i]}")
      bench_cell "${uris[$i]}" "$rw" "$bs" "$depth" "$size" "$json"
      t1=$(proc_ticks "${spids[$i]}")
      /usr/bin/python3 - "$row" "${labels[$i]}" $((t1 - t0)) "$hz" "$json" <<'PY' | tee -a "$out/table.md"
import json, sys
row, label, ticks, hz, path = sys.argv[1:]
d = json.load(open(path))
k = "read" if d["read"]["ops"] else "write"
us = int(ticks) * 1e6 / int(hz) / d[k]["ops"]
print(f"| {row} | {label} | {d[k]['iops']:.0f} | {d[k]['lat_us']['p99']:.0f} | {us:.1f} |")
PY
    done
  done
done
bench_summary "$out/table.md"
