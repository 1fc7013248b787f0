# volume clone: a new volume over the same image holding the source's data
# at the moment of the call; later writes to the source stay out of it. The
# clone is a UML COW file uml_moo merges to the same bytes, and it survives
# a restart. Refusals (the name exists, no such source) change nothing.
. "$COWBLK_TESTS/support/testlib.sh"
SERVER_DATA=$TMP/data
start_server
head -c 2097152 /dev/urandom >"$TMP/img"
expect_exit 0 "$COWBLK" image upload "$TMP/img" base
expect_exit 0 "$COWBLK" volume create src --image base
head -c 4096 /dev/urandom >"$TMP/a"
"$COWBLK" write src 0 <"$TMP/a"
"$COWBLK" write src 1048576 <"$TMP/a"

expect_exit 0 "$COWBLK" volume clone src copy
expect_output "cloned volume src to volume copy (2 MiB)"
expect_exit 0 "$COWBLK" --json volume info copy
[ "$(json 'j["image"], j["allocated_bytes"], j["state"]')" = "('base', 8192, 'ready')" ] ||
  fail "clone info: $(cat "$TMP/out")"

# After the clone, the source changes; the clone does not.
head -c 4096 /dev/urandom >"$TMP/b"
"$COWBLK" write src 0 <"$TMP/b"
cp "$TMP/img" "$TMP/want"
dd if="$TMP/a" of="$TMP/want" bs=4096 seek=0 conv=notrunc status=none
dd if="$TMP/a" of="$TMP/want" bs=4096 seek=256 conv=notrunc status=none
"$COWBLK" read copy 0 >"$TMP/copy"
cmp "$TMP/want" "$TMP/copy" || fail "the clone is not the source at the clone's moment"
"$COWBLK" read src 0 4096 >"$TMP/src0"
cmp "$TMP/b" "$TMP/src0" || fail "the source lost its later write"

# A blank volume clones too.
expect_exit 0 "$COWBLK" volume create blank --size 1M
"$COWBLK" write blank 512 <"$TMP/a"
expect_exit 0 "$COWBLK" volume clone blank blank2
"$COWBLK" read blank2 512 4096 >"$TMP/blank2"
cmp "$TMP/a" "$TMP/blank2" || fail "blank clone"

# Refusals.
before=$(ls "$SERVER_DATA/volumes")
expect_exit 5 "$COWBLK" volume clone src copy
expect_error "ALREADY_EXISTS"
expect_exit 4 "$COWBLK" volume clone nosuch other
expect_error "NOT_FOUND"
expect_exit 2 "$COWBLK" volume clone src "Bad/Name"
expect_error "INVALID_ARGUMENT"
[ "$(ls "$SERVER_DATA/volumes")" = "$before" ] || fail "a refused clone left files"

# UML's own tool reads the clone: uml_moo merges it to the same bytes.
stop_server
uml_moo "$SERVER_DATA/volumes/copy.cow" "$TMP/merged" >/dev/null
cmp "$TMP/want" "$TMP/merged" || fail "uml_moo's merge of the clone"
"$IMG" check "$SERVER_DATA/volumes/copy.cow" >/dev/null || fail "cowblk-img check of the clone"

# It is there after a restart.
start_server
"$COWBLK" read copy 0 >"$TMP/copy2"
cmp "$TMP/want" "$TMP/copy2" || fail "the clone after a restart"
