# An image of any size (not a multiple of 512) uploads from a file or stdin
# and downloads back to the same bytes, zeros as holes; the temporary volume
# of the download is gone afterwards.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
head -c 1000000 /dev/urandom >"$TMP/img"
truncate -s 9000000 "$TMP/img"
expect_exit 0 "$COWBLK" image upload "$TMP/img" disk-image
expect_output "uploaded image disk-image"
expect_exit 0 sh -c "'$COWBLK' image upload - piped <'$TMP/img'"
expect_exit 0 "$COWBLK" image ls
expect_output "disk-image"
expect_output "piped"
expect_exit 0 "$COWBLK" image download piped "$TMP/back"
cmp "$TMP/img" "$TMP/back" || fail "download differs"
[ "$(allocated_kib "$TMP/back")" -lt 2000 ] || fail "the download's zeros are not holes"
"$COWBLK" image download disk-image - | cmp - "$TMP/img" || fail "download to stdout differs"
expect_exit 0 "$COWBLK" --json volume ls
[ "$(json 'j')" = "[]" ] || fail "a temporary volume was left: $(cat "$TMP/out")"
expect_exit 0 "$COWBLK" image rm piped disk-image
expect_exit 4 "$COWBLK" image download piped "$TMP/x"
expect_one_error_line
