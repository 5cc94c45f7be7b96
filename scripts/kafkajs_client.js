// kafkajs (a pure-JavaScript Kafka client) against Runnel's Kafka listener (run by
// scripts/kafka-clients.sh): the admin client creates a topic and reads its metadata; an
// idempotent producer sends gzip-compressed keyed records; two consumers of one group
// share the partitions and read every record; their commits are fetched back; the group
// is described with both members and their assignments.
//
//     NODE_PATH=target/node/node_modules node scripts/kafkajs_client.js HOST:PORT

const { Kafka, CompressionTypes, logLevel } = require("kafkajs");

const TIMEOUT_MS = 30000;
const TOPIC = "kafkajs";
const GROUP = "kafkajs-group";
const RECORDS = 200;

function fail(msg) {
  console.error(`kafkajs_client.js: ${msg}`);
  process.exit(1);
}

async function until(what, check) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`timed out waiting for ${what}`);
}

async function main(bootstrap) {
  const kafka = new Kafka({ clientId: "runnel-kafkajs", brokers: [bootstrap], logLevel: logLevel.NOTHING });

  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2 }], waitForLeaders: true });
  if (!created) fail("createTopics did not create the topic");
  if (!(await admin.listTopics()).includes(TOPIC)) fail("listTopics does not list the topic");
  const meta = await admin.fetchTopicMetadata({ topics: [TOPIC] });
  if (meta.topics[0].partitions.length !== 2) fail(`metadata: ${JSON.stringify(meta)}`);

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = [];
  for (let i = 0; i < RECORDS; i++) {
    messages.push({ key: `k${i % 10}`, value: `kafkajs value ${i}`, headers: { i: `${i}` } });
  }
  for (let i = 0; i < RECORDS; i += 50) {
    await producer.send({ topic: TOPIC, compression: CompressionTypes.GZIP, acks: -1, messages: messages.slice(i, i + 50) });
  }
  await producer.disconnect();

  const seen = new Map();
  const byMember = [new Set(), new Set()];
  const consumers = [0, 1].map(() => kafka.consumer({ groupId: GROUP, sessionTimeout: 10000, heartbeatInterval: 500 }));
  for (const [m, consumer] of consumers.entries()) {
    await consumer.connect();
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        seen.set(`${partition}/${message.offset}`, message.value.toString());
        byMember[m].add(partition);
      },
    });
  }
  await until(`all ${RECORDS} records`, async () => seen.size >= RECORDS);
  const values = new Set(seen.values());
  for (const msg of messages) {
    if (!values.has(msg.value)) fail(`record not read: ${msg.value}`);
  }

  // Both members hold a partition (once the group has settled on two members).
  await until("a stable group of two", async () => {
    const d = await admin.describeGroups([GROUP]);
    return d.groups[0].state === "Stable" && d.groups[0].members.length === 2;
  });
  const described = (await admin.describeGroups([GROUP])).groups[0];
  for (const m of described.members) {
    if (!m.memberAssignment || m.memberAssignment.length === 0) fail(`member without assignment: ${m.memberId}`);
  }

  // The group's commits cover everything read.
  await until("commits covering every record", async () => {
    const offsets = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] });
    const total = offsets[0].partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
    return total === RECORDS;
  });

  for (const c of consumers) await c.disconnect();
  await admin.disconnect();
  console.log(`kafkajs_client.js: ${RECORDS} gzip records from an idempotent producer read by a group of two; commits and describeGroups agree`);
}

main(process.argv[2]).catch((e) => fail(e.stack || String(e)));
