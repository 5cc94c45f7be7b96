//! From a request frame to a reply: check the API key and version, decode the body, run
//! the handler under the request timeout, encode the response.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use runnel_protocol::frame;
use runnel_protocol::messages::ErrorResponse;
use runnel_protocol::{ApiKey, ErrorCode, Request, Response};
use tracing::debug;

use std::net::SocketAddr;

use runnel_protocol::frame::REQUEST_HEADER_BYTES;

use crate::metrics;
use crate::native as handlers;
use crate::net::connection::Protocol;
use crate::net::order::{after_predecessor, ApplyOrder};
use crate::net::reply::Reply;
use crate::service::Broker;
use crate::storage::FileRegion;

/// The native protocol, for the connection machinery.
pub(crate) struct Native;

impl Protocol for Native {
    type Service = Broker;
    const NAME: &'static str = "native";
    const MIN_FRAME_BYTES: usize = REQUEST_HEADER_BYTES - 4;

    fn keeps_order(frame: &[u8]) -> bool {
        let key = frame::request_header(frame).api_key;
        [
            ApiKey::Produce,
            ApiKey::OffsetCommit,
            ApiKey::OffsetFetch,
            ApiKey::ConsumerGroupHeartbeat,
        ]
        .iter()
        .any(|k| *k as i16 == key)
    }

    /// Nothing yet: the native protocol has no authentication of its own (see
    /// docs/security.md; a broker with SASL keeps its native listeners on loopback).
    type Session = ();

    fn session(_broker: &Broker, _conn: &crate::net::connection::ConnectionInfo) {}

    fn dispatch(
        broker: Arc<Broker>,
        _session: Arc<()>,
        frame: BytesMut,
        order: Option<ApplyOrder>,
        _peer: SocketAddr,
    ) -> impl std::future::Future<Output = Option<Reply>> + Send + 'static {
        run(broker, frame, order)
    }

    fn error_reply(correlation_id: i32, code: ErrorCode, message: String) -> Option<Reply> {
        Some(error_reply(correlation_id, code, message))
    }
}

/// A response frame: `body`, then the records in `regions` as its trailer.
pub(crate) fn frame_reply(correlation_id: i32, body: &impl prost::Message, regions: Vec<FileRegion>) -> Reply {
    let trailer_bytes: u64 = regions.iter().map(|r| r.len).sum();
    let mut head = BytesMut::new();
    frame::encode_response(&mut head, correlation_id, body, trailer_bytes as usize);
    Reply::with_trailer(head, regions)
}

/// Runs one request (`order`: its turn, for those that take effect in arrival order).
/// `None`: the request wants no response (acks none).
pub(crate) async fn run(broker: Arc<Broker>, frame: BytesMut, order: Option<ApplyOrder>) -> Option<Reply> {
    let correlation_id = frame::request_header(&frame).correlation_id;
    let timeout = Duration::from_millis(broker.config().request_timeout_ms);
    let reply = match tokio::time::timeout(timeout, handle(&broker, frame, order)).await {
        Ok(reply) => reply,
        Err(_) => Some(error_reply(
            correlation_id,
            ErrorCode::RequestTimedOut,
            format!(
                "no answer within request_timeout_ms={}",
                broker.config().request_timeout_ms
            ),
        )),
    };
    reply
}

// Long by choice: the checks every request passes, then one match arm per native API.
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
        ApiKey::FindCoordinator => reply(correlation_id, f.body, |r| handlers::find_coordinator::handle(b, r)).await,
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
        ApiKey::DescribeCluster => {
            reply(correlation_id, f.body, |r| async move {
                handlers::describe_cluster::handle(b, r)
            })
            .await
        }
        ApiKey::Raft => reply(correlation_id, f.body, |r| crate::service::cluster::raft_message(b, r)).await,
        ApiKey::OffsetForLeaderEpoch => {
            reply(correlation_id, f.body, |r| async move {
                handlers::offset_for_leader_epoch::handle(b, r)
            })
            .await
        }
        ApiKey::ControllerWrite => {
            reply(correlation_id, f.body, |r| {
                crate::cluster::controller::serve(&b.cluster, r)
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
            Some(frame_reply(correlation_id, &resp, Vec::new()))
        }
        ApiKey::Fetch => {
            let req = match decode::<runnel_protocol::messages::FetchRequest>(correlation_id, f.body) {
                Ok(r) => r,
                Err(e) => return Some(e),
            };
            let (resp, regions) = handlers::fetch::handle(b, req).await;
            Some(frame_reply(correlation_id, &resp, regions))
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
            Some(frame_reply(correlation_id, &resp, Vec::new()))
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
    frame_reply(correlation_id, &body, Vec::new())
}
