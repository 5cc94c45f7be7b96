//! ApiVersions: which APIs and versions this broker serves.

use std::ops::RangeInclusive;

use runnel_protocol::messages::{ApiVersionRange, ApiVersionsRequest, ApiVersionsResponse};
use runnel_protocol::ApiKey;
use tracing::debug;

use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub fn handle(_broker: &Broker, req: ApiVersionsRequest) -> ApiVersionsResponse {
    if !req.client_software.is_empty() {
        debug!(client = %req.client_software, "client hello");
    }
    ApiVersionsResponse {
        apis: ApiKey::ALL
            .iter()
            .map(|k| {
                let v = super::versions(*k);
                ApiVersionRange {
                    api_key: *k as i32,
                    min_version: *v.start() as i32,
                    max_version: *v.end() as i32,
                }
            })
            .collect(),
        broker_software: concat!("runnel-broker ", env!("CARGO_PKG_VERSION")).into(),
        ..Default::default()
    }
}
