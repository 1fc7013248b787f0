# cowblk-bench --verify against a real cowblkd: a write pass and a read pass
# agree; one sector corrupted through the data path, one misdirected, and one
# flipped on disk in the COW file are each reported by their exact offset,
# with exit status 3.
. "$COWBLK_TESTS/support/testlib.sh"
BENCH="$COWBLK_BIN/cowblk-bench"
IMG="$COWBLK_BIN/cowblk-img"
start_server
expect_exit 0 "$COWBLK" volume create vol --size 4M
target() { echo "cowblk://$COWBLK_SERVER/vol"; }
write_pass() {
  expect_exit 0 "$BENCH" --target "$(target)" --rw write --verify --bs 64k --io-size 4M \
    --iodepth 4 --streams 2
}
read_pass() {  # read_pass CODE: one ordered pass over the volume
  expect_exit "$1" "$BENCH" --target "$(target)" --rw read --verify-only --bs 64k --io-size 4M \
    --iodepth 4 --streams 2 --json
}
# bad_sectors: the verify lines of the last command
bad_sectors() { grep '^verify: sector at offset ' "$TMP/err" || true; }

# Clean: generation 1 everywhere, every sector checked.
write_pass
read_pass 0
[ "$(json 'j["verified_sectors"]')" -eq 8192 ] || fail "not every sector was checked"
[ "$(json 'j["verify_errors"]')" -eq 0 ] || fail "verify errors on a clean volume"
[ "$(json 'j["write"]["ops"]')" -eq 0 ] || fail "--verify-only wrote"
# Random reads check too (a bounded run).
expect_exit 0 "$BENCH" --target "$(target)" --rw randread --verify-only --bs 4k --io-size 1M \
  --iodepth 8

# (a) Garbage written through the data path, one sector at 1 MiB + 512.
head -c 512 /dev/urandom | "$COWBLK" write vol 1049088
read_pass 3
[ "$(bad_sectors)" = "verify: sector at offset 1049088: bad magic (not written by cowblk-bench --verify)" ] ||
  { cat "$TMP/err" >&2; fail "want exactly the sector at 1049088"; }
[ "$(json 'j["verify_errors"]')" -eq 1 ] || fail "verify_errors"
write_pass
read_pass 0

# A misdirected write: the sector of offset 0 copied to 3 MiB.
"$COWBLK" read vol 0 512 >"$TMP/sector0"
"$COWBLK" write vol 3145728 <"$TMP/sector0"
read_pass 3
[ "$(bad_sectors)" = "verify: sector at offset 3145728: offset field says 0 (want 3145728)" ] ||
  { cat "$TMP/err" >&2; fail "want the misdirected sector"; }
write_pass
read_pass 0

# (b) One byte flipped in the COW file on disk, in the fill of the sector at
# 2 MiB + 1536, while cowblkd is stopped.
stop_server
cow="$TMP/data/volumes/vol.cow"
"$IMG" --json info "$cow" >"$TMP/out"
data_offset=$(json 'j["data_offset"]')
pos=$((data_offset + 2098688 + 100))
old=$(dd if="$cow" bs=1 skip="$pos" count=1 status=none | od -An -tu1 | tr -d ' ')
new=$(( (old + 1) % 256 ))
printf "\\$(printf %o "$new")" | dd of="$cow" bs=1 seek="$pos" conv=notrunc status=none
[ "$(dd if="$cow" bs=1 skip="$pos" count=1 status=none | od -An -tu1 | tr -d ' ')" -eq "$new" ] ||
  fail "the byte was not changed"
start_server
read_pass 3
[ "$(bad_sectors)" = "verify: sector at offset 2098688: bad checksum" ] ||
  { cat "$TMP/err" >&2; fail "want exactly the sector at 2098688"; }
# The summary names the count; the JSON has it too.
expect_error "cowblk-bench: verify: 1 bad sector"
[ "$(json 'j["exit_code"]')" -eq 3 ] || fail "exit_code in the JSON"
