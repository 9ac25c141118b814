//! Tests of the assignor: small cases by hand, then its four properties (complete and
//! exclusive, balanced, sticky, deterministic) by proptest over random groups whose previous
//! assignments are stale: unknown topics, partitions beyond the count, topics no longer
//! subscribed, and partitions listed for two members.

use super::*;
use proptest::prelude::*;
use proptest::sample::Index;

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition {
        topic: topic.to_owned(),
        partition,
    }
}

fn topics(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter()
        .map(|(name, count)| ((*name).to_owned(), *count))
        .collect()
}

fn member(subscribed: &[&str], previous: &[(&str, u32)]) -> MemberSpec {
    MemberSpec {
        subscribed: subscribed.iter().map(|name| (*name).to_owned()).collect(),
        previous: previous.iter().map(|(topic, p)| tp(topic, *p)).collect(),
    }
}

fn group(list: Vec<(&str, MemberSpec)>) -> BTreeMap<String, MemberSpec> {
    list.into_iter()
        .map(|(id, spec)| (id.to_owned(), spec))
        .collect()
}

fn partitions(list: &[(&str, u32)]) -> BTreeSet<TopicPartition> {
    list.iter().map(|(topic, p)| tp(topic, *p)).collect()
}

type Assignment = BTreeMap<String, BTreeSet<TopicPartition>>;

/// Every partition that must be assigned: those of existing topics with a subscriber.
fn assignable(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<String, u32>,
) -> BTreeSet<TopicPartition> {
    let subscribed = |topic: &String| members.values().any(|m| m.subscribed.contains(topic));
    topics
        .iter()
        .filter(|(topic, _)| subscribed(topic))
        .flat_map(|(topic, count)| (0..*count).map(move |p| tp(topic, p)))
        .collect()
}

/// Property 1: each assignable partition goes to exactly one subscriber of its topic, and
/// nothing else is assigned; every member has an entry.
fn assert_complete_and_exclusive(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<String, u32>,
    out: &Assignment,
) {
    assert!(
        out.keys().eq(members.keys()),
        "members {:?} but assignment for {:?}",
        members.keys().collect::<Vec<_>>(),
        out.keys().collect::<Vec<_>>()
    );
    let mut seen = BTreeSet::new();
    for (id, assigned) in out {
        for p in assigned {
            assert!(
                members[id].subscribed.contains(&p.topic),
                "{p:?} went to {id}, which does not subscribe to it"
            );
            assert!(seen.insert(p.clone()), "{p:?} assigned twice in {out:?}");
        }
    }
    assert_eq!(seen, assignable(members, topics), "assigned vs assignable");
}

/// The balance rule: no partition's owner has two more partitions than another subscriber of
/// its topic. Checked per topic against its least-loaded subscriber, so it is cheap for large
/// groups; an owner that is itself the least loaded trivially passes.
fn is_balanced(members: &BTreeMap<String, MemberSpec>, out: &Assignment) -> bool {
    let count = |id: &String| out.get(id).map_or(0, BTreeSet::len);
    let mut least_loaded: BTreeMap<&String, usize> = BTreeMap::new();
    for (id, spec) in members {
        for topic in &spec.subscribed {
            let least = least_loaded.entry(topic).or_insert(usize::MAX);
            *least = (*least).min(count(id));
        }
    }
    out.iter().all(|(id, assigned)| {
        assigned
            .iter()
            .all(|p| count(id) <= least_loaded.get(&p.topic).map_or(0, |least| least + 1))
    })
}

/// Property 2, including the stronger form for homogeneous subscriptions.
fn assert_balanced(members: &BTreeMap<String, MemberSpec>, out: &Assignment) {
    assert!(is_balanced(members, out), "not balanced: {out:?}");
    let mut subscriptions = members.values().map(|spec| &spec.subscribed);
    if let Some(first) = subscriptions.next()
        && subscriptions.all(|s| s == first)
    {
        let counts = out.values().map(BTreeSet::len);
        let spread = counts.clone().max().unwrap() - counts.min().unwrap();
        assert!(
            spread <= 1,
            "homogeneous counts differ by {spread}: {out:?}"
        );
    }
}

