# rebase -u re-accepts a backing file whose mtime changed (a copy without
# times) and records a moved one, rewriting the header's path and mtime
# only: check passes again, and every byte past the header is as it was.
. "$COWBLK_TESTS/support/testlib.sh"
stderr_in_out
make_volume
printf 'written' | dd of="$TMP/vol.cow" bs=1 seek=12288 conv=notrunc status=none
printf '\001' | dd of="$TMP/vol.cow" bs=1 seek=8192 conv=notrunc status=none
tail -c +4129 "$TMP/vol.cow" >"$TMP/body.before"
expect_exit 0 "$IMG" commit "$TMP/vol.cow" "$TMP/merged.before"
cp "$TMP/base.img" "$TMP/copy.img"
mv "$TMP/copy.img" "$TMP/base.img"
touch -d 2001-01-01 "$TMP/base.img"
expect_exit 1 "$IMG" check "$TMP/vol.cow"
expect_output "mtime mismatch"
expect_exit 2 "$IMG" rebase "$TMP/vol.cow"
expect_output "--unsafe is required"
expect_exit 0 "$IMG" rebase -u "$TMP/vol.cow"
expect_output "Rebased $TMP/vol.cow onto $TMP/base.img (mtime 978307200, was $TMP/base.img at "
expect_exit 0 "$IMG" check "$TMP/vol.cow"
tail -c +4129 "$TMP/vol.cow" | cmp -s - "$TMP/body.before" || fail "rebase changed more than the header"
# A moved backing file, named relative to the working directory.
mv "$TMP/base.img" "$TMP/moved.img"
expect_exit 1 "$IMG" check "$TMP/vol.cow"
expect_output "backing file $TMP/base.img: No such file or directory"
img=$(cd "$(dirname "$IMG")" && pwd)/cowblk-img
(cd "$TMP" && "$img" rebase -u -b moved.img --json vol.cow) >"$TMP/out" || fail "rebase -b"
[ "$(json 'j["backing_file"]')" = "$TMP/moved.img" ] || fail "recorded $(json 'j["backing_file"]')"
[ "$(json 'j["old_backing_file"]')" = "$TMP/base.img" ] || fail "old backing"
expect_exit 0 "$IMG" info --json "$TMP/vol.cow"
[ "$(json 'j["backing_file"], j["backing_ok"]')" = "('$TMP/moved.img', True)" ] || fail "info"
expect_exit 0 "$IMG" commit "$TMP/vol.cow" "$TMP/merged.after"
cmp -s "$TMP/merged.before" "$TMP/merged.after" || fail "the merged content changed"
tail -c +4129 "$TMP/vol.cow" | cmp -s - "$TMP/body.before" || fail "rebase -b changed more than the header"
