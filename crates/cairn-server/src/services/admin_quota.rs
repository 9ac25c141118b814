//! The quota calls of `cairn.v1.Admin` (SetQuota, RemoveQuota, ListQuotas): the API's entity
//! and limits parsed into the controller's types, with a typed INVALID_ARGUMENT naming the field
//! for a missing entity or a limit below 1. Who may call them (Alter or Describe on the cluster)
//! is checked by the auth layer before they run.

use cairn_broker::Broker;
use cairn_controller::security::quota::{QuotaEntity, QuotaLimits};
use cairn_proto::v1 as api;
use cairn_proto::v1::ErrorCode;
use tonic::{Code, Response, Status};

use crate::status::{status_with_metadata, to_status};

/// Sets limits for a principal or the default.
pub(super) async fn set_quota(
    broker: &Broker,
    request: api::SetQuotaRequest,
) -> Result<Response<api::SetQuotaResponse>, Status> {
    let entity = parse_entity(request.entity)?;
    let limits = parse_limits(request.limits.unwrap_or_default())?;
    broker
        .set_quota(entity, limits)
        .await
        .map_err(|e| to_status(&e))?;
    Ok(Response::new(api::SetQuotaResponse {}))
}

/// Removes the limits of a principal or the default.
pub(super) async fn remove_quota(
    broker: &Broker,
    request: api::RemoveQuotaRequest,
) -> Result<Response<api::RemoveQuotaResponse>, Status> {
    let entity = parse_entity(request.entity)?;
    broker
        .remove_quota(entity)
        .await
        .map_err(|e| to_status(&e))?;
    Ok(Response::new(api::RemoveQuotaResponse {}))
}

/// Lists every quota, the default first.
pub(super) fn list_quotas(broker: &Broker) -> api::ListQuotasResponse {
    let security = broker.security();
    api::ListQuotasResponse {
        quotas: security
            .quotas()
            .entries()
            .into_iter()
            .map(|(entity, limits)| api::QuotaDescription {
                entity: Some(entity_to_api(&entity)),
                limits: Some(limits_to_api(&limits)),
            })
            .collect(),
    }
}

fn parse_entity(entity: Option<api::QuotaEntity>) -> Result<QuotaEntity, Status> {
    use api::quota_entity::Entity;
    match entity.and_then(|e| e.entity) {
        Some(Entity::Principal(principal)) => Ok(QuotaEntity::Principal(principal)),
        Some(Entity::Default(true)) => Ok(QuotaEntity::Default),
        Some(Entity::Default(false)) | None => Err(invalid_field(
            "entity",
            "give a principal (User:NAME) or the default",
        )),
    }
}

fn parse_limits(limits: api::QuotaLimits) -> Result<QuotaLimits, Status> {
    let field = |name: &str, value: Option<i64>| -> Result<Option<u64>, Status> {
        match value {
            None => Ok(None),
            Some(v) if v >= 1 => Ok(Some(v.unsigned_abs())),
            Some(v) => Err(invalid_field(name, &format!("{v} is below 1"))),
        }
    };
    Ok(QuotaLimits {
        producer_byte_rate: field("producer_byte_rate", limits.producer_byte_rate)?,
        consumer_byte_rate: field("consumer_byte_rate", limits.consumer_byte_rate)?,
        request_rate: field("request_rate", limits.request_rate)?,
        max_topics: field("max_topics", limits.max_topics)?,
        max_partitions: field("max_partitions", limits.max_partitions)?,
    })
}

fn entity_to_api(entity: &QuotaEntity) -> api::QuotaEntity {
    use api::quota_entity::Entity;
    api::QuotaEntity {
        entity: Some(match entity {
            QuotaEntity::Default => Entity::Default(true),
            QuotaEntity::Principal(p) => Entity::Principal(p.clone()),
        }),
    }
}

fn limits_to_api(limits: &QuotaLimits) -> api::QuotaLimits {
    // Stored limits come from i64 values at least 1, so they fit back.
    let back = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    api::QuotaLimits {
        producer_byte_rate: back(limits.producer_byte_rate),
        consumer_byte_rate: back(limits.consumer_byte_rate),
        request_rate: back(limits.request_rate),
        max_topics: back(limits.max_topics),
        max_partitions: back(limits.max_partitions),
    }
}

fn invalid_field(field: &str, reason: &str) -> Status {
    status_with_metadata(
        ErrorCode::InvalidRequest,
        Code::InvalidArgument,
        format!("quota field {field}: {reason}"),
        vec![("field", field.to_string())],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_zero_and_missing_fields_are_named() {
        let limits = api::QuotaLimits {
            request_rate: Some(-5),
            ..Default::default()
        };
        let status = parse_limits(limits).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("request_rate"), "{status:?}");
        let zero = api::QuotaLimits {
            max_topics: Some(0),
            ..Default::default()
        };
        assert!(
            parse_limits(zero)
                .unwrap_err()
                .message()
                .contains("max_topics")
        );
        assert!(parse_entity(None).unwrap_err().message().contains("entity"));
        let ok = api::QuotaLimits {
            producer_byte_rate: Some(7),
            ..Default::default()
        };
        assert_eq!(parse_limits(ok).unwrap().producer_byte_rate, Some(7));
    }
}
