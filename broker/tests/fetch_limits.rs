//! Fetch size limits as Kafka's (KIP-74): a response holds at most the request's
//! `max_bytes` and each partition at most its own `max_bytes`, except that the first batch
//! of the first partition with records comes whole however large — so a consumer always
//! progresses, and a client that sized its buffer from `fetch.max.bytes` (librdkafka
//! rejects larger responses and reconnects forever) is never sent more.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use proptest::prelude::*;
use runnel_broker::server::ServerConfig;
use runnel_protocol::messages::*;
use runnel_protocol::{RecordBatch, Response};

use common::wire::{TestServer, Wire};

fn server() -> &'static (TestServer, tempfile::TempDir) {
    static SERVER: std::sync::OnceLock<(TestServer, tempfile::TempDir)> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        (TestServer::start(dir.path(), ServerConfig::default()), dir)
    })
}

/// Batches per partition: `(records, value bytes)` each.
type Layout = Vec<Vec<(usize, usize)>>;

fn layout() -> impl Strategy<Value = Layout> {
    prop::collection::vec(
        prop::collection::vec((1usize..4, prop_oneof![10usize..2_000, 20_000usize..300_000]), 0..5),
        1..5,
    )
}

/// Creates a topic with one partition per entry of `layout` and appends its batches;
/// returns the topic and each partition's batch sizes in bytes.
fn fill(wire: &mut Wire, layout: &Layout) -> (String, Vec<Vec<usize>>) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let topic = format!("limits-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    wire.create_topic(&topic, layout.len() as i32, &[("flush.policy", "os")]);
    let mut sizes = Vec::new();
    for (p, batches) in layout.iter().enumerate() {
        let mut these = Vec::new();
        for (i, (n, value_bytes)) in batches.iter().enumerate() {
            let b = common::batch(i as u64, *n, *value_bytes, 1_000);
            these.push(b.len());
            wire.produce(&topic, p as u32, Acks::Leader, &b);
        }
        sizes.push(these);
    }
    (topic, sizes)
}

fn fetch(wire: &mut Wire, topic: &str, offsets: &[i64], max_bytes: u32, partition_max: u32) -> (FetchResponse, Bytes) {
    let (r, trailer) = wire.call(
        &FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes,
            topics: vec![FetchTopic {
                name: topic.into(),
                partitions: offsets
                    .iter()
                    .enumerate()
                    .map(|(p, o)| FetchPartition {
                        partition: p as u32,
                        fetch_offset: *o,
                        max_bytes: partition_max,
                        current_leader_epoch: None,
                    })
                    .collect(),
            }],
            replica_id: None,
        },
        &[],
    );
    assert_eq!(r.error_code(), 0, "{}", r.error_message());
    (r, trailer)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn responses_keep_to_their_limits_but_for_a_lone_first_batch_and_consumers_progress(
        layout in layout(),
        max_bytes in 1u32..1_200_000,
        partition_max in 1u32..700_000,
    ) {
        let (srv, _) = server();
        let mut wire = Wire::connect(srv.addr);
        let (topic, sizes) = fill(&mut wire, &layout);
        let ends: Vec<i64> = layout.iter().map(|b| b.iter().map(|(n, _)| *n as i64).sum()).collect();
        let total_batches: usize = sizes.iter().map(Vec::len).sum();

        let mut offsets = vec![0i64; layout.len()];
        // Each fetch returns at least one batch while any is left: bounded rounds.
        for _round in 0..=total_batches {
            if offsets == ends {
                break;
            }
            let (resp, trailer) = fetch(&mut wire, &topic, &offsets, max_bytes, partition_max);
            let parts = &resp.topics[0].partitions;
            let total: usize = parts.iter().map(|p| p.records_bytes as usize).sum();
            prop_assert_eq!(total, trailer.len());
            prop_assert!(total > 0, "no progress at {:?} of {:?}", offsets, ends);
            let mut rest = trailer.clone();
            let mut first_nonempty = true;
            for p in parts {
                let bytes = rest.split_to(p.records_bytes as usize);
                if bytes.is_empty() {
                    continue;
                }
                let batches = RecordBatch::split_all(bytes.clone()).unwrap();
                let lone_first_batch = first_nonempty && batches.len() == 1;
                // Over a limit only as the lone first batch of the first partition with
                // records, and then nothing else is in the response.
                if bytes.len() > partition_max as usize {
                    prop_assert!(lone_first_batch, "partition {} sent {} > {}", p.partition, bytes.len(), partition_max);
                }
                if total > max_bytes as usize {
                    prop_assert!(lone_first_batch && total == bytes.len(),
                        "response of {} > max_bytes {} is more than one lone first batch", total, max_bytes);
                }
                first_nonempty = false;
                let next = batches.last().unwrap().header().next_offset();
                prop_assert!(next > offsets[p.partition as usize]);
                offsets[p.partition as usize] = next;
            }
        }
        prop_assert_eq!(offsets, ends);
    }
}

/// The case a librdkafka consumer met: 900 KiB batches on two partitions and
/// `fetch.max.bytes` 1,000,000. Two batches (1.8 MB) made it reject the response and
/// reconnect forever; now each response carries one.
#[test]
fn two_partitions_of_900_kib_batches_fit_a_1_mb_fetch() {
    let (srv, _) = server();
    let mut wire = Wire::connect(srv.addr);
    let layout: Layout = vec![vec![(1, 900 * 1024); 2], vec![(1, 900 * 1024); 2]];
    let (topic, _) = fill(&mut wire, &layout);
    let (resp, trailer) = fetch(&mut wire, &topic, &[0, 0], 1_000_000, 1_048_576);
    assert!(trailer.len() < 1_000_000, "{} bytes", trailer.len());
    let parts = &resp.topics[0].partitions;
    assert!(parts[0].records_bytes > 0);
    assert_eq!(parts[1].records_bytes, 0, "the second partition's batch waits");
    assert_eq!(parts[1].high_watermark, 2, "its bounds are still reported");
    // Fetching the second partition on its own gets its batch.
    let (resp, trailer) = fetch(&mut wire, &topic, &[2, 0], 1_000_000, 1_048_576);
    assert!(trailer.len() < 1_000_000);
    assert!(resp.topics[0].partitions[1].records_bytes > 0);
}
