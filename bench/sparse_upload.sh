#!/bin/sh
# Issue #21 item 5: how long `cowblk image upload` of a sparse file takes
# next to `cowblk cp` of it into a volume, and what the image allocates.
# The file: 1 GiB, 3 MiB of random data in three places and 1 MiB of
# explicit (allocated) zeros. A real cowblkd on loopback, its data directory
# in a scratch directory. Prints one line per command and round.
#
#   bench/sparse_upload.sh [BIN_DIR] [ROUNDS]    # BIN_DIR: build/bin
set -eu
here=$(cd "$(dirname "$0")" && pwd)
COWBLK_BIN=$(cd "${1:-$here/../build/bin}" && pwd)
ROUNDS=${2:-3}
COWBLK_TESTS="$here/../tests"
export COWBLK_BIN COWBLK_TESTS
. "$COWBLK_TESTS/support/testlib.sh"
MiB=1048576
start_server
f="$TMP/sparse"
truncate -s 1G "$f"
for at in 0 500 1023; do
  head -c $MiB /dev/urandom | dd of="$f" bs=$MiB seek=$at conv=notrunc iflag=fullblock status=none
done
dd if=/dev/zero of="$f" bs=$MiB seek=700 count=1 conv=notrunc status=none
seconds() { python3 -c 'import time; print(f"{time.monotonic():.3f}")'; }
for round in $(seq "$ROUNDS"); do
  s=$(seconds)
  "$COWBLK" image upload "$f" "img$round" >/dev/null
  e=$(seconds)
  alloc=$(($(stat -c %b "$TMP/data/images/img$round.img") * 512))
  echo "round $round: image upload $(echo "$e - $s" | bc) s, image allocates $alloc bytes"
  s=$(seconds)
  "$COWBLK" cp "$f" "vol:vol$round" --create >/dev/null
  e=$(seconds)
  echo "round $round: cp to a volume $(echo "$e - $s" | bc) s"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
