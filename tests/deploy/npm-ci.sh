#!/bin/sh
# Installs the npm packages of tests/deploy (package-lock.json) into
# tests/deploy/node_modules, which git ignores. Does nothing when the
# installed packages are those of the current package.json and lock file and
# the current node (a stamp in node_modules records them). Safe to run from
# several tests at once: the install holds a lock. `npm ci` prefers the npm
# cache and otherwise fetches from the npm registry.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
for tool in node npm flock sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "FAIL: $tool not found; the deploy tests need Node.js >= 20 with npm" >&2
    exit 1
  }
done
want="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1) node $(node --version)"
stamp="$dir/node_modules/.cowblk-installed"
exec 9<"$dir/package-lock.json"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "tests/deploy/node_modules is current"
  exit 0
fi
cd "$dir"
if ! npm ci --prefer-offline --no-audit --no-fund --loglevel=error; then
  echo "FAIL: npm ci in $dir failed (it needs the npm registry, or the packages in the npm cache)" >&2
  exit 1
fi
echo "$want" >"$stamp"
echo "installed tests/deploy/node_modules"
