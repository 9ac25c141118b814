//! Tests of the partitioners: Kafka's published murmur2 vectors (each cited), a transcription
//! of Kafka's Java as a model, and the sticky partitioner under scripted and seeded randomness.

use super::*;
use proptest::prelude::*;

fn count(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// Reads a hex literal as the Java `int` with the same bits.
fn java_int(bits: u32) -> i32 {
    bits as i32
}

#[test]
fn murmur2_matches_kafka_utils_test() {
    // apache/kafka clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
    // testMurmur2 (the same six are quoted by kafka_ex test/kafka_ex/support/murmur_test.exs).
    let cases: [(&[u8], i32); 6] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
    ];
    for (key, hash) in cases {
        assert_eq!(murmur2(key), hash, "key {:?}", String::from_utf8_lossy(key));
    }
}

#[test]
fn murmur2_matches_librdkafka_java_results() {
    // confluentinc/librdkafka src/rdmurmur2.c, unittest_murmur2: `java_murmur2_results`,
    // hashes the Java client computes. Covers every tail length (0 to 3 trailing bytes).
    let unaligned = "PreAmbleWillBeRemoved,ThePrePartThatIs";
    let cases: [(&str, u32); 11] = [
        ("kafka", 0xd067_cf64),
        ("giberish123456789", 0x8f55_2b0c),
        ("1234", 0x9fc9_7b14),
        ("234", 0xe7c0_09ca),
        ("34", 0x8739_30da),
        ("4", 0x5a4b_5ca1),
        (unaligned, 0x7842_4f1c),
        (&unaligned[1..], 0x4a62_b377),
        (&unaligned[2..], 0xe0e4_e09e),
        (&unaligned[3..], 0x62b8_b43f),
        ("", 0x106e_08d9),
    ];
    for (key, bits) in cases {
        assert_eq!(murmur2(key.as_bytes()), java_int(bits), "key {key:?}");
    }
}

#[test]
fn murmur2_matches_akka_vectors_from_kafka() {
    // akka/akka akka-cluster-sharding-typed/src/test/scala/akka/cluster/sharding/typed/
    // internal/Murmur2Spec.scala: "expected correct hash values from the kafka murmur2 impl".
    // "1234" agrees with librdkafka's 0x9fc97b14 above.
    let cases = [
        ("1", -1_993_445_489),
        ("12", 126_087_238),
        ("123", -267_702_483),
        ("1234", -1_614_185_708),
        ("12345", -1_188_365_604),
    ];
    for (key, hash) in cases {
        assert_eq!(murmur2(key.as_bytes()), hash, "key {key:?}");
    }
}

#[test]
fn partition_for_key_matches_kafka_python_java_compatibility() {
    // dpkp/kafka-python test/test_partitioner.py, test_murmur2_java_compatibility: partitions
    // of 1000 "compare[d] with output from Kafka's ... Partitioner".
    let cases: [(&[u8], u32); 6] = [
        (b"", 681),
        (b"a", 524),
        (b"ab", 434),
        (b"abc", 107),
        (b"123456789", 566),
        (b"\x00 ", 742),
    ];
    for (key, partition) in cases {
        assert_eq!(
            partition_for_key(key, count(1000)),
            partition,
            "key {key:?}"
        );
    }
}

#[test]
fn to_positive_clears_the_sign_bit_rather_than_negating() {
    assert_eq!(to_positive(0), 0);
    assert_eq!(to_positive(10), 10);
    assert_eq!(to_positive(-1), i32::MAX);
    assert_eq!(to_positive(i32::MIN), 0);
    assert_eq!(to_positive(-973_932_308), 1_173_551_340);
}

/// A source that replays fixed numbers, then repeats the last one.
struct Scripted(Vec<u32>);

impl RandomSource for Scripted {
    fn next_u32(&mut self) -> u32 {
        if self.0.len() > 1 {
            self.0.remove(0)
        } else {
            self.0[0]
        }
    }
}

#[test]
fn sticky_partitioner_sticks_until_its_batch_completes() {
    let mut sticky = StickyPartitioner::new(Scripted(vec![7, 3]));
    assert_eq!(sticky.current(), None);
    assert_eq!(sticky.partition(count(10)), 7);
    assert_eq!(sticky.partition(count(10)), 7);
    // A completed batch for some other partition (keyed records) does not move it.
    assert_eq!(sticky.on_new_batch(2, count(10)), 7);
    // Its own batch completing does: drawn 3 of the 9 others is partition 3.
    assert_eq!(sticky.on_new_batch(7, count(10)), 3);
    // A second signal for the same boundary does not move it again.
    assert_eq!(sticky.on_new_batch(7, count(10)), 3);
    assert_eq!(sticky.partition(count(10)), 3);
}

