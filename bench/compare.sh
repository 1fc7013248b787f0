#!/usr/bin/env bash
# compare.sh: cowblk next to its peers, one machine, one run, one image,
# the same workloads (issue #5):
#
#   fio       local `fio --ioengine=io_uring` on plain files (the limit: no
#             network, no copy-on-write)
#   cowblk    cowblkd on TCP loopback (its defaults: ordered durability,
#             page cache, plus --nbd-listen), driven by cowblk-bench over
#             libcowblk: 4 KiB requests over its Session streams, 1 MiB
#             ones over the server's NBD export (VolumeOptions::nbd)
#   cowblk-deferred  the same with --durability deferred: the same flush
#             contract as the peers (a flush makes every acknowledged write
#             durable; qcow2 too defers its metadata until then), no
#             garbage after a power loss, a crash of cowblkd reported to
#             clients (docs/cowblkd.md, "Epochs")
#   cowblk-nbd  the first cowblkd's NBD export (`--nbd-listen`, same
#             volumes, same engine, ordered durability), cowblk-bench over
#             libnbd: the same client library as the NBD peers
#   cowblk-nbd-deferred  the deferred cowblkd's NBD export: the NBD path
#             with the peers' flush contract
#   nbdkit    `nbdkit --filter=cow file IMAGE` on TCP loopback, cowblk-bench
#             over libnbd
#   qemu-nbd  `qemu-nbd` on a qcow2 overlay of the image (its defaults:
#             writeback cache), TCP loopback, cowblk-bench over libnbd
#
# Workloads: 4 KiB random read and write at depth 1 and 32, 1 MiB
# sequential read and write at depth 8, each on allocated sectors (the
# overlay was filled first: COW reads, rewrites) and on unallocated ones (a
# fresh overlay: reads fall through to the image, writes allocate). Every
# row starts a fresh server and overlay per target; targets alternate within
# a row (the order rotates) so drift in a shared machine's load hits all of
# them alike. One stream (connection) per target; the depth is the number
# of requests in flight on it.
#
# Writes markdown tables (IOPS and MiB/s, p99, ratios of each cowblk target
# to each peer with the issue's floors marked), a PNG chart (gnuplot) and
# summary.md (what ran, and the tables) into OUTDIR.
#
# With -B, a second build (its cowblkd, cowblk and cowblk-bench: server and
# client library both) is measured the same way beside the first, as the
# targets before, before-deferred, before-nbd and before-nbd-deferred, and
# a table gives each cowblk target's IOPS as a ratio to its "before" twin:
# a change's before/after in one run.
#
# Usage: bench/compare.sh [-d DIR] [-s SIZE] [-t SECONDS] [-r REPEATS]
#                         [-b BUILD_BIN] [-B BEFORE_BIN] [-o OUTDIR] [-w ROWS]
#                         [-x FLAGS]
#   -d  scratch directory on a real file system (default /var/tmp/cowblk-compare)
#   -s  image and working-set size (default 512M)
#   -t  seconds per measurement (default 5), after a 1 s ramp
#   -r  measurements per target and row, averaged (default 1)
#   -b  directory with cowblkd, cowblk and cowblk-bench (default build/bin)
#   -B  another such directory, measured too as the "before" targets
#   -o  where the tables, chart and raw JSON go (default: a new directory
#       under $COWBLK_BENCH_OUT, see bench/README.md)
#   -w  comma-separated row names to run (default: all; see -h output below)
#   -x  extra cowblkd flags for both servers, e.g. "--write-split-kib 64"
# Needs fio, nbdkit, qemu-nbd, qemu-img, gnuplot and /usr/bin/python3
# (`make deps` installs them). Exit status 1 if cowblk-deferred misses a
# floor (the tables show the floors of every cowblk target).
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

dir=/var/tmp/cowblk-compare
size=512M
secs=5
only=
extra=
before=
while getopts d:s:t:r:b:B:o:w:x:h opt; do
  case $opt in
    w) only=$OPTARG ;;
    x) extra=$OPTARG ;;
    B) before=$OPTARG ;;
    *) bench_opt "$opt" "${OPTARG-}" ;;
  esac
