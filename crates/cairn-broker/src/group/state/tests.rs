use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition {
        topic: topic.to_string(),
        partition,
    }
}

fn topics(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(t, c)| (t.to_string(), *c)).collect()
}

fn subscription(list: &[&str]) -> Option<BTreeSet<String>> {
    Some(list.iter().map(|t| t.to_string()).collect())
}

/// A well-behaved client of the state machine: it owns what it was last given.
#[derive(Clone, Debug)]
struct Client {
    id: String,
    epoch: i32,
    owned: BTreeSet<TopicPartition>,
}

fn join(
    group: &mut Group,
    id: &str,
    subscribed: &[&str],
    t: &BTreeMap<String, u32>,
    now: u64,
) -> Client {
    let out = group
        .heartbeat(
            HeartbeatInput {
                member_id: id.to_string(),
                subscribed: subscription(subscribed),
                ..HeartbeatInput::default()
            },
            t,
            now,
            || unreachable!("the id is given"),
        )
        .expect("join");
    Client {
        id: out.member_id,
        epoch: out.member_epoch,
        owned: out.assignment,
    }
}

fn beat(
    group: &mut Group,
    client: &mut Client,
    t: &BTreeMap<String, u32>,
    now: u64,
) -> HeartbeatOutput {
    let out = group
        .heartbeat(
            HeartbeatInput {
                member_id: client.id.clone(),
                member_epoch: client.epoch,
                owned: client.owned.clone(),
                ..HeartbeatInput::default()
            },
            t,
            now,
            || unreachable!("not a join"),
        )
        .expect("heartbeat");
    client.epoch = out.member_epoch;
    client.owned = out.assignment.clone();
    out
}

/// No partition is granted to two members, and every owner index entry matches a grant.
fn assert_exclusive(group: &Group) {
    let mut seen = BTreeMap::new();
    for (id, member) in &group.members {
        for partition in member.granted.keys() {
            if let Some(other) = seen.insert(partition.clone(), id.clone()) {
                panic!("{partition:?} granted to both {other} and {id}");
            }
        }
    }
    let owners: BTreeMap<TopicPartition, String> = group.owners.clone();
    assert_eq!(owners, seen, "owner index out of step with grants");
}

#[test]
fn a_lone_member_gets_every_partition_and_the_group_is_stable() {
    let t = topics(&[("orders", 6)]);
    let mut group = Group::new("g");
    assert_eq!(group.state(), GroupState::Empty);
    let client = join(&mut group, "a", &["orders"], &t, 0);
    assert_eq!(client.owned.len(), 6);
    assert_eq!(client.epoch, 1);
    assert_eq!(group.state(), GroupState::Stable);
}

#[test]
fn a_partition_moves_only_after_its_old_owner_gives_it_up() {
    let t = topics(&[("orders", 6)]);
    let mut group = Group::new("g");
    let mut a = join(&mut group, "a", &["orders"], &t, 0);
    let mut b = join(&mut group, "b", &["orders"], &t, 1);
    assert!(b.owned.is_empty(), "a still owns everything: {:?}", b.owned);
    assert_eq!(group.state(), GroupState::Assigning);
    assert_exclusive(&group);
    // a is told to keep three; until it says it let the others go, b gets nothing.
    let out = beat(&mut group, &mut a, &t, 2);
    assert_eq!(out.assignment.len(), 3);
    assert_exclusive(&group);
    beat(&mut group, &mut b, &t, 3);
    assert!(b.owned.is_empty());
    // a's next heartbeat no longer lists them: they are free, and b takes them.
    beat(&mut group, &mut a, &t, 4);
    let out = beat(&mut group, &mut b, &t, 5);
    assert_eq!(out.assignment.len(), 3);
    assert!(a.owned.is_disjoint(&b.owned));
    assert_eq!(group.state(), GroupState::Stable);
    assert_exclusive(&group);
}

#[test]
fn a_leaving_member_hands_its_partitions_to_the_rest() {
    let t = topics(&[("orders", 4)]);
    let mut group = Group::new("g");
    let mut a = join(&mut group, "a", &["orders"], &t, 0);
    let mut b = join(&mut group, "b", &["orders"], &t, 0);
    for now in 1..4 {
        beat(&mut group, &mut a, &t, now);
        beat(&mut group, &mut b, &t, now);
    }
    assert_eq!((a.owned.len(), b.owned.len()), (2, 2));
    let left = group
        .heartbeat(
            HeartbeatInput {
                member_id: "b".into(),
                member_epoch: -1,
                ..HeartbeatInput::default()
            },
            &t,
            5,
            String::new,
        )
        .expect("leave");
    assert_eq!(left.member_epoch, -1);
    let out = beat(&mut group, &mut a, &t, 6);
    assert_eq!(out.assignment.len(), 4);
    assert_eq!(group.state(), GroupState::Stable);
}

