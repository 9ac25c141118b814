//! Disk use through the real binary: a node starts and serves on a 64 MiB disk, an empty
//! partition takes at most 1 MiB, a create too large for the disk is refused like a produce on a
//! full disk (RESOURCE_EXHAUSTED, DISK_FULL) and leaves nothing behind, start-up removes what a
//! crash mid-create left, the longest topic names work, out-of-range sizes are refused, and a
//! benchmark run into a full disk names the full disk while its producer retries.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use cairn_client::{Admin, ClientError, ErrorCode};
use common::tmpfs::TmpfsMount;
use common::*;

fn loud_skip(message: &str) {
    let line = format!("\n*** SKIPPED: {message} ***\n");
    // SAFETY: writing a valid buffer to fd 2, past the harness's capture.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// `cairn --broker BROKER ARGS...`, run to its end.
fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Disk blocks allocated to a directory and everything in it (what `du` reports).
fn allocated_bytes(path: &Path) -> u64 {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    own + std::fs::read_dir(path)
        .unwrap()
        .map(|entry| allocated_bytes(&entry.unwrap().path()))
        .sum::<u64>()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn stop(server: std::process::Child) -> String {
    send(&server, libc::SIGTERM);
    let output = wait_exit(server);
    assert!(
        output.status.success(),
        "cairn serve exited with {}",
        output.status
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_on_a_64_mib_disk_and_refuses_a_create_the_disk_cannot_hold() {
    let mount = tempfile::tempdir().unwrap();
    let Some(_guard) = TmpfsMount::new(mount.path(), "64m") else {
        loud_skip("a_node_serves_on_a_64_mib_disk...: cannot mount a tmpfs (needs root)");
        return;
    };
    let data = mount.path().join("data");
    let (server, broker) = start_broker(&data);
    assert_ok(&cli(
        &broker,
        &["topic", "create", "orders", "--partitions", "3"],
    ));
    let empty = allocated_bytes(&data.join("orders-1"));
    eprintln!("disk per empty partition: {empty} bytes allocated");
    assert!(empty <= 1 << 20, "an empty partition takes {empty} bytes");
    produce_orders(&broker, 0..200, 7);
    assert_eq!(consume_all_orders(&broker).lines().count(), 200);

    let before = names_in(&data);
    let admin = Admin::connect(&broker).await.unwrap();
    let err = admin
        .create_topic("huge", 1024, 0, HashMap::new())
        .await
        .unwrap_err();
    match &err {
        ClientError::Broker {
            code,
            status,
            message,
            ..
        } => {
            assert_eq!(*code, ErrorCode::DiskFull, "{message}");
            assert_eq!(*status, tonic::Code::ResourceExhausted, "{message}");
            assert!(message.contains("1024 partitions"), "{message}");
        }
        other => panic!("expected a DISK_FULL refusal, got {other}"),
    }
    assert_eq!(names_in(&data), before, "the refused create left something");
    // The node still serves, and a create that fits still works.
    assert_ok(&cli(
        &broker,
        &["topic", "create", "payments", "--partitions", "2"],
    ));
    produce_orders(&broker, 200..210, 7);
    assert_eq!(consume_all_orders(&broker).lines().count(), 210);
    stop(server);
}

/// Waits until no directory in `dir` is a deletion still being freed.
fn wait_for_deletions(dir: &Path) {
    let start = std::time::Instant::now();
    while names_in(dir).iter().any(|n| n.ends_with(".deleting")) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            names_in(dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_deleted_topic_frees_its_name_at_once_and_its_files_in_the_background() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    assert_ok(&cli(
        &broker,
        &["topic", "create", "orders", "--partitions", "2"],
    ));
    produce_orders(&broker, 0..50, 5);
    assert_ok(&cli(&broker, &["topic", "delete", "orders"]));
    // The name is free the moment the delete answers, and the new topic starts empty.
    assert_ok(&cli(
        &broker,
        &["topic", "create", "orders", "--partitions", "2"],
    ));
    produce_orders(&broker, 100..105, 5);
    let records = consume_all_orders(&broker);
    assert_eq!(records.lines().count(), 5, "{records}");
    assert!(
        records.lines().all(|l| l.contains("order-10")),
        "only the new topic's records: {records}"
    );
    wait_for_deletions(data.path());
    stop(server);

    // A deletion a stop interrupted is finished at the next start.
    let left = data.path().join("orders-1.1765000000000000000.deleting");
    std::fs::create_dir(&left).unwrap();
    std::fs::write(left.join("00000000000000000000.log"), vec![0_u8; 3 << 20]).unwrap();
    std::fs::write(left.join("00000000000000000000.index"), [0_u8; 64]).unwrap();
    let (server, broker) = start_broker(data.path());
    wait_for_deletions(data.path());
    assert_eq!(consume_all_orders(&broker).lines().count(), 5);
    let log = stop(server);
    assert!(
        log.contains("finishing the deletion of a log directory"),
        "{log}"
    );
}

#[test]
fn start_up_removes_what_a_crash_mid_create_left_and_logs_it() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    assert_ok(&cli(
        &broker,
        &["topic", "create", "orders", "--partitions", "2"],
    ));
    produce_orders(&broker, 0..50, 5);
    stop(server);
    // What a crash between a create's logs and its topic file leaves: partition directories no
    // topic file owns (one past a committed topic's count too), and a temporary topic file.
    for leftover in ["ghost-0", "ghost-1", "orders-2"] {
        let dir = data.path().join(leftover);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), b"").unwrap();
    }
    std::fs::write(
        data.path().join(".00000000deadbeef.topic.tmp"),
        "partitions=2\n",
    )
    .unwrap();

    let (server, broker) = start_broker(data.path());
    let names = names_in(data.path());
    for gone in [
        "ghost-0",
        "ghost-1",
        "orders-2",
        ".00000000deadbeef.topic.tmp",
    ] {
        assert!(
            !names.iter().any(|n| n == gone),
            "{gone} survived: {names:?}"
        );
    }
    assert_eq!(
        consume_all_orders(&broker).lines().count(),
        50,
        "committed data kept"
    );
    assert_ok(&cli(
        &broker,
        &["topic", "create", "ghost", "--partitions", "1"],
    ));
    let log = stop(server);
    let warned = log
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("removed"))
        .count();
    assert_eq!(warned, 4, "one WARN line per removal:\n{log}");
}

#[test]
fn a_249_character_topic_name_works_end_to_end() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    let name = format!("{}-x_9.", "n".repeat(244));
    assert_eq!(name.len(), 249);
    assert_ok(&cli(
        &broker,
        &["topic", "create", &name, "--partitions", "3"],
    ));
    let mut producer = cairn(&["--broker", &broker, "produce", &name])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = (0..30).map(|i| format!("value-{i}\n")).collect();
    producer
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert_ok(&producer.wait_with_output().unwrap());
    stop(server);
    let (server, broker) = start_broker(data.path());
    let consumed = cli(
        &broker,
        &[
            "consume",
            &name,
            "--from",
            "earliest",
            "--until-end",
            "--format",
            "json",
        ],
    );
    assert_ok(&consumed);
    assert_eq!(
        String::from_utf8_lossy(&consumed.stdout).lines().count(),
        30
    );
    assert_ok(&cli(&broker, &["topic", "delete", &name]));
    // The partition directories are renamed away at once and freed in the background.
    let start = std::time::Instant::now();
    while names_in(data.path()).iter().any(|n| n.starts_with("nnn")) {
        let left = names_in(data.path());
        assert!(
            left.iter()
                .all(|n| !n.starts_with("nnn") || n.ends_with(".deleting")),
            "{left:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(20), "{left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(server);
}

#[test]
fn sizes_and_limits_out_of_range_are_refused_with_the_key_named() {
    let data = tempfile::tempdir().unwrap();
    let mut serve = serve_on_free_ports(data.path());
    serve.args(["--max-partitions", "12"]);
    let mut server = serve.spawn().unwrap();
    let ready = wait_ready(&mut server);
    let broker = ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("grpc="))
        .unwrap()
        .to_string();

    let refused = cli(
        &broker,
        &[
            "topic",
            "create",
            "t",
            "--config",
            "segment.index.bytes=2147483647",
        ],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("segment.index.bytes") && stderr.contains("67108864"),
        "{stderr}"
    );
    assert_ok(&cli(
        &broker,
        &[
            "topic",
            "create",
            "t",
            "--config",
            "segment.index.bytes=67108864",
        ],
    ));
    // __consumer_offsets holds 8 of the 12; "t" 1 more.
    let refused = cli(&broker, &["topic", "create", "u", "--partitions", "4"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("limit of 12") && stderr.contains("InvalidPartitions"),
        "{stderr}"
    );
    assert_ok(&cli(
        &broker,
        &["topic", "create", "u", "--partitions", "3"],
    ));
    stop(server);

    for (flag, value, expect) in [
        (
            "--topic-default",
            "segment.index.bytes=2147483647",
            "segment.index.bytes",
        ),
        ("--max-partitions", "0", "--max-partitions"),
    ] {
        let output = serve_on_free_ports(data.path())
            .args([flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flag} {value} was accepted");
        assert!(stderr.contains(expect), "{stderr}");
    }
}

/// A benchmark run into a full disk says why it stalls: while the producer retries refused
/// requests (until its delivery timeout, two minutes), the progress line carries the broker's
/// DISK_FULL refusal instead of a rate falling silently toward zero.
#[test]
fn a_bench_into_a_full_disk_says_the_disk_is_full_while_it_retries() {
    let mount = tempfile::tempdir().unwrap();
    let Some(_guard) = TmpfsMount::new(mount.path(), "64m") else {
        loud_skip("a_bench_into_a_full_disk...: cannot mount a tmpfs (needs root)");
        return;
    };
    let (server, broker) = start_broker(&mount.path().join("data"));
    // 200 MiB of records into a 64 MiB disk.
    let mut bench = cairn(&[
        "--broker",
        &broker,
        "bench",
        "produce",
        "--topic",
        "fills",
        "--records",
        "200000",
        "--records-per-request",
        "100",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = bench.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stderr = stderr;
        let mut seen = Vec::new();
        let mut chunk = [0_u8; 4096];
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&seen);
            if text.contains("requests failing, retried: disk full") {
                let _ = tx.send(text.into_owned());
                return;
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&seen).into_owned());
    });
    let seen = rx.recv_timeout(PATIENCE).unwrap_or_default();
    let _ = bench.kill();
    let _ = bench.wait();
    assert!(
        seen.contains("requests failing, retried: disk full"),
        "the progress line did not name the full disk: {}",
        seen.replace('\r', "\n")
    );
    stop(server);
}
