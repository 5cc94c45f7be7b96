//! `runnel group`: list, describe (members, assignments, lag), reset offsets, delete.

use clap::Subcommand;
use runnel_client::{Admin, Offset};

use crate::consume::parse_from;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups
    List,
    /// Show a group's members, their partitions, and per-partition committed offset and lag
    Describe {
        /// The group's id
        group: String,
    },
    /// Move a stopped group's committed offsets on a topic
    ResetOffsets {
        /// The group's id (the group must have no members)
        group: String,
        /// The topic whose offsets move
        #[arg(long, short = 't')]
        topic: String,
        /// Only this partition (default: all)
        #[arg(long, short = 'p')]
        partition: Option<u32>,
        /// beginning, end, an OFFSET, -N (N before the end), or @UNIX_MS (first record at or
        /// after that time)
        #[arg(long, value_parser = parse_from, allow_hyphen_values = true)]
        to: Offset,
    },
    /// Delete a group without members, with its committed offsets
    Delete {
        /// The group's id
        group: String,
    },
}

fn dash(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

pub async fn run(broker: &str, cmd: GroupCommand) -> Result<(), String> {
    let err = |e: runnel_client::Error| e.to_string();
    let admin = Admin::connect_with(broker, crate::client_config()).await.map_err(err)?;
    match cmd {
        GroupCommand::List => {
            let groups = admin.list_groups().await.map_err(err)?;
            println!("{:<32} {:<12} {:>7}  ASSIGNOR", "GROUP", "STATE", "MEMBERS");
            for g in groups {
                println!("{:<32} {:<12} {:>7}  {}", g.group_id, g.state, g.members, g.assignor);
            }
        }
        GroupCommand::Describe { group } => {
            let d = admin.describe_group(&group).await.map_err(err)?;
            let coordinator = admin.find_coordinator(&group).await.map_err(err)?;
            println!(
                "group {}  state {}  assignor {}  epoch {}  members {}  coordinator {} ({})",
                d.group_id,
                d.state,
                d.assignor,
                d.group_epoch,
                d.members.len(),
                coordinator.node_id,
                coordinator.addr
            );
            if !d.members.is_empty() {
                println!();
                println!("{:<38} {:<16} {:>5}  PARTITIONS", "MEMBER", "INSTANCE", "EPOCH");
                for m in &d.members {
                    let mut parts: Vec<String> = m.owned.iter().map(|(t, p)| format!("{t}-{p}")).collect();
                    // Partitions still moving to the member.
                    parts.extend(
                        m.target
                            .iter()
                            .filter(|tp| !m.owned.contains(tp))
                            .map(|(t, p)| format!("(+{t}-{p})")),
                    );
                    let instance = match (&m.instance_id, m.left) {
                        (Some(i), true) => format!("{i} (left)"),
                        (Some(i), false) => i.clone(),
                        (None, _) => "-".into(),
                    };
                    println!(
                        "{:<38} {:<16} {:>5}  {}",
                        m.member_id,
                        instance,
                        m.member_epoch,
                        parts.join(" ")
                    );
                }
            }
            println!();
            println!(
                "{:<24} {:>9} {:>12} {:>12} {:>10} {:>10}  OWNER",
                "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "LAG-MS"
            );
            for p in &d.partitions {
                println!(
                    "{:<24} {:>9} {:>12} {:>12} {:>10} {:>10}  {}",
                    p.topic,
                    p.partition,
                    dash(p.committed),
                    p.log_end_offset,
                    dash(p.lag),
                    dash(p.lag_ms),
                    p.owner.as_deref().unwrap_or("-")
                );
            }
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            partition,
            to,
        } => {
            let done = admin
                .reset_offsets(&group, &topic, partition.map(|p| vec![p]), to)
                .await
                .map_err(err)?;
            println!("{:<24} {:>9} {:>12}", "TOPIC", "PARTITION", "OFFSET");
            for ((t, p), o) in done {
                println!("{t:<24} {p:>9} {o:>12}");
            }
        }
        GroupCommand::Delete { group } => {
            admin.delete_group(&group).await.map_err(err)?;
            println!("deleted group {group}");
        }
    }
    Ok(())
}