/// partition -> previous owner, as the assignor reads `previous`: a claim counts only when the
/// partition exists and the member still subscribes to its topic, and the lower id wins a
/// partition listed twice.
fn previous_owners(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<String, u32>,
) -> BTreeMap<TopicPartition, String> {
    let mut owners = BTreeMap::new();
    for (id, spec) in members {
        for p in &spec.previous {
            let exists = topics
                .get(&p.topic)
                .is_some_and(|count| p.partition < *count);
            if exists && spec.subscribed.contains(&p.topic) {
                owners.entry(p.clone()).or_insert_with(|| id.clone());
            }
        }
    }
    owners
}

/// How many assigned partitions do not stay with their previous owner.
fn changed_owner_count(previous: &BTreeMap<TopicPartition, String>, out: &Assignment) -> usize {
    out.iter()
        .map(|(id, assigned)| {
            let moved = assigned.iter().filter(|p| previous.get(*p) != Some(id));
            moved.count()
        })
        .sum()
}

/// The fewest partitions that must change owner for any homogeneous assignment to be balanced:
/// all but those the members can keep when the members that held most get the extra ones.
fn fewest_homogeneous_moves(
    previous: &BTreeMap<TopicPartition, String>,
    members: &BTreeMap<String, MemberSpec>,
    partition_count: usize,
) -> usize {
    if members.is_empty() {
        return 0;
    }
    let mut held: Vec<usize> = members
        .keys()
        .map(|id| previous.values().filter(|owner| *owner == id).count())
        .collect();
    held.sort_unstable_by(|a, b| b.cmp(a));
    let quota = partition_count / members.len();
    let extra_count = partition_count % members.len();
    let kept: usize = held
        .iter()
        .enumerate()
        .map(|(idx, &held)| held.min(quota + usize::from(idx < extra_count)))
        .sum();
    partition_count - kept
}

/// Property 3 in general form: a partition that left a previous owner which could have kept it
/// cannot go back without breaking the balance rule.
fn assert_moves_were_needed(
    members: &BTreeMap<String, MemberSpec>,
    previous: &BTreeMap<TopicPartition, String>,
    out: &Assignment,
) {
    for (owner, assigned) in out {
        for p in assigned {
            let Some(previous_owner) = previous.get(p) else {
                continue;
            };
            let could_keep = members
                .get(previous_owner)
                .is_some_and(|spec| spec.subscribed.contains(&p.topic));
            if previous_owner == owner || !could_keep {
                continue;
            }
            let mut trial = out.clone();
            trial.get_mut(owner).unwrap().remove(p);
            trial.get_mut(previous_owner).unwrap().insert(p.clone());
            assert!(
                !is_balanced(members, &trial),
                "{p:?} moved from {previous_owner} to {owner} although balance did not need it: \
                 {out:?}"
            );
        }
    }
}

/// The members again, each with its share of `out` as its previous assignment.
fn with_previous(
    members: &BTreeMap<String, MemberSpec>,
    out: &Assignment,
) -> BTreeMap<String, MemberSpec> {
    members
        .iter()
        .map(|(id, spec)| {
            let previous = out.get(id).cloned().unwrap_or_default();
            (
                id.clone(),
                MemberSpec {
                    subscribed: spec.subscribed.clone(),
                    previous,
                },
            )
        })
        .collect()
}

// ---- Small cases ----

#[test]
fn empty_input_gives_an_empty_assignment() {
    assert!(assign(&BTreeMap::new(), &BTreeMap::new()).is_empty());
    assert!(assign(&BTreeMap::new(), &topics(&[("t", 3)])).is_empty());
    let members = group(vec![
        ("a", member(&["t"], &[])),
        ("b", MemberSpec::default()),
    ]);
    let out = assign(&members, &BTreeMap::new());
    assert_eq!(out.len(), 2);
    assert!(out.values().all(BTreeSet::is_empty));
}

