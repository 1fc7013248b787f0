# scripts/demo (`make run`) prints the address cowblkd really listens on,
# once it serves, and that address answers; not a fixed 127.0.0.1:7800.
. "$COWBLK_TESTS/support/testlib.sh"
mkfifo "$TMP/demo.out"
COWBLK_METRICS_LISTEN=127.0.0.1:0 sh "$COWBLK_TESTS/../scripts/demo" "$COWBLK_BIN" "$TMP/data" \
  --listen 127.0.0.1:0 --drain-seconds 1 >"$TMP/demo.out" 2>"$TMP/demo.err" &
SERVER_PID=$!  # cowblkd, once the script execs it; testlib's cleanup stops it
exec 4<"$TMP/demo.out"
address=""
while IFS= read -r line <&4; do
  case $line in
    *127.0.0.1:7800*) fail "the banner names 127.0.0.1:7800, where nothing listens: $line" ;;
    "cowblkd serves on "*)
      address=$(printf '%s\n' "$line" | sed -n 's/^cowblkd serves on \([^ ]*\) .*/\1/p')
      break
      ;;
  esac
done
cat <&4 >"$TMP/banner" &
LOGGER_PID=$!
exec 4<&-
[ -n "$address" ] || { cat "$TMP/demo.err" >&2; fail "no banner"; }
# The banner follows the serving line, which has the same address.
grep -q " event=serving .*address=$address " "$TMP/demo.err" ||
  { cat "$TMP/demo.err" >&2; fail "the serving line's address is not $address"; }
expect_exit 0 "$COWBLK" --server "$address" volume info demo
expect_output "name:        demo"
stop_server
[ "$SERVER_STATUS" -eq 0 ] || fail "cowblkd exited $SERVER_STATUS"
grep -q "cowblk --server $address volume ls" "$TMP/banner" || { cat "$TMP/banner" >&2; fail "banner"; }
grep -q " event=stopped " "$TMP/demo.err" || { cat "$TMP/demo.err" >&2; fail "no stopped line"; }
