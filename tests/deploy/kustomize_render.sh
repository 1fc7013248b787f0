# Every overlay of deploy/kubernetes renders with kubectl kustomize (v5) and
# holds the objects of issue #7; the base renders on its own too.
. "$COWBLK_SOURCE_DIR/tests/deploy/lib.sh"
need_kubectl
render "$K8S_DIR/base" "$TMP/base.yaml"
for overlay in $OVERLAYS; do
  render "$K8S_DIR/overlays/$overlay" "$TMP/$overlay.yaml"
  kinds="Namespace ServiceAccount ConfigMap StatefulSet Service PodDisruptionBudget NetworkPolicy"
  [ "$overlay" = tls ] && kinds="$kinds ServiceMonitor"
  for kind in $kinds; do
    grep -qx "kind: $kind" "$TMP/$overlay.yaml" || fail "overlay $overlay renders no $kind"
  done
  [ "$(grep -cx 'kind: Service' "$TMP/$overlay.yaml")" -eq 2 ] ||
    fail "overlay $overlay: want two Services (headless and clients)"
  echo "ok: overlay $overlay renders $(grep -c '^kind: ' "$TMP/$overlay.yaml") objects"
done
