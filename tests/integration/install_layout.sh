# `cmake --install` into a scratch prefix puts every part where its users
# look: the binaries (each runs), libcowblk with its headers, CMake package
# and pkg-config file, the systemd unit, and the three manual pages, which
# `man -l` renders without a complaint, list every subcommand of their
# binary, and which `man` finds on MANPATH, as the unit's Documentation=
# names them (systemd-analyze verify --man=yes).
. "$COWBLK_TESTS/support/testlib.sh"
BUILD=$(cd "$COWBLK_BIN/.." && pwd)
P=$TMP/prefix
cmake --install "$BUILD" --prefix "$P" >"$TMP/install.log" || { cat "$TMP/install.log" >&2; fail "install"; }
for f in bin/cowblkd bin/cowblk bin/cowblk-img include/cowblk/client.h include/cowblk/volume.h \
    lib/systemd/system/cowblkd.service \
    share/man/man8/cowblkd.8 share/man/man1/cowblk.1 share/man/man1/cowblk-img.1; do
  [ -e "$P/$f" ] || fail "$f is not installed"
done
for b in cowblkd cowblk cowblk-img; do
  "$P/bin/$b" --version >/dev/null || fail "the installed $b does not run"
done
libdir=$(dirname "$(find "$P" -name libcowblk.a)")
for f in libcowblk.a libcowblk.so.0 pkgconfig/cowblk.pc cmake/cowblk/cowblkConfig.cmake; do
  [ -e "$libdir/$f" ] || fail "$f is not installed in $libdir"
done

# page SECTION NAME: rendered by man -l, nothing on stderr, its NAME line,
# every subcommand (and their subcommands) under COMMANDS.
page() {
  man -l "$P/share/man/man$1/$2.$1" >"$TMP/page" 2>"$TMP/man.err" || fail "man -l $2.$1"
  [ ! -s "$TMP/man.err" ] || { cat "$TMP/man.err" >&2; fail "man -l $2.$1 complained"; }
  grep -q "^       $2  *- " "$TMP/page" || { head -20 "$TMP/page" >&2; fail "$2.$1: NAME"; }
  grep -q "^SEE ALSO" "$TMP/page" || fail "$2.$1: no SEE ALSO"
  grep -q -- "--version" "$TMP/page" || fail "$2.$1: no options"
}
page 8 cowblkd
grep -q -- "--log-format" "$TMP/page" || fail "cowblkd.8 lacks --log-format"
page 1 cowblk-img
for sub in create info check map commit rebase; do
  grep -q "^   cowblk-img $sub$" "$TMP/page" || fail "cowblk-img.1 lacks $sub"
done
page 1 cowblk
for sub in "volume create" "volume rebase" "image upload" cp; do
  grep -q "^   cowblk $sub$" "$TMP/page" || fail "cowblk.1 lacks $sub"
done

[ "$(MANPATH=$P/share/man man -w cowblkd)" = "$P/share/man/man8/cowblkd.8" ] ||
  fail "man does not find cowblkd(8) on MANPATH"
if command -v systemd-analyze >/dev/null; then
  MANPATH=$P/share/man systemd-analyze verify --man=yes "$P/lib/systemd/system/cowblkd.service" \
    >"$TMP/verify" 2>&1 || { cat "$TMP/verify" >&2; fail "verify"; }
  [ ! -s "$TMP/verify" ] || { cat "$TMP/verify" >&2; fail "the unit's Documentation= is not found"; }
fi
