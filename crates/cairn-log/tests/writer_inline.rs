//! `LogWriter::queue_append_or_write` (and `with_log_inline_if_idle` for quick tasks): an idle
//! writer's append is carried out on the caller's thread, and that never reorders it ahead of
//! appends queued before it, never skips the flush policy, and fails exactly as the writer
//! thread would on a failed fsync.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use cairn_log::fault::{self, FaultPoint};
use cairn_log::{FlushPolicy, LeaderEpoch, Log, LogConfig, LogError, LogWriter, Offset};
use common::{batch, read_all, small_config, spawn_writer};

/// Offers `count` appends (tags from `first`) to be written inline, a few milliseconds apart so
/// that the writer is idle, checks each lands at its offset, and returns how many were answered
/// by the time the call returned (written on the caller's thread). The writer may hold its lock
/// for a moment after its previous command, so not every one need be.
async fn offer_idle_appends(writer: &LogWriter, first: u64, count: u64) -> u64 {
    let mut inline = 0;
    for tag in first..first + count {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut answer = writer
            .queue_append_or_write(vec![batch(tag, 1, 20, 0)], None)
            .await
            .unwrap();
        if let Ok(result) = answer.try_recv() {
            assert_eq!(result.unwrap()[0].base_offset, Offset(tag));
            inline += 1;
        } else {
            assert_eq!(answer.await.unwrap().unwrap()[0].base_offset, Offset(tag));
        }
    }
    inline
}

/// The writer thread, held inside a task of its own until [`HeldWriter::release`]: commands
/// sent meanwhile queue behind it.
struct HeldWriter {
    release: std::sync::mpsc::Sender<()>,
    holding: tokio::task::JoinHandle<Result<bool, LogError>>,
}

impl HeldWriter {
    /// Holds `writer`'s thread, once it has surely started on the holding task.
    async fn hold(writer: &LogWriter) -> HeldWriter {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holding = tokio::spawn({
            let writer = writer.clone();
            async move { writer.with_log(move |_, _| held.recv().is_ok()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        HeldWriter { release, holding }
    }

    /// Lets the writer thread go on, and waits until the holding task has finished.
    async fn release(self) {
        self.release.send(()).unwrap();
        assert!(self.holding.await.unwrap().unwrap());
    }
}

/// An idle writer: the append is answered by the time the call returns (no hand-off to the
/// thread), and answered means durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_writer_lets_the_caller_write_and_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let writer = spawn_writer(dir.path(), small_config());
    let inline = offer_idle_appends(&writer, 0, 20).await;
    assert!(inline > 0, "no append was written on the caller's thread");
    // Answered means durable under `always`: what a crash right now would keep.
    assert_eq!(writer.reader().high_watermark(), Offset(20));
    writer.close().await.unwrap();
    let reopened = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(read_all(&reopened.reader()).len(), 20);
}

/// A caller that gives up while waiting for queue space takes its place in the count of
/// queued commands with it: once the queue drains, callers write inline again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_wait_for_queue_space_does_not_stop_inline_writes() {
    let dir = tempfile::tempdir().unwrap();
    let writer = spawn_writer(dir.path(), small_config());
    // Hold the writer thread, and fill its queue behind it.
    let held = HeldWriter::hold(&writer).await;
    let mut queued = Vec::new();
    let mut tag = 0;
    loop {
        match writer.try_append(vec![batch(tag, 1, 20, 0)], None) {
            Ok(answer) => queued.push(answer),
            Err(LogError::QueueFull) => break,
            Err(other) => panic!("{other}"),
        }
        tag += 1;
    }
    let abandoned = tokio::time::timeout(
        Duration::from_millis(20),
        writer.queue_append(vec![batch(tag, 1, 20, 0)], None),
    )
    .await;
    assert!(abandoned.is_err(), "the queue had space after all");
    held.release().await;
    for answer in queued {
        answer.await.unwrap().unwrap();
    }
    let inline = offer_idle_appends(&writer, tag, 20).await;
    assert!(
        inline > 0,
        "no append was written inline after the abandoned wait"
    );
    writer.close().await.unwrap();
}

/// Appends queued to the thread and appends offered to be written inline, interleaved from one
/// caller: each gets offsets after every append queued before it, whichever path it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_inline_never_overtakes_a_queued_append() {
    let dir = tempfile::tempdir().unwrap();
    let writer = spawn_writer(dir.path(), small_config());
    let mut answers = Vec::new();
    for tag in 0..400u64 {
        let batches = vec![batch(tag, 1, 20, 0)];
        let answer = if tag % 3 == 0 {
            writer.queue_append(batches, None).await.unwrap()
        } else {
            writer.queue_append_or_write(batches, None).await.unwrap()
        };
        answers.push(answer);
        if tag % 50 == 0 {
            // Let the writer go idle now and then, so both paths are taken.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    for (tag, answer) in answers.into_iter().enumerate() {
        let infos = answer.await.unwrap().unwrap();
        assert_eq!(infos[0].base_offset, Offset(tag as u64), "append {tag}");
    }
    writer.close().await.unwrap();
}

/// Under `interval:<ms>` the thread owns the flush timer, so the caller never writes itself;
/// the append still lands and is flushed on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_flush_policy_keeps_appends_on_the_writer_thread() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        flush_policy: FlushPolicy::IntervalMs(10),
        ..small_config()
    };
    let writer = spawn_writer(dir.path(), cfg);
    for tag in 0..5u64 {
        let answer = writer
            .queue_append_or_write(vec![batch(tag, 1, 20, 0)], None)
            .await
            .unwrap();
        assert_eq!(answer.await.unwrap().unwrap()[0].base_offset, Offset(tag));
    }
    assert_eq!(read_all(writer.reader()).len(), 5);
    writer.close().await.unwrap();
}

