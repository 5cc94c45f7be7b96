//! From a request frame to a reply: check the API key and version, decode the body, run
//! the handler under the request timeout, encode the response.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use runnel_protocol::frame;
use runnel_protocol::messages::ErrorResponse;
use runnel_protocol::{ApiKey, ErrorCode, Request, Response};
use tokio::sync::oneshot;
use tracing::debug;

use super::handlers;
use super::reply::Reply;
use super::Broker;
use crate::metrics;

/// Keeps a connection's produce requests, offset commits and group requests taking
/// effect in the order they arrived, although each runs as its own task: a request
/// appends (or commits) only after its predecessor in the chain has (or failed) —
/// `after` resolves when that one signals or drops its `done`. Kafka handles a
/// connection's requests one at a time, and clients rely on it: they pipeline produce
/// requests per partition, and of pipelined commits the last one sent must win.
pub(crate) struct ApplyOrder {
    after: Option<oneshot::Receiver<()>>,
    done: Option<oneshot::Sender<()>>,
}

impl ApplyOrder {
    /// The turn after the one that signals `after` (`None`: the first).
    pub fn new(after: Option<oneshot::Receiver<()>>, done: oneshot::Sender<()>) -> ApplyOrder {
        ApplyOrder {
            after,
            done: Some(done),
        }
    }

    /// Waits for the predecessor's appends or commit.
    pub async fn wait_turn(&mut self) {
        if let Some(prev) = self.after.take() {
            let _ = prev.await;
        }
    }

    /// This request's appends or commit are done (not necessarily durable): the next may
    /// go. Dropping the turn does the same, so a request that fails or is cancelled never
    /// holds up the connection.
    pub fn applied(mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

impl Drop for ApplyOrder {
    /// A turn given up before it was waited for (the request failed early): its
    /// successor must still come after its predecessor, so the signal is passed on once
    /// the predecessor's arrives.
    fn drop(&mut self) {
        if let (Some(after), Some(done)) = (self.after.take(), self.done.take()) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = after.await;
                    let _ = done.send(());
                });
            }
        }
    }
}

/// Waits for the predecessor in the chain and returns the turn, which the caller holds
/// while it reads (dropping it lets the successor go): for a request that only reads
/// what earlier ones changed (an OffsetFetch after commits).
pub(crate) async fn after_predecessor(order: Option<ApplyOrder>) -> Option<ApplyOrder> {
    let mut order = order;
    if let Some(o) = order.as_mut() {
        o.wait_turn().await;
    }
    order
}

/// Runs `apply` (a call that takes effect at once, such as a coordinator's) in the
/// connection's request order: after its predecessor in the chain, letting its successor
/// go right after (whatever `apply` returns to wait on is not part of the turn).
pub(crate) async fn in_turn<T>(order: Option<ApplyOrder>, apply: impl FnOnce() -> T) -> T {
    let order = after_predecessor(order).await;
    let out = apply();
    if let Some(o) = order {
        o.applied();
    }
    out
}

/// Runs one request (`order`: its turn, for those that take effect in arrival order).
/// `None`: the request wants no response (acks none).
pub(crate) async fn run(broker: Arc<Broker>, frame: BytesMut, order: Option<ApplyOrder>) -> Option<Reply> {
    let correlation_id = frame::request_header(&frame).correlation_id;
    let timeout = Duration::from_millis(broker.config.request_timeout_ms);
    let reply = match tokio::time::timeout(timeout, handle(&broker, frame, order)).await {
        Ok(reply) => reply,
        Err(_) => Some(error_reply(
            correlation_id,
            ErrorCode::RequestTimedOut,
            format!(
                "no answer within request_timeout_ms={}",
                broker.config.request_timeout_ms
            ),
        )),
    };
    reply
}

