//! DeleteGroups: removes groups without members, with their committed offsets
//! (`service::groups::delete_groups`).

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{DeleteGroupResult, DeleteGroupsRequest, DeleteGroupsResponse};

use crate::service::groups;
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let outcomes = groups::delete_groups(broker, &req.group_ids).await;
    DeleteGroupsResponse {
        results: req
            .group_ids
            .into_iter()
            .zip(outcomes)
            .map(|(group_id, r)| {
                let (error_code, error_message) = super::error_fields(r);
                DeleteGroupResult {
                    group_id,
                    error_code,
                    error_message,
                }
            })
            .collect(),
        ..Default::default()
    }
}
