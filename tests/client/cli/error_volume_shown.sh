# A volume the server cannot serve (here: its image's mtime changed) is
# listed with the size and image its header names, and its error; not as
# 0 B over no image.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
head -c 3145728 /dev/urandom >"$TMP/base.img"
expect_exit 0 "$COWBLK" image upload "$TMP/base.img" base
expect_exit 0 "$COWBLK" volume create over --image base
expect_exit 0 "$COWBLK" volume create blank --size 2M
stop_server
touch -d '2001-02-03 04:05:06' "$TMP/data/images/base.img" "$TMP/data/images/.blank/2097152.img"
start_server

expect_exit 0 "$COWBLK" --json volume info over
[ "$(json 'j["state"], j["size_bytes"], j["image"]')" = "('error', 3145728, 'base')" ] ||
  fail "volume info over: $(cat "$TMP/out")"
[ -n "$(json 'j["error"]')" ] || fail "volume info over: no error text"
expect_exit 0 "$COWBLK" --json volume info blank
[ "$(json 'j["state"], j["size_bytes"], j["image"]')" = "('error', 2097152, '')" ] ||
  fail "volume info blank: $(cat "$TMP/out")"

expect_exit 0 "$COWBLK" volume ls
grep -Eq '^over +3 MiB +0 B +base +error: ' "$TMP/out" || { cat "$TMP/out" >&2; fail "volume ls: over"; }
grep -Eq '^blank +2 MiB +0 B +- +error: ' "$TMP/out" || { cat "$TMP/out" >&2; fail "volume ls: blank"; }
# The image knows its volume, so it is not deleted from under it.
expect_exit 0 "$COWBLK" --json image info base
[ "$(json 'j["volume_count"]')" = 1 ] || fail "image info base: $(cat "$TMP/out")"
expect_exit 1 "$COWBLK" image rm base
expect_error "is used by volume(s) over"
