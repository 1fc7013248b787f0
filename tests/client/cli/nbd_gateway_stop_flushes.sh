# SIGTERM of a foreground cowblk nbd: a request a client sent before the
# signal is still answered, the volume is flushed (the write survives a
# SIGKILL of a cowblkd that commits unflushed writes only a minute later),
# the socket and pid file are removed, and the gateway exits 0.
. "$COWBLK_TESTS/support/testlib.sh"
cd "$TMP"
start_server --durability deferred --commit-interval-ms 60000
expect_exit 0 "$COWBLK" volume create disk --size 4M

mkfifo gw.fifo
"$COWBLK" nbd disk --socket "$TMP/nbd.sock" --pid-file "$TMP/gw.pid" 2>gw.fifo >gw.out &
gw=$!
exec 3<gw.fifo
while IFS= read -r line <&3; do
  printf '%s\n' "$line" >>gw.log
  case $line in *" event=nbd_gateway_serving "*) break ;; esac
done
cat <&3 >>gw.log &
gw_logger=$!
exec 3<&-
[ "$(cat gw.pid)" = "$gw" ] || fail "pid file: $(cat gw.pid), gateway $gw"

# A raw NBD client (../nbd_raw.py): NBD_OPT_GO, one 64 KiB write (no FUA,
# no flush), then it waits for a line on stdin before reading the reply.
head -c 65536 /dev/urandom >payload.bin
mkfifo ctl client.out
python3 "$COWBLK_TESTS/client/nbd_raw.py" write-then-wait "$TMP/nbd.sock" disk payload.bin <ctl >client.out &
client=$!
exec 4>ctl 5<client.out
read -r sent <&5
[ "$sent" = sent ] || fail "client: $sent"

kill -TERM "$gw"
echo go >&4
read -r reply <&5
[ "$reply" = "reply 0x67446698 0 42" ] || fail "the request in flight got: $reply"
read -r end <&5
[ "$end" = eof ] || fail "the connection did not end after the reply: $end"
wait "$client" || fail "the client failed"
status=0
wait "$gw" || status=$?
wait "$gw_logger" || true
[ "$status" -eq 0 ] || { cat gw.log >&2; fail "the gateway exited $status"; }
grep -q "event=nbd_gateway_flushed volume=disk status=ok" gw.log || { cat gw.log >&2; fail "no flush"; }
[ ! -e nbd.sock ] || fail "the socket is left"
[ ! -e gw.pid ] || fail "the pid file is left"

# The write is durable: it survives a SIGKILL of cowblkd.
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
wait "$LOGGER_PID" 2>/dev/null || true
SERVER_PID=""
start_server --durability deferred --commit-interval-ms 60000
"$COWBLK" read disk 0 65536 >back.bin
cmp back.bin payload.bin || fail "the write the gateway acknowledged was not flushed"
