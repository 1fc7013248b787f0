# check --repair extends a COW file cut short (the lost sectors read as
# zeros), after which check finds nothing; a backing file that changed is
# reported and not repaired (only rebase -u re-accepts it): exit 1, the file
# unchanged.
. "$COWBLK_TESTS/support/testlib.sh"
stderr_in_out
make_truncated_volume
expect_exit 1 "$IMG" check "$TMP/vol.cow"
expect_output "1 allocated sectors lie past the end of the file"
expect_exit 0 "$IMG" check --repair "$TMP/vol.cow"
expect_output "Repaired: $TMP/vol.cow: extended from 536576 to 1060864 bytes"
expect_output "No problems were found"
[ "$(stat -c %s "$TMP/vol.cow")" -eq 1060864 ] || fail "length after repair"
expect_exit 0 "$IMG" check --json "$TMP/vol.cow"
[ "$(json 'j["valid"]')" = True ] || fail "check after repair"
expect_exit 0 "$IMG" commit "$TMP/vol.cow" "$TMP/merged"
cmp -s -i $((1048576 - 512)) "$TMP/merged" /dev/zero -n 512 || fail "the lost sector does not read as zeros"
# Refused: the backing file changed.
touch -d 2001-01-01 "$TMP/base.img"
cp "$TMP/vol.cow" "$TMP/vol.orig"
expect_exit 1 "$IMG" check --repair --json "$TMP/vol.cow"
[ "$(json 'j["valid"], j["repaired"]')" = "(False, [])" ] || fail "repaired json"
[ "$(json '"not repaired" in j["problems"][0] and "mtime mismatch" in j["problems"][0]')" = True ] ||
  fail "problems: $(cat "$TMP/out")"
cmp -s "$TMP/vol.cow" "$TMP/vol.orig" || fail "a refused repair changed the file"
expect_exit 2 "$IMG" check --repair --force-share "$TMP/vol.cow"
