//! `runnel consume TOPIC`: print records with a template or as JSON lines.

use std::collections::BTreeMap;
use std::io::Write;

use base64::Engine;
use clap::Args;
use runnel_client::{Consumer, ConsumerConfig, ConsumerRecord, GroupConfig, Offset, OffsetReset};
use tokio::signal::unix::{signal, SignalKind};

const FORMAT_HELP: &str = "Output template (kcat-style): %t topic, %p partition, %o offset, \
%T timestamp (ms), %k key, %s value, %h headers (k=v,k2=v2), %K key length, %S value length, \
%% a percent sign; \\n, \\t, \\\\ escapes. Keys and values are written as raw bytes";

const JSON_HELP: &str = "One JSON object per record with the fields topic, partition, offset, \
timestamp, key, value, headers. Keys, values and header values that are UTF-8 are strings; \
other bytes are shown as {\"base64\": \"...\"}; absent ones are null. headers is an array \
of {\"key\": ..., \"value\": ...}";

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The topic to read
    topic: String,
    /// Where to start: beginning, end, an OFFSET, -N (N records before the end, as kcat's
    /// `-o -N`), or @UNIX_MS (first record at or after that time). With --group, only for
    /// partitions the group has not committed
    #[arg(long, short = 'o', default_value = "end", value_parser = parse_from, allow_hyphen_values = true)]
    from: Offset,
    /// Read only this partition (default: all)
    #[arg(long, short = 'p', conflicts_with = "group")]
    partition: Option<u32>,
    /// Join this consumer group: share the partitions with its other members, start at
    /// its committed offsets, commit what was printed (every 5 s, and on exit)
    #[arg(long, short = 'G')]
    group: Option<String>,
    /// Static membership: a stable member name (a restart within the session keeps its partitions)
    #[arg(long, requires = "group")]
    instance_id: Option<String>,
    /// Group assignor when this member creates the group: uniform or range
    #[arg(long, requires = "group")]
    assignor: Option<String>,
    /// Group session timeout: without a heartbeat this long, the member is removed
    #[arg(long, requires = "group", default_value_t = 45_000)]
    session_timeout_ms: u64,
    /// Stop after this many records
    #[arg(long, short = 'c')]
    count: Option<u64>,
    /// Stop at the end of every partition (the end offsets when consuming starts)
    #[arg(long, short = 'e', conflicts_with = "group")]
    exit_at_end: bool,
    #[arg(long, short = 'f', help = FORMAT_HELP, default_value = "%s\\n", conflicts_with = "json")]
    format: String,
    #[arg(long, short = 'J', help = JSON_HELP)]
    json: bool,
}

pub(crate) fn parse_from(s: &str) -> Result<Offset, String> {
    match s {
        "beginning" | "earliest" => Ok(Offset::Earliest),
        "end" | "latest" => Ok(Offset::Latest),
        _ => {
            if let Some(ms) = s.strip_prefix('@') {
                return ms
                    .parse::<i64>()
                    .ok()
                    .filter(|ms| *ms >= 0)
                    .map(Offset::Timestamp)
                    .ok_or_else(|| format!("bad timestamp {ms:?}: expected milliseconds since the epoch"));
            }
            if let Some(n) = s.strip_prefix('-') {
                return n
                    .parse::<u64>()
                    .map(Offset::FromEnd)
                    .map_err(|_| format!("bad -N {s:?}: expected a count of records before the end"));
            }
            s.parse::<i64>()
                .ok()
                .filter(|o| *o >= 0)
                .map(Offset::At)
                .ok_or_else(|| format!("expected beginning, end, an offset, -N or @UNIX_MS, got {s:?}"))
        }
    }
}

