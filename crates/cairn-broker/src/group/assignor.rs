//! The server-side consumer-group assignor of KIP-848: from the members' subscriptions, the
//! partition counts of the topics and the previous target assignment, [`assign`] computes the
//! next target assignment (member id -> partitions). Like Kafka's server-side `uniform` assignor
//! it is sticky and balanced, for homogeneous and heterogeneous subscriptions alike. It decides
//! only the target: member epochs, revocation before reassignment and reconciliation belong to
//! the coordinator, and there is no rack awareness. It does no I/O and reads no clock.
//!
//! The balance rule: no partition's owner has two more partitions than another member
//! subscribed to its topic, so no single move can even out the counts. The algorithm runs in
//! four passes.
//! 1. Keep: each member keeps every partition of its previous assignment that still exists and
//!    whose topic it still subscribes to. A partition listed for two such members (stale input)
//!    stays with the lower member id.
//! 2. Place: every partition nobody kept goes to the least-loaded member subscribed to its topic
//!    (ties are broken by member id, see `load_index`). Topics with fewer subscribers go first:
//!    they have fewer places to go, so they should not find them already filled.
//! 3. Balance: while some topic breaks the rule, its busiest holder (the busiest over all such
//!    topics) hands one partition of it to its least-loaded subscriber: a partition it gained in
//!    this run if it has one, else one it kept. Every move lowers the sum of the squared member
//!    counts by at least two, so the pass ends, and it ends only when the rule holds.
//! 4. Restore: pass 3 moves greedily, one partition at a time, so a later move can make an
//!    earlier one unnecessary. Each partition that left a previous owner still subscribed to its
//!    topic goes back when that keeps the rule, until none can.
//!
//! Why balanced: passes 3 and 4 end with the rule holding, and pass 4 checks it before each
//! return. With homogeneous subscriptions every member may take every partition, so the rule
//! means that member counts differ by at most one.
//!
//! Why sticky: a partition leaves a previous owner that may keep it only in pass 3, where the
//! rule demands a move, and after pass 4 none could go back without breaking the rule. With
//! homogeneous subscriptions, pass 2 fills the least-loaded members and pass 3 moves from the
//! most- to the least-loaded, so no partition moves twice and the members that end one above the
//! rest are those that kept the most: the number of partitions that change owner is the least
//! any balanced assignment needs (given a previous assignment that lists no partition twice).
//! An assignment that already satisfies the rule, such as the previous output with members and
//! topics unchanged, comes back unchanged.
//!
//! Cost: with P partitions, M members, S topics per subscription and H topics a member holds
//! partitions of (at most S, and at most its partition count), each placement or move updates
//! O(H) ordered per-topic entries and, when the least count of the member's subscription class
//! changes, O(S) more (see `load_index`). With homogeneous subscriptions that happens about once
//! per M placements, so a run costs about O(P · H · log M); at worst it costs
//! O((P + moves) · S · log M), never a scan of partitions × members. Pass 4 scans only the
//! partitions pass 3 took from their previous owners, and repeats only after a return. There
//! are no hash maps: the output depends on the input alone. The invariant carried through every
//! pass: a partition is held by at most one member, and the counts, the displaced set and the
//! load index agree with what each member holds.

mod load_index;

use std::collections::{BTreeMap, BTreeSet};

use load_index::LoadIndex;

/// One partition of a topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: String,
    /// The partition's index within the topic, from 0.
    pub partition: u32,
}

/// What the assignor knows of one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSpec {
    /// Topics the member subscribes to.
    pub subscribed: BTreeSet<String>,
    /// The member's partitions in the previous target assignment (stickiness starts here).
    pub previous: BTreeSet<TopicPartition>,
}

/// Computes the target assignment: member id -> partitions. `topics` maps each topic that
/// exists to its partition count (subscribed topics missing from it are ignored).
///
/// When it returns, every member id of `members` is a key of the result (possibly with no
/// partitions), every partition of every topic in `topics` that some member subscribes to is
/// assigned to exactly one member subscribed to its topic, and nothing else is assigned. No
/// partition's owner has two more partitions than another member subscribed to its topic. A
/// member keeps each `previous` partition it still subscribes to unless balance requires moving
/// it: no partition that left such a previous owner could go back to it without breaking that
/// rule. Stale `previous` entries (unknown topics, partitions beyond the count, topics no longer
/// subscribed) are ignored, and a partition listed for two members that may keep it stays with
/// the lower id.
/// The result depends only on the arguments. It cannot fail; its time and memory grow with the
/// total partition count of the subscribed topics, which the caller takes from topic metadata
/// (bounded by the broker's partitions-per-topic limit).
#[must_use]
pub fn assign(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<String, u32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut balancer = Balancer::new(members, topics);
    balancer.place_orphans();
    balancer.balance();
    balancer.restore();
    balancer.into_assignment()
}

