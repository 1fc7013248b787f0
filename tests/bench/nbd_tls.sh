# cowblk-bench reaches an NBD server that requires TLS with client
# certificates (bench/compare.sh's nbdkit-tls and qemu-nbd-tls targets):
# the URI names the certificates' directory (nbds://...?tls-certificates=
# DIR), a local file libnbd accepts only when allowed. Written data reads
# back intact over TLS; without the client certificate the server refuses.
. "$COWBLK_TESTS/support/testlib.sh"
BENCH="$COWBLK_BIN/cowblk-bench"
command -v nbdkit >/dev/null || fail "nbdkit is not installed (make deps)"
sh "$COWBLK_TESTS/support/make_pki.sh" "$TMP" >/dev/null 2>&1 || fail "make_pki.sh failed"
mkdir "$TMP/server" "$TMP/client" "$TMP/anonymous"
cp "$TMP/ca.pem" "$TMP/server/ca-cert.pem"
cp "$TMP/server.pem" "$TMP/server/server-cert.pem"
cp "$TMP/server.key" "$TMP/server/server-key.pem"
cp "$TMP/ca.pem" "$TMP/client/ca-cert.pem"
cp "$TMP/client.pem" "$TMP/client/client-cert.pem"
cp "$TMP/client.key" "$TMP/client/client-key.pem"
cp "$TMP/ca.pem" "$TMP/anonymous/ca-cert.pem"
export BENCH TMP

# A Unix socket carries TLS as TCP does (nbdkit --run names it).
expect_exit 0 nbdkit -U - --tls=require --tls-certificates="$TMP/server" --tls-verify-peer \
  memory 8M --run '
  "$BENCH" --target "nbds+unix:///?socket=$unixsocket&tls-certificates=$TMP/client" \
    --rw write --verify --bs 16k --io-size 8M --iodepth 8 &&
  "$BENCH" --target "nbds+unix:///?socket=$unixsocket&tls-certificates=$TMP/client" \
    --rw randread --verify-only --bs 4k --io-size 4M --iodepth 16 --json'
expect_output '"verify_errors": 0'

# No client certificate: the handshake fails, cowblk-bench cannot connect.
expect_exit 4 nbdkit -U - --tls=require --tls-certificates="$TMP/server" --tls-verify-peer \
  memory 1M --run \
  '"$BENCH" --target "nbds+unix:///?socket=$unixsocket&tls-certificates=$TMP/anonymous"'
