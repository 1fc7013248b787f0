# cowblk-bench --verify through cowblkd's NBD export, writes written by the
# connection itself (--nbd-inline-writes on, the default) and by the engine
# (off), in ordered and deferred durability: random reads and writes from 4
# connections at once check every sector they read (reads of 256 KiB and
# more are sent from the files: zero-copy); a write pass then reads back
# intact over gRPC, and over NBD after a restart.
. "$COWBLK_TESTS/support/testlib.sh"
BENCH="$COWBLK_BIN/cowblk-bench"
nbd_address() { sed -n 's/.* event=serving .* nbd=\([^ ]*\).*/\1/p' "$TMP/server.log"; }
bench() { expect_exit 0 "$BENCH" "$@" --json; expect_output '"verify_errors": 0'; }

head -c 8M /dev/urandom >"$TMP/base.img"
n=0
for mode in "on ordered" "on deferred" "off ordered"; do
  set -- $mode
  flags="--nbd-listen 127.0.0.1:0 --nbd-inline-writes $1 --durability $2"
  # shellcheck disable=SC2086
  start_server $flags
  grep -q " nbd_inline_writes=$1" "$TMP/server.log" || fail "serving line: want nbd_inline_writes=$1"
  [ $n -eq 0 ] && expect_exit 0 "$COWBLK" image upload "$TMP/base.img" base
  n=$((n + 1))
  vol=v$n
  expect_exit 0 "$COWBLK" volume create $vol --image base
  nbd="nbd://$(nbd_address)/$vol"

  bench --target "$nbd" --rw randrw --verify --bs 4k --size 4M --io-size 16M --iodepth 16 --streams 4
  bench --target "$nbd" --rw randrw --verify --bs 64k --size 8M --io-size 32M --iodepth 8 --streams 4
  bench --target "$nbd" --rw randrw --verify --bs 256k --size 8M --io-size 32M --iodepth 4 --streams 4
  bench --target "$nbd" --rw write --verify --bs 128k --io-size 8M --iodepth 8 --streams 2
  bench --target "cowblk://$COWBLK_SERVER/$vol" --rw read --verify-only --bs 128k --io-size 8M \
    --iodepth 8 --streams 2
  stop_server
  grep -q " zero_copy_reads=[1-9]" "$TMP/server.log" || fail "no read was sent from the files"
  if [ "$1" = on ]; then
    grep -q " inline_writes=[1-9]" "$TMP/server.log" || fail "no connection wrote inline"
  else
    grep -q " event=nbd_closed " "$TMP/server.log" || fail "no nbd_closed line"
    grep " event=nbd_closed " "$TMP/server.log" | grep -qv " inline_writes=0 " &&
      fail "inline writes with --nbd-inline-writes off"
  fi
  : >"$TMP/server.log"
  # shellcheck disable=SC2086
  start_server $flags
  bench --target "nbd://$(nbd_address)/$vol" --rw read --verify-only --bs 256k --io-size 8M \
    --iodepth 8 --streams 2
  stop_server
  : >"$TMP/server.log"
done
