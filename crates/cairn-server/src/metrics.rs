//! Request activity for `GET /metrics`: per-topic produce, fetch and Subscribe counters, two
//! latency histograms, Subscribe streams open (`streams`), Admin and Groups calls by method
//! and code (`rpc`), and node-to-node traffic per peer (held here, counted by `peer`), kept in atomics by the gRPC handlers and rendered by the HTTP endpoint in
//! the Prometheus text exposition format (version 0.0.4).
//!
//! It deliberately knows nothing of the broker's rules, holds no partition-level series (rates
//! per partition would multiply the label cardinality), and never blocks a request on I/O: a
//! handler pays one map lookup under a short `RwLock` read and a few relaxed atomic adds.
//!
//! Invariant: the label sets stay bounded. A series is keyed by a topic only once the broker has
//! confirmed the topic exists, at most [`MAX_TOPIC_SERIES`] topics get their own series, and
//! everything else (unknown topics, requests refused before a topic was named, topics past the
//! cap) is counted under `topic=""`, which no valid topic name can collide with.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cairn_broker::AckLevel;

mod rpc;
mod streams;

pub use rpc::{ADMIN_METHODS, GROUP_METHODS, RpcCounters};
pub use streams::{OpenStream, SubscribeStreams};

/// Most topics that get series of their own; later topics are counted under `topic=""`.
/// Each topic costs ten series in the exposition, so this bounds a scrape to about 33k lines
/// of counters however many topics are created and deleted over the broker's life.
pub const MAX_TOPIC_SERIES: usize = 4096;

/// One finite upper bound of the latency histograms: inclusive, in nanoseconds so placement is
/// exact integer comparison, with the `le` label spelled once here so the rendering never has
/// to format a float.
struct Bucket {
    upper_nanos: u64,
    le: &'static str,
}

const fn bucket(upper_nanos: u64, le: &'static str) -> Bucket {
    Bucket { upper_nanos, le }
}

/// The fixed latency buckets (seconds), ascending; `+Inf` is implicit.
const LATENCY_BUCKETS: [Bucket; 16] = [
    bucket(100_000, "0.0001"),
    bucket(250_000, "0.00025"),
    bucket(500_000, "0.0005"),
    bucket(1_000_000, "0.001"),
    bucket(2_500_000, "0.0025"),
    bucket(5_000_000, "0.005"),
    bucket(10_000_000, "0.01"),
    bucket(25_000_000, "0.025"),
    bucket(50_000_000, "0.05"),
    bucket(100_000_000, "0.1"),
    bucket(250_000_000, "0.25"),
    bucket(500_000_000, "0.5"),
    bucket(1_000_000_000, "1"),
    bucket(2_500_000_000, "2.5"),
    bucket(5_000_000_000, "5"),
    bucket(10_000_000_000, "10"),
];

/// Slots per histogram: one per finite bucket plus the overflow slot for `+Inf`.
const BUCKET_SLOTS: usize = LATENCY_BUCKETS.len() + 1;

// Placement by `partition_point` needs strictly ascending bounds.
const _: () = {
    let mut idx = 1;
    while idx < LATENCY_BUCKETS.len() {
        assert!(LATENCY_BUCKETS[idx - 1].upper_nanos < LATENCY_BUCKETS[idx].upper_nanos);
        idx += 1;
    }
};

/// Whether a request was answered with success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call succeeded and, for a produce, every partition took its records.
    Ok,
    /// The call failed, or (for a produce) at least one partition refused its records.
    Error,
}

/// Records and bytes moved by one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Records appended or returned.
    pub record_count: u64,
    /// Bytes appended or returned (see each counter's HELP for exactly which bytes).
    pub bytes: u64,
}

/// The `acks` label of the produce latency histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcksLabel {
    /// A known acknowledgement level.
    Level(AckLevel),
    /// The request's acks value was not one Cairn knows (the request was refused).
    Invalid,
}

impl AcksLabel {
    const ALL: [AcksLabel; 4] = [
        AcksLabel::Level(AckLevel::All),
        AcksLabel::Level(AckLevel::Leader),
        AcksLabel::Level(AckLevel::None),
        AcksLabel::Invalid,
    ];

