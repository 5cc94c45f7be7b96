#!/usr/bin/env bash
# Measures this machine's limits, the figures Runnel's benchmarks are compared against
# (benches/README.md): sequential write bandwidth with fio (random payloads,
# --refill_buffers: this disk writes zeros faster), loopback TCP with iperf3, and
# sendfile of a cached file to a loopback socket with loopback-sendfile (this crate).
#
#   benches/scripts/machine-limits.sh [DIR]     (DIR defaults to a temp dir under target/)
#   LIMITS=net benches/scripts/machine-limits.sh      only iperf3 and sendfile
#   LIMITS=disk benches/scripts/machine-limits.sh     only fio
#   BIG=1 ...                                         also a 12 GB buffered fio run
set -euo pipefail
need() {
  command -v "$1" >/dev/null && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq "$1" >/dev/null
  else
    echo "machine-limits: $1 is not installed (apt-get install $1)" >&2; exit 1
  fi
}
limits=${LIMITS:-all}
root=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$limits" != disk ]; then
  need iperf3
  port=$((20000 + RANDOM % 20000))
  # One TCP stream over loopback, 5 s, client and server on separate cores, then on one.
  for cores in 0,1 0,0; do
    iperf3 -s -1 -p "$port" -B 127.0.0.1 >/dev/null 2>&1 &
    sleep 0.5
    gbps=$(iperf3 -c 127.0.0.1 -p "$port" -t 5 -A "$cores" -J | python3 -c '
import json, sys; print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8e6))')
    wait
    printf '%-20s %6s MB/s   iperf3 -c 127.0.0.1 -t 5 -A %s (client,server cores)\n' "loopback_tcp" "$gbps" "$cores"
  done
  cargo build --release -q -p runnel-bench --bin loopback-sendfile --manifest-path "$root/Cargo.toml"
  sf="$root/target/release/loopback-sendfile"
  # A 1 GiB cached file sent over and over for 5 s, 1 MiB per call; median of 3.
  for args in "--sender-cpu 0 --reader-cpu 1" "--sender-cpu 0 --reader-cpu 0" "--sender-cpu 0 --reader-cpu 1 --copy"; do
    for i in 1 2 3; do "$sf" --file-mib 1024 --seconds 5 $args; done | sort -t: -k2 -n | sed -n 2p | sed "s/^/loopback-sendfile $args: /"
  done
fi
[ "$limits" = net ] && exit 0

need fio
dir=${1:-$(mktemp -d "${CARGO_TARGET_DIR:-target}/fio.XXXXXX")}
mkdir -p "$dir"
# One job, three times after a discarded warm-up (the first large write after idling runs
# slower here: the VM's memory is touched for the first time); prints the median.
run() {
  local name=$1; shift
  local results=()
  for i in 0 1 2 3; do
    rm -f "$dir"/*; sync
    fio --name="$name" --directory="$dir" --rw=write --ioengine=psync --refill_buffers \
        --output-format=json "$@" > "$dir.json"
    [ "$i" = 0 ] && continue
    results+=("$(python3 -c '
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]["write"]
p50 = job.get("sync", {}).get("lat_ns", {}).get("percentile", {}).get("50.000000", 0)
print("%.0f %.0f" % (job["bw_bytes"] / 1e6, p50 / 1e3))' "$dir.json")")
  done
  printf '%s\n' "${results[@]}" | sort -n | sed -n 2p | {
    read -r mbps p50
    extra=""; [ "$p50" != 0 ] && extra="  fdatasync p50 ${p50} us"
    printf '%-20s %6s MB/s (median of 3: %s)%s   fio %s\n' "$name" "$mbps" "$(printf '%s ' "${results[@]%% *}")" "$extra" "$*"
  }
}
run buffered          --bs=1M  --size=2G
run buffered_end_sync --bs=1M  --size=2G   --end_fsync=1
run fdatasync_1MiB    --bs=1M  --size=1G   --fdatasync=1
run fdatasync_64KiB   --bs=64k --size=512M --fdatasync=1
if [ "${BIG:-0}" = 1 ]; then
  # Sustained: 12 GB, more than the page cache takes before write-back throttles.
  rm -f "$dir"/*; sync
  fio --name=buffered_12G --directory="$dir" --rw=write --ioengine=psync --refill_buffers \
      --bs=1M --size=12G --output-format=json > "$dir.json"
  python3 -c '
import json, sys
print("%-20s %6.0f MB/s   fio --bs=1M --size=12G (one run)" % ("buffered_12G", json.load(open(sys.argv[1]))["jobs"][0]["write"]["bw_bytes"] / 1e6))' "$dir.json"
fi
rm -rf "$dir" "$dir.json"
