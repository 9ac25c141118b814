//! Consumer groups through the real binary: three `cairn consume --group` members share six
//! partitions with no overlap and consume every record exactly once; a second group gets every
//! record too; a restarted broker resumes the group at its committed offsets; a SIGKILLed
//! member's partitions move to the survivor within the session timeout and nothing produced
//! afterwards is missed; a member whose output pipe is closed commits nothing it could not
//! print; a zombie's late commit is refused; bad input gets typed errors.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use cairn_client::{ClientError, ErrorCode};
use cairn_proto::v1::groups_client::GroupsClient;
use cairn_proto::v1::{
    CommitOffsetsRequest, DescribeGroupRequest, FetchOffsetsRequest, HeartbeatRequest,
    OffsetCommit, TopicPartitions,
};
use common::*;
use serde_json::Value;

/// One consumed record: (partition, offset, value).
type Seen = (i64, i64, String);

/// Starts a group member printing JSON lines into `dir/name.out`.
fn member(broker: &str, dir: &Path, name: &str, group: &str, extra: &[&str]) -> Child {
    let out = File::create(dir.join(format!("{name}.out"))).unwrap();
    let err = File::create(dir.join(format!("{name}.err"))).unwrap();
    let mut args = vec![
        "--broker", broker, "consume", "orders", "--group", group, "--from", "earliest",
        "--format", "json",
    ];
    args.extend_from_slice(extra);
    cairn(&args)
        .env("RUST_LOG", "info")
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap()
}

fn seen(dir: &Path, name: &str) -> Vec<Seen> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap();
    text.lines()
        // A SIGKILLed member may leave a torn last line.
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|v| {
            (
                v["partition"].as_i64().unwrap(),
                v["offset"].as_i64().unwrap(),
                v["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn describe(broker: &str, group: &str) -> Value {
    serde_json::from_str(&cli_ok(
        broker,
        &["group", "describe", group, "--format", "json"],
    ))
    .unwrap()
}

/// The group's description, or `None` while it cannot be had yet: members started a moment
/// ago may not have sent their first heartbeat, and the broker rightly answers GroupIdNotFound
/// until one has.
fn describe_once_joined(broker: &str, group: &str) -> Option<Value> {
    let out = cli(broker, &["group", "describe", group, "--format", "json"]);
    if out.status.success() {
        return Some(serde_json::from_slice(&out.stdout).unwrap());
    }
    // Anything else (a refused connection in a loaded moment) is also "not yet": the caller's
    // wait gives up if it never clears, and this line says why.
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.contains("GroupIdNotFound") {
        eprintln!("cairn group describe {group}: {stderr}");
    }
    None
}

/// Partitions per member id, once the group is stable with `members` members.
fn stable_assignment(broker: &str, group: &str, members: usize) -> BTreeMap<String, Vec<i64>> {
    let mut assignment = BTreeMap::new();
    wait_for("a stable group", || {
        let Some(d) = describe_once_joined(broker, group) else {
            return false;
        };
        let listed = d["members"].as_array().unwrap();
        if d["state"] != "stable" || listed.len() != members {
            return false;
        }
        assignment = listed
            .iter()
            .map(|m| {
                let partitions = m["assignments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["partition"].as_i64().unwrap())
                    .collect();
                (m["member_id"].as_str().unwrap().to_string(), partitions)
            })
            .collect();
        true
    });
    assignment
}

fn stop(child: Child) {
    send(&child, libc::SIGTERM);
    let out = wait_exit(child);
    assert!(out.status.success(), "member exit {:?}", out.status);
}

fn values(from: usize, count: usize) -> BTreeSet<String> {
    (from..from + count).map(|i| format!("order-{i}")).collect()
}

#[test]
fn three_members_share_six_partitions_exactly_once_and_a_second_group_gets_everything() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    cli_ok(&broker, &["topic", "create", "orders", "--partitions", "6"]);
    let members: Vec<Child> = ["a", "b", "c"]
        .iter()
        .map(|name| member(&broker, out.path(), name, "inventory", &[]))
        .collect();
    let assignment = stable_assignment(&broker, "inventory", 3);
    let mut all: Vec<i64> = assignment.values().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3, 4, 5], "no overlap, nothing left out");
    assert!(assignment.values().all(|p| p.len() == 2), "{assignment:?}");

    let records = 3000;
    produce_orders(&broker, 0..records, 41);
    let total = || {
        ["a", "b", "c"]
            .iter()
            .map(|n| seen(out.path(), n).len())
            .sum::<usize>()
    };
    wait_for("every record consumed", || total() >= records);
    for child in members {
        stop(child);
    }
    let mut by_position: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    let mut got = BTreeSet::new();
    for name in ["a", "b", "c"] {
        for (partition, offset, value) in seen(out.path(), name) {
            *by_position.entry((partition, offset)).or_default() += 1;
            got.insert(value);
        }
    }
    assert!(
        by_position.values().all(|&n| n == 1),
        "a record was consumed twice"
    );
    assert_eq!(by_position.len(), records);
    assert_eq!(got, values(0, records));
    let d = describe(&broker, "inventory");
    assert_eq!(d["state"], "empty", "clean shutdowns leave the group");
    assert_eq!(
        d["coordinator"],
        broker.as_str(),
        "one node coordinates every group"
    );
    let text = cli_ok(&broker, &["group", "describe", "inventory"]);
    assert!(
        text.starts_with(&format!(
            "group inventory  coordinator {broker}  state empty"
        )),
        "{text}"
    );
    for o in d["offsets"].as_array().unwrap() {
        assert_eq!(o["committed"], o["end"], "{o}");
        assert_eq!(o["lag"], 0);
    }

    // Fan-out: another group reads everything, independently.
    let analytics = cli_ok(
        &broker,
        &[
            "consume",
            "orders",
            "--group",
            "analytics",
            "--from",
            "earliest",
            "--until-end",
            "--format",
            "json",
        ],
    );
    let values_seen: BTreeSet<String> = analytics
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(analytics.lines().count(), records);
    assert_eq!(values_seen, values(0, records));
    let listed = cli_ok(&broker, &["group", "list"]);
    assert!(
        listed.contains("inventory") && listed.contains("analytics"),
        "{listed}"
    );
    stop(server);
}

