# cowblk nbd answers block status for base:allocation from GetAllocation:
# through the gateway, nbdinfo --map shows exactly the ranges written as
# data and the rest of a blank volume as hole,zero, qemu-img map agrees
# with `cowblk volume map`, and over an image the unwritten rest is the
# image's: its data data, its holes holes (GetAllocation's `zeros`); raw
# sockets check the protocol's rules (EINVAL past the end and without the
# context, REQ_ONE).
. "$COWBLK_TESTS/support/testlib.sh"
cd "$TMP"
start_server
expect_exit 0 "$COWBLK" volume create disk --size 8M
head -c 1048576 /dev/urandom >base.bin
expect_exit 0 "$COWBLK" image upload base.bin base
expect_exit 0 "$COWBLK" volume create over --image base
# An image with a hole: 1 MiB of data, 2 MiB of zeros (the upload keeps
# them a hole), 1 MiB of data.
{ head -c 1048576 /dev/urandom; head -c 2097152 /dev/zero; head -c 1048576 /dev/urandom; } >holes.bin
expect_exit 0 "$COWBLK" image upload holes.bin holes
expect_exit 0 "$COWBLK" volume create sparse --image holes

expect_exit 0 "$COWBLK" nbd disk over sparse --socket "$TMP/nbd.sock" --daemon --pid-file "$TMP/gw.pid"
stop_gateway() { stop_pid_file "$TMP/gw.pid"; }
cleanup_hooks="stop_gateway"
disk="nbd+unix:///disk?socket=$TMP/nbd.sock"
over="nbd+unix:///over?socket=$TMP/nbd.sock"

# The protocol's rules, on raw sockets (nothing written yet).
expect_exit 0 python3 "$COWBLK_TESTS/client/nbd_raw.py" block-status "$TMP/nbd.sock" disk 8388608
expect_output ok

# Written through the gateway: 128 KiB at 64 KiB, 1 KiB at 3 MiB + 512
# (the map's grain is the sector), the last MiB.
expect_exit 0 qemu-io -f raw -c "write -P 0x55 64k 128k" -c "write -P 0x66 3146240 1024" \
  -c "write -P 0x77 7m 1m" "$disk"
expect_exit 0 nbdinfo --map "$disk"
awk '{print $1, $2, $4}' "$TMP/out" >map.txt
cat >want.txt <<'END'
0 65536 hole,zero
65536 131072 data
196608 2949632 hole,zero
3146240 1024 data
3147264 4192768 hole,zero
7340032 1048576 data
END
diff want.txt map.txt || fail "nbdinfo --map through the gateway: $(cat map.txt)"

# qemu-img map == cowblk volume map (GetAllocation), ranges merged.
expect_exit 0 qemu-img map --output=json -f raw "$disk"
cp "$TMP/out" qemu.json
expect_exit 0 "$COWBLK" --json volume map disk
cp "$TMP/out" cowblk.json
python3 - qemu.json cowblk.json <<'END' || fail "qemu-img map and cowblk volume map disagree"
import json, sys
def merged(ranges):
    out = []
    for start, length, data in ranges:
        if out and out[-1][2] == data and out[-1][0] + out[-1][1] == start:
            out[-1][1] += length
        else:
            out.append([start, length, data])
    return out
q = merged((e["start"], e["length"], e["data"]) for e in json.load(open(sys.argv[1])))
c = merged((e["start"], e["length"], e["allocated"]) for e in json.load(open(sys.argv[2])))
print("qemu-img:", q, "\ncowblk:  ", c)
sys.exit(0 if q == c and len(c) == 6 else 1)
END

# Over an image: a write, and the image's bytes around it, all data.
expect_exit 0 qemu-io -f raw -c "write -P 0x55 512k 64k" "$over"
expect_exit 0 nbdinfo --map "$over"
[ "$(awk '{print $1, $2, $4}' "$TMP/out")" = "0 1048576 data" ] ||
  fail "over an image: $(cat "$TMP/out")"

# Over an image with a hole: the hole is a hole, around a write into it.
sparse="nbd+unix:///sparse?socket=$TMP/nbd.sock"
expect_exit 0 qemu-io -f raw -c "write -P 0x55 2m 64k" "$sparse"
expect_exit 0 nbdinfo --map "$sparse"
awk '{print $1, $2, $4}' "$TMP/out" >map.txt
cat >want.txt <<'END'
0 1048576 data
1048576 1048576 hole,zero
2097152 65536 data
2162688 983040 hole,zero
3145728 1048576 data
END
diff want.txt map.txt || fail "over an image with a hole: $(cat map.txt)"
# qemu-img convert through the gateway copies the holes as holes.
expect_exit 0 qemu-img convert -O raw "$sparse" copy.raw
[ "$(allocated_kib copy.raw)" -le 2200 ] || fail "the copy allocates $(allocated_kib copy.raw) KiB"
python3 -c 'import sys; b = bytearray(open("holes.bin", "rb").read()); b[2 << 20:(2 << 20) + 65536] = b"\x55" * 65536; sys.exit(bytes(b) != open("copy.raw", "rb").read())' ||
  fail "the copy differs from the volume"

# Stopped while the server runs (its flush then has somewhere to go).
stop_gateway
