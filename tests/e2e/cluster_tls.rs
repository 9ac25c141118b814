//! End-to-end mTLS between nodes: a three-node cluster whose nodes speak TLS 1.3 to each other,
//! each presenting its certificate and verifying the others' against the client CA, keeps
//! replicating (through a node restart, whose links reconnect over TLS); a node whose
//! certificate another CA signed cannot join it. Certificates are made by the tests.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

mod common;

use common::cluster::{Cluster, replica_bytes, start_cluster_with, wait_replicas_agree};
use common::tls::{CertFiles, TestCa, client_tls_args, serve_tls_args};
use common::*;

/// `cairn --broker BROKER TLS... ARGS` with `input` on stdin.
fn run(broker: &str, tls: &[String], args: &[&str], input: &[u8]) -> Output {
    let mut full: Vec<&str> = tls.iter().map(String::as_str).collect();
    full.extend_from_slice(args);
    cli_with_input(broker, &full, input)
}

/// A three-node cluster with mTLS between nodes and to clients: (cluster, CA, client files).
fn start_tls_cluster(dir: &Path) -> (Cluster, TestCa, CertFiles) {
    let ca = TestCa::new(dir, "ca");
    let node = ca.issue(dir, "node", "cairn-node", 1);
    let client = ca.issue(dir, "client", "admin", 2);
    let serve = serve_tls_args(&node, Some(&ca.cert));
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    let cluster = start_cluster_with(dir, 3, &serve);
    (cluster, ca, client)
}

