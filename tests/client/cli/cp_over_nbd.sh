# With a server that has an NBD export, cp's large reads and writes travel
# over it (libcowblk's NBD path) and the bytes still round-trip exactly.
. "$COWBLK_TESTS/client/cli/testlib"
start_server --nbd-listen 127.0.0.1:0
head -c $((24 * 1048576)) /dev/urandom >"$TMP/in"

expect_exit 0 "$COWBLK" cp "$TMP/in" vol:disk --create
expect_exit 0 "$COWBLK" cp vol:disk "$TMP/back"
cmp "$TMP/in" "$TMP/back" || fail "the copy back differs"
stop_server
# One connection per cp, each of which carried requests.
[ "$(grep -c ' event=nbd_export .*volume=disk' "$TMP/server.log")" -eq 2 ] ||
  fail "cp did not use the export: $(grep nbd_ "$TMP/server.log")"
[ "$(grep ' event=nbd_closed .*volume=disk' "$TMP/server.log" | grep -c -v ' requests=0 ')" -eq 2 ] ||
  fail "a cp sent nothing over the export: $(grep nbd_closed "$TMP/server.log")"
