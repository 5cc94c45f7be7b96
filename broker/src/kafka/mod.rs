//! The Kafka wire protocol listener: unmodified Kafka clients produce and consume.
//!
//! A second listener (`kafka_listen`), served by the same connection machinery as the
//! native one (`net::connection`: limits, request concurrency, ordered replies,
//! produce appends in arrival order, shutdown). Requests and responses are encoded by the
//! `kafka-protocol` crate; each API's handler (`handlers/`) declares the versions it
//! serves and maps the request onto the same storage and handlers as the native protocol.
//!
//! Header rules: request header v1, or v2 for flexible versions; response header v0, or
//! v1 for flexible versions — except ApiVersions, whose response header is always v0.
//! Record bytes of a Fetch response go out with `sendfile` (see [`splice`]).
//!
//! Errors: a request whose header or body cannot be decoded closes the connection (the
//! client cannot be told which request failed in a form it can parse); an API or version
//! this broker does not serve gets `UNSUPPORTED_VERSION` (ApiVersions: with the supported
//! ranges, in a v0 body).

pub mod handlers;
pub mod splice;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use runnel_protocol::ErrorCode;
use tracing::debug;

use crate::net::connection::{ConnectionInfo, Protocol};
use crate::net::order::ApplyOrder;
use crate::net::reply::Reply;
use crate::service::sasl::Session;
use crate::service::Broker;

const GROUP_WAIT_CAP: Duration = Duration::from_secs(3600);

/// The Kafka protocol, for the connection machinery.
pub(crate) struct Kafka;

impl Protocol for Kafka {
    type Service = Broker;
    const NAME: &'static str = "kafka";
    /// api key, api version, correlation id.
    const MIN_FRAME_BYTES: usize = 8;

    /// Every request: Kafka serves a connection's requests one at a time, and clients
    /// rely on it (a commit lands before the LeaveGroup sent after it, an OffsetFetch or
    /// Fetch sees what was committed or produced before it). How long each holds its
    /// turn: `handlers::serve`.
    fn keeps_order(_frame: &[u8]) -> bool {
        true
    }

    fn wants_own_buffer(head: &[u8], total: usize) -> bool {
        api_key(head) == ApiKey::Produce as i16 && total >= handlers::produce::IN_PLACE_MIN_BYTES
    }

    /// The connection's SASL state (every Kafka listener asks for SASL when the broker
    /// has `--sasl-mechanisms`).
    type Session = Session;

    fn session(broker: &Broker, conn: &ConnectionInfo) -> Session {
        Session::new(broker.config().sasl.clone(), conn.tls, conn.tls_principal.clone())
    }

    async fn dispatch(
        broker: Arc<Broker>,
        session: Arc<Session>,
        frame: BytesMut,
        order: Option<ApplyOrder>,
        peer: SocketAddr,
    ) -> Option<Reply> {
        // JoinGroup and SyncGroup wait for the other members, up to the group's rebalance
        // timeout (minutes, by the client's `max.poll.interval.ms`); the coordinator
        // answers them by its deadlines. The cap only guards against a lost answer.
        let key = i16::from_be_bytes([frame[4], frame[5]]);
        let timeout = if key == ApiKey::JoinGroup as i16 || key == ApiKey::SyncGroup as i16 {
            GROUP_WAIT_CAP
        } else {
            Duration::from_millis(broker.config().request_timeout_ms)
        };
        // A request still unanswered at the timeout gets no answer: the client times it
        // out (Kafka responses have no common error shape to send instead).
        tokio::time::timeout(timeout, handle(&broker, session, frame, order, peer))
            .await
            .ok()
            .flatten()
    }

    fn error_reply(_correlation_id: i32, _code: ErrorCode, _message: String) -> Option<Reply> {
        None
    }
}

/// The api key of a whole frame (after its length prefix).
fn api_key(frame: &[u8]) -> i16 {
    i16::from_be_bytes([frame[4], frame[5]])
}

/// A request's header, decoded, and the version its body is in. Owned: nothing here
/// refers to the frame, so a Produce can take the frame's buffer back without copying.
pub struct Request {
    pub key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub peer: SocketAddr,
    /// The connection's authentication (its principal).
    pub session: Arc<Session>,
}

