//! `runnel status`: one screen for a person — the broker's version, uptime and
//! connections; topics with partitions, size and in/out rates; groups with members and
//! lag. Rates come from two readings of the broker's counters (the ones `/metrics`
//! exports) `--interval-ms` apart.

use std::time::{Duration, Instant};

use clap::Args;
use runnel_client::{Admin, BrokerStatus};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Time between the two readings the rates are computed from
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub interval_ms: u64,
}

/// `1h 02m 03s`, `4m 05s`, `6s`.
fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60) {
        (0, 0, 0, s) => format!("{s}s"),
        (0, 0, m, s) => format!("{m}m {s:02}s"),
        (0, h, m, s) => format!("{h}h {m:02}m {s:02}s"),
        (d, h, m, _) => format!("{d}d {h:02}h {m:02}m"),
    }
}

/// Bytes in binary units with one decimal.
fn size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn rate(before: u64, after: u64, secs: f64) -> f64 {
    after.saturating_sub(before) as f64 / secs
}

pub async fn run(broker: &str, args: StatusArgs) -> Result<(), String> {
    let err = |e: runnel_client::Error| e.to_string();
    let admin = Admin::connect_with(broker, crate::client_config()).await.map_err(err)?;
    let first: BrokerStatus = admin.broker_status().await.map_err(err)?;
    let at = Instant::now();
    tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    let second = admin.broker_status().await.map_err(err)?;
    let secs = at.elapsed().as_secs_f64();
    println!(
        "runnel-broker {} at {broker}: up {}, {} client connection(s)",
        second.version,
        uptime(second.uptime),
        // This tool's own connection is one of them.
        second.connections.saturating_sub(1)
    );
    println!();
    println!(
        "{:<28} {:>5} {:>11} {:>12} {:>10} {:>12} {:>10}",
        "TOPIC", "PARTS", "SIZE", "IN REC/S", "IN MB/S", "OUT REC/S", "OUT MB/S"
    );
    for t in &second.topics {
        let before = first.topics.iter().find(|b| b.name == t.name);
        let r = |f: fn(&runnel_client::TopicStatus) -> u64| rate(before.map_or(f(t), f), f(t), secs);
        println!(
            "{:<28} {:>5} {:>11} {:>12.1} {:>10.2} {:>12.1} {:>10.2}",
            t.name,
            t.partitions,
            size(t.size_bytes),
            r(|t| t.produced_records),
            r(|t| t.produced_bytes) / 1e6,
            r(|t| t.fetched_records),
            r(|t| t.fetched_bytes) / 1e6,
        );
    }
    let groups = admin.list_groups().await.map_err(err)?;
    println!();
    println!(
        "{:<28} {:<20} {:>7} {:>12} {:>12}",
        "GROUP", "STATE", "MEMBERS", "LAG (REC)", "LAG (AGE)"
    );
    for g in groups {
        let d = admin.describe_group(&g.group_id).await.map_err(err)?;
        let lag: i64 = d.partitions.iter().filter_map(|p| p.lag).sum();
        let age = d.partitions.iter().filter_map(|p| p.lag_ms).max().unwrap_or(0);
        println!(
            "{:<28} {:<20} {:>7} {:>12} {:>12}",
            g.group_id,
            g.state,
            g.members,
            lag,
            uptime(Duration::from_millis(age.max(0) as u64))
        );
    }
    Ok(())
}
