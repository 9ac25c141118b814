//! Tests of topic configs: Kafka's defaults, key-naming errors, all-or-nothing updates, the
//! compact-only retention rule, and the file format (round trip, malformed lines, size limit).

use super::*;
use cairn_log::FlushPolicy;
use proptest::prelude::*;

#[test]
fn defaults_are_kafkas() {
    let cfg = TopicConfig::default();
    assert_eq!(cfg.cleanup_policy, CleanupPolicy::Delete);
    assert_eq!(cfg.delete_retention_ms, 86_400_000);
    assert_eq!(cfg.message_timestamp_type, TimestampType::CreateTime);
    assert_eq!(cfg.log, LogConfig::default());
}

#[test]
fn keys_are_the_log_keys_then_the_topic_keys() {
    let keys: Vec<_> = TopicConfig::keys().collect();
    assert_eq!(keys.len(), LogConfig::KEYS.len() + 3);
    assert_eq!(&keys[..LogConfig::KEYS.len()], &LogConfig::KEYS[..]);
    let entry_keys: Vec<_> = TopicConfig::default()
        .entries()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(entry_keys, keys);
}

#[test]
fn sets_topic_keys_and_delegates_log_keys() {
    let mut cfg = TopicConfig::default();
    cfg.set("cleanup.policy", "compact").unwrap();
    assert_eq!(cfg.cleanup_policy, CleanupPolicy::Compact);
    cfg.set("cleanup.policy", " delete , compact ").unwrap();
    assert_eq!(cfg.cleanup_policy, CleanupPolicy::CompactAndDelete);
    cfg.set("cleanup.policy", "compact,delete").unwrap();
    assert_eq!(cfg.cleanup_policy, CleanupPolicy::CompactAndDelete);
    cfg.set("delete.retention.ms", "0").unwrap();
    assert_eq!(cfg.delete_retention_ms, 0);
    cfg.set("message.timestamp.type", "LogAppendTime").unwrap();
    assert_eq!(cfg.message_timestamp_type, TimestampType::LogAppendTime);
    cfg.set("segment.bytes", "1048576").unwrap();
    cfg.set("flush.policy", "interval:50").unwrap();
    assert_eq!(cfg.log.segment_bytes, 1 << 20);
    assert_eq!(cfg.log.flush_policy, FlushPolicy::IntervalMs(50));
}

fn invalid(key: &str, value: &str) -> (&'static str, String, &'static str) {
    let mut cfg = TopicConfig::default();
    match cfg.set(key, value) {
        Err(BrokerError::InvalidConfig { key, value, reason }) => {
            assert_eq!(cfg, TopicConfig::default(), "a failed set changes nothing");
            (key, value, reason)
        }
        other => panic!("{key}={value} should be invalid, got {other:?}"),
    }
}

#[test]
fn bad_values_name_the_key_and_the_value() {
    for (key, value) in [
        ("cleanup.policy", "remove"),
        ("cleanup.policy", ""),
        ("cleanup.policy", "delete,"),
        ("cleanup.policy", "delete,delete"),
        ("delete.retention.ms", "-1"),
        ("delete.retention.ms", "9223372036854775808"),
        ("message.timestamp.type", "createtime"),
        ("segment.bytes", "-3"),
        ("flush.policy", "sometimes"),
    ] {
        let (named_key, named_value, _) = invalid(key, value);
        assert_eq!((named_key, named_value.as_str()), (key, value));
    }
}

#[test]
fn unknown_keys_are_named() {
    let err = TopicConfig::default().set("no.such.key", "1").unwrap_err();
    assert!(
        matches!(&err, BrokerError::UnknownConfig { key } if key == "no.such.key"),
        "{err:?}"
    );
}

#[test]
fn set_all_is_all_or_nothing() {
    let mut cfg = TopicConfig::default();
    let err = cfg.set_all([("cleanup.policy", "compact"), ("retention.ms", "soon")]);
    assert!(matches!(
        err,
        Err(BrokerError::InvalidConfig {
            key: "retention.ms",
            ..
        })
    ));
    assert_eq!(cfg, TopicConfig::default());
    cfg.set_all([("cleanup.policy", "compact"), ("retention.ms", "-1")])
        .unwrap();
    assert_eq!(cfg.cleanup_policy, CleanupPolicy::Compact);
    assert_eq!(cfg.log.retention_ms, None);
}

