"""Python Kafka clients against Runnel's Kafka listener (run by scripts/kafka-clients.sh).

confluent-kafka (librdkafka) and kafka-python each produce keyed records with headers and
explicit timestamps, and each reads — by assignment — what the other wrote, field for
field; kafka-python's producer runs with its defaults (idempotent, acks all). Then each
reads the other's records again as a group consumer with client defaults (only a group
id and where to start): the first record must come within a few seconds, and the group's
committed offsets must cover what was read.

    python kafka_clients.py HOST:PORT
"""

import sys
import time

from confluent_kafka import Consumer as CConsumer, Producer as CProducer, TopicPartition as CTP
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

TIMEOUT_S = 20


def fail(msg):
    print(f"kafka_clients.py: {msg}", file=sys.stderr)
    sys.exit(1)


def records(writer, n, base_ts):
    return [
        (f"{writer}-k{i}".encode(), f"{writer} value {i}".encode(), base_ts + i, [("from", writer.encode()), ("i", str(i).encode())])
        for i in range(n)
    ]


def main(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic("py-confluent", 1, 1), NewTopic("py-kafkapython", 1, 1)])
    for topic, f in futures.items():
        f.result(TIMEOUT_S)

    # confluent-kafka writes py-confluent.
    sent_c = records("confluent", 50, 1_700_000_000_000)
    p = CProducer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for k, v, ts, h in sent_c:
        p.produce("py-confluent", value=v, key=k, timestamp=ts, headers=h, partition=0)
    if p.flush(TIMEOUT_S) != 0:
        fail("confluent-kafka producer did not deliver everything")

    # kafka-python writes py-kafkapython.
    sent_k = records("kafka-python", 50, 1_700_000_100_000)
    kp = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)  # defaults: idempotent, acks all
    futs = [kp.send("py-kafkapython", value=v, key=k, timestamp_ms=ts, headers=h, partition=0) for k, v, ts, h in sent_k]
    offsets = [f.get(timeout=TIMEOUT_S).offset for f in futs]
    if offsets != list(range(50)):
        fail(f"kafka-python producer offsets {offsets[:5]}...")
    kp.close()

    # kafka-python reads what confluent-kafka wrote.
    kc = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=TIMEOUT_S * 1000)
    tp = TopicPartition("py-confluent", 0)
    kc.assign([tp])
    kc.seek_to_beginning(tp)
    got = []
    for m in kc:
        got.append((m.key, m.value, m.timestamp, [(hk, hv) for hk, hv in m.headers]))
        if len(got) == len(sent_c):
            break
    kc.close()
    if got != sent_c:
        fail(f"kafka-python read {got[:2]}... instead of {sent_c[:2]}...")

    # confluent-kafka reads what kafka-python wrote.
    cc = CConsumer({"bootstrap.servers": bootstrap, "group.id": "py-assign", "enable.auto.commit": False})
    cc.assign([CTP("py-kafkapython", 0, 0)])
    got = []
    deadline = time.time() + TIMEOUT_S
    while len(got) < len(sent_k) and time.time() < deadline:
        m = cc.poll(0.2)
        if m is None:
            continue
        if m.error():
            fail(f"confluent-kafka consumer: {m.error()}")
        got.append((m.key(), m.value(), m.timestamp()[1], [(hk, hv) for hk, hv in (m.headers() or [])]))
    cc.close()
    if got != sent_k:
        fail(f"confluent-kafka read {got[:2]}... instead of {sent_k[:2]}...")
    print("kafka_clients.py: confluent-kafka and kafka-python read each other's records")

    # Group consumers with client defaults.
    started = time.time()
    cg = CConsumer({"bootstrap.servers": bootstrap, "group.id": "py-confluent-group", "auto.offset.reset": "earliest"})
    cg.subscribe(["py-kafkapython"])
    got, first = [], None
    deadline = time.time() + TIMEOUT_S
    while len(got) < len(sent_k) and time.time() < deadline:
        m = cg.poll(0.2)
        if m is None:
            continue
        if m.error():
            fail(f"confluent-kafka group consumer: {m.error()}")
        first = first or time.time() - started
        got.append((m.key(), m.value(), m.timestamp()[1], [(hk, hv) for hk, hv in (m.headers() or [])]))
    if got != sent_k:
        fail(f"confluent-kafka group consumer read {len(got)} records: {got[:2]}...")
    cg.commit(asynchronous=False)
    committed = cg.committed([CTP("py-kafkapython", 0)], timeout=TIMEOUT_S)[0].offset
    cg.close()
    if committed != len(sent_k):
        fail(f"confluent-kafka group committed {committed}")
    confluent_first = first

    started = time.time()
    kg = KafkaConsumer(
        "py-confluent",
        bootstrap_servers=bootstrap,
        group_id="py-kafkapython-group",
        auto_offset_reset="earliest",
        consumer_timeout_ms=TIMEOUT_S * 1000,
    )
    got, first = [], None
    for m in kg:
        first = first or time.time() - started
        got.append((m.key, m.value, m.timestamp, [(hk, hv) for hk, hv in m.headers]))
        if len(got) == len(sent_c):
            break
    if got != sent_c:
        fail(f"kafka-python group consumer read {len(got)} records: {got[:2]}...")
    kg.commit()
    committed = kg.committed(TopicPartition("py-confluent", 0))
    kg.close()
    if committed != len(sent_c):
        fail(f"kafka-python group committed {committed}")
    for client, t in (("confluent-kafka", confluent_first), ("kafka-python", first)):
        if t > 5:
            fail(f"{client} group consumer got its first record after {t:.1f} s")
    print(
        f"kafka_clients.py: group consumers read each other's records "
        f"(first record: confluent-kafka {confluent_first:.2f} s, kafka-python {first:.2f} s)"
    )


if __name__ == "__main__":
    main(sys.argv[1])