#[test]
fn a_restarted_broker_resumes_the_group_at_its_committed_offsets() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    cli_ok(&broker, &["topic", "create", "orders", "--partitions", "3"]);
    produce_orders(&broker, 0..900, 41);
    let consume = |broker: &str| {
        cli_ok(
            broker,
            &[
                "consume",
                "orders",
                "--group",
                "billing",
                "--from",
                "earliest",
                "--until-end",
                "--format",
                "json",
            ],
        )
    };
    let first = consume(&broker);
    assert_eq!(first.lines().count(), 900);
    stop(server);

    let (server, broker) = start_broker(data.path());
    produce_orders(&broker, 900..1200, 41);
    let second = consume(&broker);
    let got: BTreeSet<String> = second
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        got,
        values(900, 300),
        "exactly the records produced after the restart"
    );
    assert_eq!(second.lines().count(), 300);
    stop(server);
}

#[test]
fn a_killed_member_loses_its_partitions_and_nothing_produced_afterwards_is_missed() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    cli_ok(&broker, &["topic", "create", "orders", "--partitions", "6"]);
    // Only the victim's session is short: members keep their own timeouts, and a survivor
    // with a 2 s session could itself be expired by a stall of this busy machine.
    let victim = member(
        &broker,
        out.path(),
        "victim",
        "shipping",
        &["--session-timeout-ms", "2000"],
    );
    let survivor = member(&broker, out.path(), "survivor", "shipping", &[]);
    stable_assignment(&broker, "shipping", 2);
    produce_orders(&broker, 0..600, 41);
    let total = || seen(out.path(), "victim").len() + seen(out.path(), "survivor").len();
    wait_for("the first batch consumed", || total() >= 600);

    let mut victim = victim;
    victim.kill().unwrap();
    victim.wait().unwrap();
    produce_orders(&broker, 600..1200, 41);
    let assignment = stable_assignment(&broker, "shipping", 1);
    assert_eq!(
        assignment.values().next().unwrap().len(),
        6,
        "the survivor took over"
    );
    let later = values(600, 600);
    wait_for(
        "the survivor to consume everything produced after the kill",
        || {
            let got: BTreeSet<String> = seen(out.path(), "survivor")
                .into_iter()
                .map(|s| s.2)
                .collect();
            later.is_subset(&got)
        },
    );
    stop(survivor);
    stop(server);
}

