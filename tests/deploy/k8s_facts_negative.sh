# Drift between the manifests and cowblkd breaks the build: a flag renamed in
# the manifests or in the server, a misspelled variable, a probe on the wrong
# port, a grace period shorter than the drain, TLS files outside the Secret
# mount, a value cowblkd refuses (k8s_config_starts.sh). Each mistake alone,
# in a scratch copy; the unbroken copy passes.
# Usage: k8s_facts_negative.sh COWBLKD
. "$COWBLK_SOURCE_DIR/tests/deploy/lib.sh"
cowblkd=${1:?usage: k8s_facts_negative.sh COWBLKD}
need_kubectl
need_node_modules
"$cowblkd" --help >"$TMP/help.txt" || fail "$cowblkd --help failed"
prom="$COWBLK_SOURCE_DIR/deploy/prometheus/prometheus.yml"
facts() {
  render "$TMP/k8s/overlays/dev" "$TMP/dev.yaml"
  render "$TMP/k8s/overlays/tls" "$TMP/tls.yaml"
  render_variant tls+components "$TMP/tlsc.yaml" "$TMP/k8s"
  node "$DEPLOY_TESTS/facts.mjs" "${HELP:-$TMP/help.txt}" "$prom" dev="$TMP/dev.yaml" tls="$TMP/tls.yaml" \
    tls+components="$TMP/tlsc.yaml"
}

copy_manifests
facts >/dev/null || fail "the unbroken copy does not pass"

copy_manifests
mutate base/statefulset.yaml "--health-listen=" "--health-address="
expect_failure "a flag cowblkd does not have" "arg --health-address is not a cowblkd flag" facts

# The server renames its flag: the manifests, unchanged, no longer match.
copy_manifests
sed 's/--health-listen/--health-address/' "$TMP/help.txt" >"$TMP/renamed-help.txt"
HELP="$TMP/renamed-help.txt"
expect_failure "a flag renamed in cowblkd" "arg --health-listen is not a cowblkd flag" facts
HELP=

copy_manifests
mutate base/cowblkd.env "COWBLK_DURABILITY=" "COWBLK_DURABILTY="
expect_failure "a misspelled variable" "variable COWBLK_DURABILTY is not one cowblkd reads" facts

copy_manifests
mutate base/statefulset.yaml "          readinessProbe:
            grpc:
              port: 7801" "          readinessProbe:
            grpc:
              port: 7800"
expect_failure "a probe on the gRPC port" "readinessProbe targets port 7800, the health port is 7801" facts

copy_manifests
mutate base/statefulset.yaml "--health-listen=0.0.0.0:7801" "--health-listen=127.0.0.1:7801"
expect_failure "a health port on loopback" "--health-listen binds 127.0.0.1, not every interface" facts

copy_manifests
mutate base/statefulset.yaml "terminationGracePeriodSeconds: 90" "terminationGracePeriodSeconds: 40"
expect_failure "a grace period shorter than drain + flush" \
  "terminationGracePeriodSeconds 40 < --drain-seconds 30 + 30s flush margin" facts

copy_manifests
mutate base/statefulset.yaml "readOnlyRootFilesystem: true" "readOnlyRootFilesystem: false"
expect_failure "a writable root filesystem" "readOnlyRootFilesystem is not true" facts

copy_manifests
mutate base/service.yaml "targetPort: grpc" "targetPort: rpc"
expect_failure "a Service port that names no container port" \
  "Service cowblk port grpc targets rpc, not a named container port" facts

copy_manifests
mutate overlays/tls/statefulset-patch.yaml "--tls-key=/etc/cowblk/tls/tls.key" "--tls-key=/etc/cowblk/tls.key"
expect_failure "a TLS key outside the Secret's files" \
  "--tls-key /etc/cowblk/tls.key is not a file of a mounted Secret" facts

copy_manifests
mutate overlays/dev/statefulset-patch.yaml "      memory: 1Gi" "      memory: 512Mi"
expect_failure "budgets above the memory limit" \
  "--max-server-bytes 256 MiB + --grpc-memory-bytes 256 MiB + 300 MiB baseline is more than the memory limit 512Mi" facts

# A value facts.mjs cannot judge: the real cowblkd refuses it at start.
copy_manifests
sh "$DEPLOY_TESTS/k8s_config_starts.sh" "$cowblkd" "$TMP/k8s" >/dev/null ||
  fail "the unbroken copy does not start"
mutate base/cowblkd.env "COWBLK_CACHE=writeback" "COWBLK_CACHE=wrtieback"
expect_failure "a value cowblkd refuses" "--cache: wrtieback not in {writeback,none}" \
  sh "$DEPLOY_TESTS/k8s_config_starts.sh" "$cowblkd" "$TMP/k8s"

# The client Service balances over every pod: a volume's requests would reach
# pods that do not hold it.
copy_manifests
mutate base/service.yaml "    statefulset.kubernetes.io/pod-name: cowblk-0
" ""
expect_failure "a client Service over every pod" \
  "client Service cowblk balances over every pod" facts

copy_manifests
mutate base/statefulset.yaml "whenUnsatisfiable: ScheduleAnyway" "whenUnsatisfiable: DoNotSchedule"
expect_failure "a hard spread constraint" "no topologySpreadConstraints over kubernetes.io/hostname" facts

# A shipped overlay that includes the ServiceMonitor fails to apply on a
# cluster without the Prometheus Operator.
copy_manifests
mutate overlays/tls/kustomization.yaml "patches:" "components:
  - ../../components/servicemonitor
patches:"
expect_failure "a ServiceMonitor in the tls overlay" "tls: a ServiceMonitor in a shipped overlay" facts

copy_manifests
mutate components/seccomp-io-uring/kustomization.yaml "localhostProfile: profiles/cowblk-io-uring.json" \
  "localhostProfile: cowblk-io-uring.json"
expect_failure "a seccomp profile at another path" \
  "seccompProfile is not Localhost profiles/cowblk-io-uring.json" facts
