//! `admin-bench`: how long topic creation and deletion take, through the native listener.
//!
//! Three shapes, each over `--topics` topics of `--partitions` partitions, `--rounds`
//! times (every round deletes what it created, timed too):
//! - `sequential`: one CreateTopics request per topic, each waiting for the last (a
//!   script creating topics one by one);
//! - `one-request`: all topics in one CreateTopics request;
//! - `burst`: one request per topic, all sent at once on their own connections (many
//!   services starting together, or auto-creation).
//!
//! Reports p50, p99 and max of the request latency (for `one-request`, of the one request
//! per round) and the total time per round. Run it against a running broker:
//! `admin-bench --broker 127.0.0.1:7117`.

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use runnel_client::{Client, ClientConfig};
use runnel_protocol::messages::{CreateTopicsRequest, DeleteTopicsRequest, NewTopic};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Shape {
    Sequential,
    OneRequest,
    Burst,
}

#[derive(Debug, Parser)]
#[command(name = "admin-bench", about = "Topic creation and deletion latency")]
struct Args {
    /// The broker's native listener
    #[arg(long, default_value = runnel_protocol::DEFAULT_BROKER_ADDR)]
    broker: String,
    /// How the creations are sent
    #[arg(long, value_enum, default_value = "sequential")]
    shape: Shape,
    /// Topics per round
    #[arg(long, default_value_t = 100)]
    topics: usize,
    /// Partitions per topic
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Rounds (each creates and deletes `--topics` topics)
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn new_topic(name: String, partitions: i32) -> NewTopic {
    NewTopic {
        name,
        partitions,
        ..Default::default()
    }
}

/// Sends one CreateTopics request and checks every topic's result; returns its latency.
async fn create(client: &Client, names: &[String], partitions: i32) -> Duration {
    let req = CreateTopicsRequest {
        topics: names.iter().map(|n| new_topic(n.clone(), partitions)).collect(),
        ..Default::default()
    };
    let start = Instant::now();
    let resp = client.call(&req).await.expect("CreateTopics answered");
    let took = start.elapsed();
    for t in resp.topics {
        assert_eq!(t.error_code, 0, "creating {}: {}", t.name, t.error_message);
    }
    took
}

async fn delete(client: &Client, names: &[String]) -> Duration {
    let start = Instant::now();
    let resp = client
        .call(&DeleteTopicsRequest { topics: names.to_vec() })
        .await
        .expect("DeleteTopics answered");
    let took = start.elapsed();
    for t in resp.topics {
        assert_eq!(t.error_code, 0, "deleting {}: {}", t.name, t.error_message);
    }
    took
}

fn report(what: &str, h: &Histogram<u64>) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "{what:<28} n={:<5} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        h.len(),
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let config = ClientConfig {
        request_timeout: Duration::from_secs(120),
        ..ClientConfig::default()
    };
    let client = Client::connect(&args.broker, config.clone())
        .await
        .expect("connect to the broker");
    let mut create_us = Histogram::<u64>::new(3).expect("histogram");
    let mut delete_us = Histogram::<u64>::new(3).expect("histogram");
    let mut round_ms = Histogram::<u64>::new(3).expect("histogram");
    let pid = std::process::id();
    for round in 0..args.rounds {
        let names: Vec<String> = (0..args.topics)
            .map(|i| format!("admin-bench-{pid}-{round}-{i}"))
            .collect();
        let started = Instant::now();
        match args.shape {
            Shape::Sequential => {
                for n in &names {
                    let took = create(&client, std::slice::from_ref(n), args.partitions).await;
                    create_us.record(took.as_micros() as u64).expect("in range");
                }
            }
            Shape::OneRequest => {
                let took = create(&client, &names, args.partitions).await;
                create_us.record(took.as_micros() as u64).expect("in range");
            }
            Shape::Burst => {
                let mut clients = Vec::with_capacity(names.len());
                for _ in &names {
                    clients.push(Client::connect(&args.broker, config.clone()).await.expect("connect"));
                }
                let tasks: Vec<_> = names
                    .iter()
                    .cloned()
                    .zip(clients)
                    .map(|(n, c)| {
                        let partitions = args.partitions;
                        tokio::spawn(async move { create(&c, &[n], partitions).await })
                    })
                    .collect();
                for t in tasks {
                    let took = t.await.expect("task");
                    create_us.record(took.as_micros() as u64).expect("in range");
                }
            }
        }
        round_ms.record(started.elapsed().as_millis() as u64).expect("in range");
        for n in &names {
            let took = delete(&client, std::slice::from_ref(n)).await;
            delete_us.record(took.as_micros() as u64).expect("in range");
        }
    }
    println!(
        "admin-bench {:?}: {} topics x {} partition(s), {} rounds",
        args.shape, args.topics, args.partitions, args.rounds
    );
    report("create request latency", &create_us);
    println!(
        "{:<28} p50={:>8} ms  max={:>8} ms",
        "create round (all topics)",
        round_ms.value_at_quantile(0.5),
        round_ms.max()
    );
    report("delete request latency", &delete_us);
}
