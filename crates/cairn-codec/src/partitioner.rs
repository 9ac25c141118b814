//! Which partition a produced record goes to, chosen as Kafka's producer chooses it.
//!
//! A record with a key goes to `to_positive(murmur2(key)) % partition_count`, bit for bit
//! Kafka's `BuiltInPartitioner.partitionForKey` (and `Utils.murmur2`/`Utils.toPositive`), so a
//! Cairn client, a Kafka client and the broker all agree on where a key lives. Changing any of
//! it moves existing keys to other partitions and breaks per-key order: treat it as frozen.
//!
//! A record without a key goes where [`StickyPartitioner`] says: one partition for a while (until
//! it has taken a batch's worth of bytes, KIP-794, or until its batch is complete, KIP-480), then
//! another picked at random. This module does no I/O and owns no random generator: randomness is
//! injected through [`RandomSource`] so tests replay exactly.

use std::num::NonZeroU32;

/// Kafka's murmur2 seed (`Utils.murmur2`).
const MURMUR2_SEED: u32 = 0x9747_b28c;
/// Kafka's murmur2 mixing multiplier.
const MURMUR2_M: u32 = 0x5bd1_e995;
/// Kafka's murmur2 mixing shift.
const MURMUR2_R: u32 = 24;

/// Kafka's 32-bit murmur2 hash of `data`, as `org.apache.kafka.common.utils.Utils.murmur2`
/// returns it (a Java `int`, so negative half the time).
///
/// Java's `int` arithmetic is two's complement and wraps, and its `>>>` is a logical shift, so
/// the hash is computed on `u32` with wrapping multiplication and plain `>>`, then reinterpreted.
pub fn murmur2(data: &[u8]) -> i32 {
    // Java mixes in `data.length` as an `int`. Keys are bounded by `max.message.bytes` (at most
    // 1 GiB), so the length always fits and the cast never truncates in practice.
    let mut h = MURMUR2_SEED ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes(word.try_into().expect("chunks_exact(4) yields 4 bytes"));
        k = k.wrapping_mul(MURMUR2_M);
        k ^= k >> MURMUR2_R;
        k = k.wrapping_mul(MURMUR2_M);
        h = h.wrapping_mul(MURMUR2_M);
        h ^= k;
    }
    // The 1 to 3 trailing bytes, in Kafka's fall-through order: byte 2, then 1, then 0, then one
    // multiply. (XOR commutes, but keeping Kafka's order keeps the code easy to check against it.)
    let tail_mixed = match *words.remainder() {
        [b0, b1, b2] => Some(h ^ (u32::from(b2) << 16) ^ (u32::from(b1) << 8) ^ u32::from(b0)),
        [b0, b1] => Some(h ^ (u32::from(b1) << 8) ^ u32::from(b0)),
        [b0] => Some(h ^ u32::from(b0)),
        _ => None,
    };
    if let Some(mixed) = tail_mixed {
        h = mixed.wrapping_mul(MURMUR2_M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(MURMUR2_M);
    h ^= h >> 15;
    // Reinterpret the bits as Java's signed `int`.
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit. Not the absolute value: `-1` becomes
/// `i32::MAX`, and `i32::MIN` becomes `0`.
pub fn to_positive(number: i32) -> i32 {
    number & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a record with this key:
/// `to_positive(murmur2(key)) % partition_count`. The result is below `partition_count`.
///
/// An empty key is a key (it hashes like any other); only a record with no key at all goes to
/// the [`StickyPartitioner`], as in Kafka.
pub fn partition_for_key(key: &[u8], partition_count: NonZeroU32) -> u32 {
    to_positive(murmur2(key)).unsigned_abs() % partition_count.get()
}

/// A source of uniformly distributed 32-bit numbers, injected so that partition choices can be
/// replayed in tests. Production callers seed a [`XorShift64`] from the OS or the clock.
pub trait RandomSource {
    /// The next number; every value equally likely.
    fn next_u32(&mut self) -> u32;
}

/// Marsaglia's xorshift64 generator: small, fast, seedable, and good enough to spread keyless
/// batches. Not for anything that must be unpredictable.
#[derive(Clone, Debug)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator started from `seed`. Zero is xorshift's one stuck state, so a zero seed is
    /// replaced by a fixed non-zero one.
    pub fn new(seed: u64) -> Self {
        let state = if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        };
        XorShift64 { state }
    }
}

impl RandomSource for XorShift64 {
    fn next_u32(&mut self) -> u32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        // The high half is the better-mixed one.
        (x >> 32) as u32
    }
}