pub async fn run(broker: &str, args: ConsumeArgs) -> Result<(), String> {
    let err = |e: runnel_client::Error| e.to_string();
    let config = ConsumerConfig {
        auto_offset_reset: OffsetReset::Latest,
        group: GroupConfig {
            session_timeout: std::time::Duration::from_millis(args.session_timeout_ms),
            instance_id: args.instance_id.clone(),
            assignor: args.assignor.clone(),
            start_without_commit: Some(args.from),
            ..GroupConfig::default()
        },
        client: crate::client_config(),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(broker, config).await.map_err(err)?;
    match (&args.group, args.partition) {
        (Some(g), _) => consumer.subscribe(g, [args.topic.clone()]).await.map_err(err)?,
        (None, Some(p)) => consumer.assign([(args.topic.clone(), p)]).await.map_err(err)?,
        (None, None) => consumer.assign_topic(&args.topic).await.map_err(err)?,
    }
    if args.group.is_none() {
        consumer.seek_all(args.from).await.map_err(err)?;
        if let Offset::At(from) = args.from {
            warn_past_end(&consumer, &args.topic, from).await.map_err(err)?;
        }
    }
    let result = print_records(&mut consumer, &args).await;
    // In a group: commit what was printed and leave, so the partitions move on at once.
    let closed = consumer.close().await.map_err(err);
    result.and(closed)
}

/// An explicit start offset past a partition's end reads nothing until records arrive
/// there: say so, or the user waits on a silent terminal.
async fn warn_past_end(consumer: &Consumer, topic: &str, from: i64) -> Result<(), runnel_client::Error> {
    for (t, p) in consumer.assignment() {
        let end = consumer.offset_for(&t, p, Offset::Latest).await?.unwrap_or(0);
        if from > end {
            eprintln!(
                "runnel: offset {from} is past the end of {topic} partition {p} (end {end}); \
                 it will be read from the end"
            );
        }
    }
    Ok(())
}

async fn print_records(consumer: &mut Consumer, args: &ConsumeArgs) -> Result<(), String> {
    let err = |e: runnel_client::Error| e.to_string();
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;

    // With --exit-at-end, partitions already at their end are done before reading.
    let mut remaining: BTreeMap<u32, i64> = BTreeMap::new();
    if args.exit_at_end {
        for (t, p) in consumer.assignment() {
            let end = consumer
                .offset_for(&t, p, Offset::Latest)
                .await
                .map_err(err)?
                .unwrap_or(0);
            if consumer.position(&t, p).unwrap_or(0) < end {
                remaining.insert(p, end);
            }
        }
        if remaining.is_empty() {
            return Ok(());
        }
    }
    let template = parse_template(&args.format);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut printed = 0u64;
    while args.count.is_none_or(|c| printed < c) {
        let record = tokio::select! {
            biased;
            _ = sigint.recv() => {
                crate::INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
                break;
            }
            _ = sigterm.recv() => break,
            r = consumer.next() => r,
        };
        let Some(record) = record else { break };
        let r = match record {
            Ok(r) => r,
            // A group member rides out a broker restart; a plain consumer reports it.
            Err(e) if args.group.is_some() && e.is_retriable() => continue,
            Err(e) => return Err(err(e)),
        };
        let written = if args.json {
            writeln!(out, "{}", json(&r))
        } else {
            write_template(&mut out, &template, &r)
        };
        if let Err(e) = written {
            return if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(format!("cannot write output: {e}"))
            };
        }
        printed += 1;
        let caught_up = consumer
            .high_watermark(&r.topic, r.partition)
            .is_some_and(|hw| r.offset + 1 >= hw);
        if caught_up || printed.is_multiple_of(4096) {
            if let Err(e) = out.flush() {
                return if e.kind() == std::io::ErrorKind::BrokenPipe {
                    Ok(())
                } else {
                    Err(format!("cannot write output: {e}"))
                };
            }
        }
        if args.exit_at_end {
            if let Some(end) = remaining.get(&r.partition) {
                if r.offset + 1 >= *end {
                    remaining.remove(&r.partition);
                }
            }
            if remaining.is_empty() {
                break;
            }
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("cannot write output: {e}")),
        _ => Ok(()),
    }
}

