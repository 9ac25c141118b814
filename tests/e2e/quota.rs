//! Quotas through the real binary: `cairn quota set` gives a password user a producer byte
//! rate, and `cairn bench produce` as that user is slowed to the quota (measured over about ten
//! seconds, not above it by more than 10%) without a single failed record, while `/metrics`
//! shows the throttle time under the user's principal. A default consumer byte rate slows
//! `cairn replay` the same way. Bad quota flags are refused by the CLI before anything is sent.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use common::*;

/// The quota: 200 kB/s, so 2 MB takes about ten seconds at the quota.
const PRODUCER_BYTE_RATE: f64 = 200_000.0;

#[test]
fn a_producer_byte_rate_quota_slows_a_producer_to_its_rate_without_errors() {
    let data = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let password = secrets.path().join("alice");
    std::fs::write(&password, "alice-secret-1\n").unwrap();
    let password = password.to_str().unwrap();
    let mut server = serve_on_free_ports(data.path()).spawn().unwrap();
    let ready = wait_ready(&mut server);
    let (broker, http) = (ready_field(&ready, "grpc="), ready_field(&ready, "http="));

    cli_ok(
        &broker,
        &["user", "add", "alice", "--new-password-file", password],
    );
    cli_ok(
        &broker,
        &["topic", "create", "metered", "--partitions", "1"],
    );
    cli_ok(
        &broker,
        &[
            "quota",
            "set",
            "--principal",
            "User:alice",
            "--producer-byte-rate",
            "200000",
        ],
    );
    let listed = cli_ok(&broker, &["quota", "list"]);
    assert!(
        listed.contains("User:alice") && listed.contains("producer_byte_rate=200000"),
        "{listed}"
    );

    let produced = cli(
        &broker,
        &[
            "--user",
            "alice",
            "--password-file",
            password,
            "bench",
            "produce",
            "--topic",
            "metered",
            "--records",
            "2000",
            "--record-size",
            "1000",
            "--records-per-request",
            "20",
            "--format",
            "json",
        ],
    );
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&produced.stdout).unwrap();
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["records"], 2000);
    let (bytes, seconds) = (
        report["bytes"].as_f64().unwrap(),
        report["seconds"].as_f64().unwrap(),
    );
    let rate = bytes / seconds;
    println!(
        "throttled produce: {rate:.0} B/s over {seconds:.1} s against a quota of {PRODUCER_BYTE_RATE:.0} B/s ({:.1}%)",
        100.0 * rate / PRODUCER_BYTE_RATE
    );
    // Not above the quota by more than 10%. The quota counts whole requests, a little more than
    // the record values counted here, so at the quota this reads slightly under it; a slow
    // machine can only read lower, so the lower bound is looser (an unthrottled producer does
    // many times the quota even in a debug build).
    assert!(rate <= PRODUCER_BYTE_RATE * 1.1, "rate {rate:.0} B/s");
    assert!(rate >= PRODUCER_BYTE_RATE * 0.7, "rate {rate:.0} B/s");

    let body = http_get(&http, "/metrics");
    let throttled = metric_sample(
        &body,
        "cairn_quota_throttle_seconds_total{principal=\"User:alice\",kind=\"produce\"}",
    )
    .unwrap_or(0.0);
    println!("cairn_quota_throttle_seconds_total for User:alice: {throttled:.1} s");
    assert!(throttled > 1.0, "{body}");

    // The anonymous principal has no quota: the same load is not throttled.
    let free = cli(
        &broker,
        &[
            "bench",
            "produce",
            "--topic",
            "metered",
            "--records",
            "2000",
            "--record-size",
            "1000",
            "--records-per-request",
            "20",
            "--format",
            "json",
        ],
    );
    assert!(free.status.success());
    let body = http_get(&http, "/metrics");
    assert!(!body.contains("principal=\"User:ANONYMOUS\""), "{body}");

    cli_ok(&broker, &["quota", "remove", "--principal", "User:alice"]);
    assert_eq!(cli_ok(&broker, &["quota", "list"]).trim(), "");
    stop_broker(server);
}

#[test]
fn a_consumer_byte_rate_quota_slows_a_replay_to_its_rate() {
    const CONSUMER_BYTE_RATE: f64 = 500_000.0;
    let data = tempfile::tempdir().unwrap();
    let mut server = serve_on_free_ports(data.path()).spawn().unwrap();
    let ready = wait_ready(&mut server);
    let (broker, http) = (ready_field(&ready, "grpc="), ready_field(&ready, "http="));
    cli_ok(
        &broker,
        &["topic", "create", "history", "--partitions", "1"],
    );
    // 3 MB of record values, written before any quota.
    cli_ok(
        &broker,
        &[
            "bench",
            "produce",
            "--topic",
            "history",
            "--records",
            "3000",
            "--record-size",
            "1000",
            "--format",
            "json",
        ],
    );
    cli_ok(
        &broker,
        &[
            "quota",
            "set",
            "--default",
            "--consumer-byte-rate",
            "500000",
        ],
    );
    let started = std::time::Instant::now();
    let out = cli(&broker, &["replay", "history", "--format", "json"]);
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rate = 3_000_000.0 / seconds;
    println!(
        "throttled replay: {rate:.0} B/s of record values over {seconds:.1} s against a quota of {CONSUMER_BYTE_RATE:.0} B/s ({:.1}%)",
        100.0 * rate / CONSUMER_BYTE_RATE
    );
    // The quota counts answer bytes (values and their framing), so at the quota the values
    // arrive a little under it; a slow machine only reads lower.
    assert!(rate <= CONSUMER_BYTE_RATE * 1.1, "rate {rate:.0} B/s");
    assert!(rate >= CONSUMER_BYTE_RATE * 0.5, "rate {rate:.0} B/s");
    let body = http_get(&http, "/metrics");
    let throttled = metric_sample(
        &body,
        "cairn_quota_throttle_seconds_total{principal=\"User:ANONYMOUS\",kind=\"fetch\"}",
    )
    .unwrap_or(0.0);
    assert!(throttled > 1.0, "{body}");
    stop_broker(server);
}

#[test]
fn bad_quota_flags_are_refused_before_sending() {
    // No broker listens there: every refusal below comes from the CLI itself.
    let broker = "127.0.0.1:9";
    for (args, says) in [
        (vec!["--default", "--request-rate", "0"], "--request-rate"),
        (vec!["--default", "--max-topics", "-3"], "--max-topics"),
        (
            vec!["--default", "--producer-byte-rate", "fast"],
            "--producer-byte-rate",
        ),
        (
            vec!["--principal", "alice", "--request-rate", "1"],
            "--principal",
        ),
        (
            vec!["--principal", "User:a", "--default", "--request-rate", "1"],
            "--default",
        ),
        (vec!["--default"], "at least one limit"),
    ] {
        let mut full = vec!["quota", "set"];
        full.extend_from_slice(&args);
        let out = cli(broker, &full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// `GET path` on the HTTP admin port over a plain TCP connection.
fn http_get(http: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(http).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: cairn\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}
