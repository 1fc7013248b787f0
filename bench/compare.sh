#!/usr/bin/env bash
# compare.sh: cowblk next to its peers, one machine, one run, one image,
# the same workloads, in the configurations people deploy (issue #23):
#
#   fio       local `fio --ioengine=io_uring` on plain files (the limit: no
#             network, no copy-on-write)
#   cowblk    cowblkd as `make run` and the container start it (its
#             defaults: deferred durability, page cache, gRPC only) on TCP
#             loopback, cowblk-bench over libcowblk
#   cowblk-tls  cowblkd as the Kubernetes `tls` overlay starts it: the
#             base's settings (deploy/kubernetes/base/cowblkd.env), mutual
#             TLS (a client certificate required) and bearer tokens;
#             cowblk-bench over libcowblk with a client certificate and a
#             token
#   nbdkit    `nbdkit --filter=cow file IMAGE`, cowblk-bench over libnbd
#   nbdkit-tls  the same with `--tls=require --tls-verify-peer` (x509, a
#             client certificate required), cowblk-bench over nbds://
#   qemu-nbd  `qemu-nbd` on a qcow2 overlay of the image (its defaults:
#             writeback cache), cowblk-bench over libnbd
#   qemu-nbd-tls  the same with a tls-creds-x509 object, verify-peer=on
#
# and, with -T, other configurations (levers, not floors):
#   cowblk-deferred, cowblk-tls-deferred  cowblk and cowblk-tls with
#             --durability deferred (the default since issue #23): the
#             peers' flush contract (a flush makes every acknowledged
#             write durable), a crash of cowblkd reported to clients
#             (docs/cowblkd.md, "Epochs")
#   cowblk-ordered, cowblk-tls-ordered  the same with --durability ordered
#             (an A/B of the durability mode, whatever the default is)
#   cowblk-nbd, cowblk-nbd-deferred  the NBD export of such a server
#             (--nbd-listen), cowblk-bench over libnbd
#   cowblk-nbd-tls  the NBD export of the cowblk-tls server (TLS required,
#             the client certificate's x509: line in the token file gives
#             its scopes), cowblk-bench over nbds:// as for nbdkit-tls
#
# Every server listens on TCP loopback. Rows (default: the issue's six;
# -w all: twelve): 4 KiB random read and write at depth 1 and 32, 1 MiB
# sequential read and write at depth 8, on allocated sectors (the overlay
# was filled first: COW reads, rewrites) or unallocated ones (a fresh
# overlay: reads fall through to the image, writes allocate: first
# writes). Every row starts a fresh overlay per target (a new cowblk
# volume; a new nbdkit or qemu-nbd); targets alternate within a row (the
# order rotates) so drift in a shared machine's load hits all of them
# alike. One stream (connection) per target; the depth is the number of
# requests in flight on it.
#
# Writes markdown tables (IOPS and MiB/s; p50 and p99 latency; ratios of
# each cowblk target to the peers of its security, plaintext or TLS, with
# the issue's floors marked), a PNG chart (gnuplot) and summary.md into
# OUTDIR. Floors: plaintext, >= 1.0x nbdkit on every row and >= 1.5x
# qemu-nbd on the 4 KiB depth-32 rows; TLS, >= 1.0x nbdkit-tls on every
# row; on 4 KiB random reads at depth 1, p50 and p99 latency no higher
# than nbdkit's of the same security.
#
# With -B, a second build (its cowblkd, cowblk and cowblk-bench: server and
# client library both) is measured the same way beside the first: each
# cowblk target gets a "before" twin (before, before-tls, ...), and a table
# gives each one's IOPS as a ratio to its twin: a change's before/after in
# one run.
#
# Usage: bench/compare.sh [-d DIR] [-s SIZE] [-t SECONDS] [-r REPEATS]
#                         [-b BUILD_BIN] [-B BEFORE_BIN] [-o OUTDIR] [-w ROWS]
#                         [-T TARGETS] [-x FLAGS]
#   -d  scratch directory on a real file system (default /var/tmp/cowblk-compare)
#   -s  image and working-set size (default 512M)
#   -t  seconds per measurement (default 5), after a 1 s ramp
#   -r  measurements per target and row, averaged (default 1)
#   -b  directory with cowblkd, cowblk and cowblk-bench (default build/bin)
#   -B  another such directory, measured too as the "before" targets
#   -o  where the tables, chart and raw JSON go (default: a new directory
#       under $COWBLK_BENCH_OUT, see bench/README.md)
#   -w  comma-separated row names to run, or `all` (default: the six rows
#       of issue #23, see the list below)
#   -T  comma-separated targets (default: fio,cowblk,cowblk-tls,nbdkit,
#       nbdkit-tls,qemu-nbd,qemu-nbd-tls)
#   -x  extra cowblkd flags for every cowblk server, e.g. "--engine-threads 2"
# Needs fio, nbdkit, qemu-nbd, qemu-img, openssl, gnuplot and
# /usr/bin/python3 (`make deps` installs them). Exit status 1 if a
# deployed configuration (cowblk, cowblk-tls) misses a floor.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

