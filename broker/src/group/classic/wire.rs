//! Wire decoding of the `consumer` protocol's subscription and assignment, which classic
//! members exchange as opaque bytes through JoinGroup and SyncGroup.

use super::*;

/// The topics in a `consumer`-protocol subscription (the metadata Kafka consumers join
/// with), `None` if it does not parse.
pub fn subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let (version, mut body) = consumer_protocol_version(metadata)?;
    let s = ConsumerProtocolSubscription::decode(&mut body, version).ok()?;
    Some(s.topics.iter().map(|t| t.to_string()).collect())
}

/// The partitions in a `consumer`-protocol assignment, `None` if it does not parse.
pub fn assignment_partitions(assignment: &Bytes) -> Option<BTreeSet<Tp>> {
    if assignment.is_empty() {
        return Some(BTreeSet::new());
    }
    let (version, mut body) = consumer_protocol_version(assignment)?;
    let a = ConsumerProtocolAssignment::decode(&mut body, version).ok()?;
    Some(
        a.assigned_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p as u32)))
            .collect(),
    )
}

/// The leading version of a consumer-protocol message; newer versions only append
/// fields, so they are read as the newest the codec knows.
fn consumer_protocol_version(bytes: &Bytes) -> Option<(i16, Bytes)> {
    let mut body = bytes.clone();
    if body.len() < 2 {
        return None;
    }
    let version = body.get_i16();
    (version >= 0).then_some((version.min(3), body))
}
