# cowblk nbd serves remote volumes to real NBD tools: nbdinfo sees the
# exports and their sizes, nbdcopy and qemu-img write and read them back
# byte-exact, and what they wrote is on the server (read through libcowblk).
# A TCP listener must be loopback unless forced.
. "$COWBLK_TESTS/support/testlib.sh"
cd "$TMP"
start_server
expect_exit 0 "$COWBLK" volume create disk --size 16M
expect_exit 0 "$COWBLK" volume create small --size 1M

# --daemon returns once serving, with one URI per export on stdout.
expect_exit 0 "$COWBLK" nbd --all --socket "$TMP/nbd.sock" --daemon --pid-file "$TMP/gw.pid"
expect_output "nbd+unix:///disk?socket=$TMP/nbd.sock"
expect_output "nbd+unix:///small?socket=$TMP/nbd.sock"
stop_gateway() {
  for f in "$TMP"/gw*.pid; do stop_pid_file "$f"; done
}
cleanup_hooks="stop_gateway"
[ "$(stat -c %a "$TMP/nbd.sock")" = 600 ] || fail "the socket is not owner-only"

expect_exit 0 nbdinfo --list "nbd+unix:///?socket=$TMP/nbd.sock"
expect_output 'export="disk"'
expect_output 'export="small"'
[ "$(nbdinfo --size "nbd+unix:///disk?socket=$TMP/nbd.sock")" = 16777216 ] || fail "disk size"
[ "$(nbdinfo --size "nbd+unix:///small?socket=$TMP/nbd.sock")" = 1048576 ] || fail "small size"
# An export that does not exist.
expect_exit 1 nbdinfo "nbd+unix:///nothere?socket=$TMP/nbd.sock"

# nbdcopy (several connections, many requests in flight) there and back.
head -c 12582912 /dev/urandom >in.bin
expect_exit 0 nbdcopy --flush in.bin "nbd+unix:///disk?socket=$TMP/nbd.sock"
expect_exit 0 nbdcopy "nbd+unix:///disk?socket=$TMP/nbd.sock" out.bin
head -c 12582912 out.bin | cmp - in.bin || fail "nbdcopy read back other bytes"
# What the gateway wrote is the server's: read through libcowblk.
"$COWBLK" read disk 0 12582912 >lib.bin
cmp lib.bin in.bin || fail "the volume holds other bytes than nbdcopy wrote"

# qemu-img: into the small volume and back.
head -c 1048576 /dev/urandom >q.bin
expect_exit 0 qemu-img convert -n -f raw -O raw q.bin "nbd+unix:///small?socket=$TMP/nbd.sock"
expect_exit 0 qemu-img convert -f raw -O raw "nbd+unix:///small?socket=$TMP/nbd.sock" q.out
cmp q.out q.bin || fail "qemu-img read back other bytes"

# A second gateway on the same socket is refused while the first lives.
expect_exit 5 "$COWBLK" nbd disk --socket "$TMP/nbd.sock"
expect_error "is in use"

# The default socket is in $XDG_RUNTIME_DIR; --json lists the exports.
expect_exit 0 env XDG_RUNTIME_DIR="$TMP" "$COWBLK" --json nbd small --daemon \
  --pid-file "$TMP/gw3.pid"
[ "$(json 'j["exports"][0]["uri"]')" = "nbd+unix:///small?socket=$TMP/cowblk-nbd.sock" ] ||
  fail "default socket: $(cat "$TMP/out")"
[ "$(json 'j["exports"][0]["size"]')" = 1048576 ] || fail "JSON size"
[ "$(nbdinfo --size "nbd+unix:///small?socket=$TMP/cowblk-nbd.sock")" = 1048576 ] ||
  fail "default socket size"

# TCP: loopback only, unless forced.
expect_exit 2 "$COWBLK" nbd disk --listen 0.0.0.0:0
expect_error "not a loopback address"
expect_error "--allow-non-loopback"
expect_exit 0 "$COWBLK" nbd disk --listen 127.0.0.1:0 --daemon --pid-file "$TMP/gw2.pid"
uri=$(cat "$TMP/out")
case $uri in nbd://127.0.0.1:*/disk) ;; *) fail "TCP URI: $uri" ;; esac
[ "$(nbdinfo --size "$uri")" = 16777216 ] || fail "disk size over TCP"
expect_exit 0 nbdcopy "$uri" tcp.bin
head -c 12582912 tcp.bin | cmp - in.bin || fail "TCP read back other bytes"

# SIGTERM: each gateway flushes, removes its socket and pid file, exits.
stop_gateway
[ ! -e "$TMP/nbd.sock" ] && [ ! -e "$TMP/cowblk-nbd.sock" ] || fail "a socket is left"
[ ! -e "$TMP/gw.pid" ] && [ ! -e "$TMP/gw2.pid" ] && [ ! -e "$TMP/gw3.pid" ] ||
  fail "a pid file is left"
