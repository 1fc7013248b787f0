# cowblk volume map: the allocation map of known written ranges, exactly,
# with the image or zeros under the rest; past the server's page of 10000
# ranges it is the COW file's own bitmap (cowblk-img map). cowblk du: each
# volume's allocated bytes (the map's sum), images, totals.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
expect_exit 0 "$COWBLK" volume create blank --size 4M
printf 'hello' | "$COWBLK" write blank 1000
head -c 8192 /dev/urandom | "$COWBLK" write blank 3M
expect_exit 0 "$COWBLK" --json volume map blank
[ "$(json '[(r["start"], r["length"], r["allocated"], r["source"]) for r in j]')" = \
  "[(0, 512, False, 'zeros'), (512, 512, True, 'volume'), (1024, 3144704, False, 'zeros'), (3145728, 8192, True, 'volume'), (3153920, 1040384, False, 'zeros')]" ] ||
  fail "volume map blank: $(cat "$TMP/out")"
expect_exit 0 "$COWBLK" --json volume map blank --offset 3M --length 4096
[ "$(json '[(r["start"], r["length"], r["allocated"]) for r in j]')" = "[(3145728, 4096, True)]" ] ||
  fail "volume map --offset --length: $(cat "$TMP/out")"

head -c 2097152 /dev/urandom >"$TMP/base.img"
expect_exit 0 "$COWBLK" image upload "$TMP/base.img" base
expect_exit 0 "$COWBLK" volume create layered --image base
printf 'x' | "$COWBLK" write layered 0
expect_exit 0 "$COWBLK" volume map layered
expect_output "0x0     0x200     volume"
expect_output "0x200   0x1ffe00  image base"

# du: volumes in name order, then images, then the totals.
expect_exit 0 "$COWBLK" --json du
[ "$(json '[(v["name"], v["size_bytes"], v["allocated_bytes"]) for v in j["volumes"]]')" = \
  "[('blank', 4194304, 8704), ('layered', 2097152, 512)]" ] || fail "du volumes: $(cat "$TMP/out")"
[ "$(json '[(i["name"], i["size_bytes"], i["volume_count"]) for i in j["images"]]')" = \
  "[('base', 2097152, 1)]" ] || fail "du images: $(cat "$TMP/out")"
[ "$(json 'j["total"]["size_bytes"], j["total"]["allocated_bytes"]')" = \
  "(8388608, 2106368)" ] || fail "du total: $(cat "$TMP/out")"
expect_exit 0 "$COWBLK" du layered
expect_output "layered  volume  2 MiB  512 B"
expect_output "base     image   2 MiB  2 MiB"
expect_output "total            4 MiB  2.0 MiB"
expect_exit 4 "$COWBLK" du nope
expect_one_error_line
expect_exit 4 "$COWBLK" volume map nope
expect_one_error_line

# 40008 alternating sectors: more than 10000 ranges, several pages. The bits
# are set in the COW file while the server is stopped.
expect_exit 0 "$COWBLK" volume create frag --size 20M
stop_server
COW="$TMP/data/volumes/frag.cow"
bitmap=$("$IMG" --json info "$COW" | python3 -c 'import json, sys; print(json.load(sys.stdin)["bitmap_offset"])')
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); f.write(b"\x55" * 5001)' \
  "$COW" "$bitmap"
start_server
"$IMG" --json map -U "$COW" |
  python3 -c 'import json, sys; print([(r["start"], r["length"], r["allocated"]) for r in json.load(sys.stdin)])' \
  >"$TMP/want"
expect_exit 0 "$COWBLK" --json volume map frag
json '[(r["start"], r["length"], r["allocated"]) for r in j]' >"$TMP/got"
cmp -s "$TMP/want" "$TMP/got" || fail "volume map frag differs from the COW file's bitmap"
[ "$(json 'len(j)')" -gt 10000 ] || fail "volume map frag: only $(json 'len(j)') ranges"
[ "$(json 'sum(r["length"] for r in j if r["allocated"])')" = 10242048 ] ||
  fail "volume map frag: allocated bytes"
expect_exit 0 "$COWBLK" --json du frag
[ "$(json 'j["volumes"][0]["allocated_bytes"]')" = 10242048 ] || fail "du frag: $(cat "$TMP/out")"
