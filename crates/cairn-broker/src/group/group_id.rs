//! The rules for group and member ids. Kafka accepts any non-empty string; Cairn also bounds the
//! length and refuses control characters, because ids are printed by `cairn group describe`,
//! used as metric labels and stored in `__consumer_offsets` keys.

use crate::error::BrokerError;

/// Longest group or member id, in characters.
pub const MAX_GROUP_ID_CHARS: usize = 255;

/// Checks a group id.
///
/// # Errors
/// [`BrokerError::InvalidGroupId`] naming the rule it breaks.
pub fn validate_group_id(group: &str) -> Result<(), BrokerError> {
    check_id(group).map_err(|reason| BrokerError::InvalidGroupId {
        group: group.to_string(),
        reason,
    })
}

/// Checks a member id a client chose itself.
///
/// # Errors
/// [`BrokerError::InvalidRequest`] naming the rule it breaks.
pub(crate) fn validate_member_id(member: &str) -> Result<(), BrokerError> {
    check_id(member)
        .map_err(|reason| BrokerError::InvalidRequest(format!("member id {member:?}: {reason}")))
}

fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("must not be empty");
    }
    if id.chars().count() > MAX_GROUP_ID_CHARS {
        return Err("longer than 255 characters");
    }
    if id.chars().any(char::is_control) {
        return Err("holds a control character");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_non_empty_bounded_and_printable() {
        assert!(validate_group_id("inventory-service").is_ok());
        assert!(validate_group_id("ünïcode grüppe").is_ok());
        assert!(validate_group_id(&"g".repeat(255)).is_ok());
        for bad in ["", "a\nb", "tab\there", "\u{7f}"] {
            let err = validate_group_id(bad).expect_err(bad);
            assert!(matches!(err, BrokerError::InvalidGroupId { .. }), "{err}");
        }
        let err = validate_group_id(&"g".repeat(256)).expect_err("too long");
        assert!(err.to_string().contains("255"), "{err}");
        assert!(validate_member_id("").is_err());
    }
}