/// Whether a member held a partition in its previous assignment. The order matters: a donor
/// gives away what it gained before what it kept, because moving a gained partition costs no
/// stickiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tenure {
    /// Placed or moved here by this run.
    Gained,
    /// Held in the previous assignment too.
    Kept,
}

/// The working state of one [`assign`] call. Members, topics and subscription classes are
/// indexes: members in id order, topics in name order, classes in order of their first member.
struct Balancer<'a> {
    member_ids: Vec<&'a str>,
    /// Topics that exist, have partitions and have a subscriber.
    topic_names: Vec<&'a str>,
    /// member -> its subscription class: members with the same subscribed topics share one.
    member_class: Vec<usize>,
    /// class -> its subscribed topics that are in `topic_names`, ascending.
    class_topics: Vec<Vec<usize>>,
    /// topic -> partition -> the member whose previous assignment holds it, if it may keep it.
    previous_owners: Vec<Vec<Option<usize>>>,
    /// member -> topic -> the partitions it holds. A topic with none held has no entry.
    held: Vec<BTreeMap<usize, BTreeSet<(Tenure, u32)>>>,
    /// member -> how many partitions it holds in all.
    counts: Vec<usize>,
    /// (topic, partition) -> its holder, for each partition held by a member other than its
    /// previous owner: the candidates pass 4 tries to give back.
    displaced: BTreeMap<(usize, u32), usize>,
    index: LoadIndex,
}

impl<'a> Balancer<'a> {
    /// Indexes members, topics and classes, and runs pass 1.
    fn new(members: &'a BTreeMap<String, MemberSpec>, topics: &'a BTreeMap<String, u32>) -> Self {
        let (topic_names, partition_counts) = subscribed_topics(members, topics);
        let topic_idx: BTreeMap<&str, usize> = topic_names
            .iter()
            .enumerate()
            .map(|(idx, name)| (*name, idx))
            .collect();
        let (member_class, class_topics) = subscription_classes(members, &topic_idx);
        let mut previous_owners: Vec<Vec<Option<usize>>> = partition_counts
            .iter()
            .map(|count| vec![None; *count as usize])
            .collect();
        let mut held = vec![BTreeMap::new(); members.len()];
        let specs = members.values().zip(&member_class).zip(&mut held);
        for (member_idx, ((spec, &class_idx), held_by_member)) in specs.enumerate() {
            let Some(topics_of_member) = class_topics.get(class_idx) else {
                continue;
            };
            keep_previous(
                member_idx,
                &spec.previous,
                topics_of_member,
                &topic_idx,
                &mut previous_owners,
                held_by_member,
            );
        }

        let counts: Vec<usize> = held
            .iter()
            .map(|topics| topics.values().map(BTreeSet::len).sum())
            .collect();
        let holdings = held
            .iter()
            .enumerate()
            .flat_map(|(member_idx, topics)| topics.keys().map(move |&topic| (member_idx, topic)));
        let index = LoadIndex::new(
            topic_names.len(),
            &class_topics,
            &member_class,
            &counts,
            holdings,
        );
        Balancer {
            member_ids: members.keys().map(String::as_str).collect(),
            topic_names,
            member_class,
            class_topics,
            previous_owners,
            held,
            counts,
            displaced: BTreeMap::new(),
            index,
        }
    }

    /// Pass 2: gives each partition nobody kept to the least-loaded subscriber of its topic,
    /// topics with fewer subscribers first, then by name, then by partition.
    fn place_orphans(&mut self) {
        let mut topic_order: Vec<usize> = (0..self.topic_names.len()).collect();
        topic_order.sort_by_key(|&topic_idx| (self.index.subscriber_count(topic_idx), topic_idx));
        for topic_idx in topic_order {
            let Some(partitions) = self.previous_owners.get(topic_idx) else {
                continue;
            };
            // A topic has at most `u32::MAX` partitions, so every index here fits in a u32.
            let orphans: Vec<u32> = (0..=u32::MAX)
                .zip(partitions)
                .filter(|(_, owner)| owner.is_none())
                .map(|(partition, _)| partition)
                .collect();
            for partition in orphans {
                // Only subscribed topics are indexed, so every topic has a subscriber.
                if let Some(member_idx) = self.index.least_subscriber(topic_idx) {
                    self.give(member_idx, topic_idx, partition);
                }
            }
        }
    }

    /// Pass 3: moves partitions from the busiest holders to the least-loaded subscribers until
    /// no topic breaks the balance rule.
    fn balance(&mut self) {
        // Each move lowers the sum of squared counts by at least two, so this loop ends.
        while let Some(topic_idx) = self.index.most_imbalanced_topic() {
            let donor = self.index.busiest_holder(topic_idx);
            let receiver = self.index.least_subscriber(topic_idx);
            // An imbalance is only recorded for a topic with both, so this never breaks.
            let (Some(donor_idx), Some(receiver_idx)) = (donor, receiver) else {
                break;
            };
            let Some(partition) = self.take_least_sticky(donor_idx, topic_idx) else {
                break;
            };
            self.give(receiver_idx, topic_idx, partition);
        }
    }