#[test]
fn one_member_takes_every_partition() {
    let members = group(vec![("a", member(&["t", "u"], &[]))]);
    let out = assign(&members, &topics(&[("t", 3), ("u", 2)]));
    let expected = partitions(&[("t", 0), ("t", 1), ("t", 2), ("u", 0), ("u", 1)]);
    assert_eq!(out["a"], expected);
}

#[test]
fn more_members_than_partitions_leaves_the_last_members_empty() {
    let members = group(vec![
        ("a", member(&["t"], &[])),
        ("b", member(&["t"], &[])),
        ("c", member(&["t"], &[])),
        ("d", member(&["t"], &[])),
    ]);
    let out = assign(&members, &topics(&[("t", 2)]));
    assert_eq!(out["a"], partitions(&[("t", 0)]));
    assert_eq!(out["b"], partitions(&[("t", 1)]));
    assert!(out["c"].is_empty());
    assert!(out["d"].is_empty());
}

#[test]
fn topic_without_subscribers_is_not_assigned() {
    let members = group(vec![("a", member(&["t"], &[])), ("b", member(&["t"], &[]))]);
    let out = assign(&members, &topics(&[("t", 2), ("unread", 4)]));
    assert_eq!(out["a"], partitions(&[("t", 0)]));
    assert_eq!(out["b"], partitions(&[("t", 1)]));
}

#[test]
fn subscribed_topic_missing_from_metadata_is_ignored() {
    let members = group(vec![("a", member(&["t", "gone"], &[("gone", 0)]))]);
    let out = assign(&members, &topics(&[("t", 1)]));
    assert_eq!(out["a"], partitions(&[("t", 0)]));
}

#[test]
fn stale_previous_partitions_are_dropped_and_valid_ones_kept() {
    // b keeps t-2; its claims on t-9 (beyond the count) and u-0 (no longer subscribed) lapse.
    let members = group(vec![
        ("a", member(&["t"], &[])),
        ("b", member(&["t"], &[("t", 2), ("t", 9), ("u", 0)])),
        ("c", member(&["u"], &[])),
    ]);
    let out = assign(&members, &topics(&[("t", 4), ("u", 1)]));
    assert_eq!(out["a"], partitions(&[("t", 0), ("t", 1)]));
    assert_eq!(out["b"], partitions(&[("t", 2), ("t", 3)]));
    assert_eq!(out["c"], partitions(&[("u", 0)]));
}

#[test]
fn partition_listed_for_two_members_stays_with_the_lower_id() {
    let members = group(vec![
        ("a", member(&["t"], &[("t", 1)])),
        ("b", member(&["t"], &[("t", 1)])),
    ]);
    let out = assign(&members, &topics(&[("t", 2)]));
    assert_eq!(out["a"], partitions(&[("t", 1)]));
    assert_eq!(out["b"], partitions(&[("t", 0)]));
}

#[test]
fn joining_member_takes_one_from_each_busiest_member() {
    let members = group(vec![
        ("a", member(&["t"], &[("t", 0), ("t", 1), ("t", 2)])),
        ("b", member(&["t"], &[("t", 3), ("t", 4), ("t", 5)])),
        ("c", member(&["t"], &[])),
    ]);
    let out = assign(&members, &topics(&[("t", 6)]));
    assert_eq!(out["a"], partitions(&[("t", 1), ("t", 2)]));
    assert_eq!(out["b"], partitions(&[("t", 4), ("t", 5)]));
    assert_eq!(out["c"], partitions(&[("t", 0), ("t", 3)]));
}

#[test]
fn leaving_member_partitions_go_to_the_least_loaded() {
    let members = group(vec![
        ("a", member(&["t"], &[("t", 0), ("t", 1)])),
        ("b", member(&["t"], &[("t", 2)])),
    ]);
    // c, which held t-3 and t-4, has left: b is behind and takes t-3, then a wins the tie.
    let out = assign(&members, &topics(&[("t", 5)]));
    assert_eq!(out["a"], partitions(&[("t", 0), ("t", 1), ("t", 4)]));
    assert_eq!(out["b"], partitions(&[("t", 2), ("t", 3)]));
}