#[test]
fn compact_only_topics_do_not_delete_by_retention() {
    let mut cfg = TopicConfig::default();
    cfg.set("retention.bytes", "1000").unwrap();
    assert_eq!(cfg.to_log_config(), cfg.log);
    cfg.set("cleanup.policy", "compact").unwrap();
    let log = cfg.to_log_config();
    assert_eq!((log.retention_ms, log.retention_bytes), (None, None));
    assert_eq!(log.segment_bytes, cfg.log.segment_bytes);
    // Describe still shows what was configured.
    assert!(
        cfg.entries()
            .contains(&("retention.bytes", "1000".to_string()))
    );
    cfg.set("cleanup.policy", "compact,delete").unwrap();
    assert_eq!(cfg.to_log_config(), cfg.log);
}

#[test]
fn cleanup_policy_and_delete_retention_reach_the_log() {
    let mut cfg = TopicConfig::default();
    assert!(!cfg.to_log_config().compact);
    cfg.set_all([
        ("cleanup.policy", "compact"),
        ("delete.retention.ms", "5000"),
    ])
    .unwrap();
    let log = cfg.to_log_config();
    assert!(log.compact);
    assert_eq!(log.delete_retention_ms, 5000);
    cfg.set("cleanup.policy", "compact,delete").unwrap();
    let log = cfg.to_log_config();
    assert!(log.compact, "compact,delete compacts");
    assert_eq!(
        log.retention_ms, cfg.log.retention_ms,
        "and deletes by retention"
    );
    cfg.set("cleanup.policy", "delete").unwrap();
    assert!(!cfg.to_log_config().compact);
    // A config built as a struct still maps its policy.
    let built = TopicConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..TopicConfig::default()
    };
    assert!(built.to_log_config().compact);
    // The log's own compaction keys are topic keys too.
    cfg.set("min.cleanable.dirty.ratio", "0.25").unwrap();
    assert_eq!(
        cfg.to_log_config()
            .min_cleanable_dirty_ratio
            .parts_per_million(),
        250_000
    );
}

#[test]
fn validate_catches_out_of_range_struct_fields() {
    let mut cfg = TopicConfig {
        delete_retention_ms: u64::MAX,
        ..TopicConfig::default()
    };
    assert!(matches!(
        cfg.validate(),
        Err(BrokerError::InvalidConfig {
            key: "delete.retention.ms",
            ..
        })
    ));
    cfg.delete_retention_ms = 1;
    cfg.log.segment_bytes = 1;
    assert!(matches!(
        cfg.validate(),
        Err(BrokerError::InvalidConfig {
            key: "segment.bytes",
            ..
        })
    ));
}

#[test]
fn file_text_round_trips_and_reads_by_hand_edits() {
    let mut cfg = TopicConfig::default();
    cfg.set_all([
        ("cleanup.policy", "delete,compact"),
        ("retention.ms", "-1"),
        ("flush.policy", "os"),
    ])
    .unwrap();
    let text = cfg.to_file_text();
    assert!(text.contains("\ncleanup.policy=compact,delete\n"), "{text}");
    assert_eq!(TopicConfig::from_file_text(&text).unwrap(), cfg);

    let edited = "# overrides\r\n\n  segment.ms = 60000 \r\nmessage.timestamp.type=LogAppendTime\n";
    let read = TopicConfig::from_file_text(edited).unwrap();
    assert_eq!(read.log.segment_ms, 60_000);
    assert_eq!(read.message_timestamp_type, TimestampType::LogAppendTime);
    assert_eq!(
        read.cleanup_policy,
        CleanupPolicy::Delete,
        "unset keys keep the base"
    );
}

fn line_error(text: &str) -> BrokerError {
    let mut cfg = TopicConfig::default();
    let err = cfg.apply_file_text(text).unwrap_err();
    assert_eq!(cfg, TopicConfig::default(), "a failed read changes nothing");
    err
}

