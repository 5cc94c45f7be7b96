//! `runnel produce TOPIC`: one record per input line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use runnel_client::{Acks, Compression, Producer, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AcksArg {
    /// No acknowledgement: fire and forget
    None,
    /// Acknowledged once in the broker's log (page cache)
    Leader,
    /// Acknowledged once every in-sync replica holds it (durable under the topic's flush policy)
    All,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    /// Batches as they are
    None,
    /// gzip (deflate): small, slow
    Gzip,
    /// Snappy: fast, modest ratio
    Snappy,
    /// LZ4: fast, modest ratio
    Lz4,
    /// Zstandard: good ratio at good speed
    Zstd,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The topic to write to
    topic: String,
    /// Split each line at the first SEP into key and value (lines without SEP have no key)
    #[arg(long, short = 'K', value_name = "SEP")]
    key_separator: Option<String>,
    /// Send every record to this partition (default: by key hash, or sticky when keyless)
    #[arg(long, short = 'p')]
    partition: Option<u32>,
    /// When the broker acknowledges a batch
    #[arg(long, value_enum, default_value = "all")]
    acks: AcksArg,
    /// A header KEY=VALUE added to every record; repeatable
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = crate::key_value)]
    headers: Vec<(String, String)>,
    /// Read records from this file instead of stdin
    #[arg(long, short = 'f', value_name = "PATH")]
    file: Option<PathBuf>,
    /// Compress batches with this codec (the broker stores them compressed)
    #[arg(long, value_enum, default_value = "none")]
    compression: CompressionArg,
    /// Batch linger in milliseconds
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Largest batch per partition, in bytes (kcat's librdkafka default is 1,000,000):
    /// with up to five requests in flight per partition, this sets how much moves per
    /// round trip
    #[arg(long, default_value_t = 1 << 20)]
    batch_bytes: usize,
    /// Largest request, and so largest record, sent, in bytes [default: room for the
    /// topic's max.message.bytes, at least 1 MiB]
    #[arg(long, value_name = "BYTES")]
    max_request_bytes: Option<usize>,
}

/// The client's own default request limit, below which the CLI never goes.
const MIN_REQUEST_BYTES: usize = 1 << 20;
/// Room for a request's own fields beside its one batch.
const REQUEST_OVERHEAD_BYTES: usize = 64 * 1024;

/// The largest request the topic can take: its `max.message.bytes` (one batch) plus the
/// request's own fields, so a record the broker would accept is never refused here. A
/// topic that cannot be described keeps the default (producing then reports why).
async fn request_bytes_for(broker: &str, topic: &str) -> usize {
    let Ok(admin) = runnel_client::Admin::connect_with(broker, crate::client_config()).await else {
        return MIN_REQUEST_BYTES;
    };
    let max_message_bytes = admin
        .describe_configs(topic)
        .await
        .ok()
        .and_then(|entries| entries.into_iter().find(|e| e.key == "max.message.bytes"))
        .and_then(|e| e.value.parse::<usize>().ok());
    max_message_bytes.map_or(MIN_REQUEST_BYTES, |m| {
        m.saturating_add(REQUEST_OVERHEAD_BYTES).max(MIN_REQUEST_BYTES)
    })
}

/// Outstanding deliveries checked in order by a second task; a bound keeps memory flat.
const DELIVERY_QUEUE: usize = 65_536;

// Long by choice: reading lines, sending and reporting progress share their state.
pub async fn run(broker: &str, args: ProduceArgs) -> Result<(), String> {
    let max_request_bytes = match args.max_request_bytes {
        Some(n) => n.max(1024),
        None => request_bytes_for(broker, &args.topic).await,
    };
    let defaults = ProducerConfig::default();
    let config = ProducerConfig {
        acks: match args.acks {
            AcksArg::None => Acks::None,
            AcksArg::Leader => Acks::Leader,
            AcksArg::All => Acks::All,
        },
        compression: match args.compression {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        },
        linger: Duration::from_millis(args.linger_ms),
        batch_size_bytes: args.batch_bytes.max(1),
        max_request_bytes,
        buffer_memory_bytes: defaults.buffer_memory_bytes.max(max_request_bytes),
        client: runnel_client::ClientConfig {
            auto_create_topics: defaults.client.auto_create_topics,
            ..crate::client_config()
        },
        ..defaults
    };
    let producer = Producer::connect(broker, config).await.map_err(|e| e.to_string())?;
    let topic: std::sync::Arc<str> = args.topic.as_str().into();
    let input: Box<dyn AsyncBufRead + Unpin + Send> = match &args.file {
        Some(path) => {
            let f = tokio::fs::File::open(path)
                .await
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            Box::new(BufReader::with_capacity(1 << 20, f))
        }
        None => Box::new(BufReader::with_capacity(1 << 20, tokio::io::stdin())),
    };

    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {human_pos} records ({per_sec}) {msg} in {elapsed}")
                .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });

    let (tx, mut rx) = mpsc::channel::<runnel_client::DeliveryFuture>(DELIVERY_QUEUE);
    let checker = tokio::spawn(async move {
        while let Some(d) = rx.recv().await {
            d.await.map_err(|e| format!("record not delivered: {e}"))?;
        }
        Ok::<(), String>(())
    });

    let headers: Vec<runnel_client::Header> = args
        .headers
        .iter()
        .map(|(k, v)| runnel_client::Header {
            key: k.clone(),
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
        })
        .collect();
    let sep = args.key_separator.as_deref().map(str::as_bytes);
    let mut lines = input.split(b'\n');
    let (mut records, mut bytes) = (0u64, 0u64);
    let sent = async {
        while let Some(mut line) = lines
            .next_segment()
            .await
            .map_err(|e| format!("cannot read input: {e}"))?
        {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            bytes += line.len() as u64;
            let line = Bytes::from(line);
            let (key, value) = match sep.and_then(|s| find(&line, s).map(|at| (at, s.len()))) {
                Some((at, n)) => (Some(line.slice(..at)), line.slice(at + n..)),
                None => (None, line),
            };
            let mut r = ProducerRecord::new(topic.clone(), value);
            r.key = key;
            r.partition = args.partition;
            r.headers = headers.clone();
            let d = producer.send(r).await.map_err(|e| e.to_string())?;
            if tx.send(d).await.is_err() {
                break; // the checker stopped on an error; it reports it
            }
            records += 1;
            if let Some(bar) = &progress {
                bar.inc(1);
                if records.is_multiple_of(1024) {
                    bar.set_message(format!("{:.1} MB", bytes as f64 / 1e6));
                }
            }
        }
        Ok::<(), String>(())
    }
    .await;
    producer.close().await;
    drop(tx);
    let checked = checker.await.map_err(|e| e.to_string())?;
    if let Some(bar) = progress {
        bar.finish_with_message(format!("{:.1} MB", bytes as f64 / 1e6));
    }
    sent?;
    checked
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
