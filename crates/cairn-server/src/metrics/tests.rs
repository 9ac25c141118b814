//! Unit tests of `metrics`: bucket placement, cumulative rendering, labels and the series cap.

use super::*;

fn rendered(metrics: &Metrics) -> String {
    let mut out = String::new();
    metrics.render(&mut out);
    out
}

/// The value of the one line that starts with `series ` (a name and its labels).
fn value(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(lines.len(), 1, "expected one {series} line in:\n{text}");
    lines[0][prefix.len()..].parse().unwrap()
}

fn slot_counts(histogram: &Histogram) -> Vec<u64> {
    histogram
        .slot_counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect()
}

#[test]
fn bucket_labels_match_their_bounds() {
    for bucket in &LATENCY_BUCKETS {
        let seconds: f64 = bucket.le.parse().unwrap();
        assert_eq!(
            (seconds * 1e9).round() as u64,
            bucket.upper_nanos,
            "{}",
            bucket.le
        );
    }
}

#[test]
fn histogram_places_values_at_inclusive_upper_bounds() {
    let histogram = Histogram::new();
    histogram.observe(Duration::ZERO);
    histogram.observe(Duration::from_micros(100));
    histogram.observe(Duration::from_nanos(100_001));
    histogram.observe(Duration::from_millis(7));
    histogram.observe(Duration::from_secs(10));
    histogram.observe(Duration::from_secs(11));
    histogram.observe(Duration::MAX);
    let mut expected = vec![0u64; BUCKET_SLOTS];
    expected[0] = 2; // 0 and exactly 0.0001
    expected[1] = 1; // just above 0.0001
    expected[6] = 1; // 0.007 lands in le=0.01
    expected[15] = 1; // exactly 10
    expected[16] = 2; // above every finite bound
    assert_eq!(slot_counts(&histogram), expected);
}

#[test]
fn histogram_renders_cumulative_buckets_with_inf_equal_to_count() {
    let histogram = Histogram::new();
    for ms in [1, 3, 3, 40, 20_000] {
        histogram.observe(Duration::from_millis(ms));
    }
    let mut out = String::new();
    histogram.render(&mut out, "t_seconds", "acks=\"all\"");
    let bucket = |le: &str| {
        value(
            &out,
            &format!("t_seconds_bucket{{acks=\"all\",le=\"{le}\"}}"),
        )
    };
    assert_eq!(bucket("0.0005"), 0.0);
    assert_eq!(bucket("0.001"), 1.0);
    assert_eq!(bucket("0.0025"), 1.0);
    assert_eq!(bucket("0.005"), 3.0);
    assert_eq!(bucket("0.05"), 4.0);
    assert_eq!(bucket("10"), 4.0);
    assert_eq!(bucket("+Inf"), 5.0);
    assert_eq!(value(&out, "t_seconds_count{acks=\"all\"}"), 5.0);
    let sum = value(&out, "t_seconds_sum{acks=\"all\"}");
    assert!((sum - 20.047).abs() < 1e-9, "sum {sum}");
    let mut previous = 0.0;
    for line in out.lines().filter(|l| l.starts_with("t_seconds_bucket")) {
        let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count >= previous, "buckets not cumulative at {line}");
        previous = count;
    }
}

#[test]
fn unlabelled_histogram_renders_without_empty_braces() {
    let histogram = Histogram::new();
    histogram.observe(Duration::from_millis(2));
    let mut out = String::new();
    histogram.render(&mut out, "f_seconds", "");
    assert_eq!(value(&out, "f_seconds_bucket{le=\"0.0025\"}"), 1.0);
    assert_eq!(value(&out, "f_seconds_count"), 1.0);
    assert_eq!(value(&out, "f_seconds_sum"), 0.002);
    assert!(!out.contains("{}"), "{out}");
}

