# shellcheck shell=bash disable=SC2034 # the variables are the sourcing script's
# bench/lib.sh: what the bench scripts (compare.sh, compare-grpc.sh,
# compare-fio.sh, check-generator.sh, ab-nbd.sh) share. Bash; needs
# /usr/bin/python3.
#
# A script sources it first thing (the source line passes no arguments, so
# bench_argv below sees the script's own), sets its defaults, hands the flags
# every script reads alike to bench_opt, then calls bench_out to get its
# output directory. Servers and scratch files registered with
# bench_kill_at_exit and bench_rm_at_exit go away however the script ends.

bench_name=${0##*/}
bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_argv=("$0" "$@")
bench_started=$(date -u '+%F %T')
bench_load_start=$(cut -d' ' -f1 /proc/loadavg)
# Defaults of flags every script has alike (see bench_opt); a script sets
# its own for the others, after sourcing this file.
repeats=1
bin=$bench_root/build/bin
out=

# die STATUS MESSAGE: the script's name and MESSAGE on stderr, then exit.
die() {
  local status=$1
  shift
  echo "$bench_name: $*" >&2
  exit "$status"
}

# log MESSAGE: progress on stderr with the time and the load, which is what
# tells a noisy cell from a slow one afterwards.
log() { echo "[$(date +%T) load $(cut -d' ' -f1 /proc/loadavg)] $*" >&2; }

# usage: the script's header comment, which is its manual.
usage() { sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# bench_opt OPT ARG: the flags that mean the same in every script: -d the
# scratch directory ($dir), -s the size ($size), -t seconds ($secs), -r
# measurements per cell ($repeats), -b the binaries ($bin), -o the output
# directory ($out), -h help. Anything else ends the script with status 2.
bench_opt() {
  case $1 in
    d) dir=$2 ;;
    s) size=$2 ;;
    t) secs=$2 ;;
    r) repeats=$2 ;;
    b) bin=$2 ;;
    o) out=$2 ;;
    h) usage; exit 0 ;;
    *) die 2 "see -h" ;;
  esac
}

# need_tools TOOL...: each TOOL is a command on PATH or an executable path.
need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || die 2 "$t not found (make deps, or build it)"
  done
}

# need_whole_seconds: $secs is a whole number above 0 (engine_bench and
# grpc_bench take no fractions).
need_whole_seconds() {
  case $secs in ''|*[!0-9]*|0) die 2 "-t must be a whole number of seconds" ;; esac
}

# need_disk_dir DIR: creates DIR and refuses tmpfs, where O_DIRECT and the
# page cache behave unlike the disks the figures are meant for.
need_disk_dir() {
  mkdir -p "$1"
  [ "$(stat -f -c %T "$1")" != tmpfs ] || die 2 "$1 is tmpfs: use a directory on a disk"
}

# bench_out: sets $out, unless -o did, to a fresh directory for this run's
# raw output outside the source tree: $COWBLK_BENCH_OUT (default
# /var/tmp/cowblk-bench-runs)/SCRIPT-TIME. Makes it absolute.
bench_out() {
  if [ -z "$out" ]; then
    out=${COWBLK_BENCH_OUT:-/var/tmp/cowblk-bench-runs}/${bench_name%.sh}-$(date -u +%Y%m%dT%H%M%SZ)
  fi
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  log "raw output in $out"
}

