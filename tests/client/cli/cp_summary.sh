# cp's summary line says the elapsed time and the rate, and counts the
# source's bytes: data and zeros add up to the size, also when the last
# sector is padded (a 3-byte file into a volume is one 512-byte write).
. "$COWBLK_TESTS/support/testlib.sh"
start_server
printf 'abc' >"$TMP/three"
expect_exit 0 "$COWBLK" cp "$TMP/three" vol:small --create
expect_output "copied 3 B (3 B data, 0 B zeros) from $TMP/three to vol:small in "
grep -Eq '^copied .* in [0-9]+\.[0-9]{2} s \([0-9.]+ (B|KiB|MiB|GiB|TiB)/s\)$' "$TMP/out" ||
  { cat "$TMP/out" >&2; fail "no elapsed time and rate"; }

# 1000 bytes: 600 of data, then 400 zeros; the volume's 24 padding bytes
# are not counted.
head -c 600 /dev/urandom >"$TMP/odd"
head -c 400 /dev/zero >>"$TMP/odd"
expect_exit 0 "$COWBLK" --json cp "$TMP/odd" vol:odd --create
[ "$(json 'j["bytes"], j["data_bytes"] + j["zero_bytes"]')" = "(1000, 1000)" ] ||
  fail "cp --json counts more than the source: $(cat "$TMP/out")"
[ "$(json 'j["data_bytes"] <= 1000 and j["seconds"] > 0 and j["bytes_per_second"] > 0')" = True ] ||
  fail "cp --json: $(cat "$TMP/out")"

# Volume to file: the volume's size (1024), all of it counted once.
expect_exit 0 "$COWBLK" --json cp vol:odd "$TMP/back"
[ "$(json 'j["bytes"], j["data_bytes"] + j["zero_bytes"]')" = "(1024, 1024)" ] ||
  fail "cp --json volume to file: $(cat "$TMP/out")"
head -c 1000 "$TMP/back" | cmp - "$TMP/odd" || fail "the copy differs"
