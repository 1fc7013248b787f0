#!/bin/sh
# Issue #21 item 10: cowblk nbd (the gateway) driven by cowblk-bench over
# nbd+unix, against the same load through libcowblk directly, in one run
# and the same security (plaintext gRPC to a local cowblkd without its own
# NBD export, so both paths are gRPC). Rows: 4 KiB random reads and writes
# at depth 32, 1 MiB sequential reads and writes at depth 8; the two paths
# alternate per row, ROUNDS times (the best of each kept); the ratio
# gateway/direct is printed per row with the 0.8 floor.
#   [GW_FLAGS="--channels 1"] bench/gateway.sh [BUILD_DIR] [RUNTIME_SECONDS] [ROUNDS]
# (GW_FLAGS: global flags of the gateway's cowblk only, e.g. its channels)
set -eu
BUILD=${1:-build}
RUNTIME=${2:-5}
ROUNDS=${3:-2}
BIN=$BUILD/bin
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cowblk-gw-bench-XXXXXX")
SERVER=""
GW=""
cleanup() {
  [ -n "$GW" ] && kill "$GW" 2>/dev/null && wait "$GW" 2>/dev/null
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
"$BIN/cowblkd" --data-dir "$TMP/data" --listen 127.0.0.1:0 2>"$TMP/server.log" &
SERVER=$!
until grep -q " event=serving " "$TMP/server.log"; do
  kill -0 "$SERVER" || { cat "$TMP/server.log"; exit 1; }
  sleep 0.1
done
ADDR=$(sed -n 's/.* event=serving address=\([^ ]*\).*/\1/p' "$TMP/server.log")
export COWBLK_SERVER=$ADDR
"$BIN/cowblk" volume create bench --size 1G >/dev/null
"$BIN/cowblk" ${GW_FLAGS:-} nbd bench --socket "$TMP/nbd.sock" >"$TMP/gw.out" 2>"$TMP/gw.log" &
GW=$!
until [ -s "$TMP/gw.out" ]; do kill -0 "$GW" || { cat "$TMP/gw.log"; exit 1; }; sleep 0.1; done
DIRECT="cowblk://$ADDR/bench"
GATEWAY="nbd+unix:///bench?socket=$TMP/nbd.sock"
# Fill once (the reads read written data).
"$BIN/cowblk-bench" --target "$DIRECT" --rw write --bs 1m --iodepth 8 --io-size 1g >/dev/null

iops() {  # URI RW BS DEPTH -> IOPS
  "$BIN/cowblk-bench" --target "$1" --rw "$2" --bs "$3" --iodepth "$4" --runtime "$RUNTIME" \
    --json - 2>/dev/null | python3 -c 'import json,sys; j=json.load(sys.stdin); print(int(j["iops"] if "iops" in j else j["total"]["iops"]))'
}
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; runtime ${RUNTIME}s x $ROUNDS rounds"
printf '%-26s %12s %12s %7s %s\n' row direct gateway ratio floor
for row in "randread 4k 32" "randwrite 4k 32" "read 1m 8" "write 1m 8"; do
  set -- $row
  best_d=0 best_g=0
  for _ in $(seq "$ROUNDS"); do
    d=$(iops "$DIRECT" "$1" "$2" "$3"); g=$(iops "$GATEWAY" "$1" "$2" "$3")
    [ "$d" -gt "$best_d" ] && best_d=$d
    [ "$g" -gt "$best_g" ] && best_g=$g
  done
  ratio=$(python3 -c "print(f'{$best_g / $best_d:.2f}')")
  ok=$(python3 -c "print('ok' if $best_g / $best_d >= 0.8 else 'MISSED')")
  printf '%-26s %12s %12s %7s %s\n' "$1 $2 depth $3 (IOPS)" "$best_d" "$best_g" "$ratio" "$ok"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
