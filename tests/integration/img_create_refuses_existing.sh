# create never overwrites: an existing file is left byte for byte as it was.
. "$COWBLK_TESTS/support/testlib.sh"
stderr_in_out
make_volume
printf 'precious' >"$TMP/taken.cow"
expect_exit 3 "$IMG" create -b "$TMP/base.img" "$TMP/taken.cow"
expect_output "File exists"
[ "$(cat "$TMP/taken.cow")" = precious ] || fail "create overwrote a file"
expect_exit 3 "$IMG" create -b "$TMP/no-such.img" "$TMP/new.cow"
[ ! -e "$TMP/new.cow" ] || fail "failed create left a file"
expect_exit 1 "$IMG" create --alignment 3000 -b "$TMP/base.img" "$TMP/new.cow"
expect_output "not a power of two"
[ ! -e "$TMP/new.cow" ] || fail "failed create left a file"