#[test]
fn sticky_partitioner_never_draws_the_partition_it_leaves() {
    // Drawing the old partition's own slot maps to the next one up.
    let mut sticky = StickyPartitioner::new(Scripted(vec![4, 4]));
    assert_eq!(sticky.partition(count(5)), 4);
    // 4 % 4 = 0, below 4, so partition 0.
    assert_eq!(sticky.on_new_batch(4, count(5)), 0);
    let mut sticky = StickyPartitioner::new(Scripted(vec![1, 1]));
    assert_eq!(sticky.partition(count(3)), 1);
    // 1 % 2 = 1, not below 1, so it skips over 1 to partition 2.
    assert_eq!(sticky.on_new_batch(1, count(3)), 2);
}

#[test]
fn sticky_partitioner_with_one_partition_stays_on_it() {
    let mut sticky = StickyPartitioner::new(XorShift64::new(1));
    assert_eq!(sticky.partition(count(1)), 0);
    assert_eq!(sticky.on_new_batch(0, count(1)), 0);
}

#[test]
fn keyless_appends_move_on_after_a_batch_worth_of_bytes_once_the_batch_is_full() {
    let mut sticky = StickyPartitioner::new(Scripted(vec![2, 0]));
    assert_eq!(sticky.partition(count(4)), 2);
    // 100 bytes of a 250-byte batch size, then 200 (300 taken) but the batch is not full:
    // stay, so that the switch does not leave a fragment behind.
    sticky.on_keyless_append(2, 100, false, 250, count(4));
    sticky.on_keyless_append(2, 200, false, 250, count(4));
    assert_eq!(sticky.partition(count(4)), 2);
    // The next record fills the batch: move on (drawn 0 of the 3 others is partition 0).
    sticky.on_keyless_append(2, 100, true, 250, count(4));
    assert_eq!(sticky.partition(count(4)), 0);
}

#[test]
fn keyless_appends_to_a_batch_that_never_fills_move_on_at_twice_the_batch_size() {
    // Low load: every record leaves alone, so no batch is ever full.
    let mut sticky = StickyPartitioner::new(Scripted(vec![1, 1]));
    assert_eq!(sticky.partition(count(3)), 1);
    for _ in 0..4 {
        sticky.on_keyless_append(1, 100, false, 250, count(3));
        assert_eq!(sticky.partition(count(3)), 1);
    }
    // The fifth record makes 500 bytes, twice the batch size.
    sticky.on_keyless_append(1, 100, false, 250, count(3));
    assert_eq!(sticky.partition(count(3)), 2);
    // The count starts again on the new partition.
    sticky.on_keyless_append(2, 400, false, 250, count(3));
    assert_eq!(sticky.partition(count(3)), 2);
}

#[test]
fn a_full_batch_before_a_batch_worth_of_bytes_does_not_move_the_partitioner() {
    // A batch sealed small (a record too big for what was left) is full, but the partition has
    // not yet taken batch_size bytes.
    let mut sticky = StickyPartitioner::new(Scripted(vec![0, 1]));
    assert_eq!(sticky.partition(count(2)), 0);
    sticky.on_keyless_append(0, 100, true, 250, count(2));
    assert_eq!(sticky.partition(count(2)), 0);
}

#[test]
fn keyless_appends_to_another_partition_change_nothing() {
    let mut sticky = StickyPartitioner::new(Scripted(vec![3, 0]));
    assert_eq!(sticky.partition(count(5)), 3);
    // Records the caller routed elsewhere (an explicit partition) are not the sticky one's.
    sticky.on_keyless_append(1, 10_000, true, 250, count(5));
    assert_eq!(sticky.partition(count(5)), 3);
    sticky.on_keyless_append(3, 249, false, 250, count(5));
    assert_eq!(sticky.partition(count(5)), 3);
}

#[test]
fn sticky_partitioner_repicks_when_the_topic_shrinks() {
    let mut sticky = StickyPartitioner::new(Scripted(vec![9, 1]));
    assert_eq!(sticky.partition(count(10)), 9);
    assert_eq!(sticky.partition(count(4)), 1);
}

