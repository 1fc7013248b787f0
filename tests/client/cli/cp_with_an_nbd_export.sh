# With a server that has an NBD export, cp round-trips exactly. libcowblk
# sends its large reads and writes over the export once the connection it
# dials is up (tests/client/nbd_path_test.cc checks that it does); how many
# go there depends on how fast the dial is against the copy, so this test
# asserts only the bytes, and prints the split.
. "$COWBLK_TESTS/support/testlib.sh"
start_server --nbd-listen 127.0.0.1:0
head -c $((24 * 1048576)) /dev/urandom >"$TMP/in"

expect_exit 0 "$COWBLK" cp "$TMP/in" vol:disk --create
expect_exit 0 "$COWBLK" cp vol:disk "$TMP/back"
cmp "$TMP/in" "$TMP/back" || fail "the copy back differs"
stop_server
grep ' event=nbd_closed ' "$TMP/server.log" || true
