#!/usr/bin/env bash
# Runs the load-generator rows of benches/README.md's results table against a broker in
# its own process on CPU 0 (fresh data directory, default settings), with runnel-bench on
# CPU 1 and reporting the broker's CPU time (--broker-pid). `sync; sleep 3` before each
# run so the previous run's write-back does not compete with it.
#
#   benches/scripts/sitting.sh            (COUNT_1K=12000000 by default: the 12 GB run)
#   COUNT_1K=1000000 benches/scripts/sitting.sh
#   BROKER_BIN=PATH benches/scripts/sitting.sh   (another broker binary, for a before/after)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build --release -q -p runnel-broker -p runnel-bench --bins
data=$(mktemp -d "$root/target/sitting.XXXXXX")
port=$((20000 + RANDOM % 20000))
taskset -c 0 "${BROKER_BIN:-target/release/runnel-broker}" --data-dir "$data" --listen "127.0.0.1:$port" --kafka-listen off --metrics-listen off --log warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do
  target/release/runnel --broker "127.0.0.1:$port" topic list >/dev/null 2>&1 && break
  sleep 0.1
done
bench() {
  sync; sleep 3
  echo "## runnel-bench $*"
  taskset -c 1 target/release/runnel-bench "$@" --broker "127.0.0.1:$port" --broker-pid "$pid"
}
bench produce --topic p100 --count 3000000
bench produce --topic p1k --message-size 1024 --count "${COUNT_1K:-12000000}"
bench produce --topic always --message-size 1024 --acks all --flush always --producers 4 --count 1000000
bench produce --topic always256 --message-size 1024 --acks all --flush always --producers 4 --count 1000000 --batch-bytes 262144
bench consume --topic c1k --message-size 1024 --count 2000000
bench consume --topic c1k --message-size 1024 --count 2000000
bench consume --topic c1k --message-size 1024 --count 2000000
bench e2e --topic e2e-always --message-size 1024 --rate 50000 --count 500000 --flush always --acks all
bench e2e --topic e2e-os --message-size 1024 --rate 50000 --count 500000
bench e2e --topic e2e-os-linger1 --message-size 1024 --rate 50000 --count 500000 --linger-ms 1
