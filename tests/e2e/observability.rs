//! What an operator sees of a running broker, through the real binary: after a produce, a
//! group consume and a replay, `/metrics` has every series an operator alerts on (partition
//! size, fsync latency, lag in seconds, Subscribe streams, Admin and Groups calls, rebalances,
//! `process_*`, build info) with plausible values; a deleted topic's series are gone; and with
//! `--log-format json` the log is JSON Lines holding the topic, config and group events.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;

use common::{
    cli_ok, produce_orders, ready_field, send, serve_on_free_ports, wait_exit, wait_ready,
};
use serde_json::Value;

fn scrape(http: &str) -> String {
    let mut stream = TcpStream::connect(http).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: cairn\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// The value of the one sample line for `series`, which must be there.
fn sample(body: &str, series: &str) -> f64 {
    common::metric_sample(body, series)
        .unwrap_or_else(|| panic!("want one {series} sample in:\n{body}"))
}

/// The JSON log lines (every stderr line must be one) that carry `message`.
fn events<'a>(log: &'a [Value], message: &str) -> Vec<&'a Value> {
    log.iter().filter(|e| e["message"] == message).collect()
}

fn read_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect()
}

#[test]
fn metrics_and_json_log_show_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("stderr.log");
    let mut command = serve_on_free_ports(&data);
    command
        .args(["--log-format", "json"])
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let mut child = command.spawn().unwrap();
    let ready = wait_ready(&mut child);
    let addr = |prefix: &str| ready_field(&ready, prefix);
    let (broker, http) = (addr("grpc="), addr("http="));

    cli_ok(&broker, &["topic", "create", "orders", "--partitions", "2"]);
    cli_ok(&broker, &["topic", "create", "audit"]);
    cli_ok(
        &broker,
        &[
            "topic",
            "alter",
            "orders",
            "--config",
            "retention.ms=3600000",
        ],
    );
    produce_orders(&broker, 0..40, 4);
    cli_ok(
        &broker,
        &[
            "consume",
            "orders",
            "--group",
            "billing",
            "--from",
            "earliest",
            "--until-end",
        ],
    );
    // Records the group has not consumed yet: a lag in records and in seconds.
    produce_orders(&broker, 40..50, 4);
    cli_ok(&broker, &["replay", "orders", "--format", "json"]);

    let body = scrape(&http);
    let p0 = "topic=\"orders\",partition=\"0\"";
    let size = sample(&body, &format!("cairn_partition_size_bytes{{{p0}}}"));
    let size_1 = sample(
        &body,
        "cairn_partition_size_bytes{topic=\"orders\",partition=\"1\"}",
    );
    // 50 records of about 20 bytes each, in batches with 61-byte headers.
    assert!(size + size_1 > 50.0 * 20.0, "{size} + {size_1}");
    assert!(size + size_1 < 1e6, "{size} + {size_1}");
    assert_eq!(
        sample(
            &body,
            "cairn_partition_size_bytes{topic=\"audit\",partition=\"0\"}"
        ),
        0.0
    );
    // Every acknowledged produce (flush.policy=always) and the offset commits fsynced.
    let fsyncs = sample(&body, "cairn_log_fsync_seconds_count");
    assert!(fsyncs >= 2.0, "{fsyncs}");
    assert_eq!(
        sample(&body, "cairn_log_fsync_seconds_bucket{le=\"+Inf\"}"),
        fsyncs
    );
    assert_eq!(sample(&body, "cairn_log_fsync_failures_total"), 0.0);
    let billing_lags: Vec<f64> = (0..2)
        .map(|p| {
            let labels = format!("group=\"billing\",topic=\"orders\",partition=\"{p}\"");
            let records = sample(&body, &format!("cairn_group_lag{{{labels}}}"));
            let seconds = sample(&body, &format!("cairn_group_lag_seconds{{{labels}}}"));
            assert!((0.0..3600.0).contains(&seconds), "{labels}: {seconds}");
            if records == 0.0 {
                assert_eq!(seconds, 0.0, "{labels}: caught up but {seconds} s behind");
            }
            records
        })
        .collect();
    assert_eq!(billing_lags.iter().sum::<f64>(), 10.0, "{body}");
    assert!(sample(&body, "cairn_subscribe_streams_opened_total") >= 1.0);
    assert!(sample(&body, "cairn_subscribe_streams_open") >= 0.0);
    assert!(sample(&body, "cairn_subscribe_records_total{topic=\"orders\"}") >= 50.0);
    assert!(sample(&body, "cairn_subscribe_bytes_total{topic=\"orders\"}") > 0.0);
    let creates = "cairn_admin_requests_total{method=\"CreateTopic\",code=\"OK\"}";
    assert_eq!(sample(&body, creates), 2.0);
    let alters = "cairn_admin_requests_total{method=\"AlterConfigs\",code=\"OK\"}";
    assert_eq!(sample(&body, alters), 1.0);
    let heartbeats = "cairn_group_requests_total{method=\"Heartbeat\",code=\"OK\"}";
    assert!(
        sample(&body, heartbeats) >= 2.0,
        "a join and a leave at least"
    );
    // The member's join and its leave each moved the group epoch.
    assert!(sample(&body, "cairn_group_rebalances_total") >= 2.0);
    assert!(sample(&body, "process_resident_memory_bytes") > 1e6);
    assert!(sample(&body, "process_cpu_seconds_total") > 0.0);
    let open_fds = sample(&body, "process_open_fds");
    assert!(open_fds >= 10.0, "{open_fds}");
    assert!(sample(&body, "process_max_fds") >= open_fds);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = sample(&body, "process_start_time_seconds");
    assert!(
        start <= now + 1.0 && start > now - 3600.0,
        "{start} vs {now}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        body.contains(&format!("cairn_build_info{{version=\"{version}\"")),
        "{body}"
    );

    cli_ok(&broker, &["topic", "delete", "orders"]);
    let body = scrape(&http);
    let left: Vec<&str> = body
        .lines()
        .filter(|l| l.contains("topic=\"orders\""))
        .collect();
    assert!(
        left.is_empty(),
        "series of the deleted topic remain: {left:?}"
    );
    assert!(
        body.contains("cairn_partition_size_bytes{topic=\"audit\""),
        "{body}"
    );

    send(&child, libc::SIGTERM);
    let out = wait_exit(child);
    assert!(out.status.success(), "{:?}", out.status);
    let log = read_log(&log_path);
    let created = events(&log, "topic created");
    assert!(
        created
            .iter()
            .any(|e| e["topic"] == "orders" && e["partitions"] == 2),
        "{created:?}"
    );
    assert!(created.iter().all(|e| e["level"] == "INFO"), "{created:?}");
    let altered = events(&log, "topic config changed");
    assert_eq!(altered.len(), 1, "{log:?}");
    let changes = altered[0]["changes"].as_str().unwrap();
    assert!(
        changes.starts_with("retention.ms: 604800000 -> 3600000"),
        "{changes}"
    );
    let joined = events(&log, "group member joined");
    assert_eq!(joined.len(), 1, "{log:?}");
    assert_eq!(joined[0]["group"], "billing");
    assert_eq!(joined[0]["topics"], "orders");
    assert!(!joined[0]["member"].as_str().unwrap().is_empty());
    let rebalanced = events(&log, "group rebalanced");
    assert!(
        rebalanced.iter().any(|e| e["assignment"]
            .as_str()
            .unwrap()
            .contains("[orders-0,orders-1]")),
        "{rebalanced:?}"
    );
    assert_eq!(events(&log, "group member left").len(), 1, "{log:?}");
    assert_eq!(events(&log, "topic deleted").len(), 1, "{log:?}");
}

#[test]
fn an_unknown_log_format_is_a_usage_error_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve_on_free_ports(&dir.path().join("data"));
    command.env("CAIRN_LOG_FORMAT", "xml");
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "error: invalid value \"xml\" for environment variable CAIRN_LOG_FORMAT: expected text or json"
    );
}
