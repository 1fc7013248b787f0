# The default log format is logfmt, and `--log-format logfmt` the same:
# every line `ts=... level=... event=...` then key=value pairs, values with
# spaces, quotes or '=' quoted and escaped so that they read back whole.
. "$COWBLK_TESTS/support/testlib.sh"
mkdir -p "$TMP/data/volumes"
name='Bad "q" \ =x.cow'
: >"$TMP/data/volumes/$name"
for flags in "" "--log-format logfmt"; do
  rm -f "$TMP/server.log"
  # shellcheck disable=SC2086
  start_server $flags
  expect_exit 0 "$COWBLK" volume create v1 --size 1M
  expect_exit 0 "$COWBLK" volume rm v1
  stop_server
  [ "$SERVER_STATUS" -eq 0 ] || fail "cowblkd $flags exited $SERVER_STATUS"
  log_records logfmt
  [ "$(json '[r["event"] for r in j if r["event"].startswith("volume_")]')" = \
    "['volume_size_limit', 'volume_skipped', 'volume_created', 'volume_deleted']" ] ||
    fail "$flags: events $(json '[r["event"] for r in j]')"
  [ "$(json '[r["address"] for r in j if r["event"] == "serving"]')" = "['$COWBLK_SERVER']" ] ||
    fail "$flags: serving address"
  [ "$(json '[(r["level"], r["file"]) for r in j if r["event"] == "volume_skipped"][0][1]')" = \
    "$TMP/data/volumes/$name" ] || fail "$flags: the skipped file's name did not read back"
done
