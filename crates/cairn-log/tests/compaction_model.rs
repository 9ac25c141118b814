//! Property test of compaction against a model that is obviously right: random appends (keyed
//! values and tombstones over a few keys, varied batch sizes, every codec), rolls, clock
//! advances, cleans and reopens (clean and crashed), run against the real log and a plain list
//! of the records that should survive. After every clean:
//! - for every key, the newest value in the sealed segments survives with its original offset;
//! - kept offsets strictly increase and are a subset of the offsets appended;
//! - nothing in the active segment changed, byte for byte;
//! - a tombstone survives until a clean at or after its delete horizon (set by the first clean
//!   that saw it: that clean's time plus `delete.retention.ms`), and is gone after it;
//! - reading the log from its start returns exactly the model's records, and so does a reopen.

#![allow(
    clippy::unwrap_used,
    reason = "test harness: a failed unwrap is a failed test"
)]

mod common;

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use cairn_log::batch::Compression;
use cairn_log::{Log, Offset};
use common::keyed::{Keyed, compact_config, keyed_batch, read_records};
use proptest::prelude::*;

const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[derive(Clone, Debug)]
enum Op {
    /// One batch: (key index, is a tombstone) per record, and a codec index.
    Append(Vec<(usize, bool)>, usize),
    Roll,
    Advance(u16),
    Clean,
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (
            proptest::collection::vec((0..KEYS.len(), proptest::bool::weighted(0.2)), 1..5),
            0..CODECS.len()
        )
            .prop_map(|(records, codec)| Op::Append(records, codec)),
        2 => Just(Op::Roll),
        2 => (0u16..1500).prop_map(Op::Advance),
        3 => Just(Op::Clean),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

/// A record the model expects, with the delete horizon the log should have given it.
#[derive(Clone, Debug)]
struct Expected {
    record: Keyed,
    horizon_ms: Option<i64>,
}

struct Harness {
    dir: tempfile::TempDir,
    log: Option<Log>,
    now_ms: i64,
    model: Vec<Expected>,
    appended: BTreeSet<Offset>,
    /// Offsets below this are in sealed segments.
    sealed_end: Offset,
    value_idx: u64,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), compact_config(), 0).unwrap();
        Harness {
            dir,
            log: Some(log),
            now_ms: 0,
            model: Vec::new(),
            appended: BTreeSet::new(),
            sealed_end: Offset(0),
            value_idx: 0,
        }
    }

    fn log(&mut self) -> &mut Log {
        self.log.as_mut().unwrap()
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(records, codec) => self.append(records, CODECS[*codec]),
            Op::Roll => {
                let now = self.now_ms;
                self.log().roll(now).unwrap();
                self.sealed_end = self.log().log_end_offset();
            }
            Op::Advance(ms) => self.now_ms += i64::from(*ms),
            Op::Clean => self.clean(),
            Op::Reopen { clean } => {
                let log = self.log.take().unwrap();
                if *clean {
                    log.close().unwrap();
                } else {
                    drop(log);
                }
                let log = Log::open(self.dir.path(), compact_config(), self.now_ms).unwrap();
                // A reopen does not roll: the active segment is the same one.
                self.log = Some(log);
                self.check_reads();
            }
        }
    }

    fn append(&mut self, records: &[(usize, bool)], codec: Compression) {
        let values: Vec<String> = records
            .iter()
            .map(|_| {
                self.value_idx += 1;
                format!("v{}", self.value_idx)
            })
            .collect();
        let pairs: Vec<(Option<&str>, Option<&str>)> = records
            .iter()
            .zip(&values)
            .map(|(&(key, tombstone), value)| {
                (Some(KEYS[key]), (!tombstone).then_some(value.as_str()))
            })
            .collect();
        let now = self.now_ms;
        let batch = keyed_batch(&pairs, codec, now, None);
        let base = self.log().append(&[batch], None, now).unwrap()[0].base_offset;
        for (idx, (key, value)) in pairs.iter().enumerate() {
            let offset = base.plus(idx as u64);
            self.appended.insert(offset);
            self.model.push(Expected {
                record: Keyed {
                    offset,
                    key: key.map(|k| k.as_bytes().to_vec()),
                    value: value.map(|v| v.as_bytes().to_vec()),
                    timestamp_ms: now + idx as i64,
                },
                horizon_ms: None,
            });
        }
    }

    /// The model's clean: over the records of the sealed segments, keep each key's newest; a
    /// newest tombstone goes once its horizon has passed, and gets one the first time it is seen.
    fn model_clean(&mut self) {
        let (now, retention) = (self.now_ms, compact_config().delete_retention_ms as i64);
        let sealed_end = self.sealed_end;
        let mut newest: HashMap<Vec<u8>, Offset> = HashMap::new();
        for expected in self.model.iter().filter(|e| e.record.offset < sealed_end) {
            let key = expected.record.key.clone().unwrap();
            newest.insert(key, expected.record.offset);
        }
        self.model.retain_mut(|expected| {
            let record = &expected.record;
            if record.offset >= sealed_end {
                return true;
            }
            if newest[record.key.as_ref().unwrap()] != record.offset {
                return false;
            }
            if record.value.is_some() {
                return true;
            }
            match expected.horizon_ms {
                Some(horizon) => now < horizon,
                None => {
                    expected.horizon_ms = Some(now + retention);
                    true
                }
            }
        });
    }

    fn clean(&mut self) {
        let sealed_end = self.sealed_end;
        let active_before = self.active_bytes(sealed_end);
        let now = self.now_ms;
        let outcome = self.log().clean(now).unwrap();
        assert_eq!(outcome.ran, sealed_end > Offset(0));
        self.model_clean();
        assert_eq!(
            self.active_bytes(sealed_end),
            active_before,
            "the active segment changed"
        );
        self.check_reads();
    }

    /// The active segment's bytes, as a read from its base offset returns them.
    fn active_bytes(&mut self, base: Offset) -> Vec<Bytes> {
        let reader = self.log().reader();
        let mut out = Vec::new();
        let mut next = base;
        while next < reader.high_watermark() {
            let read = reader.read(next.as_i64(), 1 << 20).unwrap();
            out.push(read.data.clone());
            next = read.next_offset;
        }
        out
    }

    fn check_reads(&mut self) {
        let records = read_records(&self.log().reader());
        let expected: Vec<Keyed> = self.model.iter().map(|e| e.record.clone()).collect();
        assert_eq!(records, expected);
        assert!(
            records.windows(2).all(|w| w[0].offset < w[1].offset),
            "kept offsets strictly increase"
        );
        assert!(records.iter().all(|r| self.appended.contains(&r.offset)));
        // Every key's newest record of the whole log is there with its offset, unless it is a
        // tombstone whose horizon has passed.
        let mut newest: HashMap<&[u8], &Expected> = HashMap::new();
        for expected in &self.model {
            newest.insert(expected.record.key.as_deref().unwrap(), expected);
        }
        for expected in newest.values() {
            assert!(records.contains(&expected.record));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn compaction_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut harness = Harness::new();
        for op in &ops {
            harness.apply(op);
        }
        // A last roll and clean, then a crash-reopen, always runs.
        harness.apply(&Op::Roll);
        harness.apply(&Op::Clean);
        harness.apply(&Op::Reopen { clean: false });
    }
}
