//! Property tests: random sequences of appends (with and without records), reads, rolls, high
//! watermark moves, truncations, retention passes and reopens (clean and crashed) run against
//! both the real log and a plain `Vec` of batches. After every step the two must agree.

#![allow(
    clippy::unwrap_used,
    reason = "test harness: a failed unwrap is a failed test"
)]

mod common;

use bytes::Bytes;
use cairn_log::batch::{Batch, encode_meta_entry};
use cairn_log::{EntryIndex, LeaderEpoch, Log, LogConfig, Offset};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Append one request of batches: (records, value bytes) per batch; 0 records = meta entry.
    Append(Vec<(usize, usize)>),
    Read {
        at: u16,
        max_bytes: u16,
    },
    Roll,
    SetHighWatermark(u16),
    Truncate(u16),
    RetainBytes(u16),
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec((0usize..5, 1usize..300), 1..4).prop_map(Op::Append),
        3 => (any::<u16>(), any::<u16>()).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::Roll),
        2 => any::<u16>().prop_map(Op::SetHighWatermark),
        1 => any::<u16>().prop_map(Op::Truncate),
        1 => any::<u16>().prop_map(Op::RetainBytes),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// One stored batch as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    base: Offset,
    next: Offset,
    entry: EntryIndex,
    /// The batch's bytes after the assigned fields (offsets 16..).
    body: Bytes,
    meta: bool,
}

struct Harness {
    dir: tempfile::TempDir,
    cfg: LogConfig,
    log: Option<Log>,
    replica: bool,
    model: Vec<Stored>,
    log_start: Offset,
    start_entry: EntryIndex,
    high_watermark: Offset,
    tag: u64,
}

