//! Users, ACLs and quotas as the broker keeps them: in the cluster metadata when this node is part of a
//! cluster (changed through controller commands, so a change made on one node takes effect on
//! every node once committed), or in `DATA/security.json` when it is a cluster of one (see
//! `security_store.rs`). Either way the rules are [`Security`]'s, and readers get a
//! [`SecurityView`] of the current state without taking a lock across their work.
//!
//! Passwords arrive here in clear, are turned into a SCRAM credential with a fresh random salt
//! on a blocking thread (PBKDF2 is slow on purpose), and are dropped; nothing here logs one.

use std::ops::Deref;
use std::sync::Arc;

use cairn_controller::security::acl::AclBinding;
use cairn_controller::security::quota::{QuotaEntity, QuotaLimits};
use cairn_controller::security::scram::{
    DEFAULT_SCRAM_ITERATIONS, SCRAM_SALT_BYTES, ScramCredential,
};
use cairn_controller::{ClusterMetadata, Command, ControllerError, Security};

use crate::broker::{Broker, blocking};
use crate::cluster::runtime::{ADMIN_TIMEOUT, cluster_error};
use crate::error::BrokerError;
use crate::security_store;

/// The users and ACLs as of one moment: a cheap handle (an `Arc`) that derefs to [`Security`].
#[derive(Clone, Debug)]
pub struct SecurityView(ViewInner);

#[derive(Clone, Debug)]
enum ViewInner {
    Local(Arc<Security>),
    Cluster(Arc<ClusterMetadata>),
}

impl Deref for SecurityView {
    type Target = Security;

    fn deref(&self) -> &Security {
        match &self.0 {
            ViewInner::Local(security) => security,
            ViewInner::Cluster(metadata) => metadata.security(),
        }
    }
}

impl Broker {
    /// The users and ACLs now: the committed cluster metadata's in a cluster, the local file's
    /// on a cluster of one.
    pub fn security(&self) -> SecurityView {
        match self.runtime() {
            Some(runtime) => SecurityView(ViewInner::Cluster(runtime.controller.metadata())),
            None => SecurityView(ViewInner::Local(Arc::clone(
                &self
                    .local_security
                    .read()
                    .unwrap_or_else(|e| e.into_inner()),
            ))),
        }
    }

    /// Adds user `name` with `password`, or gives an existing user this password; answers true
    /// if the user is new. In a cluster it answers once this node applied the change.
    ///
    /// # Errors
    /// [`BrokerError::InvalidUser`] for a bad name or an empty password;
    /// [`BrokerError::ControllerUnavailable`] in a cluster without a controller leader; I/O
    /// errors writing the local file.
    pub async fn upsert_user(&self, name: &str, password: Vec<u8>) -> Result<bool, BrokerError> {
        cairn_controller::security::check_user_name(name).map_err(security_refusal)?;
        if password.is_empty() {
            return Err(BrokerError::InvalidUser {
                name: name.to_string(),
                reason: "the password is empty".to_string(),
            });
        }
        let credential = blocking(move || {
            let mut salt = [0u8; SCRAM_SALT_BYTES];
            getrandom::fill(&mut salt).map_err(|e| {
                BrokerError::InvalidRequest(format!("no random numbers for a salt: {e}"))
            })?;
            Ok(ScramCredential::derive(
                &password,
                &salt,
                DEFAULT_SCRAM_ITERATIONS,
            ))
        })
        .await?;
        let existed = self.security().user(name).is_some();
        let command = Command::UpsertUser {
            name: name.to_string(),
            credential: credential.clone(),
        };
        let local = credential.clone();
        self.change_security(
            command,
            |s| s.upsert_user(name.to_string(), local).map(|_| ()),
            |s| s.user(name) == Some(&credential),
        )
        .await?;
        tracing::info!(user = name, created = !existed, "user stored");
        Ok(!existed)
    }

