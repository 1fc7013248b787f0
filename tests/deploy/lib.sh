# Sourced by the deploy tests (tests/CMakeLists.txt): a scratch directory
# removed on exit, kubectl (kustomize v5) and the npm packages, and renders of
# deploy/kubernetes. Everything is offline: there is no cluster.
set -eu
: "${COWBLK_SOURCE_DIR:?set COWBLK_SOURCE_DIR to the source tree}"
DEPLOY_TESTS="$COWBLK_SOURCE_DIR/tests/deploy"
K8S_DIR="$COWBLK_SOURCE_DIR/deploy/kubernetes"
OVERLAYS="dev tls"
# The opt-in components of deploy/kubernetes/components, checked together on
# top of the tls overlay as the variant "tls+components" (render_variant).
COMPONENTS="servicemonitor seccomp-io-uring"
VARIANTS="$OVERLAYS tls+components"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cowblk-deploy-XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# kubectl with kustomize v5 renders the manifests. It is not skipped: a
# machine without it cannot check the manifests, and says so.
need_kubectl() {
  command -v kubectl >/dev/null 2>&1 ||
    fail "kubectl not found: the deploy tests render deploy/kubernetes with 'kubectl kustomize'" \
      "(kustomize v5, kubectl >= 1.27); install kubectl (Debian package kubectl from the Kubernetes or Google Cloud apt source)"
  kv=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\)\..*/\1/p')
  [ -n "$kv" ] && [ "$kv" -ge 5 ] ||
    fail "kubectl's kustomize is not v5 or later ($(kubectl version --client 2>&1 | tr '\n' ' '))"
}

need_node_modules() {
  sh "$DEPLOY_TESTS/npm-ci.sh" >/dev/null || fail "npm packages of tests/deploy not installed (see above)"
}

# render DIR OUT: kubectl kustomize DIR > OUT, failing with kustomize's message.
render() {
  kubectl kustomize "$1" >"$2" 2>"$TMP/render.err" || {
    cat "$TMP/render.err" >&2
    fail "kubectl kustomize $1 failed"
  }
  [ -s "$2" ] || fail "kubectl kustomize $1 rendered nothing"
}

# render_variant NAME OUT [K8S]: renders an overlay of K8S (default
# deploy/kubernetes) or "tls+components": the tls overlay with every opt-in
# component added to its kustomization, as docs/kubernetes.md tells users to.
render_variant() {
  k8s=${3:-$K8S_DIR}
  case $1 in
    tls+components)
      rm -rf "$TMP/variant" && mkdir -p "$TMP/variant" && cp -R "$k8s/." "$TMP/variant/" ||
        fail "cannot copy $k8s"
      {
        printf 'components:\n'
        for c in $COMPONENTS; do printf '  - ../../components/%s\n' "$c"; done
      } >>"$TMP/variant/overlays/tls/kustomization.yaml"
      render "$TMP/variant/overlays/tls" "$2"
      ;;
    *) render "$k8s/overlays/$1" "$2" ;;
  esac
}

# copy_manifests: a scratch copy of deploy/kubernetes in $TMP/k8s, to break.
copy_manifests() {
  rm -rf "$TMP/k8s"
  cp -R "$K8S_DIR" "$TMP/k8s"
}

# mutate FILE FROM TO: replaces the text FROM by TO in FILE (a path under the
# copy), failing if FROM is not there, so a mutation never silently does nothing.
mutate() {
  FROM="$2" TO="$3" perl -0777 -i -pe \
    '$n += s/\Q$ENV{FROM}\E/$ENV{TO}/g; END { exit($n ? 0 : 3) }' "$TMP/k8s/$1" ||
    fail "mutation: '$2' not in $1"
}

# expect_failure WHAT MESSAGE CMD...: CMD exits 1 and prints MESSAGE.
expect_failure() {
  what=$1 message=$2
  shift 2
  set +e
  "$@" >"$TMP/out" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 1 ] || { cat "$TMP/out" >&2; fail "$what: exited $rc, want 1"; }
  grep -qF -- "$message" "$TMP/out" || { cat "$TMP/out" >&2; fail "$what: output lacks '$message'"; }
  echo "ok: $what is rejected ($message)"
}
