# server info: the version, the data directory's file system (its size as
# statvfs says, free bytes within it), the volume count and sums, and the
# NBD export's address as the serving line tells it; as text and --json.
. "$COWBLK_TESTS/support/testlib.sh"
start_server --nbd-listen 127.0.0.1:0
nbd=$(sed -n 's/.* event=serving .* nbd=\([^ ]*\).*/\1/p' "$TMP/server.log")
[ -n "$nbd" ] && [ "$nbd" != off ] || fail "no nbd address in the serving line"
version=$("$COWBLKD" --version | sed -n 's/^cowblkd \([^ ]*\) .*/\1/p')
set -- $(stat -f -c '%b %S' "$TMP/data")
capacity=$(($1 * $2))

expect_exit 0 "$COWBLK" --json server info
[ "$(json 'j["version"]')" = "$version" ] || fail "version: $(cat "$TMP/out")"
[ "$(json 'j["capacity_bytes"]')" = "$capacity" ] || fail "capacity $capacity: $(cat "$TMP/out")"
[ "$(json '0 < j["free_bytes"] <= j["capacity_bytes"]')" = True ] || fail "free: $(cat "$TMP/out")"
[ "$(json 'j["volume_count"], j["provisioned_bytes"], j["allocated_bytes"]')" = "(0, 0, 0)" ] ||
  fail "empty server: $(cat "$TMP/out")"
[ "$(json 'j["nbd_address"]')" = "$nbd" ] || fail "nbd address $nbd: $(cat "$TMP/out")"
[ "$(json 'j["nbd_port"]')" = "${nbd##*:}" ] || fail "nbd port: $(cat "$TMP/out")"
[ "$(json 'j["max_volume_size_bytes"] > 0')" = True ] || fail "max volume size"

expect_exit 0 "$COWBLK" volume create big --size 64M
expect_exit 0 "$COWBLK" volume create small --size 1M
head -c 4096 /dev/urandom | "$COWBLK" write small 0
expect_exit 0 "$COWBLK" --json server info
[ "$(json 'j["volume_count"], j["provisioned_bytes"], j["allocated_bytes"]')" = \
  "(2, $((65 * 1048576)), 4096)" ] || fail "two volumes: $(cat "$TMP/out")"

expect_exit 0 "$COWBLK" server info
expect_output "version:         $version"
expect_output "volumes:         2"
expect_output "capacity:        "
expect_output "($capacity bytes)"
expect_output "nbd export:      $nbd"
