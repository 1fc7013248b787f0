# Each kind of failure has its exit code (docs/cli.md) and one error line.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
expect_exit 0 "$COWBLK" health
expect_output "SERVING"
expect_exit 0 "$COWBLK" volume create disk --size 1M
expect_exit 5 "$COWBLK" volume create disk --size 1M
expect_one_error_line
expect_error "ALREADY_EXISTS"
expect_exit 4 "$COWBLK" volume info nope
expect_one_error_line
expect_error "cowblk: volume info nope: "
expect_exit 2 "$COWBLK" volume create Bad_Name --size 1M
expect_one_error_line
expect_exit 2 "$COWBLK" volume create x --size 1Q
expect_one_error_line
expect_exit 2 "$COWBLK" frobnicate
expect_one_error_line
expect_exit 2 "$COWBLK" --timeout 0 volume ls
expect_one_error_line
expect_exit 4 "$COWBLK" health no.such.Service
expect_exit 4 "$COWBLK" --token-file "$TMP/missing" volume ls
expect_one_error_line
# Port 1: nothing listens there (a stopped server's port could be reused by
# another test's server).
expect_exit 3 "$COWBLK" --server 127.0.0.1:1 volume ls
expect_one_error_line
expect_error "UNAVAILABLE"
expect_exit 3 "$COWBLK" --server 127.0.0.1:1 health
