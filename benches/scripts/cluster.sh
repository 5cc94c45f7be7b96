#!/usr/bin/env bash
# Cluster rows of benches/README.md, one sitting:
# 1. aggregate produce and consume throughput of one topic (12 partitions, 1 KiB records)
#    spread over 1, 2 and 3 brokers (scripts/cluster, all on this machine: the brokers
#    share its two cores and one disk);
# 2. leadership moves: kill -9 of a leader, kill -9 of the controller, SIGTERM (cluster-bench),
#    ROUNDS times each;
# 3. no false fencing: FENCING_SECONDS of full-speed produce against 3 brokers.
#
#   benches/scripts/cluster.sh                 (COUNT=2000000 ROUNDS=30 FENCING_SECONDS=600)
#   COUNT=500000 ROUNDS=5 FENCING_SECONDS=60 benches/scripts/cluster.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build --release -q -p runnel-broker -p runnel-tools -p runnel-bench --bins
count="${COUNT:-2000000}"
rounds="${ROUNDS:-30}"
fencing="${FENCING_SECONDS:-600}"

for n in 1 2 3; do
  dir=$(mktemp -d "$root/target/cluster-sitting.XXXXXX")
  scripts/cluster start "$n" "$dir" >/dev/null
  bootstrap=$(seq -s, 1 "$n" | sed -E 's/([0-9]+)/127.0.0.1:720\1/g')
  for _ in $(seq 100); do
    target/release/runnel --broker "$bootstrap" cluster describe 2>/dev/null | grep -q "controller [0-9]" && break
    sleep 0.1
  done
  sleep 1
  sync; sleep 2
  echo "## $n broker(s): produce"
  target/release/runnel-bench produce --broker "$bootstrap" --topic p --partitions 12 --message-size 1024 --count "$count"
  sync; sleep 2
  echo "## $n broker(s): consume"
  target/release/runnel-bench consume --broker "$bootstrap" --topic c --partitions 12 --message-size 1024 --count "$count"
  scripts/cluster stop "$dir" >/dev/null
  rm -rf "$dir"
done

for scenario in leader-kill controller-kill shutdown; do
  echo "## cluster-bench $scenario --rounds $rounds"
  target/release/cluster-bench "$scenario" --rounds "$rounds" 2>/dev/null
done
echo "## cluster-bench fencing --seconds $fencing"
target/release/cluster-bench fencing --seconds "$fencing" 2>/dev/null
