//! [`Admin`]: create, delete, list and describe topics; read and change topic configs.

use std::collections::BTreeMap;
use std::time::Duration;

use runnel_protocol::messages::{
    AlterConfigsRequest, BrokerStatusRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest,
    DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, FindCoordinatorRequest, ListGroupsRequest, ListOffsetsPartition,
    ListOffsetsRequest, ListOffsetsTopic, NewTopic, PartitionsIncrease, TopicConfigChange, TopicPartitions,
};

use crate::client::{check, Client, ClientConfig};
use crate::consumer::Offset;
use crate::error::{Error, Result};
use crate::group::{commit_offsets, committed_offsets, TopicPartition};

/// A topic as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    /// The topic's name.
    pub name: String,
    /// How many partitions it has.
    pub partitions: u32,
}

/// One partition of a described topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition's index.
    pub partition: u32,
    /// The broker id that leads it.
    pub leader: i32,
    /// The leader's epoch (raised each time leadership moves).
    pub leader_epoch: i32,
    /// The brokers holding a replica, the preferred leader first.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// The oldest offset retained (the log start offset).
    pub start_offset: i64,
    /// The offset the next record will get (the log end offset).
    pub end_offset: i64,
    /// Bytes on disk.
    pub size_bytes: u64,
}

/// One topic config and its effective value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The config's name, e.g. `retention.ms`.
    pub key: String,
    /// Its effective value.
    pub value: String,
    /// Whether the value is the broker's default rather than set on the topic.
    pub is_default: bool,
}

/// A topic's partitions and configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// The topic's name.
    pub name: String,
    /// The topic's id (a UUID, as Kafka's topic ids).
    pub id: String,
    /// Every partition, in order.
    pub partitions: Vec<PartitionInfo>,
    /// Every config key with its effective value.
    pub configs: Vec<ConfigEntry>,
}

/// The cluster as the answering broker knows it (`runnel cluster describe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster's id (made when its first controller started it).
    pub cluster_id: String,
    /// The controller's broker id; -1 when there is none (no quorum).
    pub controller_id: i32,
    /// The broker that answered.
    pub answered_by: i32,
    /// The metadata log index the answering broker has applied.
    pub metadata_offset: u64,
    /// Every registered broker, by id.
    pub brokers: Vec<ClusterBroker>,
}

/// One broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBroker {
    /// Its node id.
    pub id: i32,
    /// The native listener, `host:port`.
    pub native: String,
    /// The Kafka listener, `host:port`, if it runs.
    pub kafka: Option<String>,
    /// Fenced: silent past its session timeout, or shut down; it leads nothing.
    pub fenced: bool,
    /// Raised on every start of the broker.
    pub epoch: i64,
    /// How many partitions it leads.
    pub leaders: u32,
    /// A controller voter.
    pub voter: bool,
}

/// The broker's own figures (`runnel status`): counters since it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerStatus {
    /// The broker's version.
    pub version: String,
    /// Time since the broker started.
    pub uptime: std::time::Duration,
    /// Client connections open now (both listeners).
    pub connections: u32,
    /// Every topic's size and traffic.
    pub topics: Vec<TopicStatus>,
}

/// A topic's size and traffic since the broker started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStatus {
    /// The topic's name.
    pub name: String,
    /// How many partitions it has.
    pub partitions: u32,
    /// Bytes on disk, all partitions.
    pub size_bytes: u64,
    /// Records appended since the broker started.
    pub produced_records: u64,
    /// Record bytes appended since the broker started.
    pub produced_bytes: u64,
    /// Records sent to consumers since the broker started.
    pub fetched_records: u64,
    /// Record bytes sent to consumers since the broker started.
    pub fetched_bytes: u64,
}

