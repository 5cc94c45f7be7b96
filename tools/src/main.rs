//! `runnel`: administer topics, produce and consume from the command line.
//!
//! Errors are one line on stderr (`runnel: ...`) and a non-zero exit: 1 for failures
//! (unknown topic, broker down), 2 for usage mistakes (bad flags).

mod cluster;
mod consume;
mod group;
mod produce;
mod status;
mod topic;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "runnel",
    version,
    about = "Runnel command-line tool: topics, produce, consume, groups"
)]
struct Cli {
    /// Broker address, HOST:PORT (a HOST alone means port 7117); a cluster's bootstrap
    /// list HOST:PORT,HOST:PORT,... (the first that answers is used)
    #[arg(long, global = true, env = "RUNNEL_BROKER", default_value = runnel_client::DEFAULT_BROKER_ADDR)]
    broker: String,

    /// Speak TLS to the brokers, trusting the CA certificates in this PEM file
    #[arg(long, global = true, env = "RUNNEL_TLS_CA", value_name = "PEM")]
    tls_ca: Option<std::path::PathBuf>,

    /// This client's certificate chain (PEM), for brokers that require one (mutual TLS)
    #[arg(long, global = true, env = "RUNNEL_TLS_CERT", value_name = "PEM", requires_all = ["tls_ca", "tls_key"])]
    tls_cert: Option<std::path::PathBuf>,

    /// The client certificate's private key (PEM)
    #[arg(
        long,
        global = true,
        env = "RUNNEL_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    tls_key: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

/// The connection settings every command uses (TLS from the global flags).
static CLIENT: std::sync::OnceLock<runnel_client::ClientConfig> = std::sync::OnceLock::new();

/// The client settings from the command line, for every connection the CLI opens.
pub(crate) fn client_config() -> runnel_client::ClientConfig {
    CLIENT.get().cloned().unwrap_or_default()
}

fn tls_config(cli: &Cli) -> Result<Option<runnel_client::TlsConfig>, String> {
    let tls = match (&cli.tls_ca, &cli.tls_cert, &cli.tls_key) {
        (None, _, _) => return Ok(None),
        (Some(ca), Some(cert), Some(key)) => runnel_client::TlsConfig::with_client_cert(ca, cert, key),
        (Some(ca), _, _) => runnel_client::TlsConfig::from_ca_file(ca),
    };
    tls.map(Some).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, delete, list and describe topics
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Produce records from stdin or a file, one per line
    Produce(produce::ProduceArgs),
    /// Consume records and print them (alone, or as a member of a group with --group)
    Consume(consume::ConsumeArgs),
    /// List, describe (with lag), reset and delete consumer groups
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// The broker at a glance: uptime, topics with sizes and rates, groups with lag
    Status(status::StatusArgs),
    /// The cluster's brokers: addresses, controller, fenced or not, leaders
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

fn main() -> ExitCode {
    // Output piped into a reader that stops early (`| head`) ends the CLI quietly, as it
    // does any Unix tool, instead of a panic on the failed write.
    // SAFETY: restores the default disposition before any thread starts; no handler runs.
    let _ =
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // clap's message without the usage block: one line, with its suggestion for a
            // typo ("tip: a similar subcommand exists: 'topic'") if it made one.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let tip = text
                .lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix("tip: ").filter(|t| t.contains("similar")));
            match tip {
                Some(tip) => eprintln!("runnel: {}; {tip} (see --help)", first.trim_start_matches("error: ")),
                None => eprintln!("runnel: {} (see --help)", first.trim_start_matches("error: ")),
            }
            return ExitCode::from(2);
        }
    };
    match tls_config(&cli) {
        Ok(tls) => {
            let _ = CLIENT.set(runnel_client::ClientConfig {
                tls,
                ..Default::default()
            });
        }
        Err(e) => {
            eprintln!("runnel: TLS: {e}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runnel: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Topic(cmd) => topic::run(&cli.broker, cmd).await,
            Command::Produce(args) => produce::run(&cli.broker, args).await,
            Command::Consume(args) => consume::run(&cli.broker, args).await,
            Command::Group(cmd) => group::run(&cli.broker, cmd).await,
            Command::Status(args) => status::run(&cli.broker, args).await,
            Command::Cluster(cmd) => cluster::run(&cli.broker, cmd).await,
        }
    });
    match result {
        Ok(()) if INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) => ExitCode::from(EXIT_INTERRUPTED),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runnel: {}", e.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// Set when a command stopped on SIGINT (after finishing cleanly: a group consumer has
/// committed and left): the exit code is then 130, as shells expect of Ctrl-C.
pub(crate) static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Exit code of a process stopped by SIGINT (128 + 2).
const EXIT_INTERRUPTED: u8 = 130;

/// Parses `key=value`.
pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}