#[test]
fn overloaded_member_sheds_the_topic_it_shares() {
    // a must keep all of t (only it subscribes), so it hands u to b, the other subscriber.
    let members = group(vec![
        ("a", member(&["t", "u"], &[("u", 0), ("u", 1)])),
        ("b", member(&["u"], &[])),
    ]);
    let out = assign(&members, &topics(&[("t", 2), ("u", 2)]));
    assert_eq!(out["a"], partitions(&[("t", 0), ("t", 1)]));
    assert_eq!(out["b"], partitions(&[("u", 0), ("u", 1)]));
}

#[test]
fn narrow_subscriber_is_not_overfilled_to_balance_others() {
    // b takes only u; a and c share t. The balance rule holds with b at 1 and the others at 2.
    let members = group(vec![
        ("a", member(&["t"], &[])),
        ("b", member(&["u"], &[])),
        ("c", member(&["t"], &[])),
    ]);
    let out = assign(&members, &topics(&[("t", 4), ("u", 1)]));
    assert_eq!(out["a"].len(), 2);
    assert_eq!(out["b"], partitions(&[("u", 0)]));
    assert_eq!(out["c"].len(), 2);
}

#[test]
fn large_homogeneous_group_is_balanced_and_a_leave_moves_only_its_partitions() {
    let topic_names: Vec<String> = (0..20).map(|idx| format!("topic-{idx:02}")).collect();
    let topics: BTreeMap<String, u32> = topic_names.iter().map(|t| (t.clone(), 250)).collect();
    let spec = MemberSpec {
        subscribed: topic_names.iter().cloned().collect(),
        previous: BTreeSet::new(),
    };
    let members: BTreeMap<String, MemberSpec> = (0..300)
        .map(|idx| (format!("member-{idx:03}"), spec.clone()))
        .collect();
    let out = assign(&members, &topics);
    assert_complete_and_exclusive(&members, &topics, &out);
    assert_balanced(&members, &out);

    let mut survivors = with_previous(&members, &out);
    survivors.remove("member-123");
    let after = assign(&survivors, &topics);
    assert_complete_and_exclusive(&survivors, &topics, &after);
    assert_balanced(&survivors, &after);
    for (id, assigned) in &after {
        assert!(assigned.is_superset(&out[id]), "{id} lost a partition");
    }
    let previous = previous_owners(&survivors, &topics);
    assert_eq!(
        changed_owner_count(&previous, &after),
        out["member-123"].len()
    );
}

#[test]
fn large_heterogeneous_group_is_balanced() {
    let topic_names: Vec<String> = (0..40).map(|idx| format!("topic-{idx:02}")).collect();
    let topics: BTreeMap<String, u32> = (0u32..)
        .zip(&topic_names)
        .map(|(idx, t)| (t.clone(), 10 + idx * 7))
        .collect();
    // Member i reads a window of 5 topics starting at i mod 40.
    let members: BTreeMap<String, MemberSpec> = (0..400)
        .map(|idx: usize| {
            let subscribed = (0..5)
                .map(|k| topic_names[(idx + k) % 40].clone())
                .collect();
            let spec = MemberSpec {
                subscribed,
                previous: BTreeSet::new(),
            };
            (format!("member-{idx:03}"), spec)
        })
        .collect();
    let out = assign(&members, &topics);
    assert_complete_and_exclusive(&members, &topics, &out);
    assert_balanced(&members, &out);
    assert_eq!(assign(&with_previous(&members, &out), &topics), out);
}

