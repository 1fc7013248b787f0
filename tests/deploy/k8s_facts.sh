# The rendered overlays agree with the real cowblkd (its --help: flags and
# variables) and with themselves: probes on the health port, ports, Services,
# NetworkPolicy, ServiceMonitor, securityContext, shutdown timing, and TLS
# files from Secrets (tests/deploy/facts.mjs).
# Usage: k8s_facts.sh COWBLKD
. "$COWBLK_SOURCE_DIR/tests/deploy/lib.sh"
cowblkd=${1:?usage: k8s_facts.sh COWBLKD}
need_kubectl
need_node_modules
"$cowblkd" --help >"$TMP/help.txt" || fail "$cowblkd --help failed"
specs=""
for overlay in $VARIANTS; do
  render_variant "$overlay" "$TMP/$overlay.yaml"
  specs="$specs $overlay=$TMP/$overlay.yaml"
done
# shellcheck disable=SC2086
node "$DEPLOY_TESTS/facts.mjs" "$TMP/help.txt" "$COWBLK_SOURCE_DIR/deploy/prometheus/prometheus.yml" $specs
