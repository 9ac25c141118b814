//! Unit tests of the `cairn bench produce` flag ranges: every refusal names its flag and range,
//! and the batch arithmetic matches the real encoder.

#![allow(clippy::unwrap_used, reason = "test code")]

use clap::Parser;

use super::*;
use crate::bench::baseline::sample_batch;
use crate::usage_error::UsageError;

#[derive(Parser)]
struct Command {
    #[command(flatten)]
    args: BenchProduceArgs,
}

fn args(flags: &[&str]) -> BenchProduceArgs {
    let mut line = vec!["bench-produce"];
    line.extend_from_slice(flags);
    Command::try_parse_from(line).unwrap().args
}

/// The refusal of `flags`, which must be a usage error.
fn refusal(flags: &[&str]) -> String {
    let err = check_flags(&args(flags)).expect_err("these flags must be refused");
    assert!(err.is::<UsageError>(), "{err:#}");
    err.to_string()
}

#[test]
fn the_defaults_are_accepted() {
    let config = check_flags(&args(&[])).unwrap();
    assert_eq!(config.max_in_flight, 5);
    check_batch_fits(&args(&[]), None).unwrap();
}

#[test]
fn every_flag_out_of_range_names_itself_and_its_range() {
    for (flags, expected) in [
        (
            &["--in-flight", "6"][..],
            "--in-flight 6 is out of range: 1..=5",
        ),
        (
            &["--in-flight", "0"],
            "--in-flight 0 is out of range: 1..=5",
        ),
        (
            &["--partitions", "0"],
            "--partitions 0 is out of range: 1..=1024",
        ),
        (&["--partitions=-3"], "--partitions -3 is out of range"),
        (&["--partitions", "1025"], "1..=1024"),
        (
            &["--flush-policy", "sometimes"],
            "--flush-policy \"sometimes\"",
        ),
        (
            &["--flush-policy", "interval:0"],
            "--flush-policy \"interval:0\"",
        ),
        (&["--records", "0"], "--records 0 is out of range"),
        (&["--record-size", "0"], "--record-size 0 is out of range"),
        (&["--records-per-request", "0"], "--records-per-request 0"),
        (
            &["--rate", "20000000"],
            "--rate 20000000 is out of range: 0..=",
        ),
        (
            &["--linger-ms", "60001"],
            "--linger-ms 60001 is out of range: 0..=60000",
        ),
        (&["--topic", "bad/name"], "--topic \"bad/name\""),
        (
            &["--acks", "none", "--in-flight", "5000"],
            "--in-flight 5000 is out of range: 1..=1024",
        ),
        (
            &["--producers-held", "100001"],
            "--producers-held 100001 is out of range: it must be 0 to 100000",
        ),
    ] {
        let message = refusal(flags);
        assert!(message.contains(expected), "{flags:?}: {message}");
    }
}

#[test]
fn without_acks_more_than_five_requests_may_be_in_flight() {
    let config = check_flags(&args(&["--acks", "none", "--in-flight", "50"])).unwrap();
    assert_eq!(config.max_in_flight, 50);
    check_flags(&args(&["--flush-policy", "interval:200"])).unwrap();
}

#[test]
fn a_request_beyond_the_brokers_request_limit_is_refused() {
    let message = refusal(&["--records-per-request", "20000", "--record-size", "1024"]);
    assert!(message.contains("--records-per-request 20000 x --record-size 1024"));
    assert!(message.contains("at most 16777216"), "{message}");
    // Huge values saturate rather than overflow.
    refusal(&["--record-size", "18446744073709551615"]);
}

#[test]
fn a_batch_beyond_max_message_bytes_is_refused_before_the_topic_is_made() {
    // 1,000 records of 1 KiB: the documented big-request shape fits Cairn's default.
    let thousand = args(&["--records-per-request", "1000"]);
    check_flags(&thousand).unwrap();
    check_batch_fits(&thousand, None).unwrap();
    let big = args(&["--records-per-request", "2000"]);
    check_flags(&big).unwrap();
    let err = check_batch_fits(&big, None).unwrap_err();
    assert!(err.is::<UsageError>());
    assert!(
        err.to_string()
            .contains("max.message.bytes of a new topic (1048588)")
    );
    // An existing topic's own limit counts instead.
    check_batch_fits(&big, Some(4 << 20)).unwrap();
    let message = check_batch_fits(&thousand, Some(100_000))
        .unwrap_err()
        .to_string();
    assert!(message.contains("topic cairn-bench's max.message.bytes (100000)"));
}

#[test]
fn batch_bytes_is_the_encoders_size_plus_the_timestamp_allowance() {
    for (records, record_size) in [
        (1, 1),
        (1, 100),
        (64, 10),
        (65, 200),
        (1000, 1024),
        (9000, 3),
    ] {
        let real = sample_batch(records, record_size).unwrap().len() as u64;
        // The sample's records share one timestamp (a 1-byte delta); the bound allows 3.
        let allowance = 2 * records as u64;
        assert_eq!(
            batch_bytes(records, record_size),
            real + allowance,
            "{records} x {record_size}"
        );
    }
    assert_eq!(batch_bytes(usize::MAX, usize::MAX), u64::MAX);
}

#[test]
fn the_templates_buffered_size_is_computed_without_making_it() {
    for record_size in [0, 1, 1024, 1 << 20] {
        assert_eq!(
            template_buffered_size(record_size),
            record_template(record_size).buffered_size(),
            "record size {record_size}"
        );
    }
}
