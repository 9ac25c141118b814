//! The scrub: one pass after start-up over every partition's log, checking each batch's framing
//! and CRC-32C, so that damage at rest (a flipped bit in a segment nobody has read since) is
//! reported on health and metrics without waiting for a consumer to trip on it. It reads at a
//! bounded rate on its own thread, so it neither delays start-up nor starves produce and fetch.
//! It repairs nothing and deletes nothing: damaged batches stay on disk, never served.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::broker::{Broker, Topic};

/// Bytes per second the scrub reads by default: a small share of this machine's disk.
pub const DEFAULT_SCRUB_BYTES_PER_SEC: u64 = 64 << 20;

/// What one scrub pass found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Partitions checked.
    pub partitions: u64,
    /// Batches that passed.
    pub batches: u64,
    /// Bytes of batches that passed.
    pub bytes: u64,
    /// Damaged ranges found (each also reported on its partition).
    pub damaged: u64,
}

impl Broker {
    /// Checks every batch of every partition once, at most `bytes_per_sec`, recording damage on
    /// its partition. Blocking: run it on its own thread. Returns early, with what it has,
    /// once `stop` is set.
    pub fn scrub_blocking(&self, bytes_per_sec: u64, stop: &AtomicBool) -> ScrubReport {
        let mut report = ScrubReport::default();
        let started = Instant::now();
        let topics: Vec<Arc<Topic>> = self.topics_snapshot();
        for topic in topics {
            let partitions = topic.partitions_now();
            for partition in partitions {
                if stop.load(Ordering::Relaxed) {
                    return report;
                }
                let Ok(offsets) = partition.offsets() else {
                    continue;
                };
                report.partitions += 1;
                let scanned = partition.scan_batches(offsets.log_start_offset.as_i64(), |batch| {
                    report.batches += 1;
                    report.bytes += batch.len_bytes() as u64;
                    pace(started, report.bytes, bytes_per_sec);
                    if stop.load(Ordering::Relaxed) {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
                // Out of range only if retention moved the start meanwhile: next pass.
                for range in scanned.unwrap_or_default() {
                    report.damaged += 1;
                    partition.note_damage(&range);
                }
            }
        }
        report
    }
}

/// Sleeps until `bytes` read since `started` are within `bytes_per_sec`.
fn pace(started: Instant, bytes: u64, bytes_per_sec: u64) {
    if bytes_per_sec == 0 {
        return;
    }
    let due = Duration::from_secs_f64(bytes as f64 / bytes_per_sec as f64);
    if let Some(ahead) = due.checked_sub(started.elapsed()) {
        std::thread::sleep(ahead);
    }
}
