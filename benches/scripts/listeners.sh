#!/usr/bin/env bash
# The native and the Kafka listener under the same load from the same minimal client
# (listener-bench): a runnel-broker process with both listeners on CPU 0, the client on
# CPU 1, produce runs alternating which protocol goes first, then consume runs.
#   ROUNDS="1 2 3 4" BYTES=1000000000 DROP=1 benches/scripts/listeners.sh [listener-bench flags]
# DROP=1 (root) drops the page cache before every produce run: on this VM new page-cache
# pages are sometimes 4-5x dearer (reclaim), which otherwise swamps the comparison.
# BROKER_BIN=PATH runs another broker binary (an earlier build, for a before/after).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -j 2 -p runnel-broker -p runnel-tools -p runnel-bench --bins
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
native=127.0.0.1:$(pick_port)
kafka=127.0.0.1:$(pick_port)
data=$(mktemp -d)
taskset -c 0 "${BROKER_BIN:-target/release/runnel-broker}" --data-dir "$data" --listen "$native" --kafka-listen "$kafka" --metrics-listen off --log warn &
pid=$!
trap 'kill $pid; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do target/release/runnel --broker "$native" topic list >/dev/null 2>&1 && break; sleep 0.1; done
target/release/runnel --broker "$native" topic create listener-bench --partitions 4 >/dev/null
addr() { if [ "$1" = kafka ]; then echo "$kafka"; else echo "$native"; fi; }
for round in ${ROUNDS:-1 2 3 4}; do
  order="native kafka"; [ $((round % 2)) = 0 ] && order="kafka native"
  for proto in $order; do
    [ -n "${DROP:-}" ] && { sync; echo 3 > /proc/sys/vm/drop_caches; }
    taskset -c 1 target/release/listener-bench produce --protocol "$proto" --broker "$(addr "$proto")" \
      --bytes "${BYTES:-1000000000}" --broker-pid "$pid" "$@"
  done
done
# One untimed read first: after the produce runs' cache drops, part of the log is on disk.
target/release/listener-bench consume --protocol native --broker "$native" >/dev/null
for round in ${ROUNDS:-1 2 3 4}; do
  for proto in native kafka; do
    taskset -c 1 target/release/listener-bench consume --protocol "$proto" --broker "$(addr "$proto")" \
      --broker-pid "$pid" "$@"
  done
done