    fn idx(self) -> usize {
        match self {
            AcksLabel::Level(AckLevel::All) => 0,
            AcksLabel::Level(AckLevel::Leader) => 1,
            AcksLabel::Level(AckLevel::None) => 2,
            AcksLabel::Invalid => 3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            AcksLabel::Level(AckLevel::All) => "all",
            AcksLabel::Level(AckLevel::Leader) => "leader",
            AcksLabel::Level(AckLevel::None) => "none",
            AcksLabel::Invalid => "invalid",
        }
    }
}

/// The counters of one topic (or of the unattributed `topic=""` series).
#[derive(Debug, Default)]
pub struct TopicCounters {
    produce_ok_count: AtomicU64,
    produce_error_count: AtomicU64,
    produce_record_count: AtomicU64,
    produce_bytes: AtomicU64,
    fetch_ok_count: AtomicU64,
    fetch_error_count: AtomicU64,
    fetch_record_count: AtomicU64,
    fetch_bytes: AtomicU64,
    subscribe_record_count: AtomicU64,
    subscribe_bytes: AtomicU64,
}

impl TopicCounters {
    /// Counts one produce request and what it appended.
    pub fn count_produce(&self, outcome: Outcome, appended: Transfer) {
        match outcome {
            Outcome::Ok => &self.produce_ok_count,
            Outcome::Error => &self.produce_error_count,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.produce_record_count
            .fetch_add(appended.record_count, Ordering::Relaxed);
        self.produce_bytes
            .fetch_add(appended.bytes, Ordering::Relaxed);
    }

    /// Counts one unary fetch request and what it returned.
    pub fn count_fetch(&self, outcome: Outcome, returned: Transfer) {
        match outcome {
            Outcome::Ok => &self.fetch_ok_count,
            Outcome::Error => &self.fetch_error_count,
        }
        .fetch_add(1, Ordering::Relaxed);
        self.fetch_record_count
            .fetch_add(returned.record_count, Ordering::Relaxed);
        self.fetch_bytes
            .fetch_add(returned.bytes, Ordering::Relaxed);
    }

    /// Counts records and bytes sent on a Subscribe stream (one message); no request is
    /// counted.
    pub fn count_delivery(&self, returned: Transfer) {
        self.subscribe_record_count
            .fetch_add(returned.record_count, Ordering::Relaxed);
        self.subscribe_bytes
            .fetch_add(returned.bytes, Ordering::Relaxed);
    }

    fn is_untouched(&self) -> bool {
        [
            &self.produce_ok_count,
            &self.produce_error_count,
            &self.produce_record_count,
            &self.produce_bytes,
            &self.fetch_ok_count,
            &self.fetch_error_count,
            &self.fetch_record_count,
            &self.fetch_bytes,
            &self.subscribe_record_count,
            &self.subscribe_bytes,
        ]
        .iter()
        .all(|c| c.load(Ordering::Relaxed) == 0)
    }
}

/// A latency histogram over [`LATENCY_BUCKETS`]: per-bucket counts (not cumulative; the
/// rendering accumulates) and the sum in nanoseconds. The count is the total of the slots, so a
/// scrape always shows `+Inf` equal to `_count`.
#[derive(Debug)]
struct Histogram {
    slot_counts: [AtomicU64; BUCKET_SLOTS],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            slot_counts: [const { AtomicU64::new(0) }; BUCKET_SLOTS],
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // `le` is inclusive: the first bucket whose bound is at or above the value.
        let slot_idx = LATENCY_BUCKETS.partition_point(|b| b.upper_nanos < nanos);
        if let Some(slot) = self.slot_counts.get(slot_idx) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Writes `_bucket`, `_sum` and `_count` lines; `labels` is empty or a `k="v"` list that
    /// every line carries before `le`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (bucket, slot) in LATENCY_BUCKETS.iter().zip(&self.slot_counts) {
            cumulative = cumulative.saturating_add(slot.load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{}\"}} {cumulative}",
                bucket.le
            );
        }
        if let Some(overflow) = self.slot_counts.last() {
            cumulative = cumulative.saturating_add(overflow.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum_seconds = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {sum_seconds}");
        let _ = writeln!(out, "{name}_count{braced} {cumulative}");
    }
}

/// All request metrics of one server, shared (as an `Arc`) by the gRPC services that count and
/// the HTTP endpoint that renders.
#[derive(Debug)]
pub struct Metrics {
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
    topic_series_max: usize,
    unattributed: Arc<TopicCounters>,
    produce_latency: [Histogram; AcksLabel::ALL.len()],
    fetch_latency: Histogram,
    subscribe_streams: SubscribeStreams,
    /// Admin service calls by method and code.
    pub admin_requests: RpcCounters<{ ADMIN_METHODS.len() }>,
    /// Groups service calls by method and code.
    pub group_requests: RpcCounters<{ GROUP_METHODS.len() }>,
    /// Node-to-node traffic per peer; hand it to the node's `PeerLinks` and `Peer` service.
    peer: Arc<crate::peer::PeerMetrics>,
    /// Failed logins and denied requests; hand it to the `AuthLayer`.
    auth: Arc<crate::auth::AuthMetrics>,
    /// Throttle time per principal; hand it to the `QuotaLayer`.
    quota: Arc<crate::quota::QuotaMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Empty metrics: every counter and histogram at zero, no topic series yet.
    pub fn new() -> Metrics {
        Metrics::with_topic_series_max(MAX_TOPIC_SERIES)
    }

