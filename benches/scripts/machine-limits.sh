#!/usr/bin/env bash
# Measures this machine's raw sequential write bandwidth with fio, the figures Runnel's
# append benchmarks are compared against (benches/README.md). Random payloads
# (--refill_buffers): this disk writes zeros faster.
#
#   benches/scripts/machine-limits.sh [DIR]     (DIR defaults to a temp dir under target/)
set -euo pipefail
command -v fio >/dev/null || { echo "machine-limits: fio is not installed (apt-get install fio)" >&2; exit 1; }
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
rm -rf "$dir" "$dir.json"
