//! Reads a topic from the beginning to its current end and prints each record.
//!
//! `cargo run -p runnel-client --example consume -- TOPIC [BROKER]`

use futures::StreamExt;
use runnel_client::{Consumer, ConsumerConfig, Offset};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "clicks".into());
    let broker = args.next().unwrap_or_else(|| runnel_client::DEFAULT_BROKER_ADDR.into());

    let mut consumer = Consumer::connect(&broker, ConsumerConfig::default()).await?;
    consumer.assign_topic(&topic).await?;
    consumer.seek_all(Offset::Earliest).await?;
    // Stop at the end offsets as of now.
    let mut left = 0;
    for (t, p) in consumer.assignment() {
        left += consumer.offset_for(&t, p, Offset::Latest).await?.unwrap_or(0) - consumer.position(&t, p).unwrap_or(0);
    }
    let mut records = consumer.stream();
    while left > 0 {
        let Some(r) = records.next().await else { break };
        let r = r?;
        let value = r.value.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
        println!("{}/{} {value}", r.partition, r.offset);
        left -= 1;
    }
    Ok(())
}
