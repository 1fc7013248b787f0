# cp copies a volume to another volume, and a volume over an image to a file.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
head -c 3145728 /dev/urandom >"$TMP/base"
expect_exit 0 "$COWBLK" image upload "$TMP/base" base
expect_exit 0 "$COWBLK" volume create child --image base
printf 'patched' | "$COWBLK" write child 4096
expect_exit 0 "$COWBLK" cp vol:child vol:copy --create
expect_exit 0 "$COWBLK" cp vol:copy "$TMP/out.bin"
cp "$TMP/base" "$TMP/want"
printf 'patched' | dd of="$TMP/want" bs=1 seek=4096 conv=notrunc status=none
cmp "$TMP/want" "$TMP/out.bin" || fail "the copy differs"