#[test]
fn render_reports_counters_per_topic_and_outcome() {
    let metrics = Metrics::new();
    let two = Transfer {
        record_count: 2,
        bytes: 100,
    };
    let acks = AcksLabel::Level(AckLevel::Leader);
    metrics.record_produce(
        Some("orders"),
        acks,
        Outcome::Ok,
        two,
        Duration::from_millis(3),
    );
    metrics.record_produce(
        Some("orders"),
        acks,
        Outcome::Ok,
        two,
        Duration::from_millis(4),
    );
    metrics.record_produce(
        None,
        AcksLabel::Invalid,
        Outcome::Error,
        Transfer::default(),
        Duration::from_micros(50),
    );
    metrics.record_fetch(Some("orders"), Outcome::Ok, two, Duration::from_millis(500));
    metrics.topic("orders").count_delivery(Transfer {
        record_count: 1,
        bytes: 70,
    });
    let out = rendered(&metrics);
    let ok = "cairn_produce_requests_total{topic=\"orders\",outcome=\"ok\"}";
    assert_eq!(value(&out, ok), 2.0);
    let error = "cairn_produce_requests_total{topic=\"orders\",outcome=\"error\"}";
    assert_eq!(value(&out, error), 0.0);
    let unknown = "cairn_produce_requests_total{topic=\"\",outcome=\"error\"}";
    assert_eq!(value(&out, unknown), 1.0);
    assert_eq!(
        value(&out, "cairn_produce_records_total{topic=\"orders\"}"),
        4.0
    );
    assert_eq!(
        value(&out, "cairn_produce_bytes_total{topic=\"orders\"}"),
        200.0
    );
    let fetches = "cairn_fetch_requests_total{topic=\"orders\",outcome=\"ok\"}";
    assert_eq!(value(&out, fetches), 1.0);
    // The Subscribe delivery is counted apart from the unary fetch.
    assert_eq!(
        value(&out, "cairn_fetch_records_total{topic=\"orders\"}"),
        2.0
    );
    assert_eq!(
        value(&out, "cairn_fetch_bytes_total{topic=\"orders\"}"),
        100.0
    );
    assert_eq!(
        value(&out, "cairn_subscribe_records_total{topic=\"orders\"}"),
        1.0
    );
    assert_eq!(
        value(&out, "cairn_subscribe_bytes_total{topic=\"orders\"}"),
        70.0
    );
    let leader = "cairn_produce_latency_seconds_count{acks=\"leader\"}";
    assert_eq!(value(&out, leader), 2.0);
    let invalid = "cairn_produce_latency_seconds_count{acks=\"invalid\"}";
    assert_eq!(value(&out, invalid), 1.0);
    assert_eq!(
        value(&out, "cairn_produce_latency_seconds_count{acks=\"all\"}"),
        0.0
    );
    assert_eq!(value(&out, "cairn_fetch_latency_seconds_count"), 1.0);
    assert_eq!(
        value(&out, "cairn_fetch_latency_seconds_bucket{le=\"0.25\"}"),
        0.0
    );
    assert_eq!(
        value(&out, "cairn_fetch_latency_seconds_bucket{le=\"0.5\"}"),
        1.0
    );
}

#[test]
fn every_family_has_help_and_type_once() {
    let out = rendered(&Metrics::new());
    for (family, kind) in [
        ("cairn_produce_requests_total", "counter"),
        ("cairn_produce_records_total", "counter"),
        ("cairn_produce_bytes_total", "counter"),
        ("cairn_fetch_requests_total", "counter"),
        ("cairn_fetch_records_total", "counter"),
        ("cairn_fetch_bytes_total", "counter"),
        ("cairn_produce_latency_seconds", "histogram"),
        ("cairn_fetch_latency_seconds", "histogram"),
        ("cairn_subscribe_records_total", "counter"),
        ("cairn_subscribe_bytes_total", "counter"),
        ("cairn_subscribe_streams_open", "gauge"),
        ("cairn_subscribe_streams_opened_total", "counter"),
        ("cairn_admin_requests_total", "counter"),
        ("cairn_group_requests_total", "counter"),
    ] {
        let help = format!("# HELP {family} ");
        assert_eq!(out.matches(&help).count(), 1, "{family} HELP in:\n{out}");
        let kind_line = format!("# TYPE {family} {kind}\n");
        assert_eq!(
            out.matches(&kind_line).count(),
            1,
            "{family} TYPE in:\n{out}"
        );
    }
    // Untouched, the unattributed series stays out of the exposition.
    let samples: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(samples.iter().all(|l| !l.contains("topic=\"\"")), "{out}");
}