/// A group as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group's id.
    pub group_id: String,
    /// `empty`, `reconciling` or `stable`.
    pub state: String,
    /// How many members it has.
    pub members: u32,
    /// The assignor its first member chose (`uniform`, `range`, or a classic protocol's).
    pub assignor: String,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The id the coordinator gave it.
    pub member_id: String,
    /// Its static-membership name, if it has one.
    pub instance_id: Option<String>,
    /// The epoch of the assignment it has caught up with.
    pub member_epoch: i32,
    /// The topics it subscribes to by name.
    pub subscribed_topics: Vec<String>,
    /// The regex it subscribes with, if any.
    pub subscribed_topic_regex: Option<String>,
    /// What it holds now.
    pub owned: Vec<TopicPartition>,
    /// What the target assignment gives it (differs while partitions move).
    pub target: Vec<TopicPartition>,
    /// A static member that left and whose partitions wait for it.
    pub left: bool,
}

/// Where a group stands on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// `None`: nothing committed.
    pub committed: Option<i64>,
    /// The metadata string committed with the offset.
    pub metadata: String,
    /// The partition's oldest retained offset.
    pub log_start_offset: i64,
    /// The partition's end offset.
    pub log_end_offset: i64,
    /// Records behind the end; `None` without a committed offset.
    pub lag: Option<i64>,
    /// Age in ms of the oldest record not yet consumed (0 when caught up).
    pub lag_ms: Option<i64>,
    /// The member id holding the partition now, if any.
    pub owner: Option<String>,
}

/// A group's members and its position on every partition it has committed or holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group's id.
    pub group_id: String,
    /// `empty`, `reconciling` or `stable` (classic groups: Kafka's state names).
    pub state: String,
    /// The group's assignor.
    pub assignor: String,
    /// Raised whenever membership or subscriptions change.
    pub group_epoch: i32,
    /// The epoch of the current target assignment.
    pub assignment_epoch: i32,
    /// Every member.
    pub members: Vec<GroupMember>,
    /// Committed offset and lag per partition.
    pub partitions: Vec<PartitionLag>,
}

/// The broker coordinating a group: the leader of the group's offsets-log partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCoordinator {
    /// Its broker id.
    pub node_id: i32,
    /// `host:port` of its native listener.
    pub addr: String,
    /// The offsets-log partition holding the group.
    pub offsets_partition: u32,
}

fn tps(list: Vec<TopicPartitions>) -> Vec<TopicPartition> {
    TopicPartitions::flatten(list).collect()
}