done
need_tools "$bin/cowblkd" "$bin/cowblk" "$bin/cowblk-bench" fio nbdkit qemu-nbd qemu-img gnuplot
[ -z "$before" ] || need_tools "$before/cowblkd" "$before/cowblk" "$before/cowblk-bench"
mkdir -p "$dir"
bench_rm_at_exit "$dir"
bench_out
rm -f "$out"/*.json "$out"/*.log  # a reused -o

bytes=$(size_bytes "$size")
img=$dir/base.img
random_image "$img" "$size"

# One cowblkd per durability mode (and build) for the whole run: every row
# gets a fresh volume over the uploaded image.
# start_server NAME BIN FLAGS...
start_server() {
  local name=$1 bin=$2
  shift 2
  mkdir -p "$dir/$name"
  # shellcheck disable=SC2086 # $extra is a list of flags
  cowblkd_start "$out/$name.log" "$bin/cowblkd" --data-dir "$dir/$name" --metrics-listen "" \
    --nbd-listen 127.0.0.1:0 $extra "$@"
  log "$name: $cowblkd_addr, NBD $cowblkd_nbd"
  COWBLK_SERVER=$cowblkd_addr "$bin/cowblk" image upload "$img" base >/dev/null
}
declare -A server_of nbd_of
pids=()
ours=(cowblk cowblk-deferred cowblk-nbd cowblk-nbd-deferred)
[ -z "$before" ] || ours+=(before before-deferred before-nbd before-nbd-deferred)
for build in cowblk ${before:+before}; do
  build_bin=$bin
  [ "$build" = before ] && build_bin=$before
  start_server "$build-deferred-server" "$build_bin" --durability deferred
  pids+=("$cowblkd_pid")
  server_of[$build-deferred]=$cowblkd_addr nbd_of[$build-deferred]=$cowblkd_nbd
  start_server "$build-server" "$build_bin"
  pids+=("$cowblkd_pid")
  server_of[$build]=$cowblkd_addr nbd_of[$build]=$cowblkd_nbd
done
vol_seq=0

# run TARGET JSON RW BS DEPTH ALLOC: one measurement on a fresh overlay.
# shellcheck disable=SC2317 # called through measure_rows
run() {
  local target=$1 json=$2 rw=$3 bs=$4 depth=$5 alloc=$6 port pid
  case $target in
    fio)
      # Reads: the image itself. Writes: a copy of it (allocated) or a
      # sparse file of its size (unallocated).
      local file=$img
      if [ "${rw#rand}" = write ] || [ "$rw" = write ]; then
        file=$dir/fio-target.img
        rm -f "$file"
        if [ "$alloc" = allocated ]; then cp "$img" "$file"; else truncate -s "$bytes" "$file"; fi
      fi
      # --iomem=mmap: page-aligned buffers (fio's malloc'ed ones make its
      # buffered reads several times slower here, see RESULTS.md "Buffer
      # alignment"); --invalidate=0: keep the file in the page cache, as the
      # servers' files are.
      fio --name=x --ioengine=io_uring --filename="$file" --size="$bytes" --rw="$rw" --bs="$bs" \
        --iodepth="$depth" --iomem=mmap --invalidate=0 \
        --norandommap --time_based --runtime="$secs" --ramp_time=1 \
        --lat_percentiles=1 --output-format=json --output="$json" >"$json.log" 2>&1 ||
        { cat "$json.log" >&2; die 1 "fio failed"; }
      ;;
    cowblk* | before*)
      # The server: the build's ordered or deferred one; -nbd: its export
      # through libnbd. A "before" target runs the other build's tools too
      # (bench_cell and bench_prefill use $bin).
      local build=${target%%-*} bin=$bin server_key
      [ "$build" = before ] && bin=$before
      server_key=$build
      case $target in *deferred) server_key=$build-deferred ;; esac
      local srv=${server_of[$server_key]}
      vol_seq=$((vol_seq + 1))
      local vol=cmp$vol_seq uri
      uri=cowblk://$srv/$vol
      case $target in *-nbd*) uri=nbd://${nbd_of[$server_key]}/$vol ;; esac
      COWBLK_SERVER=$srv "$bin/cowblk" volume create "$vol" --image base >/dev/null
      [ "$alloc" = allocated ] && bench_prefill "$uri" "$bytes" "$json.log"
      bench_cell "$uri" "$rw" "$bs" "$depth" "$bytes" "$json"
      COWBLK_SERVER=$srv "$bin/cowblk" volume rm "$vol" >/dev/null
      ;;
    nbdkit)
      nbdkit_start "$img"
      [ "$alloc" = allocated ] && bench_prefill "$nbdkit_uri" "$bytes" "$json.log"
      bench_cell "$nbdkit_uri" "$rw" "$bs" "$depth" "$bytes" "$json"
      nbdkit_stop
      ;;
    qemu-nbd)
      port=$(free_port)
      rm -f "$dir/overlay.qcow2"
      qemu-img create -q -f qcow2 -F raw -b "$img" "$dir/overlay.qcow2"
      # --fork returns once the server listens.
      qemu-nbd --fork -f qcow2 -b 127.0.0.1 -p "$port" --pid-file "$dir/qemu-nbd.pid" \
        --persistent "$dir/overlay.qcow2"
      pid=$(cat "$dir/qemu-nbd.pid")
      bench_kill_at_exit "$pid"
      [ "$alloc" = allocated ] && bench_prefill "nbd://127.0.0.1:$port" "$bytes" "$json.log"
      bench_cell "nbd://127.0.0.1:$port" "$rw" "$bs" "$depth" "$bytes" "$json"
      kill "$pid"
      bench_forget "$pid"
      ;;
  esac
}

# name rw bs depth alloc
rows="randread-4k-qd1-allocated randread 4k 1 allocated
randread-4k-qd32-allocated randread 4k 32 allocated
randread-4k-qd1-unallocated randread 4k 1 unallocated
randread-4k-qd32-unallocated randread 4k 32 unallocated
randwrite-4k-qd1-allocated randwrite 4k 1 allocated
randwrite-4k-qd32-allocated randwrite 4k 32 allocated
randwrite-4k-qd1-unallocated randwrite 4k 1 unallocated
randwrite-4k-qd32-unallocated randwrite 4k 32 unallocated
read-1m-qd8-allocated read 1m 8 allocated
read-1m-qd8-unallocated read 1m 8 unallocated
write-1m-qd8-allocated write 1m 8 allocated
write-1m-qd8-unallocated write 1m 8 unallocated"

measure_rows run "$rows" fio "${ours[@]}" nbdkit qemu-nbd

for pid in "${pids[@]}"; do cowblkd_stop "$pid" || true; done

# The table, the chart's data, and the floors.
status=0
/usr/bin/python3 - "$out" "$repeats" "$(uptime)" "$extra" "$before" <<'EOF2' || status=$?
import glob, json, os, sys
out, repeats, load, extra, before = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ours = ["cowblk", "cowblk-deferred", "cowblk-nbd", "cowblk-nbd-deferred"]
befores = ["before" + t[len("cowblk"):] for t in ours] if before else []
peers = ["nbdkit", "qemu-nbd"]
targets = ["fio"] + ours + befores + peers
label = {"fio": "fio", "cowblk": "ordered", "cowblk-deferred": "deferred", "cowblk-nbd": "nbd",
         "cowblk-nbd-deferred": "nbd-deferred", "nbdkit": "nbdkit", "qemu-nbd": "qemu-nbd"}
label.update({b: "before " + label[o] for o, b in zip(ours, befores)})
names = []
for f in sorted(glob.glob(f"{out}/*.cowblk.1.json")):
    names.append(os.path.basename(f)[: -len(".cowblk.1.json")])
order = ["randread-4k-qd1", "randread-4k-qd32", "randwrite-4k-qd1", "randwrite-4k-qd32",
         "read-1m-qd8", "write-1m-qd8"]
names.sort(key=lambda n: (order.index(n.rsplit("-", 1)[0]), n.endswith("unallocated")))

def measure(name, target):
    kind = "write" if "write" in name else "read"
    iops, mib, p99 = [], [], []
    for r in range(1, repeats + 1):
        j = json.load(open(f"{out}/{name}.{target}.{r}.json"))
        if target == "fio":
            x = j["jobs"][0][kind]
            iops.append(x["iops"])
            mib.append(x["bw_bytes"] / 1048576)
            p99.append(x["lat_ns"]["percentile"]["99.000000"] / 1000)
        else:
            x = j[kind]
            iops.append(x["iops"])
            mib.append(x["mib_s"])
            p99.append(x["lat_us"]["p99"])
    avg = lambda v: sum(v) / len(v)
    return avg(iops), avg(mib), avg(p99)

# Floors of issue #5: cowblk >= 1.0x nbdkit+cow and >= 1.5x qemu-nbd on
# 4 KiB random read and write at depth 32; 1 MiB sequential >= 1.0x nbdkit.
def floor(name, peer):
    if "qd32" in name:
        return {"nbdkit": 1.0, "qemu-nbd": 1.5}[peer]
    if "1m" in name and peer == "nbdkit":
        return 1.0
    return None

m = {name: {t: measure(name, t) for t in targets} for name in names}
header = lambda what: ("| workload | " + " | ".join(f"{label[t]} {what}" for t in targets) + " |\n"
                       + "|---|" + "---:|" * len(targets))
lines = ["IOPS (MiB/s for 1 MiB):", "", header("IOPS")]
for name in names:
    cell = lambda t: f"{m[name][t][0]:.0f}" + (f" ({m[name][t][1]:.0f})" if "1m" in name else "")
    lines.append(f"| {name} | " + " | ".join(cell(t) for t in targets) + " |")
lines += ["", "p99 latency (µs):", "", header("p99")]
for name in names:
    lines.append(f"| {name} | " + " | ".join(f"{m[name][t][2]:.0f}" for t in targets) + " |")
lines += ["", "Ratios of each cowblk target to each peer; a floor of the issue is shown "
          "next to its ratio, **bold** where missed:", "",
          "| workload | " + " | ".join(f"{label[o]} / {p}" for o in ours for p in peers) + " |",
          "|---|" + "---:|" * (len(ours) * len(peers))]
missed = {t: 0 for t in ours}
charted = [t for t in targets if t not in befores]
chart = []
for name in names:
    cells = []
    for o in ours:
        for p in peers:
            r = m[name][o][0] / m[name][p][0] if m[name][p][0] else float("inf")
            f = floor(name, p)
            if f is None:
                cells.append(f"{r:.2f}")
            elif r >= f:
                cells.append(f"{r:.2f} (≥{f:.1f}: met)")
            else:
                missed[o] += 1
                cells.append(f"**{r:.2f}** (≥{f:.1f}: missed)")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
    fio = m[name]["fio"][0]
    chart.append((name, [m[name][t][0] / fio if fio else 0 for t in charted]))
if befores:
    lines += ["", f"This build over the one in `{before}` (IOPS ratio, same run):", "",
              "| workload | " + " | ".join(f"{label[o]} / before" for o in ours) + " |",
              "|---|" + "---:|" * len(ours)]
    for name in names:
        cells = [f"{m[name][o][0] / m[name][b][0]:.2f}" if m[name][b][0] else "-"
                 for o, b in zip(ours, befores)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
lines.append("")
lines.append(f"Load at the end: `{load.strip()}`; {repeats} measurement(s) per cell.")
if extra:
    lines.append("")
    lines.append(f"Extra cowblkd flags (both servers): `{extra}`.")
lines.append("")
lines.append("Floors missed: " + ", ".join(f"{missed[o]} by {label[o]}" for o in ours)
             + " (ordered: cowblkd's default durability; deferred: the peers' flush contract)")
table = "\n".join(lines)
open(f"{out}/table.md", "w").write(table + "\n")
print(table)
with open(f"{out}/chart.dat", "w") as f:
    f.write("workload " + " ".join(charted) + "\n")
    for name, vals in chart:
        f.write(name + " " + " ".join(f"{v:.4f}" for v in vals) + "\n")
sys.exit(1 if missed["cowblk-deferred"] else 0)
EOF2

gnuplot <<EOF2
set terminal pngcairo size 1400,650 font "sans,10" noenhanced
set output "$out/compare.png"
set title "cowblk and peers: IOPS relative to local fio --ioengine=io_uring (log scale, higher is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set yrange [0.01:4]
set ylabel "IOPS / fio IOPS"
set key outside top center horizontal
set bmargin 9
set rmargin 6
set xtics rotate by -30 left
set grid ytics
plot "$out/chart.dat" using 2:xtic(1) title columnheader(2), \
     "" using 3 title columnheader(3), \
     "" using 4 title columnheader(4), \
     "" using 5 title columnheader(5), \
     "" using 6 title columnheader(6), \
     "" using 7 title columnheader(7), \
     "" using 8 title columnheader(8)
EOF2
bench_summary "$out/table.md"
log "chart: $out/compare.png"
exit $status
