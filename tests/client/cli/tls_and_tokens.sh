# --tls-ca, --tls-cert, --tls-key and --token-file (and their variables)
# reach a cowblkd that wants mutual TLS and tokens; without them it refuses.
. "$COWBLK_TESTS/support/testlib.sh"
command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 0; }
cd "$TMP"
start_secure_server
# shellcheck disable=SC2086
expect_exit 0 "$COWBLK" $tls --token-file admin.token volume create disk --size 1M
expect_exit 0 env COWBLK_TLS_CA=ca.pem COWBLK_TLS_CERT=client.pem COWBLK_TLS_KEY=client.key \
  COWBLK_TOKEN_FILE=admin.token "$COWBLK" volume ls
expect_output "disk"
# Health needs no token.
# shellcheck disable=SC2086
expect_exit 0 "$COWBLK" $tls health
# No token, or a token without the scope.
# shellcheck disable=SC2086
expect_exit 6 "$COWBLK" $tls volume ls
expect_one_error_line
expect_error "UNAUTHENTICATED"
# shellcheck disable=SC2086
expect_exit 6 "$COWBLK" $tls --token-file viewer.token volume create other --size 1M
expect_error "PERMISSION_DENIED"
# shellcheck disable=SC2086
expect_exit 0 "$COWBLK" $tls --token-file viewer.token read disk 0 512
# shellcheck disable=SC2086
expect_exit 6 sh -c "printf x | '$COWBLK' $tls --token-file viewer.token write disk 0"
# Plaintext, or TLS without a client certificate, fails to connect.
expect_exit 3 "$COWBLK" --token-file admin.token volume ls
expect_one_error_line
expect_exit 3 "$COWBLK" --tls-ca ca.pem --token-file admin.token volume ls
