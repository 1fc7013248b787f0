# Every overlay of deploy/kubernetes renders with kubectl kustomize (v5) and
# holds the objects of issue #7; the base renders on its own too.
. "$COWBLK_SOURCE_DIR/tests/deploy/lib.sh"
need_kubectl
render "$K8S_DIR/base" "$TMP/base.yaml"
for overlay in $VARIANTS; do
  render_variant "$overlay" "$TMP/$overlay.yaml"
  kinds="Namespace ServiceAccount ConfigMap StatefulSet Service PodDisruptionBudget NetworkPolicy"
  for kind in $kinds; do
    grep -qx "kind: $kind" "$TMP/$overlay.yaml" || fail "overlay $overlay renders no $kind"
  done
  # The ServiceMonitor is opt-in: without the Prometheus Operator's CRDs a
  # shipped overlay that held one would fail to apply.
  if [ "$overlay" = tls+components ]; then
    grep -qx "kind: ServiceMonitor" "$TMP/$overlay.yaml" || fail "the servicemonitor component renders none"
    grep -q "localhostProfile: profiles/cowblk-io-uring.json" "$TMP/$overlay.yaml" ||
      fail "the seccomp-io-uring component sets no Localhost profile"
  else
    ! grep -qx "kind: ServiceMonitor" "$TMP/$overlay.yaml" ||
      fail "overlay $overlay renders a ServiceMonitor: it must be opt-in (components/servicemonitor)"
  fi
  [ "$(grep -cx 'kind: Service' "$TMP/$overlay.yaml")" -eq 2 ] ||
    fail "overlay $overlay: want two Services (headless and clients)"
  echo "ok: overlay $overlay renders $(grep -c '^kind: ' "$TMP/$overlay.yaml") objects"
done
