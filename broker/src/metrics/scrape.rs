//! What is read at scrape time: log sizes and offsets, group offsets and lag, storage
//! figures, the process's memory, descriptors and CPU — from what the service layer hands
//! over ([`ScrapeSource`]).

use super::*;

/// What a scrape reads from the broker, handed over by the service layer (which owns
/// it): the storage engine, the group coordinator, and counters kept beside them. Held
/// weakly: a scrape after the broker is gone reports the process figures only.
pub trait ScrapeSource: Send + Sync {
    fn storage(&self) -> &Arc<LogManager>;
    fn groups(&self) -> &Arc<Coordinator>;
    fn kafka_produce_copied_bytes(&self) -> u64;
    /// This broker's view of the cluster.
    fn cluster(&self) -> ClusterGauges;
}

/// The cluster as one broker sees it, read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterGauges {
    pub is_controller: bool,
    /// Partitions this broker leads.
    pub leaders: u64,
    /// The metadata log index applied here.
    pub metadata_offset: u64,
    pub brokers: u64,
    pub fenced_brokers: u64,
}

/// Values read from the broker at scrape time.
#[derive(Debug)]
pub(super) struct BrokerCollector(pub(super) Arc<Metrics>);

/// Labels of a series read at scrape time.
type Labels = Vec<(&'static str, String)>;

/// One series without labels.
fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: M,
) -> Result<(), std::fmt::Error> {
    let metric_type = metric.metric_type();
    metric.encode(encoder.encode_descriptor(name, help, unit, metric_type)?)
}

