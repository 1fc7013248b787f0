# Installs the client component into a scratch prefix and checks what an
# application gets: libcowblk.so (SONAME libcowblk.so.0, exporting the
# public API only) and libcowblk.a, built against through the CMake package
# (cowblk::client and cowblk::client_static) and through pkg-config (also
# with client/examples/README.md's lines as written), each program run
# against a real cowblkd, as is the installed cowblk CLI.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR COWBLKD [CXXFLAGS]
# CXXFLAGS are added when compiling and linking the examples (a sanitizer
# build installs instrumented code).
set -eu
BUILD=$1
SRC=$2
FLAGS=${4:-}
COWBLK_BIN=$(dirname "$3")
# A scratch $TMP, fail, start_server (ready on its serving line).
. "$SRC/tests/support/testlib.sh"
# needs BINARY LIB: whether BINARY's dynamic section names LIB.
needs() {
  readelf -d "$1" | grep -q "(NEEDED).*\[$2"
}

cmake --install "$BUILD" --prefix "$TMP/prefix" --component client >"$TMP/install.log"
for f in bin/cowblk include/cowblk/client.h include/cowblk/volume.h include/cowblk/types.h \
         include/cowblk/export.h; do
  [ -e "$TMP/prefix/$f" ] || fail "$f is not installed"
done
libdir=$(dirname "$(find "$TMP/prefix" -name libcowblk.a)")
for f in libcowblk.a libcowblk.so pkgconfig/cowblk.pc cmake/cowblk/cowblkConfig.cmake \
         cmake/cowblk/cowblkTargets.cmake; do
  [ -e "$libdir/$f" ] || fail "$f is not installed in $libdir"
done
# No gRPC type leaks into the public headers.
if grep -nE "#include.*grpc|grpc::" "$TMP/prefix/include/cowblk/"*.h; then fail "public headers use gRPC"; fi

# The shared library: its SONAME, and only the public API exported. Public
# names are cowblk::Capitalized; lower-case namespaces (cowblk::v1, the
# generated code, cowblk::internal) are private. Weak instances of the
# standard library's templates are exported because libstdc++ declares
# namespace std visible (a function template's demangled name starts with
# its return type: `void std::call_once<...>(...)`, as in a Debug build);
# nothing else may be (gRPC, protobuf, abseil).
so=$libdir/libcowblk.so.0
[ -f "$so" ] || fail "libcowblk.so.0 is not installed"
readelf -d "$so" | grep -q "(SONAME).*\[libcowblk.so.0\]" || fail "SONAME is not libcowblk.so.0"
nm -D --defined-only --demangle "$so" | cut -d' ' -f3- \
  | sed -E 's/^(typeinfo name for |typeinfo for |vtable for |VTT for |guard variable for )//' \
  >"$TMP/exported"
grep -q "^cowblk::Client::Create(" "$TMP/exported" || fail "cowblk::Client::Create is not exported"
grep -q "^cowblk::Volume::Read(" "$TMP/exported" || fail "cowblk::Volume::Read is not exported"
if grep -vE "^(cowblk::[A-Z]|([^ ]+ )?std::)" "$TMP/exported"; then fail "libcowblk.so exports the above"; fi

# 1. The CMake package: cowblk::client (shared), cowblk::client_static.
cmake -S "$SRC/client/examples" -B "$TMP/examples" -DCMAKE_PREFIX_PATH="$TMP/prefix" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="$FLAGS" \
  >"$TMP/configure.log" 2>&1 || { cat "$TMP/configure.log"; fail "configure"; }
cmake --build "$TMP/examples" >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; fail "build"; }
needs "$TMP/examples/hello_volume" libcowblk.so.0 || fail "cowblk::client is not libcowblk.so.0"
ldd "$TMP/examples/hello_volume" | grep -q "libcowblk.so.0 => $libdir/" \
  || fail "hello_volume does not load the installed libcowblk.so.0"
if needs "$TMP/examples/hello_volume_static" libcowblk; then fail "cowblk::client_static needs libcowblk.so"; fi

# 2. pkg-config: the shared library; gRPC and protobuf only for a static link.
pc() { PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config "$@" cowblk; }
[ "$(pc --modversion)" = 0.1.0 ] || fail "pkg-config cannot find cowblk 0.1.0"
case " $(pc --libs) " in *" -lgrpc++ "*) fail "pkg-config --libs names gRPC" ;; esac
for lib in -lgrpc++ -lprotobuf; do
  case " $(pc --static --libs) " in *" $lib "*) ;; *) fail "pkg-config --static --libs lacks $lib" ;; esac
done
# shellcheck disable=SC2046,SC2086
c++ -std=c++17 $FLAGS "$SRC/client/examples/hello_volume.cc" -o "$TMP/hello_pc" \
  $(pc --cflags --libs) -Wl,-rpath,"$libdir" || fail "pkg-config build"
needs "$TMP/hello_pc" libcowblk.so.0 || fail "pkg-config does not link libcowblk.so.0"

# 3. client/examples/README.md's pkg-config lines as a reader runs them:
# the shell block after "or with pkg-config", in a shell where
# PKG_CONFIG_PATH is unset, with its prefix /tmp/cowblk made ours (and the
# sanitizer flags added).
mkdir "$TMP/readme"
cp "$SRC/client/examples/hello_volume.cc" "$TMP/readme/"
awk '/^or with pkg-config/ { found = 1 } found && /^```/ { if (inside) exit; inside = 1; next }
     inside' "$SRC/client/examples/README.md" >"$TMP/readme/lines.sh"
grep -q "pkg-config --cflags --libs cowblk" "$TMP/readme/lines.sh" ||
  fail "no pkg-config block in client/examples/README.md"
sed -i "s|/tmp/cowblk/lib|$libdir|g; s|c++ -std=c++17|c++ -std=c++17 $FLAGS|" "$TMP/readme/lines.sh"
(cd "$TMP/readme" && env -u PKG_CONFIG_PATH sh -eu lines.sh) >"$TMP/readme.log" 2>&1 ||
  { cat "$TMP/readme/lines.sh" "$TMP/readme.log"; fail "client/examples/README.md's pkg-config lines"; }

# All of them against a real server.
start_server
addr=$COWBLK_SERVER
for p in examples/hello_volume examples/hello_volume_static hello_pc readme/hello_volume; do
  [ "$("$TMP/$p" "$addr" hello)" = ok ] || fail "$p failed"
done
[ "$("$TMP/prefix/bin/cowblk" --server "$addr" --json volume info hello | grep -c '"allocated_bytes": 4194304')" = 1 ] \
  || fail "the installed cowblk does not see the volume"
echo "install test passed"
