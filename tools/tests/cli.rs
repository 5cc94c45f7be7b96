//! The CLI against an in-process broker: the README tour runs as written, and user
//! mistakes are one line on stderr with a non-zero exit.

mod common;

use std::path::Path;
use std::process::Command;

use common::{broker, fails, runnel};

/// `(command, expected output lines)` from the README's tour block.
fn tour() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let start = readme.find("<!-- tour:begin").expect("tour markers in README");
    let end = readme.find("<!-- tour:end -->").unwrap();
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in readme[start..end].lines().skip(1) {
        if line.starts_with("```") {
            continue;
        }
        match line.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd.to_owned(), Vec::new())),
            None => steps
                .last_mut()
                .expect("output after a command")
                .1
                .push(line.to_owned()),
        }
    }
    assert!(steps.len() >= 5);
    steps
}

/// A line `...` matches the rest; a line ending in `...` matches by prefix.
fn matches(expected: &[String], actual: &str) -> bool {
    let actual: Vec<&str> = actual.lines().collect();
    for (i, e) in expected.iter().enumerate() {
        if e == "..." {
            return true;
        }
        let Some(a) = actual.get(i) else { return false };
        let ok = match e.strip_suffix("...") {
            Some(prefix) => a.starts_with(prefix.trim_end()),
            None => a == e,
        };
        if !ok {
            return false;
        }
    }
    actual.len() == expected.len()
}

#[test]
fn the_readme_tour_runs_as_written() {
    let b = broker();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_runnel")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    for (cmd, expected) in tour() {
        let out = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .env("PATH", &path)
            .env("RUNNEL_BROKER", &b.addr)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "`{cmd}` failed: {stderr}");
        assert!(
            matches(&expected, &stdout),
            "`{cmd}` printed:\n{stdout}\nexpected:\n{}",
            expected.join("\n")
        );
    }
    drop(b.runtime);
}

#[test]
fn mistakes_are_one_line_and_a_nonzero_exit() {
    let b = broker();
    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["consume", "nope", "--exit-at-end"]);
        c
    });
    assert_eq!(code, 1);
    assert!(e.contains("unknown topic \"nope\""), "{e}");

    let (code, e) = fails({
        let mut c = assert_cmd::Command::cargo_bin("runnel").unwrap();
        c.args(["--broker", "127.0.0.1:1", "topic", "list"]);
        c
    });
    assert_eq!(code, 1);
    assert!(e.contains("cannot connect to broker at 127.0.0.1:1"), "{e}");

    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["consume", "x", "--bogus"]);
        c
    });
    assert_eq!(code, 2);
    assert!(e.contains("--bogus"), "{e}");

    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["consume", "x", "--from", "yesterday"]);
        c
    });
    assert_eq!(code, 2);
    assert!(e.contains("yesterday"), "{e}");

    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args([
            "topic",
            "create",
            "t",
            "--partitions",
            "2",
            "--config",
            "retention.ms=soon",
        ]);
        c
    });
    assert_eq!(code, 1);
    assert!(e.contains("retention.ms"), "{e}");

    runnel(&b)
        .args(["topic", "create", "t", "--partitions", "2"])
        .assert()
        .success();
    let (_, e) = fails({
        let mut c = runnel(&b);
        c.args(["topic", "create", "t", "--partitions", "2"]);
        c
    });
    assert!(e.contains("already exists"), "{e}");

    let (_, e) = fails({
        let mut c = runnel(&b);
        c.args(["produce", "t", "--partition", "7"]).write_stdin("x\n");
        c
    });
    assert!(e.contains("partition 7"), "{e}");

    let (_, e) = fails({
        let mut c = runnel(&b);
        c.args(["produce", "t", "--file", "/nonexistent/records.txt"]);
        c
    });
    assert!(e.contains("/nonexistent/records.txt"), "{e}");

    let (_, e) = fails({
        let mut c = runnel(&b);
        c.args(["topic", "create", "bad/name"]);
        c
    });
    assert!(e.contains("invalid topic name"), "{e}");

    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["group", "describe", "nobody"]);
        c
    });
    assert_eq!(code, 1);
    assert!(e.contains("group nobody does not exist"), "{e}");

    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["consume", "t", "--group", "g", "--partition", "0"]);
        c
    });
    assert_eq!(code, 2);
    assert!(e.contains("--partition"), "{e}");

    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["consume", "t", "--group", "g", "--assignor", "roundrobin"]);
        c
    });
    assert_eq!(code, 1);
    assert!(e.contains("unknown assignor"), "{e}");

    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["group", "reset-offsets", "g", "--topic", "t", "--to", "never"]);
        c
    });
    assert_eq!(code, 2);
    assert!(e.contains("never"), "{e}");
}

