//! An operator sees every INTERNAL or UNAVAILABLE answer in the log of the real `cairn serve`:
//! a WARN or ERROR line naming the RPC and the whole cause, which the client only sees cut.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use common::*;

#[test]
fn an_unavailable_answer_is_logged_with_its_rpc_and_cause() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    // A plain file where the partition's directory must go: the create fails in the log layer
    // (a storage error, UNAVAILABLE), the way a broken disk would fail it.
    let blocked = data.path().join("blocked-0");
    std::fs::write(&blocked, b"in the way").unwrap();
    let created = cairn(&["--broker", &broker, "topic", "create", "blocked"])
        .output()
        .unwrap();
    assert!(!created.status.success(), "the create must fail");
    let told = String::from_utf8_lossy(&created.stderr);
    assert!(
        told.contains("KAFKA_STORAGE_ERROR") || told.contains("blocked-0"),
        "{told}"
    );

    send(&server, libc::SIGTERM);
    let exit = wait_exit(server);
    let log = String::from_utf8_lossy(&exit.stderr);
    let line = log
        .lines()
        .find(|line| line.contains("answered with an error"))
        .unwrap_or_else(|| panic!("no error answer logged:\n{log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("/cairn.v1.Admin/CreateTopic"), "{line}");
    assert!(line.contains("KAFKA_STORAGE_ERROR"), "{line}");
    assert!(
        line.contains(blocked.to_str().unwrap()),
        "the cause names the path: {line}"
    );
    assert!(exit.status.success(), "{:?}", exit.status);
}
