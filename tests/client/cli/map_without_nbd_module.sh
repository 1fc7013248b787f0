# cowblk map and unmap on a kernel without the nbd module (this machine's)
# fail with one error line that names the missing module and what modprobe
# said, and points to the FUSE path in docs/attach.md; nothing is
# attached, and showmapped lists nothing.
. "$COWBLK_TESTS/support/testlib.sh"
[ ! -e /sys/module/nbd ] || fail "this test is for a kernel without the nbd module"
expect_exit 1 "$COWBLK" map disk
expect_one_error_line
expect_error "cowblk: map disk: map needs the kernel's nbd module"
expect_error "/sys/module/nbd is missing; modprobe nbd: "
expect_error "docs/attach.md"
expect_error "nbdfuse"
expect_error "(FAILED_PRECONDITION)"
[ ! -e /sys/module/nbd ] || fail "modprobe loaded nbd after all"
expect_exit 1 "$COWBLK" unmap /dev/nbd0
expect_one_error_line
expect_error "unmap needs the kernel's nbd module"
expect_exit 0 "$COWBLK" showmapped --json
[ "$(json 'len(j["devices"])')" = 0 ] || fail "showmapped lists devices"