#[test]
fn a_silent_member_is_removed_after_the_session_timeout() {
    let t = topics(&[("orders", 4)]);
    let mut group = Group::new("g");
    let mut a = join(&mut group, "a", &["orders"], &t, 0);
    let mut b = join(&mut group, "b", &["orders"], &t, 0);
    for now in 1..4 {
        beat(&mut group, &mut a, &t, now);
        beat(&mut group, &mut b, &t, now);
    }
    let timeout = u64::from(DEFAULT_SESSION_TIMEOUT_MS);
    assert!(group.expire(&t, 3 + timeout).is_empty(), "not yet");
    beat(&mut group, &mut a, &t, 3 + timeout);
    assert_eq!(group.expire(&t, 4 + timeout), vec!["b".to_string()]);
    let out = beat(&mut group, &mut a, &t, 5 + timeout);
    assert_eq!(out.assignment.len(), 4);
    // The removed member is a zombie now: everything it tries is refused.
    let err = group
        .check_owner("b", b.epoch, b.owned.iter())
        .expect_err("zombie commit");
    assert!(matches!(err, BrokerError::UnknownMember { .. }), "{err}");
    let err = group
        .heartbeat(
            HeartbeatInput {
                member_id: "b".into(),
                member_epoch: b.epoch,
                ..HeartbeatInput::default()
            },
            &t,
            6 + timeout,
            String::new,
        )
        .expect_err("zombie heartbeat");
    assert!(matches!(err, BrokerError::UnknownMember { .. }), "{err}");
}

#[test]
fn commits_are_checked_against_epochs_and_ownership() {
    let t = topics(&[("orders", 2)]);
    let mut group = Group::new("g");
    assert!(
        group.check_owner("", -1, [&tp("orders", 0)]).is_ok(),
        "empty group"
    );
    let mut a = join(&mut group, "a", &["orders"], &t, 0);
    let err = group
        .check_owner("", -1, [&tp("orders", 0)])
        .expect_err("outsider");
    assert!(matches!(err, BrokerError::UnknownMember { .. }), "{err}");
    assert!(group.check_owner("a", a.epoch, a.owned.iter()).is_ok());
    let err = group
        .check_owner("a", a.epoch + 1, [&tp("orders", 0)])
        .expect_err("future epoch");
    assert!(
        matches!(err, BrokerError::FencedMemberEpoch { .. }),
        "{err}"
    );
    let err = group
        .check_owner("a", a.epoch, [&tp("orders", 9)])
        .expect_err("not owned");
    assert!(
        matches!(err, BrokerError::PartitionNotAssigned { .. }),
        "{err}"
    );
    // b joins and later takes partition 1 at a newer epoch; a keeps partition 0, granted at
    // its first epoch, so a commit at that old epoch is still fine for it.
    let first_epoch = a.epoch;
    let mut b = join(&mut group, "b", &["orders"], &t, 1);
    beat(&mut group, &mut a, &t, 2);
    beat(&mut group, &mut a, &t, 3);
    beat(&mut group, &mut b, &t, 4);
    let bs = b.owned.iter().next().cloned().expect("b owns one");
    let kept = a.owned.iter().next().cloned().expect("a kept one");
    assert!(group.check_owner("a", first_epoch, [&kept]).is_ok());
    let err = group
        .check_owner("b", b.epoch - 1, [&bs])
        .expect_err("older than the grant");
    assert!(matches!(err, BrokerError::StaleMemberEpoch { .. }), "{err}");
    let err = group
        .check_owner("a", a.epoch, [&bs])
        .expect_err("moved to b");
    assert!(
        matches!(err, BrokerError::PartitionNotAssigned { .. }),
        "{err}"
    );
}

#[test]
fn a_lost_answer_is_forgiven_but_an_invented_epoch_is_fenced() {
    let t = topics(&[("orders", 2)]);
    let mut group = Group::new("g");
    let mut a = join(&mut group, "a", &["orders"], &t, 0);
    let old = a.clone();
    let _b = join(&mut group, "b", &["orders"], &t, 1);
    beat(&mut group, &mut a, &t, 2); // told to revoke one
    beat(&mut group, &mut a, &t, 3); // revoked; moves to the new epoch
    assert!(a.epoch > old.epoch);
    // The answer that moved a on was lost: a heartbeats with its previous epoch, owning a
    // subset of what it was granted. That is accepted.
    let mut retry = Client {
        epoch: old.epoch,
        owned: a.owned.clone(),
        ..old.clone()
    };
    beat(&mut group, &mut retry, &t, 4);
    assert_eq!(retry.epoch, a.epoch);
    let err = group
        .heartbeat(
            HeartbeatInput {
                member_id: "a".into(),
                member_epoch: 77,
                ..HeartbeatInput::default()
            },
            &t,
            5,
            String::new,
        )
        .expect_err("invented epoch");
    assert!(
        matches!(err, BrokerError::FencedMemberEpoch { .. }),
        "{err}"
    );
}

