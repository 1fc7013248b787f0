# cowblk-img check: 0 for a valid file, 1 for an invalid one, 2 for a usage
# error, 3 when the file cannot be read at all.
. "$COWBLK_TESTS/support/testlib.sh"
stderr_in_out
make_volume
expect_exit 0 "$IMG" check "$TMP/vol.cow"
expect_output "No problems were found"

cp "$TMP/vol.cow" "$TMP/bad.cow"
printf 'XXXX' | dd of="$TMP/bad.cow" conv=notrunc status=none
expect_exit 1 "$IMG" check "$TMP/bad.cow"
expect_output "bad magic"

expect_exit 3 "$IMG" check "$TMP/missing.cow"
expect_output "No such file or directory"

expect_exit 2 "$IMG" check
expect_exit 2 "$IMG" frobnicate "$TMP/vol.cow"
