//! Users and ACLs in a three-node cluster: they live in the replicated metadata, so a user
//! added through one node authenticates on every node, and an ACL added through one node
//! takes effect on the others once committed.
//!
//! Until node-to-node traffic runs over mTLS (each node then proves its own principal), nodes
//! call each other anonymously, so the cluster's super users include `User:ANONYMOUS` here to
//! let the peer service (ClusterAction) through; alice authenticates by password and has no
//! such rights.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::time::{Duration, Instant};

mod common;

use common::cluster::start_cluster_with;
use common::*;

fn as_alice(broker: &str, file: &str, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut full = vec!["--user", "alice", "--password-file", file];
    full.extend_from_slice(args);
    cli_with_input(broker, &full, input)
}

#[test]
fn an_acl_added_through_one_node_takes_effect_on_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let alice_pw = secrets.path().join("alice");
    std::fs::write(&alice_pw, "alice-pw\n").unwrap();
    let alice_pw = alice_pw.to_str().unwrap();
    let cluster = start_cluster_with(
        dir.path(),
        3,
        &[
            "--authorization",
            "on",
            "--super-users",
            "User:admin,User:ANONYMOUS",
        ],
    );
    let (first, third) = (cluster.addresses[0].clone(), cluster.addresses[2].clone());
    // The cluster forms in the background: the first admin calls retry until it has.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = cli(
            &first,
            &["user", "add", "alice", "--new-password-file", alice_pw],
        );
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "user add never succeeded: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cli_ok(
        &first,
        &["topic", "create", "orders", "--replication-factor", "3"],
    );

    // Alice authenticates on the third node (the user was replicated) and is denied there.
    let denied = as_alice(&third, alice_pw, &["produce", "orders"], b"one\n");
    assert!(!denied.status.success());
    let text = String::from_utf8_lossy(&denied.stderr);
    assert!(text.contains("TopicAuthorizationFailed"), "{text}");

    cli_ok(
        &first,
        &[
            "acl",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "write",
            "--topic",
            "orders",
        ],
    );
    // Committed through the first node; the third applies it within moments.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = as_alice(&third, alice_pw, &["produce", "orders"], b"one\n");
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ACL never took effect on the third node: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let listed = cli_ok(&cluster.addresses[1], &["acl", "list"]);
    assert!(listed.contains("Allow User:alice Write"), "{listed}");
}