#[test]
fn a_member_writing_into_a_closed_pipe_commits_nothing_it_did_not_print() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    cli_ok(&broker, &["topic", "create", "orders", "--partitions", "1"]);
    produce_orders(&broker, 0..10, 41);
    let args = [
        "--broker",
        &broker,
        "consume",
        "orders",
        "--group",
        "audit",
        "--from",
        "earliest",
        "--until-end",
    ];

    // `cairn consume ... | head -0`: the first print fails. The member ends quietly, as tools
    // in a pipeline do, and its close commits only what reached the reader: nothing.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = cairn(&args).stdout(writer).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    // The position `--from earliest` chose is committed, and nothing past it.
    let offsets = describe(&broker, "audit")["offsets"].clone();
    assert_eq!(offsets[0]["committed"], 0, "{offsets}");
    assert_eq!(offsets[0]["lag"], 10, "{offsets}");

    let again = cli_ok(&broker, &args[2..]);
    assert_eq!(
        again.lines().count(),
        10,
        "every record is still the group's to read"
    );
    stop(server);
}

#[test]
fn a_zombie_commit_is_refused_and_bad_input_gets_typed_errors() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    cli_ok(&broker, &["topic", "create", "orders", "--partitions", "1"]);
    produce_orders(&broker, 0..10, 41);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut groups = GroupsClient::connect(format!("http://{broker}"))
            .await
            .unwrap();
        let joined = groups
            .heartbeat(HeartbeatRequest {
                group_id: "payments".into(),
                member_epoch: 0,
                subscribed_topics: vec!["orders".into()],
                // Long enough that a stalled test thread cannot lose the session before the
                // first commits; short enough to wait out.
                session_timeout_ms: 3000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let commit = |offset: i64| CommitOffsetsRequest {
            group_id: "payments".into(),
            member_id: joined.member_id.clone(),
            member_epoch: joined.member_epoch,
            offsets: vec![OffsetCommit {
                topic: "orders".into(),
                partition: 0,
                offset,
                metadata: String::new(),
            }],
        };
        groups.commit_offsets(commit(4)).await.unwrap();
        let code = |status: tonic::Status| ClientError::from(status).code();
        // Past the end, and a partition the member does not own: refused, nothing moves.
        let err = groups.commit_offsets(commit(11)).await.unwrap_err();
        assert_eq!(code(err), Some(ErrorCode::OffsetOutOfRange));
        // Stop heartbeating: the session times out and the member is removed. Describing the
        // group does not refresh the session; polling with commits could move the offset.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let described = groups
                .describe_group(DescribeGroupRequest {
                    group_id: "payments".into(),
                })
                .await
                .unwrap()
                .into_inner();
            if described.members.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "the session never expired");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let err = groups.commit_offsets(commit(9)).await.unwrap_err();
        assert_eq!(
            code(err),
            Some(ErrorCode::UnknownMemberId),
            "the zombie is fenced"
        );
        let committed = groups
            .fetch_offsets(FetchOffsetsRequest {
                group_id: "payments".into(),
                partitions: vec![TopicPartitions {
                    topic: "orders".into(),
                    partitions: vec![0],
                }],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            committed.offsets[0].offset, 4,
            "the refused commits moved nothing"
        );
        let err = groups
            .heartbeat(HeartbeatRequest {
                group_id: String::new(),
                member_epoch: 0,
                subscribed_topics: vec!["orders".into()],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(code(err), Some(ErrorCode::InvalidGroupId));
    });

    // Through the CLI: typed errors naming the cause, and a reset refused while members exist.
    let missing = cli(&broker, &["group", "describe", "nobody"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("unknown group"));
    let bad = cli(
        &broker,
        &[
            "group",
            "reset-offsets",
            "payments",
            "--topic",
            "orders",
            "--to",
            "-x",
        ],
    );
    assert_eq!(bad.status.code(), Some(2), "a usage error: {bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--to \"-x\""));
    let out = tempfile::tempdir().unwrap();
    let active = member(&broker, out.path(), "active", "payments", &[]);
    stable_assignment(&broker, "payments", 1);
    let refused = cli(
        &broker,
        &[
            "group",
            "reset-offsets",
            "payments",
            "--topic",
            "orders",
            "--to",
            "earliest",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("active member"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    stop(active);
    cli_ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "payments",
            "--topic",
            "orders",
            "--to",
            "2",
        ],
    );
    let d = describe(&broker, "payments");
    assert_eq!(d["offsets"][0]["committed"], 2);
    assert_eq!(d["offsets"][0]["lag"], 8);
    let beyond = cli(
        &broker,
        &[
            "group",
            "reset-offsets",
            "payments",
            "--topic",
            "orders",
            "--to",
            "99",
        ],
    );
    assert!(!beyond.status.success());
    assert!(String::from_utf8_lossy(&beyond.stderr).contains("outside"));
    cli_ok(&broker, &["group", "delete", "payments"]);
    assert_eq!(describe(&broker, "payments")["state"], "dead");
    stop(server);
}
