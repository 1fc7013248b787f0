# A COW file whose backing image is gone: info works and says so, check fails.
. "$COWBLK_TESTS/support/testlib.sh"
stderr_in_out
make_volume
rm "$TMP/base.img"
expect_exit 0 "$IMG" info "$TMP/vol.cow"
expect_output "No such file or directory"
expect_exit 1 "$IMG" check "$TMP/vol.cow"
expect_output "backing file $TMP/base.img: No such file or directory"
