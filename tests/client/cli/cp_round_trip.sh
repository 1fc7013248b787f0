# cp file -> volume -> file gives the same bytes, and holes stay holes: the
# copy back takes no more disk than the original.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
truncate -s 32M "$TMP/in"
head -c 1048576 /dev/urandom | dd of="$TMP/in" bs=1M seek=3 conv=notrunc status=none
head -c 300000 /dev/urandom | dd of="$TMP/in" bs=4096 seek=5000 conv=notrunc status=none
printf 'tail' | dd of="$TMP/in" bs=1 seek=$((32 * 1048576 - 4)) conv=notrunc status=none

expect_exit 0 "$COWBLK" cp "$TMP/in" vol:disk --create
expect_output "copied 32 MiB"
expect_exit 0 "$COWBLK" cp vol:disk "$TMP/back"
cmp "$TMP/in" "$TMP/back" || fail "the copy back differs"
[ "$(allocated_kib "$TMP/back")" -le "$(allocated_kib "$TMP/in")" ] ||
  fail "holes were filled: $(allocated_kib "$TMP/back") KiB > $(allocated_kib "$TMP/in") KiB"
# Only the data went into the volume's COW file.
expect_exit 0 "$COWBLK" --json volume info disk
[ "$(json 'j["allocated_bytes"] < 2 * 1048576')" = True ] || fail "allocated too much"
