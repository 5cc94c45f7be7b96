//! Produces N keyed records to a topic (created with 3 partitions if missing) and prints
//! where each batch of acknowledgements landed.
//!
//! `cargo run -p runnel-client --example produce -- TOPIC COUNT [BROKER]`

use std::collections::BTreeMap;

use runnel_client::{Admin, ErrorCode, Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "clicks".into());
    let count: usize = args.next().map_or(Ok(1000), |c| c.parse())?;
    let broker = args.next().unwrap_or_else(|| runnel_client::DEFAULT_BROKER_ADDR.into());

    match Admin::connect(&broker)
        .await?
        .create_topic(&topic, 3, BTreeMap::new())
        .await
    {
        Err(e) if e.code() != Some(ErrorCode::TopicAlreadyExists) => return Err(e.into()),
        _ => {}
    }
    let producer = Producer::connect(&broker, ProducerConfig::default()).await?;
    let mut deliveries = Vec::with_capacity(count);
    // One shared name for every record (`&str` and `String` work too, at one allocation
    // per record).
    let topic: std::sync::Arc<str> = topic.into();
    for i in 0..count {
        let record = ProducerRecord::new(topic.clone(), format!("order {i}")).key(format!("customer-{}", i % 10));
        deliveries.push(producer.send(record).await?);
    }
    let mut per_partition = BTreeMap::new();
    for d in deliveries {
        let m = d.await?;
        *per_partition.entry(m.partition).or_insert(0usize) += 1;
    }
    producer.close().await;
    for (partition, n) in per_partition {
        println!("partition {partition}: {n} records");
    }
    Ok(())
}
