# Sourced by the shell tests (tests/integration, tests/client/cli,
# tests/bench): a scratch directory removed on exit, the build's tools, a
# real cowblkd, and small assertions. Each test script pins one behaviour.
set -eu
: "${COWBLK_BIN:?set COWBLK_BIN to the build's bin directory}"
IMG="$COWBLK_BIN/cowblk-img"
COWBLK="$COWBLK_BIN/cowblk"
COWBLKD="$COWBLK_BIN/cowblkd"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cowblk-cli-XXXXXX")
SERVER_PID=""
LOGGER_PID=""
# The cowblk CLI reads these; a test sets the ones it means.
unset COWBLK_SERVER COWBLK_TLS COWBLK_TLS_CA COWBLK_TLS_CERT COWBLK_TLS_KEY \
  COWBLK_TLS_SERVER_NAME COWBLK_TOKEN_FILE COWBLK_TIMEOUT COWBLK_CHANNELS
# Functions a test adds to run on exit, after the server stopped.
cleanup_hooks=""
cleanup() {
  stop_server
  for hook in $cleanup_hooks; do "$hook" || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# start_server [FLAGS...]: cowblkd over $TMP/data (or $SERVER_DATA when set)
# on 127.0.0.1:0 (or $SERVER_LISTEN when set: a restart on the same address);
# exports COWBLK_SERVER.
# Waits for the serving line (in any --log-format) with a blocking read of
# the server's stderr (a fifo), then keeps draining it into $TMP/server.log.
start_server() {
  mkdir -p "${SERVER_DATA:-$TMP/data}"
  rm -f "$TMP/log.fifo"
  mkfifo "$TMP/log.fifo"
  COWBLK_METRICS_LISTEN=127.0.0.1:0 "$COWBLKD" --data-dir "${SERVER_DATA:-$TMP/data}" --listen "${SERVER_LISTEN:-127.0.0.1:0}" \
    --drain-seconds 1 "$@" 2>"$TMP/log.fifo" &
  SERVER_PID=$!
  exec 3<"$TMP/log.fifo"
  COWBLK_SERVER=""
  while IFS= read -r line <&3; do
    printf '%s\n' "$line" >>"$TMP/server.log"
    case $line in
      *" event=serving "* | *'"event":"serving"'* | *" INFO  serving "*)
        COWBLK_SERVER=$(printf '%s\n' "$line" |
          sed -n -e 's/.* address=\([^ ]*\).*/\1/p' -e 's/.*"address":"\([^"]*\)".*/\1/p')
        break
        ;;
    esac
  done
  cat <&3 >>"$TMP/server.log" &
  LOGGER_PID=$!
  exec 3<&-
  [ -n "$COWBLK_SERVER" ] || { cat "$TMP/server.log" >&2; fail "cowblkd did not start"; }
  export COWBLK_SERVER
}

# stop_server: SIGTERM; waits for the server (its exit status in
# SERVER_STATUS) and for its log to end.
SERVER_STATUS=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    SERVER_STATUS=0
    wait "$SERVER_PID" 2>/dev/null || SERVER_STATUS=$?
    wait "$LOGGER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}

# expect_exit CODE CMD...: runs CMD, stdout to $TMP/out, stderr to $TMP/err
# (or to $TMP/out as well, after stderr_in_out), checks the exit status.
STDERR_IN_OUT=""
expect_exit() {
  want=$1
  shift
  set +e
  if [ -n "$STDERR_IN_OUT" ]; then
    "$@" >"$TMP/out" 2>&1
  else
    "$@" >"$TMP/out" 2>"$TMP/err"
  fi
  got=$?
  set -e
  if [ "$got" -ne "$want" ]; then
    cat "$TMP/out" >&2
    [ -n "$STDERR_IN_OUT" ] || cat "$TMP/err" >&2
    fail "'$*' exited $got, want $want"
  fi
}

