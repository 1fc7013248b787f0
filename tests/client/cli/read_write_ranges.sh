# write puts stdin at any byte offset (partial sectors are patched), read
# prints any byte range, and both agree with a local model of the volume.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
expect_exit 0 "$COWBLK" volume create disk --size 1M
head -c 1048576 /dev/zero >"$TMP/model"
patch() {  # patch OFFSET FILE: the same write on the model and the volume
  dd if="$2" of="$TMP/model" bs=1 seek="$1" conv=notrunc status=none
  "$COWBLK" write disk "$1" <"$2" || fail "write at $1"
}
head -c 100 /dev/urandom >"$TMP/a"
head -c 70000 /dev/urandom >"$TMP/b"
head -c 512 /dev/urandom >"$TMP/c"
patch 1000 "$TMP/a"
patch 4095 "$TMP/b"
patch 512 "$TMP/c"
patch 1048000 "$TMP/a"
"$COWBLK" read disk 0 >"$TMP/all"
cmp "$TMP/model" "$TMP/all" || fail "the volume differs from the model"
"$COWBLK" read disk 4095 70000 >"$TMP/range"
cmp "$TMP/b" "$TMP/range" || fail "read of an unaligned range"
"$COWBLK" read disk 1K 1 >"$TMP/one"
[ "$(wc -c <"$TMP/one")" -eq 1 ] || fail "read of one byte"
# --length takes only that much of stdin.
head -c 8192 /dev/urandom >"$TMP/d"
"$COWBLK" write disk 8192 --length 4096 <"$TMP/d"
"$COWBLK" read disk 8192 4096 >"$TMP/got"
head -c 4096 "$TMP/d" | cmp - "$TMP/got" || fail "--length"
# Out of range, and a size that is not one.
expect_exit 2 "$COWBLK" read disk 1M 1
expect_one_error_line
expect_exit 2 sh -c "head -c 100 /dev/zero | '$COWBLK' write disk 1048500"
expect_exit 2 "$COWBLK" read disk 12parsecs
expect_error "OFFSET"
