#!/usr/bin/env bash
# Unmodified Kafka clients against the Kafka listener (run by scripts/test): Debian's own
# kcat (librdkafka) lists metadata, produces keyed records with headers, consumes them
# back, and the native CLI reads what kcat wrote (and kcat what the CLI wrote); then
# confluent-kafka and kafka-python (in a venv under target/) read each other's records
# (scripts/kafka_clients.py), by assignment and as group consumers. kcat -G consumes as
# a group member (classic protocol), commits, and a second run resumes after the commit.
# Last, kafkajs (scripts/kafkajs_client.js): admin, an idempotent producer with gzip, a
# group of two consumers, their commits, describeGroups.
#
# KAFKA_CLIENTS_KEEP=DIR keeps the broker's data directory in DIR/data afterwards
# (scripts/fuzz-corpus takes seeds from it).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kcat >/dev/null || { echo "kafka-clients: kcat is not installed" >&2; exit 1; }
cargo build -q -j 2 -p runnel-broker -p runnel-tools --bins
bin=target/debug
if [ -n "${KAFKA_CLIENTS_KEEP:-}" ]; then
  dir="$KAFKA_CLIENTS_KEEP"; mkdir -p "$dir"; cleanup=
else
  dir=$(mktemp -d); cleanup="rm -rf $dir"
fi
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
native=127.0.0.1:$(pick_port)
kafka=127.0.0.1:$(pick_port)
"$bin/runnel-broker" --data-dir "$dir/data" --listen "$native" --kafka-listen "$kafka" --metrics-listen off --log warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; $cleanup' EXIT
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
# kcat -G: a balanced (group) consumer over both partitions, with keys and headers;
# it commits on exit, so a second member of the group finds nothing new.
"$bin/runnel" --broker "$native" topic create kcg --partitions 2 >/dev/null
printf 'k1:one\nk2:two\n' | timeout 20 kcat -b "$kafka" -P -t kcg -p 0 -K: -H src=kcat
printf 'k3:three\n' | timeout 20 kcat -b "$kafka" -P -t kcg -p 1 -K: -H src=kcat
started=$(date +%s%N)
got=$(timeout 30 kcat -b "$kafka" -G kcat-group kcg -e -q -X auto.offset.reset=earliest -f '%p %o %k %s %h\n' | sort)
took_ms=$(( ($(date +%s%N) - started) / 1000000 ))
want=$'0 0 k1 one src=kcat\n0 1 k2 two src=kcat\n1 0 k3 three src=kcat'
[ "$got" = "$want" ] || fail "kcat -G read: $got"
[ "$took_ms" -lt 10000 ] || fail "kcat -G took $took_ms ms"
printf 'k4:four\n' | timeout 20 kcat -b "$kafka" -P -t kcg -p 1 -K: -H src=kcat
got=$(timeout 30 kcat -b "$kafka" -G kcat-group kcg -e -q -X auto.offset.reset=earliest -f '%p %o %k %s\n')
[ "$got" = "1 1 k4 four" ] || fail "kcat -G did not resume after its commit: $got"
echo "kafka-clients: kcat round trips passed (kcat -G in $took_ms ms)"

venv=target/py-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check confluent-kafka kafka-python
timeout 120 "$venv/bin/python" scripts/kafka_clients.py "$kafka"

# kafkajs (pure JavaScript), installed under target/node.
node_dir=target/node
if [ ! -d "$node_dir/node_modules/kafkajs" ]; then
  mkdir -p "$node_dir"
  (cd "$node_dir" && npm install --no-audit --no-fund --loglevel=error kafkajs@2 >/dev/null)
fi
NODE_PATH="$node_dir/node_modules" timeout 120 node scripts/kafkajs_client.js "$kafka"

# TLS: a second broker whose native and Kafka listeners speak TLS, with a certificate for
# 127.0.0.1 from a CA made here (openssl); kcat (librdkafka, security.protocol=SSL) and
# the native CLI (--tls-ca) read each other's records; a CLI trusting another CA fails
# with one clear line.
command -v openssl >/dev/null || fail "openssl is not installed (TLS round trip)"
pki="$dir/pki"
scripts/test-pki "$pki" "kafka-clients CA"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=other CA" \
  -keyout "$pki/other-key.pem" -out "$pki/other.pem" 2>/dev/null
tls_native=127.0.0.1:$(pick_port)
tls_kafka=127.0.0.1:$(pick_port)
"$bin/runnel-broker" --data-dir "$dir/tls-data" --listen "$tls_native" --kafka-listen "$tls_kafka" \
  --metrics-listen off --log warn --tls-cert "$pki/broker.pem" --tls-key "$pki/broker-key.pem" &
