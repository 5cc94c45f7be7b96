//! The metrics endpoint under a known workload: its text parses as OpenMetrics (with the
//! `openmetrics-parser` crate), traffic counters equal what was produced and fetched,
//! request and error counters match the requests sent, group lag falls to zero once the
//! group has committed the end; the per-partition switch multiplies only the traffic
//! series; a request over `slow_request_ms` is logged at warn with its correlation id.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::batch;
use common::wire::{TestServer, Wire};
use openmetrics_parser::openmetrics::parse_openmetrics;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use runnel_broker::server::ServerConfig;
use runnel_protocol::messages::{Acks, OffsetCommitPartition, OffsetCommitRequest, OffsetCommitTopic};

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// (status, body) of `GET path`.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: runnel\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("a header and a body");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn scrape(addr: SocketAddr) -> Exposition {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    parse_openmetrics(&body).unwrap_or_else(|e| panic!("not OpenMetrics: {e:?}\n{body}"))
}

/// The value of every series of `family` as (labels, value).
fn series(m: &Exposition, family: &str) -> Vec<(HashMap<String, String>, f64)> {
    let Some(f) = m.families.get(family) else {
        return Vec::new();
    };
    f.iter_samples()
        .map(|s| {
            let labels = s.get_labelset().unwrap();
            let labels = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let value = match &s.value {
                OpenMetricsValue::Counter(c) => c.value.as_f64(),
                OpenMetricsValue::Gauge(g) => g.as_f64(),
                OpenMetricsValue::Unknown(u) => u.as_f64(),
                OpenMetricsValue::Histogram(h) => h.count.unwrap_or(0) as f64,
                other => panic!("{family}: unexpected value {other:?}"),
            };
            (labels, value)
        })
        .collect()
}

/// The one series of `family` whose labels include all of `want`.
fn value(m: &Exposition, family: &str, want: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = series(m, family)
        .into_iter()
        .filter(|(l, _)| want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "{family} {want:?}: {found:?}");
    found[0]
}

fn start(cfg: ServerConfig) -> (tempfile::TempDir, TestServer, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..cfg
    };
    let s = TestServer::start(dir.path(), cfg);
    let m = s.metrics_addr.unwrap();
    (dir, s, m)
}

fn commit(w: &mut Wire, group: &str, topic: &str, offsets: &[i64]) {
    let req = OffsetCommitRequest {
        group_id: group.into(),
        member_id: String::new(),
        member_epoch: -1,
        group_instance_id: None,
        topics: vec![OffsetCommitTopic {
            topic: topic.into(),
            partitions: offsets
                .iter()
                .enumerate()
                .map(|(p, o)| OffsetCommitPartition {
                    partition: p as u32,
                    offset: *o,
                    metadata: String::new(),
                })
                .collect(),
        }],
    };
    let (resp, _) = w.call(&req, &[]);
    assert!(resp.topics[0].partitions.iter().all(|p| p.error_code == 0), "{resp:?}");
}

