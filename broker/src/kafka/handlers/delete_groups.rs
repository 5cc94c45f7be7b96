//! DeleteGroups: groups without members, with their offsets (`service::groups`).

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::kafka_code;
use crate::service::{groups, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=2;

pub async fn handle(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let ids: Vec<String> = req.groups_names.iter().map(|g| g.0.to_string()).collect();
    let outcomes = groups::delete_groups(broker, &ids).await;
    let results = req
        .groups_names
        .into_iter()
        .zip(outcomes)
        .map(|(id, r)| {
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(kafka_code(r.err().map_or(0, |f| f.code.code())))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
