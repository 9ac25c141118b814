//! `UpsertUser`, `DeleteUser`, `CreateAcls`, `DeleteAcls`, `SetQuota`, `RemoveQuota`: the
//! users, ACLs and quotas part of the metadata. The rules live in [`crate::Security`], which a single node also uses; this file
//! only wraps them in replies. None of these commands produces an action: nodes read users
//! and ACLs from the published metadata on each request.

use crate::error::ControllerError;
use crate::metadata::ClusterMetadata;
use crate::reply::{Outcome, Reply};
use crate::security::acl::AclBinding;
use crate::security::quota::{QuotaEntity, QuotaLimits};
use crate::security::scram::ScramCredential;

impl ClusterMetadata {
    pub(super) fn upsert_user(
        &mut self,
        name: String,
        credential: ScramCredential,
    ) -> Result<Reply, ControllerError> {
        let created = self.security.upsert_user(name, credential)?;
        Ok(Reply::bare(Outcome::UserUpserted { created }))
    }

    pub(super) fn delete_user(&mut self, name: &str) -> Result<Reply, ControllerError> {
        self.security.delete_user(name)?;
        Ok(Reply::bare(Outcome::UserDeleted))
    }

    pub(super) fn create_acls(&mut self, acls: Vec<AclBinding>) -> Result<Reply, ControllerError> {
        let added = self.security.create_acls(acls)?;
        Ok(Reply::bare(Outcome::AclsCreated { added }))
    }

    pub(super) fn delete_acls(&mut self, acls: &[AclBinding]) -> Reply {
        let removed = self.security.delete_acls(acls);
        Reply::bare(Outcome::AclsDeleted { removed })
    }

    pub(super) fn set_quota(
        &mut self,
        entity: QuotaEntity,
        limits: QuotaLimits,
    ) -> Result<Reply, ControllerError> {
        self.security.quotas_mut().set(entity, limits)?;
        Ok(Reply::bare(Outcome::QuotaSet))
    }

    pub(super) fn remove_quota(&mut self, entity: &QuotaEntity) -> Result<Reply, ControllerError> {
        self.security.quotas_mut().remove(entity)?;
        Ok(Reply::bare(Outcome::QuotaRemoved))
    }

    pub(super) fn record_topic_creator(
        &mut self,
        topic: String,
        principal: String,
        partitions: u64,
    ) -> Result<Reply, ControllerError> {
        self.security
            .quotas_mut()
            .record_creation(topic, principal, partitions)?;
        Ok(Reply::bare(Outcome::TopicCreatorRecorded))
    }

    pub(super) fn forget_topic_creator(&mut self, topic: &str) -> Reply {
        self.security.quotas_mut().forget_creation(topic);
        Reply::bare(Outcome::TopicCreatorRecorded)
    }
}
