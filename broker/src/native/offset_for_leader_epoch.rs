//! OffsetForLeaderEpoch (between brokers): where an epoch ends in this leader's log, for
//! a follower about to cut its diverging tail.

use runnel_protocol::messages::{
    OffsetForLeaderEpochPartitionResult, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
    OffsetForLeaderEpochTopicResult,
};

use crate::service::Broker;

pub fn handle(broker: &Broker, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| OffsetForLeaderEpochTopicResult {
            partitions: t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = OffsetForLeaderEpochPartitionResult {
                        partition: p.partition,
                        leader_epoch: -1,
                        end_offset: -1,
                        ..Default::default()
                    };
                    match broker.replication.epoch_end_offset(
                        &t.name,
                        p.partition,
                        p.current_leader_epoch,
                        p.leader_epoch,
                    ) {
                        Ok((epoch, end)) => (out.leader_epoch, out.end_offset) = (epoch, end),
                        Err(r) => (out.error_code, out.error_message) = (r.code, r.message),
                    }
                    out
                })
                .collect(),
            name: t.name,
        })
        .collect();
    OffsetForLeaderEpochResponse {
        topics,
        ..Default::default()
    }
}
