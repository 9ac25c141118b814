//! A seeded, repeatable fault loop with a checker (issue 14, item 2): three real `cairn serve`
//! processes (each in its own network namespace when the test runs as root), an idempotent
//! producer writing with acks=all and a consumer group member consuming and committing, while
//! each round does one fault to one node: SIGKILL and restart, SIGSTOP and SIGCONT, a network
//! partition cutting the node off both ways or one way, or its disk failing every fsync (libfiu's
//! `fiu-run -x`, then a restart), its disk filling up (each node has its own tmpfs), or its wall
//! clock jumping hours ahead or back (libfaketime). Faults a machine cannot do (no root, no
//! libfiu, no libfaketime) are left out, and the run says so.
//!
//! The checker counts Jepsen's anomaly classes and prints one line per class with the seed:
//! acknowledged writes lost, duplicates, copies of a partition that differ (the same offset
//! holding different records), writes reported failed that were read anyway (indeterminate:
//! counted, allowed), and the group member's positions going backwards past an acknowledged
//! commit or skipping a record. `CAIRN_FAULT_SEED` and `CAIRN_FAULT_ROUNDS` repeat or lengthen a
//! run.

#![allow(clippy::unwrap_used, reason = "tests: a failure here is a failed test")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_client::{GroupConsumer, GroupConsumerConfig, NoopListener, OffsetReset};

mod common;

use common::cluster::{
    Cluster, Rng, consume_all, fault_seed_and_rounds, replica_bytes, spawn_producer, start_cluster,
    start_cluster_in, tally_in,
};
use common::netns::TestNet;
use common::tmpfs::TmpfsMount;
use common::*;

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;

/// One round's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Kill,
    Pause,
    CutBothWays,
    CutOneWay,
    FsyncFails,
    DiskFull,
    ClockJump,
}

/// Where libfaketime's preload library is, when installed.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The size of each node's own disk (a tmpfs) when the test can mount one: ample for the
/// loop's writes, small enough to fill in a moment.
const NODE_DISK: &str = "256m";

/// Where an installed program is, if it is.
fn installed(program: &str) -> Option<String> {
    ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin"]
        .iter()
        .map(|dir| format!("{dir}/{program}"))
        .find(|path| std::path::Path::new(path).exists())
}

/// What a group member saw: each record as (partition, offset, value) in order, and the
/// anomalies of its positions.
#[derive(Default)]
struct MemberLog {
    records: Vec<(i32, i64, String)>,
    /// A record below a position whose commit the coordinator acknowledged, read again.
    backwards: usize,
    /// The first few such reads that followed a record read in order, as (partition, offset
    /// committed, offset delivered).
    went_back: Vec<(i32, i64, i64)>,
    /// A record delivered after a gap in its partition's offsets within one run of positions.
    skips: usize,
    /// The first few skips, as (partition, offset expected, offset delivered).
    skipped: Vec<(i32, i64, i64)>,
}

