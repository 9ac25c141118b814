//! [`Quotas`]: Kafka-style client quotas, per principal (`User:NAME`) and a default for
//! principals without a quota of their own (Kafka's `<default>` entity). Part of [`super::Security`],
//! so they travel with users and ACLs: in the controller's metadata in a cluster, in
//! `DATA/security.json` on a cluster of one.
//!
//! This module only stores and checks limits; measuring rates and delaying answers is the
//! server's job.
//!
//! Creation limits (`max_topics`, `max_partitions`) count against what a principal created: the
//! quotas keep a ledger of which principal created each topic and how many partitions it has
//! (recorded after a creation or an added partition, forgotten when the topic is deleted), and
//! the broker checks a creation against it before making it. The ledger is kept for every
//! principal, with or without a limit, so a limit set later counts what was created before.
//! Topics created before this ledger existed belong to nobody. A limit is resolved field by field: the principal's own value if it set one,
//! else the default's, else none (unlimited). Every stored limit is at least 1: a quota of zero
//! would stall a client forever rather than throttle it, so it is refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ControllerError;

/// One entity's limits; `None` leaves that limit to the default (or unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaLimits {
    /// Produced bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_byte_rate: Option<u64>,
    /// Fetched bytes per second (fetch, subscribe and replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_byte_rate: Option<u64>,
    /// Requests per second, of any kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_rate: Option<u64>,
    /// Topics the principal may create in all (see the server's creation check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_topics: Option<u64>,
    /// Partitions the principal may create in all, over all its topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_partitions: Option<u64>,
}

impl QuotaLimits {
    /// True if no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == QuotaLimits::default()
    }

    /// Each limit by its Kafka name, with its value if set.
    pub fn fields(&self) -> [(&'static str, Option<u64>); 5] {
        [
            ("producer_byte_rate", self.producer_byte_rate),
            ("consumer_byte_rate", self.consumer_byte_rate),
            ("request_rate", self.request_rate),
            ("max_topics", self.max_topics),
            ("max_partitions", self.max_partitions),
        ]
    }

    /// `self` with the limits `other` sets put over it.
    pub fn merged(self, other: QuotaLimits) -> QuotaLimits {
        QuotaLimits {
            producer_byte_rate: other.producer_byte_rate.or(self.producer_byte_rate),
            consumer_byte_rate: other.consumer_byte_rate.or(self.consumer_byte_rate),
            request_rate: other.request_rate.or(self.request_rate),
            max_topics: other.max_topics.or(self.max_topics),
            max_partitions: other.max_partitions.or(self.max_partitions),
        }
    }

    /// Checks every set limit is at least 1, and that at least one is set.
    ///
    /// # Errors
    /// [`ControllerError::InvalidQuota`] naming the first bad field.
    pub fn check(&self) -> Result<(), ControllerError> {
        if self.is_empty() {
            return Err(invalid("limits", "set at least one limit"));
        }
        match self.fields().into_iter().find(|(_, v)| *v == Some(0)) {
            Some((field, _)) => Err(invalid(field, "must be at least 1")),
            None => Ok(()),
        }
    }
}

/// Whom a quota is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum QuotaEntity {
    /// Every principal without a quota of its own.
    Default,
    /// One principal, `User:NAME`.
    Principal(String),
}

impl QuotaEntity {
    /// Checks a principal entity is `User:NAME` with a valid user name.
    ///
    /// # Errors
    /// [`ControllerError::InvalidQuota`] for the `principal` field.
    pub fn check(&self) -> Result<(), ControllerError> {
        let QuotaEntity::Principal(principal) = self else {
            return Ok(());
        };
        let Some(name) = principal.strip_prefix("User:") else {
            return Err(invalid("principal", "expected User:NAME"));
        };
        super::check_user_name(name)
            .map_err(|e| invalid("principal", &format!("{principal:?}: {e}")))
    }
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuotaEntity::Default => f.write_str("<default>"),
            QuotaEntity::Principal(p) => f.write_str(p),
        }
    }
}

/// The quotas of a cluster. Sorted map, so snapshots are byte-equal across nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<QuotaLimits>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    principals: BTreeMap<String, QuotaLimits>,
    /// Who created each topic, by topic name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    created: BTreeMap<String, Creation>,
}

/// One topic's creator and its partition count, in the creation ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Creation {
    /// `User:NAME` (or `User:ANONYMOUS`).
    pub principal: String,
    /// The topic's partitions.
    pub partitions: u64,
}

/// What a principal created, as the ledger counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreatedCount {
    /// Topics.
    pub topics: u64,
    /// Partitions over those topics.
    pub partitions: u64,
}

