//! ConsumerGroupHeartbeat: join, stay, leave; the answer is what the member should hold.
//! With `wait_ms`, a heartbeat that would bring the member no news is held until its
//! group changes (a long poll), so revocations and freed partitions reach members at
//! once instead of at their next heartbeat.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use runnel_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use runnel_protocol::{ErrorCode, Response};

use super::{from_topic_partitions, non_empty, to_topic_partitions};
use crate::group::{GroupResult, Heartbeat, HeartbeatReply};
use crate::net::order::{in_turn, ApplyOrder};
use crate::service::{groups, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// `order`: the heartbeat takes effect in the connection's request order (after a commit
/// sent before a leave, say); its long poll is outside the turn.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    req: ConsumerGroupHeartbeatRequest,
    order: Option<ApplyOrder>,
) -> ConsumerGroupHeartbeatResponse {
    let hb = Heartbeat {
        member_id: req.member_id,
        member_epoch: req.member_epoch,
        instance_id: non_empty(req.instance_id),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topics: req.subscribed_topics.into_iter().collect(),
        regex: non_empty(req.subscribed_topic_regex),
        assignor: non_empty(req.assignor),
        owned: from_topic_partitions(req.owned),
    };
    let group = req.group_id;
    // Leave the answer time to travel within the request timeout.
    let wait = Duration::from_millis((req.wait_ms as u64).min(broker.config().request_timeout_ms / 2));
    let watch = groups::watch(broker, &group);
    let mut result = match beat(broker, &group, hb.clone(), order).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let news = |r: &GroupResult<(HeartbeatReply, u32)>| match r {
        Ok((reply, _)) => reply.member_epoch != hb.member_epoch || reply.assignment != hb.owned,
        Err(_) => true,
    };
    if hb.member_epoch > 0 && !wait.is_zero() && !news(&result) {
        if let Some((version, changed)) = watch.or_else(|| groups::watch(broker, &group)) {
            let deadline = tokio::time::Instant::now() + wait;
            crate::metrics::waiting(async {
                loop {
                    let notified = changed.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if groups::watch(broker, &group).map(|w| w.0) != Some(version) {
                        break;
                    }
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = broker.shutting_down() => break,
                    }
                }
            })
            .await;
            // Answer with the group as it is now (this also renews the session).
            result = match beat(broker, &group, hb, None).await {
                Ok(r) => r,
                Err(resp) => return resp,
            };
        }
    }
    match result {
        Ok((reply, interval)) => ConsumerGroupHeartbeatResponse {
            member_id: reply.member_id,
            member_epoch: reply.member_epoch,
            heartbeat_interval_ms: interval,
            assignment: to_topic_partitions(&reply.assignment),
            ..Default::default()
        },
        Err(e) => ConsumerGroupHeartbeatResponse::with_error(e.kind.into(), e.message),
    }
}

/// One pass through the coordinator, answered once its changes are durable.
async fn beat(
    broker: &Arc<Broker>,
    group: &str,
    hb: Heartbeat,
    order: Option<ApplyOrder>,
) -> Result<GroupResult<(HeartbeatReply, u32)>, ConsumerGroupHeartbeatResponse> {
    let (result, durable) = in_turn(order, || groups::heartbeat(broker, group, hb)).await;
    match durable.wait().await {
        Ok(()) => Ok(result),
        Err(e) => {
            let (code, message) = super::code_and_message(&e);
            Err(ConsumerGroupHeartbeatResponse::with_error(
                ErrorCode::from_i32(code),
                message,
            ))
        }
    }
}