async fn handle(
    broker: &Arc<Broker>,
    session: Arc<Session>,
    frame: BytesMut,
    order: Option<ApplyOrder>,
    peer: SocketAddr,
) -> Option<Reply> {
    let mut body = frame.freeze();
    body.advance(4);
    let raw_key = i16::from_be_bytes([body[0], body[1]]);
    let version = i16::from_be_bytes([body[2], body[3]]);
    let correlation_id = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
    let key = match ApiKey::try_from(raw_key) {
        Ok(k) => k,
        Err(()) => {
            debug!(api_key = raw_key, "unknown Kafka api key");
            crate::metrics::identify("Unknown", raw_key, version, correlation_id, None);
            crate::metrics::note_error(ErrorCode::UnsupportedVersion);
            return Some(unsupported(correlation_id));
        }
    };
    let Some(range) = handlers::versions(key) else {
        debug!(api = ?key, version, "Kafka api not served");
        crate::metrics::identify(api_name(key), raw_key, version, correlation_id, None);
        crate::metrics::note_error(ErrorCode::UnsupportedVersion);
        return Some(unsupported(correlation_id));
    };
    if !range.contains(&version) {
        crate::metrics::identify(api_name(key), raw_key, version, correlation_id, None);
        crate::metrics::note_error(ErrorCode::UnsupportedVersion);
        if key == ApiKey::ApiVersions {
            // Answered in v0, which every client can read, with the ranges we serve.
            return handlers::api_versions::unsupported(correlation_id, peer, session);
        }
        if !session.authenticated() {
            return Some(unauthenticated(key, peer));
        }
        debug!(api = ?key, version, "Kafka api version not served");
        return Some(unsupported(correlation_id));
    }
    if !session.authenticated()
        && !matches!(
            key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        )
    {
        return Some(unauthenticated(key, peer));
    }
    // The header is dropped here: nothing of it may keep the frame shared (Produce
    // takes the frame over when it is the last holder).
    let req = match RequestHeader::decode(&mut body, key.request_header_version(version)) {
        Ok(header) => Request {
            key,
            version,
            correlation_id: header.correlation_id,
            client_id: header.client_id.map(|c| c.to_string()),
            peer,
            session,
        },
        Err(e) => {
            debug!(error = %e, "undecodable Kafka request header; closing");
            return Some(Reply::close());
        }
    };
    crate::metrics::identify(
        api_name(key),
        key as i16,
        version,
        req.correlation_id,
        req.client_id.as_deref(),
    );
    handlers::handle(broker, req, body, order).await
}

/// A request other than ApiVersions and the SASL ones before authentication: Kafka
/// closes the connection (the client sees it as an authentication failure).
fn unauthenticated(key: ApiKey, peer: SocketAddr) -> Reply {
    tracing::info!(%peer, api = ?key, "request before SASL authentication; closing the connection");
    crate::metrics::note_error(ErrorCode::IllegalSaslState);
    Reply::close()
}

/// The API's name for metrics and logs (`Produce`, `JoinGroup`, ...), made once per key.
fn api_name(key: ApiKey) -> &'static str {
    static NAMES: std::sync::OnceLock<std::collections::HashMap<i16, &'static str>> = std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| {
            // Kafka's api keys are below 1000; each name is leaked once, for good.
            (0..1000i16)
                .filter_map(|k| ApiKey::try_from(k).ok().map(|key| (k, key)))
                .map(|(k, key)| (k, &*Box::leak(format!("{key:?}").into_boxed_str())))
                .collect()
        })
        .get(&(key as i16))
        .copied()
        .unwrap_or("Unknown")
}

/// Decodes a request body of type `T`; `Err` holds the reply that closes the connection.
pub fn decode<T: Decodable>(req: &Request, mut body: Bytes) -> Result<T, Reply> {
    T::decode(&mut body, req.version).map_err(|e| {
        debug!(api = ?req.key, version = req.version, error = %e, "undecodable Kafka request; closing");
        Reply::close()
    })
}

/// A response frame: length, header (v0 or v1 as the API and version say), body.
pub fn respond<T: Encodable>(req: &Request, body: &T) -> Option<Reply> {
    let mut buf = splice::SpliceBuf::new(BytesMut::with_capacity(256));
    Some(match encode_response(req, body, &mut buf) {
        Some(()) => reply(buf, Vec::new()),
        None => Reply::close(),
    })
}

/// Encodes header and body into `buf` after a 4-byte length placeholder.
pub fn encode_response<T: Encodable>(req: &Request, body: &T, buf: &mut splice::SpliceBuf) -> Option<()> {
    buf.head.put_u32(0);
    let header = ResponseHeader::default().with_correlation_id(req.correlation_id);
    let encoded = header
        .encode(buf, req.key.response_header_version(req.version))
        .and_then(|()| body.encode(buf, req.version));
    match encoded {
        Ok(()) => Some(()),
        Err(e) => {
            // A bug (a field this version cannot carry): log it, close the connection.
            tracing::error!(api = ?req.key, version = req.version, error = %e, "cannot encode Kafka response");
            None
        }
    }
}

/// Fills in the frame length and places the regions where the encoder left them out.
pub fn reply(buf: splice::SpliceBuf, regions: Vec<crate::storage::FileRegion>) -> Reply {
    let len = (buf.logical_len() - 4) as u32;
    let mut head = buf.head;
    head[..4].copy_from_slice(&len.to_be_bytes());
    Reply {
        region_at: buf.splices,
        regions,
        ..Reply::from_head(head)
    }
}

