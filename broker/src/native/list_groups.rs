//! ListGroups: every group this broker coordinates.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{GroupListing, ListGroupsRequest, ListGroupsResponse};

use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub fn handle(broker: &Arc<Broker>, _req: ListGroupsRequest) -> ListGroupsResponse {
    ListGroupsResponse {
        groups: broker
            .groups
            .list()
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.id,
                state: g.state.to_owned(),
                members: g.members as u32,
                assignor: g.assignor,
            })
            .collect(),
        ..Default::default()
    }
}