    /// Pass 4: gives each displaced partition back to its previous owner when that keeps the
    /// balance rule, until none can go back.
    fn restore(&mut self) {
        // Each return puts one more partition back with its previous owner and none leaves
        // one, so there are at most as many returns as displaced partitions.
        loop {
            let mut returned = false;
            let displaced: Vec<((usize, u32), usize)> = self
                .displaced
                .iter()
                .map(|(&key, &holder)| (key, holder))
                .collect();
            for ((topic_idx, partition), holder_idx) in displaced {
                let Some(owner_idx) = self.previous_owner(topic_idx, partition) else {
                    continue;
                };
                if self.can_return(topic_idx, holder_idx, owner_idx)
                    && self.take(holder_idx, topic_idx, (Tenure::Gained, partition))
                {
                    self.give(owner_idx, topic_idx, partition);
                    returned = true;
                }
            }
            if !returned {
                break;
            }
        }
    }

    /// Whether moving one partition of `topic_idx` from `from_idx` to `to_idx` keeps the
    /// balance rule, given that it holds now.
    fn can_return(&self, topic_idx: usize, from_idx: usize, to_idx: usize) -> bool {
        let (Some(&from_count), Some(&to_count), Some(to_held)) = (
            self.counts.get(from_idx),
            self.counts.get(to_idx),
            self.held.get(to_idx),
        ) else {
            return false;
        };
        let from_topics = self
            .member_class
            .get(from_idx)
            .and_then(|&class_idx| self.class_topics.get(class_idx));
        // The receiver ends one up and the giver one down: the receiver must end no higher.
        if to_count.saturating_add(1) > from_count {
            return false;
        }
        // One busier, the receiver must stay within one of every other subscriber of the
        // topics it will hold. The giver, one lighter, still is: it ends at least as high.
        let mut to_topics = to_held.keys().copied().chain([topic_idx]);
        let receiver_fits = to_topics.all(|held_topic| {
            let least = self.index.least_subscriber_count_except(held_topic, to_idx);
            least.is_none_or(|count| count >= to_count)
        });
        // One lighter, the giver must stay within one of every other holder of its topics.
        // The receiver, one busier, still is: it ends no higher than the giver was.
        let giver_fits = from_topics.into_iter().flatten().all(|&subscribed_topic| {
            let busiest = self
                .index
                .busiest_holder_count_except(subscribed_topic, [from_idx, to_idx]);
            busiest.is_none_or(|count| count <= from_count)
        });
        receiver_fits && giver_fits
    }

    /// The member whose previous assignment holds `partition` of `topic_idx`, if it may keep it.
    fn previous_owner(&self, topic_idx: usize, partition: u32) -> Option<usize> {
        let partitions = self.previous_owners.get(topic_idx)?;
        partitions.get(partition as usize).copied().flatten()
    }

    /// Adds `partition` of `topic_idx` to what `member_idx` holds.
    fn give(&mut self, member_idx: usize, topic_idx: usize, partition: u32) {
        let previous_owner = self.previous_owner(topic_idx, partition);
        let (Some(held), Some(&count)) =
            (self.held.get_mut(member_idx), self.counts.get(member_idx))
        else {
            return;
        };
        let tenure = if previous_owner == Some(member_idx) {
            self.displaced.remove(&(topic_idx, partition));
            Tenure::Kept
        } else {
            if previous_owner.is_some() {
                self.displaced.insert((topic_idx, partition), member_idx);
            }
            Tenure::Gained
        };
        let partitions = held.entry(topic_idx).or_default();
        let newly_held = partitions.is_empty();
        partitions.insert((tenure, partition));
        if newly_held {
            self.index.add_holder(topic_idx, member_idx, count);
        }
        self.set_count(member_idx, count.saturating_add(1));
    }

    /// Removes a partition of `topic_idx` from what `member_idx` holds: the lowest-numbered
    /// one it gained in this run, else the lowest-numbered one it kept.
    fn take_least_sticky(&mut self, member_idx: usize, topic_idx: usize) -> Option<u32> {
        let held = self.held.get(member_idx)?;
        let entry = *held.get(&topic_idx)?.first()?;
        self.take(member_idx, topic_idx, entry).then_some(entry.1)
    }

