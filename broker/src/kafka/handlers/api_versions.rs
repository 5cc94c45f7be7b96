//! ApiVersions: the APIs and versions this listener serves — exactly those with a handler.

use std::ops::RangeInclusive;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use runnel_protocol::ErrorCode;
use tracing::debug;

use super::SERVED;
use crate::kafka::{respond, Request};
use crate::net::reply::Reply;

pub const VERSIONS: RangeInclusive<i16> = 0..=4;

fn api_keys() -> Vec<ApiVersion> {
    SERVED
        .iter()
        .map(|(k, v)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*v.start())
                .with_max_version(*v.end())
        })
        .collect()
}

/// Optional tagged fields (supported and finalized features) stay out: librdkafka before
/// 2.2 cannot parse them.
pub fn handle(req: &ApiVersionsRequest) -> ApiVersionsResponse {
    if !req.client_software_name.is_empty() {
        debug!(client = %req.client_software_name.as_str(), version = %req.client_software_version.as_str(), "Kafka client hello");
    }
    ApiVersionsResponse::default()
        .with_api_keys(api_keys())
        .with_finalized_features_epoch(-1)
}

/// The answer to a version newer than 4: UNSUPPORTED_VERSION and our ranges, in a v0
/// body after a v0 header, as Kafka brokers do so a client can retry with a version we
/// serve.
pub fn unsupported(
    correlation_id: i32,
    peer: std::net::SocketAddr,
    session: std::sync::Arc<crate::service::sasl::Session>,
) -> Option<Reply> {
    let body = ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UnsupportedVersion.code() as i16)
        .with_api_keys(api_keys());
    let v0 = Request {
        key: ApiKey::ApiVersions,
        version: 0,
        correlation_id,
        client_id: None,
        peer,
        session,
    };
    respond(&v0, &body)
}