#[test]
fn regression_kept_partition_is_not_given_while_gained_ones_remain() {
    // Shrunk from a wide proptest run: m01 gave away a partition it kept although it held
    // others placed this run, and later moves made that loss unnecessary.
    let members = group(vec![
        ("m00", member(&["t6"], &[])),
        ("m01", member(&["t8"], &[("t8", 24), ("t8", 31)])),
        ("m02", member(&["t7"], &[])),
        ("m03", member(&["t4", "t8"], &[("t0", 0)])),
        ("m04", member(&["t6"], &[])),
        ("m05", member(&["t7", "t8"], &[])),
        ("m11", member(&["t4"], &[])),
        ("m12", member(&["t6"], &[])),
        ("m13", member(&["t4"], &[])),
    ]);
    let topics = topics(&[("t4", 16), ("t7", 4), ("t8", 34)]);
    let out = assign(&members, &topics);
    assert_complete_and_exclusive(&members, &topics, &out);
    assert_balanced(&members, &out);
    assert_moves_were_needed(&members, &previous_owners(&members, &topics), &out);
    assert!(out["m01"].is_superset(&partitions(&[("t8", 24), ("t8", 31)])));
}

#[test]
fn regression_partition_moved_too_early_goes_back() {
    // Shrunk from a wide proptest run: pass 3 moved partitions off m27 that later moves made
    // unnecessary, and pass 4 gives them back.
    let previous: Vec<(&str, u32)> = (0..26).map(|p| ("t13", p)).collect();
    let members = group(vec![
        ("m00", member(&[], &[])),
        ("m14", member(&["t12"], &[])),
        ("m15", member(&[], &[])),
        ("m19", member(&["t2"], &[])),
        ("m27", member(&["t13"], &previous)),
        ("m30", member(&["t13", "t2"], &[])),
        ("m31", member(&["t13"], &[])),
    ]);
    let topics = topics(&[("t13", 45), ("t2", 15)]);
    let out = assign(&members, &topics);
    assert_complete_and_exclusive(&members, &topics, &out);
    assert_balanced(&members, &out);
    assert_moves_were_needed(&members, &previous_owners(&members, &topics), &out);
    // m27 ends one above m30 and m31, which the balance rule allows, rather than moving one
    // more of its partitions.
    let kept = out["m27"]
        .iter()
        .filter(|p| members["m27"].previous.contains(*p));
    assert_eq!(kept.count(), 16);
    assert_eq!(out["m30"].len(), 15);
    assert_eq!(out["m31"].len(), 15);
}

// ---- Properties ----

type Group = (BTreeMap<String, MemberSpec>, BTreeMap<String, u32>);

/// The size of the random groups.
#[derive(Clone, Copy, Debug)]
struct Shape {
    /// Members are drawn from ids `m00` up to this, exclusive.
    member_pool: u8,
    /// Members per group, exclusive.
    members_max: usize,
    /// Topics are named `t0` up to this, exclusive; only some exist in a given case, so
    /// subscriptions and previous assignments also name topics that do not.
    topic_pool: usize,
    /// Existing topics, exclusive.
    topics_max: usize,
    /// Partitions per existing topic, from 1, exclusive.
    partitions_max: u32,
    /// Topics per subscription, exclusive.
    subscribed_max: usize,
    /// Entries per previous assignment, exclusive; their partitions run up to two beyond
    /// `partitions_max`, so some are beyond the count.
    previous_max: usize,
}

/// The groups the properties are stated for: 0 to 7 members, 0 to 4 topics of 1 to 11
/// partitions.
const SMALL: Shape = Shape {
    member_pool: 12,
    members_max: 8,
    topic_pool: 6,
    topics_max: 5,
    partitions_max: 12,
    subscribed_max: 4,
    previous_max: 12,
};

/// Wider groups, where balancing takes chains of moves across topics: the small ones proved
/// too small to reach the cases that needed pass 4 (kept below as regression tests).
const WIDE: Shape = Shape {
    member_pool: 80,
    members_max: 40,
    topic_pool: 14,
    topics_max: 13,
    partitions_max: 60,
    subscribed_max: 7,
    previous_max: 30,
};

fn topic_name(shape: Shape) -> impl Strategy<Value = String> {
    (0..shape.topic_pool).prop_map(|idx| format!("t{idx}"))
}

