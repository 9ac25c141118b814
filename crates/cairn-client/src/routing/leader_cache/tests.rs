use std::time::{Duration, Instant};

use cairn_proto::v1::{MetadataResponse, Node, PartitionMetadata, TopicMetadata};

use super::*;

const RETRY: Duration = Duration::from_millis(100);

/// Three nodes at `n1`..`n3`; `orders` with one partition per leader id given (-1: none).
fn metadata(answering: i32, leaders: &[i32]) -> MetadataResponse {
    MetadataResponse {
        nodes: (1..=3)
            .map(|id| Node {
                node_id: id,
                address: format!("n{id}:1"),
            })
            .collect(),
        topics: vec![TopicMetadata {
            name: "orders".to_string(),
            partitions: leaders
                .iter()
                .enumerate()
                .map(|(p, &leader_id)| PartitionMetadata {
                    partition: p as i32,
                    leader_id,
                    ..Default::default()
                })
                .collect(),
        }],
        node_id: answering,
        version: String::new(),
    }
}

fn asked() -> Vec<String> {
    vec!["orders".to_string()]
}

fn leader(address: &str) -> Lookup {
    Lookup::Leader(Arc::from(address))
}

#[test]
fn an_empty_cache_asks_for_metadata_and_then_routes_each_partition_to_its_leader() {
    let now = Instant::now();
    let mut cache = LeaderCache::default();
    assert_eq!(cache.lookup("orders", 0, now, RETRY), Lookup::Refresh);
    cache.apply(&metadata(1, &[1, 2, 3]), "n1:1", &asked(), now);
    assert_eq!(cache.lookup("orders", 0, now, RETRY), leader("n1:1"));
    assert_eq!(cache.lookup("orders", 1, now, RETRY), leader("n2:1"));
    assert_eq!(cache.lookup("orders", 2, now, RETRY), leader("n3:1"));
    assert_eq!(
        cache.partition_count("orders", now, METADATA_MAX_AGE),
        Some(3)
    );
    assert!(cache.is_cluster());
}

#[test]
fn the_answering_node_is_reached_where_the_client_reached_it() {
    let now = Instant::now();
    let mut cache = LeaderCache::default();
    // A single node bound to 0.0.0.0 advertises an address the client did not dial.
    let single = MetadataResponse {
        nodes: vec![Node {
            node_id: 1,
            address: "0.0.0.0:7070".to_string(),
        }],
        topics: metadata(1, &[1, 1]).topics,
        node_id: 1,
        version: String::new(),
    };
    cache.apply(&single, "127.0.0.1:7070", &asked(), now);
    assert_eq!(
        cache.lookup("orders", 1, now, RETRY),
        leader("127.0.0.1:7070")
    );
    assert!(!cache.is_cluster());
    // A hint naming the advertised address maps to the same reachable one.
    cache.on_not_leader("orders", 0, Some("0.0.0.0:7070"));
    assert_eq!(
        cache.lookup("orders", 0, now, RETRY),
        leader("127.0.0.1:7070")
    );
}

#[test]
fn a_not_leader_hint_routes_the_retry_straight_to_the_named_leader() {
    let now = Instant::now();
    let mut cache = LeaderCache::default();
    cache.apply(&metadata(1, &[1, 2, 3]), "n1:1", &asked(), now);
    cache.on_not_leader("orders", 1, Some("n3:1"));
    assert_eq!(cache.lookup("orders", 1, now, RETRY), leader("n3:1"));
    // Without a hint the entry is stale: metadata must be read again.
    cache.on_not_leader("orders", 2, None);
    assert_eq!(cache.lookup("orders", 2, now, RETRY), Lookup::Refresh);
    // Other partitions keep what they had.
    assert_eq!(cache.lookup("orders", 0, now, RETRY), leader("n1:1"));
    // A hint for a partition the cache does not know changes nothing.
    cache.on_not_leader("orders", 9, Some("n3:1"));
    cache.on_not_leader("other", 0, Some("n3:1"));
    assert_eq!(cache.lookup("other", 0, now, RETRY), Lookup::Refresh);
}

