//! [`Admin`]: create, delete, list and describe topics; read and change topic configs.

use std::collections::BTreeMap;

use runnel_protocol::messages::{
    AlterConfigsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, ListOffsetsPartition,
    ListOffsetsRequest, ListOffsetsTopic, NewTopic, TopicConfigChange,
};

use crate::client::{check, Client, ClientConfig};
use crate::consumer::Offset;
use crate::error::{Error, Result};

/// A topic as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    pub name: String,
    pub partitions: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub start_offset: i64,
    pub end_offset: i64,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub key: String,
    pub value: String,
    pub is_default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub id: String,
    pub partitions: Vec<PartitionInfo>,
    pub configs: Vec<ConfigEntry>,
}

pub struct Admin {
    client: Client,
}

impl Admin {
    pub async fn connect(addr: impl Into<String>) -> Result<Admin> {
        Admin::connect_with(addr, ClientConfig::default()).await
    }

    pub async fn connect_with(addr: impl Into<String>, config: ClientConfig) -> Result<Admin> {
        Ok(Admin {
            client: Client::connect(addr, config).await?,
        })
    }

    /// Creates a topic with `partitions` partitions and the given config overrides.
    pub async fn create_topic(&self, name: &str, partitions: u32, configs: BTreeMap<String, String>) -> Result<()> {
        let resp = self
            .client
            .call(&CreateTopicsRequest {
                topics: vec![NewTopic {
                    name: name.to_owned(),
                    partitions: partitions.min(i32::MAX as u32) as i32,
                    configs,
                }],
            })
            .await?;
        one_result(resp.topics.iter().map(|t| (t.error_code, t.error_message.as_str())))
    }

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

pub(crate) async fn list_offset(client: &Client, topic: &str, partition: u32, at: Offset) -> Result<Option<i64>> {
    let timestamp = match at {
        Offset::Earliest => -2,
        Offset::Latest => -1,
        Offset::Timestamp(ms) if ms >= 0 => ms,
        Offset::Timestamp(ms) => return Err(Error::InvalidArgument(format!("negative timestamp {ms}"))),
        Offset::At(o) => return Ok(Some(o)),
    };
    let resp = client
        .call(&ListOffsetsRequest {
            topics: vec![ListOffsetsTopic {
                name: topic.to_owned(),
                partitions: vec![ListOffsetsPartition { partition, timestamp }],
            }],
        })
        .await?;
    let p = resp
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .next()
        .ok_or_else(|| Error::Protocol("empty ListOffsets response".into()))?;
    check(p.error_code, &p.error_message)?;
    Ok((p.offset >= 0).then_some(p.offset))
}

fn one_result<'a>(mut results: impl Iterator<Item = (i32, &'a str)>) -> Result<()> {
    let (code, message) = results
        .next()
        .ok_or_else(|| Error::Protocol("response has no result for the topic".into()))?;
    check(code, message)
}
