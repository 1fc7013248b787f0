# The systemd unit (deploy/systemd/cowblkd.service.in), as `cmake --install`
# writes it: systemd-analyze verify finds nothing to say (it exits 0 even
# on unknown keys, so its output must be empty), the hardening options are
# there and systemd rates the exposure at most 2.0 ("OK"), its ExecStart
# names the installed cowblkd, and that command line, with the unit's
# environment, starts a real cowblkd (the data directory moved to scratch,
# ports chosen by the kernel) that serves and stops cleanly on SIGTERM.
# Usage: systemd_unit.sh BUILD_DIR SOURCE_DIR
set -eu
BUILD=$1
COWBLK_TESTS=$2/tests
COWBLK_BIN=$BUILD/bin
. "$COWBLK_TESTS/support/testlib.sh"
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (package systemd)"

cmake --install "$BUILD" --prefix "$TMP/prefix" >"$TMP/install.log"
unit=$TMP/prefix/lib/systemd/system/cowblkd.service
[ -f "$unit" ] || fail "the unit is not installed"
systemd-analyze verify --man=no "$unit" >"$TMP/verify" 2>&1 || { cat "$TMP/verify" >&2; fail "verify"; }
[ ! -s "$TMP/verify" ] || { cat "$TMP/verify" >&2; fail "systemd-analyze verify has remarks"; }
for want in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
    ReadWritePaths=/var/lib/cowblk StateDirectory=cowblk Restart=on-failure LimitNOFILE=65536 \
    CapabilityBoundingSet= KillSignal=SIGTERM; do
  grep -qx "$want" "$unit" || fail "the unit lacks $want"
done
systemd-analyze security --offline=yes "$unit" >"$TMP/security" 2>&1 || true
level=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' "$TMP/security")
[ -n "$level" ] || { cat "$TMP/security" >&2; fail "no exposure level"; }
awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || fail "exposure level $level, want at most 2.0"

execstart=$(sed -n 's/^ExecStart=//p' "$unit")
[ "${execstart%% *}" = "$TMP/prefix/bin/cowblkd" ] || fail "ExecStart runs ${execstart%% *}"
args=${execstart#* }
case $args in
  "--data-dir /var/lib/cowblk"*) args=${args#--data-dir /var/lib/cowblk} ;;
  *) fail "ExecStart's data directory is not ReadWritePaths': $args" ;;
esac
# The unit's environment: names cowblkd knows (its --help lists each
# flag's), values it accepts (the listen addresses go to port 0 here).
"$TMP/prefix/bin/cowblkd" --help >"$TMP/help"
sed -n 's/^Environment=//p' "$unit" >"$TMP/env"
[ -s "$TMP/env" ] || fail "the unit sets no environment"
while IFS= read -r kv; do
  name=${kv%%=*}
  grep -q "(Env:$name)" "$TMP/help" || fail "cowblkd knows no $name"
  case $name in *LISTEN) kv="$name=127.0.0.1:0" ;; esac
  export "$kv"
done <"$TMP/env"
COWBLKD=$TMP/prefix/bin/cowblkd
# shellcheck disable=SC2086
start_server $args
grep -q " event=serving .*data_dir=$TMP/data " "$TMP/server.log" || fail "serving line"
stop_server
[ "$SERVER_STATUS" -eq 0 ] || fail "cowblkd exited $SERVER_STATUS on SIGTERM"
