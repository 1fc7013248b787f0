# cowblk nbd serves NBD_CMD_WRITE_ZEROES as doc/proto.md has it: without
# NO_HOLE the server zeroes (a hole; over never-written sectors of a blank
# volume nothing at all: the COW file's bytes and allocation unchanged on
# disk); with NO_HOLE zeros are written (allocated); fast zero is
# advertised, and a fast zero with NO_HOLE fails ENOTSUP at once, changing
# nothing; unknown or misplaced flags and bad ranges are refused (raw
# sockets: tests/client/nbd_raw.py write-zeroes).
. "$COWBLK_TESTS/support/testlib.sh"
cd "$TMP"
start_server
expect_exit 0 "$COWBLK" volume create disk --size 8M
expect_exit 0 "$COWBLK" nbd disk --socket "$TMP/nbd.sock" --daemon --pid-file "$TMP/gw.pid"
stop_gateway() { stop_pid_file "$TMP/gw.pid"; }
cleanup_hooks="stop_gateway"
disk="nbd+unix:///disk?socket=$TMP/nbd.sock"
cow="$TMP/data/volumes/disk.cow"
on_disk() { printf '%s %s\n' "$(sha256sum <"$cow")" "$(stat -c %b "$cow")"; }

expect_exit 0 nbdinfo --json "$disk"
[ "$(json 'j["exports"][0]["can_fast_zero"]')" = True ] || fail "no fast zero: $(cat "$TMP/out")"

# The first MiB written (the rules below zero parts of it), then flushed.
expect_exit 0 qemu-io -f raw -c "write -P 0x5a 0 1m" -c flush "$disk"
before=$(on_disk)
# Never-written sectors of a blank volume zeroed (qemu-io's -u: no NO_HOLE),
# and trimmed: nothing changes on disk, they read as zeros.
expect_exit 0 qemu-io -f raw -c "write -z -u 2m 2m" -c "discard 5m 1m" -c "write -z -u 7m 512" \
  -c flush -c "read -P 0 2m 4m" "$disk"
[ "$(on_disk)" = "$before" ] || fail "zeroing never-written sectors changed the COW file"

# The protocol's rules, raw.
expect_exit 0 python3 "$COWBLK_TESTS/client/nbd_raw.py" write-zeroes "$TMP/nbd.sock" disk 8388608
expect_output ok

# NO_HOLE (qemu-io's -z without -u): zeros written, so the range is
# allocated on the server: its blocks grow by the MiB.
blocks=$(stat -c %b "$cow")
expect_exit 0 qemu-io -f raw -c "write -z 6m 1m" -c flush -c "read -P 0 6m 1m" "$disk"
[ $(($(stat -c %b "$cow") - blocks)) -ge 2048 ] ||
  fail "NO_HOLE did not allocate: $blocks -> $(stat -c %b "$cow") blocks"
# Without it, written data is punched: the blocks shrink again.
expect_exit 0 qemu-io -f raw -c "write -z -u 6m 1m" -c flush -c "read -P 0 6m 1m" "$disk"
[ $((blocks + 2048 - $(stat -c %b "$cow"))) -ge 1024 ] ||
  fail "zeroing without NO_HOLE did not punch: $(stat -c %b "$cow") blocks"
expect_exit 0 qemu-io -f raw -c "read -P 0x5a 16k 48k" -c "read -P 0x5a 72k 900k" "$disk"

stop_gateway
