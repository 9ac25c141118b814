//! Running the real `cairn` binary in tests: a clean environment, free ports, waiting for the
//! ready line, signals, and collecting the exit.

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of these helpers"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure here is a failed test"
)]

pub mod cluster;
pub mod docker;
pub mod netns;
pub mod placement;
pub mod ports;
pub mod producer_ids;
pub mod tls;
pub mod tmpfs;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long a healthy broker may take to start or stop before the test gives up (not a timing
/// assertion: it only keeps a broken build from hanging the suite).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// `cairn ARGS` with an empty environment, so a developer's `CAIRN_*` cannot leak in.
pub fn cairn(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    command.args(args).env_clear();
    command
}

pub fn serve_on_free_ports(data_dir: &Path) -> Command {
    let data_dir = data_dir.to_str().unwrap();
    let mut command = cairn(&[
        "serve",
        "--data-dir",
        data_dir,
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// Waits for the ready line on the child's stdout and returns it.
pub fn wait_ready(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("cairn ready ") => return line,
            Ok(_) => continue,
            Err(err) => {
                let _ = child.kill();
                panic!("no ready line: {err}");
            }
        }
    }
}

pub fn send(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid; it touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
}

/// Waits for the child to exit and returns its output (stdout was taken by [`wait_ready`]).
pub fn wait_exit(mut child: Child) -> Output {
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cairn serve did not exit after the signal");
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The value after `key` (such as `grpc=`) in the ready line; the line must have it.
pub fn ready_field(ready: &str, key: &str) -> String {
    ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap()
        .to_string()
}

/// Spawns `command` (a `cairn serve`, as from [`serve_on_free_ports`]), waits until it is ready,
/// and returns the child and its gRPC address (`host:port`).
pub fn start_command(mut command: Command) -> (Child, String) {
    let mut child = command.spawn().unwrap();
    let ready = wait_ready(&mut child);
    (child, ready_field(&ready, "grpc="))
}

/// Starts `cairn serve` on free loopback ports over `data_dir`, waits until it is ready, and
/// returns the child and its gRPC address (`host:port`).
pub fn start_broker(data_dir: &Path) -> (Child, String) {
    start_command(serve_on_free_ports(data_dir))
}

/// Stops a broker from [`start_broker`] with SIGTERM; it must exit cleanly.
pub fn stop_broker(server: Child) {
    send(&server, libc::SIGTERM);
    assert!(wait_exit(server).status.success());
}

/// `cairn --broker BROKER ARGS` run to its end, with nothing on stdin.
pub fn cli(broker: &str, args: &[&str]) -> Output {
    let mut full = vec!["--broker", broker];
    full.extend_from_slice(args);
    cairn(&full).output().unwrap()
}

/// `cairn --broker BROKER ARGS` with `input` on stdin, run to its end.
pub fn cli_with_input(broker: &str, args: &[&str], input: &[u8]) -> Output {
    let mut full = vec!["--broker", broker];
    full.extend_from_slice(args);
    run_with_input(cairn(&full), input)
}

/// `command` (a `cairn` invocation) with `input` on stdin, run to its end.
pub fn run_with_input(mut command: Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may fail before it reads stdin; a closed pipe is fine then.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

/// [`cli`] that must succeed; its stdout.
pub fn cli_ok(broker: &str, args: &[&str]) -> String {
    let out = cli(broker, args);
    assert!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// As [`cli_ok`], for a command sent to a cluster that may still be forming: retried while
/// it is refused with `BrokerNotAvailable` (the controller not yet bootstrapped), within
/// [`PATIENCE`].
pub fn cli_ok_once_formed(broker: &str, args: &[&str]) -> String {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let out = cli(broker, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return String::from_utf8(out.stdout).unwrap();
        }
        assert!(
            stderr.contains("BrokerNotAvailable") && std::time::Instant::now() < deadline,
            "cairn {args:?}: {stderr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `cairn produce orders --key-separator :` of the lines `customer-{i % customers}:order-{i}`
/// for `i` in `range`, through the broker at `broker`; the command must succeed.
pub fn produce_orders(broker: &str, range: std::ops::Range<usize>, customers: usize) {
    let input: String = range
        .map(|i| format!("customer-{}:order-{i}\n", i % customers))
        .collect();
    let mut child = cairn(&[
        "--broker",
        broker,
        "produce",
        "orders",
        "--key-separator",
        ":",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cairn consume orders --from earliest --until-end --format json` through the broker at
/// `broker`: every record of the topic, one JSON line each; the command must succeed.
pub fn consume_all_orders(broker: &str) -> String {
    let out = cairn(&[
        "--broker",
        broker,
        "consume",
        "orders",
        "--from",
        "earliest",
        "--until-end",
        "--format",
        "json",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of the one sample of `series` (a name with its labels, or a bare name) in a
/// Prometheus text body, or `None` when there is none; more than one fails the test.
pub fn metric_sample(body: &str, series: &str) -> Option<f64> {
    let prefix = format!("{series} ");
    let values: Vec<f64> = body
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.parse().unwrap())
        .collect();
    assert!(
        values.len() <= 1,
        "more than one {series} sample in:\n{body}"
    );
    values.first().copied()
}

/// A test's scratch directory: removed when dropped, unless `CAIRN_KEEP_TEST_DIR` is set, in
/// which case it is kept from the start (a failing assertion must not delete the node logs a
/// developer needs to read) and its path is printed.
pub struct TestDir {
    path: std::path::PathBuf,
    _removed_on_drop: Option<tempfile::TempDir>,
}

impl TestDir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        if std::env::var_os("CAIRN_KEEP_TEST_DIR").is_some() {
            let path = dir.keep();
            println!("test directory kept: {}", path.display());
            Self {
                path,
                _removed_on_drop: None,
            }
        } else {
            Self {
                path: dir.path().to_owned(),
                _removed_on_drop: Some(dir),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `cairn consume TOPIC --from earliest --until-end --format json` through `brokers`: the
/// JSON lines it printed (it must succeed).
pub fn consume_json_with_cli(brokers: &str, topic: &str) -> String {
    let out = cairn(&[
        "--broker",
        brokers,
        "consume",
        topic,
        "--from",
        "earliest",
        "--until-end",
        "--format",
        "json",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "consume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Where a segment file's batches end: the active segment's file is reserved ahead of its
/// data (zeros past the end, `segments-format.md` §7), and how far ahead depends on when the
/// copy last closed or recovered, which replicas need not share.
pub fn segment_data_end(segment: &[u8]) -> usize {
    let mut position = 0;
    while let Some(header) = segment.get(position..position + 12) {
        let length = i32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        let end = position + 12 + length;
        if length == 0 || end > segment.len() {
            break;
        }
        position = end;
    }
    position
}

/// Three `cairn produce` runs of five 300-byte lines into `topic` (created with
/// `segment.bytes=1024`): each run's batch fills a segment of its own, so the first two are
/// closed and retention may delete them (never the active one).
pub fn fill_three_segments(brokers: &str, topic: &str) {
    let lines = format!("{}\n", "x".repeat(300)).repeat(5);
    for _ in 0..3 {
        let out = cli_with_input(brokers, &["produce", topic], lines.as_bytes());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Partition 0's log start offset, as `cairn topic describe` reports it.
pub fn log_start_offset(brokers: &str, topic: &str) -> i64 {
    let described = cli_ok(brokers, &["topic", "describe", topic, "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&described).unwrap();
    json["partitions"][0]["log_start_offset"].as_i64().unwrap()
}

/// Partition 0's log start offset once retention has moved it past 0, polled every 200 ms;
/// fails the test after `patience` (the brokers run a 1 s retention check).
pub fn wait_for_retention(brokers: &str, topic: &str, patience: Duration) -> i64 {
    let deadline = Instant::now() + patience;
    loop {
        let start = log_start_offset(brokers, topic);
        if start != 0 {
            return start;
        }
        assert!(
            Instant::now() < deadline,
            "retention never ran within {patience:?} at a 1 s check interval"
        );
        thread::sleep(Duration::from_millis(200));
    }
}
