//! End-to-end checks of `cairn serve` as a process: it prints the ready line, stops cleanly on
//! SIGTERM or SIGINT with status 0, and rejects bad settings with one line on stderr and status
//! 2 before opening anything; `cairn health` reports a serving, an absent and a frozen broker.
//! Each run gets a clean environment and loopback port 0.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::net::TcpListener;
use std::process::Command;

mod common;

use common::*;

/// Runs `command` until its ready line, stops it with SIGTERM, checks it exited 0, and returns
/// its stderr.
fn run_until_sigterm(mut command: std::process::Command) -> String {
    let mut child = command.spawn().unwrap();
    wait_ready(&mut child);
    send(&child, libc::SIGTERM);
    let output = wait_exit(child);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    stderr
}

fn stops_cleanly_on(signal: libc::c_int) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve_on_free_ports(&dir.path().join("data"))
        .spawn()
        .unwrap();
    let ready = wait_ready(&mut child);
    let fields: Vec<&str> = ready.split(' ').collect();
    assert_eq!(fields.len(), 4, "{ready}");
    for (field, prefix) in fields[2..].iter().zip(["grpc=", "http="]) {
        let addr: std::net::SocketAddr = field.strip_prefix(prefix).unwrap().parse().unwrap();
        assert_ne!(addr.port(), 0, "{ready} shows the bound port, not 0");
    }
    send(&child, signal);
    let output = wait_exit(child);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
}

#[test]
fn serve_prints_ready_and_exits_zero_on_sigterm() {
    stops_cleanly_on(libc::SIGTERM);
}

#[test]
fn serve_prints_ready_and_exits_zero_on_sigint() {
    stops_cleanly_on(libc::SIGINT);
}

/// Runs a `cairn serve` expected to fail, and returns its exit status and its one stderr line.
fn failure(mut command: Command) -> (Option<i32>, String) {
    let output = command.output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr:?}");
    assert!(output.stdout.is_empty(), "no ready line expected");
    (output.status.code(), lines[0].to_string())
}

#[test]
fn bad_flag_value_is_one_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut command = serve_on_free_ports(&data_dir);
    command.args(["--node-id", "abc"]);
    let (status, line) = failure(command);
    assert_eq!(status, Some(2));
    assert_eq!(
        line,
        "error: invalid value \"abc\" for --node-id: expected an integer from 1 to 2147483647"
    );
    assert!(!data_dir.exists(), "nothing is created for a bad setting");
}

#[test]
fn bad_variable_is_one_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve_on_free_ports(&dir.path().join("data"));
    command.env("CAIRN_ADVERTISED_ADDRESS", "cairn-1");
    let (status, line) = failure(command);
    assert_eq!(status, Some(2));
    assert!(
        line.starts_with(
            "error: invalid value \"cairn-1\" for environment variable CAIRN_ADVERTISED_ADDRESS: "
        ),
        "{line}"
    );
}

#[test]
fn malformed_config_file_is_one_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cairn.toml");
    std::fs::write(&config, "node_id = 2\ndata_dir = [\n").unwrap();
    let mut command = serve_on_free_ports(&dir.path().join("data"));
    command.env("CAIRN_CONFIG", &config);
    let (status, line) = failure(command);
    assert_eq!(status, Some(2));
    let expected = format!("error: config file {} line 2: ", config.display());
    assert!(line.starts_with(&expected), "{line}");
}

#[test]
fn the_example_config_file_in_deploy_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/cairn.toml");
    // The flags override the example's paths and ports; everything else comes from the file.
    let mut command = serve_on_free_ports(&dir.path().join("data"));
    command.args(["--config", example]).env("RUST_LOG", "info");
    let stderr = run_until_sigterm(command);
    assert!(
        stderr.contains("cairn-1.example.com:7070"),
        "the file's advertised address was used: {stderr}"
    );
    assert!(
        stderr.contains("queued_max_request_bytes=268435456"),
        "the file's request bytes budget was used: {stderr}"
    );
}