#[test]
fn bad_heartbeats_are_refused_with_the_reason() {
    let t = topics(&[("orders", 2)]);
    let mut group = Group::new("g");
    let cases = [
        HeartbeatInput::default(),
        HeartbeatInput {
            subscribed: subscription(&["orders"]),
            session_timeout_ms: 10,
            ..HeartbeatInput::default()
        },
        HeartbeatInput {
            member_id: "bad\nid".into(),
            subscribed: subscription(&["orders"]),
            ..HeartbeatInput::default()
        },
        HeartbeatInput {
            member_epoch: -7,
            ..HeartbeatInput::default()
        },
    ];
    for input in cases {
        let err = group
            .heartbeat(input.clone(), &t, 0, || "m".into())
            .expect_err("refused");
        assert!(
            matches!(err, BrokerError::InvalidRequest(_)),
            "{input:?}: {err}"
        );
    }
    assert_eq!(group.member_count(), 0);
    assert_eq!(group.epoch(), 0, "a refused heartbeat changes nothing");
}

#[test]
fn new_partitions_of_a_subscribed_topic_are_assigned() {
    let mut t = topics(&[("orders", 2)]);
    let mut group = Group::new("g");
    let mut a = join(&mut group, "a", &["orders"], &t, 0);
    t.insert("orders".into(), 4);
    let out = beat(&mut group, &mut a, &t, 1);
    assert_eq!(out.assignment.len(), 4);
}

#[derive(Clone, Debug)]
enum Step {
    Join(usize),
    Beat(usize),
    Leave(usize),
    /// The client stops heartbeating (a crash) and time passes.
    Crash(usize),
    Tick(u64),
    Grow(u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0usize..5).prop_map(Step::Join),
        8 => (0usize..5).prop_map(Step::Beat),
        1 => (0usize..5).prop_map(Step::Leave),
        1 => (0usize..5).prop_map(Step::Crash),
        2 => (0u64..20_000).prop_map(Step::Tick),
        1 => (1u32..4).prop_map(Step::Grow),
    ]
}

/// Even-numbered clients read orders and payments, odd ones orders only.
fn subscription_of(i: usize) -> &'static [&'static str] {
    if i.is_multiple_of(2) {
        &["orders", "payments"]
    } else {
        &["orders"]
    }
}

/// A heartbeat; a client whose session ran out (it was silent too long) rejoins, as the
/// real client does on UNKNOWN_MEMBER_ID.
fn beat_or_rejoin(
    group: &mut Group,
    client: &mut Client,
    i: usize,
    t: &BTreeMap<String, u32>,
    now: u64,
) {
    let input = HeartbeatInput {
        member_id: client.id.clone(),
        member_epoch: client.epoch,
        owned: client.owned.clone(),
        ..HeartbeatInput::default()
    };
    match group.heartbeat(input, t, now, String::new) {
        Ok(out) => {
            client.epoch = out.member_epoch;
            client.owned = out.assignment;
        }
        Err(BrokerError::UnknownMember { .. }) => {
            *client = join(group, &client.id.clone(), subscription_of(i), t, now);
        }
        Err(err) => panic!("unexpected {err}"),
    }
}

