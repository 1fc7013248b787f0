# Every installed binary answers --version with its version and the git
# commit it was built from, and every --help (each subcommand's too) ends
# with a pointer to a manual that exists in docs/.
. "$COWBLK_TESTS/support/testlib.sh"
SRC=$(cd "$COWBLK_TESTS/.." && pwd)
want_version=$(sed -n 's/^project(cowblk VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
[ -n "$want_version" ] || fail "no project version in CMakeLists.txt"
head_commit=""
if git -C "$SRC" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  head_commit=$(git -C "$SRC" rev-parse HEAD)
fi

# help_ends_with_manual NAME CMD...: the last non-empty line of CMD --help
# names docs/X.md, and that file exists; then the same for each subcommand.
help_ends_with_manual() {
  name=$1
  shift
  expect_exit 0 "$@" --help
  last=$(grep -v '^[[:space:]]*$' "$TMP/out" | tail -n 1)
  manual=$(printf '%s\n' "$last" | grep -o 'docs/[a-z0-9-]*\.md' | tail -n 1) ||
    fail "'$* --help' ends with '$last', no manual"
  [ -f "$SRC/$manual" ] || fail "'$* --help' points to $manual, which does not exist"
  # Subcommands: the first word of each line of the "Subcommands:" section.
  subs=$(sed -n '/^Subcommands:/,/^$/p' "$TMP/out" | sed -n 's/^  \([a-z][a-z-]*\).*/\1/p')
  for sub in $subs; do
    help_ends_with_manual "$name $sub" "$@" "$sub"
  done
}

for binary in cowblkd cowblk cowblk-img; do
  expect_exit 0 "$COWBLK_BIN/$binary" --version
  [ "$(wc -l <"$TMP/out")" -eq 1 ] || { cat "$TMP/out" >&2; fail "$binary --version: not one line"; }
  line=$(cat "$TMP/out")
  case $line in
    "$binary $want_version (commit "*")") ;;
    *) fail "$binary --version printed '$line', want '$binary $want_version (commit ...)'" ;;
  esac
  commit=${line#*(commit }
  commit=${commit%)}
  if [ -n "$head_commit" ]; then
    # The build's commit is this checkout's HEAD (a "-dirty" suffix aside).
    got=$(git -C "$SRC" rev-parse --verify -q "${commit%-dirty}^{commit}") ||
      fail "$binary --version: commit '$commit' is not a commit of $SRC"
    [ "$got" = "$head_commit" ] || fail "$binary --version: commit $got, HEAD is $head_commit"
  else
    [ "$commit" = unknown ] || fail "$binary --version: '$commit' outside a git checkout"
  fi
  help_ends_with_manual "$binary" "$COWBLK_BIN/$binary"
done
