# cowblk-bench --verify against NBD exports (nbdkit's memory plugin, on a
# Unix socket, the bench run inside nbdkit --run): written data reads back
# intact through fresh connections; a never-written export, a stale
# generation and another seed fail the check; usage and connection errors
# have their exit statuses.
. "$COWBLK_TESTS/support/testlib.sh"
BENCH="$COWBLK_BIN/cowblk-bench"
command -v nbdkit >/dev/null || fail "nbdkit is not installed (make deps)"
export BENCH

# Write pass (generation 1), then a read pass and random reads on new
# connections; then mixed random I/O with its own prefill.
expect_exit 0 nbdkit -U - memory 16M --run '
  "$BENCH" --target "$uri" --rw write --verify --bs 16k --io-size 16M --iodepth 8 --streams 2 &&
  "$BENCH" --target "$uri" --rw read --verify-only --bs 16k --io-size 16M --iodepth 8 --streams 2 &&
  "$BENCH" --target "$uri" --rw randread --verify-only --bs 4k --io-size 4M --iodepth 16 &&
  "$BENCH" --target "$uri" --rw randrw --verify --bs 4k --io-size 8M --iodepth 16 --streams 2 --json'
expect_output '"verify_errors": 0'
expect_output '"prefill": {'
grep -q '^verify: ' "$TMP/err" && fail "verify lines on intact data"

# A fresh export holds zeros: --verify-only must find every sector bad.
expect_exit 3 nbdkit -U - memory 1M --run \
  '"$BENCH" --target "$uri" --rw read --verify-only --bs 4k --json'
expect_output '"verify_errors": 2048'
expect_error "verify: sector at offset 0: all zeros (never written), want generation 1"
[ "$(grep -c '^verify: sector' "$TMP/err")" -eq 10 ] || fail "want the first 10 bad sectors"

# Two sequential passes in one run write generation 2 everywhere: a check for
# generation 1 (a lost second write) fails on every sector; so does a check
# with another seed.
expect_exit 3 nbdkit -U - memory 1M --run '
  "$BENCH" --target "$uri" --rw write --verify --bs 8k --io-size 2M --iodepth 4 &&
  "$BENCH" --target "$uri" --rw read --verify-only --bs 8k --json'
expect_output '"verify_errors": 2048'
expect_error "verify: sector at offset 0: generation 2, want 1"
expect_exit 3 nbdkit -U - memory 1M --run '
  "$BENCH" --target "$uri" --rw write --verify --io-size 1M &&
  "$BENCH" --target "$uri" --rw randread --verify-only --seed 2 --io-size 64k'
expect_error "verify: sector at offset "
expect_error ": seed 1, want 2"

# A sequential lap must write every block even when one answer is slow: the
# first write of block 5 is held 1.5 s (nbdkit's eval plugin, parallel
# threads, over a file) while the other slots go round the slice. The
# generator used to skip the block still in flight when the next lap came to
# it and spend the byte budget on a third write of block 0, so the check
# below found block 5 at generation 1 (2032 bad sectors, not 2048).
export DISK="$TMP/disk"
truncate -s 1M "$DISK"
expect_exit 3 nbdkit -U - eval thread_model='echo parallel' get_size='echo 1048576' \
  can_write='exit 0' \
  pwrite='if [ "$4" = 40960 ] && mkdir "$DISK.held" 2>/dev/null; then sleep 1.5; fi
    dd of="$DISK" bs=512 seek=$(($4 / 512)) conv=notrunc status=none' \
  pread='dd if="$DISK" bs=512 skip=$(($4 / 512)) count=$(($3 / 512)) status=none' \
  --run '"$BENCH" --target "$uri" --rw write --verify --bs 8k --io-size 2M --iodepth 4 &&
    "$BENCH" --target "$uri" --rw read --verify-only --bs 8k --json'
expect_output '"verify_errors": 2048'
expect_error "verify: sector at offset 0: generation 2, want 1"

# Exit statuses: usage 2, cannot connect 4.
expect_exit 2 "$BENCH" --target "nbd+unix:///?socket=$TMP/none" --bs 1000
expect_error "--bs 1000"
expect_exit 2 "$BENCH" --target "nbd+unix:///?socket=$TMP/none" --rw write --verify-only
expect_exit 2 "$BENCH" --target "http://example/x"
expect_exit 2 "$BENCH" --target "nbd+unix:///?socket=$TMP/none" --iodepth 2 --iodepth 3
expect_exit 4 "$BENCH" --target "nbd+unix:///?socket=$TMP/none"
expect_exit 2 nbdkit -U - memory 1M --run '"$BENCH" --target "$uri" --size 2M'
expect_exit 2 nbdkit -U - memory 64k --run '"$BENCH" --target "$uri" --verify --rw randrw --iodepth 32'
expect_error "--verify needs more blocks"
