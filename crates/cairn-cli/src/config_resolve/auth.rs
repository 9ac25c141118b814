//! The authentication and authorization settings of `cairn serve` (`--authorization`,
//! `--super-users`, `--tls-principal-from`), resolved like every other setting: flag, else
//! `CAIRN_*` variable, else config file key (a string), else the default. A value that does not
//! parse stops the node at start-up: a typo must not leave a broker running more open than
//! its operator wrote.

use std::ffi::OsString;

use cairn_controller::security::acl::check_principal;
use cairn_server::auth::{AuthConfig, CertPrincipalFrom};

use super::{Given, Lower, Setting};
use crate::cli::ServeArgs;
use crate::config_error::ConfigError;

pub(super) const AUTHORIZATION: Setting = Setting {
    flag: "--authorization",
    var: "CAIRN_AUTHORIZATION",
    file_key: "authorization",
};
pub(super) const SUPER_USERS: Setting = Setting {
    flag: "--super-users",
    var: "CAIRN_SUPER_USERS",
    file_key: "super_users",
};
pub(super) const TLS_PRINCIPAL_FROM: Setting = Setting {
    flag: "--tls-principal-from",
    var: "CAIRN_TLS_PRINCIPAL_FROM",
    file_key: "tls_principal_from",
};

/// Resolves the three settings (see the module doc).
///
/// # Errors
/// [`ConfigError::InvalidValue`] naming the flag, variable or file key of a value that does not
/// parse, or [`ConfigError::NotUnicode`].
pub(super) fn resolve<E: Fn(&str) -> Option<OsString>>(
    args: &ServeArgs,
    lower: &Lower<'_, E>,
) -> Result<AuthConfig, ConfigError> {
    let authorization = match lower.pick(args.authorization.as_deref(), &AUTHORIZATION)? {
        None => false,
        Some(given) => match given.text.as_str() {
            "on" => true,
            "off" => false,
            _ => return Err(invalid(&given, "expected on or off")),
        },
    };
    let super_users = match lower.pick(args.super_users.as_deref(), &SUPER_USERS)? {
        None => Vec::new(),
        Some(given) => parse_super_users(&given)?,
    };
    let principal_from =
        match lower.pick(args.tls_principal_from.as_deref(), &TLS_PRINCIPAL_FROM)? {
            None => CertPrincipalFrom::default(),
            Some(given) => CertPrincipalFrom::parse(&given.text)
                .ok_or_else(|| invalid(&given, "expected cn, san-dns or san-uri"))?,
        };
    Ok(AuthConfig {
        authorization,
        super_users,
        principal_from,
    })
}

fn parse_super_users(given: &Given) -> Result<Vec<String>, ConfigError> {
    given
        .text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|principal| {
            if principal == "User:*" {
                return Err(invalid(
                    given,
                    "User:* would make everyone a super user; list principals by name",
                ));
            }
            check_principal(principal)
                .map(|()| principal.to_string())
                .map_err(|reason| invalid(given, &format!("{principal}: {reason}")))
        })
        .collect()
}

fn invalid(given: &Given, reason: &str) -> ConfigError {
    ConfigError::InvalidValue {
        origin: given.origin.clone(),
        value: given.text.clone(),
        reason: reason.to_string(),
    }
}