dir=/var/tmp/cowblk-compare
size=512M
secs=5
only="randread-4k-qd1-allocated,randread-4k-qd32-allocated,randwrite-4k-qd32-unallocated,randwrite-4k-qd32-allocated,read-1m-qd8-allocated,write-1m-qd8-unallocated"
extra=
before=
targets_opt=fio,cowblk,cowblk-tls,nbdkit,nbdkit-tls,qemu-nbd,qemu-nbd-tls
while getopts d:s:t:r:b:B:o:w:x:T:h opt; do
  case $opt in
    w) only=$OPTARG ;;
    x) extra=$OPTARG ;;
    B) before=$OPTARG ;;
    T) targets_opt=$OPTARG ;;
    *) bench_opt "$opt" "${OPTARG-}" ;;
  esac
done
[ "$only" != all ] || only=
IFS=, read -r -a chosen <<<"$targets_opt"
ours=() peers=()
for t in "${chosen[@]}"; do
  case $t in
    cowblk | cowblk-tls | cowblk-ordered | cowblk-tls-ordered | cowblk-deferred | \
      cowblk-tls-deferred | cowblk-nbd | cowblk-nbd-deferred | cowblk-nbd-tls) ours+=("$t") ;;
    fio | nbdkit | nbdkit-tls | qemu-nbd | qemu-nbd-tls) peers+=("$t") ;;
    *) die 2 "unknown target $t (see -h)" ;;
  esac
