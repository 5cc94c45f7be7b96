//! ListGroups: every group this broker coordinates.

use std::ops::RangeInclusive;
use std::sync::Arc;

use runnel_protocol::messages::{GroupListing, ListGroupsRequest, ListGroupsResponse};

use crate::server::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub fn handle(broker: &Arc<Broker>, _req: ListGroupsRequest) -> ListGroupsResponse {
    ListGroupsResponse {
        groups: broker
            .groups
            .list()
            .into_iter()
            .map(|(group_id, state, members, assignor)| GroupListing {
                group_id,
                state: state.to_owned(),
                members: members as u32,
                assignor: assignor.name().to_owned(),
            })
            .collect(),
        ..Default::default()
    }
}