#[test]
fn topics_past_the_cap_are_counted_unattributed() {
    let metrics = Metrics::with_topic_series_max(1);
    let one = Transfer {
        record_count: 1,
        bytes: 10,
    };
    let acks = AcksLabel::Level(AckLevel::All);
    metrics.record_produce(Some("a"), acks, Outcome::Ok, one, Duration::ZERO);
    metrics.record_produce(Some("b"), acks, Outcome::Ok, one, Duration::ZERO);
    metrics.record_produce(Some("a"), acks, Outcome::Ok, one, Duration::ZERO);
    let out = rendered(&metrics);
    assert_eq!(value(&out, "cairn_produce_records_total{topic=\"a\"}"), 2.0);
    assert_eq!(value(&out, "cairn_produce_records_total{topic=\"\"}"), 1.0);
    assert!(!out.contains("topic=\"b\""), "{out}");
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    assert_eq!(escape_label_value("orders.v1-x_y"), "orders.v1-x_y");
}

#[test]
fn a_forgotten_or_vanished_topic_leaves_the_exposition() {
    let metrics = Metrics::new();
    let one = Transfer {
        record_count: 1,
        bytes: 10,
    };
    let acks = AcksLabel::Level(AckLevel::All);
    for topic in ["a", "b", "c"] {
        metrics.record_produce(Some(topic), acks, Outcome::Ok, one, Duration::ZERO);
    }
    metrics.forget_topic("a");
    metrics.retain_topics(|topic| topic != "b");
    let out = rendered(&metrics);
    assert!(!out.contains("topic=\"a\""), "{out}");
    assert!(!out.contains("topic=\"b\""), "{out}");
    assert_eq!(value(&out, "cairn_produce_records_total{topic=\"c\"}"), 1.0);
    // Created again, a topic starts from zero.
    metrics.record_produce(Some("a"), acks, Outcome::Ok, one, Duration::ZERO);
    let out = rendered(&metrics);
    assert_eq!(value(&out, "cairn_produce_records_total{topic=\"a\"}"), 1.0);
}

#[test]
fn subscribe_streams_are_open_while_their_guard_lives() {
    let metrics = Arc::new(Metrics::new());
    let first = OpenStream::open(Arc::clone(&metrics));
    let second = OpenStream::open(Arc::clone(&metrics));
    drop(first);
    let out = rendered(&metrics);
    assert_eq!(value(&out, "cairn_subscribe_streams_open"), 1.0);
    assert_eq!(value(&out, "cairn_subscribe_streams_opened_total"), 2.0);
    drop(second);
    assert_eq!(metrics.subscribe_streams().open_count(), 0);
}

#[test]
fn admin_and_group_calls_render_by_method_and_code() {
    let metrics = Metrics::new();
    let _ = metrics.admin_requests.counted("CreateTopic", Ok(()));
    let _ = metrics
        .group_requests
        .counted::<()>("Heartbeat", Err(tonic::Status::not_found("member")));
    let out = rendered(&metrics);
    assert_eq!(
        value(
            &out,
            "cairn_admin_requests_total{method=\"CreateTopic\",code=\"OK\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &out,
            "cairn_group_requests_total{method=\"Heartbeat\",code=\"NOT_FOUND\"}"
        ),
        1.0
    );
}