/// A previous assignment, often stale: any pool topic, partitions up to two beyond the count.
fn previous_strategy(shape: Shape) -> impl Strategy<Value = BTreeSet<TopicPartition>> {
    let partitions = 0..shape.partitions_max + 2;
    let partition = (topic_name(shape), partitions)
        .prop_map(|(topic, partition)| TopicPartition { topic, partition });
    prop::collection::btree_set(partition, 0..shape.previous_max)
}

/// A group of at least `members_min` members and its topics. Homogeneous groups share one
/// subscription; heterogeneous ones draw one per member (and may still come out alike).
/// Random previous assignments list some partitions for two members.
fn group_strategy(
    homogeneous: bool,
    members_min: usize,
    shape: Shape,
) -> impl Strategy<Value = Group> {
    let subscription = || prop::collection::btree_set(topic_name(shape), 0..shape.subscribed_max);
    let spec = (subscription(), previous_strategy(shape));
    let member_ids = 0..shape.member_pool;
    let specs = prop::collection::btree_map(member_ids, spec, members_min..shape.members_max);
    let partition_counts = 1..shape.partitions_max;
    let topics =
        prop::collection::btree_map(topic_name(shape), partition_counts, 0..shape.topics_max);
    (subscription(), specs, topics).prop_map(move |(shared, specs, topics)| {
        let members = specs
            .into_iter()
            .map(|(idx, (own, previous))| {
                let subscribed = if homogeneous { shared.clone() } else { own };
                (
                    format!("m{idx:02}"),
                    MemberSpec {
                        subscribed,
                        previous,
                    },
                )
            })
            .collect();
        (members, topics)
    })
}

fn any_group(shape: Shape) -> impl Strategy<Value = Group> {
    any::<bool>().prop_flat_map(move |homogeneous| group_strategy(homogeneous, 0, shape))
}

/// Carries `out` over to `next`: members in both keep their share as their previous
/// assignment, the others join or have left, and subscriptions and topics change as `next`
/// says. Checks the new assignment and returns it.
fn assert_change_is_sound(out: &Assignment, next: &Group) -> Assignment {
    let (next_members, next_topics) = next;
    let carried = with_previous(next_members, out);
    let after = assign(&carried, next_topics);
    assert_complete_and_exclusive(&carried, next_topics, &after);
    assert_balanced(&carried, &after);
    assert_moves_were_needed(&carried, &previous_owners(&carried, next_topics), &after);
    assert_eq!(
        assign(&with_previous(&carried, &after), next_topics),
        after,
        "not idempotent"
    );
    after
}

