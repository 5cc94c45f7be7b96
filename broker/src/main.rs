//! `runnel-broker`: the broker daemon.
//!
//! Today it runs the storage engine: it opens (and, after a crash, recovers) the data
//! directory, runs retention and interval flushes in the background, and on SIGINT or
//! SIGTERM shuts down cleanly, leaving the marker that lets the next start skip recovery.
//! The network listener arrives with the broker/protocol issue.

use std::path::PathBuf;

use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use runnel_broker::storage::{LogManager, StorageConfig};
use tracing::{error, info};

#[derive(Debug, Parser)]
#[command(name = "runnel-broker", version, about = "Runnel broker daemon")]
struct Args {
    /// Directory holding topics, partition logs and the metadata log.
    #[arg(long, env = "RUNNEL_DATA_DIR", default_value = "./runnel-data")]
    data_dir: PathBuf,

    /// Threads that run fdatasync for group commit.
    #[arg(long, env = "RUNNEL_FLUSH_THREADS", default_value_t = 2)]
    flush_threads: usize,

    /// How often retention deletes old segments, in milliseconds.
    #[arg(long, env = "RUNNEL_RETENTION_CHECK_INTERVAL_MS", default_value_t = 300_000)]
    retention_check_interval_ms: u64,

    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `runnel_broker=debug`.
    #[arg(long, env = "RUNNEL_LOG", default_value = "info")]
    log: String,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    // Block the stop signals before any thread starts, so every thread inherits the mask
    // and the main thread alone receives them through `wait`.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    if let Err(e) = signals.thread_block() {
        eprintln!("runnel-broker: cannot block signals: {e}");
        std::process::exit(1);
    }

    let mut cfg = StorageConfig::new(&args.data_dir);
    cfg.flush_threads = args.flush_threads.max(1);
    cfg.retention_check_interval_ms = args.retention_check_interval_ms.max(1);
    let storage = match LogManager::open(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("runnel-broker: cannot open {}: {e}", args.data_dir.display());
            std::process::exit(1);
        }
    };
    info!(data_dir = %args.data_dir.display(), topics = storage.topics().len(), "runnel-broker started; storage only, no network listener yet");

    let signal = signals.wait().map_or("unknown".to_owned(), |s| s.to_string());
    info!(%signal, "stopping");
    match storage.shutdown() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            error!(error = %e, "unclean shutdown; the next start will recover");
            std::process::exit(1);
        }
    }
}
