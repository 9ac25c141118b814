//! Damage stays where it is, through the real binary: one flipped byte in a sealed segment, or a
//! partition whose log will not open, never stops the node. The other partitions and every
//! undamaged offset read normally, the damaged batch answers CORRUPT_MESSAGE, and health and
//! `/metrics` name the partition.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_proto::v1::admin_client::AdminClient;
use cairn_proto::v1::consumer_client::ConsumerClient;
use cairn_proto::v1::producer_client::ProducerClient;
use cairn_proto::v1::{
    CreateTopicRequest, FetchRequest, ProduceRequest, Record, RecordList, produce_request::Payload,
};
use common::*;
use tonic_types::StatusExt;

/// Records per partition; each produce request is one record, so one batch per offset.
const RECORDS: i64 = 120;

/// Spawns a `cairn serve` command, waits for its ready line, and returns the child with its gRPC
/// and HTTP addresses.
fn start_command_with_http(
    mut command: std::process::Command,
) -> (std::process::Child, String, String) {
    let mut child = command.spawn().unwrap();
    let ready = wait_ready(&mut child);
    (
        child,
        ready_field(&ready, "grpc="),
        ready_field(&ready, "http="),
    )
}

fn start(data: &Path) -> (std::process::Child, String, String) {
    start_command_with_http(serve_on_free_ports(data))
}

