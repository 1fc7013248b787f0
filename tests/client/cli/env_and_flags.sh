# Global flags have environment variables; a flag beats its variable; flags
# may come before or after the command.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
expect_exit 0 "$COWBLK" volume create disk --size 1M
addr=$COWBLK_SERVER
unset COWBLK_SERVER
# The default, 127.0.0.1:7800, is (almost surely) not this server.
expect_exit 0 "$COWBLK" --server "$addr" volume ls
expect_output "disk"
expect_exit 0 "$COWBLK" volume ls --server "$addr"
expect_output "disk"
expect_exit 0 env COWBLK_SERVER="$addr" "$COWBLK" volume ls
expect_output "disk"
expect_exit 3 env COWBLK_SERVER="$addr" "$COWBLK" --server 127.0.0.1:1 volume ls
expect_exit 0 env COWBLK_SERVER="$addr" "$COWBLK" volume ls --json
[ "$(json 'j[0]["name"]')" = disk ] || fail "--json after the command"
expect_exit 0 "$COWBLK" --help
expect_output "COWBLK_SERVER"
expect_output "COWBLK_TOKEN_FILE"
# The keepalive flags reach the client; out of range is a usage error.
expect_exit 0 "$COWBLK" --server "$addr" --keepalive 20 --keepalive-timeout 3 volume ls
expect_output "disk"
expect_exit 0 env COWBLK_KEEPALIVE=0 "$COWBLK" --server "$addr" volume ls
expect_output "disk"
expect_exit 2 "$COWBLK" --server "$addr" --keepalive-timeout 0 volume ls
expect_exit 0 "$COWBLK" --help
expect_output "COWBLK_KEEPALIVE"
