# Every object of every rendered overlay passes schema validation
# (kubernetes-models, @kubernetes-models/prometheus-operator) and has no
# field its schema does not define (tests/deploy/schema.mjs).
. "$COWBLK_SOURCE_DIR/tests/deploy/lib.sh"
need_kubectl
need_node_modules
files=""
for overlay in $VARIANTS; do
  render_variant "$overlay" "$TMP/$overlay.yaml"
  files="$files $TMP/$overlay.yaml"
done
# shellcheck disable=SC2086
node "$DEPLOY_TESTS/schema.mjs" $files
