# snapshot create|ls|info|rm: a snapshot holds the volume as it was at the
# call (later writes stay out of it), a volume made from it reads that, it
# is listed with its source volume (all, or by volume) and survives a
# restart; deleting it while a volume uses it hides it at once and removes
# its image with that volume; a second delete is NOT_FOUND; bad names and
# taken names change nothing.
. "$COWBLK_TESTS/support/testlib.sh"
SERVER_DATA=$TMP/data
start_server
head -c 2097152 /dev/urandom >"$TMP/img"
expect_exit 0 "$COWBLK" image upload "$TMP/img" base
expect_exit 0 "$COWBLK" volume create src --image base
expect_exit 0 "$COWBLK" volume create other --size 1M
head -c 4096 /dev/urandom >"$TMP/a"
"$COWBLK" write src 0 <"$TMP/a"
"$COWBLK" write src 1048576 <"$TMP/a"

expect_exit 0 "$COWBLK" snapshot create src snap1
expect_output "created snapshot snap1 of volume src (2 MiB)"
# Later writes to the source stay out of the snapshot.
head -c 4096 /dev/urandom >"$TMP/b"
"$COWBLK" write src 0 <"$TMP/b"
expect_exit 0 "$COWBLK" snapshot create other osnap

expect_exit 0 "$COWBLK" --json snapshot ls
[ "$(json '[(s["name"], s["source_volume"], s["size_bytes"], s["volume_count"]) for s in j]')" = \
  "[('osnap', 'other', 1048576, 0), ('snap1', 'src', 2097152, 0)]" ] || fail "ls: $(cat "$TMP/out")"
expect_exit 0 "$COWBLK" --json snapshot ls src
[ "$(json '[s["name"] for s in j]')" = "['snap1']" ] || fail "ls src: $(cat "$TMP/out")"
expect_exit 0 "$COWBLK" snapshot ls
expect_output "snap1"
expect_exit 0 "$COWBLK" --json snapshot info snap1
now=$(date +%s)
[ "$(json 'abs(j["created_unix_nanos"] // 10**9 - '"$now"') < 3600')" = "True" ] ||
  fail "creation time: $(cat "$TMP/out")"

# A volume from the snapshot reads the source as it was at the snapshot.
expect_exit 0 "$COWBLK" volume create restored --image snap1
cp "$TMP/img" "$TMP/want"
dd if="$TMP/a" of="$TMP/want" bs=4096 seek=0 conv=notrunc status=none
dd if="$TMP/a" of="$TMP/want" bs=4096 seek=256 conv=notrunc status=none
"$COWBLK" read restored 0 >"$TMP/restored"
cmp "$TMP/want" "$TMP/restored" || fail "the snapshot is not the source at its moment"
"$COWBLK" read src 0 4096 >"$TMP/src0"
cmp "$TMP/b" "$TMP/src0" || fail "the source lost its later write"

# Refusals change nothing.
before=$(ls -a "$SERVER_DATA/images" "$SERVER_DATA/volumes")
expect_exit 5 "$COWBLK" snapshot create src snap1
expect_error "ALREADY_EXISTS"
expect_exit 5 "$COWBLK" snapshot create src base
expect_error "ALREADY_EXISTS"
expect_exit 4 "$COWBLK" snapshot create nosuch snap2
expect_error "NOT_FOUND"
expect_exit 2 "$COWBLK" snapshot create src "Bad/Name"
expect_error "INVALID_ARGUMENT"
expect_exit 2 "$COWBLK" snapshot create src ".hidden"
expect_error "INVALID_ARGUMENT"
expect_exit 2 "$COWBLK" snapshot rm "../images/base"
expect_error "INVALID_ARGUMENT"
expect_exit 4 "$COWBLK" snapshot rm base
expect_error "NOT_FOUND"
[ "$(ls -a "$SERVER_DATA/images" "$SERVER_DATA/volumes")" = "$before" ] ||
  fail "a refused call changed files"

# A restart keeps snapshots and their records; it removes a record whose
# image is missing (a crash in CreateSnapshot) and a deleted snapshot's
# image no volume uses (a crash before the reap).
stop_server
printf 'cowblk-snapshot 1\nsource src\ncreated_unix_nanos 1\n' >"$SERVER_DATA/images/ghost.snapshot"
cp "$TMP/img" "$SERVER_DATA/images/old.img"
printf 'cowblk-snapshot 1\nsource src\ncreated_unix_nanos 1\n' >"$SERVER_DATA/images/old.snapshot-deleted"
start_server
[ ! -e "$SERVER_DATA/images/ghost.snapshot" ] || fail "a record without its image stayed"
[ ! -e "$SERVER_DATA/images/old.img" ] && [ ! -e "$SERVER_DATA/images/old.snapshot-deleted" ] ||
  fail "an unused deleted snapshot stayed"
grep -q "orphan_snapshot_record_removed" "$TMP/server.log" || fail "no orphan_snapshot_record_removed"
expect_exit 0 "$COWBLK" --json snapshot info snap1
[ "$(json 'j["source_volume"], j["volume_count"]')" = "('src', 1)" ] || fail "after restart: $(cat "$TMP/out")"

# Deleted while a volume uses it: gone from the API at once, its name
# still taken, its image removed with the last volume over it.
expect_exit 0 "$COWBLK" snapshot rm snap1
expect_output "deleted snapshot snap1"
expect_exit 4 "$COWBLK" snapshot rm snap1
expect_error "NOT_FOUND"
expect_exit 4 "$COWBLK" snapshot info snap1
expect_exit 0 "$COWBLK" --json snapshot ls
[ "$(json '[s["name"] for s in j]')" = "['osnap']" ] || fail "ls after rm: $(cat "$TMP/out")"
expect_exit 5 "$COWBLK" snapshot create src snap1
"$COWBLK" read restored 0 >"$TMP/restored2"
cmp "$TMP/want" "$TMP/restored2" || fail "a volume lost its deleted snapshot's data"
[ -f "$SERVER_DATA/images/snap1.img" ] || fail "the image went while a volume uses it"
expect_exit 0 "$COWBLK" volume rm restored
[ ! -e "$SERVER_DATA/images/snap1.img" ] || fail "the image stayed after its last volume"
[ ! -e "$SERVER_DATA/images/snap1.snapshot-deleted" ] || fail "the record stayed"
expect_exit 0 "$COWBLK" snapshot create src snap1

# Unused: deleted at once, image and record.
expect_exit 0 "$COWBLK" snapshot rm osnap
[ ! -e "$SERVER_DATA/images/osnap.img" ] && [ ! -e "$SERVER_DATA/images/osnap.snapshot" ] ||
  fail "an unused snapshot's files stayed"
expect_exit 4 "$COWBLK" snapshot rm osnap

# A snapshot is an image: `image rm` removes it with its record.
expect_exit 0 "$COWBLK" snapshot create src asimage
expect_exit 0 "$COWBLK" image rm asimage
[ ! -e "$SERVER_DATA/images/asimage.snapshot" ] || fail "image rm left the snapshot's record"
expect_exit 4 "$COWBLK" snapshot info asimage
