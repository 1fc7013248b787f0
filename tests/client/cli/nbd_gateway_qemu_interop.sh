# qemu through cowblk nbd (issue #21 test 7 and item 5's qcow2 part):
# qemu-io write/read patterns; a sparse qcow2 converted into a blank volume
# allocates about what the qcow2 holds (holes and zeros are sent as fast
# zeros, which cost a blank volume nothing); qemu-img compare finds the
# volume and the qcow2 identical; converted back to a qcow2 it is as small
# as the original and identical to it; qemu-img map and nbdinfo --map
# agree with GetAllocation (`cowblk volume map`).
. "$COWBLK_TESTS/support/testlib.sh"
cd "$TMP"
start_server
expect_exit 0 "$COWBLK" volume create vol --size 64M
expect_exit 0 "$COWBLK" nbd vol --socket "$TMP/nbd.sock" --daemon --pid-file "$TMP/gw.pid"
stop_gateway() { stop_pid_file "$TMP/gw.pid"; }
cleanup_hooks="stop_gateway"
uri="nbd+unix:///vol?socket=$TMP/nbd.sock"

# A sparse qcow2: 3.5 MiB of data in 64 MiB, one cluster of explicit zeros.
expect_exit 0 qemu-img create -q -f qcow2 src.qcow2 64M
expect_exit 0 qemu-io -f qcow2 -c "write -P 0xab 1m 2m" -c "write -P 0xcd 40m 512k" \
  -c "write -P 0xef 63m 1m" -c "write -z 50m 1m" src.qcow2

# qcow2 -> volume, through the gateway.
expect_exit 0 qemu-img convert -n -f qcow2 -O raw src.qcow2 "$uri"
# What the volume allocates: the data (3.5 MiB), not the 64 MiB.
expect_exit 0 "$COWBLK" --json volume map vol
allocated=$(json 'sum(r["length"] for r in j if r["allocated"])')
[ "$allocated" -ge $((3584 * 1024)) ] && [ "$allocated" -le $((4 * 1048576)) ] ||
  fail "the volume allocates $allocated bytes for 3.5 MiB of data"
cow_kib=$(allocated_kib "$TMP/data/volumes/vol.cow")
echo "qcow2 -> volume: $allocated bytes allocated, COW file $cow_kib KiB on disk"
[ "$cow_kib" -le 4608 ] || fail "the COW file takes $cow_kib KiB on disk"
# The patterns, read through the gateway; the rest zeros.
expect_exit 0 qemu-io -f raw -c "read -P 0xab 1m 2m" -c "read -P 0xcd 40m 512k" \
  -c "read -P 0xef 63m 1m" -c "read -P 0 0 1m" -c "read -P 0 3m 37m" -c "read -P 0 50m 1m" "$uri"
expect_exit 0 qemu-img compare -f qcow2 -F raw src.qcow2 "$uri"

# qemu-io patterns of its own, unaligned to the MiB, across the data.
expect_exit 0 qemu-io -f raw -c "write -P 0x11 4k 12k" -c "write -P 0x22 3141632 8k" \
  -c "aio_write -P 0x33 20m 64k" -c "aio_flush" -c "read -P 0x11 4k 12k" \
  -c "read -P 0xab 1m 2093056" -c "read -P 0x22 3141632 8k" -c "read -P 0 3149824 4k" \
  -c "read -P 0x33 20m 64k" "$uri"
expect_exit 0 qemu-io -f qcow2 -c "write -P 0x11 4k 12k" -c "write -P 0x22 3141632 8k" \
  -c "write -P 0x33 20m 64k" src.qcow2

# volume -> qcow2, through the gateway: identical, and about as small.
expect_exit 0 qemu-img convert -f raw -O qcow2 "$uri" back.qcow2
expect_exit 0 qemu-img compare -f qcow2 -F qcow2 src.qcow2 back.qcow2
expect_exit 0 qemu-img info --output=json back.qcow2
back=$(json 'j["actual-size"]')
expect_exit 0 qemu-img info --output=json src.qcow2
src=$(json 'j["actual-size"]')
echo "volume -> qcow2: $back bytes on disk (the source qcow2: $src)"
[ "$back" -le $((src + 1048576)) ] || fail "back.qcow2 takes $back bytes, src.qcow2 $src"
expect_exit 0 qemu-img map --output=json -f qcow2 back.qcow2
data=$(json 'sum(e["length"] for e in j if e["data"])')
[ "$data" -le $((4 * 1048576)) ] || fail "back.qcow2 maps $data bytes of data"

# qemu-img map and nbdinfo --map through the gateway == GetAllocation.
expect_exit 0 "$COWBLK" --json volume map vol
cp "$TMP/out" cowblk.json
expect_exit 0 qemu-img map --output=json -f raw "$uri"
cp "$TMP/out" qemu.json
expect_exit 0 nbdinfo --map --json "$uri"
cp "$TMP/out" nbdinfo.json
python3 - cowblk.json qemu.json nbdinfo.json <<'END' || fail "the maps disagree"
import json, sys
def merged(ranges):
    out = []
    for start, length, data in ranges:
        if out and out[-1][2] == data and out[-1][0] + out[-1][1] == start:
            out[-1][1] += length
        elif length:
            out.append([start, length, data])
    return out
c = merged((e["start"], e["length"], e["allocated"]) for e in json.load(open(sys.argv[1])))
q = merged((e["start"], e["length"], e["data"]) for e in json.load(open(sys.argv[2])))
n = merged((e["offset"], e["length"], e["type"] == 0) for e in json.load(open(sys.argv[3])))
print("cowblk:  ", c, "\nqemu-img:", q, "\nnbdinfo: ", n)
sys.exit(0 if c == q == n and len(c) > 4 else 1)
END

stop_gateway