    /// Removes `entry` (tenure, partition) of `topic_idx` from what `member_idx` holds; false
    /// if it does not hold it.
    fn take(&mut self, member_idx: usize, topic_idx: usize, entry: (Tenure, u32)) -> bool {
        let (Some(held), Some(&count)) =
            (self.held.get_mut(member_idx), self.counts.get(member_idx))
        else {
            return false;
        };
        let Some(partitions) = held.get_mut(&topic_idx) else {
            return false;
        };
        if !partitions.remove(&entry) {
            return false;
        }
        if partitions.is_empty() {
            held.remove(&topic_idx);
            self.index.remove_holder(topic_idx, member_idx, count);
        }
        self.set_count(member_idx, count.saturating_sub(1));
        true
    }

    /// Records a new partition count for `member_idx`, in `counts` and the load index.
    fn set_count(&mut self, member_idx: usize, count: usize) {
        let (Some(slot), Some(&class_idx), Some(held)) = (
            self.counts.get_mut(member_idx),
            self.member_class.get(member_idx),
            self.held.get(member_idx),
        ) else {
            return;
        };
        let old = std::mem::replace(slot, count);
        let class_topics = self
            .class_topics
            .get(class_idx)
            .map_or(&[][..], Vec::as_slice);
        let held_topics = held.keys().copied();
        self.index.set_count(
            member_idx,
            class_idx,
            (old, count),
            class_topics,
            held_topics,
        );
    }

    /// The result: every member, with what it holds.
    fn into_assignment(self) -> BTreeMap<String, BTreeSet<TopicPartition>> {
        let topic_names = &self.topic_names;
        let members = self.member_ids.iter().zip(&self.held);
        members
            .map(|(member_id, held)| {
                let partitions = held.iter().flat_map(|(&topic_idx, partitions)| {
                    let topic = topic_names.get(topic_idx).copied().unwrap_or_default();
                    partitions
                        .iter()
                        .map(move |&(_, partition)| TopicPartition {
                            topic: topic.to_owned(),
                            partition,
                        })
                });
                ((*member_id).to_owned(), partitions.collect())
            })
            .collect()
    }
}

/// The topics that exist, have partitions and have a subscriber, in name order, with their
/// partition counts.
fn subscribed_topics<'a>(
    members: &'a BTreeMap<String, MemberSpec>,
    topics: &'a BTreeMap<String, u32>,
) -> (Vec<&'a str>, Vec<u32>) {
    let subscribed: BTreeSet<&str> = members
        .values()
        .flat_map(|spec| spec.subscribed.iter().map(String::as_str))
        .collect();
    topics
        .iter()
        .filter(|(name, count)| **count > 0 && subscribed.contains(name.as_str()))
        .map(|(name, count)| (name.as_str(), *count))
        .unzip()
}

/// Groups members by the indexed topics they subscribe to: member -> class, and class -> its
/// topics (ascending). Classes are numbered in order of their first member.
fn subscription_classes(
    members: &BTreeMap<String, MemberSpec>,
    topic_idx: &BTreeMap<&str, usize>,
) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut class_of: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
    let mut class_topics: Vec<Vec<usize>> = Vec::new();
    let member_class = members
        .values()
        .map(|spec| {
            // Ascending, because `subscribed` is sorted by name and so are topic indexes.
            let names = spec.subscribed.iter();
            let topics: Vec<usize> = names
                .filter_map(|name| topic_idx.get(name.as_str()).copied())
                .collect();
            *class_of.entry(topics).or_insert_with_key(|topics| {
                class_topics.push(topics.clone());
                class_topics.len() - 1
            })
        })
        .collect();
    (member_class, class_topics)
}

/// Pass 1 for member `member_idx`, whose indexed topics are `topics_of_member` (ascending):
/// keeps each partition of its `previous` assignment that exists, whose topic it subscribes to,
/// and that no member with a lower id kept, recording it in `previous_owners` and `held`.
fn keep_previous(
    member_idx: usize,
    previous: &BTreeSet<TopicPartition>,
    topics_of_member: &[usize],
    topic_idx: &BTreeMap<&str, usize>,
    previous_owners: &mut [Vec<Option<usize>>],
    held: &mut BTreeMap<usize, BTreeSet<(Tenure, u32)>>,
) {
    for partition in previous {
        let Some(&topic_idx) = topic_idx.get(partition.topic.as_str()) else {
            continue;
        };
        if topics_of_member.binary_search(&topic_idx).is_err() {
            continue;
        }
        let slot = previous_owners
            .get_mut(topic_idx)
            .and_then(|owners| owners.get_mut(partition.partition as usize));
        // Beyond the partition count, or already kept by a member with a lower id.
        let Some(slot) = slot else {
            continue;
        };
        if slot.is_some() {
            continue;
        }
        *slot = Some(member_idx);
        let kept = held.entry(topic_idx).or_default();
        kept.insert((Tenure::Kept, partition.partition));
    }
}

#[cfg(test)]
mod tests;
