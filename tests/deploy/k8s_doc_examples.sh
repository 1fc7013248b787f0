# docs/kubernetes.md's and docs/csi.md's YAML examples work when applied as
# written: each passes schema validation with no unknown field (schema.mjs),
# a one-off command runs as a Job (not a Pod that restarts it forever), and
# every path it uses is mounted from a volume it declares (doc_examples.mjs).
. "$COWBLK_SOURCE_DIR/tests/deploy/lib.sh"
need_node_modules
for doc in kubernetes csi; do
  node "$DEPLOY_TESTS/doc_examples.mjs" "$COWBLK_SOURCE_DIR/docs/$doc.md" "$TMP/$doc-examples.yaml"
  node "$DEPLOY_TESTS/schema.mjs" "$TMP/$doc-examples.yaml"
done
