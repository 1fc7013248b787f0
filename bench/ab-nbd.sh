#!/usr/bin/env bash
# ab-nbd.sh: cowblkd variants side by side over their NBD exports, next to
# nbdkit --filter=cow, on one image (an A/B of a flag or of two builds).
# Every variant gets its own cowblkd and a volume over the image, filled
# first (allocated sectors: rewrites and COW reads); then each workload runs
# ROUNDS times, the variants one after another within a round (so drift in
# a shared machine's load hits all alike). Prints, per cell, IOPS, p99 and
# the server's CPU per request (user+system ticks of its process, from
# /proc/PID/stat, over the ramp and the cell, divided by the cell's
# requests: larger than the truth by up to (SECONDS+1)/SECONDS, alike for
# every variant, so compare them with each other).
#
# Usage: bench/ab-nbd.sh [-d DIR] [-s SIZE] [-t SECONDS] [-r ROUNDS]
#                        [-b BUILD_BIN] [-w WORKLOADS] LABEL=FLAGS...
#   LABEL=FLAGS  one variant: extra cowblkd flags (may be empty); a variant
#                may name another binary first: LABEL=@/path/to/cowblkd FLAGS
#   -w  workloads, ';'-separated "RW BS DEPTH" (default
#       "randwrite 4k 32;write 1m 8;randwrite 4k 1")
#   -t  seconds per cell after a 1 s ramp (default 3); -r rounds (default 3)
#   -s  image size (default 256M); -d scratch directory (default
#       /var/tmp/cowblk-ab); -b the build's bin/ (default build/bin)
# Example: bench/ab-nbd.sh off="--nbd-inline-writes off" on=""
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
dir=/var/tmp/cowblk-ab size=256M secs=3 rounds=3 bin="$here/../build/bin"
work="randwrite 4k 32;write 1m 8;randwrite 4k 1"
while getopts "d:s:t:r:b:w:" o; do
  case $o in
    d) dir=$OPTARG ;; s) size=$OPTARG ;; t) secs=$OPTARG ;; r) rounds=$OPTARG ;;
    b) bin=$OPTARG ;; w) work=$OPTARG ;;
    *) sed -n '2,24p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n '2,24p' "$0" >&2; exit 2; }
command -v nbdkit >/dev/null || { echo "ab-nbd.sh: nbdkit is not installed" >&2; exit 1; }
rm -rf "$dir" && mkdir -p "$dir"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
bytes=$(size_bytes "$size")
head -c "$bytes" /dev/urandom >"$dir/base.img"

labels=() uris=() spids=()
start_cowblkd() {  # start_cowblkd LABEL FLAGS
  local label=$1 flags=$2 exe="$bin/cowblkd" d="$dir/$1" grpc nbd
  if [[ $flags == @* ]]; then exe=${flags%% *}; exe=${exe#@}; flags=${flags#"@$exe"}; fi
  mkdir -p "$d"
  grpc=$(free_port) nbd=$(free_port)
  # shellcheck disable=SC2086
  "$exe" --data-dir "$d" --listen 127.0.0.1:$grpc --metrics-listen "" \
    --nbd-listen 127.0.0.1:$nbd $flags 2>"$d.log" &
  pids+=($!) spids+=($!)
  until grep -q " event=serving " "$d.log"; do
    kill -0 "$!" 2>/dev/null || { cat "$d.log" >&2; exit 1; }
    sleep 0.1
  done
  COWBLK_SERVER=127.0.0.1:$grpc "$bin/cowblk" image upload "$dir/base.img" base >/dev/null
  COWBLK_SERVER=127.0.0.1:$grpc "$bin/cowblk" volume create v --image base >/dev/null
  labels+=("$label") uris+=("nbd://127.0.0.1:$nbd/v")
}
for v in "$@"; do start_cowblkd "${v%%=*}" "${v#*=}"; done
port=$(free_port)
nbdkit -i 127.0.0.1 -p "$port" -P "$dir/nbdkit.pid" --filter=cow file "$dir/base.img"
pids+=("$(cat "$dir/nbdkit.pid")") spids+=("$(cat "$dir/nbdkit.pid")")
labels+=(nbdkit) uris+=("nbd://127.0.0.1:$port/")

for u in "${uris[@]}"; do  # allocate everything
  "$bin/cowblk-bench" --target "$u" --rw write --bs 1m --iodepth 8 --size "$size" \
    --io-size "$size" >/dev/null
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), ${secs}s cells, $rounds rounds"
printf '%-22s %-14s %9s %10s %14s\n' workload variant IOPS "p99 us" "server us/op"
IFS=';' read -ra rows <<<"$work"
for row in "${rows[@]}"; do
  read -r rw bs depth <<<"$row"
  for ((round = 1; round <= rounds; round++)); do
    for i in "${!labels[@]}"; do
      t0=$(ticks "${spids[$i]}")
      "$bin/cowblk-bench" --target "${uris[$i]}" --rw "$rw" --bs "$bs" --iodepth "$depth" \
        --size "$size" --runtime "$secs" --ramp 1 --json "$dir/cell.json" >/dev/null
      t1=$(ticks "${spids[$i]}")
      /usr/bin/python3 - "$row" "${labels[$i]}" $((t1 - t0)) "$hz" "$dir/cell.json" <<'PY'
import json, sys
row, label, ticks, hz, path = sys.argv[1:]
d = json.load(open(path))
k = "read" if d["read"]["ops"] else "write"
us = int(ticks) * 1e6 / int(hz) / d[k]["ops"]
print(f"{row:<22} {label:<14} {d[k]['iops']:9.0f} {d[k]['lat_us']['p99']:10.0f} {us:14.1f}")
PY
    done
  done
done
