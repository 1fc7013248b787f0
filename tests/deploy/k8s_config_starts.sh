# The configuration each overlay gives cowblkd (its ConfigMap variables and
# arguments) is one the real cowblkd accepts and runs with: it starts,
# reports the configured settings in its `serving` line, and on SIGTERM
# drains, flushes and exits 0. Only what a pod has and this machine does not
# is replaced: the data directory (/data), the addresses (ephemeral loopback
# ports) and the TLS and token files (facts.mjs checks those).
# Usage: k8s_config_starts.sh COWBLKD [MANIFESTS]  (default deploy/kubernetes)
. "$COWBLK_SOURCE_DIR/tests/deploy/lib.sh"
cowblkd=${1:?usage: k8s_config_starts.sh COWBLKD [MANIFESTS]}
K8S_DIR=${2:-$K8S_DIR}
need_kubectl
need_node_modules
server_pid=""
stop() { [ -z "$server_pid" ] || { kill -KILL "$server_pid" 2>/dev/null || true; }; rm -rf "$TMP"; }
trap stop EXIT INT TERM

for overlay in $OVERLAYS; do
  render "$K8S_DIR/overlays/$overlay" "$TMP/$overlay.yaml"
  node "$DEPLOY_TESTS/podcmd.mjs" "$TMP/$overlay.yaml" >"$TMP/$overlay.cmd" ||
    fail "$overlay: cannot read the container's command"
  set -- env -i "PATH=$PATH"
  while IFS= read -r line; do
    case $line in
      "env "*) set -- "$@" "${line#env }" ;;
      "arg --data-dir="* | "arg --listen="* | "arg --health-listen="* | "arg --metrics-listen="* | \
        "arg --tls-"* | "arg --token-file="*) ;;
      "arg "*) set -- "$@" "${line#arg }" ;;
    esac
  done <"$TMP/$overlay.cmd"
  mkdir "$TMP/data-$overlay"
  rm -f "$TMP/log.fifo"
  mkfifo "$TMP/log.fifo"
  "$@" "$cowblkd" --data-dir="$TMP/data-$overlay" --listen=127.0.0.1:0 --health-listen=127.0.0.1:0 \
    --metrics-listen=127.0.0.1:0 2>"$TMP/log.fifo" &
  server_pid=$!
  # Blocking reads of the server's log: the `serving` line, then to the end.
  serving=""
  exec 3<"$TMP/log.fifo"
  while IFS= read -r line <&3; do
    printf '%s\n' "$line" >>"$TMP/$overlay.log"
    case $line in *" event=serving "*) serving=$line; break ;; esac
  done
  [ -n "$serving" ] || { exec 3<&-; cat "$TMP/$overlay.log" >&2; fail "$overlay: cowblkd did not start"; }
  kill -TERM "$server_pid"
  cat <&3 >>"$TMP/$overlay.log"
  exec 3<&-
  set +e
  wait "$server_pid"
  rc=$?
  set -e
  server_pid=""
  [ "$rc" -eq 0 ] || { cat "$TMP/$overlay.log" >&2; fail "$overlay: cowblkd exited $rc after SIGTERM"; }
  grep -q " event=stopped .*flush=ok" "$TMP/$overlay.log" ||
    { cat "$TMP/$overlay.log" >&2; fail "$overlay: no clean stop (event=stopped flush=ok)"; }
  # The settings of the ConfigMap are the ones cowblkd runs with.
  for pair in COWBLK_ENGINE_THREADS:engine_threads COWBLK_DURABILITY:durability COWBLK_CACHE:cache; do
    var=${pair%%:*} key=${pair#*:}
    want=$(sed -n "s/^env $var=//p" "$TMP/$overlay.cmd")
    [ -n "$want" ] || fail "$overlay: the ConfigMap does not set $var"
    case "$serving " in
      *" $key=$want "*) ;;
      *) fail "$overlay: $var=$want, but cowblkd serves with: $serving" ;;
    esac
  done
  echo "ok: $overlay: cowblkd starts with the overlay's configuration and stops cleanly"
done