tls_pid=$!
trap 'kill $pid $tls_pid 2>/dev/null; wait $pid $tls_pid 2>/dev/null; $cleanup' EXIT
tls_cli() { "$bin/runnel" --broker "$tls_native" --tls-ca "$pki/ca.pem" "$@"; }
for _ in $(seq 100); do tls_cli topic list >/dev/null 2>&1 && break; sleep 0.1; done
tls_cli topic create tls --partitions 1 >/dev/null
ssl=(-X security.protocol=SSL -X "ssl.ca.location=$pki/ca.pem")
printf 'k1:secret one\nk2:secret two\n' | timeout 20 kcat -b "$tls_kafka" "${ssl[@]}" -P -t tls -K:
got=$(tls_cli consume tls --from beginning --exit-at-end)
[ "$got" = $'secret one\nsecret two' ] || fail "native CLI over TLS read: $got"
printf 'three\n' | tls_cli produce tls >/dev/null
got=$(timeout 20 kcat -b "$tls_kafka" "${ssl[@]}" -C -t tls -e -q -f '%o %s\n')
[ "$got" = $'0 secret one\n1 secret two\n2 three' ] || fail "kcat over TLS read: $got"
if err=$("$bin/runnel" --broker "$tls_native" --tls-ca "$pki/other.pem" topic list 2>&1); then
  fail "a CLI trusting another CA was served"
fi
case "$err" in *"TLS handshake failed"*) ;; *) fail "untrusted certificate error: $err" ;; esac
echo "kafka-clients: kcat and the native CLI over TLS passed"

# SASL: a third broker whose Kafka listener speaks TLS and asks for SCRAM (and PLAIN,
# over TLS), with a bootstrap user; confluent-kafka's admin creates a user through
# AlterUserScramCredentials, kcat (SASL_SSL) produces as that user with SCRAM-SHA-512 and
# reads back with SCRAM-SHA-256 and PLAIN; a wrong password is refused; the deleted user
# can no longer connect.
export RUNNEL_SASL_BOOTSTRAP_PASSWORD="bootstrap-$RANDOM$RANDOM"
sasl_native=127.0.0.1:$(pick_port)
sasl_kafka=127.0.0.1:$(pick_port)
"$bin/runnel-broker" --data-dir "$dir/sasl-data" --listen "$sasl_native" --kafka-listen "$sasl_kafka" \
  --metrics-listen off --log warn --tls-cert "$pki/broker.pem" --tls-key "$pki/broker-key.pem" \
  --sasl-mechanisms SCRAM-SHA-256,SCRAM-SHA-512,PLAIN --sasl-bootstrap-user admin &
sasl_pid=$!
trap 'kill $pid $tls_pid $sasl_pid 2>/dev/null; wait $pid $tls_pid $sasl_pid 2>/dev/null; $cleanup' EXIT
sasl() { # sasl MECHANISM USER PASSWORD kcat-args...
  local m=$1 u=$2 p=$3; shift 3
  timeout 20 kcat -b "$sasl_kafka" -X security.protocol=SASL_SSL -X "ssl.ca.location=$pki/ca.pem" \
    -X "sasl.mechanisms=$m" -X "sasl.username=$u" -X "sasl.password=$p" "$@"
}
for _ in $(seq 100); do
  sasl SCRAM-SHA-512 admin "$RUNNEL_SASL_BOOTSTRAP_PASSWORD" -L >/dev/null 2>&1 && break; sleep 0.1
done
timeout 60 "$venv/bin/python" scripts/kafka_sasl_admin.py "$sasl_kafka" "$pki/ca.pem" create alice 'alice pass,=1'
described=$(timeout 60 "$venv/bin/python" scripts/kafka_sasl_admin.py "$sasl_kafka" "$pki/ca.pem" describe)
[ "$described" = $'admin SCRAM_SHA_256:8192 SCRAM_SHA_512:8192\nalice SCRAM_SHA_256:4096 SCRAM_SHA_512:4096' ] \
  || fail "described users: $described"
printf 'a1\na2\n' | sasl SCRAM-SHA-512 alice 'alice pass,=1' -P -t sasl-topic
got=$(sasl SCRAM-SHA-256 alice 'alice pass,=1' -C -t sasl-topic -e -q -f '%s\n')
[ "$got" = $'a1\na2' ] || fail "kcat SCRAM-SHA-256 read: $got"
got=$(sasl PLAIN alice 'alice pass,=1' -C -t sasl-topic -e -q -f '%o\n')
[ "$got" = $'0\n1' ] || fail "kcat PLAIN read: $got"
if err=$(sasl SCRAM-SHA-512 alice wrong -L 2>&1); then fail "a wrong password was accepted"; fi
case "$err" in *"Authentication failed"*|*"SASL authentication error"*) ;; *) fail "wrong password error: $err" ;; esac
if timeout 10 kcat -b "$sasl_kafka" -X security.protocol=SSL -X "ssl.ca.location=$pki/ca.pem" -L >/dev/null 2>&1; then
  fail "a client without SASL was served"
fi
timeout 60 "$venv/bin/python" scripts/kafka_sasl_admin.py "$sasl_kafka" "$pki/ca.pem" delete alice
if sasl SCRAM-SHA-256 alice 'alice pass,=1' -L >/dev/null 2>&1; then fail "a deleted user connected"; fi
echo "kafka-clients: SASL_SSL (SCRAM-SHA-256/512, PLAIN) with kcat and confluent-kafka passed"
