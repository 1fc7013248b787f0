# SIGTERM of cowblk nbd whose cowblkd is gone (SIGKILLed): the final flush
# is bounded by --stop-timeout, not by the client's --timeout (here an
# hour, which the gateway would otherwise wait out), and the gateway exits
# 3 (the server out of reach) naming the volume whose flush failed, its
# socket and pid file removed.
. "$COWBLK_TESTS/support/testlib.sh"
cd "$TMP"
start_server
expect_exit 0 "$COWBLK" volume create disk --size 4M
"$COWBLK" --timeout 3600 nbd disk --socket "$TMP/nbd.sock" --pid-file "$TMP/gw.pid" \
  --stop-timeout 1 >gw.out 2>gw.log &
gw=$!
stop_gateway() { kill -KILL "$gw" 2>/dev/null || true; }
cleanup_hooks="stop_gateway"
# Serving once it printed its URI (a line on stdout).
while [ ! -s gw.out ]; do
  kill -0 "$gw" 2>/dev/null || { cat gw.log >&2; fail "the gateway did not start"; }
  read -t 1 _ </dev/null 2>/dev/null || true
done
uri=$(head -n 1 gw.out)
# Written, not flushed.
expect_exit 0 qemu-io -f raw -c "write -P 0x5a 0 64k" "$uri"

kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
wait "$LOGGER_PID" 2>/dev/null || true
SERVER_PID=""
kill -TERM "$gw"
# Liveness bound only (not a measurement): far below the hour of --timeout.
timeout 120 tail --pid="$gw" -f /dev/null || fail "the gateway did not exit: $(cat gw.log)"
status=0
wait "$gw" || status=$?
[ "$status" -eq 3 ] || fail "the gateway exited $status: $(cat gw.log)"
grep -q "event=nbd_gateway_flushed volume=disk status=.*DEADLINE_EXCEEDED" gw.log ||
  fail "no failed flush in the log: $(cat gw.log)"
grep -q "disk: flush:" gw.log || fail "the error does not name the volume: $(cat gw.log)"
[ ! -e nbd.sock ] || fail "the socket is left"
[ ! -e gw.pid ] || fail "the pid file is left"