# bench_summary TABLE: writes $out/summary.md, the one file a run leaves
# for people to read: what ran, where, on which commit, and TABLE (the
# markdown the script printed). Recording a run is copying that file to
# bench/results/ (see bench/README.md).
bench_summary() {
  local table=$1 commit model args=
  [ ${#bench_argv[@]} = 1 ] || args=$(printf ' %q' "${bench_argv[@]:1}")
  commit=$(git -C "$bench_root" describe --always --dirty 2>/dev/null || echo unknown)
  model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
  {
    echo "# ${bench_name%.sh}: bench/$bench_name, $bench_started-$(date -u +%T) UTC"
    echo
    echo "- command: \`bench/$bench_name$args\`"
    echo "- source tree: $commit; binaries: $bin"
    echo "- machine: $(nproc) CPUs ($model), Linux $(uname -r), load average" \
      "$bench_load_start at the start, $(cut -d' ' -f1 /proc/loadavg) at the end"
    echo "- raw output: $out (not in the tree)"
    echo
    echo "## Tables"
    echo
    cat "$table"
  } >"$out/summary.md"
  log "summary in $out/summary.md; to record the run, copy it to bench/results/NAME.md"
}

_bench_pids=" "
_bench_paths=()

# bench_kill_at_exit PID: SIGTERM to PID when the script ends.
bench_kill_at_exit() { _bench_pids="$_bench_pids$1 "; }

# bench_forget PID: PID was stopped already (a pid may be reused).
bench_forget() { _bench_pids=${_bench_pids/ $1 / }; }

# bench_rm_at_exit PATH...: removes each PATH (recursively) when the script ends.
bench_rm_at_exit() { _bench_paths+=("$@"); }

_bench_cleanup() {
  local p
  for p in $_bench_pids; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ ${#_bench_paths[@]} = 0 ] || rm -rf "${_bench_paths[@]}"
}
trap _bench_cleanup EXIT
# Through exit, so that the EXIT trap cleans up after ^C too.
trap 'exit 130' INT
trap 'exit 143' TERM

# size_bytes SIZE: 512M, 1G, 4k or plain bytes, printed as bytes.
size_bytes() {
  /usr/bin/python3 -c 'import sys; s=sys.argv[1].lower(); m={"k":1<<10,"m":1<<20,"g":1<<30}; print(int(s[:-1])*m[s[-1]] if s[-1] in m else int(s))' "$1"
}

# random_image PATH SIZE: a raw image of SIZE random bytes (incompressible,
# and no two blocks alike).
random_image() {
  log "image: $1, $2 of random data"
  head -c "$(size_bytes "$2")" /dev/urandom >"$1"
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago (a server
# started right after takes it; good enough for a benchmark).
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# proc_ticks PID: CPU clock ticks of process PID so far (user + system,
# dead threads included); getconf CLK_TCK of them make a second.
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# cowblkd_start LOG COMMAND...: runs COMMAND, a cowblkd command line (it may
# start with `env NAME=VALUE...`), on an ephemeral gRPC port with stderr in
# LOG, and waits for its `event=serving` line. Sets cowblkd_pid,
# cowblkd_addr (gRPC HOST:PORT) and cowblkd_nbd (the NBD export's
# HOST:PORT, empty without --nbd-listen). Stopped at exit.
cowblkd_start() {
  local log=$1 line=
  shift
  "$@" --listen 127.0.0.1:0 2>"$log" &
  cowblkd_pid=$!
  bench_kill_at_exit "$cowblkd_pid"
  for _ in $(seq 300); do
    line=$(grep -m1 ' event=serving ' "$log") && break
    kill -0 "$cowblkd_pid" 2>/dev/null || { cat "$log" >&2; die 1 "cowblkd exited (see above)"; }
    sleep 0.1
  done
  [ -n "$line" ] || die 1 "cowblkd did not start serving within 30 s (see $log)"
  cowblkd_addr=$(printf '%s\n' "$line" | sed -n 's/.* address=\([^ ]*\).*/\1/p')
  cowblkd_nbd=$(printf '%s\n' "$line" | sed -n 's/.* nbd=\([^ ]*\).*/\1/p')
}

# cowblkd_stop PID: SIGTERM, then waits; returns cowblkd's exit status
# (0 after a clean drain).
cowblkd_stop() {
  local rc=0
  kill -TERM "$1"
  wait "$1" || rc=$?
  bench_forget "$1"
  return $rc
}

# nbdkit_start IMAGE [FLAGS...]: `nbdkit FLAGS --filter=cow file IMAGE` on
# an ephemeral TCP port of 127.0.0.1: a fresh, empty overlay. Sets
# nbdkit_pid and nbdkit_uri (nbd://HOST:PORT). nbdkit forks into the
# background once it listens; its pid file lies next to IMAGE.
nbdkit_start() {
  local port pidfile=$1.nbdkit-pid image=$1
  shift
  port=$(free_port)
  rm -f "$pidfile"
  nbdkit -i 127.0.0.1 -p "$port" -P "$pidfile" "$@" --filter=cow file "$image"
  # The background process writes the pid file after the foreground one
  # has returned.
  for _ in $(seq 100); do
    [ ! -s "$pidfile" ] || break
    sleep 0.05
  done
  nbdkit_pid=$(cat "$pidfile")
  nbdkit_uri=nbd://127.0.0.1:$port
  bench_kill_at_exit "$nbdkit_pid"
}

# nbdkit_stop: stops the nbdkit of the last nbdkit_start and waits until it
# has exited (it is not this shell's child), so that its teardown does not
# overlap the next measurement. A zombie has exited: init may take a second
# to reap it.
nbdkit_stop() {
  kill -TERM "$nbdkit_pid"
  for _ in $(seq 100); do
    case $(awk '{print $3}' "/proc/$nbdkit_pid/stat" 2>/dev/null) in '' | Z) break ;; esac
    sleep 0.05
  done
  bench_forget "$nbdkit_pid"
}

# The environment cowblk-bench runs in (NAME=VALUE words, for `env`): the
# TLS files and token of a cowblk:// target, say. Empty: the caller's.
bench_env=()

# bench_cell URI RW BS DEPTH SIZE JSON: one measured cowblk-bench run over
# the first SIZE bytes of URI, $secs seconds after a 1 s ramp; its result
# in JSON, its output in JSON.log.
bench_cell() {
  env "${bench_env[@]}" "$bin/cowblk-bench" --target "$1" --rw "$2" --bs "$3" --iodepth "$4" --size "$5" \
    --runtime "$secs" --ramp 1 --json "$6" >>"$6.log" 2>&1 ||
    { cat "$6.log" >&2; die 1 "cowblk-bench $1 $2 failed"; }
}

# bench_prefill URI SIZE LOG: cowblk-bench writes the first SIZE bytes of
# URI once, in 1 MiB requests (allocates the working set of the rewrite
# and COW read rows); its output goes to LOG.
bench_prefill() {
  env "${bench_env[@]}" "$bin/cowblk-bench" --target "$1" --rw write --bs 1m --iodepth 8 --size "$2" \
    --io-size "$2" >>"$3" 2>&1 || { cat "$3" >&2; die 1 "prefill of $1 failed"; }
}

# measure_rows FUNC ROWS TARGET...: ROWS holds one row a line, "NAME
# FIELDS...". For each row, $repeats rounds of `FUNC TARGET JSON FIELDS...`
# for every TARGET, JSON being $out/NAME.TARGET.ROUND.json. The targets'
# order rotates by one from round to round and row to row, so that drift in
# a shared machine's load hits all alike. With $only set (comma-separated
# names), other rows are skipped.
measure_rows() {
  local func=$1 rows=$2 name fields i=0 r k t
  shift 2
  local targets=("$@")
  # fd 3: the measurements' commands may read stdin.
  while read -r -u 3 name fields; do
    if [ -n "${only-}" ] && ! printf ',%s,' "$only" | grep -q ",$name,"; then continue; fi
    for r in $(seq 1 "$repeats"); do
      for k in "${!targets[@]}"; do
        t=${targets[$(( (i + r + k) % ${#targets[@]} ))]}
        log "$name: $t ($r/$repeats)"
        # shellcheck disable=SC2086 # $fields is a list
        "$func" "$t" "$out/$name.$t.$r.json" $fields
      done
    done
    i=$((i + 1))
  done 3<<<"$rows"
}