proptest! {
    /// Whatever clients do, no partition ever has two owners; once the live members keep
    /// heartbeating, the group becomes stable with every partition owned.
    #[test]
    fn never_two_owners_and_always_converges(steps in proptest::collection::vec(step(), 1..80)) {
        let mut t = topics(&[("orders", 6), ("payments", 3)]);
        let mut group = Group::new("g");
        let mut clients: Vec<Option<Client>> = vec![None; 5];
        let mut now = 0u64;
        for step in steps {
            now += 10;
            match step {
                Step::Join(i) if clients[i].is_none() => {
                    clients[i] = Some(join(&mut group, &format!("m{i}"), subscription_of(i), &t, now));
                }
                Step::Join(_) => {}
                Step::Beat(i) => {
                    if let Some(client) = clients[i].as_mut() {
                        let input = HeartbeatInput {
                            member_id: client.id.clone(),
                            member_epoch: client.epoch,
                            owned: client.owned.clone(),
                            ..HeartbeatInput::default()
                        };
                        match group.heartbeat(input, &t, now, String::new) {
                            Ok(out) => {
                                client.epoch = out.member_epoch;
                                client.owned = out.assignment;
                            }
                            // Expired: the client finds out and forgets its partitions.
                            Err(BrokerError::UnknownMember { .. }) => clients[i] = None,
                            Err(err) => prop_assert!(false, "unexpected {err}"),
                        }
                    }
                }
                Step::Leave(i) => {
                    if let Some(client) = clients[i].take() {
                        let input = HeartbeatInput {
                            member_id: client.id,
                            member_epoch: -1,
                            ..HeartbeatInput::default()
                        };
                        let _ = group.heartbeat(input, &t, now, String::new);
                    }
                }
                Step::Crash(i) => {
                    clients[i] = None;
                }
                Step::Tick(ms) => {
                    now += ms;
                    group.expire(&t, now);
                }
                Step::Grow(by) => {
                    if let Some(count) = t.get_mut("orders") {
                        *count = (*count + by).min(24);
                    }
                }
            }
            assert_exclusive(&group);
            // A live client never owns more than the group granted it.
            for client in clients.iter().flatten() {
                if let Some(member) = group.members.get(&client.id) {
                    prop_assert!(client.owned.iter().all(|p| member.granted.contains_key(p)));
                }
            }
        }
        // Crashed members time out; the live ones converge.
        now += u64::from(DEFAULT_SESSION_TIMEOUT_MS) / 2;
        for _ in 0..4 {
            for (i, slot) in clients.iter_mut().enumerate() {
                if let Some(client) = slot.as_mut() {
                    beat_or_rejoin(&mut group, client, i, &t, now);
                }
            }
            now += u64::from(DEFAULT_SESSION_TIMEOUT_MS) / 2 + 1;
            group.expire(&t, now);
            assert_exclusive(&group);
        }
        for (i, slot) in clients.iter_mut().enumerate() {
            if let Some(client) = slot.as_mut() {
                beat_or_rejoin(&mut group, client, i, &t, now);
            }
        }
        if clients.iter().any(Option::is_some) {
            prop_assert_eq!(group.state(), GroupState::Stable);
            let owned: usize = clients.iter().flatten().map(|c| c.owned.len()).sum();
            // Even-numbered clients also subscribe to payments.
            let payments_read = clients.iter().enumerate().any(|(i, c)| c.is_some() && i % 2 == 0);
            let expected = t["orders"] + if payments_read { t["payments"] } else { 0 };
            prop_assert_eq!(owned as u32, expected);
        } else {
            prop_assert_eq!(group.state(), GroupState::Empty);
        }
    }
}

#[test]
fn each_member_keeps_its_own_session_timeout() {
    let t = topics(&[("orders", 4)]);
    let mut group = Group::new("g");
    let mut patient = join(&mut group, "patient", &["orders"], &t, 0);
    let hasty = group
        .heartbeat(
            HeartbeatInput {
                member_id: "hasty".into(),
                subscribed: subscription(&["orders"]),
                session_timeout_ms: 1_000,
                ..HeartbeatInput::default()
            },
            &t,
            0,
            String::new,
        )
        .expect("join");
    assert_eq!(hasty.session_timeout_ms, 1_000);
    assert_eq!(
        group.session_timeout_ms(),
        1_000,
        "describe shows the newest join's"
    );
    beat(&mut group, &mut patient, &t, 500);
    // Two seconds on: the member that asked for one second is gone, the other is not.
    assert_eq!(group.expire(&t, 2_000), vec!["hasty".to_string()]);
    let out = beat(&mut group, &mut patient, &t, 2_100);
    assert_eq!(out.session_timeout_ms, DEFAULT_SESSION_TIMEOUT_MS);
}

#[test]
fn owned_partitions_that_do_not_exist_are_ignored_as_kafka_does() {
    let t = topics(&[("orders", 2)]);
    let mut group = Group::new("g");
    let mut client = join(&mut group, "a", &["orders"], &t, 0);
    assert_eq!(client.owned.len(), 2);
    // Beyond the count, and of a topic the coordinator does not know (yet): neither is granted
    // nor held against the member.
    client.owned.insert(tp("orders", 7));
    client.owned.insert(tp("later", 0));
    let out = beat(&mut group, &mut client, &t, 10);
    assert_eq!(out.assignment, [tp("orders", 0), tp("orders", 1)].into());
    assert!(out.assignment_complete);
    assert_eq!(group.state(), GroupState::Stable);
    let members = group.describe_members();
    assert_eq!(members[0].assignment, out.assignment);
    assert_exclusive(&group);
}