/// A family of labelled series (nothing when there are none).
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = (Labels, M)>,
) -> Result<(), std::fmt::Error> {
    let mut series = series.into_iter().peekable();
    let Some((_, first)) = series.peek() else { return Ok(()) };
    let mut family = encoder.encode_descriptor(name, help, unit, first.metric_type())?;
    for (labels, m) in series {
        m.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for BrokerCollector {
    // Long by choice: one metric family after another, in the order /metrics lists them.
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        single(
            &mut encoder,
            "uptime",
            "Time since the broker started",
            Some(&Unit::Seconds),
            ConstGauge::new(m.uptime().as_secs_f64()),
        )?;
        process_metrics(&mut encoder)?;
        let Some(broker) = m.source.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        single(
            &mut encoder,
            "kafka_produce_copied_bytes",
            "Record bytes of Kafka produce requests copied before their append (requests under 16 KiB; larger ones are appended where they were read)",
            None,
            ConstCounter::new(broker.kafka_produce_copied_bytes()),
        )?;
        let c = broker.cluster();
        single(
            &mut encoder,
            "cluster_controller",
            "1 if this broker is the controller (the metadata quorum's leader), else 0",
            None,
            ConstGauge::new(i64::from(c.is_controller)),
        )?;
        single(
            &mut encoder,
            "cluster_partition_leaders",
            "Partitions this broker leads",
            None,
            ConstGauge::new(c.leaders as i64),
        )?;
        single(
            &mut encoder,
            "cluster_metadata_offset",
            "The metadata log index this broker has applied",
            None,
            ConstGauge::new(c.metadata_offset as i64),
        )?;
        single(
            &mut encoder,
            "cluster_brokers",
            "Brokers registered in the cluster's metadata",
            None,
            ConstGauge::new(c.brokers as i64),
        )?;
        single(
            &mut encoder,
            "cluster_fenced_brokers",
            "Registered brokers that are fenced (silent past their session timeout, or shut down)",
            None,
            ConstGauge::new(c.fenced_brokers as i64),
        )?;
        let storage = broker.storage();
        let stats = storage.stats();
        single(
            &mut encoder,
            "fsyncs",
            "Sync passes (fdatasync) on partition logs",
            None,
            ConstCounter::new(stats.fsyncs.get()),
        )?;
        single(
            &mut encoder,
            "fsync_duration_seconds",
            "Time each sync pass (fdatasync) of a partition log took",
            None,
            stats.fsync_seconds.clone(),
        )?;
        single(
            &mut encoder,
            "appends_per_fsync",
            "Appends made durable by each sync pass (group commit: above 1 when syncs are shared)",
            None,
            stats.appends_per_fsync.clone(),
        )?;
        let recovery = storage.recovery();
        single(
            &mut encoder,
            "recovery_duration",
            "Time the last start spent opening and recovering logs",
            Some(&Unit::Seconds),
            ConstGauge::new(recovery.seconds),
        )?;
        single(
            &mut encoder,
            "recovery_truncated",
            "Bytes cut from log tails (torn or corrupt writes) at the last start",
            Some(&Unit::Bytes),
            ConstGauge::new(recovery.truncated_bytes as i64),
        )?;

        if let Ok(fs) = nix::sys::statvfs::statvfs(&storage.config().data_dir) {
            let block = fs.fragment_size() as i64;
            single(
                &mut encoder,
                "data_dir_capacity",
                "Size of the file system holding the data directory",
                Some(&Unit::Bytes),
                ConstGauge::new(fs.blocks() as i64 * block),
            )?;
            single(
                &mut encoder,
                "data_dir_available",
                "Free space (for unprivileged writers) on the data directory's file system",
                Some(&Unit::Bytes),
                ConstGauge::new(fs.blocks_available() as i64 * block),
            )?;
        }

        let topics = storage.topics();
        let parts = || {
            topics.iter().flat_map(|t| {
                t.partitions.iter().enumerate().map(move |(p, log)| {
                    let labels: Labels = vec![("topic", t.name.clone()), ("partition", p.to_string())];
                    (labels, log.clone())
                })
            })
        };
        family(
            &mut encoder,
            "log_size",
            "Bytes in a partition's segments",
            Some(&Unit::Bytes),
            parts().map(|(l, log)| (l, ConstGauge::new(log.size_bytes() as i64))),
        )?;
        family(
            &mut encoder,
            "log_segments",
            "Segments of a partition",
            None,
            parts().map(|(l, log)| (l, ConstGauge::new(log.segment_base_offsets().len() as i64))),
        )?;
        family(
            &mut encoder,
            "log_start_offset",
            "First offset a partition holds",
            None,
            parts().map(|(l, log)| (l, ConstGauge::new(log.start_offset() as i64))),
        )?;
        family(
            &mut encoder,
            "log_end_offset",
            "Offset the next record of a partition gets",
            None,
            parts().map(|(l, log)| (l, ConstGauge::new(log.end_offset() as i64))),
        )?;
        family(
            &mut encoder,
            "log_high_watermark",
            "Offset below which every in-sync replica holds a partition's records (what consumers read up to)",
            None,
            parts().map(|(l, log)| (l, ConstGauge::new(log.high_watermark() as i64))),
        )?;
        group_metrics(&mut encoder, broker.as_ref())
    }
}

/// Members, committed offsets and lag of every group.
fn group_metrics(encoder: &mut DescriptorEncoder, broker: &dyn ScrapeSource) -> Result<(), std::fmt::Error> {
    let now_ms = crate::storage::log::now_ms();
    let mut committed = Vec::new();
    let mut lag = Vec::new();
    let mut lag_seconds = Vec::new();
    let mut members = Vec::new();
    for g in broker.groups().list() {
        members.push((vec![("group", g.id.clone())], ConstGauge::new(g.members as i64)));
        for (tp, c) in broker.groups().committed(&g.id, None).unwrap_or_default() {
            let labels: Labels = vec![
                ("group", g.id.clone()),
                ("topic", tp.0.clone()),
                ("partition", tp.1.to_string()),
            ];
            committed.push((labels.clone(), ConstGauge::new(c.offset)));
            if let Ok(log) = broker.storage().partition(&tp.0, tp.1) {
                if let Ok(l) = crate::group::lag::lag(&log, Some(c.offset), now_ms) {
                    lag.push((labels.clone(), ConstGauge::new(l.records)));
                    lag_seconds.push((labels, ConstGauge::new(l.ms.max(0) as f64 / 1000.0)));
                }
            }
        }
    }
    family(encoder, "group_members", "Members of a consumer group", None, members)?;
    family(
        encoder,
        "group_committed_offset",
        "A group's committed offset for a partition",
        None,
        committed,
    )?;
    family(
        encoder,
        "group_lag_records",
        "Records between a group's committed offset and the partition's end",
        None,
        lag,
    )?;
    family(
        encoder,
        "group_lag",
        "Age of the oldest record a group has not consumed (0 when caught up)",
        Some(&Unit::Seconds),
        lag_seconds,
    )
}

/// Resident memory, open file descriptors and CPU time of this process, from /proc.
fn process_metrics(encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096);
    if let Some(resident_pages) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<i64>().ok()))
    {
        single(
            encoder,
            "process_resident_memory",
            "Resident memory of the broker process",
            Some(&Unit::Bytes),
            ConstGauge::new(resident_pages * page),
        )?;
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        single(
            encoder,
            "process_open_fds",
            "Open file descriptors of the broker process",
            None,
            ConstGauge::new(fds.count() as i64),
        )?;
    }
    if let Ok(u) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        single(
            encoder,
            "process_cpu",
            "CPU time (user and system) of the broker process",
            Some(&Unit::Seconds),
            ConstCounter::new(secs(u.user_time()) + secs(u.system_time())),
        )?;
    }
    Ok(())
}