/// For an API or version we do not serve: the response header (v0) and
/// `UNSUPPORTED_VERSION` as the first field, where most responses' versions 0 carry
/// their error code.
fn unsupported(correlation_id: i32) -> Reply {
    let mut head = BytesMut::with_capacity(10);
    head.put_u32(6);
    head.put_i32(correlation_id);
    head.put_i16(ErrorCode::UnsupportedVersion.code() as i16);
    Reply::from_head(head)
}

/// For the fuzz targets: a request frame (after its length prefix, as the connection
/// hands it over, at least [`Kafka::MIN_FRAME_BYTES`] long) taken through what `handle`
/// does before a handler runs — API and version checked against what is served, header
/// decoded in its version, body decoded as that API's request — and, for Produce, the
/// records cut from the frame and checked as an append checks them.
#[cfg(feature = "fuzzing")]
pub fn decode_for_fuzzing(frame: Bytes) {
    if frame.len() < Kafka::MIN_FRAME_BYTES {
        return;
    }
    let mut body = frame;
    let raw_key = i16::from_be_bytes([body[0], body[1]]);
    let version = i16::from_be_bytes([body[2], body[3]]);
    let Ok(key) = ApiKey::try_from(raw_key) else {
        return;
    };
    let Some(range) = handlers::versions(key) else {
        return;
    };
    if !range.contains(&version) || RequestHeader::decode(&mut body, key.request_header_version(version)).is_err() {
        return;
    }
    if key == ApiKey::Produce {
        let frame = body.clone();
        let Ok(produce) = kafka_protocol::messages::ProduceRequest::decode(&mut body, version) else {
            return;
        };
        let (records, _) = handlers::produce::take_records(frame, produce);
        let cfg = crate::storage::LogConfig::default();
        for mut r in records {
            let _ = crate::storage::log::validate_all(&mut r, &cfg, None);
        }
        return;
    }
    use kafka_protocol::messages::*;
    fn d<T: Decodable>(mut body: Bytes, version: i16) {
        let _ = T::decode(&mut body, version);
    }
    match key {
        ApiKey::Fetch => d::<FetchRequest>(body, version),
        ApiKey::ListOffsets => d::<ListOffsetsRequest>(body, version),
        ApiKey::Metadata => d::<MetadataRequest>(body, version),
        ApiKey::ApiVersions => d::<ApiVersionsRequest>(body, version),
        ApiKey::CreateTopics => d::<CreateTopicsRequest>(body, version),
        ApiKey::DeleteTopics => d::<DeleteTopicsRequest>(body, version),
        ApiKey::DescribeConfigs => d::<DescribeConfigsRequest>(body, version),
        ApiKey::FindCoordinator => d::<FindCoordinatorRequest>(body, version),
        ApiKey::OffsetCommit => d::<OffsetCommitRequest>(body, version),
        ApiKey::OffsetFetch => d::<OffsetFetchRequest>(body, version),
        ApiKey::InitProducerId => d::<InitProducerIdRequest>(body, version),
        ApiKey::JoinGroup => d::<JoinGroupRequest>(body, version),
        ApiKey::SyncGroup => d::<SyncGroupRequest>(body, version),
        ApiKey::Heartbeat => d::<HeartbeatRequest>(body, version),
        ApiKey::LeaveGroup => d::<LeaveGroupRequest>(body, version),
        ApiKey::ListGroups => d::<ListGroupsRequest>(body, version),
        ApiKey::DescribeGroups => d::<DescribeGroupsRequest>(body, version),
        ApiKey::DeleteGroups => d::<DeleteGroupsRequest>(body, version),
        ApiKey::OffsetDelete => d::<OffsetDeleteRequest>(body, version),
        ApiKey::ConsumerGroupHeartbeat => d::<ConsumerGroupHeartbeatRequest>(body, version),
        ApiKey::CreatePartitions => d::<CreatePartitionsRequest>(body, version),
        ApiKey::AlterConfigs => d::<AlterConfigsRequest>(body, version),
        ApiKey::IncrementalAlterConfigs => d::<IncrementalAlterConfigsRequest>(body, version),
        ApiKey::DeleteRecords => d::<DeleteRecordsRequest>(body, version),
        ApiKey::DescribeLogDirs => d::<DescribeLogDirsRequest>(body, version),
        ApiKey::DescribeCluster => d::<DescribeClusterRequest>(body, version),
        ApiKey::SaslHandshake => d::<SaslHandshakeRequest>(body, version),
        ApiKey::SaslAuthenticate => d::<SaslAuthenticateRequest>(body, version),
        ApiKey::DescribeUserScramCredentials => d::<DescribeUserScramCredentialsRequest>(body, version),
        ApiKey::AlterUserScramCredentials => d::<AlterUserScramCredentialsRequest>(body, version),
        // Every served API is listed above (SERVED has 31; Produce is handled before).
        other => unreachable!("{other:?} is not served"),
    }
}