#[test]
fn produce_from_a_file_then_consume_counts_and_binary_as_json() {
    let b = broker();
    runnel(&b)
        .args(["topic", "create", "f", "--partitions", "1"])
        .assert()
        .success();
    let file = tempfile::NamedTempFile::new().unwrap();
    let lines: String = (0..500).map(|i| format!("k{i}\tv{i}\n")).collect();
    std::fs::write(file.path(), lines).unwrap();
    runnel(&b)
        .args(["produce", "f", "--acks", "leader", "-K", "\t", "--file"])
        .arg(file.path())
        .assert()
        .success();
    let out = runnel(&b)
        .args([
            "consume",
            "f",
            "--from",
            "beginning",
            "--count",
            "500",
            "--format",
            "%k=%s\\n",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 500);
    assert_eq!(text.lines().nth(499), Some("k499=v499"));
    // Binary values come out as base64 in JSON.
    runnel(&b)
        .args(["produce", "f", "--acks", "leader"])
        .write_stdin(vec![0xff, 0xfe, b'\n'])
        .assert()
        .success();
    let out = runnel(&b)
        .args(["consume", "f", "--from", "500", "--exit-at-end", "--json"])
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["value"]["base64"], "//4=");
    assert_eq!(v["offset"], 500);
    assert!(v["key"].is_null());
}

#[test]
fn a_group_consumer_commits_what_it_printed_and_leaves_on_sigterm() {
    a_group_consumer_commits_what_it_printed_and_leaves_on("TERM", 0);
}

/// Ctrl-C: the same clean stop, and the exit code shells expect of it (130).
#[test]
fn a_group_consumer_commits_what_it_printed_and_leaves_on_sigint_exiting_130() {
    a_group_consumer_commits_what_it_printed_and_leaves_on("INT", 130);
}

fn a_group_consumer_commits_what_it_printed_and_leaves_on(signal: &str, exit_code: i32) {
    use std::io::{BufRead, BufReader};
    let b = broker();
    runnel(&b)
        .args(["topic", "create", "g-topic", "--partitions", "3"])
        .assert()
        .success();
    let lines: String = (0..300).map(|i| format!("k{i}:v{i}\n")).collect();
    runnel(&b)
        .args(["produce", "g-topic", "--key-separator", ":", "--acks", "all"])
        .write_stdin(lines)
        .assert()
        .success();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args([
            "consume",
            "g-topic",
            "--group",
            "cli",
            "--from",
            "beginning",
            "--format",
            "%p %o\\n",
        ])
        .env("RUNNEL_BROKER", &b.addr)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = std::collections::BTreeMap::<u32, i64>::new();
    let mut line = String::new();
    for _ in 0..300 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "consumer stopped early");
        let (p, o) = line.trim().split_once(' ').unwrap();
        let next = printed.entry(p.parse().unwrap()).or_default();
        *next = (*next).max(o.parse::<i64>().unwrap() + 1);
    }
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(exit_code), "exit status {exit:?}");

    let d = b
        .runtime
        .block_on(async {
            runnel_client::Admin::connect(&b.addr)
                .await
                .unwrap()
                .describe_group("cli")
                .await
        })
        .unwrap();
    assert!(d.members.is_empty(), "left the group: {d:?}");
    let committed: std::collections::BTreeMap<u32, i64> = d
        .partitions
        .iter()
        .map(|p| (p.partition, p.committed.unwrap()))
        .collect();
    assert_eq!(committed, printed, "committed exactly what it printed");
}

