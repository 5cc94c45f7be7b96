//! ListGroups: every group, with Kafka's state names; v4+ filter by state, v5+ by type
//! (`classic` for JoinGroup members and groups that only hold offsets, `consumer` for
//! the consumer protocol).

use std::ops::RangeInclusive;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::group::GroupListing;
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=5;

/// Kafka's state name: the classic ones for classic groups, the consumer protocol's
/// (`Empty`, `Reconciling`, `Stable`) for the others.
pub fn kafka_state(g: &GroupListing) -> &'static str {
    match g.state {
        "empty" => "Empty",
        "reconciling" => "Reconciling",
        "stable" => "Stable",
        classic => classic,
    }
}

pub fn handle(broker: &Broker, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
    let wanted = |filter: &[kafka_protocol::protocol::StrBytes], value: &str| {
        filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
    };
    let groups = broker
        .groups
        .list()
        .iter()
        .filter(|g| wanted(&req.states_filter, kafka_state(g)) && wanted(&req.types_filter, g.kind))
        .map(|g| {
            let listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&g.id)))
                .with_protocol_type(str_bytes(&g.protocol_type));
            match version {
                5.. => listed
                    .with_group_state(str_bytes(kafka_state(g)))
                    .with_group_type(str_bytes(g.kind)),
                4 => listed.with_group_state(str_bytes(kafka_state(g))),
                _ => listed,
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
