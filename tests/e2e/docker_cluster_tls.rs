//! The secured Compose cluster, end to end and as `deploy/README.md` tells a new user to run it:
//! certificates from `deploy/tls/make-certs.sh`, an image from `deploy/docker/build-image.sh`
//! (of the `cairn` binary under test), and `deploy/docker/compose-cluster-tls.yaml` up with
//! every container healthy. Through the real CLI, configured with the documented `CAIRN_*`
//! variables and the operator's client certificate, the cluster takes a topic with three
//! replicas, acknowledges records with `acks=all` and gives each back exactly once. A client
//! with the CA but no certificate, and a plaintext client, are refused; `/health` answers over
//! https to a client that trusts the CA; and, since authorization is on, a certificate of the
//! same CA whose principal is no super user and has no ACL is denied with a typed
//! authorization error until the operator's ACL lets it read (and only read). That last check
//! is what makes the cluster "secured", not only encrypted.
//!
//! Needs a Docker engine, Compose (the `docker compose` plugin or `docker-compose`) and openssl.
//! Where Docker or Compose is missing the test says so loudly on stderr and passes. It moves the
//! cluster to free loopback ports and a project name of its own, and removes the containers,
//! volumes and image it made whether it passes or not.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::docker::{Project, compose_or_skip, wait_for};
use common::*;
use serde_json::Value;

const TOPIC: &str = "orders";

/// As many records as the README's `seq 1 1000`: enough to reach all three partitions many
/// times over, few enough to keep the test short.
const RECORD_COUNT: usize = 1000;

const COMPOSE_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/docker/compose-cluster-tls.yaml"
);

const MAKE_CERTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/tls/make-certs.sh"
);

/// `cairn ARGS` with only the variables `env` (the README configures the CLI with `export
/// CAIRN_BROKER=... CAIRN_TLS_*=...`), `input` on stdin, run to its end.
fn run(env: &[(&str, String)], args: &[&str], input: &[u8]) -> Output {
    let mut command = cairn(args);
    command.envs(env.iter().map(|(k, v)| (k, v)));
    run_with_input(command, input)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `deploy/tls/make-certs.sh ARGS` under umask 077, which must succeed. A new user's umask is
/// whatever their host set, and the strictest common one must still leave files the
/// container's unprivileged user can read through the bind mount.
fn make_certs(args: &[&str]) {
    let out = Command::new("sh")
        .args(["-c", "umask 077 && exec \"$0\" \"$@\"", MAKE_CERTS])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "make-certs.sh {args:?}: {out:?}");
}

/// The CLI's variables for `brokers` with the CA and, when `client` names one, that client
/// certificate of `certs` (`client.crt` is the operator's, a super user).
fn tls_env(brokers: &str, certs: &Path, client: Option<&str>) -> Vec<(&'static str, String)> {
    let file = |name: &str| certs.join(name).display().to_string();
    let mut env = vec![
        ("CAIRN_BROKER", brokers.to_string()),
        ("CAIRN_TLS_CA", file("ca.crt")),
    ];
    if let Some(client) = client {
        env.push(("CAIRN_TLS_CERT", file(&format!("{client}.crt"))));
        env.push(("CAIRN_TLS_KEY", file(&format!("{client}.key"))));
    }
    env
}

/// Every `order-{i}` value of the topic read from the earliest offset to the end, with how many
/// times each was read.
fn consume_counts(operator: &[(&str, String)]) -> BTreeMap<usize, usize> {
    let args = [
        "consume",
        TOPIC,
        "--from",
        "earliest",
        "--until-end",
        "--format",
        "json",
    ];
    let out = run(operator, &args, b"");
    assert!(out.status.success(), "consume: {}", stderr(&out));
    let mut counts = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        let value = record["value"].as_str().unwrap();
        let i: usize = value.strip_prefix("order-").unwrap().parse().unwrap();
        *counts.entry(i).or_insert(0) += 1;
    }
    counts
}

/// Runs the operator's round trip: a topic with three replicas, `RECORD_COUNT` records with
/// `acks=all`, each read back exactly once.
fn round_trip(operator: &[(&str, String)]) {
    // Healthy nodes serve before their controller group has a leader (a split vote on two
    // busy cores takes a few terms), so the controller is waited for, over TLS like the rest.
    wait_for("a controller, seen over TLS", || {
        let described = run(operator, &["cluster", "describe", "--format", "json"], b"");
        assert!(
            described.status.success(),
            "cluster describe: {}",
            stderr(&described)
        );
        let described: Value = serde_json::from_slice(&described.stdout).unwrap();
        described["controller_id"]
            .as_i64()
            .is_some_and(|controller| (1..=3).contains(&controller))
    });

    // A topic created moments after start can meet a controller still forming: that refusal
    // is retriable, so retry it until the cluster takes the topic.
    let create = [
        "topic",
        "create",
        TOPIC,
        "--partitions",
        "3",
        "--replication-factor",
        "3",
    ];
    wait_for("the cluster to take the topic", || {
        let out = run(operator, &create, b"");
        out.status.success() || stderr(&out).contains("exists")
    });

    let input: String = (0..RECORD_COUNT).map(|i| format!("order-{i}\n")).collect();
    let produced = run(
        operator,
        &["produce", TOPIC, "--acks", "all"],
        input.as_bytes(),
    );
    assert!(produced.status.success(), "produce: {}", stderr(&produced));

    let counts = consume_counts(operator);
    let missing: Vec<usize> = (0..RECORD_COUNT)
        .filter(|i| !counts.contains_key(i))
        .collect();
    let repeated: Vec<(usize, usize)> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, n)| (*i, *n))
        .collect();
    assert!(missing.is_empty(), "acknowledged records lost: {missing:?}");
    assert!(repeated.is_empty(), "records read twice: {repeated:?}");
    assert_eq!(counts.len(), RECORD_COUNT, "records never produced");
}

