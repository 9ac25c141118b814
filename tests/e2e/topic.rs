//! `cairn topic ...` through the real binary against a real `cairn serve`.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use common::*;

#[test]
fn topic_commands_round_trip_and_bad_input_names_the_problem() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    let topic = |args: &[&str]| {
        let mut full = vec!["--broker", broker.as_str(), "topic"];
        full.extend_from_slice(args);
        cairn(&full).output().unwrap()
    };

    let created = topic(&[
        "create",
        "orders",
        "--partitions",
        "3",
        "--config",
        "retention.ms=60000",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let described = topic(&["describe", "orders", "--format", "json"]);
    assert!(described.status.success());
    let json: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(json["name"], "orders");
    assert_eq!(json["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(json["partitions"][2]["partition"], 2);
    assert_eq!(json["partitions"][0]["high_watermark"], 0);
    assert_eq!(json["configs"]["retention.ms"], "60000");
    let listed = String::from_utf8_lossy(&topic(&["list"]).stdout).into_owned();
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows, [vec!["NAME", "PARTITIONS"], vec!["orders", "3"]]);

    for (args, expect) in [
        (vec!["create", "bad/name"], "bad/name"),
        (vec!["create", "orders"], "already exists"),
        (
            vec!["create", "t", "--config", "retention.ms=soon"],
            "retention.ms",
        ),
        (vec!["describe", "nope"], "nope"),
        (vec!["add-partitions", "orders", "--to", "2"], "partition"),
    ] {
        let output = topic(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(
            stderr.trim().lines().count() == 1 && stderr.contains(expect),
            "{args:?}: {stderr}"
        );
    }
    assert!(
        topic(&["add-partitions", "orders", "--to", "5"])
            .status
            .success()
    );
    assert!(
        topic(&["alter", "orders", "--config", "segment.bytes=1048576"])
            .status
            .success()
    );
    // Output into a pipe nobody reads (`cairn topic describe orders | head -0`) ends the
    // command quietly, as for any tool in a pipeline: no panic, no complaint.
    for args in [["topic", "list"], ["topic", "describe"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut full = vec!["--broker", broker.as_str()];
        full.extend_from_slice(&args);
        if args[1] == "describe" {
            full.push("orders");
        }
        let output = cairn(&full).stdout(writer).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{args:?} into a closed pipe: {stderr}"
        );
        assert!(stderr.is_empty(), "{args:?} into a closed pipe: {stderr}");
    }
    assert!(topic(&["delete", "orders"]).status.success());
    assert_eq!(
        String::from_utf8_lossy(&topic(&["list"]).stdout).trim(),
        "NAME  PARTITIONS"
    );
    let unreachable = cairn(&["--broker", "127.0.0.1:1", "topic", "list"])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());

    send(&server, libc::SIGTERM);
    assert!(wait_exit(server).status.success());
}

#[test]
fn retention_deletes_old_segments_at_the_check_interval_the_broker_was_given() {
    let data = tempfile::tempdir().unwrap();
    let mut command = serve_on_free_ports(data.path());
    command.args(["--log-retention-check-interval-ms", "1000"]);
    let (server, broker) = start_command(command);
    cli_ok(
        &broker,
        &[
            "topic",
            "create",
            "aging",
            "--config",
            "segment.bytes=1024",
            "--config",
            "retention.ms=500",
        ],
    );
    fill_three_segments(&broker, "aging");
    assert_eq!(log_start_offset(&broker, "aging"), 0);
    // The default check runs every 5 minutes; at 1 s the segments go within a few seconds.
    let start = wait_for_retention(&broker, "aging", std::time::Duration::from_secs(20));
    // How the 15 records fell into batches and segments is the producer's business; the
    // closed segments are gone and the active one (with the last records) stays.
    assert!((1..15).contains(&start), "log start offset {start}");
    stop_broker(server);
}
