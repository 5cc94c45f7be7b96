#!/usr/bin/env bash
# Replication rows of benches/README.md, one sitting, three brokers on this machine
# (scripts/cluster: they share its two cores and one disk):
# 1. produce throughput of 1 KiB records to a 6-partition topic with replication factor 1
#    and 3, acks leader and all, flush.policy=os (the durability Kafka's figures use);
# 2. produce latency at a fixed 50 000 records/s, RF 3, acks all;
# 3. the bytes leaders sent to followers with sendfile (runnel_replication_fetched_bytes_total,
#    summed over the brokers) against the bytes produced.
#
#   benches/scripts/replication.sh                 (COUNT=1000000 SECONDS_AT_RATE=20)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build --release -q -p runnel-broker -p runnel-tools -p runnel-bench --bins
count="${COUNT:-1000000}"
seconds="${SECONDS_AT_RATE:-20}"
dir=$(mktemp -d "$root/target/replication-sitting.XXXXXX")
trap 'scripts/cluster stop "$dir" >/dev/null 2>&1 || true' EXIT
scripts/cluster start 3 "$dir" >/dev/null
bootstrap=127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203
for _ in $(seq 100); do
  target/release/runnel --broker "$bootstrap" cluster describe 2>/dev/null | grep -q "controller [0-9]" && break
  sleep 0.1
done
sleep 2
fetched() {
  local sum=0 v
  for port in 7301 7302 7303; do
    v=$(curl -s "127.0.0.1:$port/metrics" | awk '/^runnel_replication_fetched_bytes_total /{print $2}')
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
# CPU seconds the three brokers used so far (utime + stime of each, from /proc).
broker_cpu() {
  local ticks=0 pid t
  for id in 1 2 3; do
    pid=$(cat "$dir/broker-$id.pid")
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    ticks=$((ticks + t))
  done
  echo "scale=2; $ticks / $(getconf CLK_TCK)" | bc
}
for rf in 1 3; do
  for acks in leader all; do
    before=$(fetched)
    cpu=$(broker_cpu)
    echo "## RF $rf, acks $acks"
    target/release/runnel-bench produce --broker "$bootstrap" --topic "rf$rf-$acks" --partitions 6 \
      --replication-factor "$rf" --message-size 1024 --count "$count" --acks "$acks" --flush os
    echo "bytes sent to followers with sendfile: $(( $(fetched) - before ))"
    echo "brokers' CPU: $(echo "$(broker_cpu) - $cpu" | bc) s for $((count / 1000000)) M records of 1 KiB"
  done
done
echo "## RF 3, acks all, at 50 000 records/s"
target/release/runnel-bench produce --broker "$bootstrap" --topic rf3-rate --partitions 6 \
  --replication-factor 3 --message-size 1024 --duration "$seconds" --rate 50000 --acks all --flush os
