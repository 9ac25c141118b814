//! The gRPC connection limits of `cairn serve` (`--max-connections`, `--max-connections-per-ip`,
//! `--handshake-timeout-ms`, `--connections-max-idle-ms`) and the request bytes they may hold
//! (`--queued-max-request-bytes`), resolved like every other setting:
//! flag, else `CAIRN_*` variable, else config file key (an integer), else the server's default.
//! Each value is a positive integer with a stated ceiling, so a typo like an extra three zeros
//! on a timeout is caught rather than meaning "never".

use std::ffi::OsString;
use std::time::Duration;

use cairn_server::connections::ConnectionLimits;
use cairn_server::request_memory::{MAX_QUEUED_MAX_REQUEST_BYTES, MIN_QUEUED_MAX_REQUEST_BYTES};

use super::{Lower, Setting, parse_in_range};
use crate::cli::ServeArgs;
use crate::config_error::ConfigError;

pub(super) const MAX_CONNECTIONS: Setting = Setting {
    flag: "--max-connections",
    var: "CAIRN_MAX_CONNECTIONS",
    file_key: "max_connections",
};
pub(super) const MAX_CONNECTIONS_PER_IP: Setting = Setting {
    flag: "--max-connections-per-ip",
    var: "CAIRN_MAX_CONNECTIONS_PER_IP",
    file_key: "max_connections_per_ip",
};
pub(super) const HANDSHAKE_TIMEOUT_MS: Setting = Setting {
    flag: "--handshake-timeout-ms",
    var: "CAIRN_HANDSHAKE_TIMEOUT_MS",
    file_key: "handshake_timeout_ms",
};
pub(super) const CONNECTIONS_MAX_IDLE_MS: Setting = Setting {
    flag: "--connections-max-idle-ms",
    var: "CAIRN_CONNECTIONS_MAX_IDLE_MS",
    file_key: "connections_max_idle_ms",
};

pub(super) const QUEUED_MAX_REQUEST_BYTES: Setting = Setting {
    flag: "--queued-max-request-bytes",
    var: "CAIRN_QUEUED_MAX_REQUEST_BYTES",
    file_key: "queued_max_request_bytes",
};

/// The config file keys of this module, all integers.
pub(super) const INTEGER_FILE_KEYS: [&str; 5] = [
    MAX_CONNECTIONS.file_key,
    MAX_CONNECTIONS_PER_IP.file_key,
    HANDSHAKE_TIMEOUT_MS.file_key,
    CONNECTIONS_MAX_IDLE_MS.file_key,
    QUEUED_MAX_REQUEST_BYTES.file_key,
];

/// Most connections either limit may be set to: far more than any host's descriptors.
pub const MAX_CONNECTION_LIMIT: u64 = 1 << 24;
/// Longest handshake timeout: an hour, already far past any real client's handshake.
pub const MAX_HANDSHAKE_TIMEOUT_MS: u64 = 3_600_000;
/// Longest idle timeout: a week.
pub const MAX_IDLE_TIMEOUT_MS: u64 = 7 * 24 * 3_600_000;

/// Resolves the five settings (see the module doc).
///
/// # Errors
/// [`ConfigError::InvalidValue`] naming the flag, variable or file key of a value that is not
/// an integer in its range, or [`ConfigError::NotUnicode`].
pub(super) fn resolve<E: Fn(&str) -> Option<OsString>>(
    args: &ServeArgs,
    lower: &Lower<'_, E>,
) -> Result<ConnectionLimits, ConfigError> {
    let defaults = ConnectionLimits::default();
    let count = |flag: Option<&str>, setting: &Setting| {
        lower
            .pick(flag, setting)?
            .map(|given| parse_in_range(&given, 1..=MAX_CONNECTION_LIMIT, "connections"))
            .transpose()
    };
    let millis = |flag: Option<&str>, setting: &Setting, max: u64, default: Duration| {
        Ok::<_, ConfigError>(
            lower
                .pick(flag, setting)?
                .map(|given| parse_in_range(&given, 1..=max, "milliseconds"))
                .transpose()?
                .map_or(default, Duration::from_millis),
        )
    };
    Ok(ConnectionLimits {
        max_connections: count(args.max_connections.as_deref(), &MAX_CONNECTIONS)?,
        max_connections_per_ip: count(
            args.max_connections_per_ip.as_deref(),
            &MAX_CONNECTIONS_PER_IP,
        )?,
        handshake_timeout: millis(
            args.handshake_timeout_ms.as_deref(),
            &HANDSHAKE_TIMEOUT_MS,
            MAX_HANDSHAKE_TIMEOUT_MS,
            defaults.handshake_timeout,
        )?,
        idle_timeout: millis(
            args.connections_max_idle_ms.as_deref(),
            &CONNECTIONS_MAX_IDLE_MS,
            MAX_IDLE_TIMEOUT_MS,
            defaults.idle_timeout,
        )?,
        queued_max_request_bytes: lower
            .pick(
                args.queued_max_request_bytes.as_deref(),
                &QUEUED_MAX_REQUEST_BYTES,
            )?
            .map(|given| {
                parse_in_range(
                    &given,
                    MIN_QUEUED_MAX_REQUEST_BYTES..=MAX_QUEUED_MAX_REQUEST_BYTES,
                    "bytes",
                )
            })
            .transpose()?
            .unwrap_or(defaults.queued_max_request_bytes),
    })
}
