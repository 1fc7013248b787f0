# cowblk top: with one volume written to and one idle, two reports (plain
# text: stdout is not a terminal) list the busy volume first with nonzero
# write IOPS and bandwidth and the idle one with none; --once --json gives
# the same as JSON; no --metrics-url, or a wrong one, is one clear error.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
METRICS=$(sed -n 's/.* event=serving .* metrics=\([^ ]*\).*/\1/p' "$TMP/server.log")
[ -n "$METRICS" ] || fail "no metrics address on the serving line"
expect_exit 0 "$COWBLK" volume create busy --size 1M
expect_exit 0 "$COWBLK" volume create idle --size 1M
head -c 4096 /dev/urandom >"$TMP/block"

# A writer that goes on until told to stop; it says when its first write is
# done (through a fifo), so the reports' intervals all see writes.
mkfifo "$TMP/ready"
(
  first=1
  while [ ! -e "$TMP/stop" ]; do
    "$COWBLK" write busy 0 <"$TMP/block" || exit 1
    if [ "$first" = 1 ]; then echo ready >"$TMP/ready"; first=0; fi
  done
) &
WRITER=$!
read -r _ <"$TMP/ready"

expect_exit 0 "$COWBLK" top --metrics-url "http://$METRICS/metrics" --iterations 2 --interval 0.5
cp "$TMP/out" "$TMP/text"
expect_exit 0 "$COWBLK" top --metrics-url "$METRICS" --once --interval 0.5 --json
touch "$TMP/stop"
wait "$WRITER" || fail "the writer failed"

# Two reports, each a title line and a table; no terminal escapes.
[ "$(grep -c '^cowblk top: ' "$TMP/text")" -eq 2 ] || { cat "$TMP/text" >&2; fail "want 2 reports"; }
grep -q "$(printf '\033')" "$TMP/text" && fail "escape sequences on a pipe"
# The last report: header, then the busy volume first.
grep -v "^$" "$TMP/text" | tail -n 3 >"$TMP/last"
head -n 1 "$TMP/last" | grep -q '^VOLUME  *WR_IOPS  *RD_IOPS  *WR_BYTES  *RD_BYTES  *QUEUE  *STALLS/s' ||
  { cat "$TMP/text" >&2; fail "header"; }
row2=$(sed -n 2p "$TMP/last")
row3=$(sed -n 3p "$TMP/last")
[ "$(echo "$row2" | awk '{print $1}')" = busy ] || { cat "$TMP/text" >&2; fail "busy is not first"; }
[ "$(echo "$row2" | awk '{print $2}')" -gt 0 ] || { cat "$TMP/text" >&2; fail "busy shows no writes"; }
[ "$(echo "$row3" | awk '{print $1 " " $2 " " $3}')" = "idle 0 0" ] ||
  { cat "$TMP/text" >&2; fail "idle shows I/O"; }

# JSON: one report, the busy volume first, writes and bytes a second.
[ "$(json 'j["volumes"][0]["volume"]')" = busy ] || fail "JSON: busy not first"
[ "$(json 'j["volumes"][0]["write_iops"] > 0 and j["volumes"][0]["write_bytes_per_second"] >= 4096')" = True ] ||
  fail "JSON: busy shows no writes"
[ "$(json '[v["write_iops"] for v in j["volumes"] if v["volume"] == "idle"]')" = "[0.0]" ] ||
  fail "JSON: idle shows writes"

# Errors: no URL; nothing listening there.
expect_exit 2 "$COWBLK" top --once
expect_one_error_line
expect_error "--metrics-url"
expect_exit 3 "$COWBLK" top --once --metrics-url 127.0.0.1:1
expect_one_error_line
expect_error "127.0.0.1:1"
stop_server