#[test]
fn status_shows_topics_traffic_and_group_lag() {
    let b = broker();
    runnel(&b)
        .args(["topic", "create", "st", "--partitions", "2"])
        .assert()
        .success();
    runnel(&b)
        .args(["produce", "st", "--partition", "0"])
        .write_stdin("a\nb\nc\nd\n")
        .assert()
        .success();
    // A group that read two of the four records: 2 behind.
    runnel(&b)
        .args([
            "group",
            "reset-offsets",
            "lagging",
            "--topic",
            "st",
            "--partition",
            "0",
            "--to",
            "2",
        ])
        .assert()
        .success();
    let out = runnel(&b).args(["status", "--interval-ms", "50"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("runnel-broker 0.1.0 at "), "{text}");
    let topic: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("st "))
        .expect("the topic's line")
        .split_whitespace()
        .collect();
    assert_eq!(topic[1], "2", "partitions: {text}");
    let group: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("lagging "))
        .expect("the group's line")
        .split_whitespace()
        .collect();
    assert_eq!((group[1], group[2], group[3]), ("empty", "0", "2"), "{text}");
    runnel(&b)
        .args(["status", "--interval-ms", "0"])
        .assert()
        .failure()
        .code(2);
}

#[test]
fn topic_alter_adds_partitions_and_never_removes_them() {
    let b = broker();
    runnel(&b)
        .args(["topic", "create", "grow", "--partitions", "2"])
        .assert()
        .success();
    runnel(&b)
        .args(["topic", "alter", "grow", "--partitions", "5"])
        .assert()
        .success()
        .stdout("topic grow now has 5 partition(s)\n");
    runnel(&b)
        .args(["produce", "grow", "--partition", "4"])
        .write_stdin("on the new partition\n")
        .assert()
        .success();
    let listed = runnel(&b).args(["topic", "list"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "grow\t5 partition(s)\n");
    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["topic", "alter", "grow", "--partitions", "3"]);
        c
    });
    assert_eq!(code, 1);
    assert!(e.contains("can only grow"), "{e}");
    let (_, e) = fails({
        let mut c = runnel(&b);
        c.args(["topic", "alter", "missing", "--partitions", "3"]);
        c
    });
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn topic_trim_deletes_records_before_an_offset() {
    let b = broker();
    runnel(&b).args(["topic", "create", "trimmed"]).assert().success();
    let lines: String = (0..10).map(|i| format!("r{i}\n")).collect();
    runnel(&b)
        .args(["produce", "trimmed"])
        .write_stdin(lines)
        .assert()
        .success();
    runnel(&b)
        .args(["topic", "trim", "trimmed", "--partition", "0", "--before", "6"])
        .assert()
        .success()
        .stdout("trimmed partition 0 now starts at offset 6\n");
    let out = runnel(&b)
        .args(["consume", "trimmed", "--from", "beginning", "--exit-at-end"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "r6\nr7\nr8\nr9\n");
    let (code, e) = fails({
        let mut c = runnel(&b);
        c.args(["topic", "trim", "trimmed", "--partition", "0", "--before", "99"]);
        c
    });
    assert_eq!(code, 1);
    assert!(e.contains("out of range"), "{e}");
    runnel(&b)
        .args(["topic", "trim", "trimmed", "-p", "0", "--before", "end"])
        .assert()
        .success()
        .stdout("trimmed partition 0 now starts at offset 10\n");
}
