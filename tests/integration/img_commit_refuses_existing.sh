# commit never overwrites the target image.
. "$COWBLK_TESTS/support/testlib.sh"
stderr_in_out
make_volume
printf 'keep' >"$TMP/merged.img"
expect_exit 3 "$IMG" commit "$TMP/vol.cow" "$TMP/merged.img"
[ "$(cat "$TMP/merged.img")" = keep ] || fail "commit overwrote the image"
expect_exit 0 "$IMG" commit "$TMP/vol.cow" "$TMP/fresh.img"
cmp "$TMP/base.img" "$TMP/fresh.img" || fail "commit of an empty COW differs from its backing"
