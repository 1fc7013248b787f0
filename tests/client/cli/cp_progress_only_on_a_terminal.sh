# The progress bar goes to stderr only when stderr is a terminal.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
head -c 4194304 /dev/urandom >"$TMP/in"
expect_exit 0 "$COWBLK" cp "$TMP/in" vol:disk --create
[ ! -s "$TMP/err" ] || { cat "$TMP/err" >&2; fail "progress printed to a non-terminal"; }
# script(1) gives the command a terminal.
script -qec "'$COWBLK' cp vol:disk '$TMP/back'" /dev/null >"$TMP/tty" 2>&1
grep -q "100%" "$TMP/tty" || { cat "$TMP/tty" >&2; fail "no progress bar on a terminal"; }
cmp "$TMP/in" "$TMP/back"