/// A group member consuming and committing after every poll until `stop`.
async fn spawn_member(
    brokers: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(GroupConsumer, MemberLog)> {
    let mut cfg = GroupConsumerConfig::new("checker");
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.enable_auto_commit = false;
    let mut consumer = GroupConsumer::subscribe(&brokers, cfg, &[TOPIC], Box::new(NoopListener))
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut log = MemberLog::default();
        let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
        let mut next_expected: BTreeMap<i32, i64> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            if let Ok(records) = consumer.poll(Duration::from_millis(200)).await {
                for record in records {
                    let (p, at) = (record.partition, record.offset);
                    let commit = committed.get(&p).copied().unwrap_or(0);
                    if at < commit {
                        log.backwards += 1;
                        if log.went_back.len() < 5
                            && log.went_back.last().is_none_or(|(q, _, _)| *q != p)
                        {
                            log.went_back.push((p, commit, at));
                        }
                    }
                    // A position moved back (a rejoin resumes at the commit) starts a new run;
                    // forward, offsets are dense (only records take offsets).
                    if let Some(expected) = next_expected.get(&p)
                        && at > *expected
                    {
                        log.skips += 1;
                        if log.skipped.len() < 5 {
                            log.skipped.push((p, *expected, at));
                        }
                    }
                    next_expected.insert(p, at + 1);
                    let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
                    log.records.push((p, at, value));
                }
            }
            // A commit first drops partitions the member lost (they are not committed by it),
            // so what it committed is read after it answers.
            if consumer.commit().await.is_ok() {
                committed.extend(
                    consumer
                        .positions()
                        .iter()
                        .map(|(p, at)| (p.partition, *at)),
                );
            }
            // After a rejoin the member starts again from its commits.
            for (p, at) in consumer.positions() {
                if next_expected.get(&p.partition).is_some_and(|e| *at < *e) {
                    next_expected.insert(p.partition, *at);
                }
            }
        }
        (consumer, log)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_fault_loop_counts_no_anomaly() {
    let (seed, rounds) = fault_seed_and_rounds(0x0fa1_7100, 6);
    let mut rng = Rng(seed.max(1));
    let net = TestNet::create(3);
    let fiu = installed("fiu-run").zip(installed("fiu-ctrl"));
    let mut faults = vec![Fault::Kill, Fault::Pause];
    if net.is_some() {
        faults.extend([Fault::CutBothWays, Fault::CutOneWay]);
    } else {
        eprintln!("NOTE: no network namespaces here: the loop runs without partitions");
    }
    // This loop once counted 6 acknowledged writes lost: a deposed leader answered a retried
    // idempotent batch with offsets its successor had filled with other records (see
    // `answer_duplicate` in the broker's replicated partition, and its test in
    // `cairn-broker/tests/cluster.rs`).
    if fiu.is_some() {
        faults.push(Fault::FsyncFails);
    } else {
        eprintln!("NOTE: no libfiu (fiu-run, fiu-ctrl) here: the loop runs without fsync failures");
    }
    let dir = TestDir::new();
    // Each node on its own small disk, so one of them can fill up (declared before the
    // cluster, so the nodes die before their disks are unmounted).
    let disks: Vec<TmpfsMount> = (1..=3)
        .map_while(|n| TmpfsMount::new(&dir.path().join(format!("node-{n}")), NODE_DISK))
        .collect();
    if disks.len() == 3 {
        faults.push(Fault::DiskFull);
    } else {
        eprintln!(
            "NOTE: cannot mount a tmpfs per node (needs root): the loop runs without full disks"
        );
    }
    if std::path::Path::new(LIBFAKETIME).exists() {
        faults.push(Fault::ClockJump);
    } else {
        eprintln!("NOTE: no libfaketime here: the loop runs without clock jumps");
    }
    let clock_files: Vec<std::path::PathBuf> = (1..=3)
        .map(|n| dir.path().join(format!("node-{n}.faketime")))
        .collect();
    let mut cluster: Cluster = match &net {
        Some(net) => start_cluster_in(dir.path(), net, 3),
        None => start_cluster(dir.path(), 3),
    };
    cluster
        .create_topic(&cluster.addresses[0], TOPIC, PARTITIONS, 3)
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = spawn_producer(cluster.bootstrap_from(0), TOPIC, Arc::clone(&stop)).await;
    let member_stop = Arc::new(AtomicBool::new(false));
    let member = spawn_member(cluster.bootstrap_from(1), Arc::clone(&member_stop)).await;
    let started = Instant::now();
    for round in 0..rounds {
        let fault = faults[usize::try_from(rng.next() % faults.len() as u64).unwrap()];
        let node = i32::try_from(rng.next() % 3).unwrap() + 1;
        let index = usize::try_from(node).unwrap();
        let hold = Duration::from_millis(1000 + rng.next() % 4000);
        println!("round {round}: {fault:?} on node {node} for {hold:?}");
        match fault {
            Fault::Kill => {
                cluster.kill(node);
                tokio::time::sleep(hold).await;
                cluster.restart(node);
            }
            Fault::Pause => {
                cluster.pause(node);
                tokio::time::sleep(hold).await;
                cluster.resume(node);
            }
            Fault::CutBothWays | Fault::CutOneWay => {
                let net = net.as_ref().unwrap();
                for other in (1..=3).filter(|o| *o != index) {
                    if fault == Fault::CutBothWays {
                        net.cut(index, other);
                    } else {
                        net.cut_one_way(index, other);
                    }
                }
                tokio::time::sleep(hold).await;
                net.heal();
            }
            Fault::FsyncFails => {
                let (fiu_run, fiu_ctrl) = fiu.as_ref().unwrap();
                cluster.kill(node);
                cluster.restart_wrapped(node, &[fiu_run, "-x"]);
                tokio::time::sleep(Duration::from_millis(500)).await;
                let pid = cluster.pid(node).unwrap().to_string();
                let enabled = std::process::Command::new(fiu_ctrl)
                    .args(["-c", "enable name=posix/io/sync/fdatasync", &pid])
                    .status()
                    .unwrap();
                assert!(enabled.success(), "fiu-ctrl failed");
                tokio::time::sleep(hold).await;
                // A log whose fsync failed never takes a write again: the node restarts.
                cluster.kill(node);
                cluster.restart(node);
            }
            Fault::DiskFull => {
                let filler = disks[index - 1].fill("filler");
                tokio::time::sleep(hold).await;
                std::fs::remove_file(filler).unwrap();
                // A copy whose append failed has stopped its group (it says so in its log);
                // the operator frees space and restarts the node.
                cluster.kill(node);
                cluster.restart(node);
            }
            Fault::ClockJump => {
                // The wall clock steps, as under an NTP correction or a bad RTC; the monotonic
                // clock does not (its jumps look like a pause, which `Pause` covers).
                let file = &clock_files[index - 1];
                std::fs::write(file, "+0").unwrap();
                let preload = format!("LD_PRELOAD={LIBFAKETIME}");
                let timestamps = format!("FAKETIME_TIMESTAMP_FILE={}", file.display());
                cluster.kill(node);
                cluster.restart_wrapped(
                    node,
                    &[
                        "/usr/bin/env",
                        &preload,
                        &timestamps,
                        "FAKETIME_CACHE_DURATION=1",
                        "FAKETIME_DONT_FAKE_MONOTONIC=1",
                    ],
                );
                let hours = 1 + rng.next() % 48;
                let sign = if rng.next().is_multiple_of(2) {
                    '+'
                } else {
                    '-'
                };
                println!("  clock of node {node} jumps {sign}{hours}h, then back");
                std::fs::write(file, format!("{sign}{hours}h")).unwrap();
                tokio::time::sleep(hold).await;
                std::fs::write(file, "+0").unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(1500 + rng.next() % 1500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed, sent) = producing.await.unwrap();

    let records = consume_all(&cluster.bootstrap_from(0), TOPIC).await;
    let (lost, duplicates) = tally_in(dir.path(), TOPIC, 3, &acknowledged, &records);
    // The same records at the same offsets, whichever node a reader starts from (a poll
    // interleaves partitions as answers arrive, so both are compared in offset order).
    let mut again = consume_all(&cluster.bootstrap_from(2), TOPIC).await;
    let mut first = records.clone();
    first.sort();
    again.sort();
    let reads_differ = first.iter().zip(&again).filter(|(a, b)| a != b).count()
        + first.len().abs_diff(again.len());
    let acked_values: BTreeSet<&str> = acknowledged.keys().map(String::as_str).collect();
    let failed_but_read = records
        .iter()
        .filter(|(_, _, v)| !acked_values.contains(v.as_str()))
        .count();

    // The group member drains what was acknowledged for a few seconds more, then stops.
    tokio::time::sleep(Duration::from_secs(5)).await;
    member_stop.store(true, Ordering::Relaxed);
    let (consumer, member_log) = member.await.unwrap();
    let _ = consumer.close().await;
    let consumed: BTreeSet<&str> = member_log
        .records
        .iter()
        .map(|(_, _, v)| v.as_str())
        .collect();
    let mut group_missed = acknowledged
        .keys()
        .filter(|v| !consumed.contains(v.as_str()))
        .count();
    if group_missed > 0 {
        // What the first member had not reached yet (it stops on a timer): a new member of
        // the group resumes from the commits and must find exactly the rest.
        let rest = drain_group(&cluster.bootstrap_from(0)).await;
        let consumed: BTreeSet<&str> = consumed
            .iter()
            .copied()
            .chain(rest.iter().map(String::as_str))
            .collect();
        group_missed = acknowledged
            .keys()
            .filter(|v| !consumed.contains(v.as_str()))
            .count();
    }

    let mut copies_differ = 0;
    let agree_by = Instant::now() + PATIENCE;
    for partition in 0..PARTITIONS {
        loop {
            let copies: Vec<Vec<u8>> = (1..=3)
                .map(|n| replica_bytes(dir.path(), TOPIC, n, partition))
                .collect();
            if copies.iter().all(|c| c == &copies[0]) {
                break;
            }
            if Instant::now() >= agree_by {
                copies_differ += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    println!(
        "seed {seed}, {rounds} rounds ({:?}) in {:.0?}; sent {sent}, not acknowledged {failed}",
        faults,
        started.elapsed()
    );
    println!("acknowledged writes lost: {lost} of {}", acknowledged.len());
    print_lost(&acknowledged, &records);
    println!("duplicates: {duplicates}");
    println!("partitions whose copies differ: {copies_differ} of {PARTITIONS}");
    println!("records that differ between two reads: {reads_differ}");
    println!(
        "writes not acknowledged but read (indeterminate, allowed): {failed_but_read} of {failed}"
    );
    println!(
        "group positions gone back past an acknowledged commit: {}",
        member_log.backwards
    );
    for (partition, commit, delivered) in &member_log.went_back {
        println!("  partition {partition}: committed {commit}, then delivered {delivered}");
    }
    println!(
        "group positions that skipped a record: {}",
        member_log.skips
    );
    for (partition, expected, delivered) in &member_log.skipped {
        println!("  partition {partition}: expected offset {expected}, delivered {delivered}");
    }
    println!("acknowledged records the group never consumed: {group_missed}");
    assert_eq!(
        (lost, duplicates, copies_differ, reads_differ),
        (0, 0, 0, 0),
        "seed {seed}"
    );
    assert_eq!(
        (member_log.backwards, member_log.skips, group_missed),
        (0, 0, 0),
        "seed {seed}"
    );
    drop(cluster);
}

/// Each acknowledged record that was not read, with where it was acknowledged and what the
/// log holds there instead: what a developer needs to find where it went.
fn print_lost(acknowledged: &BTreeMap<String, (i32, i64)>, records: &[(i32, i64, String)]) {
    let read: BTreeMap<&str, (i32, i64)> = records
        .iter()
        .map(|(p, at, v)| (v.as_str(), (*p, *at)))
        .collect();
    let at_offset: BTreeMap<(i32, i64), &str> = records
        .iter()
        .map(|(p, at, v)| ((*p, *at), v.as_str()))
        .collect();
    for (value, place) in acknowledged
        .iter()
        .filter(|(v, _)| !read.contains_key(v.as_str()))
    {
        println!(
            "  lost {value}: acknowledged at partition {} offset {}; the log holds {:?} there",
            place.0,
            place.1,
            at_offset.get(place)
        );
    }
}

/// Every value a new member of the checker group reads in a few seconds.
async fn drain_group(brokers: &str) -> Vec<String> {
    let mut cfg = GroupConsumerConfig::new("checker");
    cfg.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = GroupConsumer::subscribe(brokers, cfg, &[TOPIC], Box::new(NoopListener))
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while Instant::now() < until {
        if let Ok(records) = consumer.poll(Duration::from_millis(200)).await {
            out.extend(
                records
                    .into_iter()
                    .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
            );
        }
    }
    let _ = consumer.close().await;
    out
}
