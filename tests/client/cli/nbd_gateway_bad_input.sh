# cowblk nbd against a raw NBD client that sends what the protocol or the
# export refuses (unknown or malformed options, an unknown export, a read
# above the maximum block, unknown commands and flags, ranges past the end
# or misaligned): each gets its error and the connection goes on; 64 reads
# in flight are each answered once; a write above the maximum block ends
# the connection after its EINVAL; proto.md's rules of nbd_raw.py
# conformance (a disconnect answers what came before it, flags a command
# does not take, zero lengths, a command not advertised, FUA). The gateway
# serves on afterwards.
. "$COWBLK_TESTS/support/testlib.sh"
cd "$TMP"
start_server
expect_exit 0 "$COWBLK" volume create disk --size 128M
expect_exit 0 "$COWBLK" nbd disk --socket "$TMP/nbd.sock" --daemon --pid-file "$TMP/gw.pid"
stop_gateway() { stop_pid_file "$TMP/gw.pid"; }
cleanup_hooks="stop_gateway"
expect_exit 0 python3 "$COWBLK_TESTS/client/nbd_raw.py" bad-input "$TMP/nbd.sock" disk 134217728
expect_output "ok"
expect_exit 0 python3 "$COWBLK_TESTS/client/nbd_raw.py" conformance "$TMP/nbd.sock" disk
expect_output "ok"
[ "$(nbdinfo --size "nbd+unix:///disk?socket=$TMP/nbd.sock")" = 134217728 ] || fail "no longer serving"
stop_gateway
