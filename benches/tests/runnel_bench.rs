//! `runnel-bench` runs each mode end to end against an embedded broker and reports what
//! it moved (a smoke test: counts, not speed — speed is for the benchmarks themselves).

fn run(args: &[&str]) -> serde_json::Value {
    let out = assert_cmd::Command::cargo_bin("runnel-bench")
        .unwrap()
        .args(args)
        .args(["--embedded", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_mode_moves_what_it_reports() {
    let p = run(&[
        "produce",
        "--count",
        "5000",
        "--message-size",
        "200",
        "--producers",
        "2",
    ]);
    assert_eq!(p["messages"], 5000);
    assert_eq!(p["latency_ms"]["samples"], 5000);
    assert!(p["msgs_per_sec"].as_f64().unwrap() > 0.0);

    let c = run(&["consume", "--count", "3000", "--consumers", "2"]);
    assert_eq!(c["messages"], 3000);
    assert!(c["mb_per_sec"].as_f64().unwrap() > 0.0);

    // Fixed rate: 2,000 messages at 4,000/s take about half a second of schedule.
    let e = run(&[
        "e2e", "--count", "2000", "--rate", "4000", "--flush", "always", "--acks", "all",
    ]);
    assert_eq!(e["messages"], 2000);
    assert_eq!(e["latency_ms"]["samples"], 2000);
    assert!(e["seconds"].as_f64().unwrap() >= 0.45, "{e}");
    let lat = &e["latency_ms"];
    assert!(lat["p50"].as_f64().unwrap() <= lat["p99"].as_f64().unwrap());
    assert!(lat["p99"].as_f64().unwrap() <= lat["max"].as_f64().unwrap());
}

#[test]
fn bad_arguments_are_one_line() {
    let out = assert_cmd::Command::cargo_bin("runnel-bench")
        .unwrap()
        .args(["e2e", "--embedded", "--message-size", "4"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("at least 8"), "{e}");
}
