# Drift between the CSI manifests, cowblk-csi and the servers' StatefulSet
# breaks the build: each mistake alone, in a scratch copy (csi_facts.sh's
# second half); the unbroken copy passes.
# Usage: csi_facts_negative.sh COWBLK_CSI
CSI_FACTS_NEGATIVE=1
. "$COWBLK_SOURCE_DIR/tests/deploy/csi_facts.sh"
