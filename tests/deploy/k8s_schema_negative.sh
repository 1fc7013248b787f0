# The schema check catches what the API server would accept and ignore, or
# reject: a copy of deploy/kubernetes with one mistake at a time renders
# fine, and schema.mjs fails on it, naming the mistake. The unbroken copy
# passes, so the failures come from the mistakes.
. "$COWBLK_SOURCE_DIR/tests/deploy/lib.sh"
need_kubectl
need_node_modules
check() { node "$DEPLOY_TESTS/schema.mjs" "$TMP/out.yaml"; }

copy_manifests
render "$TMP/k8s/overlays/dev" "$TMP/out.yaml"
check >/dev/null || fail "the unbroken copy does not pass"

copy_manifests
mutate base/statefulset.yaml "readinessProbe:" "readinesProbe:"
render "$TMP/k8s/overlays/dev" "$TMP/out.yaml"
expect_failure "a misspelled readinessProbe" \
  "unknown field spec.template.spec.containers[0].readinesProbe" check

copy_manifests
mutate base/service-headless.yaml "clusterIP: None" "clusterIp: None"
render "$TMP/k8s/overlays/tls" "$TMP/out.yaml"
expect_failure "a misspelled clusterIP" "unknown field spec.clusterIp" check

copy_manifests
mutate components/servicemonitor/servicemonitor.yaml "    - port: metrics" "    - portName: metrics"
render_variant tls+components "$TMP/out.yaml" "$TMP/k8s"
expect_failure "an unknown ServiceMonitor field" "unknown field spec.endpoints[0].portName" check

copy_manifests
mutate base/statefulset.yaml "failureThreshold: 120" "failureThreshold: many"
render "$TMP/k8s/overlays/dev" "$TMP/out.yaml"
expect_failure "a string where the schema wants an integer" \
  "startupProbe/failureThreshold must be integer" check

copy_manifests
mutate base/poddisruptionbudget.yaml "apiVersion: policy/v1" "apiVersion: policy/v1beta2"
render "$TMP/k8s/overlays/dev" "$TMP/out.yaml"
expect_failure "an unknown apiVersion" "unknown apiVersion/kind policy/v1beta2/PodDisruptionBudget" check
