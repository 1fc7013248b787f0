# A reader that goes away (`cowblk read ... | head`) ends cowblk quietly, as
# it ends coreutils: killed by SIGPIPE (status 141 in a shell), nothing on
# stderr; a download's temporary volume is deleted first.
. "$COWBLK_TESTS/support/testlib.sh"
start_server
# 8 MiB of data: far more than a pipe holds, so the writer meets the closed
# end whatever head has read.
head -c 8388608 /dev/urandom >"$TMP/bytes"
expect_exit 0 "$COWBLK" image upload "$TMP/bytes" base
expect_exit 0 "$COWBLK" volume create disk --image base

# closed_pipe CMD...: CMD's stdout goes to `head -c 100`; its exit status
# must be 141 and its stderr empty, and head got the first 100 bytes.
closed_pipe() {
  { set +e; "$@" 2>"$TMP/err"; echo $? >"$TMP/status"; } | head -c 100 >"$TMP/head"
  [ "$(cat "$TMP/status")" -eq 141 ] || { cat "$TMP/err" >&2; fail "'$*' | head: status $(cat "$TMP/status"), want 141"; }
  [ ! -s "$TMP/err" ] || { cat "$TMP/err" >&2; fail "'$*' | head: printed on stderr"; }
  head -c 100 "$TMP/bytes" | cmp - "$TMP/head" || fail "'$*' | head: wrong first bytes"
}
closed_pipe "$COWBLK" read disk 0
closed_pipe "$COWBLK" cp vol:disk -
closed_pipe "$COWBLK" image download base -

# The download's temporary volume is gone: only "disk" is left.
expect_exit 0 "$COWBLK" --json volume ls
[ "$(json '[v["name"] for v in j]')" = "['disk']" ] || fail "volumes left: $(cat "$TMP/out")"
# A whole read into a pipe that stays open still exits 0.
"$COWBLK" read disk 0 | cmp - "$TMP/bytes" || fail "read to a pipe differs"
