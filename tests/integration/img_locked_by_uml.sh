# A COW file under a POSIX write lock (what a running UML holds) is reported
# in use; --force-share inspects it anyway.
. "$COWBLK_TESTS/support/testlib.sh"
stderr_in_out
make_volume
mkfifo "$TMP/ready" "$TMP/release"
python3 - "$TMP/vol.cow" "$TMP/ready" "$TMP/release" <<'PY' &
import fcntl, sys
f = open(sys.argv[1], "r+b")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
open(sys.argv[2], "w").write("locked\n")
open(sys.argv[3]).read()
PY
holder=$!
release() { echo done >"$TMP/release"; wait "$holder"; }
cleanup_hooks="release"
read -r state <"$TMP/ready"
[ "$state" = locked ] || fail "lock holder did not start"
expect_exit 3 "$IMG" check "$TMP/vol.cow"
expect_output "is in use: process $holder holds a write lock"
expect_exit 0 "$IMG" info --force-share "$TMP/vol.cow"
expect_output "format:        UML COW v3"
