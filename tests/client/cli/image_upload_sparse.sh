# image upload sends a file's holes and zero blocks as nothing, as cp does:
# a 1 GiB sparse file with 3 MiB of data in three places and 1 MiB of
# explicit (allocated) zeros becomes an image file that allocates about its
# data, byte for byte the file; a volume over it reads the data; the summary
# counts data and zeros as cp's does. image download writes holes back and
# says so. A pipe is sent as it comes. A missing file and a name in use
# fail and change nothing.
. "$COWBLK_TESTS/support/testlib.sh"
MiB=1048576
# same_bytes A B: the files hold the same bytes, as cmp says, read only
# where either has data (SEEK_DATA/SEEK_HOLE): elsewhere both read zeros.
# (cmp reads 1 GiB of holes twice, tens of seconds on a loaded machine.)
same_bytes() {
  python3 -c 'import os, sys
fds = [os.open(p, os.O_RDONLY) for p in sys.argv[1:3]]
size = os.fstat(fds[0]).st_size
if os.fstat(fds[1]).st_size != size:
    sys.exit(1)
def data(fd):
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            return
        pos = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, pos
for fd in fds:
    for start, end in data(fd):
        for at in range(start, end, 8 << 20):
            n = min(8 << 20, end - at)
            if os.pread(fds[0], n, at) != os.pread(fds[1], n, at):
                sys.exit(1)' "$1" "$2"
}
start_server
f="$TMP/sparse"
truncate -s 1G "$f"
for at in 0 500 1023; do
  head -c $MiB /dev/urandom >"$TMP/piece-$at"
  dd if="$TMP/piece-$at" of="$f" bs=$MiB seek=$at conv=notrunc status=none
done
dd if=/dev/zero of="$f" bs=$MiB seek=700 count=1 conv=notrunc status=none
[ "$(allocated_kib "$f")" -ge 4096 ] || fail "the file's explicit zeros are not allocated"

expect_exit 0 "$COWBLK" image upload "$f" sparse
expect_output "uploaded image sparse: 1 GiB (3 MiB data, 1021 MiB zeros) from $f in "
img="$TMP/data/images/sparse.img"
same_bytes "$f" "$img" || fail "the image differs from the file"
blocks=$(stat -c %b "$img")
[ $((blocks * 512)) -lt $((4 * MiB)) ] ||
  fail "the image allocates $((blocks * 512)) bytes for 3 MiB of data"

expect_exit 0 "$COWBLK" volume create child --image sparse
for at in 0 500 1023; do
  "$COWBLK" read child $((at * MiB)) $MiB | cmp - "$TMP/piece-$at" ||
    fail "the volume reads other data at $at MiB"
done
expect_exit 0 "$COWBLK" read child $((700 * MiB)) $MiB
head -c $MiB /dev/zero | cmp - "$TMP/out" || fail "the explicit zeros do not read as zeros"

expect_exit 0 "$COWBLK" --json image upload "$f" again
[ "$(json 'j["name"], j["size_bytes"], j["bytes"], j["data_bytes"], j["zero_bytes"]')" = \
  "('again', 1073741824, 1073741824, 3145728, 1070596096)" ] ||
  fail "image upload --json: $(cat "$TMP/out")"

expect_exit 0 "$COWBLK" image download sparse "$TMP/back"
expect_output "downloaded image sparse: 1 GiB (3 MiB data, 1021 MiB zeros) to $TMP/back in "
same_bytes "$f" "$TMP/back" || fail "the download differs from the file"
[ "$(allocated_kib "$TMP/back")" -lt 4096 ] || fail "the download's zeros are not holes"

# A pipe (no holes to find) is uploaded as it comes, as stdin is.
mkfifo "$TMP/fifo"
cat "$TMP/piece-500" >"$TMP/fifo" &
expect_exit 0 "$COWBLK" image upload "$TMP/fifo" piped
wait $!
expect_output "uploaded image piped (1 MiB)"
same_bytes "$TMP/piece-500" "$TMP/data/images/piped.img" || fail "the piped image differs"

# Bad input: no image made, none changed.
expect_exit 4 "$COWBLK" image upload "$TMP/missing" other
expect_one_error_line
expect_error "$TMP/missing"
head -c 4096 /dev/urandom >"$TMP/small"
expect_exit 5 "$COWBLK" image upload "$TMP/small" sparse
expect_one_error_line
expect_error "ALREADY_EXISTS"
same_bytes "$f" "$img" || fail "a failed upload changed the image"
expect_exit 0 "$COWBLK" --json image ls
[ "$(json '[i["name"] for i in j]')" = "['again', 'piped', 'sparse']" ] || fail "images: $(cat "$TMP/out")"
[ -z "$(ls -A "$TMP/data/images" | grep -v -e '^again.img$' -e '^piped.img$' -e '^sparse.img$' -e '^.blank$')" ] ||
  fail "an upload left a file: $(ls -A "$TMP/data/images")"