impl Quotas {
    /// True if no quota is set.
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.principals.is_empty() && self.created.is_empty()
    }

    /// Records that `principal` created `topic`, which now has `partitions` partitions
    /// (replacing what the ledger held for that topic).
    ///
    /// # Errors
    /// [`ControllerError::InvalidQuota`] for an empty principal; nothing changes then.
    pub fn record_creation(
        &mut self,
        topic: String,
        principal: String,
        partitions: u64,
    ) -> Result<(), ControllerError> {
        if principal.is_empty() {
            return Err(invalid("principal", "the creator's principal is empty"));
        }
        self.created.insert(
            topic,
            Creation {
                principal,
                partitions,
            },
        );
        Ok(())
    }

    /// Forgets `topic` (deleted); answers whether the ledger had it.
    pub fn forget_creation(&mut self, topic: &str) -> bool {
        self.created.remove(topic).is_some()
    }

    /// Who created `topic`, if the ledger knows.
    pub fn creation(&self, topic: &str) -> Option<&Creation> {
        self.created.get(topic)
    }

    /// What `principal` created, by the ledger.
    pub fn created_by(&self, principal: &str) -> CreatedCount {
        self.created
            .values()
            .filter(|c| c.principal == principal)
            .fold(CreatedCount::default(), |n, c| CreatedCount {
                topics: n.topics + 1,
                partitions: n.partitions.saturating_add(c.partitions),
            })
    }

    /// Checks that `principal` may create `topics` more topics with `partitions` more
    /// partitions in all under its effective `max_topics` and `max_partitions`.
    ///
    /// # Errors
    /// The name of the limit it would pass (`max_topics` or `max_partitions`) and a sentence
    /// with the counts.
    pub fn check_creation(
        &self,
        principal: &str,
        topics: u64,
        partitions: u64,
    ) -> Result<(), (&'static str, String)> {
        let limits = self.effective(principal);
        let now = self.created_by(principal);
        let checks = [
            (
                "max_topics",
                "topics",
                limits.max_topics,
                now.topics,
                topics,
            ),
            (
                "max_partitions",
                "partitions",
                limits.max_partitions,
                now.partitions,
                partitions,
            ),
        ];
        for (limit_name, what, limit, have, adding) in checks {
            if let Some(limit) = limit
                && adding > 0
                && have.saturating_add(adding) > limit
            {
                return Err((
                    limit_name,
                    format!(
                        "{principal} created {have} {what}; {adding} more would pass its {limit_name} of {limit}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The limits set for exactly `entity` (no default applied).
    pub fn get(&self, entity: &QuotaEntity) -> Option<&QuotaLimits> {
        match entity {
            QuotaEntity::Default => self.default.as_ref(),
            QuotaEntity::Principal(p) => self.principals.get(p),
        }
    }

    /// Every entity with its limits, the default first.
    pub fn entries(&self) -> Vec<(QuotaEntity, QuotaLimits)> {
        let default = self.default.map(|l| (QuotaEntity::Default, l));
        default
            .into_iter()
            .chain(
                self.principals
                    .iter()
                    .map(|(p, l)| (QuotaEntity::Principal(p.clone()), *l)),
            )
            .collect()
    }

    /// The limits that hold for `principal` (`User:NAME`): field by field, its own, else the
    /// default's.
    pub fn effective(&self, principal: &str) -> QuotaLimits {
        let own = self.principals.get(principal).copied().unwrap_or_default();
        self.default.unwrap_or_default().merged(own)
    }

    /// Sets the limits `limits` names for `entity`, keeping the others it had (as Kafka's
    /// alter does).
    ///
    /// # Errors
    /// [`ControllerError::InvalidQuota`] naming the bad field; nothing changes then.
    pub fn set(&mut self, entity: QuotaEntity, limits: QuotaLimits) -> Result<(), ControllerError> {
        entity.check()?;
        limits.check()?;
        let slot = match entity {
            QuotaEntity::Default => self.default.get_or_insert_with(QuotaLimits::default),
            QuotaEntity::Principal(p) => self.principals.entry(p).or_default(),
        };
        *slot = slot.merged(limits);
        Ok(())
    }

    /// Removes every limit of `entity`.
    ///
    /// # Errors
    /// [`ControllerError::UnknownQuota`] if it has none.
    pub fn remove(&mut self, entity: &QuotaEntity) -> Result<(), ControllerError> {
        let removed = match entity {
            QuotaEntity::Default => self.default.take().is_some(),
            QuotaEntity::Principal(p) => self.principals.remove(p).is_some(),
        };
        if removed {
            Ok(())
        } else {
            Err(ControllerError::UnknownQuota {
                entity: entity.to_string(),
            })
        }
    }

    /// Checks what a decoded snapshot must hold.
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        for (topic, creation) in &self.created {
            if creation.principal.is_empty() {
                return Err(format!("topic {topic:?} created by an empty principal"));
            }
        }
        for (entity, limits) in self.entries() {
            entity.check().map_err(|e| e.to_string())?;
            limits
                .check()
                .map_err(|e| format!("quota of {entity}: {e}"))?;
        }
        Ok(())
    }
}

fn invalid(field: &str, reason: &str) -> ControllerError {
    ControllerError::InvalidQuota {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> QuotaEntity {
        QuotaEntity::Principal("User:alice".into())
    }

    #[test]
    fn limits_resolve_field_by_field_over_the_default() {
        let mut quotas = Quotas::default();
        let default = QuotaLimits {
            producer_byte_rate: Some(100),
            request_rate: Some(10),
            ..QuotaLimits::default()
        };
        quotas.set(QuotaEntity::Default, default).unwrap();
        let own = QuotaLimits {
            producer_byte_rate: Some(5),
            ..QuotaLimits::default()
        };
        quotas.set(alice(), own).unwrap();
        let effective = quotas.effective("User:alice");
        assert_eq!(effective.producer_byte_rate, Some(5));
        assert_eq!(effective.request_rate, Some(10));
        assert_eq!(quotas.effective("User:bob"), default);
    }

    #[test]
    fn set_merges_and_remove_takes_the_entity_away() {
        let mut quotas = Quotas::default();
        let first = QuotaLimits {
            max_topics: Some(3),
            ..QuotaLimits::default()
        };
        let second = QuotaLimits {
            max_partitions: Some(9),
            ..QuotaLimits::default()
        };
        quotas.set(alice(), first).unwrap();
        quotas.set(alice(), second).unwrap();
        assert_eq!(quotas.get(&alice()), Some(&first.merged(second)));
        assert_eq!(quotas.remove(&alice()), Ok(()));
        assert!(matches!(
            quotas.remove(&alice()),
            Err(ControllerError::UnknownQuota { .. })
        ));
        assert!(quotas.is_empty());
    }

    #[test]
    fn creations_count_against_their_creator_until_deleted() {
        let mut quotas = Quotas::default();
        let limits = QuotaLimits {
            max_topics: Some(2),
            max_partitions: Some(5),
            ..QuotaLimits::default()
        };
        quotas.set(alice(), limits).unwrap();
        quotas
            .record_creation("a".into(), "User:alice".into(), 3)
            .unwrap();
        quotas
            .record_creation("b".into(), "User:bob".into(), 9)
            .unwrap();
        assert!(
            quotas
                .record_creation("x".into(), String::new(), 1)
                .is_err()
        );
        assert_eq!(quotas.check_creation("User:alice", 1, 2), Ok(()));
        assert_eq!(
            quotas.check_creation("User:alice", 1, 3).unwrap_err().0,
            "max_partitions"
        );
        quotas
            .record_creation("c".into(), "User:alice".into(), 1)
            .unwrap();
        assert_eq!(
            quotas.check_creation("User:alice", 1, 1).unwrap_err().0,
            "max_topics"
        );
        // Adding partitions to an existing topic is not a new topic.
        assert_eq!(quotas.check_creation("User:alice", 0, 1), Ok(()));
        assert!(quotas.forget_creation("c"));
        assert_eq!(quotas.check_creation("User:alice", 1, 1), Ok(()));
        assert_eq!(quotas.check_creation("User:bob", 100, 100), Ok(()));
    }

    #[test]
    fn bad_quotas_name_their_field_and_change_nothing() {
        let mut quotas = Quotas::default();
        let zero = QuotaLimits {
            request_rate: Some(0),
            ..QuotaLimits::default()
        };
        let field_of = |r: Result<(), ControllerError>| match r {
            Err(ControllerError::InvalidQuota { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field_of(quotas.set(alice(), zero)), "request_rate");
        assert_eq!(
            field_of(quotas.set(alice(), QuotaLimits::default())),
            "limits"
        );
        let ok = QuotaLimits {
            request_rate: Some(1),
            ..QuotaLimits::default()
        };
        for bad in ["alice", "Group:x", "User:", "User:a b"] {
            let entity = QuotaEntity::Principal(bad.into());
            assert_eq!(field_of(quotas.set(entity, ok)), "principal");
        }
        assert!(quotas.is_empty());
    }
}
