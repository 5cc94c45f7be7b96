//! `runnel topic ...`

use std::collections::BTreeMap;

use clap::Subcommand;
use runnel_client::Admin;

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic
    Create {
        /// The new topic's name: letters, digits, `.`, `_`, `-`, at most 249 characters
        name: String,
        /// Number of partitions
        #[arg(long, short = 'p', default_value_t = 1)]
        partitions: u32,
        /// Copies of each partition, on different brokers [default: the broker's default_replication_factor]
        #[arg(long, short = 'r', value_parser = clap::value_parser!(i32).range(1..=i16::MAX as i64))]
        replication_factor: Option<i32>,
        /// A topic config KEY=VALUE (e.g. retention.ms=86400000, flush.policy=interval); repeatable
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = crate::key_value)]
        configs: Vec<(String, String)>,
    },
    /// Add partitions to a topic (they are never removed: keys would move)
    Alter {
        /// The topic to grow
        name: String,
        /// The new partition count, above the current one
        #[arg(long, short = 'p')]
        partitions: u32,
    },
    /// Delete a topic and all its records
    Delete {
        /// The topic to delete
        name: String,
    },
    /// List topics with their partition counts
    List,
    /// Delete a partition's records before an offset, for good (the log then starts there)
    Trim {
        /// The topic
        name: String,
        /// The partition to trim
        #[arg(long, short = 'p')]
        partition: u32,
        /// The new start: records before this OFFSET are deleted; `end` deletes them all
        #[arg(long, value_name = "OFFSET|end", value_parser = parse_trim_offset)]
        before: TrimTo,
    },
    /// Show a topic's partitions (offsets, sizes) and configs
    Describe {
        /// The topic to show
        name: String,
    },
}

/// Where `topic trim` moves a partition's start.
#[derive(Debug, Clone, Copy)]
pub enum TrimTo {
    Offset(i64),
    /// The end of the log: every record goes.
    End,
}

fn parse_trim_offset(s: &str) -> Result<TrimTo, String> {
    match s {
        "end" => Ok(TrimTo::End),
        _ => s
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .map(TrimTo::Offset)
            .ok_or_else(|| format!("expected an offset or end, got {s:?}")),
    }
}

pub async fn run(broker: &str, cmd: TopicCommand) -> Result<(), String> {
    let admin = Admin::connect_with(broker, crate::client_config())
        .await
        .map_err(|e| e.to_string())?;
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let configs: BTreeMap<String, String> = configs.into_iter().collect();
            admin
                .create_replicated_topic(&name, partitions, replication_factor.unwrap_or(-1), configs)
                .await
                .map_err(|e| e.to_string())?;
            println!("created topic {name} with {partitions} partition(s)");
        }
        TopicCommand::Alter { name, partitions } => {
            admin
                .create_partitions(&name, partitions)
                .await
                .map_err(|e| e.to_string())?;
            println!("topic {name} now has {partitions} partition(s)");
        }
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await.map_err(|e| e.to_string())?;
            println!("deleted topic {name}");
        }
        TopicCommand::Trim {
            name,
            partition,
            before,
        } => {
            let start = admin
                .delete_records(
                    &name,
                    partition,
                    match before {
                        TrimTo::Offset(o) => Some(o),
                        TrimTo::End => None,
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            println!("{name} partition {partition} now starts at offset {start}");
        }
        TopicCommand::List => {
            for t in admin.list_topics().await.map_err(|e| e.to_string())? {
                println!("{}\t{} partition(s)", t.name, t.partitions);
            }
        }
        TopicCommand::Describe { name } => {
            let d = admin.describe_topic(&name).await.map_err(|e| e.to_string())?;
            println!("topic {}  id {}  partitions {}", d.name, d.id, d.partitions.len());
            println!(
                "{:>9} {:>6} {:>6} {:>9} {:>9} {:>14} {:>14} {:>14}",
                "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "START", "END", "SIZE_BYTES"
            );
            let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            for p in &d.partitions {
                println!(
                    "{:>9} {:>6} {:>6} {:>9} {:>9} {:>14} {:>14} {:>14}",
                    p.partition,
                    p.leader,
                    p.leader_epoch,
                    ids(&p.replicas),
                    ids(&p.isr),
                    p.start_offset,
                    p.end_offset,
                    p.size_bytes
                );
            }
            println!("configs:");
            for c in &d.configs {
                let origin = if c.is_default { "default" } else { "set" };
                println!("  {}={} ({origin})", c.key, c.value);
            }
        }
    }
    Ok(())
}