#[test]
fn an_unreachable_leader_makes_every_partition_it_led_stale() {
    let now = Instant::now();
    let mut cache = LeaderCache::default();
    cache.apply(&metadata(1, &[2, 2, 3]), "n1:1", &asked(), now);
    cache.on_unreachable("n2:1");
    assert_eq!(cache.lookup("orders", 0, now, RETRY), Lookup::Refresh);
    assert_eq!(cache.lookup("orders", 1, now, RETRY), Lookup::Refresh);
    assert_eq!(cache.lookup("orders", 2, now, RETRY), leader("n3:1"));
    // The next read names the new leader.
    cache.apply(&metadata(1, &[1, 3, 3]), "n1:1", &asked(), now);
    assert_eq!(cache.lookup("orders", 0, now, RETRY), leader("n1:1"));
    assert_eq!(cache.lookup("orders", 1, now, RETRY), leader("n3:1"));
}

#[test]
fn a_partition_without_a_leader_is_asked_about_again() {
    let now = Instant::now();
    let mut cache = LeaderCache::default();
    cache.apply(&metadata(1, &[-1, 7]), "n1:1", &asked(), now);
    assert_eq!(cache.lookup("orders", 0, now, RETRY), Lookup::Refresh);
    // A leader id the node list does not have is no leader either.
    assert_eq!(cache.lookup("orders", 1, now, RETRY), Lookup::Refresh);
}

#[test]
fn unknown_topics_and_partitions_go_to_any_node_until_the_retry_interval_passes() {
    let now = Instant::now();
    let mut cache = LeaderCache::default();
    cache.apply(&metadata(1, &[1]), "n1:1", &asked(), now);
    assert_eq!(cache.lookup("orders", 5, now, RETRY), Lookup::Unknown);
    assert_eq!(cache.lookup("orders", -1, now, RETRY), Lookup::Unknown);
    let both = vec!["orders".to_string(), "gone".to_string()];
    cache.apply(&metadata(1, &[1]), "n1:1", &both, now);
    assert_eq!(cache.lookup("gone", 0, now, RETRY), Lookup::Unknown);
    assert_eq!(cache.lookup("gone", 0, now + RETRY, RETRY), Lookup::Refresh);
    // A topic that disappears from the metadata is forgotten.
    let deleted = MetadataResponse {
        topics: Vec::new(),
        ..metadata(1, &[])
    };
    cache.apply(&deleted, "n1:1", &asked(), now);
    assert_eq!(cache.partition_count("orders", now, METADATA_MAX_AGE), None);
}

#[test]
fn metadata_older_than_its_max_age_is_read_again() {
    let now = Instant::now();
    let mut cache = LeaderCache::default();
    cache.apply(&metadata(1, &[1]), "n1:1", &asked(), now);
    let later = now + METADATA_MAX_AGE;
    assert_eq!(cache.lookup("orders", 0, later, RETRY), Lookup::Refresh);
    assert_eq!(
        cache.partition_count("orders", later, METADATA_MAX_AGE),
        None
    );
}

#[test]
fn refreshes_are_paced_and_ask_for_every_cached_topic() {
    let now = Instant::now();
    let mut cache = LeaderCache::default();
    assert_eq!(cache.refresh_wait(now, RETRY), Duration::ZERO);
    cache.apply(&metadata(1, &[1]), "n1:1", &asked(), now);
    assert_eq!(cache.refresh_wait(now, RETRY), RETRY);
    assert_eq!(
        cache.refresh_wait(now + Duration::from_millis(30), RETRY),
        Duration::from_millis(70)
    );
    assert_eq!(cache.refresh_wait(now + RETRY * 2, RETRY), Duration::ZERO);
    assert_eq!(cache.topics_to_ask("audit"), ["audit", "orders"]);
    assert_eq!(cache.topics_to_ask("orders"), ["orders"]);
    assert_eq!(cache.node_addresses().len(), 3);
}