proptest! {
    #[test]
    fn any_group_gets_a_complete_exclusive_balanced_assignment((members, topics) in any_group(SMALL)) {
        let out = assign(&members, &topics);
        assert_complete_and_exclusive(&members, &topics, &out);
        assert_balanced(&members, &out);
    }

    #[test]
    fn same_input_gives_the_same_output((members, topics) in any_group(SMALL)) {
        let out = assign(&members, &topics);
        // A rebuilt copy rules out any dependence on allocation or insertion history.
        let copy: BTreeMap<String, MemberSpec> =
            members.iter().rev().map(|(id, spec)| (id.clone(), spec.clone())).collect();
        prop_assert_eq!(assign(&copy, &topics), out);
    }

    #[test]
    fn output_fed_back_comes_back_unchanged((members, topics) in any_group(SMALL)) {
        let out = assign(&members, &topics);
        prop_assert_eq!(assign(&with_previous(&members, &out), &topics), out);
    }

    #[test]
    fn partitions_leave_their_previous_owner_only_for_balance((members, topics) in any_group(SMALL)) {
        let out = assign(&members, &topics);
        assert_moves_were_needed(&members, &previous_owners(&members, &topics), &out);
    }

    #[test]
    fn homogeneous_moves_are_the_fewest_balance_allows((members, topics) in group_strategy(true, 0, SMALL)) {
        let out = assign(&members, &topics);
        let previous = previous_owners(&members, &topics);
        let partition_count = assignable(&members, &topics).len();
        prop_assert_eq!(
            changed_owner_count(&previous, &out),
            fewest_homogeneous_moves(&previous, &members, partition_count)
        );
    }

    #[test]
    fn homogeneous_join_moves_the_fewest_and_only_to_the_newcomer(
        (members, topics) in group_strategy(true, 0, SMALL),
    ) {
        let out = assign(&members, &topics);
        let mut joined = with_previous(&members, &out);
        let subscribed = members.values().next().map(|spec| spec.subscribed.clone());
        let newcomer = MemberSpec { subscribed: subscribed.unwrap_or_default(), previous: BTreeSet::new() };
        joined.insert("m99".to_owned(), newcomer);
        let after = assign(&joined, &topics);
        assert_complete_and_exclusive(&joined, &topics, &after);
        assert_balanced(&joined, &after);
        for (id, assigned) in &out {
            prop_assert!(after[id].is_subset(assigned), "{} gained a partition", id);
        }
        let previous = previous_owners(&joined, &topics);
        let partition_count = assignable(&joined, &topics).len();
        prop_assert_eq!(
            changed_owner_count(&previous, &after),
            fewest_homogeneous_moves(&previous, &joined, partition_count)
        );
    }

    #[test]
    fn homogeneous_leave_moves_only_the_leavers_partitions(
        (members, topics) in group_strategy(true, 1, SMALL),
        leaver in any::<Index>(),
    ) {
        let out = assign(&members, &topics);
        let leaver_id = members.keys().nth(leaver.index(members.len())).unwrap().clone();
        let mut survivors = with_previous(&members, &out);
        survivors.remove(&leaver_id);
        let after = assign(&survivors, &topics);
        assert_complete_and_exclusive(&survivors, &topics, &after);
        assert_balanced(&survivors, &after);
        for (id, assigned) in &after {
            prop_assert!(assigned.is_superset(&out[id]), "{} lost a partition", id);
        }
        let previous = previous_owners(&survivors, &topics);
        let partition_count = assignable(&survivors, &topics).len();
        let moved = changed_owner_count(&previous, &after);
        prop_assert_eq!(moved, fewest_homogeneous_moves(&previous, &survivors, partition_count));
        prop_assert_eq!(moved, if survivors.is_empty() { 0 } else { out[&leaver_id].len() });
    }

    #[test]
    fn heterogeneous_leave_moves_the_leavers_partitions_and_what_balance_needs(
        (members, topics) in group_strategy(false, 1, SMALL),
        leaver in any::<Index>(),
    ) {
        let out = assign(&members, &topics);
        let leaver_id = members.keys().nth(leaver.index(members.len())).unwrap().clone();
        let mut survivors = with_previous(&members, &out);
        survivors.remove(&leaver_id);
        let after = assign(&survivors, &topics);
        assert_complete_and_exclusive(&survivors, &topics, &after);
        assert_balanced(&survivors, &after);
        assert_moves_were_needed(&survivors, &previous_owners(&survivors, &topics), &after);
    }

    #[test]
    fn any_change_of_members_or_topics_moves_only_what_balance_needs(
        (members, topics) in any_group(SMALL),
        next in any_group(SMALL),
    ) {
        assert_change_is_sound(&assign(&members, &topics), &next);
    }

    #[test]
    fn wide_groups_stay_balanced_and_sticky_through_two_changes(
        (members, topics) in any_group(WIDE),
        next in any_group(WIDE),
        last in any_group(WIDE),
    ) {
        let out = assign(&members, &topics);
        assert_complete_and_exclusive(&members, &topics, &out);
        assert_balanced(&members, &out);
        assert_moves_were_needed(&members, &previous_owners(&members, &topics), &out);
        let after = assert_change_is_sound(&out, &next);
        assert_change_is_sound(&after, &last);
    }

    #[test]
    fn wide_homogeneous_groups_move_the_fewest((members, topics) in group_strategy(true, 0, WIDE)) {
        let out = assign(&members, &topics);
        let previous = previous_owners(&members, &topics);
        let partition_count = assignable(&members, &topics).len();
        prop_assert_eq!(
            changed_owner_count(&previous, &out),
            fewest_homogeneous_moves(&previous, &members, partition_count)
        );
    }
}