/// A client that cannot prove itself gets nothing: the command fails and prints no record.
fn assert_refused(who: &str, env: &[(&str, String)]) {
    for args in [
        &["cluster", "describe"][..],
        &["consume", TOPIC, "--from", "earliest", "--until-end"][..],
    ] {
        let out = run(env, args, b"");
        assert!(
            !out.status.success(),
            "{who} was served {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            out.stdout.is_empty(),
            "{who} read {args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        eprintln!("{who} refused, as meant: {}", stderr(&out).trim());
    }
}

/// A certificate the CA signed for `User:alice`, who is no super user and has no ACL: its
/// handshake succeeds (the CA signed it), and every call it makes on the topic is denied with
/// PERMISSION_DENIED's typed code, naming the principal, until an ACL allows one operation.
fn assert_unknown_principal_denied(brokers: &str, certs: &Path) {
    let alice = tls_env(brokers, certs, Some("alice"));
    let produced = run(
        &alice,
        &["produce", TOPIC, "--acks", "all"],
        b"from-alice\n",
    );
    let consumed = run(
        &alice,
        &["consume", TOPIC, "--from", "earliest", "--until-end"],
        b"",
    );
    for (what, out) in [("produce", &produced), ("consume", &consumed)] {
        assert!(!out.status.success(), "alice may {what}");
        assert!(out.stdout.is_empty(), "alice read records");
        let said = stderr(out);
        assert!(
            said.contains("TopicAuthorizationFailed") && said.contains("User:alice"),
            "alice's {what} is denied by type, naming her: {said}"
        );
        eprintln!("alice's {what} denied, as meant: {}", said.trim());
    }

    // The README's next step: the operator allows alice to read, and once the ACL is committed
    // on every node she reads what the operator wrote.
    let operator = tls_env(brokers, certs, Some("client"));
    let allow = [
        "acl",
        "add",
        "--allow-principal",
        "User:alice",
        "--operation",
        "read",
        "--topic",
        TOPIC,
    ];
    let added = run(&operator, &allow, b"");
    assert!(added.status.success(), "acl add: {}", stderr(&added));
    wait_for("alice's read ACL to take effect", || {
        let out = run(
            &alice,
            &["consume", TOPIC, "--from", "earliest", "--until-end"],
            b"",
        );
        out.status.success() && out.stdout.iter().filter(|b| **b == b'\n').count() == RECORD_COUNT
    });
    // Read is all she was given.
    let produced = run(
        &alice,
        &["produce", TOPIC, "--acks", "all"],
        b"from-alice\n",
    );
    assert!(
        !produced.status.success(),
        "alice may write with a read ACL"
    );
}

/// `/health` of every node over https, verified against the CA, as the README's `curl` does it;
/// skipped (loudly) where curl is not installed.
fn assert_health_over_https(project: &Project, ca: &Path) {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("\n*** SKIPPED the https /health check: curl is not installed here. ***\n");
        return;
    }
    for node in 1..=3 {
        let url = format!("https://{}/health", project.http_address(node));
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
            .arg(ca)
            .arg(&url)
            .output()
            .unwrap();
        assert!(out.status.success(), "curl {url}: {}", stderr(&out));
        eprintln!("{url}: {}", String::from_utf8_lossy(&out.stdout).trim());
        // Without the CA, curl must not trust the node: the https is real, not decoration.
        let untrusted = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10"])
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            !untrusted.status.success(),
            "curl trusted {url} without the CA"
        );
    }
}

#[test]
fn the_tls_compose_cluster_serves_its_certificates_and_refuses_everyone_else() {
    let Some(program) = compose_or_skip("the TLS Compose cluster test") else {
        return;
    };
    let started = std::time::Instant::now();
    let dir = TestDir::new();
    // A directory of its own for the bind mount: make-certs.sh makes it world-readable for the
    // container's unprivileged user, which the test directory is not.
    let certs = dir.path().join("certs");
    let certs_arg = certs.to_str().unwrap();
    make_certs(&[certs_arg]);
    make_certs(&["--client", "alice", certs_arg]);

    let project = Project::new(
        program,
        COMPOSE_FILE,
        "cairn-e2e-cluster-tls",
        &[("CAIRN_CERTS", certs_arg)],
    );
    project.build_image();
    project.up_healthy();
    eprintln!("three nodes healthy after {:?}", started.elapsed());
    let brokers = project.all_addresses();

    let operator = tls_env(&brokers, &certs, Some("client"));
    round_trip(&operator);

    assert_refused(
        "a client with the CA but no certificate",
        &tls_env(&brokers, &certs, None),
    );
    assert_refused("a plaintext client", &[("CAIRN_BROKER", brokers.clone())]);
    assert_unknown_principal_denied(&brokers, &certs);
    assert_health_over_https(&project, &certs.join("ca.crt"));

    // Nothing the refused clients tried reached the log.
    assert_eq!(consume_counts(&operator).len(), RECORD_COUNT);
    eprintln!("done after {:?}", started.elapsed());
}
