use std::time::Instant;

use cairn_proto::v1::{MetadataResponse, Node};

use super::*;

fn error(code: ErrorCode, leader: Option<&str>) -> ClientError {
    ClientError::Broker {
        code,
        status: tonic::Code::FailedPrecondition,
        message: "refused".to_string(),
        leader: leader.map(str::to_string),
    }
}

/// The identity: hints are reached at the address they name.
fn same(hint: &str) -> Arc<str> {
    Arc::from(hint)
}

fn cache_with(group: &str, address: &str) -> CoordinatorCache {
    let mut cache = CoordinatorCache::default();
    cache.insert(group, Arc::from(address));
    cache
}

fn at(cache: &CoordinatorCache, group: &str) -> Option<String> {
    cache.lookup(group).map(|a| a.to_string())
}

/// Three nodes `n1:1`..`n3:1`, as node `answering` answers, read through `via`.
fn leaders(answering: i32, via: &str) -> LeaderCache {
    let mut cache = LeaderCache::default();
    let response = MetadataResponse {
        nodes: (1..=3)
            .map(|id| Node {
                node_id: id,
                address: format!("n{id}:1"),
            })
            .collect(),
        topics: Vec::new(),
        node_id: answering,
        version: String::new(),
    };
    cache.apply(&response, via, &[], Instant::now());
    cache
}

#[test]
fn not_coordinator_with_a_hint_sends_the_group_to_the_named_node() {
    let mut cache = cache_with("g", "n1:1");
    let moved = error(ErrorCode::NotCoordinator, Some("n2:1"));
    assert_eq!(cache.on_error("g", "n1:1", &moved, same), Verdict::Moved);
    assert_eq!(at(&cache, "g").as_deref(), Some("n2:1"));
    // Other groups are not touched.
    cache.insert("h", Arc::from("n3:1"));
    let moved = error(ErrorCode::NotCoordinator, Some("n1:1"));
    assert_eq!(cache.on_error("g", "n2:1", &moved, same), Verdict::Moved);
    assert_eq!(at(&cache, "h").as_deref(), Some("n3:1"));
}

#[test]
fn a_hint_is_mapped_to_the_address_the_client_reaches_the_node_at() {
    let mut cache = CoordinatorCache::default();
    let moved = error(ErrorCode::NotCoordinator, Some("0.0.0.0:7070"));
    let reach = |hint: &str| -> Arc<str> {
        assert_eq!(hint, "0.0.0.0:7070");
        Arc::from("127.0.0.1:7070")
    };
    assert_eq!(cache.on_error("g", "n9:1", &moved, reach), Verdict::Moved);
    assert_eq!(at(&cache, "g").as_deref(), Some("127.0.0.1:7070"));
}

#[test]
fn errors_that_leave_the_coordinator_unknown_forget_the_entry() {
    let cases = [
        error(ErrorCode::NotCoordinator, None),
        error(ErrorCode::NotCoordinator, Some("")),
        error(ErrorCode::CoordinatorNotAvailable, None),
    ];
    for case in cases {
        let mut cache = cache_with("g", "n1:1");
        assert_eq!(
            cache.on_error("g", "n1:1", &case, same),
            Verdict::Forgotten,
            "{case:?}"
        );
        assert_eq!(at(&cache, "g"), None, "{case:?}");
    }
}

#[test]
fn an_unreachable_coordinator_is_forgotten() {
    let failures = [
        ClientError::from(tonic::Status::unavailable("connection refused")),
        ClientError::from(tonic::Status::deadline_exceeded("late")),
        ClientError::Connect {
            attempts: Vec::new(),
        },
    ];
    for failure in failures {
        let mut cache = cache_with("g", "n1:1");
        assert_eq!(
            cache.on_error("g", "n1:1", &failure, same),
            Verdict::Unreachable,
            "{failure:?}"
        );
        assert_eq!(at(&cache, "g"), None, "{failure:?}");
    }
}

#[test]
fn a_coordinator_loading_the_group_is_kept() {
    let mut cache = cache_with("g", "n1:1");
    let loading = error(ErrorCode::CoordinatorLoadInProgress, None);
    assert_eq!(
        cache.on_error("g", "n1:1", &loading, same),
        Verdict::Loading
    );
    assert_eq!(at(&cache, "g").as_deref(), Some("n1:1"));
}

#[test]
fn answers_about_the_call_itself_change_nothing() {
    for code in [
        ErrorCode::UnknownMemberId,
        ErrorCode::FencedMemberEpoch,
        ErrorCode::GroupIdNotFound,
        ErrorCode::NonEmptyGroup,
        ErrorCode::InvalidGroupId,
        // A NOT_LEADER is about a partition, not the group.
        ErrorCode::NotLeader,
    ] {
        let mut cache = cache_with("g", "n1:1");
        let refused = error(code, Some("n2:1"));
        assert_eq!(
            cache.on_error("g", "n1:1", &refused, same),
            Verdict::Unrelated,
            "{code:?}"
        );
        assert_eq!(at(&cache, "g").as_deref(), Some("n1:1"), "{code:?}");
    }
}