fn some_if(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Administers topics and groups: create, delete, list, describe, configs, offsets.
/// Holds one connection; cheap to keep for the life of a service.
pub struct Admin {
    client: Client,
}

impl Admin {
    /// Connects to the broker at `addr` (`host:port`; a host alone means port 7117).
    pub async fn connect(addr: impl Into<String>) -> Result<Admin> {
        Admin::connect_with(addr, ClientConfig::default()).await
    }

    /// As [`Admin::connect`], with connection settings.
    pub async fn connect_with(addr: impl Into<String>, config: ClientConfig) -> Result<Admin> {
        Ok(Admin {
            client: Client::connect(addr, config).await?,
        })
    }

    /// Creates a topic with `partitions` partitions and the given config overrides.
    pub async fn create_topic(&self, name: &str, partitions: u32, configs: BTreeMap<String, String>) -> Result<()> {
        self.create_replicated_topic(name, partitions, -1, configs).await
    }

    /// Creates a topic with `replication_factor` replicas of each partition, placed over
    /// the cluster's live brokers (-1: the broker's `default_replication_factor`).
    /// INVALID_REPLICATION_FACTOR if there are fewer live brokers.
    pub async fn create_replicated_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<()> {
        let resp = self
            .client
            .call(&CreateTopicsRequest {
                topics: vec![NewTopic {
                    name: name.to_owned(),
                    partitions: partitions.min(i32::MAX as u32) as i32,
                    configs,
                    replication_factor,
                }],
                ..Default::default()
            })
            .await?;
        one_result(resp.topics.iter().map(|t| (t.error_code, t.error_message.as_str())))
    }

    /// Deletes a partition's records before `offset` for good (Kafka's DeleteRecords):
    /// the log then starts there. `None` deletes every record up to the end. Returns the
    /// new log start offset; an offset past the end is an error.
    pub async fn delete_records(&self, topic: &str, partition: u32, offset: Option<i64>) -> Result<i64> {
        let req = DeleteRecordsRequest {
            topics: vec![DeleteRecordsTopic {
                name: topic.to_owned(),
                partitions: vec![DeleteRecordsPartition {
                    partition,
                    offset: offset.unwrap_or(-1),
                }],
            }],
        };
        let resp = self.client.call_partition(topic, partition, &req).await?;
        let p = first_partition(resp.topics.into_iter().flat_map(|t| t.partitions), "DeleteRecords")?;
        partition_check(&self.client, topic, p.error_code, &p.error_message)?;
        Ok(p.low_watermark)
    }

    /// Deletes a topic and all its records.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let resp = self
            .client
            .call(&DeleteTopicsRequest {
                topics: vec![name.to_owned()],
            })
            .await?;
        self.client.forget_topic(name);
        one_result(resp.topics.iter().map(|t| (t.error_code, t.error_message.as_str())))
    }

    /// Grows `name` to `partitions` partitions (topics never shrink: keys would move).
    /// This client sees the new count at once; others within their metadata max age.
    pub async fn create_partitions(&self, name: &str, partitions: u32) -> Result<()> {
        let resp = self
            .client
            .call(&CreatePartitionsRequest {
                topics: vec![PartitionsIncrease {
                    topic: name.to_owned(),
                    count: partitions,
                }],
            })
            .await?;
        self.client.forget_topic(name);
        one_result(resp.topics.iter().map(|t| (t.error_code, t.error_message.as_str())))
    }

    /// Every topic, by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicListing>> {
        let resp = self.client.metadata(Vec::new()).await?;
        let mut topics: Vec<TopicListing> = resp
            .topics
            .into_iter()
            .map(|t| TopicListing {
                name: t.name,
                partitions: t.partitions.len() as u32,
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Partitions (leader, offsets, size) and every config value of a topic.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let resp = self.client.metadata(vec![name.to_owned()]).await?;
        let t = resp
            .topics
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol("empty metadata response".into()))?;
        check(t.error_code, &t.error_message)?;
        Ok(TopicDescription {
            configs: self.describe_configs(name).await?,
            name: t.name,
            id: t.topic_id,
            partitions: t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition,
                    leader: p.leader_id,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replicas,
                    isr: p.isr,
                    start_offset: p.log_start_offset,
                    end_offset: p.log_end_offset,
                    size_bytes: p.size_bytes,
                })
                .collect(),
        })
    }

    /// Every config key of a topic with its effective value.
    pub async fn describe_configs(&self, name: &str) -> Result<Vec<ConfigEntry>> {
        let resp = self
            .client
            .call(&DescribeConfigsRequest {
                topics: vec![name.to_owned()],
            })
            .await?;
        let t = resp
            .topics
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol("empty DescribeConfigs response".into()))?;
        check(t.error_code, &t.error_message)?;
        Ok(t.entries
            .into_iter()
            .map(|e| ConfigEntry {
                key: e.key,
                value: e.value,
                is_default: e.is_default,
            })
            .collect())
    }

    /// Sets the keys in `set` and returns the keys in `delete` to their defaults; other
    /// keys keep their values.
    pub async fn alter_configs(&self, name: &str, set: BTreeMap<String, String>, delete: Vec<String>) -> Result<()> {
        let resp = self
            .client
            .call(&AlterConfigsRequest {
                topics: vec![TopicConfigChange {
                    name: name.to_owned(),
                    set,
                    delete,
                }],
            })
            .await?;
        one_result(resp.topics.iter().map(|t| (t.error_code, t.error_message.as_str())))
    }

    /// The offset `at` resolves to in one partition: earliest, latest, or the first
    /// offset with a timestamp at or after the given one (`None` if there is none).
    pub async fn list_offset(&self, topic: &str, partition: u32, at: Offset) -> Result<Option<i64>> {
        list_offset(&self.client, topic, partition, at).await
    }
}