/// Creates `topic` (replication factor 3), retrying while the cluster forms.
fn create_topic(broker: &str, tls: &[String], topic: &str, partitions: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let args = [
            "topic",
            "create",
            topic,
            "--partitions",
            partitions,
            "--replication-factor",
            "3",
        ];
        let out = run(broker, tls, &args, b"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || stderr.contains("exists") {
            return;
        }
        assert!(Instant::now() < deadline, "topic create: {stderr}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn produce(broker: &str, tls: &[String], topic: &str, range: std::ops::Range<usize>) {
    let lines: String = range.map(|i| format!("k{i}:v{i}\n")).collect();
    let out = run(
        broker,
        tls,
        &["produce", topic, "--key-separator", ":"],
        lines.as_bytes(),
    );
    assert!(
        out.status.success(),
        "produce: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts node 4 with `cert` (trusting `ca`) and asks the cluster through `broker` to add it:
/// (node 4's address, the `cluster add-node` output).
fn add_fourth_node(
    cluster: &mut Cluster,
    dir: &Path,
    cert: &CertFiles,
    ca: &TestCa,
    broker: &str,
    tls: &[String],
) -> (String, Output) {
    let four = cluster.start_joining_node_with(dir, &serve_tls_args(cert, Some(&ca.cert)));
    let address = cluster.addresses[3].clone();
    let node_id = four.to_string();
    let args = [
        "cluster",
        "add-node",
        "--node-id",
        &node_id,
        "--address",
        &address,
    ];
    let added = run(broker, tls, &args, b"");
    (address, added)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_with_mtls_between_nodes_keeps_replicating() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, ca, client) = start_tls_cluster(dir.path());
    let tls = client_tls_args(&ca.cert, Some(&client));
    let broker = cluster.bootstrap_from(0);
    create_topic(&broker, &tls, "orders", "2");
    produce(&broker, &tls, "orders", 0..200);
    wait_replicas_agree(dir.path(), "orders", 2).await;

    // A restarted node's links reconnect over TLS and it catches up.
    cluster.kill(3);
    produce(&cluster.bootstrap_from(0), &tls, "orders", 200..400);
    cluster.restart(3);
    wait_replicas_agree(dir.path(), "orders", 2).await;
    let consumed = run(
        &broker,
        &tls,
        &["consume", "orders", "--from", "earliest", "--until-end"],
        b"",
    );
    let text = String::from_utf8_lossy(&consumed.stdout);
    assert_eq!(text.lines().count(), 400, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_an_untrusted_certificate_cannot_join() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, ca, client) = start_tls_cluster(dir.path());
    let tls = client_tls_args(&ca.cert, Some(&client));
    let broker = cluster.bootstrap_from(0);
    create_topic(&broker, &tls, "orders", "1");
    produce(&broker, &tls, "orders", 0..10);

    // Node 4 trusts the cluster's CA, but its own certificate comes from another one.
    let rogue_ca = TestCa::new(dir.path(), "rogue");
    let rogue = rogue_ca.issue(dir.path(), "rogue", "node-4", 4);
    // Whether the membership change is accepted or not, nothing may flow to or from node 4.
    let (address, _) = add_fourth_node(&mut cluster, dir.path(), &rogue, &ca, &broker, &tls);
    let to_four = client_tls_args(&rogue_ca.cert, Some(&client));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let out = run(
            &address,
            &to_four,
            &["--timeout", "2s", "topic", "list"],
            b"",
        );
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            !listed.contains("orders"),
            "node 4 learned the cluster's topics: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The cluster goes on without it.
    produce(&broker, &tls, "orders", 10..20);
    wait_replicas_agree(dir.path(), "orders", 1).await;
    assert!(replica_bytes(dir.path(), "orders", 4, 0).is_empty());
}

/// The control for the test above: the same steps with a certificate of the cluster's CA, and
/// node 4 learns the cluster's topics. Without it, "never learned them" could pass for any
/// reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_trusted_certificate_joins() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, ca, client) = start_tls_cluster(dir.path());
    let tls = client_tls_args(&ca.cert, Some(&client));
    let broker = cluster.bootstrap_from(0);
    create_topic(&broker, &tls, "orders", "1");
    let trusted = ca.issue(dir.path(), "node-4", "node-4", 4);
    let (address, added) = add_fourth_node(&mut cluster, dir.path(), &trusted, &ca, &broker, &tls);
    assert!(
        added.status.success(),
        "add-node: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = run(&address, &tls, &["--timeout", "2s", "topic", "list"], b"");
        if String::from_utf8_lossy(&out.stdout).contains("orders") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 4 never learned the cluster's topics"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_name_principals_and_acls_govern_a_secured_cluster() {
    // mTLS between nodes and to clients, with authorization on: the nodes' certificate names
    // their principal (User:cairn-node), a super user so that they may call each other; the
    // operator's certificate names User:admin, also a super user; alice has a certificate from
    // the same CA and nothing else.
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let node = ca.issue(dir.path(), "node", "cairn-node", 1);
    let admin = ca.issue(dir.path(), "admin", "admin", 2);
    let alice = ca.issue(dir.path(), "alice", "alice", 3);
    let mut serve = serve_tls_args(&node, Some(&ca.cert));
    serve.extend(
        [
            "--authorization",
            "on",
            "--super-users",
            "User:cairn-node,User:admin",
        ]
        .map(String::from),
    );
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    let cluster = start_cluster_with(dir.path(), 3, &serve);
    let as_admin = client_tls_args(&ca.cert, Some(&admin));
    let as_alice = client_tls_args(&ca.cert, Some(&alice));
    let first = cluster.addresses[0].clone();
    let third = cluster.addresses[2].clone();
    create_topic(&first, &as_admin, "payments", "1");
    produce(&first, &as_admin, "payments", 0..20);
    // The nodes replicate to each other under authorization (their principal is a super user).
    wait_replicas_agree(dir.path(), "payments", 1).await;

    let denied = run(&third, &as_alice, &["produce", "payments"], b"a\n");
    assert!(!denied.status.success(), "alice wrote without an ACL");
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("User:alice") && stderr.to_lowercase().contains("payments"),
        "the denial names the principal and the topic: {stderr}"
    );

    // An ACL added through node 1 lets alice write through node 3 once committed.
    let added = run(
        &first,
        &as_admin,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "write",
            "--topic",
            "payments",
        ],
        b"",
    );
    assert!(
        added.status.success(),
        "acl add: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = run(&third, &as_alice, &["produce", "payments"], b"from-alice\n");
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice still denied on node 3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_replicas_agree(dir.path(), "payments", 1).await;
}
