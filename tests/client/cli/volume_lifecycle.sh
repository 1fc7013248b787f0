# volume create (blank or over an image), ls, info, commit, rm, with tables.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
expect_exit 0 "$COWBLK" volume create blank --size 64M
expect_output "created volume blank (64 MiB)"
head -c 2097152 /dev/urandom >"$TMP/img"
expect_exit 0 "$COWBLK" image upload "$TMP/img" base
expect_exit 0 "$COWBLK" volume create child --image base
expect_output "over image base"
expect_exit 0 "$COWBLK" volume ls
head -1 "$TMP/out" | grep -q "^NAME  *SIZE  *ALLOCATED  *IMAGE  *STATE$" || fail "table header"
grep -q "^child  *2 MiB  *0 B  *base  *ready$" "$TMP/out" || fail "child row: $(cat "$TMP/out")"
expect_exit 0 "$COWBLK" volume info blank
expect_output "size:        64 MiB (67108864 bytes)"
printf 'new data' | "$COWBLK" write child 0
expect_exit 0 "$COWBLK" volume commit child merged
expect_output "committed volume child to image merged"
expect_exit 0 "$COWBLK" image download merged "$TMP/merged"
printf 'new data' | dd of="$TMP/img" bs=1 conv=notrunc status=none
cmp "$TMP/img" "$TMP/merged" || fail "commit"
expect_exit 1 "$COWBLK" image rm base
expect_error "FAILED_PRECONDITION"
expect_exit 0 "$COWBLK" volume rm child blank
expect_exit 0 "$COWBLK" image rm base merged
expect_exit 0 "$COWBLK" volume ls
expect_output "no volumes"
expect_exit 2 "$COWBLK" volume create x
expect_error "--size"
expect_exit 2 "$COWBLK" volume create x --size 1M --image base
