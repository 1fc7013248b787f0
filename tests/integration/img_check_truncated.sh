# A COW file cut short: allocated sectors past the end are reported; a file
# too short to hold its bitmap is refused outright.
. "$COWBLK_TESTS/support/testlib.sh"
stderr_in_out
make_volume
# Mark the last sector allocated (bitmap at 8192, 2048 sectors: byte 255 bit 7),
# then cut the data area in half.
printf '\200' | dd of="$TMP/vol.cow" bs=1 seek=$((8192 + 255)) conv=notrunc status=none
truncate -s $((12288 + 524288)) "$TMP/vol.cow"
expect_exit 1 "$IMG" check "$TMP/vol.cow"
expect_output "1 allocated sectors lie past the end of the file"
truncate -s 8300 "$TMP/vol.cow"
expect_exit 1 "$IMG" check "$TMP/vol.cow"
expect_output "truncated: 8300 bytes, but the bitmap ends at 8448"
