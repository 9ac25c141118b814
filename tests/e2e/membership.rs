//! End-to-end checks of cluster membership as an operator meets it through the real `cairn`
//! binary: a bad `--peers` list is refused with status 2 and one line naming the problem, before
//! anything is opened; a data directory remembers its node id (`node.meta`), so a restart under
//! another id is refused and the data left alone; a replication factor a single node cannot hold
//! is the typed INVALID_REPLICATION_FACTOR; and the client commands take several bootstrap
//! addresses, skipping dead ones. Each run gets a clean environment and loopback ports.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::process::{Command, Stdio};

mod common;

use common::ports::free_address;
use common::*;

/// Runs a `cairn serve` expected to fail; its exit status and its last stderr line (the error;
/// the start-up log may come before it).
fn refused(mut command: Command) -> (Option<i32>, String) {
    let output = command.stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("cairn ready"),
        "it must not serve: {stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default().to_string();
    (output.status.code(), last)
}

#[test]
fn a_bad_peer_list_exits_2_naming_the_problem_before_opening_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    for (flags, named) in [
        (
            &["--node-id", "1", "--peers", "1=127.0.0.1:7001,2"][..],
            "peer entry \"2\": no '='",
        ),
        (
            &[
                "--node-id",
                "1",
                "--peers",
                "1=127.0.0.1:7001,0=127.0.0.1:7002",
            ],
            "node id \"0\"",
        ),
        (
            &[
                "--node-id",
                "1",
                "--peers",
                "1=127.0.0.1:7001,1=127.0.0.1:7002",
            ],
            "node id 1 appears twice",
        ),
        (
            &[
                "--node-id",
                "1",
                "--peers",
                "1=127.0.0.1:7001,2=127.0.0.1:7001",
            ],
            "address 127.0.0.1:7001 appears twice",
        ),
        (
            &[
                "--node-id",
                "3",
                "--peers",
                "1=127.0.0.1:7001,2=127.0.0.1:7002",
            ],
            "this node's id 3 is not in the peer list",
        ),
        (
            &["--peers", "1=127.0.0.1:7001,2=127.0.0.1:7002"],
            "give --node-id",
        ),
    ] {
        let mut command = cairn(&["serve", "--data-dir", data_dir.to_str().unwrap()]);
        command.args(flags);
        let (status, line) = refused(command);
        assert_eq!(status, Some(2), "{flags:?}: {line}");
        assert!(line.starts_with("error: "), "{line}");
        assert!(line.contains(named), "{flags:?}: {line}");
    }
    let mut command = serve_on_free_ports(&data_dir);
    command.args([
        "--node-id",
        "1",
        "--peers",
        "1=127.0.0.1:7001,2=127.0.0.1:7002",
    ]);
    let (status, line) = refused(command);
    assert_eq!(status, Some(2), "{line}");
    assert!(
        line.contains("--grpc-addr 127.0.0.1:0 with --peers") && line.contains("port 0"),
        "{line}"
    );
    assert!(!data_dir.exists(), "a refused start creates nothing");
}

#[test]
fn a_changed_node_id_is_refused_and_the_data_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (server, broker) = start_broker(&data_dir);
    cli_ok(&broker, &["topic", "create", "orders"]);
    stop_broker(server);
    let meta = std::fs::read(data_dir.join("node.meta")).unwrap();
    assert_eq!(
        &meta[..8],
        b"CAIRNNOD",
        "the first start claims the directory as node 1"
    );

    let mut command = serve_on_free_ports(&data_dir);
    command.args(["--node-id", "2"]);
    let (status, line) = refused(command);
    assert_eq!(status, Some(2), "{line}");
    assert!(
        line.contains("node.meta belongs to node 1")
            && line.contains("started as node 2")
            && line.contains(data_dir.to_str().unwrap()),
        "{line}"
    );
    assert_eq!(std::fs::read(data_dir.join("node.meta")).unwrap(), meta);

    // Under its own id it starts, with its data.
    let mut command = serve_on_free_ports(&data_dir);
    command.args(["--node-id", "1"]);
    let (server, broker) = start_command(command);
    assert!(cli_ok(&broker, &["topic", "list"]).contains("orders"));
    stop_broker(server);
}

#[test]
fn a_data_directory_from_before_node_meta_is_adopted_by_a_cluster_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (server, broker) = start_broker(&data_dir);
    cli_ok(&broker, &["topic", "create", "orders"]);
    stop_broker(server);
    // As a broker of an earlier version left it.
    std::fs::remove_file(data_dir.join("node.meta")).unwrap();

    let mut command = serve_on_free_ports(&data_dir);
    command.args(["--node-id", "7"]);
    let (server, broker) = start_command(command);
    assert!(cli_ok(&broker, &["topic", "list"]).contains("orders"));
    let info = cli_ok(&broker, &["cluster", "info", "--format", "json"]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["node_id"], 7);
    stop_broker(server);

    // An unreadable node.meta stops the start, and is left for the operator.
    std::fs::write(data_dir.join("node.meta"), b"not a node.meta").unwrap();
    let (status, line) = refused(serve_on_free_ports(&data_dir));
    assert_eq!(status, Some(1), "{line}");
    assert!(line.contains("node.meta is unreadable"), "{line}");
    assert_eq!(
        std::fs::read(data_dir.join("node.meta")).unwrap(),
        b"not a node.meta"
    );
}

#[test]
fn a_replication_factor_above_one_node_is_invalid_replication_factor() {
    let dir = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(&dir.path().join("data"));
    let out = cli(
        &broker,
        &["topic", "create", "orders", "--replication-factor", "2"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("invalid replication factor 2: the cluster has 1 node")
            && stderr.contains("InvalidReplicationFactor"),
        "{stderr}"
    );
    for bad in ["0", "-1"] {
        let out = cli(
            &broker,
            &["topic", "create", "orders", "--replication-factor", bad],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "a usage error: {stderr}");
        assert!(stderr.contains("at least 1"), "{stderr}");
    }
    cli_ok(
        &broker,
        &["topic", "create", "orders", "--replication-factor", "1"],
    );
    cli_ok(&broker, &["topic", "create", "payments"]);
    stop_broker(server);
}

#[test]
fn client_commands_take_several_bootstrap_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(&dir.path().join("data"));
    let (dead_a, dead_b) = (free_address(), free_address());
    let listed = cli_ok(&format!("{dead_a},{broker}"), &["topic", "list"]);
    assert!(listed.contains("NAME"), "{listed}");
    let out = cli(&format!("{dead_a},{dead_b}"), &["topic", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach a broker at {dead_a} ("))
            && stderr.contains(&format!(", {dead_b} (")),
        "{stderr}"
    );
    stop_broker(server);
}
