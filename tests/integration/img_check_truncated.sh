# A COW file cut short: allocated sectors past the end are reported; a file
# too short to hold its bitmap is refused outright.
. "$COWBLK_TESTS/support/testlib.sh"
stderr_in_out
make_truncated_volume
expect_exit 1 "$IMG" check "$TMP/vol.cow"
expect_output "1 allocated sectors lie past the end of the file"
truncate -s 8300 "$TMP/vol.cow"
expect_exit 1 "$IMG" check "$TMP/vol.cow"
expect_output "truncated: 8300 bytes, but the bitmap ends at 8448"