    /// Removes user `name` (its ACLs stay).
    ///
    /// # Errors
    /// [`BrokerError::UnknownUser`]; as for [`Broker::upsert_user`].
    pub async fn delete_user(&self, name: &str) -> Result<(), BrokerError> {
        let command = Command::DeleteUser {
            name: name.to_string(),
        };
        self.change_security(command, |s| s.delete_user(name), |s| s.user(name).is_none())
            .await?;
        tracing::info!(user = name, "user removed");
        Ok(())
    }

    /// Adds ACLs, all or none.
    ///
    /// # Errors
    /// [`BrokerError::InvalidAcl`] naming the first bad field; as for [`Broker::upsert_user`].
    pub async fn create_acls(&self, acls: Vec<AclBinding>) -> Result<(), BrokerError> {
        for acl in &acls {
            acl.check()
                .map_err(|e| security_refusal(ControllerError::InvalidAcl(e)))?;
        }
        let (wanted, local) = (acls.clone(), acls.clone());
        self.change_security(
            Command::CreateAcls { acls },
            |s| s.create_acls(local).map(|_| ()),
            |s| wanted.iter().all(|a| s.acls().contains(a)),
        )
        .await?;
        tracing::info!(count = wanted.len(), "ACLs added");
        Ok(())
    }

    /// Removes exactly these ACLs (those not there are ignored).
    ///
    /// # Errors
    /// As for [`Broker::upsert_user`].
    pub async fn delete_acls(&self, acls: Vec<AclBinding>) -> Result<(), BrokerError> {
        let (gone, local) = (acls.clone(), acls.clone());
        self.change_security(
            Command::DeleteAcls { acls },
            |s| {
                s.delete_acls(&local);
                Ok(())
            },
            |s| gone.iter().all(|a| !s.acls().contains(a)),
        )
        .await?;
        tracing::info!(count = gone.len(), "ACLs removed");
        Ok(())
    }

    /// Sets the limits `limits` names for `entity`, keeping its others. In a cluster it
    /// answers once this node applied the change.
    ///
    /// # Errors
    /// [`BrokerError::InvalidQuota`] naming the bad field; as for [`Broker::upsert_user`].
    pub async fn set_quota(
        &self,
        entity: QuotaEntity,
        limits: QuotaLimits,
    ) -> Result<(), BrokerError> {
        entity.check().map_err(security_refusal)?;
        limits.check().map_err(security_refusal)?;
        let wanted = self
            .security()
            .quotas()
            .get(&entity)
            .copied()
            .unwrap_or_default()
            .merged(limits);
        let (local, key) = (entity.clone(), entity.clone());
        self.change_security(
            Command::SetQuota {
                entity: entity.clone(),
                limits,
            },
            |s| s.quotas_mut().set(local, limits),
            |s| s.quotas().get(&key) == Some(&wanted),
        )
        .await?;
        tracing::info!(entity = %entity, "quota set");
        Ok(())
    }

    /// Removes every limit of `entity`.
    ///
    /// # Errors
    /// [`BrokerError::UnknownQuota`]; as for [`Broker::upsert_user`].
    pub async fn remove_quota(&self, entity: QuotaEntity) -> Result<(), BrokerError> {
        if self.security().quotas().get(&entity).is_none() {
            return Err(BrokerError::UnknownQuota {
                entity: entity.to_string(),
            });
        }
        let (local, key) = (entity.clone(), entity.clone());
        self.change_security(
            Command::RemoveQuota {
                entity: entity.clone(),
            },
            |s| s.quotas_mut().remove(&local),
            |s| s.quotas().get(&key).is_none(),
        )
        .await?;
        tracing::info!(entity = %entity, "quota removed");
        Ok(())
    }

