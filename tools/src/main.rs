//! `runnel`: administer topics, produce and consume from the command line.
//!
//! Errors are one line on stderr (`runnel: ...`) and a non-zero exit: 1 for failures
//! (unknown topic, broker down), 2 for usage mistakes (bad flags).

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
    /// Broker address (host:port)
    #[arg(long, global = true, env = "RUNNEL_BROKER", default_value = runnel_client::DEFAULT_BROKER_ADDR)]
    broker: String,

    #[command(subcommand)]
    command: Command,
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
}

fn main() -> ExitCode {
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
            // clap's message without the usage block: one line.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("runnel: {} (see --help)", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
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
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runnel: {}", e.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// Parses `key=value`.
pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}