#[test]
fn xorshift_is_deterministic_and_survives_a_zero_seed() {
    let mut a = XorShift64::new(42);
    let mut b = XorShift64::new(42);
    let drawn: Vec<u32> = (0..8).map(|_| a.next_u32()).collect();
    assert_eq!(drawn, (0..8).map(|_| b.next_u32()).collect::<Vec<_>>());
    let mut zero = XorShift64::new(0);
    assert!((0..8).map(|_| zero.next_u32()).any(|x| x != 0));
}

/// A line-by-line transcription of Kafka's Java on `i32`: signed bytes masked with `& 0xff`,
/// wrapping `int` arithmetic and `>>>` spelled out. The model for the `u32` code above.
fn java_model(data: &[u8]) -> i32 {
    let m = 0x5bd1_e995_u32 as i32;
    let ushr = |x: i32, n: u32| ((x as u32) >> n) as i32;
    let byte = |i: usize| i32::from(data[i] as i8) & 0xff;
    let length = data.len() as i32;
    let mut h = (0x9747_b28c_u32 as i32) ^ length;
    let length4 = length / 4;
    for i in 0..length4 {
        let i4 = (i * 4) as usize;
        let mut k = byte(i4)
            .wrapping_add(byte(i4 + 1) << 8)
            .wrapping_add(byte(i4 + 2) << 16)
            .wrapping_add(byte(i4 + 3) << 24);
        k = k.wrapping_mul(m);
        k ^= ushr(k, 24);
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    let base = (length & !3) as usize;
    let rest = length % 4;
    if rest >= 3 {
        h ^= byte(base + 2) << 16;
    }
    if rest >= 2 {
        h ^= byte(base + 1) << 8;
    }
    if rest >= 1 {
        h ^= byte(base);
        h = h.wrapping_mul(m);
    }
    h ^= ushr(h, 13);
    h = h.wrapping_mul(m);
    h ^= ushr(h, 15);
    h
}

proptest! {
    #[test]
    fn murmur2_agrees_with_a_transcription_of_the_java(
        data in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        prop_assert_eq!(murmur2(&data), java_model(&data));
    }

    #[test]
    fn partition_for_key_is_always_in_range(
        key in proptest::collection::vec(any::<u8>(), 0..64),
        partitions in 1..=u32::MAX,
    ) {
        let partition_count = count(partitions);
        prop_assert!(partition_for_key(&key, partition_count) < partitions);
    }

    #[test]
    fn a_partition_keeps_at_most_twice_a_batch_worth_while_batches_never_fill(
        seed in any::<u64>(),
        partitions in 2u32..8,
        sizes in proptest::collection::vec(1usize..300, 200..2000),
    ) {
        // Each partition picked keeps between batch_size and 2 * batch_size + one record's bytes.
        let batch_size = 1000;
        let partition_count = count(partitions);
        let mut sticky = StickyPartitioner::new(XorShift64::new(seed));
        let mut current = sticky.partition(partition_count);
        let mut taken = 0;
        for size in sizes {
            prop_assert_eq!(sticky.partition(partition_count), current);
            sticky.on_keyless_append(current, size, false, batch_size, partition_count);
            taken += size;
            let next = sticky.partition(partition_count);
            prop_assert!(next < partitions);
            if next != current {
                prop_assert!(taken >= 2 * batch_size && taken < 2 * batch_size + 300);
                current = next;
                taken = 0;
            } else {
                prop_assert!(taken < 2 * batch_size);
            }
        }
    }

    #[test]
    fn sticky_partitioner_stays_in_range_and_moves_on_its_own_boundary(
        seed in any::<u64>(),
        partitions in 1u32..64,
        steps in proptest::collection::vec(any::<bool>(), 1..64),
    ) {
        let partition_count = count(partitions);
        let mut sticky = StickyPartitioner::new(XorShift64::new(seed));
        let mut current = sticky.partition(partition_count);
        for boundary in steps {
            prop_assert!(current < partitions);
            if boundary {
                let next = sticky.on_new_batch(current, partition_count);
                prop_assert!(next < partitions);
                if partitions > 1 {
                    prop_assert_ne!(next, current);
                }
                current = next;
            } else {
                prop_assert_eq!(sticky.partition(partition_count), current);
            }
        }
    }
}