#[test]
fn counters_match_the_workload_and_lag_reaches_zero() {
    let (_dir, s, maddr) = start(ServerConfig {
        kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    });
    // One Kafka request (ApiVersions v0, client id "m"), and one for an api not served.
    let mut k = TcpStream::connect(s.kafka_addr.unwrap()).unwrap();
    for (key, id) in [(18i16, 5i32), (29, 6)] {
        let mut frame = vec![0, 0, 0, 11];
        frame.extend_from_slice(&key.to_be_bytes());
        frame.extend_from_slice(&0i16.to_be_bytes());
        frame.extend_from_slice(&id.to_be_bytes());
        frame.extend_from_slice(&[0, 1, b'm']);
        k.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        k.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        k.read_exact(&mut body).unwrap();
        assert_eq!(&body[..4], &id.to_be_bytes());
    }
    assert_eq!(get(maddr, "/health").0, 200);
    assert_eq!(get(maddr, "/ready").0, 200);
    assert_eq!(get(maddr, "/nope").0, 404);
    let mut w = Wire::connect(s.addr);
    w.create_topic("m", 3, &[]);
    // 3 partitions × 4 batches of 25 records; 2 ms apart in timestamps, an hour old.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let old = now_ms - 3_600_000;
    let (mut records, mut bytes, mut produces) = (0u64, 0u64, 0u64);
    for p in 0..3u32 {
        for i in 0..4u64 {
            let b = batch(p as u64 * 10 + i, 25, 100, old + i as i64);
            bytes += b.len() as u64;
            records += 25;
            produces += 1;
            assert_eq!(w.produce("m", p, Acks::All, &b).error_code, 0);
        }
    }
    // One produce to a partition that does not exist: an error by code.
    let bad = batch(99, 1, 10, old);
    assert_ne!(w.produce("m", 7, Acks::All, &bad).error_code, 0);
    produces += 1;
    // Fetch everything, partition by partition, from the middle of a batch too.
    let mut fetched = 0u64;
    for p in 0..3u32 {
        let (r, trailer) = w.fetch("m", p, 0, 0);
        assert_eq!(r.high_watermark, 100);
        fetched += trailer.len() as u64;
    }
    let (_, mid) = w.fetch("m", 0, 60, 0);
    let mid_records = 100 - 50; // from the batch holding offset 60 (offsets 50..99)
    let mid_bytes = mid.len() as u64;

    commit(&mut w, "g", "m", &[50, 100, 0]);
    let m = scrape(maddr);
    let topic = [("topic", "m")];
    assert_eq!(value(&m, "runnel_produced_records", &topic), records as f64);
    assert_eq!(value(&m, "runnel_produced_bytes", &topic), bytes as f64);
    assert_eq!(fetched, bytes);
    assert_eq!(
        value(&m, "runnel_fetched_records", &topic),
        (records + mid_records) as f64
    );
    assert_eq!(value(&m, "runnel_fetched_bytes", &topic), (bytes + mid_bytes) as f64);
    let produce = [("protocol", "native"), ("api", "Produce")];
    assert_eq!(value(&m, "runnel_requests", &produce), produces as f64);
    assert_eq!(value(&m, "runnel_request_duration_seconds", &produce), produces as f64);
    assert_eq!(
        value(
            &m,
            "runnel_request_errors",
            &[("api", "Produce"), ("code", "UNKNOWN_TOPIC_OR_PARTITION")]
        ),
        1.0
    );
    assert_eq!(value(&m, "runnel_requests", &[("api", "Fetch")]), 4.0);
    let kafka = |api| [("protocol", "kafka"), ("api", api)];
    assert_eq!(value(&m, "runnel_requests", &kafka("ApiVersions")), 1.0);
    assert_eq!(value(&m, "runnel_requests", &kafka("DescribeAcls")), 1.0);
    assert_eq!(
        value(
            &m,
            "runnel_request_errors",
            &[("api", "DescribeAcls"), ("code", "UNSUPPORTED_VERSION")]
        ),
        1.0
    );
    // Batches appended (the refused one is not).
    assert_eq!(value(&m, "runnel_produce_batch_size_bytes", &[]), 12.0);
    let p1 = [("topic", "m"), ("partition", "1")];
    assert_eq!(value(&m, "runnel_log_end_offset", &p1), 100.0);
    assert_eq!(value(&m, "runnel_log_start_offset", &p1), 0.0);
    assert_eq!(value(&m, "runnel_log_segments", &p1), 1.0);
    assert!(value(&m, "runnel_log_size_bytes", &p1) > 0.0);
    assert!(value(&m, "runnel_fsyncs", &[]) >= 1.0);
    assert!(value(&m, "runnel_appends_per_fsync", &[]) >= 1.0);
    assert!(value(&m, "runnel_process_open_fds", &[]) > 0.0);
    assert!(value(&m, "runnel_data_dir_available_bytes", &[]) > 0.0);
    assert!(value(&m, "runnel_data_dir_capacity_bytes", &[]) >= value(&m, "runnel_data_dir_available_bytes", &[]));
    assert!(value(&m, "runnel_process_resident_memory_bytes", &[]) > 0.0);
    assert_eq!(
        value(&m, "runnel_connections_open", &[]),
        2.0,
        "the native and the Kafka one"
    );
    // Lag: partition 0 is 50 records and about an hour behind, 2 is 100 behind, 1 none.
    let g = |p: &'static str| [("group", "g"), ("topic", "m"), ("partition", p)];
    assert_eq!(value(&m, "runnel_group_committed_offset", &g("0")), 50.0);
    assert_eq!(value(&m, "runnel_group_lag_records", &g("0")), 50.0);
    assert_eq!(value(&m, "runnel_group_lag_records", &g("2")), 100.0);
    assert_eq!(value(&m, "runnel_group_lag_records", &g("1")), 0.0);
    assert!(value(&m, "runnel_group_lag_seconds", &g("0")) > 3_500.0);
    assert_eq!(value(&m, "runnel_group_lag_seconds", &g("1")), 0.0);
    // The group catches up: lag zero everywhere.
    commit(&mut w, "g", "m", &[100, 100, 100]);
    let m = scrape(maddr);
    for p in ["0", "1", "2"] {
        assert_eq!(value(&m, "runnel_group_lag_records", &g(p)), 0.0);
        assert_eq!(value(&m, "runnel_group_lag_seconds", &g(p)), 0.0);
    }
    s.shutdown();
}

