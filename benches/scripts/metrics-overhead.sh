#!/usr/bin/env bash
# What metrics cost on the produce path: runnel-bench (CPU 1) against a runnel-broker
# process (CPU 0) with the metrics endpoint off, and on and scraped every second;
# with PRE_BROKER=path, also a broker built from before metrics existed. Variants
# alternate round by round; each run gets a fresh data directory (and, with DROP=1 as
# root, an empty page cache).
#   ROUNDS=5 DROP=1 PRE_BROKER=/path/to/old/runnel-broker benches/scripts/metrics-overhead.sh [runnel-bench flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -j 2 -p runnel-broker -p runnel-bench --bins
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
variants="off on"
[ -n "${PRE_BROKER:-}" ] && variants="pre off on"
for round in $(seq "${ROUNDS:-3}"); do
  for v in $variants; do
    data=$(mktemp -d)
    port=$(pick_port)
    mport=$(pick_port)
    exe=target/release/runnel-broker
    extra=(--metrics-listen off)
    case $v in
      pre) exe=$PRE_BROKER; extra=() ;;
      on) extra=(--metrics-listen "127.0.0.1:$mport") ;;
    esac
    [ -n "${DROP:-}" ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
    taskset -c 0 "$exe" --data-dir "$data" --listen "127.0.0.1:$port" --kafka-listen off "${extra[@]}" --log warn &
    pid=$!
    for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
    scraper=
    if [ "$v" = on ]; then
      (while sleep 1; do curl -s "127.0.0.1:$mport/metrics" >/dev/null || true; done) &
      scraper=$!
    fi
    result=$(taskset -c 1 target/release/runnel-bench produce --broker "127.0.0.1:$port" --json "$@")
    [ -n "$scraper" ] && kill "$scraper"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$data"
    python3 - "$v" "$result" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
print("%4s: %12.0f msgs/s %8.1f MB/s  p99 %.2f ms" % (sys.argv[1], r["msgs_per_sec"], r["mb_per_sec"], r["latency_ms"]["p99"]))
PY
  done
done
