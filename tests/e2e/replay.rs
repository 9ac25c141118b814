//! `cairn replay` through the real binary: `--format json` prints exactly what was produced
//! (the same lines `cairn consume` prints); a checkpoint file makes the next run print only
//! what is new; a malformed checkpoint file is refused naming the file and the line; SIGTERM
//! during `--follow` writes the checkpoint and exits cleanly.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// `cairn --broker BROKER ARGS`.
fn at(broker: &str, args: &[&str]) -> Command {
    let mut full = vec!["--broker", broker];
    full.extend_from_slice(args);
    cairn(&full)
}

/// Runs `args`, which must succeed, and returns stdout's lines and stderr.
fn lines_of(mut command: Command) -> (Vec<String>, String) {
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    (stdout.lines().map(str::to_string).collect(), stderr)
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

fn values(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let json: serde_json::Value = serde_json::from_str(l).unwrap();
            json["value"].as_str().unwrap().to_string()
        })
        .collect()
}

fn checkpoint_offsets(path: &Path) -> BTreeMap<i64, i64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("cairn-replay-checkpoint v1"));
    assert_eq!(lines.next(), Some("topic orders"));
    lines
        .map(|l| {
            let (p, o) = l.split_once(' ').unwrap();
            (p.parse().unwrap(), o.parse().unwrap())
        })
        .collect()
}

#[test]
fn replay_prints_what_was_produced_and_a_checkpoint_resumes_after_it() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    let create = at(&broker, &["topic", "create", "orders", "--partitions", "3"])
        .status()
        .unwrap();
    assert!(create.success());
    produce_orders(&broker, 0..5_000, 37);

    // The same lines as `cairn consume` prints, each produced record once.
    let (replayed, stderr) = lines_of(at(&broker, &["replay", "orders", "--format", "json"]));
    assert!(stderr.contains("replayed 5000 records"), "{stderr}");
    let (consumed, _) = lines_of(at(
        &broker,
        &[
            "consume",
            "orders",
            "--from",
            "earliest",
            "--until-end",
            "--format",
            "json",
        ],
    ));
    assert_eq!(sorted(replayed.clone()), sorted(consumed));
    let mut produced: Vec<String> = (0..5_000).map(|i| format!("order-{i}")).collect();
    produced.sort();
    assert_eq!(sorted(values(&replayed)), produced);
    let mut per_partition: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for line in &replayed {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        let partition = json["partition"].as_i64().unwrap();
        per_partition
            .entry(partition)
            .or_default()
            .push(json["offset"].as_i64().unwrap());
    }
    for (partition, offsets) in &per_partition {
        let dense: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &dense, "partition {partition} in offset order");
    }

    // With a checkpoint file: the first run prints everything and records the ends; the next
    // prints only what was produced in between.
    let state = tempfile::tempdir().unwrap();
    let checkpoint = state.path().join("orders.checkpoint");
    let checkpoint_arg = checkpoint.to_str().unwrap();
    let args = [
        "replay",
        "orders",
        "--format",
        "json",
        "--quiet",
        "--checkpoint",
        checkpoint_arg,
    ];
    let (first, stderr) = lines_of(at(&broker, &args));
    assert_eq!(first.len(), 5_000);
    assert!(stderr.is_empty(), "--quiet: {stderr}");
    let ends: BTreeMap<i64, i64> = per_partition
        .iter()
        .map(|(p, offsets)| (*p, offsets.len() as i64))
        .collect();
    assert_eq!(checkpoint_offsets(&checkpoint), ends);
    produce_orders(&broker, 5_000..5_600, 37);
    let (second, _) = lines_of(at(&broker, &args));
    let mut new: Vec<String> = (5_000..5_600).map(|i| format!("order-{i}")).collect();
    new.sort();
    assert_eq!(
        sorted(values(&second)),
        new,
        "exactly the records produced since"
    );
    let (third, _) = lines_of(at(&broker, &args));
    assert!(third.is_empty(), "nothing new");

    send(&server, libc::SIGTERM);
    assert!(wait_exit(server).status.success());
}

#[test]
fn a_malformed_or_unfitting_checkpoint_file_is_refused_naming_the_file_and_line() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    let create = at(&broker, &["topic", "create", "orders", "--partitions", "2"])
        .status()
        .unwrap();
    assert!(create.success());
    produce_orders(&broker, 0..10, 37);
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("bad.checkpoint");
    let refuse = |text: &str, expected: &[&str]| {
        std::fs::write(&path, text).unwrap();
        let out = at(
            &broker,
            &["replay", "orders", "--checkpoint", path.to_str().unwrap()],
        )
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} was accepted");
        assert!(out.stdout.is_empty(), "{text:?} printed records");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        for word in expected {
            assert!(stderr.contains(word), "{text:?}: {stderr} lacks {word}");
        }
        // The file is left as it was, for the operator to look at.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    };
    let file = path.to_str().unwrap();
    refuse(
        "cairn-replay-checkpoint v1\ntopic orders\n0 five\n",
        &[file, "line 3", "five"],
    );
    refuse("not a checkpoint\n", &[file, "line 1"]);
    refuse(
        "cairn-replay-checkpoint v1\ntopic orders\n7 0\n",
        &[file, "partition 7"],
    );
    refuse(
        "cairn-replay-checkpoint v1\ntopic payments\n",
        &[file, "payments"],
    );

    send(&server, libc::SIGTERM);
    assert!(wait_exit(server).status.success());
}

#[test]
fn sigterm_while_following_writes_the_checkpoint_and_exits_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let (server, broker) = start_broker(data.path());
    let create = at(&broker, &["topic", "create", "orders", "--partitions", "2"])
        .status()
        .unwrap();
    assert!(create.success());
    produce_orders(&broker, 0..300, 37);
    let state = tempfile::tempdir().unwrap();
    let checkpoint = state.path().join("follow.checkpoint");
    let mut follow = at(
        &broker,
        &[
            "replay",
            "orders",
            "--follow",
            "--quiet",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    // Every record so far, then one produced while it follows.
    for _ in 0..300 {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0);
    }
    produce_orders(&broker, 300..301, 37);
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "order-300\n");
    send(&follow, libc::SIGTERM);
    let out = wait_exit(follow);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(checkpoint_offsets(&checkpoint).values().sum::<i64>(), 301);

    send(&server, libc::SIGTERM);
    assert!(wait_exit(server).status.success());
}