#[derive(Debug, PartialEq)]
enum Part {
    Text(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Value,
    Headers,
    KeyLen,
    ValueLen,
}

fn parse_template(s: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut text = Vec::new();
    let mut chars = s.chars().peekable();
    let push = |parts: &mut Vec<Part>, text: &mut Vec<u8>, p: Part| {
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(text)));
        }
        parts.push(p);
    };
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            ('%', Some(n)) => {
                let part = match n {
                    't' => Some(Part::Topic),
                    'p' => Some(Part::Partition),
                    'o' => Some(Part::Offset),
                    'T' => Some(Part::Timestamp),
                    'k' => Some(Part::Key),
                    's' => Some(Part::Value),
                    'h' => Some(Part::Headers),
                    'K' => Some(Part::KeyLen),
                    'S' => Some(Part::ValueLen),
                    '%' => {
                        text.push(b'%');
                        None
                    }
                    _ => {
                        text.push(b'%');
                        text.extend_from_slice(n.to_string().as_bytes());
                        None
                    }
                };
                chars.next();
                if let Some(p) = part {
                    push(&mut parts, &mut text, p);
                }
            }
            ('\\', Some(n)) if matches!(n, 'n' | 't' | '\\') => {
                chars.next();
                text.push(match n {
                    'n' => b'\n',
                    't' => b'\t',
                    _ => b'\\',
                });
            }
            _ => {
                let mut b = [0u8; 4];
                text.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    parts
}

fn write_template(out: &mut impl Write, parts: &[Part], r: &ConsumerRecord) -> std::io::Result<()> {
    for p in parts {
        match p {
            Part::Text(t) => out.write_all(t)?,
            Part::Topic => out.write_all(r.topic.as_bytes())?,
            Part::Partition => write!(out, "{}", r.partition)?,
            Part::Offset => write!(out, "{}", r.offset)?,
            Part::Timestamp => write!(out, "{}", r.timestamp)?,
            Part::Key => out.write_all(r.key.as_deref().unwrap_or_default())?,
            Part::Value => out.write_all(r.value.as_deref().unwrap_or_default())?,
            Part::KeyLen => write!(out, "{}", r.key.as_ref().map_or(-1, |k| k.len() as i64))?,
            Part::ValueLen => write!(out, "{}", r.value.as_ref().map_or(-1, |v| v.len() as i64))?,
            Part::Headers => {
                for (i, h) in r.headers.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(h.key.as_bytes())?;
                    out.write_all(b"=")?;
                    out.write_all(h.value.as_deref().unwrap_or_default())?;
                }
            }
        }
    }
    Ok(())
}

fn bytes_json(b: Option<&[u8]>) -> serde_json::Value {
    match b {
        None => serde_json::Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => serde_json::Value::String(s.to_owned()),
            Err(_) => serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) }),
        },
    }
}

fn json(r: &ConsumerRecord) -> serde_json::Value {
    serde_json::json!({
        "topic": &*r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": bytes_json(r.key.as_deref()),
        "value": bytes_json(r.value.as_deref()),
        "headers": r.headers.iter().map(|h| serde_json::json!({
            "key": h.key,
            "value": bytes_json(h.value.as_deref()),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let r = ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 99,
            key: Some("k".into()),
            value: Some("v".into()),
            headers: vec![runnel_client::Header {
                key: "h".into(),
                value: Some("x".into()),
            }],
        };
        let mut out = Vec::new();
        write_template(
            &mut out,
            &parse_template("%t/%p@%o %T %k=%s [%h] %K %S 100%%\\t%q\\n"),
            &r,
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "t/2@7 99 k=v [h=x] 1 1 100%\t%q\n");
        let j = json(&ConsumerRecord {
            key: Some(bytes::Bytes::from_static(&[0xff, 0])),
            value: None,
            ..r
        });
        assert_eq!(j["key"]["base64"], "/wA=");
        assert!(j["value"].is_null());
        assert_eq!(j["headers"][0]["value"], "x");
    }

    #[test]
    fn from_values() {
        assert_eq!(parse_from("beginning"), Ok(Offset::Earliest));
        assert_eq!(parse_from("end"), Ok(Offset::Latest));
        assert_eq!(parse_from("42"), Ok(Offset::At(42)));
        assert_eq!(parse_from("@1700000000000"), Ok(Offset::Timestamp(1_700_000_000_000)));
        assert_eq!(parse_from("-10"), Ok(Offset::FromEnd(10)));
        assert!(parse_from("-x").is_err());
        assert!(parse_from("--1").is_err());
        assert!(parse_from("@x").is_err());
    }
}
