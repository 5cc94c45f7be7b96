//! `runnel cluster describe`: one line per broker — id, native and Kafka addresses,
//! controller or not, fenced or not, partitions led — as the answering broker's
//! metadata has it.

use clap::Subcommand;
use runnel_client::Admin;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Every broker with its addresses, whether it is the controller or fenced, and how
    /// many partitions it leads
    Describe,
}

pub async fn run(broker: &str, cmd: ClusterCommand) -> Result<(), String> {
    let admin = Admin::connect_with(broker, crate::client_config())
        .await
        .map_err(|e| e.to_string())?;
    match cmd {
        ClusterCommand::Describe => {
            let c = admin.describe_cluster().await.map_err(|e| e.to_string())?;
            let controller = match c.controller_id {
                -1 => "none (no quorum)".to_owned(),
                id => id.to_string(),
            };
            println!(
                "cluster {}  controller {controller}  metadata offset {} (as broker {} has it)",
                c.cluster_id, c.metadata_offset, c.answered_by
            );
            println!(
                "{:>4} {:<22} {:<22} {:<10} {:<8} {:>7} {:>5}",
                "ID", "NATIVE", "KAFKA", "ROLE", "STATE", "LEADERS", "EPOCH"
            );
            for b in &c.brokers {
                let role = match (b.id == c.controller_id, b.voter) {
                    (true, _) => "controller",
                    (false, true) => "voter",
                    (false, false) => "broker",
                };
                println!(
                    "{:>4} {:<22} {:<22} {:<10} {:<8} {:>7} {:>5}",
                    b.id,
                    b.native,
                    b.kafka.as_deref().unwrap_or("-"),
                    role,
                    if b.fenced { "fenced" } else { "live" },
                    b.leaders,
                    b.epoch
                );
            }
        }
    }
    Ok(())
}