/// A failed fsync on the caller's thread poisons the log as it does on the writer's: the
/// append is refused, and so is every later one, inline or queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_inline_fsync_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let writer = spawn_writer(dir.path(), small_config());
    writer.append(vec![batch(0, 1, 10, 0)], None).await.unwrap();
    fault::arm(dir.path(), FaultPoint::Sync, libc::EIO, 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let failed = writer
        .queue_append_or_write(vec![batch(1, 1, 10, 0)], None)
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        matches!(
            failed,
            Err(LogError::Poisoned { .. }) | Err(LogError::Io { .. })
        ),
        "{failed:?}"
    );
    for tag in 2..4u64 {
        let later = writer
            .queue_append_or_write(vec![batch(tag, 1, 10, 0)], None)
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(
            later.is_err(),
            "append {tag} after a failed fsync: {later:?}"
        );
    }
    let queued = writer.append(vec![batch(9, 1, 10, 0)], None).await;
    assert!(queued.is_err(), "{queued:?}");
    assert_eq!(writer.reader().high_watermark(), Offset(1));
    fault::disarm(dir.path());
}

/// The Raft follower's variant: on an idle writer both answers, written and durable, are in
/// by the time the call returns; on a busy one they come as from `queue_append_written`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_append_on_an_idle_writer_is_written_and_durable_on_return() {
    let dir = tempfile::tempdir().unwrap();
    let writer = spawn_writer(dir.path(), small_config());
    let mut inline = 0;
    for tag in 0..20u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut answers = writer
            .queue_append_written_or_write(vec![batch(tag, 1, 20, 0)], Some(LeaderEpoch(1)))
            .await
            .unwrap();
        match (answers.written.try_recv(), answers.durable.try_recv()) {
            (Ok(written), Ok(durable)) => {
                assert_eq!(written.unwrap()[0].base_offset, Offset(tag));
                assert_eq!(durable.unwrap()[0].base_offset, Offset(tag));
                inline += 1;
            }
            (written, _) => {
                let written = match written {
                    Ok(written) => written,
                    Err(_) => answers.written.await.unwrap(),
                };
                assert_eq!(written.unwrap()[0].base_offset, Offset(tag));
                let durable = answers.durable.await.unwrap().unwrap();
                assert_eq!(durable[0].base_offset, Offset(tag));
            }
        }
    }
    assert!(inline > 0, "no append was written on the caller's thread");
    writer.close().await.unwrap();
}

/// `with_log_inline_if_idle`: on an idle writer the task runs on the caller's thread; behind a
/// queued command it waits its turn on the writer thread, so it never sees the log before what
/// was queued ahead of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_task_runs_on_the_caller_when_idle_and_in_order_when_not() {
    let dir = tempfile::tempdir().unwrap();
    let writer = spawn_writer(dir.path(), small_config());
    let caller = std::thread::current().id();
    let mut on_caller = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let ran_on = writer
            .with_log_inline_if_idle(|_, _| std::thread::current().id())
            .await
            .unwrap();
        on_caller += u32::from(ran_on == caller);
    }
    assert!(on_caller > 0, "no task ran on the caller's thread");

    // Hold the writer thread, queue an append behind it, then ask for the log end.
    let held = HeldWriter::hold(&writer).await;
    let queued = writer
        .queue_append(vec![batch(0, 3, 20, 0)], None)
        .await
        .unwrap();
    let end = tokio::spawn({
        let writer = writer.clone();
        async move {
            writer
                .with_log_inline_if_idle(|log, _| log.log_end_offset())
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!end.is_finished(), "the task ran while the writer was busy");
    held.release().await;
    queued.await.unwrap().unwrap();
    assert_eq!(
        end.await.unwrap().unwrap(),
        Offset(3),
        "the task overtook the append queued before it"
    );
    writer.close().await.unwrap();
}
