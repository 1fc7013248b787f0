# --log-format json: every line cowblkd writes is one JSON object (parsed
# with Python's json module, line by line) whose keys start ts, level,
# event; values are strings, escaped so that quotes, backslashes, control
# characters, newlines and bytes that are not UTF-8 in them (here in a file
# name the server logs) keep each line one valid object. The gRPC library's
# own lines are such objects too.
. "$COWBLK_TESTS/support/testlib.sh"
mkdir -p "$TMP/data/volumes"
name=$(printf 'Bad "q" \\ =\t\001\nx\377 caf\303\251.cow')
: >"$TMP/data/volumes/$name"
start_server --log-format json
expect_exit 0 "$COWBLK" volume create v1 --size 1M
# gRPC's own lines too: a second cowblkd on the same address fails to bind.
expect_exit 1 "$COWBLKD" --data-dir "$TMP/data2" --listen "$COWBLK_SERVER" --metrics-listen "" \
  --log-format json
python3 "$COWBLK_TESTS/integration/log_lines.py" json "$TMP/err" >"$TMP/out" ||
  fail "the second cowblkd's log is not json throughout"
[ "$(json '[r["event"] for r in j if r["level"] == "error"]')" = \
  "['grpc_log', 'listen_failed']" ] || fail "bind failure: $(cat "$TMP/err")"
stop_server
[ "$SERVER_STATUS" -eq 0 ] || fail "cowblkd exited $SERVER_STATUS"
log_records json
[ "$(json 'len(j)')" -eq "$(wc -l <"$TMP/server.log")" ] || fail "a record per line"
[ "$(json '[r["event"] for r in j][-3:]')" = "['draining', 'volume_closed', 'stopped']" ] ||
  fail "shutdown events: $(json '[r["event"] for r in j]')"
[ "$(json '[r["volume"] for r in j if r["event"] == "volume_created"]')" = "['v1']" ] ||
  fail "volume_created v1"
[ "$(json '[r["address"] for r in j if r["event"] == "serving"]')" = "['$COWBLK_SERVER']" ] ||
  fail "serving address"
# The file name round-trips, but for the byte that is not UTF-8 (U+FFFD).
want=$(printf '%s' "$TMP/data/volumes/$name" | python3 -c \
  'import sys; print(ascii(sys.stdin.buffer.read().decode("utf-8", "replace")))')
got=$(json 'ascii([(r["level"], r["file"]) for r in j if r["event"] == "volume_skipped"])')
[ "$got" = "[('warning', $want)]" ] || fail "volume_skipped: $got, want $want"
