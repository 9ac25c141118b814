//! The simulation's only source of randomness: SplitMix64, seeded from the run's seed. Every
//! decision (the fault schedule, each message's fate, each node's election timeout, each flush
//! delay) draws from a stream derived from the seed and a fixed key, never from a shared stream,
//! so one decision does not shift the others when the interleaving of tasks changes.

/// A small, seedable generator (SplitMix64). Not for cryptography; for replayable tests.
#[derive(Clone, Debug)]
pub struct SimRng {
    state: u64,
}

/// Mixes `value` into `hash` (one SplitMix64 finalisation of their sum).
pub fn mix(hash: u64, value: u64) -> u64 {
    let mut z = hash
        .wrapping_add(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(value.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SimRng {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> SimRng {
        SimRng { state: seed }
    }

    /// The stream for `seed` and `key` (a node id, a link and message number, ...): independent
    /// of every other key's stream.
    pub fn keyed(seed: u64, key: &[u64]) -> SimRng {
        SimRng::new(key.iter().fold(mix(seed, 0x5eed), |h, k| mix(h, *k)))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state, 0)
    }

    /// A number in `lo..hi`; `lo` when the range is empty.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        // The modulo bias is below 2^-40 for the small ranges used here.
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.range(0, 1000) < u64::from(per_mille)
    }

    /// One element of `items` (`None` when empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        let len = u64::try_from(items.len()).ok()?;
        let idx = usize::try_from(self.range(0, len)).ok()?;
        items.get(idx).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_seed_gives_one_stream_and_keys_are_independent() {
        let a: Vec<u64> = (0..5).map(|_| SimRng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = SimRng::keyed(7, &[1, 2]);
        let mut y = SimRng::keyed(7, &[2, 1]);
        assert_ne!(x.next_u64(), y.next_u64());
        let mut r = SimRng::new(3);
        for _ in 0..1000 {
            let v = r.range(10, 20);
            assert!((10..20).contains(&v), "{v} outside 10..20");
        }
    }
}