    fn with_topic_series_max(topic_series_max: usize) -> Metrics {
        Metrics {
            topics: RwLock::new(HashMap::new()),
            topic_series_max,
            unattributed: Arc::new(TopicCounters::default()),
            produce_latency: [
                Histogram::new(),
                Histogram::new(),
                Histogram::new(),
                Histogram::new(),
            ],
            fetch_latency: Histogram::new(),
            subscribe_streams: SubscribeStreams::default(),
            peer: Arc::new(crate::peer::PeerMetrics::new()),
            auth: Arc::new(crate::auth::AuthMetrics::default()),
            quota: Arc::new(crate::quota::QuotaMetrics::default()),
            admin_requests: RpcCounters::new(
                "cairn_admin_requests_total",
                "Admin service calls answered, by method and gRPC status code.",
                ADMIN_METHODS,
            ),
            group_requests: RpcCounters::new(
                "cairn_group_requests_total",
                "Groups service calls answered (heartbeats, commits, group administration), by method and gRPC status code.",
                GROUP_METHODS,
            ),
        }
    }

    /// The Subscribe stream counts.
    pub fn subscribe_streams(&self) -> &SubscribeStreams {
        &self.subscribe_streams
    }

    /// Drops the series of a deleted topic, so they leave the exposition; a topic created
    /// again under the name starts from zero.
    pub fn forget_topic(&self, topic: &str) {
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(topic);
    }

    /// Drops the series of every topic `exists` says is gone: a delete that raced a request
    /// (which re-created the topic's counters after [`Metrics::forget_topic`]) is caught at
    /// the next scrape.
    pub fn retain_topics(&self, exists: impl Fn(&str) -> bool) {
        // Look under the read lock first: a scrape then never holds up the request handlers'
        // lookups unless a topic really went.
        let stale = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .any(|topic| !exists(topic));
        if stale {
            self.topics
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|topic, _| exists(topic));
        }
    }

