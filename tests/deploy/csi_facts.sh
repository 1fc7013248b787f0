# The CSI driver's manifests (deploy/kubernetes/csi: base and tls) render,
# pass the schema check (schema.mjs: known kinds, no unknown field) and
# agree with the real cowblk-csi (its --help) and with the servers'
# StatefulSet (csi_facts.mjs).
# Usage: csi_facts.sh COWBLK_CSI
. "$COWBLK_SOURCE_DIR/tests/deploy/lib.sh"
csi=${1:?usage: csi_facts.sh COWBLK_CSI}
need_kubectl
need_node_modules
"$csi" --help >"$TMP/csi-help.txt" || fail "$csi --help failed"
csi_facts() {
  k8s=${1:-$K8S_DIR}
  render "$k8s/base" "$TMP/servers.yaml"
  render "$k8s/csi/base" "$TMP/csi-base.yaml"
  render "$k8s/csi/tls" "$TMP/csi-tls.yaml"
  node "$DEPLOY_TESTS/schema.mjs" "$TMP/csi-base.yaml" "$TMP/csi-tls.yaml" >"$TMP/schema.out" ||
    { cat "$TMP/schema.out"; return 1; }
  node "$DEPLOY_TESTS/csi_facts.mjs" "$TMP/csi-help.txt" "$TMP/servers.yaml" \
    base="$TMP/csi-base.yaml" tls="$TMP/csi-tls.yaml"
}
if [ "${CSI_FACTS_NEGATIVE:-}" != 1 ]; then
  csi_facts
  exit 0
fi

# The negative half (csi_facts_negative.sh): each mistake alone, in a copy.
copy_manifests
csi_facts "$TMP/k8s" >/dev/null || fail "the unbroken copy does not pass"

copy_manifests
mutate csi/base/node.yaml "--no-controller" "--without-controller"
expect_failure "a flag cowblk-csi does not have" "--without-controller is not a cowblk-csi flag" csi_facts "$TMP/k8s"

copy_manifests
mutate csi/base/node.yaml "            - --server=cowblk-1=cowblk-1.cowblk-headless.cowblk.svc:7800
" ""
expect_failure "node plugins that know fewer servers" "know different servers" csi_facts "$TMP/k8s"

copy_manifests
mutate base/statefulset.yaml "replicas: 2" "replicas: 1"
expect_failure "a server list past the StatefulSet's replicas" \
  "--server cowblk-1=cowblk-1.cowblk-headless.cowblk.svc:7800 is not a pod of StatefulSet cowblk" csi_facts "$TMP/k8s"

copy_manifests
mutate csi/base/node.yaml "--kubelet-registration-path=/var/lib/kubelet/plugins/csi.cowblk.io/csi.sock" \
  "--kubelet-registration-path=/var/lib/kubelet/plugins/cowblk/csi.sock"
expect_failure "a registration path that is not the socket" "the registrar registers another path" csi_facts "$TMP/k8s"

copy_manifests
mutate csi/base/node.yaml "              mountPropagation: Bidirectional
            - name: state-dir" "            - name: state-dir"
expect_failure "the kubelet directory without Bidirectional propagation" \
  "the kubelet directory is not mounted from the host with Bidirectional propagation" csi_facts "$TMP/k8s"

copy_manifests
mutate csi/tls/controller-patch.yaml "secretName: cowblk-csi-credentials" "secretName: cowblk-credentials"
expect_failure "controller credentials from another Secret" \
  "COWBLK_TLS_CA /etc/cowblk-csi/ca.crt is not in a read-only mount of the Secret cowblk-csi-credentials" \
  csi_facts "$TMP/k8s"

copy_manifests
mutate csi/base/csidriver.yaml "attachRequired: false" "attachRequried: false"
expect_failure "a misspelled CSIDriver field" "unknown field spec.attachRequried" csi_facts "$TMP/k8s"

copy_manifests
mutate csi/base/volumesnapshotclass.yaml "driver: csi.cowblk.io" "driver: cowblk.io"
expect_failure "a VolumeSnapshotClass of another driver" "driver is not csi.cowblk.io" csi_facts "$TMP/k8s"

copy_manifests
mutate csi/base/volumesnapshotclass.yaml "deletionPolicy: Delete" "deletionPolicy: Delete
parameter:
  a: b"
expect_failure "a misspelled VolumeSnapshotClass field" "unknown field parameter" csi_facts "$TMP/k8s"

copy_manifests
mutate csi/base/volumesnapshotclass.yaml "  name: cowblk" "  name: cowblk
  lables:
    a: b"
expect_failure "a misspelled metadata field of a VolumeSnapshotClass" "unknown field metadata.lables" \
  csi_facts "$TMP/k8s"

copy_manifests
mutate csi/base/controller.yaml "            - --csi-address=/csi/csi.sock
            - --leader-election
            - --timeout=120s" "            - --csi-address=/run/csi.sock
            - --leader-election
            - --timeout=120s"
expect_failure "a snapshotter that dials another socket" "sidecar csi-snapshotter dials /run/csi.sock" \
  csi_facts "$TMP/k8s"

copy_manifests
mutate csi/base/rbac.yaml '    resources: ["persistentvolumeclaims/status"]' '    resources: ["persistentvolumeclaims"]'
expect_failure "a resizer that may not patch claims' status" \
  "may not patch persistentvolumes and persistentvolumeclaims/status" csi_facts "$TMP/k8s"