#[test]
fn the_per_partition_switch_bounds_the_series() {
    let mut counts = Vec::new();
    for per_partition in [false, true] {
        let (_dir, s, maddr) = start(ServerConfig {
            metrics_per_partition: per_partition,
            ..ServerConfig::default()
        });
        let mut w = Wire::connect(s.addr);
        for t in ["a", "b"] {
            w.create_topic(t, 8, &[]);
            for p in 0..8 {
                w.produce(t, p, Acks::Leader, &batch(p as u64, 2, 10, 0));
                w.fetch(t, p, 0, 0);
            }
        }
        let m = scrape(maddr);
        let traffic: Vec<usize> = [
            "runnel_produced_records",
            "runnel_produced_bytes",
            "runnel_fetched_records",
            "runnel_fetched_bytes",
        ]
        .iter()
        .map(|f| series(&m, f).len())
        .collect();
        // The log gauges are per partition either way.
        assert_eq!(series(&m, "runnel_log_end_offset").len(), 16);
        counts.push(traffic);
        // A deleted topic's series go with it.
        let (resp, _) = w.call(
            &runnel_protocol::messages::DeleteTopicsRequest {
                topics: vec!["b".into()],
            },
            &[],
        );
        assert_eq!(resp.topics[0].error_code, 0);
        let m = scrape(maddr);
        assert_eq!(
            series(&m, "runnel_produced_records").len(),
            if per_partition { 8 } else { 1 }
        );
        assert_eq!(series(&m, "runnel_log_end_offset").len(), 8);
        s.shutdown();
    }
    assert_eq!(counts[0], vec![2; 4], "one series per topic");
    assert_eq!(counts[1], vec![16; 4], "one series per partition");
}

/// Log lines of this test binary, captured.
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_slow_request_is_logged_at_warn_with_its_correlation_id() {
    let logs = captured();
    // A threshold of 0: every request is slower. A produce with acks all waits for its
    // fsync, so it is slow for a threshold of 0 on any disk.
    let (_dir, s, _) = start(ServerConfig {
        slow_request_ms: 0,
        ..ServerConfig::default()
    });
    let mut w = Wire::connect(s.addr);
    w.create_topic("slow", 1, &[("flush.policy", "always")]);
    let req = common::wire::produce_request("slow", 0, Acks::All, 0);
    let b = batch(1, 3, 10, 0);
    let mut req = req;
    req.topics[0].partitions[0].records_bytes = b.len() as u32;
    let (id, frame) = w.frame(runnel_protocol::ApiKey::Produce as i16, 0, &req, &b);
    w.send_raw(&frame);
    let resp = w.read_response().unwrap();
    assert_eq!(resp.correlation_id, id);
    // The writer logs after the response is written: give it a moment.
    let line = (0..200)
        .find_map(|_| {
            let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
            let found = text
                .lines()
                .find(|l| {
                    l.contains("slow request")
                        && l.contains(&format!("correlation_id={id} "))
                        && l.contains("api=\"Produce\"")
                })
                .map(str::to_owned);
            if found.is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            found
        })
        .expect("a slow request line");
    assert!(line.contains(" WARN "), "{line}");
    assert!(line.contains("storage_ms="), "{line}");
    assert!(
        line.contains(&format!("peer={}", w.sock.local_addr().unwrap())),
        "{line}"
    );
    s.shutdown();

    // With a threshold of a minute nothing is logged.
    let before = logs.lock().unwrap().len();
    let (_dir, s, _) = start(ServerConfig {
        slow_request_ms: 60_000,
        ..ServerConfig::default()
    });
    let mut w = Wire::connect(s.addr);
    w.create_topic("quick", 1, &[]);
    w.produce("quick", 0, Acks::Leader, &batch(1, 3, 10, 0));
    s.shutdown();
    let after = String::from_utf8_lossy(&logs.lock().unwrap()[before..]).into_owned();
    assert!(!after.contains("slow request"), "{after}");
}

#[test]
fn recovery_reports_what_it_cut() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    };
    let s = TestServer::start(dir.path(), cfg.clone());
    let mut w = Wire::connect(s.addr);
    w.create_topic("torn", 1, &[]);
    w.produce("torn", 0, Acks::All, &batch(1, 5, 50, 0));
    let m = scrape(s.metrics_addr.unwrap());
    assert_eq!(value(&m, "runnel_recovery_truncated_bytes", &[]), 0.0);
    drop(w);
    s.shutdown();
    // A torn write after the last batch, and no clean-shutdown marker: the next start
    // scans the tail and cuts the 37 stray bytes.
    let seg = dir.path().join("torn-0").join(format!("{:020}.log", 0));
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0xAB; 37]).unwrap();
    drop(f);
    std::fs::remove_file(dir.path().join(runnel_broker::storage::manager::CLEAN_SHUTDOWN_FILE)).unwrap();
    let s = TestServer::start(dir.path(), cfg);
    let m = scrape(s.metrics_addr.unwrap());
    assert_eq!(value(&m, "runnel_recovery_truncated_bytes", &[]), 37.0);
    assert!(value(&m, "runnel_recovery_duration_seconds", &[]) > 0.0);
    assert_eq!(value(&m, "runnel_log_end_offset", &[("topic", "torn")]), 5.0);
    s.shutdown();
}
