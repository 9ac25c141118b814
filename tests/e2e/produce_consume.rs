//! `cairn produce` and `cairn consume` through the real binary: tens of thousands of keyed lines
//! round-trip exactly once, each key in order, each record on the partition Kafka's partitioner
//! picks, offsets dense from 0 per partition; a restarted broker serves exactly the same records.
//! An idempotent producer silent past `--producer-id-expiration-ms` is forgotten, stays
//! forgotten across a restart, and Cairn's own producer carries on under a new id.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::num::NonZeroU32;
use std::process::Stdio;

use common::*;

#[test]
fn keyed_lines_round_trip_in_order_where_kafka_would_put_them() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    let run = |args: &[&str]| {
        let mut full = vec!["--broker", broker.as_str()];
        full.extend_from_slice(args);
        cairn(&full)
    };
    assert!(
        run(&["topic", "create", "orders", "--partitions", "3"])
            .status()
            .unwrap()
            .success()
    );

    let records = 30_000;
    let input: String = (0..records)
        .map(|i| format!("customer-{}:order-{i}\n", i % 37))
        .collect();
    let mut produce = run(&["produce", "orders", "--key-separator", ":"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    produce
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let produced = produce.wait_with_output().unwrap();
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );

    let before_restart = consume_all_orders(&broker);
    let lines: Vec<serde_json::Value> = before_restart
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), records, "exactly once");
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut per_partition: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for line in &lines {
        let key = line["key"].as_str().unwrap().to_string();
        let partition = line["partition"].as_i64().unwrap();
        let expected = cairn_broker::partition_for_key(key.as_bytes(), NonZeroU32::new(3).unwrap());
        assert_eq!(
            partition,
            i64::from(expected),
            "{key} is on the partition Kafka would pick"
        );
        let sequence: u64 = line["value"]
            .as_str()
            .unwrap()
            .trim_start_matches("order-")
            .parse()
            .unwrap();
        per_key.entry(key).or_default().push(sequence);
        per_partition
            .entry(partition)
            .or_default()
            .push(line["offset"].as_i64().unwrap());
    }
    for (key, sequences) in &per_key {
        assert!(
            sequences.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order"
        );
    }
    for offsets in per_partition.values() {
        let mut sorted = offsets.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "dense offsets from 0"
        );
    }

    let bad = run(&["consume", "orders", "--from", "yesterday"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.trim().lines().count() == 1 && stderr.contains("yesterday"),
        "{stderr}"
    );
    let limited = run(&["consume", "orders", "--from", "earliest", "--max", "5"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&limited.stdout).lines().count(), 5);

    send(&server, libc::SIGTERM);
    assert!(wait_exit(server).status.success());

    // A restarted broker serves the same records at the same offsets.
    let (server, broker) = start_broker(data.path());
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    assert_eq!(
        sorted(&consume_all_orders(&broker)),
        sorted(&before_restart)
    );
    send(&server, libc::SIGTERM);
    assert!(wait_exit(server).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_ids_silent_past_their_expiration_are_forgotten_even_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let start = || {
        let mut command = serve_on_free_ports(data.path());
        command.args(["--producer-id-expiration-ms", "1000"]);
        let mut server = command.spawn().unwrap();
        let ready = wait_ready(&mut server);
        let (broker, http) = (ready_field(&ready, "grpc="), ready_field(&ready, "http="));
        (server, broker, http)
    };
    let remembered = |http: &str| {
        let body = common::cluster::scrape_metrics(http).unwrap();
        metric_sample(
            &body,
            "cairn_partition_producer_ids{topic=\"expiring\",partition=\"0\"}",
        )
    };
    let (server, broker, http) = start();
    cli_ok(
        &broker,
        &["topic", "create", "expiring", "--partitions", "1"],
    );
    let written = common::producer_ids::check_expiration(&broker, &broker, "expiring").await;
    let read = consume_json_with_cli(&broker, "expiring");
    assert_eq!(read.lines().count(), written, "{read}");
    assert_eq!(
        remembered(&http),
        Some(2.0),
        "the busy producer and the library's new id; the silent one and the library's first id \
         are forgotten"
    );

    // A clean stop saves the producer state without the forgotten producers; after a restart
    // a producer that was forgotten is still unknown, and nothing written is lost.
    let mut client =
        cairn_proto::v1::producer_client::ProducerClient::connect(format!("http://{broker}"))
            .await
            .unwrap();
    let forgotten = common::producer_ids::issued_id(&mut client).await;
    common::producer_ids::produce_as(&mut client, "expiring", forgotten, 0)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let trigger = common::producer_ids::issued_id(&mut client).await;
    common::producer_ids::produce_as(&mut client, "expiring", trigger, 0)
        .await
        .unwrap();
    drop(client);
    stop_broker(server);
    let (server, broker, http) = start();
    assert_eq!(
        remembered(&http),
        Some(1.0),
        "the close's snapshot held only the producer that wrote last"
    );
    let mut client =
        cairn_proto::v1::producer_client::ProducerClient::connect(format!("http://{broker}"))
            .await
            .unwrap();
    assert_eq!(
        common::producer_ids::produce_as(&mut client, "expiring", forgotten, 1).await,
        Err("UNKNOWN_PRODUCER_ID".to_string())
    );
    let read = consume_json_with_cli(&broker, "expiring");
    assert_eq!(read.lines().count(), written + 2, "{read}");
    stop_broker(server);
}
