# cowblk-img's exit status, as docs/cowblk-img.md ("Exit status") and its
# --help list them, for every subcommand: 0 success, 1 the file is invalid,
# 2 bad usage, 3 any other failure.
. "$COWBLK_TESTS/support/testlib.sh"
MANUAL="$COWBLK_TESTS/../docs/cowblk-img.md"
make_volume
cp "$TMP/vol.cow" "$TMP/bad.cow"
printf 'XXXX' | dd of="$TMP/bad.cow" conv=notrunc status=none
: >"$TMP/empty.img"

# The manual's table and the --help footer name the same four codes.
codes=$(sed -n '/^## Exit status/,/^## /p' "$MANUAL" | sed -n 's/^| \([0-9]*\) |.*/\1/p' | tr '\n' ' ')
[ "$codes" = "0 1 2 3 " ] || fail "docs/cowblk-img.md lists exit codes '$codes', want '0 1 2 3 '"
expect_exit 0 "$IMG" --help
expect_output "Exit status: 0 ok (check: no problem found), 1 the file is invalid, 2 bad usage,"
expect_output "3 failed otherwise (missing file, I/O error, file in use). Manual: docs/cowblk-img.md"

for sub in info check map; do
  expect_exit 0 "$IMG" "$sub" "$TMP/vol.cow"
  expect_exit 1 "$IMG" "$sub" "$TMP/bad.cow"
  expect_exit 2 "$IMG" "$sub"
  expect_exit 2 "$IMG" "$sub" --no-such-option "$TMP/vol.cow"
  expect_exit 3 "$IMG" "$sub" "$TMP/missing.cow"
done

expect_exit 0 "$IMG" create -b "$TMP/base.img" "$TMP/new.cow"
expect_exit 1 "$IMG" create -b "$TMP/empty.img" "$TMP/e.cow"
expect_exit 1 "$IMG" create -b "$TMP/base.img" --alignment 3 "$TMP/a.cow"
expect_exit 2 "$IMG" create "$TMP/b.cow"
expect_exit 3 "$IMG" create -b "$TMP/base.img" "$TMP/new.cow"
expect_exit 3 "$IMG" create -b "$TMP/missing.img" "$TMP/m.cow"
# A failed create leaves nothing behind.
for f in e.cow a.cow b.cow m.cow; do [ ! -e "$TMP/$f" ] || fail "$f was left behind"; done

expect_exit 0 "$IMG" commit "$TMP/vol.cow" "$TMP/out.img"
expect_exit 1 "$IMG" commit "$TMP/bad.cow" "$TMP/out2.img"
expect_exit 2 "$IMG" commit "$TMP/vol.cow"
expect_exit 3 "$IMG" commit "$TMP/vol.cow" "$TMP/out.img"
expect_exit 3 "$IMG" commit "$TMP/missing.cow" "$TMP/out3.img"

expect_exit 0 "$IMG" --version
expect_exit 2 "$IMG"
expect_exit 2 "$IMG" frobnicate