#[test]
fn malformed_lines_are_rejected_with_their_line_number() {
    let err = line_error("# header\nsegment.ms=1\nretention.ms\n");
    assert!(
        matches!(err, BrokerError::MalformedConfigLine { line_number: 3, .. }),
        "{err:?}"
    );
    let err = line_error("=5\n");
    assert!(
        matches!(err, BrokerError::MalformedConfigLine { line_number: 1, .. }),
        "{err:?}"
    );
    let err = line_error("segment.ms=1\nsegment.ms=2\n");
    assert!(
        matches!(err, BrokerError::MalformedConfigLine { line_number: 2, .. }),
        "{err:?}"
    );
    let err = line_error("segment.ms=1\n\nsegment.bytes=huge\n");
    let text = err.to_string();
    assert!(
        text.contains("line 3") && text.contains("segment.bytes"),
        "{text}"
    );
    match err {
        BrokerError::InvalidConfigLine {
            line_number: 3,
            source,
        } => assert!(matches!(
            *source,
            BrokerError::InvalidConfig {
                key: "segment.bytes",
                ..
            }
        )),
        other => panic!("{other:?}"),
    }
    let err = line_error("retention.msec=1\n");
    assert!(
        matches!(&err, BrokerError::InvalidConfigLine { line_number: 1, source }
            if matches!(**source, BrokerError::UnknownConfig { .. })),
        "{err:?}"
    );
}

#[test]
fn oversized_files_are_rejected_before_parsing() {
    let text = "#".repeat(MAX_CONFIG_FILE_BYTES + 1);
    assert!(matches!(
        line_error(&text),
        BrokerError::ConfigFileTooLarge { .. }
    ));
}

fn limit() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-1".to_string()),
        any::<u64>().prop_map(|v| v.to_string())
    ]
}

/// Valid text values for every key, drawn across each key's range.
fn valid_pairs() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let log = (
        64u32..=i32::MAX as u32,
        1u64..=u64::MAX,
        cairn_log::MIN_SEGMENT_INDEX_BYTES..=cairn_log::MAX_SEGMENT_INDEX_BYTES,
        0u32..=i32::MAX as u32,
        limit(),
        limit(),
        61u32..=1 << 30,
        prop_oneof![
            Just("always".to_string()),
            Just("os".to_string()),
            (1u64..=u64::MAX).prop_map(|ms| format!("interval:{ms}")),
        ],
    );
    let topic = (
        prop_oneof![
            Just("delete"),
            Just("compact"),
            Just("compact,delete"),
            Just("delete, compact"),
        ],
        0u64..=i64::MAX as u64,
        prop_oneof![Just("CreateTime"), Just("LogAppendTime")],
    );
    (log, topic).prop_map(|(log, topic)| {
        vec![
            ("segment.bytes", log.0.to_string()),
            ("segment.ms", log.1.to_string()),
            ("segment.index.bytes", log.2.to_string()),
            ("index.interval.bytes", log.3.to_string()),
            ("retention.ms", log.4),
            ("retention.bytes", log.5),
            ("max.message.bytes", log.6.to_string()),
            ("flush.policy", log.7),
            ("cleanup.policy", topic.0.to_string()),
            ("delete.retention.ms", topic.1.to_string()),
            ("message.timestamp.type", topic.2.to_string()),
        ]
    })
}

proptest! {
    #[test]
    fn any_valid_config_round_trips_through_the_file_text(
        pairs in valid_pairs(),
        chosen in proptest::collection::vec(any::<bool>(), 11),
    ) {
        let mut cfg = TopicConfig::default();
        let subset = pairs.iter().zip(&chosen).filter(|(_, keep)| **keep);
        cfg.set_all(subset.map(|((key, value), _)| (*key, value.as_str()))).unwrap();
        prop_assert!(cfg.validate().is_ok());
        let text = cfg.to_file_text();
        prop_assert!(text.len() <= MAX_CONFIG_FILE_BYTES);
        prop_assert_eq!(TopicConfig::from_file_text(&text).unwrap(), cfg.clone());
        // Over a different base, the full file still wins for every key.
        let mut other = TopicConfig::default();
        other.set_all([("cleanup.policy", "compact"), ("segment.ms", "1")]).unwrap();
        other.apply_file_text(&text).unwrap();
        prop_assert_eq!(other, cfg);
    }

    #[test]
    fn arbitrary_text_is_rejected_or_read_without_panicking(text in "[ -~\n#=]{0,200}") {
        let _ = TopicConfig::from_file_text(&text);
    }
}