/// Kafka's sticky partitioner for keyless records: every keyless record goes to the same
/// partition for a while, then to another picked at random. Large batches, fewer requests, and
/// an even spread over time. Two rules for "a while", one per caller:
/// - [`StickyPartitioner::on_keyless_append`], Kafka's rule since 3.3 (KIP-794), for a producer
///   that batches: move on once the partition has taken `batch_size` bytes and its batch is
///   full, or `2 * batch_size` bytes whatever its batch holds. Counting bytes rather than
///   batches is what keeps the spread even at low load, where every record leaves alone in a
///   batch of its own and no batch is ever full.
/// - [`StickyPartitioner::on_new_batch`], KIP-480's rule: move on at every batch boundary, for
///   a caller whose batch is already whole (the broker, routing one request's keyless records).
///
/// KIP-794's other half, weighting the next partition by how deep its broker's queue is, is
/// not done: the next partition is drawn uniformly.
#[derive(Clone, Debug)]
pub struct StickyPartitioner<R = XorShift64> {
    random: R,
    current: Option<u32>,
    /// Bytes of keyless records the current partition has taken since it was picked.
    taken: usize,
}

impl<R: RandomSource> StickyPartitioner<R> {
    /// A partitioner that has not picked a partition yet; it picks one on first use.
    pub fn new(random: R) -> Self {
        StickyPartitioner {
            random,
            current: None,
            taken: 0,
        }
    }

    /// The partition for the next keyless record: the sticky one, or a random new one if there
    /// is none yet or the topic now has fewer partitions than the sticky one needs. The result is
    /// below `partition_count`.
    pub fn partition(&mut self, partition_count: NonZeroU32) -> u32 {
        match self.current {
            Some(sticky) if sticky < partition_count.get() => sticky,
            _ => self.switch(partition_count, None),
        }
    }

    /// Signals that the batch for `prev_partition` is complete (Kafka's `onNewBatch`) and returns
    /// the partition for the next keyless record.
    ///
    /// If `prev_partition` is the sticky partition, a new one is picked at random, different from
    /// it whenever `partition_count > 1`. If the sticky partition has already moved on (a second
    /// signal for the same boundary, or a batch of keyed records), nothing changes: as in Kafka,
    /// one boundary moves the partitioner at most once.
    pub fn on_new_batch(&mut self, prev_partition: u32, partition_count: NonZeroU32) -> u32 {
        match self.current {
            Some(sticky) if sticky != prev_partition && sticky < partition_count.get() => sticky,
            _ => self.switch(partition_count, Some(prev_partition)),
        }
    }

    /// Counts `bytes` of a keyless record just added to `partition`'s batch, and moves on as
    /// KIP-794 does: once the sticky partition has taken `batch_size` bytes and the record's
    /// batch is full (`batch_full`: it will not take another record), or once it has taken
    /// `2 * batch_size` bytes whatever its batch holds. Waiting for a full batch keeps a
    /// switch from leaving a fragment behind; the cap bounds how long a partition whose
    /// batches never fill (low load) keeps every record. An append to another partition than
    /// the sticky one changes nothing.
    pub fn on_keyless_append(
        &mut self,
        partition: u32,
        bytes: usize,
        batch_full: bool,
        batch_size: usize,
        partition_count: NonZeroU32,
    ) {
        if self.current != Some(partition) {
            return;
        }
        self.taken = self.taken.saturating_add(bytes);
        let enough = self.taken >= batch_size && batch_full;
        if enough || self.taken >= batch_size.saturating_mul(2) {
            self.switch(partition_count, Some(partition));
        }
    }

    /// The sticky partition, if one has been picked.
    pub fn current(&self) -> Option<u32> {
        self.current
    }

    fn switch(&mut self, partition_count: NonZeroU32, avoid: Option<u32>) -> u32 {
        let next = pick_partition(&mut self.random, partition_count, avoid);
        self.current = Some(next);
        self.taken = 0;
        next
    }
}

/// A random partition below `partition_count`, never `avoid` when another exists. Draws exactly
/// one number (Kafka loops until it draws a different one; mapping onto the other
/// `partition_count - 1` partitions gives the same distribution without an unbounded loop).
fn pick_partition(
    random: &mut impl RandomSource,
    partition_count: NonZeroU32,
    avoid: Option<u32>,
) -> u32 {
    let count = partition_count.get();
    match avoid {
        Some(avoid) if count > 1 && avoid < count => {
            let drawn = random.next_u32() % (count - 1);
            if drawn >= avoid { drawn + 1 } else { drawn }
        }
        _ => random.next_u32() % count,
    }
}

#[cfg(test)]
mod tests;
