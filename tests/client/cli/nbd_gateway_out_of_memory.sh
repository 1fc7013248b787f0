# cowblk nbd without memory for a request's buffer (allocations above 16
# MiB fail, as under a memory limit): a 32 MiB read or write is answered
# ENOMEM (not ENOSPC), the write's payload is skipped, the request's bytes
# are given back (the same again is refused the same way, not blocked), and
# the connection and the gateway serve on.
. "$COWBLK_TESTS/support/testlib.sh"
: "${COWBLK_FAIL_ALLOC_LIB:?set COWBLK_FAIL_ALLOC_LIB (ctest does)}"
cd "$TMP"
start_server
expect_exit 0 "$COWBLK" volume create disk --size 64M
if [ -n "${COWBLK_FAIL_ALLOC_SANITIZER:-}" ]; then
  # A sanitizer build: its allocator fails them (nothing may be preloaded).
  inherited=$(eval "printf %s \"\${$COWBLK_FAIL_ALLOC_SANITIZER:-}\"")
  set -- "$COWBLK_FAIL_ALLOC_SANITIZER=$inherited:allocator_may_return_null=1:max_allocation_size_mb=16"
else
  set -- "LD_PRELOAD=$COWBLK_FAIL_ALLOC_LIB" COWBLK_TEST_FAIL_ALLOC_ABOVE=16777216
fi
expect_exit 0 env "$@" "$COWBLK" nbd disk --socket "$TMP/nbd.sock" --daemon \
  --pid-file "$TMP/gw.pid"
stop_gateway() { stop_pid_file "$TMP/gw.pid"; }
cleanup_hooks="stop_gateway"
expect_exit 0 python3 "$COWBLK_TESTS/client/nbd_raw.py" no-memory "$TMP/nbd.sock" disk
expect_output "ok"
[ "$(nbdinfo --size "nbd+unix:///disk?socket=$TMP/nbd.sock")" = 67108864 ] || fail "no longer serving"
stop_gateway
