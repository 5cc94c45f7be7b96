#!/usr/bin/env bash
# TLS rows of benches/README.md, one sitting, one broker: produce and consume throughput
# of 1 KiB records over the plaintext listener (fetches with sendfile) and over TLS
# (fetches copied through the TLS layer: this machine's kernel has no kernel TLS), with
# the broker's CPU per GB (runnel-bench --broker-pid). Certificates from openssl, made
# here. The broker runs on CPU 0 and the load generator on CPU 1.
#
#   benches/scripts/tls.sh                 (COUNT=2000000)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build --release -q -p runnel-broker -p runnel-bench --bins
count="${COUNT:-2000000}"
dir=$(mktemp -d "$root/target/tls-sitting.XXXXXX")
pki="$dir/pki"
"$root/scripts/test-pki" "$pki" "bench CA"
tls=127.0.0.1:7411
plain=127.0.0.1:7412
taskset -c 0 target/release/runnel-broker --data-dir "$dir/data" --listen "$tls" --plaintext-listen "$plain" \
  --kafka-listen off --metrics-listen off --log warn \
  --tls-cert "$pki/broker.pem" --tls-key "$pki/broker-key.pem" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/7412) 2>/dev/null && break
  sleep 0.1
done
bench() { taskset -c 1 target/release/runnel-bench "$@" --broker-pid "$pid" --message-size 1024 --count "$count" \
  --partitions 4 --acks leader --flush os; }
echo "## plaintext (sendfile)"
bench produce --broker "$plain" --topic plain
bench consume --broker "$plain" --topic plain
echo "## TLS (copied through user space)"
bench produce --broker "$tls" --tls-ca "$pki/ca.pem" --topic secure
bench consume --broker "$tls" --tls-ca "$pki/ca.pem" --topic secure
