# rebase -u refuses, with a message naming the reason, and leaves the file
# byte for byte as it was: a backing file of another size (the size places
# the bitmap and the data), a missing backing file, a COW file in use (a
# running cowblkd serves it).
. "$COWBLK_TESTS/support/testlib.sh"
stderr_in_out
make_volume
cp "$TMP/vol.cow" "$TMP/vol.orig"
unchanged() { cmp -s "$TMP/vol.cow" "$TMP/vol.orig" || fail "$1 changed the file"; }
head -c 1049088 /dev/zero >"$TMP/bigger.img"
expect_exit 3 "$IMG" rebase -u -b "$TMP/bigger.img" "$TMP/vol.cow"
expect_output "size mismatch: the header records 1048576 bytes, backing file $TMP/bigger.img has 1049088"
unchanged "a size mismatch"
expect_exit 3 "$IMG" rebase -u -b "$TMP/missing.img" "$TMP/vol.cow"
expect_output "backing file $TMP/missing.img: No such file or directory"
unchanged "a missing backing file"
mkfifo "$TMP/fifo.img"
expect_exit 3 "$IMG" rebase -u -b "$TMP/fifo.img" "$TMP/vol.cow"
expect_output "not a regular file or block device"
unchanged "a FIFO"
# cowblkd serves a volume over an image of the same size: its lock keeps
# the rebase out.
start_server
expect_exit 0 "$COWBLK" image upload "$TMP/base.img" base
expect_exit 0 "$COWBLK" volume create v1 --image base
cp "$TMP/data/volumes/v1.cow" "$TMP/v1.orig"
expect_exit 3 "$IMG" rebase -u -b "$TMP/base.img" "$TMP/data/volumes/v1.cow"
expect_output "is in use"
cmp -s "$TMP/data/volumes/v1.cow" "$TMP/v1.orig" || fail "a file in use changed"