impl Admin {
    /// The cluster's brokers, its controller and the answering broker's metadata offset.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let r = self.client.call(&DescribeClusterRequest {}).await?;
        Ok(ClusterDescription {
            cluster_id: r.cluster_id,
            controller_id: r.controller_id,
            answered_by: r.node_id,
            metadata_offset: r.metadata_offset,
            brokers: r
                .brokers
                .into_iter()
                .map(|b| ClusterBroker {
                    id: b.node_id,
                    native: b.native,
                    kafka: Some(b.kafka).filter(|k| !k.is_empty()),
                    fenced: b.fenced,
                    epoch: b.epoch,
                    leaders: b.leaders,
                    voter: b.voter,
                })
                .collect(),
        })
    }

    /// The broker's version, uptime, connections and per-topic traffic totals.
    pub async fn broker_status(&self) -> Result<BrokerStatus> {
        let resp = self.client.call(&BrokerStatusRequest {}).await?;
        Ok(BrokerStatus {
            version: resp.version,
            uptime: std::time::Duration::from_millis(resp.uptime_ms),
            connections: resp.connections,
            topics: resp
                .topics
                .into_iter()
                .map(|t| TopicStatus {
                    name: t.name,
                    partitions: t.partitions,
                    size_bytes: t.size_bytes,
                    produced_records: t.produced_records,
                    produced_bytes: t.produced_bytes,
                    fetched_records: t.fetched_records,
                    fetched_bytes: t.fetched_bytes,
                })
                .collect(),
        })
    }

    /// Every consumer group, with its state and member count. Each broker lists the
    /// groups it coordinates, so every live broker is asked (as Kafka's admin client
    /// does); a broker that cannot be reached fails the listing rather than leave its
    /// groups out silently.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let mut groups = BTreeMap::new();
        for addr in self.client.brokers().await? {
            let resp = self.client.call_broker(&addr, &ListGroupsRequest {}).await?;
            check(resp.error_code, &resp.error_message)?;
            for g in resp.groups {
                groups.insert(
                    g.group_id.clone(),
                    GroupListing {
                        group_id: g.group_id,
                        state: g.state,
                        members: g.members,
                        assignor: g.assignor,
                    },
                );
            }
        }
        Ok(groups.into_values().collect())
    }

    /// Members, assignments, and per-partition committed offsets and lag.
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription> {
        let req = DescribeGroupsRequest {
            group_ids: vec![group_id.to_owned()],
        };
        let resp = self.client.call_coordinator(group_id, &req, Duration::ZERO).await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol("empty DescribeGroups response".into()))?;
        check(g.error_code, &g.error_message)?;
        let non_negative = |v: i64| (v >= 0).then_some(v);
        Ok(GroupDescription {
            group_id: g.group_id,
            state: g.state,
            assignor: g.assignor,
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            members: g
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id,
                    instance_id: some_if(m.instance_id),
                    member_epoch: m.member_epoch,
                    subscribed_topics: m.subscribed_topics,
                    subscribed_topic_regex: some_if(m.subscribed_topic_regex),
                    owned: tps(m.owned),
                    target: tps(m.target),
                    left: m.left,
                })
                .collect(),
            partitions: g
                .offsets
                .into_iter()
                .map(|p| PartitionLag {
                    topic: p.topic,
                    partition: p.partition,
                    committed: non_negative(p.committed_offset),
                    metadata: p.metadata,
                    log_start_offset: p.log_start_offset,
                    log_end_offset: p.log_end_offset,
                    lag: non_negative(p.lag),
                    lag_ms: non_negative(p.lag_ms),
                    owner: some_if(p.owner),
                })
                .collect(),
        })
    }

    /// Which broker coordinates `group` now.
    pub async fn find_coordinator(&self, group_id: &str) -> Result<GroupCoordinator> {
        let resp = self
            .client
            .call_any_broker(&FindCoordinatorRequest {
                group_id: group_id.to_owned(),
            })
            .await?;
        Ok(GroupCoordinator {
            node_id: resp.node_id,
            addr: format!("{}:{}", resp.host, resp.port),
            offsets_partition: resp.offsets_partition,
        })
    }

    /// Deletes a group that has no members, with its committed offsets.
    pub async fn delete_group(&self, group_id: &str) -> Result<()> {
        let req = DeleteGroupsRequest {
            group_ids: vec![group_id.to_owned()],
        };
        let resp = self.client.call_coordinator(group_id, &req, Duration::ZERO).await?;
        one_result(resp.results.iter().map(|r| (r.error_code, r.error_message.as_str())))
    }

    /// The group's committed offsets (all partitions it has committed).
    pub async fn committed_offsets(&self, group_id: &str) -> Result<BTreeMap<TopicPartition, i64>> {
        committed_offsets(&self.client, group_id, None).await
    }

    /// Moves a stopped group's committed offsets on `topic` (every partition, or those
    /// given) to `to`: earliest, latest, an offset, or the first record at or after a
    /// timestamp (the end where there is none). Refused while the group has members.
    /// Returns the offsets committed.
    pub async fn reset_offsets(
        &self,
        group_id: &str,
        topic: &str,
        partitions: Option<Vec<u32>>,
        to: Offset,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let partitions = match partitions {
            Some(p) => p,
            None => (0..self.client.partition_count(topic).await?).collect(),
        };
        let mut offsets = BTreeMap::new();
        for p in partitions {
            let offset = match list_offset(&self.client, topic, p, to).await? {
                Some(o) => o,
                None => list_offset(&self.client, topic, p, Offset::Latest).await?.unwrap_or(0),
            };
            offsets.insert((topic.to_owned(), p), (offset, String::new()));
        }
        commit_offsets(&self.client, group_id, "", -1, &offsets).await?;
        Ok(offsets.into_iter().map(|(tp, (o, _))| (tp, o)).collect())
    }
}

