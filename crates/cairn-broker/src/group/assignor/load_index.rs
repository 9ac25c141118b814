//! The assignor's load index: for each topic, its least-loaded subscriber and its busiest
//! holder, and the set of topics out of balance, kept current as partition counts change.
//!
//! Members with the same subscriptions form a subscription class, and a topic indexes its
//! classes by their least count rather than every subscriber. A count change therefore touches
//! the topics of the member's class only when the class's least count changes, which with
//! homogeneous subscriptions happens once per round of placements rather than once per
//! placement, plus the topics the member holds partitions of. The invariant a reader must
//! carry: every entry agrees with the counts and holdings the balancer last reported through
//! [`LoadIndex::set_count`], [`LoadIndex::add_holder`] and [`LoadIndex::remove_holder`].

use std::cmp::Reverse;
use std::collections::BTreeSet;

/// A topic whose busiest holder has at least two more partitions than its least-loaded
/// subscriber. The ordering puts the busiest donor first, then the least-loaded receiver, then
/// the topic index, so the balance pass always makes the move that helps most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Imbalance {
    donor_count: Reverse<usize>,
    receiver_count: usize,
    topic_idx: usize,
}

/// Per-topic load index over member, topic and class indexes.
#[derive(Debug, Default)]
pub(super) struct LoadIndex {
    /// class -> (partition count, member) of each of its members.
    class_members: Vec<BTreeSet<(usize, usize)>>,
    /// topic -> (least partition count in the class, class) of each class subscribed to it.
    /// Equally loaded classes are taken in class order, which is the order of their lowest
    /// member ids.
    topic_classes: Vec<BTreeSet<(usize, usize)>>,
    /// topic -> (partition count, member) of each member holding one of its partitions. The
    /// member index is reversed so that, among equally loaded holders, the lower id gives first.
    holders: Vec<BTreeSet<(usize, Reverse<usize>)>>,
    /// Every topic out of balance, the one to fix first at the front.
    imbalances: BTreeSet<Imbalance>,
    /// topic -> its entry in `imbalances`, if any, so the entry can be found and removed.
    imbalance_of: Vec<Option<Imbalance>>,
}

impl LoadIndex {
    /// Indexes `topic_count` topics. `class_topics[class]` lists the topics of each class,
    /// `member_class[member]` and `counts[member]` give each member's class and partition
    /// count, and `holdings` yields (member, topic) for each topic a member holds partitions of.
    pub(super) fn new(
        topic_count: usize,
        class_topics: &[Vec<usize>],
        member_class: &[usize],
        counts: &[usize],
        holdings: impl IntoIterator<Item = (usize, usize)>,
    ) -> Self {
        let mut index = LoadIndex {
            class_members: vec![BTreeSet::new(); class_topics.len()],
            topic_classes: vec![BTreeSet::new(); topic_count],
            holders: vec![BTreeSet::new(); topic_count],
            imbalances: BTreeSet::new(),
            imbalance_of: vec![None; topic_count],
        };
        for (member_idx, (&class_idx, &count)) in member_class.iter().zip(counts).enumerate() {
            if let Some(members) = index.class_members.get_mut(class_idx) {
                members.insert((count, member_idx));
            }
        }
        for (class_idx, (topics, members)) in
            class_topics.iter().zip(&index.class_members).enumerate()
        {
            let Some(&(least_count, _)) = members.first() else {
                continue;
            };
            for &topic_idx in topics {
                if let Some(classes) = index.topic_classes.get_mut(topic_idx) {
                    classes.insert((least_count, class_idx));
                }
            }
        }
        for (member_idx, topic_idx) in holdings {
            let (Some(holders), Some(&count)) =
                (index.holders.get_mut(topic_idx), counts.get(member_idx))
            else {
                continue;
            };
            holders.insert((count, Reverse(member_idx)));
        }
        for topic_idx in 0..topic_count {
            index.refresh(topic_idx);
        }
        index
    }

    /// How many members subscribe to `topic_idx`.
    pub(super) fn subscriber_count(&self, topic_idx: usize) -> usize {
        let classes = self.topic_classes.get(topic_idx).into_iter().flatten();
        let sizes = classes
            .map(|&(_, class_idx)| self.class_members.get(class_idx).map_or(0, BTreeSet::len));
        sizes.sum()
    }

    /// The subscriber of `topic_idx` with the fewest partitions: ties go to the class with the
    /// lowest member id, then to the lower id within it.
    pub(super) fn least_subscriber(&self, topic_idx: usize) -> Option<usize> {
        let least = self.least_subscriber_entry(topic_idx)?;
        Some(least.1)
    }

