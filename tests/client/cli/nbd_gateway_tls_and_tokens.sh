# cowblk nbd in front of a cowblkd that wants mutual TLS and tokens: with the
# client certificate and a token it serves nbdcopy; without them it does
# not start; with a read-only token, NBD reads work and writes fail (EPERM)
# and change nothing on the server.
. "$COWBLK_TESTS/support/testlib.sh"
command -v openssl >/dev/null || fail "openssl is required"
cd "$TMP"
start_secure_server
stop_gateways() {
  for f in "$TMP"/gw*.pid; do stop_pid_file "$f"; done
}
cleanup_hooks="stop_gateways"
# shellcheck disable=SC2086
expect_exit 0 "$COWBLK" $tls --token-file admin.token volume create disk --size 8M

# shellcheck disable=SC2086
expect_exit 0 "$COWBLK" $tls --token-file admin.token --timeout 10 nbd disk \
  --socket "$TMP/admin.sock" --daemon --pid-file "$TMP/gw-admin.pid"
head -c 4194304 /dev/urandom >in.bin
expect_exit 0 nbdcopy --flush in.bin "nbd+unix:///disk?socket=$TMP/admin.sock"
expect_exit 0 nbdcopy "nbd+unix:///disk?socket=$TMP/admin.sock" out.bin
head -c 4194304 out.bin | cmp - in.bin || fail "read back other bytes"
# shellcheck disable=SC2086
"$COWBLK" $tls --token-file admin.token read disk 0 4194304 >lib.bin
cmp lib.bin in.bin || fail "the volume holds other bytes than nbdcopy wrote"

# No token, or no client certificate: no gateway (and no socket left).
# shellcheck disable=SC2086
expect_exit 6 "$COWBLK" $tls nbd disk --socket "$TMP/none.sock" --daemon
expect_error "UNAUTHENTICATED"
[ ! -e "$TMP/none.sock" ] || fail "a failed gateway left its socket"
expect_exit 3 "$COWBLK" --tls-ca ca.pem --token-file admin.token --timeout 5 nbd disk \
  --socket "$TMP/none.sock" --daemon
[ ! -e "$TMP/none.sock" ] || fail "a failed gateway left its socket"

# A read-only token: reads are served, writes refused with EPERM.
# shellcheck disable=SC2086
expect_exit 0 "$COWBLK" $tls --token-file viewer.token --timeout 10 nbd disk \
  --socket "$TMP/viewer.sock" --daemon --pid-file "$TMP/gw-viewer.pid"
expect_exit 0 nbdcopy "nbd+unix:///disk?socket=$TMP/viewer.sock" viewer.bin
head -c 4194304 viewer.bin | cmp - in.bin || fail "the viewer read other bytes"
stderr_in_out
expect_exit 1 qemu-io -f raw -c "write -P 0x5a 0 64k" "nbd+unix:///disk?socket=$TMP/viewer.sock"
expect_output "Operation not permitted"
# shellcheck disable=SC2086
"$COWBLK" $tls --token-file admin.token read disk 0 4194304 >after.bin
cmp after.bin in.bin || fail "a refused write changed the volume"
stop_gateways