    /// The counters of `topic`, created on first use. Pass only a topic the broker has
    /// confirmed exists: the name becomes a label value. Past [`MAX_TOPIC_SERIES`] topics, the
    /// unattributed counters are returned instead.
    pub fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        let known = self.topics.read().unwrap_or_else(|e| e.into_inner());
        if let Some(counters) = known.get(topic) {
            return Arc::clone(counters);
        }
        drop(known);
        let mut known = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if let Some(counters) = known.get(topic) {
            return Arc::clone(counters);
        }
        if known.len() >= self.topic_series_max {
            return Arc::clone(&self.unattributed);
        }
        let counters = Arc::new(TopicCounters::default());
        known.insert(topic.to_string(), Arc::clone(&counters));
        counters
    }

    /// The counters of `topic` when it is `Some` (see [`Metrics::topic`]), else the
    /// unattributed `topic=""` counters.
    pub fn topic_or_unattributed(&self, topic: Option<&str>) -> Arc<TopicCounters> {
        match topic {
            Some(name) => self.topic(name),
            None => Arc::clone(&self.unattributed),
        }
    }

    /// Records one produce request: its counters under `topic` (`None`: not attributable to an
    /// existing topic) and its latency under `acks`.
    pub fn record_produce(
        &self,
        topic: Option<&str>,
        acks: AcksLabel,
        outcome: Outcome,
        appended: Transfer,
        elapsed: Duration,
    ) {
        self.topic_or_unattributed(topic)
            .count_produce(outcome, appended);
        if let Some(histogram) = self.produce_latency.get(acks.idx()) {
            histogram.observe(elapsed);
        }
    }

    /// Records one unary fetch request: its counters under `topic` (`None`: not attributable
    /// to an existing topic) and its latency, long-poll wait included.
    pub fn record_fetch(
        &self,
        topic: Option<&str>,
        outcome: Outcome,
        returned: Transfer,
        elapsed: Duration,
    ) {
        self.topic_or_unattributed(topic)
            .count_fetch(outcome, returned);
        self.fetch_latency.observe(elapsed);
    }

    /// Appends every family, with `# HELP` and `# TYPE` lines, in the Prometheus text format
    /// (version 0.0.4). Topics are rendered in name order; each counter is read once, so a
    /// scrape racing requests may be a few increments behind but never goes backwards.
    pub fn render(&self, out: &mut String) {
        let mut topics: Vec<(String, Arc<TopicCounters>)> = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, counters)| (escape_label_value(name), Arc::clone(counters)))
            .collect();
        topics.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if !self.unattributed.is_untouched() {
            topics.push((String::new(), Arc::clone(&self.unattributed)));
        }
        for family in COUNTER_FAMILIES {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} counter", family.name);
            for (topic, counters) in &topics {
                for (outcome, counter) in (family.counters)(counters) {
                    let value = counter.load(Ordering::Relaxed);
                    let _ = match outcome {
                        Some(outcome) => writeln!(
                            out,
                            "{}{{topic=\"{topic}\",outcome=\"{outcome}\"}} {value}",
                            family.name
                        ),
                        None => writeln!(out, "{}{{topic=\"{topic}\"}} {value}", family.name),
                    };
                }
            }
        }
        self.render_latency(out);
        self.render_streams(out);
        self.admin_requests.render(out);
        self.group_requests.render(out);
        self.peer.render(out);
        self.auth.render(out);
        self.quota.render(out);
    }

    /// The quota throttle counters rendered with these metrics.
    pub fn quota_metrics(&self) -> &Arc<crate::quota::QuotaMetrics> {
        &self.quota
    }

    /// The authentication and authorization counters rendered with these metrics.
    pub fn auth_metrics(&self) -> &Arc<crate::auth::AuthMetrics> {
        &self.auth
    }

    /// The node-to-node traffic counters rendered with these metrics (nothing while no peer
    /// was seen), for the node's [`crate::peer::PeerLinks`] and [`crate::peer::peer_server`].
    pub fn peer_metrics(&self) -> &Arc<crate::peer::PeerMetrics> {
        &self.peer
    }

    fn render_streams(&self, out: &mut String) {
        let streams = &self.subscribe_streams;
        let _ = write!(
            out,
            "# HELP cairn_subscribe_streams_open Subscribe streams open now.\n\
             # TYPE cairn_subscribe_streams_open gauge\n\
             cairn_subscribe_streams_open {}\n\
             # HELP cairn_subscribe_streams_opened_total Subscribe streams opened since the server started.\n\
             # TYPE cairn_subscribe_streams_opened_total counter\n\
             cairn_subscribe_streams_opened_total {}\n",
            streams.open_count(),
            streams.opened_count()
        );
    }

    fn render_latency(&self, out: &mut String) {
        out.push_str(
            "# HELP cairn_produce_latency_seconds Produce requests, from the handler receiving the decoded request to its answer, by acks level.\n\
             # TYPE cairn_produce_latency_seconds histogram\n",
        );
        for (acks, histogram) in AcksLabel::ALL.iter().zip(&self.produce_latency) {
            let labels = format!("acks=\"{}\"", acks.name());
            histogram.render(out, "cairn_produce_latency_seconds", &labels);
        }
        out.push_str(
            "# HELP cairn_fetch_latency_seconds Unary fetch requests, from the handler receiving the decoded request to its answer; includes the long-poll wait for min_bytes (up to max_wait_ms).\n\
             # TYPE cairn_fetch_latency_seconds histogram\n",
        );
        self.fetch_latency
            .render(out, "cairn_fetch_latency_seconds", "");
    }
}

