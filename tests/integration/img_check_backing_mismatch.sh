# A touched backing image invalidates the COW file: check reports the mtime
# mismatch with both values, as UML does; info still describes the file.
. "$COWBLK_TESTS/support/testlib.sh"
stderr_in_out
make_volume
stored=$("$IMG" info --json "$TMP/vol.cow" | sed -n 's/.*"mtime": \([0-9]*\).*/\1/p')
touch -d @1000000000 "$TMP/base.img"
expect_exit 1 "$IMG" check --json "$TMP/vol.cow"
expect_output '"valid": false'
expect_output "mtime mismatch ($stored vs 1000000000)"
expect_exit 0 "$IMG" info "$TMP/vol.cow"
expect_output "mtime mismatch"
# The refused file can still not be committed, and nothing is created.
expect_exit 3 "$IMG" commit "$TMP/vol.cow" "$TMP/merged.img"
[ ! -e "$TMP/merged.img" ] || fail "commit left an image behind"