    /// Checks that `principal` may create `topics` more topics with `partitions` more
    /// partitions under its `max_topics` and `max_partitions` quotas, counted by the creation
    /// ledger. Concurrent creations by one principal are checked against the same count, so
    /// they may pass a limit by the creations in flight.
    ///
    /// # Errors
    /// [`BrokerError::CreationQuotaExceeded`] naming the limit.
    pub fn check_creation_quota(
        &self,
        principal: &str,
        topics: u64,
        partitions: u64,
    ) -> Result<(), BrokerError> {
        self.security()
            .quotas()
            .check_creation(principal, topics, partitions)
            .map_err(|(limit, detail)| BrokerError::CreationQuotaExceeded {
                limit: limit.to_string(),
                principal: principal.to_string(),
                detail,
            })
    }

    /// Records in the creation ledger that `principal` created `topic`, which has
    /// `partitions` partitions now.
    ///
    /// # Errors
    /// As for [`Broker::upsert_user`].
    pub async fn record_topic_creator(
        &self,
        topic: &str,
        principal: &str,
        partitions: u64,
    ) -> Result<(), BrokerError> {
        let (local_topic, local_principal) = (topic.to_string(), principal.to_string());
        self.change_security(
            Command::RecordTopicCreator {
                topic: topic.to_string(),
                principal: principal.to_string(),
                partitions,
            },
            |s| {
                s.quotas_mut()
                    .record_creation(local_topic, local_principal, partitions)
            },
            |s| {
                s.quotas()
                    .creation(topic)
                    .is_some_and(|c| c.principal == principal && c.partitions == partitions)
            },
        )
        .await
    }

    /// Forgets a deleted `topic` in the creation ledger (nothing to do if it is not there).
    ///
    /// # Errors
    /// As for [`Broker::upsert_user`].
    pub async fn forget_topic_creator(&self, topic: &str) -> Result<(), BrokerError> {
        if self.security().quotas().creation(topic).is_none() {
            return Ok(());
        }
        self.change_security(
            Command::ForgetTopicCreator {
                topic: topic.to_string(),
            },
            |s| {
                s.quotas_mut().forget_creation(topic);
                Ok(())
            },
            |s| s.quotas().creation(topic).is_none(),
        )
        .await
    }

    /// Applies `command` through the controller (a cluster), then waits until
    /// [`Broker::security`] shows `applied`; or, on a cluster of one, makes the same change
    /// with `local` and saves it to the local file.
    async fn change_security(
        &self,
        command: Command,
        local: impl FnOnce(&mut Security) -> Result<(), ControllerError>,
        applied: impl Fn(&Security) -> bool,
    ) -> Result<(), BrokerError> {
        if let Some(runtime) = self.runtime() {
            runtime
                .controller
                .propose(&command, ADMIN_TIMEOUT)
                .await
                .map_err(cluster_error)?;
            return self.wait_for(|b| applied(&b.security())).await;
        }
        let _admin = self.admin.lock().await;
        let mut next = (*self.security()).clone();
        local(&mut next).map_err(security_refusal)?;
        let (data_dir, to_save) = (self.cfg.data_dir.clone(), next.clone());
        blocking(move || security_store::save(&data_dir, &to_save)).await?;
        *self
            .local_security
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok(())
    }
}

/// The broker's error for a refusal of the user and ACL rules; other refusals become
/// `InvalidRequest`.
pub(crate) fn security_refusal(refusal: ControllerError) -> BrokerError {
    match refusal {
        ControllerError::InvalidUser { name, reason } => BrokerError::InvalidUser { name, reason },
        ControllerError::UnknownUser { name } => BrokerError::UnknownUser { name },
        ControllerError::InvalidAcl(e) => BrokerError::InvalidAcl {
            field: e.field,
            reason: e.reason,
        },
        ControllerError::InvalidQuota { field, reason } => {
            BrokerError::InvalidQuota { field, reason }
        }
        ControllerError::UnknownQuota { entity } => BrokerError::UnknownQuota { entity },
        other => BrokerError::InvalidRequest(other.to_string()),
    }
}