#[test]
fn a_producer_id_expiration_under_the_delivery_timeout_is_warned_of() {
    for (ms, warned) in [("1000", true), ("120000", false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut command = serve_on_free_ports(&dir.path().join("data"));
        command.args(["--producer-id-expiration-ms", ms]);
        let stderr = run_until_sigterm(command);
        assert_eq!(
            stderr
                .contains("producer ids expire sooner than a producer's default delivery timeout"),
            warned,
            "{ms} ms: {stderr}"
        );
    }
}

#[test]
fn an_offsets_segment_size_out_of_range_is_refused_naming_the_flag() {
    for bytes in ["10", "4294967296", "lots"] {
        let dir = tempfile::tempdir().unwrap();
        let mut command = serve_on_free_ports(&dir.path().join("data"));
        command.args(["--offsets-topic-segment-bytes", bytes]);
        let (status, line) = failure(command);
        assert_eq!(status, Some(2), "{bytes}: {line}");
        assert!(
            line.contains("--offsets-topic-segment-bytes") && line.contains(bytes),
            "{bytes}: {line}"
        );
    }
}

#[test]
fn missing_config_file_is_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("absent.toml");
    let mut command = serve_on_free_ports(&dir.path().join("data"));
    command.arg("--config").arg(&config);
    let (status, line) = failure(command);
    assert_eq!(status, Some(2));
    assert_eq!(
        line,
        format!(
            "error: cannot read config file {}: No such file or directory (os error 2)",
            config.display()
        )
    );
}

#[test]
fn port_in_use_ends_with_one_error_line_and_status_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let output = cairn(&["serve", "--data-dir", data_dir.to_str().unwrap()])
        .args(["--grpc-addr", &addr, "--http-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "a runtime failure, not a usage error"
    );
    // Info logs come first: the settings were good, so the broker got as far as binding.
    let stderr = String::from_utf8(output.stderr).unwrap();
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    assert!(last.contains(&addr), "{stderr}");
}

#[test]
fn bad_rust_log_is_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = serve_on_free_ports(&dir.path().join("data"));
    command.env("RUST_LOG", "cairn=loud");
    let (status, line) = failure(command);
    assert_eq!(status, Some(2));
    assert!(
        line.starts_with("error: invalid value \"cairn=loud\" for environment variable RUST_LOG"),
        "{line}"
    );
}

#[test]
fn serve_help_has_an_example() {
    let output = cairn(&["serve", "--help"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("Examples:"), "{help}");
}

#[test]
fn health_passes_only_when_every_broker_serves() {
    let dir = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(dir.path());
    let health = |brokers: &str, extra: &[&str]| {
        let mut args = vec!["--broker", brokers, "health"];
        args.extend_from_slice(extra);
        cairn(&args).output().unwrap()
    };

    let out = health(&broker, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{broker} SERVING\n")
    );

    // A port nobody listens on (1, tcpmux: never served here): the check fails and names
    // that broker.
    let closed = "127.0.0.1:1";
    let both = format!("{broker},{closed}");
    let out = health(&both, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report[0]["status"], "SERVING");
    assert_eq!(report[1]["broker"], closed);
    assert_eq!(report[1]["status"], "UNREACHABLE");
    assert!(
        report[1]["error"].as_str().unwrap().contains("refused"),
        "{report}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 of 2 brokers not serving"),
        "{out:?}"
    );

    // A frozen broker still accepts connections (the kernel does that) but never answers:
    // the timeout, not the connect, is what fails it.
    send(&server, libc::SIGSTOP);
    let out = health(&broker, &["--timeout-ms", "300"]);
    send(&server, libc::SIGCONT);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no answer within 300ms"),
        "{out:?}"
    );

    let out = health(&broker, &["--timeout-ms", "0"]);
    assert_eq!(out.status.code(), Some(2), "a usage error: {out:?}");
    send(&server, libc::SIGTERM);
    assert_eq!(wait_exit(server).status.code(), Some(0));
}