async fn handle(broker: &Arc<Broker>, frame: BytesMut, order: Option<ApplyOrder>) -> Option<Reply> {
    let f = match frame::parse_request(frame) {
        Ok(f) => f,
        Err((h, e)) => return Some(error_reply(h.correlation_id, ErrorCode::InvalidRequest, e.to_string())),
    };
    let h = f.header;
    let correlation_id = h.correlation_id;
    let api = ApiKey::from_i16(h.api_key).map_or("Unknown", |k| k.name());
    metrics::identify(api, h.api_key, h.api_version, correlation_id, None);
    let Some(key) = ApiKey::from_i16(h.api_key) else {
        return Some(error_reply(
            correlation_id,
            ErrorCode::UnknownApi,
            format!("unknown api key {}", h.api_key),
        ));
    };
    let versions = handlers::versions(key);
    if !versions.contains(&h.api_version) {
        return Some(error_reply(
            correlation_id,
            ErrorCode::UnsupportedVersion,
            format!(
                "{} version {} is not supported (supported: {} to {})",
                key.name(),
                h.api_version,
                versions.start(),
                versions.end()
            ),
        ));
    }
    if key != ApiKey::Produce && !f.trailer.is_empty() {
        return Some(error_reply(
            correlation_id,
            ErrorCode::InvalidRequest,
            format!("{} takes no trailing bytes, got {}", key.name(), f.trailer.len()),
        ));
    }
    let b = broker;
    match key {
        ApiKey::ApiVersions => {
            reply(correlation_id, f.body, |r| async {
                handlers::api_versions::handle(b, r)
            })
            .await
        }
        ApiKey::Metadata => reply(correlation_id, f.body, |r| handlers::metadata::handle(b, r)).await,
        ApiKey::CreateTopics => reply(correlation_id, f.body, |r| handlers::create_topics::handle(b, r)).await,
        ApiKey::DeleteTopics => reply(correlation_id, f.body, |r| handlers::delete_topics::handle(b, r)).await,
        ApiKey::CreatePartitions => reply(correlation_id, f.body, |r| handlers::create_partitions::handle(b, r)).await,
        ApiKey::DeleteRecords => reply(correlation_id, f.body, |r| handlers::delete_records::handle(b, r)).await,
        ApiKey::InitProducerId => {
            reply(correlation_id, f.body, |r| async move {
                handlers::init_producer_id::handle(b, r)
            })
            .await
        }
        ApiKey::DescribeConfigs => {
            reply(correlation_id, f.body, |r| async {
                handlers::describe_configs::handle(b, r)
            })
            .await
        }
        ApiKey::AlterConfigs => reply(correlation_id, f.body, |r| handlers::alter_configs::handle(b, r)).await,
        ApiKey::ListOffsets => reply(correlation_id, f.body, |r| handlers::list_offsets::handle(b, r)).await,
        ApiKey::ConsumerGroupHeartbeat => {
            reply(correlation_id, f.body, |r| {
                handlers::consumer_group_heartbeat::handle(b, r, order)
            })
            .await
        }
        ApiKey::OffsetCommit => reply(correlation_id, f.body, |r| handlers::offset_commit::handle(b, r, order)).await,
        ApiKey::OffsetFetch => {
            // After the commits sent before it (read your own commits).
            let _turn = after_predecessor(order).await;
            reply(correlation_id, f.body, |r| handlers::offset_fetch::handle(b, r)).await
        }
        ApiKey::FindCoordinator => {
            reply(correlation_id, f.body, |r| async {
                handlers::find_coordinator::handle(b, r)
            })
            .await
        }
        ApiKey::ListGroups => {
            reply(correlation_id, f.body, |r| async move {
                handlers::list_groups::handle(b, r)
            })
            .await
        }
        ApiKey::DescribeGroups => reply(correlation_id, f.body, |r| handlers::describe_groups::handle(b, r)).await,
        ApiKey::DeleteGroups => reply(correlation_id, f.body, |r| handlers::delete_groups::handle(b, r)).await,
        ApiKey::BrokerStatus => {
            reply(correlation_id, f.body, |r| async move {
                handlers::broker_status::handle(b, r)
            })
            .await
        }
        ApiKey::Produce => {
            let req = match decode::<runnel_protocol::messages::ProduceRequest>(correlation_id, f.body) {
                Ok(r) => r,
                Err(e) => return Some(e),
            };
            let resp = handlers::produce::handle(b, req, f.trailer, order).await?;
            metrics::note_error_code(resp.error_code);
            Some(Reply::new(correlation_id, &resp, Vec::new()))
        }
        ApiKey::Fetch => {
            let req = match decode::<runnel_protocol::messages::FetchRequest>(correlation_id, f.body) {
                Ok(r) => r,
                Err(e) => return Some(e),
            };
            let (resp, regions) = handlers::fetch::handle(b, req).await;
            Some(Reply::new(correlation_id, &resp, regions))
        }
    }
}

async fn reply<R, F, Fut>(correlation_id: i32, body: BytesMut, handler: F) -> Option<Reply>
where
    R: Request,
    F: FnOnce(R) -> Fut,
    Fut: std::future::Future<Output = R::Response>,
{
    match decode::<R>(correlation_id, body) {
        Ok(req) => {
            let resp = handler(req).await;
            metrics::note_error_code(resp.error_code());
            Some(Reply::new(correlation_id, &resp, Vec::new()))
        }
        Err(e) => Some(e),
    }
}

fn decode<R: Request>(correlation_id: i32, body: BytesMut) -> Result<R, Reply> {
    R::decode(body).map_err(|e| {
        debug!(api = R::KEY.name(), error = %e, "undecodable request body");
        error_reply(
            correlation_id,
            ErrorCode::InvalidRequest,
            format!("cannot decode {} request: {e}", R::KEY.name()),
        )
    })
}

/// A request-level error, which decodes as any response type (fields 1 and 2).
pub(crate) fn error_reply(correlation_id: i32, code: ErrorCode, message: String) -> Reply {
    metrics::note_error(code);
    let body = ErrorResponse {
        error_code: code.code(),
        error_message: message,
    };
    Reply::new(correlation_id, &body, Vec::new())
}