/// A counter family: its name, HELP text, and its series of one topic (with the `outcome`
/// label value, when the family has one).
struct CounterFamily {
    name: &'static str,
    help: &'static str,
    counters: fn(&TopicCounters) -> Vec<Sample<'_>>,
}

/// One series of a counter family for one topic: its `outcome` label value, when the family
/// has that label, and the counter.
type Sample<'a> = (Option<&'static str>, &'a AtomicU64);

const COUNTER_FAMILIES: [CounterFamily; 8] = [
    CounterFamily {
        name: "cairn_produce_requests_total",
        help: "Produce requests answered, by topic and outcome (error: the call failed or a partition refused its records). topic=\"\" counts requests not attributable to an existing topic.",
        counters: |c| {
            vec![
                (Some("ok"), &c.produce_ok_count),
                (Some("error"), &c.produce_error_count),
            ]
        },
    },
    CounterFamily {
        name: "cairn_produce_records_total",
        help: "Records appended by produce requests (with acks=none: queued for append), by topic.",
        counters: |c| vec![(None, &c.produce_record_count)],
    },
    CounterFamily {
        name: "cairn_produce_bytes_total",
        help: "Bytes appended by produce requests, by topic: the record batch size for pre-encoded batches; for plain records (encoded by the broker), the key, value and header bytes as received, before batch framing and compression.",
        counters: |c| vec![(None, &c.produce_bytes)],
    },
    CounterFamily {
        name: "cairn_fetch_requests_total",
        help: "Unary fetch requests answered, by topic and outcome (Subscribe streams are not counted here). topic=\"\" counts requests not attributable to an existing topic.",
        counters: |c| {
            vec![
                (Some("ok"), &c.fetch_ok_count),
                (Some("error"), &c.fetch_error_count),
            ]
        },
    },
    CounterFamily {
        name: "cairn_fetch_records_total",
        help: "Records returned by unary Fetch requests, by topic: decoded records sent, or for raw record batches the record counts of their headers (a first batch that starts before the requested offset counts whole).",
        counters: |c| vec![(None, &c.fetch_record_count)],
    },
    CounterFamily {
        name: "cairn_fetch_bytes_total",
        help: "Bytes of record batches read from the log for unary Fetch answers, by topic.",
        counters: |c| vec![(None, &c.fetch_bytes)],
    },
    CounterFamily {
        name: "cairn_subscribe_records_total",
        help: "Records sent on Subscribe streams, by topic, counted as cairn_fetch_records_total counts them.",
        counters: |c| vec![(None, &c.subscribe_record_count)],
    },
    CounterFamily {
        name: "cairn_subscribe_bytes_total",
        help: "Bytes of record batches read from the log for Subscribe stream messages, by topic.",
        counters: |c| vec![(None, &c.subscribe_bytes)],
    },
];

/// A label value escaped for the text format: backslash, double quote and line feed.
fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Appends a family of one unlabelled sample: its `# HELP` and `# TYPE` (`kind`: `gauge` or
/// `counter`) lines and the sample.
pub(crate) fn write_single_sample(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

#[cfg(test)]
mod tests;
