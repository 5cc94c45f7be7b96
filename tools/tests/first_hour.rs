//! What a new user meets in the first hour: a wrong port named for what answered there, a
//! typo answered with a suggestion, kcat's `-o -N`, a start offset past the end, records
//! over 1 MiB.

mod common;

use common::{broker, broker_with, fails, runnel};
use runnel_broker::server::ServerConfig;

#[test]
fn a_wrong_port_is_named_for_what_answered_there() {
    let b = broker_with(ServerConfig {
        kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    });
    let metrics = b.metrics_addr.clone().unwrap();
    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["--broker", &metrics, "topic", "list"]);
        c
    });
    assert_eq!(code, 1);
    assert!(e.contains(&metrics), "{e}");
    assert!(e.contains("answered like an HTTP server"), "{e}");
    assert!(e.contains("7117") && e.contains("--broker"), "{e}");
    assert!(!e.contains("1213486160"), "{e}");

    let kafka = b.kafka_addr.clone().unwrap();
    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["--broker", &kafka, "topic", "list"]);
        c
    });
    assert_eq!(code, 1);
    assert!(e.contains("not as a Runnel broker (a Kafka listener?)"), "{e}");
    assert!(e.contains("7117") && e.contains("--broker"), "{e}");

    // The right port still works.
    runnel(&b).args(["topic", "list"]).assert().success();
}

#[test]
fn typos_get_a_suggestion_in_one_line() {
    let b = broker();
    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["topc", "list"]);
        c
    });
    assert_eq!(code, 2);
    assert!(e.contains("'topc'") && e.contains("'topic'"), "{e}");

    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["consume", "t", "--form", "beginning"]);
        c
    });
    assert_eq!(code, 2);
    assert!(e.contains("--from"), "{e}");
}

/// Every argument and option has a help line (`--compression` and `<TOPIC>` had none).
#[test]
fn every_argument_and_option_has_help() {
    let commands: &[&[&str]] = &[
        &["produce"],
        &["consume"],
        &["status"],
        &["topic", "create"],
        &["topic", "alter"],
        &["topic", "delete"],
        &["topic", "list"],
        &["topic", "describe"],
        &["group", "list"],
        &["group", "describe"],
        &["group", "reset-offsets"],
        &["group", "delete"],
    ];
    for cmd in commands {
        let out = assert_cmd::Command::cargo_bin("runnel")
            .unwrap()
            .args(*cmd)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            // `--flag`, `-p, --flag`, `<ARG>`; not a possible value's `- none: ...`.
            let flag = t.starts_with("--") || t.as_bytes().get(1).is_some_and(u8::is_ascii_alphabetic);
            let is_item = ((t.starts_with('-') && flag) || t.starts_with('<')) && line.starts_with("  ");
            if !is_item {
                continue;
            }
            // `  <NAME>  help` or `  -p, --flag <X>  help` on one line, or the help on
            // the next line (long help layout).
            let same_line = t.split("  ").filter(|s| !s.trim().is_empty()).count() > 1;
            let next_line = lines.get(i + 1).is_some_and(|n| {
                let n = n.trim();
                !n.is_empty() && !n.starts_with('-') && !n.starts_with('<')
            });
            assert!(
                same_line || next_line,
                "`runnel {}` has no help for {t:?}:\n{help}",
                cmd.join(" ")
            );
        }
    }
}

#[test]
fn from_minus_n_reads_the_last_n_records() {
    let b = broker();
    runnel(&b).args(["topic", "create", "last-n"]).assert().success();
    let lines: String = (0..10).map(|i| format!("r{i}\n")).collect();
    runnel(&b)
        .args(["produce", "last-n"])
        .write_stdin(lines)
        .assert()
        .success();
    let out = runnel(&b)
        .args(["consume", "last-n", "--from", "-3", "--exit-at-end"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "r7\nr8\nr9\n");
    // More than the log holds: from its start.
    let out = runnel(&b)
        .args(["consume", "last-n", "-o", "-100", "--exit-at-end"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 10);
    // The same for a group's reset.
    runnel(&b)
        .args(["group", "reset-offsets", "g", "--topic", "last-n", "--to", "-4"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "last-n                           0            6",
        ));
}

#[test]
fn a_start_offset_past_the_end_is_reported() {
    let b = broker();
    runnel(&b).args(["topic", "create", "short"]).assert().success();
    runnel(&b)
        .args(["produce", "short"])
        .write_stdin("a\nb\n")
        .assert()
        .success();
    let out = runnel(&b)
        .args(["consume", "short", "--from", "50", "--exit-at-end"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("offset 50 is past the end of short partition 0 (end 2)"),
        "{err}"
    );
}

#[test]
fn records_over_one_mebibyte_go_through_the_cli() {
    let b = broker();
    runnel(&b)
        .args(["topic", "create", "big", "--config", "max.message.bytes=4194304"])
        .assert()
        .success();
    let value = "x".repeat(3 << 20);
    runnel(&b)
        .args(["produce", "big"])
        .write_stdin(format!("{value}\nsmall\n"))
        .assert()
        .success();
    let out = runnel(&b)
        .args([
            "consume",
            "big",
            "--from",
            "beginning",
            "--exit-at-end",
            "--format",
            "%S\\n",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{}\n5\n", 3 << 20));

    // Past the topic's limit: the broker's refusal, in one line.
    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["produce", "big"])
            .write_stdin(format!("{}\n", "y".repeat(5 << 20)));
        c
    });
    assert_eq!(code, 1);
    assert!(e.contains("bytes"), "{e}");
}

/// Output piped into a reader that is gone (`| head -1` after its line; here `| true`,
/// gone before the first write) ends the CLI quietly, as any Unix tool: no panic, no
/// backtrace.
#[test]
fn a_closed_pipe_ends_the_cli_quietly() {
    let b = broker();
    runnel(&b)
        .args(["topic", "create", "piped", "-p", "200"])
        .assert()
        .success();
    let bin = env!("CARGO_BIN_EXE_runnel");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("'{bin}' --broker {} topic describe piped | true", b.addr))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
