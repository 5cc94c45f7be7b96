//! The fetcher: a task that fetches ahead of the application on the consumer's own
//! connection (one fetch in flight, long-polling), hands whole batches over through a
//! bounded queue, and the decoding of those batches into records as `next` reaches them.

use super::*;

/// What one fetch brought: whole batches, framed and in offset order per partition, not
/// yet checked or decoded. The fetcher only reads batch headers (to know where the next
/// fetch starts) and sends its next request at once; the CRC check and record decoding
/// happen in [`Consumer::next`], batch by batch, while that request is being served.
pub(super) struct Chunk {
    pub(super) batches: Vec<FetchedBatch>,
    pub(super) high_watermarks: Vec<(PartitionKey, i64)>,
}

pub(super) struct FetchedBatch {
    pub(super) tp: PartitionKey,
    /// The first offset wanted from this batch (a fetch may start inside a batch).
    pub(super) from: i64,
    pub(super) bytes: Bytes,
}

pub(super) struct Fetcher {
    pub(super) task: JoinHandle<()>,
    pub(super) rx: mpsc::Receiver<Result<Chunk>>,
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Consumer {
    pub(super) async fn start_fetcher(&mut self) -> Result<()> {
        let unset: Vec<PartitionKey> = self
            .positions
            .iter()
            .filter(|(_, o)| o.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in unset {
            let at = match self.config.auto_offset_reset {
                OffsetReset::Earliest => Offset::Earliest,
                OffsetReset::Latest => Offset::Latest,
                OffsetReset::None => {
                    return Err(Error::InvalidArgument(format!(
                        "{}-{} has no position and auto_offset_reset is None: seek first",
                        tp.0, tp.1
                    )))
                }
            };
            let o = self.resolve(&tp.0, tp.1, at).await?;
            self.positions.insert(tp, Some(o));
        }
        let positions = self
            .positions
            .iter()
            .map(|(tp, o)| (tp.clone(), o.expect("resolved")))
            .collect();
        let (tx, rx) = mpsc::channel(self.config.prefetch.max(1));
        let task = tokio::spawn(fetch_loop(self.client.clone(), self.config.clone(), positions, tx));
        self.fetcher = Some(Fetcher { task, rx });
        Ok(())
    }
}

/// The pause between fetches while a partition's leader is being found again.
const LEADER_RETRY_PAUSE: Duration = Duration::from_millis(50);

pub(super) async fn fetch_loop(
    client: Client,
    config: ConsumerConfig,
    mut positions: Vec<(PartitionKey, i64)>,
    tx: mpsc::Sender<Result<Chunk>>,
) {
    // Since when fetches have failed with leader errors in a row (a failover: the
    // leader's connection lost, a stale route).
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        let chunk = match fetch_once(&client, &config, &mut positions).await {
            Ok(chunk) => {
                failing_since = None;
                chunk
            }
            Err(e)
                if crate::client::leader_moved(&e)
                    && failing_since.get_or_insert_with(tokio::time::Instant::now).elapsed()
                        < client.config().request_timeout =>
            {
                // The partition's leader moved or died and the routes are being
                // refreshed: Kafka's consumers carry on by themselves through a
                // failover, and so does this one. Only when it lasts past the request
                // timeout does the application hear of it (and fetching goes on).
                debug!(error = %e, "partition leader moved or unreachable; fetching from the new one");
                tokio::time::sleep(config.retry_backoff.min(LEADER_RETRY_PAUSE)).await;
                continue;
            }
            Err(e) => {
                failing_since = None;
                debug!(error = %e, "fetch failed; retrying");
                if tx.send(Err(e)).await.is_err() {
                    return;
                }
                tokio::time::sleep(config.retry_backoff).await;
                continue;
            }
        };
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
    }
}

/// One fetch for every partition — a request to each partition leader, all at once —
/// advancing `positions` past what they return.
pub(super) async fn fetch_once(
    client: &Client,
    config: &ConsumerConfig,
    positions: &mut [(PartitionKey, i64)],
) -> Result<Chunk> {
    // (leader's address or None for the bootstrap broker, its partitions' positions)
    type ByLeader = Vec<(Option<Arc<str>>, Vec<(PartitionKey, i64)>)>;
    let mut groups: ByLeader = Vec::new();
    for (tp, at) in positions.iter() {
        let leader = client.leader_of(&tp.0, tp.1);
        match groups.iter_mut().find(|(l, _)| *l == leader) {
            Some((_, g)) => g.push((tp.clone(), *at)),
            None => groups.push((leader, vec![(tp.clone(), *at)])),
        }
    }
    let fetches = groups.into_iter().map(|(leader, mut group)| async move {
        let r = fetch_from(client, config, leader.as_deref(), &mut group).await;
        (r, group)
    });
    let mut chunk = Chunk {
        batches: Vec::new(),
        high_watermarks: Vec::new(),
    };
    let mut first_error = None;
    for (r, group) in futures::future::join_all(fetches).await {
        for (tp, at) in group {
            if let Some((_, pos)) = positions.iter_mut().find(|(p, _)| *p == tp) {
                *pos = at;
            }
        }
        match r {
            Ok(c) => {
                chunk.batches.extend(c.batches);
                chunk.high_watermarks.extend(c.high_watermarks);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if chunk.batches.is_empty() => Err(e),
        _ => Ok(chunk),
    }
}

/// One fetch from one broker (`leader`; `None`: the bootstrap broker) for `positions`.
// Long by choice: one fetch — request, response, per-partition outcomes — in one place.
async fn fetch_from(
    client: &Client,
    config: &ConsumerConfig,
    leader: Option<&str>,
    positions: &mut [(PartitionKey, i64)],
) -> Result<Chunk> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for ((topic, partition), offset) in positions.iter() {
        let p = FetchPartition {
            partition: *partition,
            fetch_offset: *offset,
            max_bytes: config.max_partition_fetch_bytes,
            current_leader_epoch: None,
        };
        match topics.last_mut() {
            Some(t) if *t.name == **topic => t.partitions.push(p),
            _ => topics.push(FetchTopic {
                name: topic.to_string(),
                partitions: vec![p],
            }),
        }
    }
    let req = FetchRequest {
        max_wait_ms: config.fetch_max_wait.as_millis().min(u32::MAX as u128) as u32,
        min_bytes: config.fetch_min_bytes,
        max_bytes: config.fetch_max_bytes,
        topics,
        replica_id: None,
    };
    let fetched = match client
        .start_call_at(leader, &req, Vec::new(), config.fetch_max_wait)
        .await
    {
        Ok(call) => call.response().await,
        Err(e) => Err(e),
    };
    let (resp, trailer) = match fetched {
        Ok(r) => r,
        Err(e) => {
            if crate::client::leader_moved(&e) {
                if let Some(((topic, _), _)) = positions.first() {
                    client.refresh_routes(topic);
                }
            }
            return Err(e);
        }
    };
    let mut chunk = Chunk {
        batches: Vec::new(),
        high_watermarks: Vec::new(),
    };
    let mut at = 0usize;
    let mut first_error = None;
    for t in &resp.topics {
        for p in &t.partitions {
            let len = p.records_bytes as usize;
            if at + len > trailer.len() {
                return Err(Error::Protocol("fetch response trailer shorter than announced".into()));
            }
            let bytes = trailer.slice(at..at + len);
            at += len;
            let Some((tp, pos)) = positions
                .iter_mut()
                .find(|((topic, part), _)| **topic == *t.name && *part == p.partition)
            else {
                return Err(Error::Protocol(format!(
                    "fetch response has unrequested {}-{}",
                    t.name, p.partition
                )));
            };
            match ErrorCode::from_i32(p.error_code) {
                ErrorCode::None => {}
                ErrorCode::OffsetOutOfRange if config.auto_offset_reset != OffsetReset::None => {
                    let at = match config.auto_offset_reset {
                        OffsetReset::Earliest => Offset::Earliest,
                        _ => Offset::Latest,
                    };
                    let new = list_offset(client, &tp.0, tp.1, at).await?.unwrap_or(0);
                    debug!(topic = %tp.0, partition = tp.1, from = *pos, to = new, "offset out of range; reset");
                    *pos = new;
                    continue;
                }
                code => {
                    let e = Error::Server {
                        code,
                        message: format!("{}-{}: {}", t.name, p.partition, p.error_message),
                    };
                    if crate::client::leader_moved(&e) {
                        client.refresh_routes(&t.name);
                    }
                    first_error.get_or_insert(e);
                    continue;
                }
            }
            chunk.high_watermarks.push((tp.clone(), p.high_watermark));
            let mut rest = bytes;
            while !rest.is_empty() {
                let Some(n) = check_batch(&rest)? else {
                    return Err(Error::Protocol(format!(
                        "fetch response for {}-{} ends inside a batch",
                        t.name, p.partition
                    )));
                };
                let bytes = rest.split_to(n);
                let h = BatchHeader::parse(&bytes)?;
                if h.next_offset() <= *pos {
                    continue;
                }
                if !h.is_control() {
                    chunk.batches.push(FetchedBatch {
                        tp: tp.clone(),
                        from: *pos,
                        bytes,
                    });
                }
                *pos = h.next_offset();
            }
        }
    }
    match first_error {
        // Batches already fetched are delivered; the error comes with the next fetch.
        Some(e) if chunk.batches.is_empty() => Err(e),
        _ => Ok(chunk),
    }
}

/// Checks one fetched batch (framing, CRC-32C) and appends its records from `b.from` on.
pub(super) fn decode_batch(b: FetchedBatch, out: &mut VecDeque<ConsumerRecord>) -> Result<()> {
    let batch = RecordBatch::new(b.bytes)?;
    for r in batch.records()? {
        if r.offset >= b.from {
            out.push_back(ConsumerRecord {
                topic: b.tp.0.clone(),
                partition: b.tp.1,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r.headers,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_protocol::batch::set_base_offset;
    use runnel_protocol::record::{BatchBuilder, BatchOptions, Record};

    fn batch(base: i64, n: usize) -> Bytes {
        let mut b = BatchBuilder::new(BatchOptions::default());
        for i in 0..n {
            b.push(&Record::new(1_000 + i as i64, None, Some(format!("v{i}").as_bytes())));
        }
        let mut bytes = b.finish().expect("batch");
        set_base_offset(&mut bytes, base);
        bytes.freeze()
    }

    #[test]
    fn decode_batch_starts_at_from_and_rejects_a_corrupt_batch() {
        let tp: PartitionKey = (Arc::from("t"), 3);
        let mut out = VecDeque::new();
        let fetched = |bytes, from| FetchedBatch {
            tp: tp.clone(),
            from,
            bytes,
        };
        decode_batch(fetched(batch(10, 5), 12), &mut out).expect("valid batch");
        let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [12, 13, 14]);
        assert_eq!(out[0].value.as_deref(), Some(&b"v2"[..]));
        assert!(out.iter().all(|r| r.partition == 3 && &*r.topic == "t"));

        // A flipped bit in the records: the CRC check refuses the batch, nothing is added.
        let mut bad = batch(15, 5).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0x10;
        let err = decode_batch(fetched(Bytes::from(bad), 15), &mut out).expect_err("corrupt batch");
        assert!(err.to_string().to_lowercase().contains("crc"), "{err}");
        assert_eq!(out.len(), 3);
    }
}