# stderr_in_out: from here on expect_exit puts stderr in $TMP/out too, so
# expect_output finds a tool's messages wherever it prints them.
stderr_in_out() {
  STDERR_IN_OUT=1
}

# expect_output TEXT / expect_error TEXT: the last command's output (stdout,
# and stderr after stderr_in_out) / stderr contains TEXT.
expect_output() {
  grep -qF -- "$1" "$TMP/out" || { cat "$TMP/out" >&2; fail "output lacks '$1'"; }
}
expect_error() {
  grep -qF -- "$1" "$TMP/err" || { cat "$TMP/err" >&2; fail "stderr lacks '$1'"; }
}

# expect_one_error_line: a failed cowblk command printed exactly one line,
# on stderr, starting "cowblk: ".
expect_one_error_line() {
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || { cat "$TMP/err" >&2; fail "want one error line"; }
  grep -q "^cowblk: " "$TMP/err" || { cat "$TMP/err" >&2; fail "error line lacks 'cowblk: '"; }
}

# json EXPR: evaluates a Python expression over the last stdout parsed as
# JSON (bound to `j`) and prints it.
json() {
  python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
    "$TMP/out" "$1"
}

# allocated_kib FILE: disk space a file uses.
allocated_kib() {
  du -k "$1" | cut -f1
}

# make_volume: a 1 MiB backing image $TMP/base.img and a COW file over it,
# $TMP/vol.cow.
make_volume() {
  head -c 1048576 /dev/urandom >"$TMP/base.img"
  "$IMG" create -b "$TMP/base.img" "$TMP/vol.cow" >/dev/null
}

# make_truncated_volume: make_volume, then the last sector marked allocated
# (bitmap at 8192, 2048 sectors: byte 255 bit 7) and the data area cut in
# half, so that sector lies past the end of the file.
make_truncated_volume() {
  make_volume
  printf '\200' | dd of="$TMP/vol.cow" bs=1 seek=$((8192 + 255)) conv=notrunc status=none
  truncate -s $((12288 + 524288)) "$TMP/vol.cow"
}

# make_pki DIR: a throwaway PKI in DIR (make_pki.sh says what is in it).
make_pki() {
  sh "$COWBLK_TESTS/support/make_pki.sh" "$1" >"$TMP/pki.log" 2>&1 ||
    { cat "$TMP/pki.log" >&2; fail "make_pki.sh failed"; }
}

# stop_pid_file FILE: SIGTERM to the process whose id FILE holds (a daemon,
# not this shell's child), then waits until it is gone.
stop_pid_file() {
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  kill "$pid" 2>/dev/null || return 0
  tail --pid="$pid" -f /dev/null
}

# start_secure_server: a PKI in $TMP (make_pki), tokens admin.token (scope
# admin) and viewer.token (read:*), and cowblkd with mutual TLS and those
# tokens; $tls holds the client's TLS flags.
start_secure_server() {
  make_pki "$TMP"
  printf 'admin-token admin\nviewer-token read:*\n' >"$TMP/tokens"
  printf 'admin-token\n' >"$TMP/admin.token"
  printf 'viewer-token\n' >"$TMP/viewer.token"
  start_server --tls-cert "$TMP/server.pem" --tls-key "$TMP/server.key" \
    --tls-client-ca "$TMP/ca.pem" --token-file "$TMP/tokens"
  tls="--tls-ca $TMP/ca.pem --tls-cert $TMP/client.pem --tls-key $TMP/client.key"
}

# log_records FORMAT: the server's log (after stop_server) parsed strictly
# by integration/log_lines.py, every line, as a JSON array in $TMP/out
# (read it with `json`); fails naming the first line not in FORMAT.
log_records() {
  python3 "$COWBLK_TESTS/integration/log_lines.py" "$1" "$TMP/server.log" >"$TMP/out" ||
    fail "cowblkd's log is not $1 throughout"
}
