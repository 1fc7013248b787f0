# volume resize: a blank volume grows and keeps its data; the new sectors
# read as zeros and take writes. Growing past 16 MiB moves the COW file's
# data area (the bitmap grows a block); the result is a COW file uml_moo
# merges to the same bytes, and it survives a restart. Refusals (smaller, a
# volume over an image, a bad size) change nothing.
. "$COWBLK_TESTS/support/testlib.sh"
SERVER_DATA=$TMP/data
start_server
expect_exit 0 "$COWBLK" volume create disk --size 1M
head -c 4096 /dev/urandom >"$TMP/a"
head -c 4096 /dev/urandom >"$TMP/b"
"$COWBLK" write disk 0 <"$TMP/a"
"$COWBLK" write disk $((1048576 - 4096)) <"$TMP/b"
offset_before=$("$IMG" info -U --json "$SERVER_DATA/volumes/disk.cow" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data_offset"])')

expect_exit 0 "$COWBLK" volume resize disk --size 40M
expect_output "resized volume disk to 40 MiB"
expect_exit 0 "$COWBLK" --json volume info disk
[ "$(json 'j["size_bytes"], j["allocated_bytes"], j["state"]')" = "(41943040, 8192, 'ready')" ] ||
  fail "after resize: $(cat "$TMP/out")"
offset_after=$("$IMG" info -U --json "$SERVER_DATA/volumes/disk.cow" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data_offset"])')
[ "$offset_after" -gt "$offset_before" ] || fail "data offset $offset_before -> $offset_after"

# The old data, zeros after it, and the new space takes writes.
head -c 41943040 /dev/zero >"$TMP/want"
dd if="$TMP/a" of="$TMP/want" bs=4096 seek=0 conv=notrunc status=none
dd if="$TMP/b" of="$TMP/want" bs=4096 seek=255 conv=notrunc status=none
head -c 4096 /dev/urandom >"$TMP/c"
"$COWBLK" write disk $((39 * 1048576)) <"$TMP/c"
dd if="$TMP/c" of="$TMP/want" bs=4096 seek=$((39 * 256)) conv=notrunc status=none
"$COWBLK" read disk 0 >"$TMP/got"
cmp "$TMP/want" "$TMP/got" || fail "content after resize"

# The same size: unchanged. Smaller, over an image, unaligned: refused.
expect_exit 0 "$COWBLK" volume resize disk --size 40M
expect_output "resized volume disk to 40 MiB"
expect_exit 1 "$COWBLK" volume resize disk --size 20M
expect_error "FAILED_PRECONDITION"
head -c 1048576 /dev/urandom >"$TMP/img"
expect_exit 0 "$COWBLK" image upload "$TMP/img" base
expect_exit 0 "$COWBLK" volume create child --image base
before=$(cd "$SERVER_DATA" && find . -type f | sort | xargs md5sum)
expect_exit 1 "$COWBLK" volume resize child --size 2M
expect_error "only blank volumes grow"
expect_exit 2 "$COWBLK" volume resize disk --size 41943041
expect_exit 4 "$COWBLK" volume resize nosuch --size 2M
after=$(cd "$SERVER_DATA" && find . -type f | sort | xargs md5sum)
[ "$before" = "$after" ] || fail "a refused resize changed files"

# UML's own tool reads the grown file; it is there after a restart.
stop_server
uml_moo "$SERVER_DATA/volumes/disk.cow" "$TMP/merged" >/dev/null
cmp "$TMP/want" "$TMP/merged" || fail "uml_moo's merge of the grown volume"
"$IMG" check "$SERVER_DATA/volumes/disk.cow" >/dev/null || fail "cowblk-img check"
start_server
"$COWBLK" read disk 0 >"$TMP/got2"
cmp "$TMP/want" "$TMP/got2" || fail "content after a restart"
