//! The sender task: takes ready batches from the accumulator, compresses and groups them
//! into Produce requests (at most `max_request_bytes` each), sends them pipelined on the
//! connection, and completes, retries or requeues each batch from the response.

use super::*;

pub(super) async fn run_sender(inner: Arc<Inner>) {
    loop {
        let woken = inner.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let rerouted = inner.client.routes_changed().notified();
        tokio::pin!(rerouted);
        rerouted.as_mut().enable();
        let (ready, next) = inner.take_ready(inner.client.routes_version());
        if !ready.is_empty() {
            // Encoding (and compression) happens here, outside the accumulator's lock.
            let mut batches = Vec::with_capacity(ready.len());
            for (tp, item) in ready {
                match item {
                    Queued::Retry(b) => batches.push((tp, b)),
                    Queued::Fresh(open) => match open.builder.finish() {
                        Ok(bytes) => batches.push((
                            tp,
                            Batch {
                                bytes: bytes.freeze(),
                                completion: open.completion,
                                reserved_bytes: open.reserved_bytes,
                                created: open.created,
                                attempts: 0,
                                records: open.records,
                                seq: open.seq,
                            },
                        )),
                        Err(e) => {
                            let failed = Batch {
                                bytes: Bytes::new(),
                                completion: open.completion,
                                reserved_bytes: open.reserved_bytes,
                                created: open.created,
                                attempts: 0,
                                records: open.records,
                                seq: open.seq,
                            };
                            inner.complete(&tp, failed, Err(Error::Batch(e)));
                        }
                    },
                }
            }
            // Queued on each leader's connection here, in order (a partition with several
            // requests in flight relies on it); the responses are awaited in tasks of
            // their own.
            for (leader, batches) in by_leader(&inner, batches) {
                for request in split_requests(batches, inner.config.max_request_bytes) {
                    let started = start_request(&inner, leader.as_deref(), &request).await;
                    tokio::spawn(finish_request(inner.clone(), request, started));
                }
            }
            continue;
        }
        if inner.closed.load(Ordering::Acquire) && inner.lock().outstanding == 0 {
            return;
        }
        match next {
            Some(at) => {
                tokio::select! {
                    _ = &mut woken => {}
                    _ = &mut rerouted => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => woken.await,
        }
    }
}

/// A leader's address (`None`: the bootstrap broker) and the batches bound for it.
type LeaderBatches = (Option<Arc<str>>, Vec<(PartitionKey, Batch)>);

/// Groups batches by their partition's leader (`None`: not known, the bootstrap broker),
/// keeping each partition's batches in order.
fn by_leader(inner: &Inner, batches: Vec<(PartitionKey, Batch)>) -> Vec<LeaderBatches> {
    let mut out: Vec<LeaderBatches> = Vec::new();
    for (tp, b) in batches {
        let leader = inner.client.leader_of(&tp.0, tp.1);
        match out.iter_mut().find(|(l, _)| *l == leader) {
            Some((_, group)) => group.push((tp, b)),
            None => out.push((leader, vec![(tp, b)])),
        }
    }
    out
}

/// Groups batches into requests of at most `max_bytes` (a single larger batch alone).
pub(super) fn split_requests(batches: Vec<(PartitionKey, Batch)>, max_bytes: usize) -> Vec<Vec<(PartitionKey, Batch)>> {
    let mut out: Vec<Vec<(PartitionKey, Batch)>> = Vec::new();
    let mut bytes = 0;
    for b in batches {
        let len = b.1.bytes.len();
        match out.last_mut() {
            Some(last) if bytes + len <= max_bytes => {
                bytes += len;
                last.push(b);
            }
            _ => {
                bytes = len;
                out.push(vec![b]);
            }
        }
    }
    out
}

/// Queues one Produce request for `batches` to `leader` (`None`: the bootstrap broker).
/// `Ok(None)`: acks none, nothing to await.
pub(super) async fn start_request(
    inner: &Inner,
    leader: Option<&str>,
    batches: &[(PartitionKey, Batch)],
) -> Result<Option<PendingCall<ProduceRequest>>> {
    let acks = inner.config.acks;
    let mut topics: Vec<ProduceTopic> = Vec::new();
    let mut trailer = Vec::with_capacity(batches.len());
    for (tp, b) in batches {
        let partition = ProducePartition {
            partition: tp.1,
            records_bytes: b.bytes.len() as u32,
        };
        match topics.iter_mut().find(|t| *t.name == *tp.0) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(ProduceTopic {
                name: tp.0.to_string(),
                partitions: vec![partition],
            }),
        }
    }
    // The trailer must follow the body's order: topic by topic.
    for t in &topics {
        for p in &t.partitions {
            let (_, b) = batches
                .iter()
                .find(|(tp, _)| *tp.0 == *t.name && tp.1 == p.partition)
                .expect("listed above");
            trailer.push(b.bytes.clone());
        }
    }
    let req = ProduceRequest {
        acks: acks as i32,
        timeout_ms: inner.config.client.request_timeout.as_millis().min(u32::MAX as u128) as u32,
        topics,
    };
    if acks == Acks::None {
        inner.client.send_only_at(leader, &req, trailer).await.map(|()| None)
    } else {
        inner
            .client
            .start_call_at(leader, &req, trailer, Duration::ZERO)
            .await
            .map(Some)
    }
}

/// Awaits a started Produce request's response and completes (or retries) its batches.
pub(super) async fn finish_request(
    inner: Arc<Inner>,
    batches: Vec<(PartitionKey, Batch)>,
    started: Result<Option<PendingCall<ProduceRequest>>>,
) {
    let outcome: Result<Option<ProduceResponse>> = match started {
        Ok(Some(call)) => call.response().await.map(|(r, _)| Some(r)),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    // Read before the refreshes below start: a leader change they find ends the backoff.
    let routes_version = inner.client.routes_version();
    for (tp, batch) in batches {
        let result = match &outcome {
            Err(e) => Err(e.clone()),
            Ok(None) => Ok((-1, -1)),
            Ok(Some(resp)) => partition_result(resp, &tp),
        };
        let in_time = batch.created.elapsed() < inner.config.delivery_timeout;
        if result.as_ref().err().is_some_and(crate::client::leader_moved) {
            // Retried below; the retry goes to the leader the answer names or, without
            // one, the leader the refreshed routes name.
            let hinted = match &outcome {
                Ok(Some(resp)) => {
                    leader_hint(resp, &tp).is_some_and(|(id, epoch)| inner.client.learn_leader(&tp.0, tp.1, id, epoch))
                }
                _ => false,
            };
            if !hinted {
                inner.client.refresh_routes(&tp.0);
            }
        }
        match result {
            Err(e) if in_time && batch.seq.is_some() && e.code() == Some(ErrorCode::OutOfOrderSequenceNumber) => {
                inner.out_of_order(&tp, batch, &e, routes_version)
            }
            Err(e) if e.is_retriable() && in_time => inner.retry(&tp, batch, &e, routes_version),
            Err(e) => {
                if is_unknown_topic(&e) {
                    inner.client.forget_topic(&tp.0);
                }
                inner.complete(&tp, batch, Err(e))
            }
            Ok(r) => inner.complete(&tp, batch, Ok(r)),
        }
    }
}

/// The current leader a NOT_LEADER_OR_FOLLOWER answer for `tp` names, if any.
fn leader_hint(resp: &ProduceResponse, tp: &PartitionKey) -> Option<(i32, i32)> {
    let p = resp
        .topics
        .iter()
        .filter(|t| *t.name == *tp.0)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition == tp.1)?;
    Some((p.current_leader_id?, p.current_leader_epoch?))
}

pub(super) fn partition_result(resp: &ProduceResponse, tp: &PartitionKey) -> Result<(i64, i64)> {
    let p = resp
        .topics
        .iter()
        .filter(|t| *t.name == *tp.0)
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition == tp.1)
        .ok_or_else(|| Error::Protocol(format!("produce response lacks {}-{}", tp.0, tp.1)))?;
    check(p.error_code, &p.error_message)?;
    Ok((p.base_offset, p.log_append_time_ms))
}
