//! `cairn bench produce` and `cairn bench consume` through the real binary: the JSON report
//! carries every figure a script reads, the records really are in the topic, the baseline is
//! measured in the same run, and bad arguments are one-line errors.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use common::*;

#[test]
fn bench_produce_and_consume_report_what_they_did() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    let bench = |args: &[&str]| {
        let mut full = vec!["--broker", broker.as_str(), "bench"];
        full.extend_from_slice(args);
        cairn(&full).output().unwrap()
    };
    let scratch = tempfile::tempdir_in(data.path()).unwrap();
    let produced = bench(&[
        "produce",
        "--topic",
        "load",
        "--partitions",
        "2",
        "--records",
        "3000",
        "--record-size",
        "100",
        "--records-per-request",
        "50",
        "--baseline-dir",
        scratch.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&produced.stdout).unwrap();
    assert_eq!(report["records"], 3000);
    assert_eq!(report["failed"], 0);
    assert!(report["records_per_sec"].as_f64().unwrap() > 0.0);
    let latency = &report["latency_ms"];
    let (p50, p99, max) = (
        latency["p50"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
        latency["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{latency}");
    assert!(report["baseline"]["raw_fsync_mb_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["baseline"]["ratio_to_log_append"].as_f64().unwrap() > 0.0);
    assert_eq!(
        std::fs::read_dir(scratch.path()).unwrap().count(),
        0,
        "the baseline cleans up its scratch files"
    );

    let described = cairn(&[
        "--broker",
        broker.as_str(),
        "topic",
        "describe",
        "load",
        "--format",
        "json",
    ])
    .output()
    .unwrap();
    let topic: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    let stored: i64 = topic["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["high_watermark"].as_i64().unwrap())
        .sum();
    assert_eq!(stored, 3000, "every acknowledged record is in the topic");

    let consumed = bench(&["consume", "--topic", "load", "--format", "json"]);
    assert!(
        consumed.status.success(),
        "{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&consumed.stdout).unwrap();
    assert_eq!(report["records"], 3000);
    assert_eq!(report["bytes"], 3000 * 100);
    assert!(
        report["ratio_to_full_decode"].is_null(),
        "no baseline asked"
    );

    // With the broker's data directory: the log's own reads of the same ranges, and a ratio.
    let consumed = bench(&[
        "consume",
        "--topic",
        "load",
        "--baseline-dir",
        data.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        consumed.status.success(),
        "{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&consumed.stdout).unwrap();
    assert_eq!(report["records"], 3000);
    assert!(
        report["baseline_full_decode_records_per_sec"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(report["ratio_to_full_decode"].as_f64().unwrap() > 0.0);
    assert!(report["ratio_to_loopback"].as_f64().unwrap() > 0.0);
    assert!(
        !std::fs::read_dir(data.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("cairn-bench-")),
        "the baseline's copies are gone"
    );

    let bad = bench(&["produce", "--records", "0"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.trim().lines().count() == 1 && stderr.contains("--records"),
        "{stderr}"
    );
    let missing = bench(&["consume", "--topic", "nope"]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && stderr.contains("nope"),
        "{stderr}"
    );

    send(&server, libc::SIGTERM);
    assert!(wait_exit(server).status.success());
}