#[test]
fn a_late_error_from_a_former_coordinator_does_not_undo_a_newer_answer() {
    let mut cache = cache_with("g", "n2:1");
    // n1 was the coordinator when these calls were sent; n2 has been named since.
    let gone = error(ErrorCode::CoordinatorNotAvailable, None);
    assert_eq!(cache.on_error("g", "n1:1", &gone, same), Verdict::Forgotten);
    let refused = ClientError::from(tonic::Status::unavailable("reset"));
    assert_eq!(
        cache.on_error("g", "n1:1", &refused, same),
        Verdict::Unreachable
    );
    let stale_hint = error(ErrorCode::NotCoordinator, Some("n3:1"));
    assert_eq!(
        cache.on_error("g", "n1:1", &stale_hint, same),
        Verdict::Moved
    );
    assert_eq!(at(&cache, "g").as_deref(), Some("n2:1"));
    // With no entry at all, a hint is the best there is.
    let mut empty = CoordinatorCache::default();
    assert_eq!(
        empty.on_error("g", "n1:1", &stale_hint, same),
        Verdict::Moved
    );
    assert_eq!(at(&empty, "g").as_deref(), Some("n3:1"));
}

#[test]
fn a_node_that_names_itself_as_the_coordinator_it_is_not_is_forgotten() {
    let mut cache = cache_with("g", "n1:1");
    let contradiction = error(ErrorCode::NotCoordinator, Some("n1:1"));
    assert_eq!(
        cache.on_error("g", "n1:1", &contradiction, same),
        Verdict::Forgotten
    );
    assert_eq!(at(&cache, "g"), None);
}

#[test]
fn the_cache_holds_at_most_its_limit_of_groups() {
    let mut cache = CoordinatorCache::default();
    for index in 0..COORDINATOR_CACHE_GROUPS_MAX + 10 {
        cache.insert(&format!("g{index}"), Arc::from("n1:1"));
    }
    assert_eq!(cache.groups.len(), COORDINATOR_CACHE_GROUPS_MAX);
    let last = format!("g{}", COORDINATOR_CACHE_GROUPS_MAX + 9);
    assert_eq!(at(&cache, &last).as_deref(), Some("n1:1"));
    // Updating a cached group evicts nothing.
    cache.insert(&last, Arc::from("n2:1"));
    assert_eq!(cache.groups.len(), COORDINATOR_CACHE_GROUPS_MAX);
    assert_eq!(at(&cache, &last).as_deref(), Some("n2:1"));
}

#[test]
fn the_node_that_answered_find_coordinator_about_itself_needs_no_metadata() {
    let empty = LeaderCache::default();
    assert_eq!(
        resolve(&empty, 1, "127.0.0.1:7070", "127.0.0.1:7070").as_deref(),
        Some("127.0.0.1:7070")
    );
    // Another address, and no metadata read yet: it may be the same node under another name.
    assert_eq!(resolve(&empty, 1, "localhost:7070", "127.0.0.1:7070"), None);
    assert_eq!(resolve(&empty, 2, "n2:1", "n1:1"), None);
}

#[test]
fn a_coordinator_is_reached_where_the_metadata_says_the_client_reaches_its_node() {
    // Node 1 answered the metadata through 127.0.0.1:7070, advertising n1:1.
    let known = leaders(1, "127.0.0.1:7070");
    assert_eq!(
        resolve(&known, 1, "n1:1", "127.0.0.1:7070").as_deref(),
        Some("127.0.0.1:7070")
    );
    assert_eq!(
        resolve(&known, 2, "n2:1", "127.0.0.1:7070").as_deref(),
        Some("n2:1")
    );
    // A node the read did not list: its advertised address, or the alias of the node that
    // answered when it is that one's.
    assert_eq!(
        resolve(&known, 9, "n9:1", "127.0.0.1:7070").as_deref(),
        Some("n9:1")
    );
    assert_eq!(
        resolve(&known, 9, "n1:1", "127.0.0.1:7070").as_deref(),
        Some("127.0.0.1:7070")
    );
}

#[test]
fn a_hinted_coordinator_is_retried_at_once_but_not_twice_in_a_row() {
    let hint = error(ErrorCode::NotCoordinator, Some("n2:1"));
    assert_eq!(retry_pause(&hint, false, 0), Duration::ZERO);
    assert_eq!(retry_pause(&hint, true, 0), COORDINATOR_RETRY_BACKOFF);
    let gone = error(ErrorCode::CoordinatorNotAvailable, None);
    assert_eq!(retry_pause(&gone, false, 0), COORDINATOR_RETRY_BACKOFF);
    assert_eq!(retry_pause(&gone, false, 1), COORDINATOR_RETRY_BACKOFF * 2);
    assert_eq!(retry_pause(&gone, false, 2), COORDINATOR_RETRY_BACKOFF_MAX);
    assert_eq!(
        retry_pause(&gone, false, u32::MAX),
        COORDINATOR_RETRY_BACKOFF_MAX
    );
    let no_hint = error(ErrorCode::NotCoordinator, Some(""));
    assert_eq!(retry_pause(&no_hint, false, 0), COORDINATOR_RETRY_BACKOFF);
}