    /// The fewest partitions any subscriber of `topic_idx` other than `except_idx` holds.
    pub(super) fn least_subscriber_count_except(
        &self,
        topic_idx: usize,
        except_idx: usize,
    ) -> Option<usize> {
        // `except_idx` belongs to one class, so the first two classes hold the answer: the
        // first class's least member, or if that is `except_idx`, the lesser of the next
        // member of its class and the second class's least.
        let classes = self.topic_classes.get(topic_idx)?.iter().take(2);
        let least_per_class = classes.filter_map(|&(_, class_idx)| {
            let members = self.class_members.get(class_idx)?;
            let least = members.iter().find(|(_, member)| *member != except_idx)?;
            Some(least.0)
        });
        least_per_class.min()
    }

    /// The holder of `topic_idx` with the most partitions: ties go to the lower id.
    pub(super) fn busiest_holder(&self, topic_idx: usize) -> Option<usize> {
        let &(_, Reverse(member_idx)) = self.holders.get(topic_idx)?.last()?;
        Some(member_idx)
    }

    /// The most partitions any holder of `topic_idx` other than the two `except` holds.
    pub(super) fn busiest_holder_count_except(
        &self,
        topic_idx: usize,
        except: [usize; 2],
    ) -> Option<usize> {
        let holders = self.holders.get(topic_idx)?;
        let busiest = holders
            .iter()
            .rev()
            .find(|(_, Reverse(member))| !except.contains(member));
        busiest.map(|&(count, _)| count)
    }

    /// The topic out of balance whose busiest holder is busiest, if any.
    pub(super) fn most_imbalanced_topic(&self) -> Option<usize> {
        self.imbalances.first().map(|imbalance| imbalance.topic_idx)
    }

    /// Records that `member_idx`, holding `count` partitions, now holds some of `topic_idx`.
    pub(super) fn add_holder(&mut self, topic_idx: usize, member_idx: usize, count: usize) {
        if let Some(holders) = self.holders.get_mut(topic_idx) {
            holders.insert((count, Reverse(member_idx)));
        }
        self.refresh(topic_idx);
    }

    /// Records that `member_idx`, holding `count` partitions, holds none of `topic_idx` now.
    pub(super) fn remove_holder(&mut self, topic_idx: usize, member_idx: usize, count: usize) {
        if let Some(holders) = self.holders.get_mut(topic_idx) {
            holders.remove(&(count, Reverse(member_idx)));
        }
        self.refresh(topic_idx);
    }

    /// Records that `member_idx`, of class `class_idx` (whose topics are `class_topics`), went
    /// from `old` partitions to `new`, and holds partitions of the `held_topics`.
    pub(super) fn set_count(
        &mut self,
        member_idx: usize,
        class_idx: usize,
        (old, new): (usize, usize),
        class_topics: &[usize],
        held_topics: impl IntoIterator<Item = usize>,
    ) {
        if let Some(members) = self.class_members.get_mut(class_idx) {
            let least_before = members.first().map(|&(count, _)| count);
            members.remove(&(old, member_idx));
            members.insert((new, member_idx));
            let least_after = members.first().map(|&(count, _)| count);
            if least_before != least_after {
                for &topic_idx in class_topics {
                    if let Some(classes) = self.topic_classes.get_mut(topic_idx) {
                        if let Some(least) = least_before {
                            classes.remove(&(least, class_idx));
                        }
                        if let Some(least) = least_after {
                            classes.insert((least, class_idx));
                        }
                    }
                    self.refresh(topic_idx);
                }
            }
        }
        for topic_idx in held_topics {
            if let Some(holders) = self.holders.get_mut(topic_idx) {
                holders.remove(&(old, Reverse(member_idx)));
                holders.insert((new, Reverse(member_idx)));
            }
            self.refresh(topic_idx);
        }
    }

    /// The (count, member) of the least-loaded subscriber of `topic_idx`.
    fn least_subscriber_entry(&self, topic_idx: usize) -> Option<(usize, usize)> {
        let &(_, class_idx) = self.topic_classes.get(topic_idx)?.first()?;
        self.class_members.get(class_idx)?.first().copied()
    }

    /// Recomputes whether `topic_idx` is out of balance after its busiest holder or least
    /// subscriber may have changed.
    fn refresh(&mut self, topic_idx: usize) {
        let donor_count = self
            .holders
            .get(topic_idx)
            .and_then(BTreeSet::last)
            .map(|&(count, _)| count);
        let receiver_count = self
            .least_subscriber_entry(topic_idx)
            .map(|(count, _)| count);
        let Some(slot) = self.imbalance_of.get_mut(topic_idx) else {
            return;
        };
        if let Some(old) = slot.take() {
            self.imbalances.remove(&old);
        }
        if let (Some(donor_count), Some(receiver_count)) = (donor_count, receiver_count) {
            // A holder exactly one above a subscriber is balanced: moving would only swap them.
            if donor_count >= receiver_count.saturating_add(2) {
                let imbalance = Imbalance {
                    donor_count: Reverse(donor_count),
                    receiver_count,
                    topic_idx,
                };
                self.imbalances.insert(imbalance);
                *slot = Some(imbalance);
            }
        }
    }
}
