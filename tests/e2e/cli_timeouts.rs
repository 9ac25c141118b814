//! Deadlines of the client commands, through the real binary: a listener that accepts and never
//! answers, and a broker frozen by SIGSTOP, fail every command within `--timeout` with a line
//! naming the address and the deadline, instead of hanging it; a refused connection names the
//! address tried; a bad deadline is a usage error (exit 2).

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
