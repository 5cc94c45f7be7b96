//! DeleteGroups: groups without members, with their offsets (the native handler).

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use runnel_protocol::messages as native;

use super::kafka_code;
use {crate::native as handlers, crate::service::Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=2;

pub async fn handle(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let native_req = native::DeleteGroupsRequest {
        group_ids: req.groups_names.iter().map(|g| g.0.to_string()).collect(),
    };
    let resp = handlers::delete_groups::handle(broker, native_req).await;
    let results = req
        .groups_names
        .into_iter()
        .zip(resp.results)
        .map(|(id, r)| {
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(kafka_code(r.error_code))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
