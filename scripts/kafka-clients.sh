#!/usr/bin/env bash
# Unmodified Kafka clients against the Kafka listener (run by scripts/test): Debian's own
# kcat (librdkafka) lists metadata, produces keyed records with headers, consumes them
# back, and the native CLI reads what kcat wrote (and kcat what the CLI wrote); then
# confluent-kafka and kafka-python (in a venv under target/) read each other's records
# (scripts/kafka_clients.py). Group consumers: not yet (issue 6).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kcat >/dev/null || { echo "kafka-clients: kcat is not installed" >&2; exit 1; }
cargo build -q -j 2 -p runnel-broker -p runnel-tools --bins
bin=target/debug
dir=$(mktemp -d)
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
native=127.0.0.1:$(pick_port)
kafka=127.0.0.1:$(pick_port)
"$bin/runnel-broker" --data-dir "$dir/data" --listen "$native" --kafka-listen "$kafka" --log warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do "$bin/runnel" --broker "$native" topic list >/dev/null 2>&1 && break; sleep 0.1; done
fail() { echo "kafka-clients: $*" >&2; exit 1; }

"$bin/runnel" --broker "$native" topic create kc --partitions 2 >/dev/null
timeout 20 kcat -b "$kafka" -L | grep -q 'topic "kc" with 2 partitions' || fail "kcat -L does not list kc"

printf 'k1:one\nk2:two\nk3:three\n' | timeout 20 kcat -b "$kafka" -P -t kc -p 1 -K: -H src=kcat -H n=1
got=$(timeout 20 kcat -b "$kafka" -C -t kc -p 1 -e -q -f '%o %k %s %h\n')
want=$'0 k1 one src=kcat,n=1\n1 k2 two src=kcat,n=1\n2 k3 three src=kcat,n=1'
[ "$got" = "$want" ] || fail "kcat read back: $got"
got=$("$bin/runnel" --broker "$native" consume kc --partition 1 --from beginning --exit-at-end)
[ "$got" = $'one\ntwo\nthree' ] || fail "native consumer read: $got"

printf 'a\nb\n' | "$bin/runnel" --broker "$native" produce kc --partition 0 >/dev/null
got=$(timeout 20 kcat -b "$kafka" -C -t kc -p 0 -e -q -f '%o %s\n')
[ "$got" = $'0 a\n1 b' ] || fail "kcat read native records: $got"
got=$(timeout 20 kcat -b "$kafka" -C -t kc -p 1 -o -1 -e -q -f '%o %s\n')
[ "$got" = "2 three" ] || fail "kcat -o -1 (ListOffsets): $got"
echo "kafka-clients: kcat round trips passed"

venv=target/py-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check confluent-kafka kafka-python
timeout 120 "$venv/bin/python" scripts/kafka_clients.py "$kafka"