done
[ ${#ours[@]} -gt 0 ] || die 2 "-T names no cowblk target"
need_tools "$bin/cowblkd" "$bin/cowblk" "$bin/cowblk-bench" fio nbdkit qemu-nbd qemu-img openssl gnuplot
[ -z "$before" ] || need_tools "$before/cowblkd" "$before/cowblk" "$before/cowblk-bench"
mkdir -p "$dir"
bench_rm_at_exit "$dir"
bench_out
rm -f "$out"/*.json "$out"/*.log  # a reused -o

bytes=$(size_bytes "$size")
img=$dir/base.img
random_image "$img" "$size"

# The TLS configurations' PKI (tests/support/make_pki.sh: a CA, a server
# certificate for 127.0.0.1, a client one), laid out twice more under the
# names nbdkit, qemu-nbd and libnbd look for; cowblkd's token file and
# the client's token.
pki=$dir/pki
mkdir -p "$pki/nbd-server" "$pki/nbd-client"
sh "$bench_root/tests/support/make_pki.sh" "$pki" >"$pki/make_pki.log" 2>&1 ||
  { cat "$pki/make_pki.log" >&2; die 1 "making the PKI failed"; }
cp "$pki/ca.pem" "$pki/nbd-server/ca-cert.pem"
cp "$pki/server.pem" "$pki/nbd-server/server-cert.pem"
cp "$pki/server.key" "$pki/nbd-server/server-key.pem"
cp "$pki/ca.pem" "$pki/nbd-client/ca-cert.pem"
cp "$pki/client.pem" "$pki/nbd-client/client-cert.pem"
cp "$pki/client.key" "$pki/nbd-client/client-key.pem"
printf 'bench-token admin\nx509:CN=client admin\n' >"$pki/tokens"
echo "bench-token" >"$pki/token"
tls_client_env=(COWBLK_TLS_CA="$pki/ca.pem" COWBLK_TLS_CERT="$pki/client.pem"
  COWBLK_TLS_KEY="$pki/client.key" COWBLK_TOKEN_FILE="$pki/token")
# The Kubernetes base's settings, which the tls overlay keeps.
mapfile -t k8s_env < <(grep -E '^[A-Z_]+=' "$bench_root/deploy/kubernetes/base/cowblkd.env")

# One cowblkd per cowblk target (and build) for the whole run: every row
# gets a fresh volume over the uploaded image.
# start_server NAME BIN TARGET: sets cowblkd_addr, cowblkd_nbd, cowblkd_pid.
start_server() {
  local name=$1 bin=$2 target=$3 pre=() flags=() client=()
  case $target in
    *-tls | *-tls-*)
      pre=(env "${k8s_env[@]}")
      flags=(--tls-cert "$pki/server.pem" --tls-key "$pki/server.key"
        --tls-client-ca "$pki/ca.pem" --token-file "$pki/tokens")
      client=("${tls_client_env[@]}")
      ;;
  esac
  case $target in
    *-deferred) flags+=(--durability deferred) ;;
    *-ordered) flags+=(--durability ordered) ;;
  esac
  case $target in *-nbd*) flags+=(--nbd-listen 127.0.0.1:0) ;; esac
  mkdir -p "$dir/$name"
  # shellcheck disable=SC2086 # $extra is a list of flags
  cowblkd_start "$out/$name.log" "${pre[@]}" "$bin/cowblkd" --data-dir "$dir/$name" \
    --metrics-listen "" "${flags[@]}" $extra
  log "$name: $cowblkd_addr${cowblkd_nbd:+, NBD $cowblkd_nbd}"
  env "${client[@]}" COWBLK_SERVER="$cowblkd_addr" "$bin/cowblk" image upload "$img" base >/dev/null
}
declare -A server_of nbd_of
pids=()
measured=("${peers[@]}" "${ours[@]}")
for build in cowblk ${before:+before}; do
  build_bin=$bin
  [ "$build" = before ] && build_bin=$before
  for t in "${ours[@]}"; do
    key=$build${t#cowblk}
    start_server "$key-server" "$build_bin" "$t"
    pids+=("$cowblkd_pid")
    server_of[$key]=$cowblkd_addr nbd_of[$key]=$cowblkd_nbd
    [ "$build" = cowblk ] || measured+=("$key")
  done
done
vol_seq=0

# run TARGET JSON RW BS DEPTH ALLOC: one measurement on a fresh overlay.
# shellcheck disable=SC2317 # called through measure_rows
run() {
  local target=$1 json=$2 rw=$3 bs=$4 depth=$5 alloc=$6 port pid uri
  bench_env=()
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
      # The target's own server; -nbd: its export through libnbd. A
      # "before" target runs the other build's tools too (bench_cell and
      # bench_prefill use $bin).
      local bin=$bin srv
      [ "${target%%-*}" = before ] && bin=$before
      srv=${server_of[$target]}
      case $target in *-tls | *-tls-*) bench_env=("${tls_client_env[@]}") ;; esac
      vol_seq=$((vol_seq + 1))
      local vol=cmp$vol_seq
      uri=cowblk://$srv/$vol
      case $target in
        *-nbd-tls) uri="nbds://${nbd_of[$target]}/$vol?tls-certificates=$pki/nbd-client" ;;
        *-nbd*) uri=nbd://${nbd_of[$target]}/$vol ;;
      esac
      env "${bench_env[@]}" COWBLK_SERVER="$srv" "$bin/cowblk" volume create "$vol" --image base >/dev/null
      [ "$alloc" = allocated ] && bench_prefill "$uri" "$bytes" "$json.log"
      bench_cell "$uri" "$rw" "$bs" "$depth" "$bytes" "$json"
      # A long time limit: on a file system mounted with `discard` (this
      # VM's root), unlinking an overlay of many small extents issues their
      # discards synchronously: 20-60 s after a row of 4 KiB first writes.
      env "${bench_env[@]}" COWBLK_SERVER="$srv" "$bin/cowblk" volume rm --timeout 600 "$vol" >/dev/null
      ;;
    nbdkit*)
      uri=
      if [ "$target" = nbdkit-tls ]; then
        nbdkit_start "$img" --tls=require --tls-certificates="$pki/nbd-server" --tls-verify-peer
        uri="nbds://${nbdkit_uri#nbd://}/?tls-certificates=$pki/nbd-client"
      else
        nbdkit_start "$img"
        uri=$nbdkit_uri
      fi
      [ "$alloc" = allocated ] && bench_prefill "$uri" "$bytes" "$json.log"
      bench_cell "$uri" "$rw" "$bs" "$depth" "$bytes" "$json"
      nbdkit_stop
      ;;
    qemu-nbd*)
      local tls=()
      port=$(free_port)
      uri=nbd://127.0.0.1:$port
      if [ "$target" = qemu-nbd-tls ]; then
        tls=(--object "tls-creds-x509,id=tls0,endpoint=server,dir=$pki/nbd-server,verify-peer=on"
          --tls-creds tls0)
        uri="nbds://127.0.0.1:$port/?tls-certificates=$pki/nbd-client"
      fi
      rm -f "$dir/overlay.qcow2"
      qemu-img create -q -f qcow2 -F raw -b "$img" "$dir/overlay.qcow2"
      # --fork returns once the server listens.
      qemu-nbd --fork -f qcow2 -b 127.0.0.1 -p "$port" --pid-file "$dir/qemu-nbd.pid" \
        --persistent "${tls[@]}" "$dir/overlay.qcow2"
      pid=$(cat "$dir/qemu-nbd.pid")
      bench_kill_at_exit "$pid"
      [ "$alloc" = allocated ] && bench_prefill "$uri" "$bytes" "$json.log"
      bench_cell "$uri" "$rw" "$bs" "$depth" "$bytes" "$json"
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

measure_rows run "$rows" "${measured[@]}"

for pid in "${pids[@]}"; do cowblkd_stop "$pid" || true; done

# The table, the chart's data, and the floors.
status=0
/usr/bin/python3 - "$out" "$repeats" "$(uptime)" "$extra" "$before" "${measured[*]}" <<'EOF2' || status=$?
import glob, json, os, sys
out, repeats, load, extra, before, targets = sys.argv[1:7]
repeats, targets = int(repeats), targets.split()
ours = [t for t in targets if t.startswith("cowblk")]
befores = [t for t in targets if t.startswith("before")]
label = lambda t: {"cowblk": "default", "cowblk-tls": "tls",
                   "before": "before default", "before-tls": "before tls"}.get(
                       t, t.replace("cowblk-", "").replace("before-", "before "))
deployed = [t for t in ("cowblk", "cowblk-tls") if t in ours]
# The peers of a target: those of its security.
def peers_of(t):
    tls = t.endswith("-tls") or "-tls-" in t
    return [p for p in ("nbdkit-tls", "qemu-nbd-tls") if p in targets] if tls else \
           [p for p in ("nbdkit", "qemu-nbd") if p in targets]
names = []
first = ours[0]
for f in sorted(glob.glob(f"{out}/*.{first}.1.json")):
    names.append(os.path.basename(f)[: -len(f".{first}.1.json")])
order = ["randread-4k-qd1", "randread-4k-qd32", "randwrite-4k-qd1", "randwrite-4k-qd32",
         "read-1m-qd8", "write-1m-qd8"]
names.sort(key=lambda n: (order.index(n.rsplit("-", 1)[0]), n.endswith("unallocated")))

def measure(name, target):
    kind = "write" if "write" in name else "read"
    iops, mib, p50, p99 = [], [], [], []
    for r in range(1, repeats + 1):
        j = json.load(open(f"{out}/{name}.{target}.{r}.json"))
        if target == "fio":
            x = j["jobs"][0][kind]
            iops.append(x["iops"])
            mib.append(x["bw_bytes"] / 1048576)
            p50.append(x["lat_ns"]["percentile"]["50.000000"] / 1000)
            p99.append(x["lat_ns"]["percentile"]["99.000000"] / 1000)
        else:
            x = j[kind]
            iops.append(x["iops"])
            mib.append(x["mib_s"])
            p50.append(x["lat_us"]["p50"])
            p99.append(x["lat_us"]["p99"])
    avg = lambda v: sum(v) / len(v)
    return avg(iops), avg(mib), avg(p50), avg(p99)

# Floors of issue #23: >= 1.0x nbdkit (of the same security) on every row;
# plaintext >= 1.5x qemu-nbd on the 4 KiB depth-32 rows.
def floor(name, peer):
    if peer.startswith("nbdkit"):
        return 1.0
    if peer == "qemu-nbd" and "4k-qd32" in name:
        return 1.5
    return None

m = {name: {t: measure(name, t) for t in targets} for name in names}
header = lambda what: ("| workload | " + " | ".join(f"{label(t)} {what}" for t in targets) + " |\n"
                       + "|---|" + "---:|" * len(targets))
lines = ["IOPS (MiB/s for 1 MiB):", "", header("IOPS")]
for name in names:
    cell = lambda t: f"{m[name][t][0]:.0f}" + (f" ({m[name][t][1]:.0f})" if "1m" in name else "")
    lines.append(f"| {name} | " + " | ".join(cell(t) for t in targets) + " |")
lines += ["", "Latency p50 / p99 (µs):", "", header("p50 / p99")]
for name in names:
    lines.append(f"| {name} | " + " | ".join(f"{m[name][t][2]:.0f} / {m[name][t][3]:.0f}"
                                              for t in targets) + " |")
pairs = [(o, p) for o in ours for p in peers_of(o)]
lines += ["", "Ratios of each cowblk target to the peers of its security (IOPS); a floor "
          "of the issue is shown next to its ratio, **bold** where missed; on 4 KiB reads "
          "at depth 1, `lat` compares p50 and p99 with nbdkit's (lower or equal: met):", "",
          "| workload | " + " | ".join(f"{label(o)} / {p}" for o, p in pairs) + " |",
          "|---|" + "---:|" * len(pairs)]
missed = {t: 0 for t in ours}
charted = [t for t in targets if t not in befores]
chart = []
for name in names:
    cells = []
    for o, p in pairs:
        r = m[name][o][0] / m[name][p][0] if m[name][p][0] else float("inf")
        f = floor(name, p)
        cell = f"{r:.2f}"
        if f is not None:
            if r >= f:
                cell += f" (≥{f:.1f}: met)"
            else:
                missed[o] += 1
                cell = f"**{r:.2f}** (≥{f:.1f}: missed)"
        if p.startswith("nbdkit") and name.startswith("randread-4k-qd1"):
            ok = m[name][o][2] <= m[name][p][2] and m[name][o][3] <= m[name][p][3]
            if not ok:
                missed[o] += 1
            cell += ", lat met" if ok else ", **lat missed**"
        cells.append(cell)
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
    fio = m[name]["fio"][0] if "fio" in targets else 0
    chart.append((name, [m[name][t][0] / fio if fio else 0 for t in charted]))
if befores:
    twins = [(o, "before" + o[len("cowblk"):]) for o in ours]
    lines += ["", f"This build over the one in `{before}` (IOPS ratio, same run):", "",
              "| workload | " + " | ".join(f"{label(o)} / before" for o, _ in twins) + " |",
              "|---|" + "---:|" * len(twins)]
    for name in names:
        cells = [f"{m[name][o][0] / m[name][b][0]:.2f}" if m[name][b][0] else "-"
                 for o, b in twins]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
lines.append("")
lines.append(f"Load at the end: `{load.strip()}`; {repeats} measurement(s) per cell.")
if extra:
    lines.append("")
    lines.append(f"Extra cowblkd flags (every cowblk server): `{extra}`.")
lines.append("")
lines.append("Floors missed: " + ", ".join(f"{missed[o]} by {label(o)}" for o in ours)
             + " (default: what `make run` and the container start; tls: the Kubernetes "
             "tls overlay, mutual TLS and tokens)")
table = "\n".join(lines)
open(f"{out}/table.md", "w").write(table + "\n")
print(table)
with open(f"{out}/chart.dat", "w") as f:
    f.write("workload " + " ".join(charted) + "\n")
    for name, vals in chart:
        f.write(name + " " + " ".join(f"{v:.4f}" for v in vals) + "\n")
sys.exit(1 if any(missed[t] for t in deployed) else 0)
EOF2

# One histogram column per charted target (chart.dat's columns 2..N).
columns=$(head -1 "$out/chart.dat" | wc -w)
plot="\"$out/chart.dat\" using 2:xtic(1) title columnheader(2)"
for ((c = 3; c <= columns; c++)); do plot+=", \"\" using $c title columnheader($c)"; done
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
plot $plot
EOF2
bench_summary "$out/table.md"
log "chart: $out/compare.png"
exit $status