/// Flips the bits of `mask` in the byte at `position` of `path`.
fn flip_byte(path: &Path, position: usize, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[position] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

async fn create(url: &str, name: &str, partitions: i32) {
    let mut admin = AdminClient::connect(url.to_string()).await.unwrap();
    admin
        .create_topic(CreateTopicRequest {
            name: name.into(),
            partitions,
            // Small segments, so most of the data lies in sealed ones.
            configs: [("segment.bytes".to_string(), "2048".to_string())].into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn produce(url: &str, topic: &str, partition: i32, count: i64) {
    for idx in 0..count {
        let value = format!("{topic}-{partition}-{idx:0>80}");
        let answer = produce_once(url, topic, partition, value.into_bytes()).await;
        assert_eq!(answer, Ok(0), "{topic}-{partition} record {idx}");
    }
}

/// One record of `value` to `topic`/`partition` through a stock client, no retries: the error
/// code of the partition's result (0 when acknowledged) or the call's status code.
async fn produce_once(
    url: &str,
    topic: &str,
    partition: i32,
    value: Vec<u8>,
) -> Result<i32, tonic::Code> {
    let mut producer = ProducerClient::connect(url.to_string()).await.unwrap();
    producer
        .produce(ProduceRequest {
            topic: topic.into(),
            partition: Some(partition),
            payload: Some(Payload::Records(RecordList {
                records: vec![Record {
                    value: Some(value.into()),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        })
        .await
        .map(|answer| answer.into_inner().results[0].error_code)
        .map_err(|status| status.code())
}

/// True when a [`produce_once`] answer is a refusal (the record was not acknowledged).
fn is_refusal(answer: &Result<i32, tonic::Code>) -> bool {
    matches!(answer, Ok(code) if *code != 0) || *answer == Err(tonic::Code::Unavailable)
}

/// Reads one offset: `Ok(value)` or the refusal's code and ErrorInfo reason.
async fn read_at(
    consumer: &mut ConsumerClient<tonic::transport::Channel>,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<String, (tonic::Code, String)> {
    let answer = consumer
        .fetch(FetchRequest {
            topic: topic.into(),
            partition,
            offset,
            max_bytes: 1,
            ..Default::default()
        })
        .await;
    match answer {
        Ok(answer) => {
            let record = answer
                .into_inner()
                .records
                .into_iter()
                .find(|r| r.offset == offset)
                .unwrap();
            Ok(String::from_utf8(record.value.unwrap().to_vec()).unwrap())
        }
        Err(status) => {
            let reason = status
                .get_error_details()
                .error_info()
                .map(|info| info.reason.clone())
                .unwrap_or_default();
            Err((status.code(), reason))
        }
    }
}

fn http_get(http: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(http).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    (code, answer)
}

/// Waits (bounded by [`PATIENCE`]) until `GET path` holds `needle`.
fn wait_for_http(http: &str, path: &str, needle: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, body) = http_get(http, path);
        if body.contains(needle) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never showed {needle:?}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `.log` files of a partition directory, in offset order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

fn cairn_health(grpc: &str) -> std::process::Output {
    cairn(&["health", "--broker", grpc]).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_sealed_segment_stays_in_its_batch() {
    let data = tempfile::tempdir().unwrap();
    let (server, grpc, _) = start(data.path());
    let url = format!("http://{grpc}");
    create(&url, "events", 2).await;
    create(&url, "ledger", 1).await;
    for (topic, partition) in [("events", 0), ("events", 1), ("ledger", 0)] {
        produce(&url, topic, partition, RECORDS).await;
    }
    stop_broker(server);

    // Flip one byte inside the records of the first batch of a sealed segment of events-0 (a
    // byte the CRC covers, past the 61-byte batch header).
    let logs = segments(&data.path().join("events-0"));
    assert!(logs.len() >= 3, "expected sealed segments: {logs:?}");
    let victim = &logs[1];
    let damaged_offset: i64 = victim
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    flip_byte(victim, 70, 0x5a);

    let (server, grpc, http) = start(data.path());
    let url = format!("http://{grpc}");
    let mut consumer = ConsumerClient::connect(url.clone()).await.unwrap();
    // Every other partition reads in full.
    for (topic, partition) in [("events", 1), ("ledger", 0)] {
        for offset in 0..RECORDS {
            let value = read_at(&mut consumer, topic, partition, offset)
                .await
                .unwrap();
            assert!(
                value.starts_with(&format!("{topic}-{partition}-")),
                "{value}"
            );
        }
    }
    // Every undamaged offset of events-0 reads; the damaged one answers CORRUPT_MESSAGE.
    for offset in 0..RECORDS {
        let read = read_at(&mut consumer, "events", 0, offset).await;
        if offset == damaged_offset {
            let (code, reason) = read.unwrap_err();
            assert_eq!(code, tonic::Code::DataLoss);
            assert_eq!(reason, "CORRUPT_MESSAGE");
        } else {
            let value = read.unwrap_or_else(|e| panic!("offset {offset}: {e:?}"));
            assert_eq!(value, format!("events-0-{offset:0>80}"));
        }
    }
    // The partition still takes writes, after the end of what it held.
    produce(&url, "events", 0, 1).await;
    assert_eq!(
        read_at(&mut consumer, "events", 0, RECORDS).await.unwrap(),
        format!("events-0-{:0>80}", 0)
    );

    // Health serves (damage does not stop the node) and names the partition.
    let health = cairn_health(&grpc);
    let text = String::from_utf8_lossy(&health.stdout);
    assert!(health.status.success(), "{health:?}");
    assert!(text.contains("SERVING"), "{text}");
    assert!(text.contains("DAMAGED events-0"), "{text}");
    let (code, body) = http_get(&http, "/health");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("damaged events-0"), "{body}");
    let metrics = wait_for_http(
        &http,
        "/metrics",
        "cairn_partition_unhealthy{topic=\"events\",partition=\"0\",state=\"damaged\"} 1",
    );
    assert!(metrics.contains("cairn_partitions_damaged 1"), "{metrics}");
    assert!(metrics.contains("cairn_partitions_stopped 0"), "{metrics}");
    stop_broker(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_at_rest_is_reported_before_anyone_reads_it() {
    let data = tempfile::tempdir().unwrap();
    let (server, grpc, _) = start(data.path());
    let url = format!("http://{grpc}");
    create(&url, "events", 1).await;
    produce(&url, "events", 0, RECORDS).await;
    stop_broker(server);
    let logs = segments(&data.path().join("events-0"));
    flip_byte(&logs[0], 70, 0x01);

    let (server, _grpc, http) = start(data.path());
    // No read was made: the scrub finds it.
    wait_for_http(
        &http,
        "/metrics",
        "cairn_partition_unhealthy{topic=\"events\",partition=\"0\",state=\"damaged\"} 1",
    );
    stop_broker(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_log_will_not_open_is_stopped_alone() {
    let data = tempfile::tempdir().unwrap();
    let (server, grpc, _) = start(data.path());
    let url = format!("http://{grpc}");
    create(&url, "events", 2).await;
    produce(&url, "events", 0, 10).await;
    produce(&url, "events", 1, 10).await;
    stop_broker(server);
    // Unreadable metadata stops the partition with an operator error; it never deletes data.
    let checkpoint = data.path().join("events-1").join("log-start.checkpoint");
    std::fs::write(&checkpoint, b"not a checkpoint").unwrap();
    let held = segments(&data.path().join("events-1"));

    let (server, grpc, http) = start(data.path());
    let url = format!("http://{grpc}");
    let mut consumer = ConsumerClient::connect(url.clone()).await.unwrap();
    for offset in 0..10 {
        read_at(&mut consumer, "events", 0, offset).await.unwrap();
    }
    let (code, reason) = read_at(&mut consumer, "events", 1, 0).await.unwrap_err();
    assert_eq!(code, tonic::Code::Unavailable);
    assert_eq!(reason, "KAFKA_STORAGE_ERROR");
    let refused = produce_once(&url, "events", 1, Vec::new()).await;
    assert!(
        is_refusal(&refused),
        "a stopped partition took a write: {refused:?}"
    );
    produce(&url, "events", 0, 1).await;

    let health = cairn_health(&grpc);
    let text = String::from_utf8_lossy(&health.stdout);
    assert!(!health.status.success(), "{health:?}");
    assert!(text.contains("NOT_SERVING"), "{text}");
    assert!(text.contains("STOPPED events-1"), "{text}");
    let (code, body) = http_get(&http, "/health");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("stopped events-1"), "{body}");
    let (_, metrics) = http_get(&http, "/metrics");
    assert!(
        metrics.contains(
            "cairn_partition_unhealthy{topic=\"events\",partition=\"1\",state=\"stopped\"} 1"
        ),
        "{metrics}"
    );
    stop_broker(server);
    // Nothing of the stopped partition was deleted.
    assert_eq!(segments(&data.path().join("events-1")), held);
}

/// The path of `name` on `PATH`, if it is installed.
fn installed(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_stops_its_partition_and_turns_health_not_serving() {
    let (Some(fiu_run), Some(fiu_ctrl)) = (installed("fiu-run"), installed("fiu-ctrl")) else {
        eprintln!(
            "\n*** SKIPPED a_failed_fsync_stops_its_partition_and_turns_health_not_serving: \
             libfiu's fiu-run/fiu-ctrl are not installed (Debian package fiu-utils; .ci/run \
             installs it) ***\n"
        );
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let serve = serve_on_free_ports(data.path());
    // The same command under libfiu's POSIX preload, whose fault points a test enables at run
    // time through `fiu-ctrl` (Rust's fdatasync goes through glibc, where the preload sits).
    let mut command = std::process::Command::new(fiu_run);
    command
        .arg("-x")
        .arg(serve.get_program())
        .args(serve.get_args())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let (server, grpc, http) = start_command_with_http(command);
    let url = format!("http://{grpc}");
    create(&url, "events", 2).await;
    assert_eq!(
        produce_once(&url, "events", 0, b"after".to_vec()).await,
        Ok(0)
    );
    assert!(cairn_health(&grpc).status.success());

    let fiu = |command: &str| {
        let status = std::process::Command::new(&fiu_ctrl)
            .args(["-c", command, &server.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "fiu-ctrl -c {command:?} failed");
    };
    fiu("enable name=posix/io/sync/fdatasync");
    let refused = produce_once(&url, "events", 0, b"after".to_vec()).await;
    assert!(
        is_refusal(&refused),
        "an unsynced write was acknowledged: {refused:?}"
    );
    fiu("disable name=posix/io/sync/fdatasync");

    // The poisoned partition never takes a write again (no retried fsync, no ack), the other
    // one does, and health says which is stopped and why.
    let again = produce_once(&url, "events", 0, b"after".to_vec()).await;
    assert!(is_refusal(&again), "{again:?}");
    assert_eq!(
        produce_once(&url, "events", 1, b"after".to_vec()).await,
        Ok(0)
    );
    let deadline = Instant::now() + PATIENCE;
    let text = loop {
        let health = cairn_health(&grpc);
        let text = String::from_utf8_lossy(&health.stdout).to_string();
        if !health.status.success() {
            break text;
        }
        assert!(Instant::now() < deadline, "health stayed SERVING: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.contains("NOT_SERVING"), "{text}");
    assert!(text.contains("STOPPED events-0"), "{text}");
    assert!(text.contains("fdatasync"), "{text}");
    let (code, body) = http_get(&http, "/health");
    assert_eq!(code, 503, "{body}");
    stop_broker(server);
}
