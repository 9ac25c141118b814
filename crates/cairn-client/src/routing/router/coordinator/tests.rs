#![allow(clippy::unwrap_used, reason = "test code")]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cairn_proto::v1::groups_client::GroupsClient;
use cairn_proto::v1::{FetchOffsetsRequest, GroupListing, GroupState};

use super::*;
use crate::connection::Timeouts;
use crate::routing::fake_cluster::{FakeCluster, FakeNode};

fn loopback(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Well beyond anything these tests wait for: only a hang reaches it.
fn patient() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

/// The id of the node that answered a `FetchOffsets` for group `g` sent through
/// `on_coordinator`.
async fn answered_by(router: &Router, deadline: Instant) -> Result<i32, ClientError> {
    let offsets = router
        .on_coordinator("g", deadline, |channel| async move {
            let request = FetchOffsetsRequest {
                group_id: "g".to_string(),
                partitions: Vec::new(),
            };
            let answer = GroupsClient::new(channel).fetch_offsets(request).await?;
            Ok(answer.into_inner().offsets)
        })
        .await?;
    Ok(offsets[0].partition)
}

fn fetches(node: &FakeNode) -> usize {
    node.fetches.load(Ordering::SeqCst)
}

/// Waits (up to ten seconds) until `done` holds.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_is_found_once_and_a_hint_moves_the_group_without_asking_again() {
    let cluster = FakeCluster::start(2, Some(2), loopback).await;
    let router = Router::connect(cluster.address(1), Timeouts::default())
        .await
        .unwrap();
    for _ in 0..5 {
        assert_eq!(answered_by(&router, patient()).await.unwrap(), 2);
    }
    assert_eq!(cluster.finds(), 1, "one FindCoordinator per group");
    assert_eq!(
        fetches(&cluster.nodes[&1]),
        0,
        "nothing sent to a non-coordinator"
    );

    // The coordinator moves: node 2 names node 1, where the retry goes at once.
    cluster.elect(Some(1));
    assert_eq!(answered_by(&router, patient()).await.unwrap(), 1);
    assert_eq!(cluster.finds(), 1, "a hint needs no FindCoordinator");
    assert_eq!(fetches(&cluster.nodes[&2]), 6);
    assert_eq!(answered_by(&router, patient()).await.unwrap(), 1);
    assert_eq!(fetches(&cluster.nodes[&2]), 6, "the hint was remembered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waits_out_an_election_and_the_new_coordinator_loading_the_group() {
    let cluster = FakeCluster::start(2, Some(1), loopback).await;
    let router = Router::connect(cluster.address(1), Timeouts::default())
        .await
        .unwrap();
    assert_eq!(answered_by(&router, patient()).await.unwrap(), 1);

    cluster.elect(None);
    let truth = Arc::clone(&cluster.truth);
    let (old, new) = (
        Arc::clone(&cluster.nodes[&1]),
        Arc::clone(&cluster.nodes[&2]),
    );
    let election = tokio::spawn(async move {
        // Node 2 wins once the call has been refused twice for want of a coordinator, and
        // loads the group until it has refused the call once more.
        wait_until("refusals during the election", || fetches(&old) >= 3).await;
        {
            let mut truth = truth.lock().unwrap();
            truth.coordinator = Some(2);
            truth.loading = true;
        }
        wait_until("a refusal while loading", || fetches(&new) >= 1).await;
        truth.lock().unwrap().loading = false;
    });
    assert_eq!(answered_by(&router, patient()).await.unwrap(), 2);
    election.await.unwrap();
    assert!(
        fetches(&cluster.nodes[&2]) >= 2,
        "refused while loading, then answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_that_stays_unavailable_fails_the_call_with_a_retriable_error() {
    let cluster = FakeCluster::start(2, None, loopback).await;
    let router = Router::connect(cluster.address(1), Timeouts::default())
        .await
        .unwrap();
    let error = answered_by(&router, Instant::now() + Duration::from_millis(400))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::CoordinatorNotAvailable));
    assert!(error.is_retriable());
    assert!(
        fetches(&cluster.nodes[&1]) >= 2,
        "retried before giving up: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_coordinator_is_forgotten_and_its_successor_found() {
    let cluster = FakeCluster::start(2, Some(2), loopback).await;
    let router = Router::connect(cluster.address(1), Timeouts::default())
        .await
        .unwrap();
    assert_eq!(answered_by(&router, patient()).await.unwrap(), 2);
    cluster.stop(2).await;
    cluster.elect(Some(1));
    assert_eq!(answered_by(&router, patient()).await.unwrap(), 1);
    assert_eq!(cluster.finds(), 2, "found again after the coordinator died");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_is_its_own_coordinator_over_the_one_channel_with_no_metadata_read() {
    let cluster = FakeCluster::start(1, Some(1), loopback).await;
    let address = cluster.address(1).to_string();
    let router = Router::connect(&address, Timeouts::default())
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(answered_by(&router, patient()).await.unwrap(), 1);
    }
    assert_eq!(&*router.coordinator("g").await.address, address.as_str());
    assert_eq!(cluster.finds(), 1);
    assert_eq!(cluster.nodes[&1].metadata_reads.load(Ordering::SeqCst), 0);
    assert_eq!(lock(&router.shared.channels).len(), 1, "one channel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_advertised_under_another_name_keeps_the_one_channel() {
    let cluster = FakeCluster::start(1, Some(1), |port| format!("localhost:{port}")).await;
    let address = cluster.address(1).to_string();
    let router = Router::connect(&address, Timeouts::default())
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(answered_by(&router, patient()).await.unwrap(), 1);
    }
    assert_eq!(&*router.coordinator("g").await.address, address.as_str());
    assert_eq!(cluster.finds(), 1);
    assert_eq!(
        cluster.nodes[&1].metadata_reads.load(Ordering::SeqCst),
        1,
        "one metadata read tells the advertised name is the node dialled"
    );
    assert_eq!(lock(&router.shared.channels).len(), 1, "one channel");
}

fn listing(group_id: &str, state: GroupState, member_count: i32) -> GroupListing {
    GroupListing {
        group_id: group_id.to_string(),
        state: state as i32,
        member_count,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_groups_asks_every_node_merges_and_leaves_out_a_dead_one() {
    let cluster = FakeCluster::start(3, Some(1), loopback).await;
    *cluster.nodes[&1].listed.lock().unwrap() = vec![listing("orders", GroupState::Stable, 2)];
    *cluster.nodes[&2].listed.lock().unwrap() = vec![
        listing("audit", GroupState::Empty, 0),
        listing("orders", GroupState::Empty, 0),
    ];
    *cluster.nodes[&3].listed.lock().unwrap() = vec![listing("billing", GroupState::Stable, 1)];
    let admin = crate::GroupAdmin::connect(cluster.address(1))
        .await
        .unwrap();
    let listed = admin.list_groups().await.unwrap();
    assert_eq!(
        listed,
        vec![
            listing("audit", GroupState::Empty, 0),
            listing("billing", GroupState::Stable, 1),
            listing("orders", GroupState::Stable, 2),
        ]
    );
    cluster.stop(3).await;
    let listed = admin.list_groups().await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(ids, ["audit", "orders"]);
}
