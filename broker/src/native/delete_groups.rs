//! DeleteGroups: removes groups without members, with their committed offsets.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{DeleteGroupResult, DeleteGroupsRequest, DeleteGroupsResponse};
use runnel_protocol::ErrorCode;

use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.group_ids.len());
    for group_id in req.group_ids {
        let (code, message) = match broker.groups.delete(&group_id) {
            Err(e) => (e.code, e.message),
            Ok(durable) => match durable.wait().await {
                Ok(()) => (ErrorCode::None, String::new()),
                Err(e) => (ErrorCode::StorageError, format!("deletion not stored: {e}")),
            },
        };
        results.push(DeleteGroupResult {
            group_id,
            error_code: code.code(),
            error_message: message,
        });
    }
    DeleteGroupsResponse {
        results,
        ..Default::default()
    }
}
