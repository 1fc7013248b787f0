# --log-format text (here through COWBLK_LOG_FORMAT): lines for a console,
# `TS LEVEL event key=value...`, the level in one 5-column field (DEBUG,
# INFO, WARN, ERROR), values quoted as in logfmt.
. "$COWBLK_TESTS/support/testlib.sh"
mkdir -p "$TMP/data/volumes"
: >"$TMP/data/volumes/Bad name.cow"
COWBLK_LOG_FORMAT=text start_server
expect_exit 0 "$COWBLK" volume create v1 --size 1M
stop_server
[ "$SERVER_STATUS" -eq 0 ] || fail "cowblkd exited $SERVER_STATUS"
grep -q '^[0-9T:.-]*Z WARN  volume_skipped file="[^"]*/Bad name.cow" reason="invalid name"$' \
  "$TMP/server.log" || { cat "$TMP/server.log" >&2; fail "the warning line"; }
log_records text
[ "$(json '[r["event"] for r in j][-3:]')" = "['draining', 'volume_closed', 'stopped']" ] ||
  fail "shutdown events: $(json '[r["event"] for r in j]')"
[ "$(json '[r["volume"] for r in j if r["event"] == "volume_created"]')" = "['v1']" ] ||
  fail "volume_created v1"