pub(crate) async fn list_offset(client: &Client, topic: &str, partition: u32, at: Offset) -> Result<Option<i64>> {
    let timestamp = match at {
        Offset::Earliest => -2,
        Offset::Latest => -1,
        Offset::Timestamp(ms) if ms >= 0 => ms,
        Offset::Timestamp(ms) => return Err(Error::InvalidArgument(format!("negative timestamp {ms}"))),
        Offset::At(o) => return Ok(Some(o)),
        Offset::FromEnd(n) => {
            let end = list_offset_at(client, topic, partition, -1).await?.unwrap_or(0);
            let start = list_offset_at(client, topic, partition, -2).await?.unwrap_or(0);
            let back = i64::try_from(n).unwrap_or(i64::MAX);
            return Ok(Some(end.saturating_sub(back).max(start)));
        }
    };
    list_offset_at(client, topic, partition, timestamp).await
}

/// ListOffsets for one partition: `timestamp` -1 is the end, -2 the start, else the first
/// record at or after that time (`None` if there is none).
async fn list_offset_at(client: &Client, topic: &str, partition: u32, timestamp: i64) -> Result<Option<i64>> {
    let req = ListOffsetsRequest {
        topics: vec![ListOffsetsTopic {
            name: topic.to_owned(),
            partitions: vec![ListOffsetsPartition { partition, timestamp }],
        }],
    };
    // A stale route (the leader moved, or the client has not learned it yet) is found
    // again and the question asked of the new leader: a few times, with a short pause.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let answer = async {
            let resp = client.call_partition(topic, partition, &req).await?;
            let p = first_partition(resp.topics.into_iter().flat_map(|t| t.partitions), "ListOffsets")?;
            check(p.error_code, &p.error_message)?;
            Ok((p.offset >= 0).then_some(p.offset))
        }
        .await;
        match answer {
            Err(e) if attempt < 5 && crate::client::leader_moved(&e) => {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                let _ = client.metadata(vec![topic.to_owned()]).await;
            }
            other => return other,
        }
    }
}

/// A partition's result; one that says its leader moved refreshes the routes first (the
/// caller's retry then goes to the new leader).
fn partition_check(client: &Client, topic: &str, code: i32, message: &str) -> Result<()> {
    let checked = check(code, message);
    if checked.as_ref().err().is_some_and(crate::client::leader_moved) {
        client.refresh_routes(topic);
    }
    checked
}

/// The one partition result a single-partition request gets back.
fn first_partition<T>(mut partitions: impl Iterator<Item = T>, api: &str) -> Result<T> {
    partitions
        .next()
        .ok_or_else(|| Error::Protocol(format!("empty {api} response")))
}

fn one_result<'a>(mut results: impl Iterator<Item = (i32, &'a str)>) -> Result<()> {
    let (code, message) = results
        .next()
        .ok_or_else(|| Error::Protocol("response has no result for the topic".into()))?;
    check(code, message)
}
