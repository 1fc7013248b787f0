# Installs the client component into a scratch prefix, builds
# client/examples against it twice (CMake package, then pkg-config), and runs
# the example against a real cowblkd.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR COWBLKD [CXXFLAGS]
# CXXFLAGS are added when compiling and linking the examples (a sanitizer
# build installs instrumented code).
set -eu
BUILD=$1
SRC=$2
COWBLKD=$3
FLAGS=${4:-}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cowblk-install-XXXXXX")
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

cmake --install "$BUILD" --prefix "$TMP/prefix" --component client >"$TMP/install.log"
for f in bin/cowblk include/cowblk/client.h include/cowblk/volume.h include/cowblk/types.h; do
  [ -e "$TMP/prefix/$f" ] || fail "$f is not installed"
done
libdir=$(dirname "$(find "$TMP/prefix" -name libcowblk.a)")
[ -f "$libdir/libcowblk.a" ] || fail "libcowblk.a is not installed"
[ -f "$libdir/pkgconfig/cowblk.pc" ] || fail "cowblk.pc is not installed"
[ -f "$libdir/cmake/cowblk/cowblkConfig.cmake" ] || fail "cowblkConfig.cmake is not installed"
# No gRPC type leaks into the public headers.
if grep -nE "#include.*grpc|grpc::" "$TMP/prefix/include/cowblk/"*.h; then fail "public headers use gRPC"; fi

# 1. The CMake package.
cmake -S "$SRC/client/examples" -B "$TMP/examples" -DCMAKE_PREFIX_PATH="$TMP/prefix" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="$FLAGS" \
  >"$TMP/configure.log" 2>&1 || { cat "$TMP/configure.log"; fail "configure"; }
cmake --build "$TMP/examples" >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; fail "build"; }

# 2. pkg-config.
PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --exists cowblk || fail "pkg-config cannot find cowblk"
# shellcheck disable=SC2046,SC2086
c++ -std=c++17 $FLAGS "$SRC/client/examples/hello_volume.cc" -o "$TMP/hello_pc" \
  $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs cowblk) || fail "pkg-config build"

# Both run against a real server.
mkdir "$TMP/data"
COWBLK_METRICS_LISTEN=127.0.0.1:0 "$COWBLKD" --data-dir "$TMP/data" --listen 127.0.0.1:0 \
  2>"$TMP/server.log" &
server=$!
i=0
until grep -q "event=serving" "$TMP/server.log"; do
  i=$((i + 1))
  [ $i -lt 200 ] || { cat "$TMP/server.log"; fail "cowblkd did not start"; }
  sleep 0.05
done
addr=$(sed -n 's/.*event=serving address=\([^ ]*\).*/\1/p' "$TMP/server.log")
[ "$("$TMP/examples/hello_volume" "$addr" hello)" = ok ] || fail "hello_volume (CMake) failed"
[ "$("$TMP/hello_pc" "$addr" hello)" = ok ] || fail "hello_volume (pkg-config) failed"
[ "$("$TMP/prefix/bin/cowblk" --server "$addr" --json volume info hello | grep -c '"allocated_bytes": 4194304')" = 1 ] \
  || fail "the installed cowblk does not see the volume"
echo "install test passed"
