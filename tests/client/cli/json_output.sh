# --json prints JSON that parses, with the fields docs/cli.md lists, for
# every command that prints a result.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
expect_exit 0 "$COWBLK" --json volume create disk --size 2M
[ "$(json 'j["name"], j["size_bytes"], j["state"], j["image"]')" = "('disk', 2097152, 'ready', '')" ] ||
  fail "volume create --json: $(cat "$TMP/out")"
expect_exit 0 "$COWBLK" volume ls --json
[ "$(json '[v["name"] for v in j]')" = "['disk']" ] || fail "volume ls --json"
expect_exit 0 "$COWBLK" volume info disk --json
[ "$(json 'j["sector_size"]')" = 512 ] || fail "volume info --json"
head -c 1048576 /dev/urandom >"$TMP/img"
expect_exit 0 "$COWBLK" --json image upload "$TMP/img" base
[ "$(json 'j["size_bytes"], j["volume_count"]')" = "(1048576, 0)" ] || fail "image upload --json"
expect_exit 0 "$COWBLK" --json image ls
[ "$(json 'len(j)')" = 1 ] || fail "image ls --json"
expect_exit 0 "$COWBLK" --json image info base
[ "$(json 'j["name"]')" = base ] || fail "image info --json"
expect_exit 0 "$COWBLK" --json volume create child --image base
expect_exit 0 "$COWBLK" --json volume commit child merged
[ "$(json 'j["name"]')" = merged ] || fail "volume commit --json"
expect_exit 0 "$COWBLK" --json cp "$TMP/img" vol:disk
[ "$(json 'j["bytes"], j["data_bytes"] + j["zero_bytes"]')" = "(1048576, 1048576)" ] || fail "cp --json"
expect_exit 0 "$COWBLK" --json image download base "$TMP/dl"
[ "$(json 'j["bytes"], j["data_bytes"] + j["zero_bytes"]')" = "(1048576, 1048576)" ] ||
  fail "image download --json: $(cat "$TMP/out")"
expect_exit 0 "$COWBLK" --json health
[ "$(json 'j["status"]')" = SERVING ] || fail "health --json"
expect_exit 0 sh -c "printf 'abc' | '$COWBLK' --json write disk 0"
[ "$(json 'j["bytes_written"]')" = 3 ] || fail "write --json"
expect_exit 0 "$COWBLK" --json volume rm child
[ "$(json 'j["deleted"]')" = "['child']" ] || fail "volume rm --json"
expect_exit 0 "$COWBLK" --json image rm merged
[ "$(json 'j["deleted"]')" = "['merged']" ] || fail "image rm --json"
# Empty lists are empty arrays.
expect_exit 0 "$COWBLK" volume rm disk
expect_exit 0 "$COWBLK" --json volume ls
[ "$(json 'j')" = "[]" ] || fail "empty volume ls --json"
