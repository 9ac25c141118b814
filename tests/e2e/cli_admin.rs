//! The operator's commands through the real binary: `cluster info`, `topic list` with
//! partition counts, `topic describe` with each config's source and each partition's size on
//! disk, and `group reset-offsets --dry-run` showing old and new offsets without moving them.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn ok(broker: &str, args: &[&str], input: &[u8]) -> String {
    let out = cli_with_input(broker, args, input);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(broker: &str, args: &[&str]) -> Value {
    serde_json::from_str(&ok(broker, args, b"")).unwrap()
}

/// A broker whose topic default for `retention.ms` differs from the built-in one, so each of
/// the three config sources shows.
fn start_broker_with_retention_default(data: &std::path::Path) -> (std::process::Child, String) {
    let mut command: Command = serve_on_free_ports(data);
    command.args(["--topic-default", "retention.ms=3600000"]);
    start_command(command)
}

#[test]
fn cluster_info_topic_list_and_describe_show_what_an_operator_needs() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker_with_retention_default(data.path());
    ok(
        &broker,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "segment.bytes=1048576",
        ],
        b"",
    );
    ok(&broker, &["topic", "create", "audit"], b"");
    ok(
        &broker,
        &["produce", "orders", "--partition", "1"],
        b"a\nbb\nccc\n",
    );

    let info = json(&broker, &["cluster", "info", "--format", "json"]);
    assert_eq!(info["node_id"], 1);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["nodes"][0]["address"], broker.as_str());
    assert_eq!(
        info["topics"],
        serde_json::json!([{"name": "audit", "partitions": 1}, {"name": "orders", "partitions": 3}])
    );
    let text = ok(&broker, &["cluster", "info"], b"");
    assert!(
        text.starts_with(&format!(
            "node 1 at {broker}, cairn {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains("topics: 2 with 4 partitions"), "{text}");

    assert_eq!(
        json(&broker, &["topic", "list", "--format", "json"]),
        serde_json::json!([{"name": "audit", "partitions": 1}, {"name": "orders", "partitions": 3}])
    );
    let internal = json(
        &broker,
        &["topic", "list", "--internal", "--format", "json"],
    );
    assert!(internal.as_array().unwrap().len() >= 2);

    let described = json(
        &broker,
        &["topic", "describe", "orders", "--format", "json"],
    );
    let sources = &described["config_sources"];
    assert_eq!(sources["segment.bytes"], "topic");
    assert_eq!(sources["retention.ms"], "broker");
    assert_eq!(sources["cleanup.policy"], "default");
    assert_eq!(described["configs"]["retention.ms"], "3600000");
    let sizes: Vec<i64> = described["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["size_bytes"].as_i64().unwrap())
        .collect();
    assert_eq!(sizes[0], 0, "an empty partition holds no segment bytes");
    assert_eq!(sizes[2], 0);
    // Three records in one or more batches: at least a batch header (61 bytes) plus the values.
    assert!(sizes[1] >= 61 + 6, "{sizes:?}");
    let on_disk: u64 = std::fs::read_dir(data.path().join("orders-1"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| segment_data_end(&std::fs::read(p).unwrap()) as u64)
        .sum();
    assert_eq!(
        sizes[1] as u64, on_disk,
        "the size is the segment files' batches (the active file is reserved ahead of them)"
    );
    let text = ok(&broker, &["topic", "describe", "orders"], b"");
    assert!(text.contains("segment.bytes=1048576  (topic)"), "{text}");
    assert!(text.contains("retention.ms=3600000  (broker)"), "{text}");
    assert!(text.contains("cleanup.policy=delete  (default)"), "{text}");
    assert!(text.contains(&format!("size {on_disk} bytes")), "{text}");

    // Semantic usage errors exit 2, as clap's own do; a refusal by the broker exits 1.
    for args in [
        &["topic", "alter", "orders"][..],
        &["topic", "create", "x", "--config", "nokey"],
        &["topic", "create", "x", "--partitions", "0"],
        &["topic", "create", "x", "--partitions", "-1"],
        &["topic", "create", "x", "--partitions", "1025"],
        &["topic", "add-partitions", "orders", "--to", "-3"],
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "orders",
            "--to",
            "soon",
        ],
    ] {
        let out = cli_with_input(&broker, args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("use '--"),
            "no advice to quote a number: {stderr}"
        );
    }
    let refused = cli_with_input(&broker, &["topic", "describe", "nope"], b"");
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");

    stop_broker(server);
}

#[test]
fn reset_offsets_dry_run_shows_old_and_new_and_moves_nothing() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    ok(
        &broker,
        &["topic", "create", "orders", "--partitions", "2"],
        b"",
    );
    let mut input = String::new();
    for i in 0..10 {
        input.push_str(&format!("{{\"value\":\"v{i}\",\"partition\":{}}}\n", i % 2));
    }
    ok(
        &broker,
        &["produce", "orders", "--format", "json"],
        input.as_bytes(),
    );
    // The group commits everything: both partitions at 5.
    ok(
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
        b"",
    );
    let committed = |broker: &str| -> Vec<i64> {
        let d = json(
            broker,
            &["group", "describe", "billing", "--format", "json"],
        );
        d["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["committed"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(committed(&broker), [5, 5]);

    let reset = |extra: &[&str]| {
        let mut args = vec![
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "orders",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        json(&broker, &args)
    };
    let planned = reset(&["--to", "-2", "--dry-run"]);
    assert_eq!(
        planned,
        serde_json::json!([
            {"topic": "orders", "partition": 0, "old": 5, "new": 3},
            {"topic": "orders", "partition": 1, "old": 5, "new": 3}
        ])
    );
    assert_eq!(committed(&broker), [5, 5], "a dry run moves nothing");
    let text = ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "orders",
            "--to",
            "earliest",
            "--dry-run",
            "--partition",
            "1",
        ],
        b"",
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["dry", "run:", "nothing", "was", "changed"],
            vec!["TOPIC", "PARTITION", "OLD", "NEW"],
            vec!["orders", "1", "5", "0"]
        ]
    );

    let moved = reset(&["--to", "-2"]);
    assert_eq!(moved, planned, "the reset does what the dry run showed");
    assert_eq!(committed(&broker), [3, 3]);
    let moved = reset(&["--to", "+1", "--partition", "0"]);
    assert_eq!(
        moved,
        serde_json::json!([{"topic": "orders", "partition": 0, "old": 3, "new": 1}])
    );
    let beyond = cli_with_input(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "orders",
            "--to",
            "9",
            "--dry-run",
        ],
        b"",
    );
    let stderr = String::from_utf8_lossy(&beyond.stderr);
    assert_eq!(beyond.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("outside orders/0, which holds offsets 0 to 5"),
        "{stderr}"
    );

    stop_broker(server);
}
