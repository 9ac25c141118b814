//! Deadlines of the client commands, through the real binary: a listener that accepts and never
//! answers, and a broker frozen by SIGSTOP, fail every command within `--timeout` with a line
//! naming the address and the deadline, instead of hanging it; a refused connection names the
//! address tried; a bad deadline is a usage error (exit 2). A consumer that has read rides
//! through a broker restart on the same address, and keeps reading after it.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::net::TcpListener;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;

/// Every client command, as typed after `--broker ADDR --timeout 1s`.
const COMMANDS: &[&[&str]] = &[
    &["topic", "list"],
    &["topic", "describe", "orders"],
    &["topic", "create", "orders"],
    &["cluster", "info"],
    &["consume", "orders", "--from", "earliest"],
    &["consume", "orders", "--group", "g", "--from", "earliest"],
    &["replay", "orders", "--quiet"],
    &["group", "list"],
    &["group", "describe", "g"],
    &[
        "group",
        "reset-offsets",
        "g",
        "--topic",
        "orders",
        "--to",
        "-5",
        "--dry-run",
    ],
    &["produce", "orders"],
];

/// `cairn --broker BROKER --timeout 1s ARGS` with `x\n` on stdin.
fn run_with_deadline(broker: &str, args: &[&str]) -> Output {
    let mut full = vec!["--timeout", "1s"];
    full.extend_from_slice(args);
    cli_with_input(broker, &full, b"x\n")
}

fn assert_deadline_named(broker: &str, args: &[&str], out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains(&format!("no answer from {broker} within 1s")),
        "{args:?}: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
}

#[test]
fn every_command_gives_up_on_a_listener_that_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    // Accept and hold every connection, answering nothing: what a wedged process or a port
    // that is not a Cairn broker looks like from the client.
    let done = Arc::new(AtomicBool::new(false));
    let accepting = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                held.extend(stream.ok());
            }
        })
    };
    for args in COMMANDS {
        let out = run_with_deadline(&address, args);
        assert_deadline_named(&address, args, &out);
    }
    // `health` reports the broker rather than failing alone, and keeps its own default.
    let out = run_with_deadline(&address, &["health"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("UNREACHABLE: no answer within 1s"),
        "{out:?}"
    );
    done.store(true, Ordering::SeqCst);
    // Wake the accept loop so it sees `done`.
    let _ = std::net::TcpStream::connect(&address);
    accepting.join().unwrap();
}

#[test]
fn a_frozen_broker_fails_commands_within_the_deadline_and_serves_again_after() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    let created = cairn(&["--broker", &broker, "topic", "create", "orders"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");

    send(&server, libc::SIGSTOP);
    for args in [
        &["topic", "list"][..],
        &["consume", "orders", "--from", "earliest"],
        &["produce", "orders"],
    ] {
        let out = run_with_deadline(&broker, args);
        assert_deadline_named(&broker, args, &out);
    }
    send(&server, libc::SIGCONT);
    let listed = run_with_deadline(&broker, &["topic", "list"]);
    assert!(listed.status.success(), "{listed:?}");

    stop_broker(server);
}

#[test]
fn a_refused_connection_names_the_address_and_bad_deadlines_are_usage_errors() {
    // Bind and drop: the port is free, so connecting is refused.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    for args in [
        &["topic", "list"][..],
        &["cluster", "info"],
        &["produce", "t"],
    ] {
        let out = run_with_deadline(&closed, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot reach a broker at {closed}")),
            "{args:?}: {stderr}"
        );
    }
    for (flags, why) in [
        (&["--timeout", "0s", "topic", "list"][..], "above zero"),
        (&["--timeout", "soon", "topic", "list"], "not a duration"),
        (
            &["--connect-timeout", "5 days", "topic", "list"],
            "unknown unit",
        ),
        (
            &["health", "--timeout", "1s", "--timeout-ms", "500"],
            "not both",
        ),
    ] {
        let out = cairn(flags).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(why), "{flags:?}: {stderr}");
    }
}

/// `cairn serve` over `data` listening on `grpc`, ready.
fn serve_at(data: &std::path::Path, grpc: &str) -> std::process::Child {
    let mut command = cairn(&[
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--grpc-addr",
        grpc,
        "--http-addr",
        "127.0.0.1:0",
    ]);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    start_command(command).0
}

#[test]
fn a_consumer_that_has_read_rides_through_a_broker_restart() {
    let data = tempfile::tempdir().unwrap();
    let grpc = common::ports::free_address();
    let server = serve_at(data.path(), &grpc);
    cli_ok(&grpc, &["topic", "create", "orders"]);
    let out_dir = tempfile::tempdir().unwrap();
    let spawn_consumer = |name: &str, extra: &[&str]| {
        let mut args = vec!["--broker", &grpc, "consume", "orders", "--from", "earliest"];
        args.extend_from_slice(extra);
        let stdout = std::fs::File::create(out_dir.path().join(format!("{name}.out"))).unwrap();
        let stderr = std::fs::File::create(out_dir.path().join(format!("{name}.err"))).unwrap();
        cairn(&args).stdout(stdout).stderr(stderr).spawn().unwrap()
    };
    let plain = spawn_consumer("plain", &[]);
    let grouped = spawn_consumer("group", &["--group", "g"]);
    let read = |name: &str, ext: &str| {
        std::fs::read_to_string(out_dir.path().join(format!("{name}.{ext}"))).unwrap_or_default()
    };
    let wait_for = |name: &str, lines: &[&str]| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !lines
            .iter()
            .all(|l| read(name, "out").lines().any(|x| x == *l))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} consumer printed {:?}; stderr {:?}",
                read(name, "out"),
                read(name, "err")
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    cli_with_input(&grpc, &["produce", "orders"], b"before\n");
    wait_for("plain", &["before"]);
    wait_for("group", &["before"]);

    // A restart on the same address: both keep polling through it, as a Kafka consumer
    // reconnects, instead of exiting at the first refused connection.
    stop_broker(server);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let server = serve_at(data.path(), &grpc);
    cli_with_input(&grpc, &["produce", "orders"], b"after\n");
    wait_for("plain", &["before", "after"]);
    wait_for("group", &["before", "after"]);
    assert!(
        read("plain", "err").contains("retrying for up to 30 s"),
        "{}",
        read("plain", "err")
    );
    for consumer in [plain, grouped] {
        send(&consumer, libc::SIGINT);
        assert!(wait_exit(consumer).status.success());
    }
    stop_broker(server);
}

/// A bootstrap list moves past an address that takes connections but is not a broker: one
/// that answers HTTP/1.1 (the broker's own metrics port, say) and one that never answers. Each
/// is probed within `--connect-timeout`, and the command runs on the broker after them.
#[test]
fn a_bootstrap_list_moves_past_addresses_that_are_not_brokers() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    cli_ok(&broker, &["topic", "create", "orders"]);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_address = http.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in http.incoming() {
            use std::io::{Read, Write};
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let list = format!("{http_address},{},{broker}", silent.local_addr().unwrap());
    for _ in 0..3 {
        let out = cli_with_input(
            &list,
            &[
                "--connect-timeout",
                "1s",
                "--timeout",
                "10s",
                "produce",
                "orders",
            ],
            b"x\n",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("produced 1 records to orders"), "{stderr}");
    }
    // With only the HTTP address, the error says it may not be a broker's gRPC port (how
    // sure it can be depends on whether the client read the server's 400 before its close).
    let out = cli_with_input(&http_address, &["produce", "orders"], b"x\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not answer as a Cairn broker") || stderr.contains("not a gRPC port"),
        "{stderr}"
    );
    stop_broker(server);
    drop(silent);
}