impl Harness {
    fn new(replica: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            segment_bytes: 2048,
            index_interval_bytes: 300,
            segment_index_bytes: 256,
            retention_ms: None,
            ..LogConfig::default()
        };
        let log = open(dir.path(), &cfg, replica);
        Harness {
            dir,
            cfg,
            log: Some(log),
            replica,
            model: Vec::new(),
            log_start: Offset(0),
            start_entry: EntryIndex(0),
            high_watermark: Offset(0),
            tag: 0,
        }
    }

    fn log(&mut self) -> &mut Log {
        self.log.as_mut().unwrap()
    }

    fn end(&self) -> Offset {
        self.model.last().map_or(self.log_start, |s| s.next)
    }

    fn next_entry(&self) -> EntryIndex {
        self.model
            .last()
            .map_or(self.start_entry, |s| s.entry.plus(1))
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(shape) => self.append(shape),
            Op::Read { at, max_bytes } => self.read(*at, *max_bytes),
            Op::Roll => self.log().roll(0).unwrap(),
            Op::SetHighWatermark(pick) if self.replica => {
                // Replication commits whole entries: pick a batch boundary at or past the HW.
                let mut boundaries: Vec<Offset> = self
                    .model
                    .iter()
                    .map(|s| s.next)
                    .filter(|&o| o >= self.high_watermark)
                    .collect();
                boundaries.insert(0, self.high_watermark);
                let target = boundaries[usize::from(*pick) % boundaries.len()];
                self.log().set_high_watermark(target).unwrap();
                self.high_watermark = target;
                if let Some(inside) = self
                    .model
                    .iter()
                    .find(|s| s.next > s.base.plus(1) && s.base >= target)
                    .map(|s| s.base)
                {
                    let err = self.log().set_high_watermark(inside.plus(1)).unwrap_err();
                    assert!(
                        matches!(err, cairn_log::LogError::InvalidHighWatermark { .. }),
                        "{err}"
                    );
                }
            }
            Op::Truncate(pick) if self.replica => self.truncate(*pick),
            Op::RetainBytes(bytes) => self.retain(u64::from(*bytes) * 4),
            Op::Reopen { clean } => self.reopen(*clean),
            Op::SetHighWatermark(_) | Op::Truncate(_) => {}
        }
        self.check_bounds();
    }

    fn append(&mut self, shape: &[(usize, usize)]) {
        let batches: Vec<Batch> = shape
            .iter()
            .map(|&(records, value_bytes)| {
                self.tag += 1;
                if records == 0 {
                    Batch::validate(
                        encode_meta_entry(format!("meta-{}", self.tag).as_bytes(), 7).unwrap(),
                    )
                    .unwrap()
                } else {
                    common::batch(self.tag, records, value_bytes, self.tag as i64)
                }
            })
            .collect();
        let infos = self
            .log()
            .append(&batches, Some(LeaderEpoch(3)), 0)
            .unwrap();
        for (batch, info) in batches.iter().zip(infos) {
            let stored = Stored {
                base: self.end(),
                next: self.end().plus(batch.offset_count()),
                entry: self.next_entry(),
                body: batch.bytes().slice(16..),
                meta: batch.is_meta(),
            };
            assert_eq!(
                (info.base_offset, info.next_offset, info.entry),
                (stored.base, stored.next, stored.entry)
            );
            self.model.push(stored);
        }
        if !self.replica {
            self.high_watermark = self.end();
        }
    }

    fn read(&mut self, at: u16, max_bytes: u16) {
        let reader = self.log().reader();
        let span = self.high_watermark.0 - self.log_start.0;
        let from = Offset(self.log_start.0 + u64::from(at) % (span + 1));
        let result = reader.read(from.as_i64(), i64::from(max_bytes)).unwrap();
        let got: Vec<(Offset, Bytes)> = result
            .batches()
            .filter(|b| !b.is_meta())
            .map(|b| (b.base_offset(), b.bytes().slice(16..)))
            .collect();
        // The model's answer: from the first entry that holds `from` or starts at/after it,
        // within the segment the log chose; so check it is a prefix of the model's tail and
        // respects max_bytes (at least one batch).
        let data: Vec<&Stored> = self.model.iter().filter(|s| !s.meta).collect();
        let start = data.iter().position(|s| s.next > from);
        let visible = data.iter().filter(|s| self.is_visible(s)).count();
        match start {
            Some(idx) if data[idx].next <= self.high_watermark => {
                assert!(
                    !got.is_empty(),
                    "read at {from} returned nothing; hw {}",
                    self.high_watermark
                );
                let expected: Vec<(Offset, Bytes)> = data[idx..]
                    .iter()
                    .take(got.len())
                    .map(|s| (s.base, s.body.clone()))
                    .collect();
                assert_eq!(got, expected, "read at {from}");
                assert!(
                    got.len() == 1 || result.data.len() <= usize::from(max_bytes),
                    "read exceeded max_bytes"
                );
                assert!(idx + got.len() <= visible, "served past the high watermark");
            }
            _ => assert!(
                got.iter().all(|(o, _)| *o >= self.high_watermark),
                "served past the high watermark"
            ),
        }
    }

    fn truncate(&mut self, pick: u16) {
        let target = pick_between(pick, self.high_watermark, self.end());
        let new_end = self.log().truncate_to(target).unwrap();
        let keep = self
            .model
            .iter()
            .position(|s| s.base >= target || (!s.meta && s.next > target))
            .unwrap_or(self.model.len());
        self.model.truncate(keep);
        assert_eq!(new_end, self.end());
    }

    fn retain(&mut self, bytes: u64) {
        let mut cfg = self.cfg.clone();
        cfg.retention_bytes = Some(bytes);
        let log = self.log();
        log.set_config(cfg.clone());
        let outcome = log.enforce_retention(0).unwrap();
        let start = log.log_start_offset();
        let start_entry = log.log_start_entry();
        log.set_config(LogConfig {
            retention_bytes: None,
            ..cfg
        });
        assert!(start <= self.high_watermark);
        let first = self.model.iter().position(|s| s.entry == start_entry);
        match first {
            Some(idx) => {
                assert_eq!(
                    self.model[idx].base, start,
                    "log start must be the base of its first entry"
                );
                self.model.drain(..idx);
            }
            None => {
                assert_eq!(outcome.deleted_segments, 0);
            }
        }
        self.log_start = start;
        self.start_entry = start_entry;
    }

    fn reopen(&mut self, clean: bool) {
        let log = self.log.take().unwrap();
        if clean {
            log.close().unwrap();
        } else {
            drop(log);
        }
        self.log = Some(open(self.dir.path(), &self.cfg, self.replica));
        if self.replica {
            self.high_watermark = self.log_start;
        }
        self.check_everything();
    }

    /// A single replica shows everything flushed, meta entries included. A replica's high
    /// watermark is an offset, so meta entries sitting exactly at it (they take no offset) stay
    /// hidden until it moves past them.
    fn is_visible(&self, stored: &Stored) -> bool {
        if !self.replica {
            return true;
        }
        if stored.meta {
            stored.base < self.high_watermark
        } else {
            stored.next <= self.high_watermark
        }
    }

    fn check_bounds(&mut self) {
        let (end, entry, start, hw) = (
            self.end(),
            self.next_entry(),
            self.log_start,
            self.high_watermark,
        );
        let log = self.log();
        assert_eq!(log.log_end_offset(), end, "log end offset");
        assert_eq!(log.next_entry(), entry, "next entry index");
        assert_eq!(log.log_start_offset(), start, "log start offset");
        assert_eq!(log.high_watermark(), hw, "high watermark");
    }

    fn check_everything(&mut self) {
        self.check_bounds();
        let got = common::read_all(&self.log().reader());
        let got: Vec<(Offset, Bytes)> = got
            .into_iter()
            .filter(|(_, body)| !is_meta_body(body))
            .collect();
        let expected: Vec<(Offset, Bytes)> = self
            .model
            .iter()
            .filter(|s| !s.meta && self.is_visible(s))
            .map(|s| (s.base, s.body.clone()))
            .collect();
        assert_eq!(got, expected, "everything visible");
    }
}

fn open(dir: &std::path::Path, cfg: &LogConfig, replica: bool) -> Log {
    if replica {
        Log::open_replica(dir, cfg.clone(), 0).unwrap()
    } else {
        Log::open(dir, cfg.clone(), 0).unwrap()
    }
}

/// Whether a batch body (bytes 16..) is a meta entry: control bit set and no records.
fn is_meta_body(body: &Bytes) -> bool {
    let attributes = i16::from_be_bytes([body[5], body[6]]);
    let records = i32::from_be_bytes([body[41], body[42], body[43], body[44]]);
    attributes & 0x20 != 0 && records == 0
}

fn pick_between(pick: u16, low: Offset, high: Offset) -> Offset {
    Offset(low.0 + u64::from(pick) % (high.0 - low.0 + 1))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn single_replica_log_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut harness = Harness::new(false);
        for op in &ops {
            harness.apply(op);
        }
        harness.check_everything();
    }

    #[test]
    fn replica_log_with_truncation_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut harness = Harness::new(true);
        for op in &ops {
            harness.apply(op);
        }
        harness.high_watermark = harness.end();
        let end = harness.end();
        harness.log().set_high_watermark(end).unwrap();
        harness.check_everything();
    }
}
