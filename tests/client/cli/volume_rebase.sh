# A data directory copied elsewhere without times (cp -r) leaves every
# volume in error (its header names the old place, and the images' mtimes
# changed); `cowblk volume rebase -u` takes one back online, over an image
# or a blank base (found by the file name the header names), data intact.
# Refused, with the volume left as it was: without -u, a volume that serves,
# an image of another size, a missing image.
. "$COWBLK_TESTS/support/testlib.sh"
SERVER_DATA=$TMP/orig start_server
head -c 1048576 /dev/urandom >"$TMP/base.img"
expect_exit 0 "$COWBLK" image upload "$TMP/base.img" base
expect_exit 0 "$COWBLK" volume create over --image base
expect_exit 0 "$COWBLK" volume create blank --size 2M
printf 'written before the copy' >"$TMP/data.bin"
expect_exit 0 "$COWBLK" write over 4096 <"$TMP/data.bin"
expect_exit 0 "$COWBLK" write blank 512 <"$TMP/data.bin"
head -c 2097152 /dev/zero >"$TMP/other.img"
expect_exit 0 "$COWBLK" image upload "$TMP/other.img" other
stop_server
cp -r "$TMP/orig" "$TMP/data"
rm -rf "$TMP/orig"
touch -d 2001-01-01 "$TMP/data/images/base.img" "$TMP/data/images/.blank/2097152.img"
start_server
expect_exit 0 "$COWBLK" --json volume info over
[ "$(json 'j["state"]')" = error ] || fail "over is not in error after the copy"
case $(json 'j["error"]') in *"is outside"*) ;; *) fail "over: $(json 'j["error"]')" ;; esac

expect_exit 2 "$COWBLK" volume rebase over
cp "$TMP/data/volumes/over.cow" "$TMP/over.orig"
expect_exit 1 "$COWBLK" volume rebase -u over --image other
expect_error "FAILED_PRECONDITION"
expect_error "size mismatch"
expect_exit 4 "$COWBLK" volume rebase -u over --image missing
expect_error "image missing not found"
cmp -s "$TMP/data/volumes/over.cow" "$TMP/over.orig" || fail "a refused rebase changed the file"
expect_exit 0 "$COWBLK" --json volume info over
[ "$(json 'j["state"]')" = error ] || fail "over after refusals"

expect_exit 0 "$COWBLK" volume rebase -u over
expect_output "rebased volume over onto image base: ready"
expect_exit 0 "$COWBLK" volume rebase -u blank
expect_output "rebased volume blank onto image - (blank): ready"
for v in over:4096 blank:512; do
  expect_exit 0 "$COWBLK" read "${v%:*}" "${v#*:}" 23
  cmp -s "$TMP/out" "$TMP/data.bin" || fail "${v%:*} lost its data"
done
expect_exit 1 "$COWBLK" volume rebase -u over
expect_error "volume over is open (serving)"
# The rebased header is what the next start reads: the volumes open.
stop_server
start_server
expect_exit 0 "$COWBLK" volume ls
grep -Eq '^over +1 MiB +512 B +base +ready$' "$TMP/out" || { cat "$TMP/out" >&2; fail "over after restart"; }
grep -Eq '^blank +2 MiB +512 B +- +ready$' "$TMP/out" || { cat "$TMP/out" >&2; fail "blank after restart"; }
