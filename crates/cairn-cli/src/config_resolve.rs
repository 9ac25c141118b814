//! Resolves `cairn serve`'s settings, key by key, from its flag, else its `CAIRN_*` variable,
//! else the TOML config file, else the default. It is pure: the caller reads the environment
//! (through a lookup closure) and the file, so every precedence case is a unit test. It binds,
//! opens and creates nothing.
//!
//! The invariant: a [`ServeConfig`] holds only checked values, and a rejected value is reported
//! as one line naming where it came from (the flag, the variable or the file key) and the value.
//!
//! The cluster settings (`--peers`, the Raft timings, the default replication factor, and the
//! listen and advertised addresses they imply) are resolved in `cluster`, which states the
//! decisions behind them.
//!
//! Only the winning value of a key is checked: a bad `CAIRN_NODE_ID` under a good `--node-id`
//! is not an error, since the flag is how an operator overrides it. The file is the exception in
//! part: it must parse, hold only known keys, and give each key the right TOML type, because it
//! is a document kept for later runs. Topic defaults merge rather than override: the file's
//! `[topic_defaults]` apply first, then each `--topic-default` in order, all of them checked.

use std::collections::HashSet;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use cairn_broker::{BrokerError, TopicConfig, host_port_problem};
use serde::Deserialize;

use crate::cli::ServeArgs;
use crate::config_error::{ConfigError, Origin, TOPIC_DEFAULT_FLAG};
use crate::logging::LogFormat;
use connection_limits::{
    CONNECTIONS_MAX_IDLE_MS, HANDSHAKE_TIMEOUT_MS, INTEGER_FILE_KEYS, MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_IP, QUEUED_MAX_REQUEST_BYTES,
};

/// Data directory when none is given.
pub const DEFAULT_DATA_DIR: &str = "./cairn-data";
/// gRPC listen address when none is given.
pub const DEFAULT_GRPC_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7070));
/// HTTP admin listen address when none is given.
pub const DEFAULT_HTTP_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7071));
/// Smallest `max_partitions`: the node creates `__consumer_offsets` with this many partitions.
pub const MIN_MAX_PARTITIONS: u32 = cairn_broker::DEFAULT_OFFSETS_TOPIC_PARTITIONS;
/// Largest `max_partitions`: far past what one node's threads and maps can hold, so a typo of
/// extra digits is caught.
pub const MAX_MAX_PARTITIONS: u32 = 1 << 20;
/// Shortest retention check interval: once a second. Each partition's writer wakes to check,
/// so a millisecond on thousands of partitions would be a busy loop, not a setting.
pub const MIN_RETENTION_CHECK_INTERVAL_MS: u64 = 1_000;
/// Longest retention check interval: a week, past which retention would hardly run at all.
pub const MAX_RETENTION_CHECK_INTERVAL_MS: u64 = 7 * 24 * 3_600_000;
/// Longest producer id expiration: Kafka's `producer.id.expiration.ms` is an int, so its
/// largest value (about 24.8 days) is the largest here too.
pub const MAX_PRODUCER_ID_EXPIRATION_MS: u64 = i32::MAX as u64;
/// Largest config file read. A real one is a few hundred bytes; the limit stops a wrong path
/// (a log, a device) from being read whole before it fails to parse.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1 << 20;
/// The variable naming the config file, read when `--config` is not given.
pub const CONFIG_VAR: &str = "CAIRN_CONFIG";

/// One setting's names in each source.
struct Setting {
    flag: &'static str,
    var: &'static str,
    file_key: &'static str,
}

const DATA_DIR: Setting = Setting {
    flag: "--data-dir",
    var: "CAIRN_DATA_DIR",
    file_key: "data_dir",
};
const GRPC_ADDR: Setting = Setting {
    flag: "--grpc-addr",
    var: "CAIRN_GRPC_ADDR",
    file_key: "grpc_addr",
};
const HTTP_ADDR: Setting = Setting {
    flag: "--http-addr",
    var: "CAIRN_HTTP_ADDR",
    file_key: "http_addr",
};
const NODE_ID: Setting = Setting {
    flag: "--node-id",
    var: "CAIRN_NODE_ID",
    file_key: "node_id",
};
const ADVERTISED_ADDRESS: Setting = Setting {
    flag: "--advertised-address",
    var: "CAIRN_ADVERTISED_ADDRESS",
    file_key: "advertised_address",
};
const MAX_PARTITIONS: Setting = Setting {
    flag: "--max-partitions",
    var: "CAIRN_MAX_PARTITIONS",
    file_key: "max_partitions",
};
const LOG_RETENTION_CHECK_INTERVAL_MS: Setting = Setting {
    flag: "--log-retention-check-interval-ms",
    var: "CAIRN_LOG_RETENTION_CHECK_INTERVAL_MS",
    file_key: "log_retention_check_interval_ms",
};
const OFFSETS_TOPIC_SEGMENT_BYTES: Setting = Setting {
    flag: "--offsets-topic-segment-bytes",
    var: "CAIRN_OFFSETS_TOPIC_SEGMENT_BYTES",
    file_key: "offsets_topic_segment_bytes",
};
const PRODUCER_ID_EXPIRATION_MS: Setting = Setting {
    flag: "--producer-id-expiration-ms",
    var: "CAIRN_PRODUCER_ID_EXPIRATION_MS",
    file_key: "producer_id_expiration_ms",
};

const LOG_FORMAT: Setting = Setting {
    flag: "--log-format",
    var: "CAIRN_LOG_FORMAT",
    file_key: "log_format",
};

/// The settings `cairn serve` runs with, every one checked: exactly the server's own config.
pub use cairn_server::ServerConfig as ServeConfig;

/// A config file as read by the caller: its path (for messages) and its text.
#[derive(Clone, Copy, Debug)]
pub struct ConfigFile<'a> {
    /// The path it was read from.
    pub path: &'a Path,
    /// Its whole text.
    pub text: &'a str,
}

fn origin_text(given: Option<&Given>) -> String {
    given.map_or_else(|| "default".to_string(), |given| given.origin.to_string())
}

/// The config file's shape. Values stay TOML values so that a wrong type is reported naming its
/// key, which serde's type errors do not; unknown keys are serde's to reject.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<toml::Value>,
    grpc_addr: Option<toml::Value>,
    http_addr: Option<toml::Value>,
    node_id: Option<toml::Value>,
    advertised_address: Option<toml::Value>,
    log_format: Option<toml::Value>,
    max_partitions: Option<toml::Value>,
    log_retention_check_interval_ms: Option<toml::Value>,
    offsets_topic_segment_bytes: Option<toml::Value>,
    producer_id_expiration_ms: Option<toml::Value>,
    topic_defaults: Option<toml::Value>,
    cluster: Option<toml::Value>,
    max_connections: Option<toml::Value>,
    max_connections_per_ip: Option<toml::Value>,
    handshake_timeout_ms: Option<toml::Value>,
    connections_max_idle_ms: Option<toml::Value>,
    queued_max_request_bytes: Option<toml::Value>,
    authorization: Option<toml::Value>,
    super_users: Option<toml::Value>,
    tls_principal_from: Option<toml::Value>,
    tls_cert: Option<toml::Value>,
    tls_key: Option<toml::Value>,
    tls_client_ca: Option<toml::Value>,
    allow_plaintext: Option<toml::Value>,
}

/// A config file whose shape is checked: known keys, each of the right TOML type. Its values
/// are not checked yet; only the winning ones will be.
struct ParsedFile<'a> {
    path: &'a Path,
    /// Each scalar key set in the file, with its value as text (`node_id`'s integer as digits).
    values: Vec<(&'static str, String)>,
    /// `[topic_defaults]`, flattened to `(Kafka name, value)` pairs, sorted by name.
    topic_defaults: Vec<(String, String)>,
    /// `[cluster] peers` written as a table, as `(id text, address)` pairs (the string form is
    /// among `values`).
    peer_table: Option<Vec<(String, String)>>,
}

/// A value as given, before it is checked, with where it came from.
struct Given {
    text: String,
    origin: Origin,
}

/// Everything below the flags: the environment and the config file.
struct Lower<'a, E> {
    env: E,
    file: Option<ParsedFile<'a>>,
}

/// The config file `cairn serve` should read: `--config`, else a non-empty `CAIRN_CONFIG`, else
/// none (there is no default file).
///
/// # Errors
/// [`ConfigError::InvalidValue`] for an empty `--config`.
pub fn config_path(
    args: &ServeArgs,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Option<PathBuf>, ConfigError> {
    match &args.config {
        Some(path) if path.as_os_str().is_empty() => Err(ConfigError::InvalidValue {
            origin: Origin::Flag("--config"),
            value: String::new(),
            reason: "the config file path must not be empty".to_string(),
        }),
        Some(path) => Ok(Some(path.clone())),
        None => Ok(env(CONFIG_VAR).filter(|v| !v.is_empty()).map(PathBuf::from)),
    }
}

/// Resolves every setting of `cairn serve` from `args`, then `env` (variable name to value; an
/// empty value counts as unset), then `file` (the text at [`config_path`], if any), then the
/// defaults, and checks each. Topic defaults are checked with [`TopicConfig::set`].
///
/// # Errors
/// The first problem found, as a [`ConfigError`] naming the flag, variable or file key and the
/// value: [`ConfigError::MalformedFile`] for bad TOML or an unknown key,
/// [`ConfigError::WrongType`], [`ConfigError::InvalidValue`], [`ConfigError::UnknownTopicKey`],
/// [`ConfigError::NotUnicode`], [`ConfigError::SameAddress`] or [`ConfigError::Cluster`] (a
/// peer list, node id, Raft timing or default replication factor the cluster rules refuse).
pub fn resolve(
    args: &ServeArgs,
    env: impl Fn(&str) -> Option<OsString>,
    file: Option<ConfigFile<'_>>,
) -> Result<ServeConfig, ConfigError> {
    let lower = Lower {
        env,
        file: file.map(parse_file).transpose()?,
    };
    let data_dir = resolve_data_dir(args, &lower)?;
    let cluster = cluster::resolve(args, &lower)?;
    let grpc = lower.pick(args.grpc_addr.as_deref(), &GRPC_ADDR)?;
    let grpc_given = match &grpc {
        Some(given) => Some((parse_addr(given)?, given)),
        None => None,
    };
    let grpc_addr = cluster::listen_address(&cluster, grpc_given, DEFAULT_GRPC_ADDR)?;
    let http = lower.pick(args.http_addr.as_deref(), &HTTP_ADDR)?;
    let http_addr = http.as_ref().map_or(Ok(DEFAULT_HTTP_ADDR), parse_addr)?;
    if grpc_addr == http_addr && grpc_addr.port() != 0 {
        return Err(ConfigError::SameAddress {
            grpc: origin_text(grpc.as_ref()),
            http: origin_text(http.as_ref()),
            addr: grpc_addr,
        });
    }
    // The node's peer address serves clients too unless told otherwise.
    let advertised_address = lower
        .pick(args.advertised_address.as_deref(), &ADVERTISED_ADDRESS)?
        .map(check_advertised_address)
        .transpose()?
        .or_else(|| cluster.spec.own_address().map(str::to_string));
    let max_partitions = match lower.pick(args.max_partitions.as_deref(), &MAX_PARTITIONS)? {
        Some(given) => parse_max_partitions(&given)?,
        None => cairn_broker::DEFAULT_MAX_PARTITIONS,
    };
    let mut spec = cluster.spec.with_join(args.join);
    if let Some(given) = lower.pick(
        args.log_retention_check_interval_ms.as_deref(),
        &LOG_RETENTION_CHECK_INTERVAL_MS,
    )? {
        let ms = parse_in_range(
            &given,
            MIN_RETENTION_CHECK_INTERVAL_MS..=MAX_RETENTION_CHECK_INTERVAL_MS,
            "milliseconds",
        )?;
        spec = spec.with_retention_purge_interval(std::time::Duration::from_millis(ms));
    }
    if let Some(given) = lower.pick(
        args.offsets_topic_segment_bytes.as_deref(),
        &OFFSETS_TOPIC_SEGMENT_BYTES,
    )? {
        let bytes = parse_in_range(
            &given,
            u64::from(cairn_log::MIN_SEGMENT_BYTES)..=u64::from(cairn_log::MAX_SEGMENT_BYTES),
            "bytes",
        )?;
        spec = spec.with_offsets_segment_bytes(u32::try_from(bytes).unwrap_or(u32::MAX));
    }
    let producer_id_expiration = match lower.pick(
        args.producer_id_expiration_ms.as_deref(),
        &PRODUCER_ID_EXPIRATION_MS,
    )? {
        Some(given) => cairn_broker::ProducerExpiration::after(std::time::Duration::from_millis(
            parse_in_range(&given, 1..=MAX_PRODUCER_ID_EXPIRATION_MS, "milliseconds")?,
        )),
        None => cairn_broker::ProducerExpiration::default(),
    };
    let topic_defaults = resolve_topic_defaults(&args.topic_defaults, lower.file.as_ref())?;
    let connections = connection_limits::resolve(args, &lower)?;
    let auth = auth::resolve(args, &lower)?;
    let (tls, allow_plaintext) = tls::resolve(args, &lower)?;
    Ok(ServeConfig {
        data_dir,
        grpc_addr,
        http_addr,
        cluster: spec,
        advertised_address,
        topic_defaults,
        connections,
        max_partitions,
        producer_id_expiration,
        auth,
        tls,
        allow_plaintext,
    })
}

/// Resolves `cairn serve`'s log format as [`resolve`] resolves the other settings: the flag,
/// else `CAIRN_LOG_FORMAT`, else the file's `log_format`, else text. Kept apart from
/// [`ServeConfig`], which is the server's own config: the log is the binary's business.
///
/// # Errors
/// As [`resolve`] for the file; [`ConfigError::InvalidValue`] for a format other than `text`
/// or `json`; [`ConfigError::NotUnicode`].
pub fn resolve_log_format(
    args: &ServeArgs,
    env: impl Fn(&str) -> Option<OsString>,
    file: Option<ConfigFile<'_>>,
) -> Result<LogFormat, ConfigError> {
    let lower = Lower {
        env,
        file: file.map(parse_file).transpose()?,
    };
    let Some(given) = lower.pick(args.log_format.as_deref(), &LOG_FORMAT)? else {
        return Ok(LogFormat::default());
    };
    LogFormat::from_name(&given.text).ok_or_else(|| ConfigError::InvalidValue {
        origin: given.origin,
        value: given.text.clone(),
        reason: format!("expected {}", LogFormat::NAMES),
    })
}

impl<E: Fn(&str) -> Option<OsString>> Lower<'_, E> {
    /// The winning text of a setting: the flag, else the variable, else the file key.
    fn pick(&self, flag: Option<&str>, setting: &Setting) -> Result<Option<Given>, ConfigError> {
        if let Some(text) = flag {
            return Ok(Some(Given {
                text: text.to_string(),
                origin: Origin::Flag(setting.flag),
            }));
        }
        if let Some(value) = (self.env)(setting.var).filter(|v| !v.is_empty()) {
            let text = value
                .into_string()
                .map_err(|_| ConfigError::NotUnicode { var: setting.var })?;
            return Ok(Some(Given {
                text,
                origin: Origin::Env(setting.var),
            }));
        }
        Ok(self.file_text(setting.file_key))
    }

    /// A file key's value as text, if the file sets it.
    fn file_text(&self, key: &'static str) -> Option<Given> {
        let file = self.file.as_ref()?;
        let (_, text) = file.values.iter().find(|(name, _)| *name == key)?;
        Some(Given {
            text: text.clone(),
            origin: file.origin(key),
        })
    }
}

impl ParsedFile<'_> {
    fn origin(&self, key: impl Into<String>) -> Origin {
        Origin::File {
            path: self.path.to_path_buf(),
            key: key.into(),
        }
    }
}

fn wrong_type(origin: Origin, value: &toml::Value, expected: &str) -> ConfigError {
    ConfigError::WrongType {
        origin,
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Parses the file and checks its shape (see [`ParsedFile`]).
fn parse_file(file: ConfigFile<'_>) -> Result<ParsedFile<'_>, ConfigError> {
    let config = toml::from_str::<FileConfig>(file.text).map_err(|err| {
        // The line, not the offset: editors show lines. `toml` reports byte offsets.
        let line_number = err
            .span()
            .and_then(|span| file.text.get(..span.start))
            .map(|before| before.matches('\n').count() + 1);
        ConfigError::MalformedFile {
            path: file.path.to_path_buf(),
            line_number,
            message: err
                .message()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        }
    })?;
    let mut parsed = ParsedFile {
        path: file.path,
        values: Vec::new(),
        topic_defaults: Vec::new(),
        peer_table: None,
    };
    let scalars = [
        (DATA_DIR.file_key, config.data_dir),
        (GRPC_ADDR.file_key, config.grpc_addr),
        (HTTP_ADDR.file_key, config.http_addr),
        (NODE_ID.file_key, config.node_id),
        (ADVERTISED_ADDRESS.file_key, config.advertised_address),
        (LOG_FORMAT.file_key, config.log_format),
        (MAX_PARTITIONS.file_key, config.max_partitions),
        (
            LOG_RETENTION_CHECK_INTERVAL_MS.file_key,
            config.log_retention_check_interval_ms,
        ),
        (
            OFFSETS_TOPIC_SEGMENT_BYTES.file_key,
            config.offsets_topic_segment_bytes,
        ),
        (
            PRODUCER_ID_EXPIRATION_MS.file_key,
            config.producer_id_expiration_ms,
        ),
        (MAX_CONNECTIONS.file_key, config.max_connections),
        (
            MAX_CONNECTIONS_PER_IP.file_key,
            config.max_connections_per_ip,
        ),
        (HANDSHAKE_TIMEOUT_MS.file_key, config.handshake_timeout_ms),
        (
            CONNECTIONS_MAX_IDLE_MS.file_key,
            config.connections_max_idle_ms,
        ),
        (
            QUEUED_MAX_REQUEST_BYTES.file_key,
            config.queued_max_request_bytes,
        ),
        (auth::AUTHORIZATION.file_key, config.authorization),
        (auth::SUPER_USERS.file_key, config.super_users),
        (auth::TLS_PRINCIPAL_FROM.file_key, config.tls_principal_from),
        (tls::TLS_CERT.file_key, config.tls_cert),
        (tls::TLS_KEY.file_key, config.tls_key),
        (tls::TLS_CLIENT_CA.file_key, config.tls_client_ca),
        (tls::ALLOW_PLAINTEXT.file_key, config.allow_plaintext),
    ];
    let is_integer_key = |key: &str| {
        key == NODE_ID.file_key
            || key == MAX_PARTITIONS.file_key
            || key == LOG_RETENTION_CHECK_INTERVAL_MS.file_key
            || key == OFFSETS_TOPIC_SEGMENT_BYTES.file_key
            || key == PRODUCER_ID_EXPIRATION_MS.file_key
            || INTEGER_FILE_KEYS.contains(&key)
    };
    for (key, value) in scalars {
        let text = match (key, value) {
            (_, None) => continue,
            (key, Some(toml::Value::Boolean(flag))) if key == tls::ALLOW_PLAINTEXT.file_key => {
                flag.to_string()
            }
            (key, Some(other)) if key == tls::ALLOW_PLAINTEXT.file_key => {
                return Err(wrong_type(
                    parsed.origin(key),
                    &other,
                    "expected true or false",
                ));
            }
            (key, Some(toml::Value::Integer(id))) if is_integer_key(key) => id.to_string(),
            (key, Some(other)) if is_integer_key(key) => {
                return Err(wrong_type(
                    parsed.origin(key),
                    &other,
                    "expected an integer",
                ));
            }
            (_, Some(toml::Value::String(text))) => text,
            (_, Some(other)) => {
                return Err(wrong_type(parsed.origin(key), &other, "expected a string"));
            }
        };
        parsed.values.push((key, text));
    }
    if let Some(value) = &config.topic_defaults {
        parsed.topic_defaults = file_topic_defaults(&parsed, value)?;
    }
    if let Some(value) = &config.cluster {
        cluster::read_file_table(&mut parsed, value)?;
    }
    Ok(parsed)
}

/// The data directory. Unlike the text settings it may be any OS path, so it is read as one.
fn resolve_data_dir<E: Fn(&str) -> Option<OsString>>(
    args: &ServeArgs,
    lower: &Lower<'_, E>,
) -> Result<PathBuf, ConfigError> {
    let (dir, origin) = if let Some(dir) = &args.data_dir {
        (dir.clone(), Origin::Flag(DATA_DIR.flag))
    } else if let Some(dir) = (lower.env)(DATA_DIR.var).filter(|v| !v.is_empty()) {
        (PathBuf::from(dir), Origin::Env(DATA_DIR.var))
    } else if let Some(given) = lower.file_text(DATA_DIR.file_key) {
        (PathBuf::from(given.text), given.origin)
    } else {
        return Ok(PathBuf::from(DEFAULT_DATA_DIR));
    };
    // Only a flag or a file can give an empty path; an empty variable counts as unset.
    if dir.as_os_str().is_empty() {
        return Err(ConfigError::InvalidValue {
            origin,
            value: String::new(),
            reason: "the data directory must not be empty".to_string(),
        });
    }
    Ok(dir)
}

fn parse_addr(given: &Given) -> Result<SocketAddr, ConfigError> {
    given.text.parse().map_err(|_| ConfigError::InvalidValue {
        origin: given.origin.clone(),
        value: given.text.clone(),
        reason: "expected IP:PORT, such as 127.0.0.1:7070 or [::1]:7070 (host names are not \
                 resolved)"
            .to_string(),
    })
}

fn parse_max_partitions(given: &Given) -> Result<u32, ConfigError> {
    given
        .text
        .parse::<u32>()
        .ok()
        .filter(|count| (MIN_MAX_PARTITIONS..=MAX_MAX_PARTITIONS).contains(count))
        .ok_or_else(|| ConfigError::InvalidValue {
            origin: given.origin.clone(),
            value: given.text.clone(),
            reason: format!(
                "expected a partition count from {MIN_MAX_PARTITIONS} (__consumer_offsets) to \
                 {MAX_MAX_PARTITIONS}"
            ),
        })
}

/// A whole number in `range`, or the error naming where `given` came from, the range and its
/// `unit`.
fn parse_in_range(
    given: &Given,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<u64, ConfigError> {
    given
        .text
        .parse::<u64>()
        .ok()
        .filter(|value| range.contains(value))
        .ok_or_else(|| ConfigError::InvalidValue {
            origin: given.origin.clone(),
            value: given.text.clone(),
            reason: format!(
                "expected a whole number of {unit} from {} to {}",
                range.start(),
                range.end()
            ),
        })
}

/// Checks an advertised address is `HOST:PORT` that a client could dial: a DNS name or IPv4
/// address, or an IPv6 address in brackets, and a port from 1. It is not resolved here: the
/// name is for clients, and need not resolve on the broker's own host.
fn check_advertised_address(given: Given) -> Result<String, ConfigError> {
    match host_port_problem(&given.text) {
        None => Ok(given.text),
        Some(reason) => Err(ConfigError::InvalidValue {
            origin: given.origin,
            value: given.text,
            reason: format!("{reason}; expected HOST:PORT, such as cairn-1.example.com:7070"),
        }),
    }
}

/// The topic defaults: the file's `[topic_defaults]`, then each `--topic-default` in order (so a
/// flag overrides the file for its key, and a repeated flag's last value wins).
fn resolve_topic_defaults(
    flags: &[String],
    file: Option<&ParsedFile<'_>>,
) -> Result<TopicConfig, ConfigError> {
    let mut config = TopicConfig::default();
    if let Some(file) = file {
        for (key, value) in &file.topic_defaults {
            let origin = file.origin(format!("[topic_defaults] {key}"));
            set_topic_default(&mut config, key, value, origin)?;
        }
    }
    for flag in flags {
        let Some((key, value)) = flag
            .split_once('=')
            .filter(|(key, _)| !key.trim().is_empty())
        else {
            return Err(ConfigError::InvalidValue {
                origin: Origin::Flag(TOPIC_DEFAULT_FLAG),
                value: flag.clone(),
                reason: "expected KEY=VALUE, such as retention.ms=3600000".to_string(),
            });
        };
        let key = key.trim();
        let origin = Origin::TopicDefaultFlag {
            key: key.to_string(),
        };
        set_topic_default(&mut config, key, value, origin)?;
    }
    Ok(config)
}

fn set_topic_default(
    config: &mut TopicConfig,
    key: &str,
    value: &str,
    origin: Origin,
) -> Result<(), ConfigError> {
    config.set(key, value).map_err(|err| match err {
        BrokerError::UnknownConfig { key } => ConfigError::UnknownTopicKey { origin, key },
        BrokerError::InvalidConfig { reason, .. } => ConfigError::InvalidValue {
            origin,
            value: value.to_string(),
            reason: reason.to_string(),
        },
        other => ConfigError::InvalidValue {
            origin,
            value: value.to_string(),
            reason: other.to_string(),
        },
    })
}

/// The file's `[topic_defaults]` as `(key, value)` pairs. A Kafka name written unquoted
/// (`retention.ms = "1"`) is a TOML dotted key, which nests tables; it is flattened back, so
/// both the quoted and the unquoted spelling work.
fn file_topic_defaults(
    file: &ParsedFile<'_>,
    value: &toml::Value,
) -> Result<Vec<(String, String)>, ConfigError> {
    let toml::Value::Table(table) = value else {
        let origin = file.origin("topic_defaults");
        return Err(wrong_type(
            origin,
            value,
            "expected a table of KEY = \"VALUE\"",
        ));
    };
    let mut pairs = Vec::new();
    flatten_topic_defaults(file, "", table, &mut pairs)?;
    let mut seen = HashSet::new();
    if let Some((key, value)) = pairs.iter().find(|(key, _)| !seen.insert(key.as_str())) {
        return Err(ConfigError::InvalidValue {
            origin: file.origin(format!("[topic_defaults] {key}")),
            value: value.clone(),
            reason: "the key is set twice, quoted and dotted".to_string(),
        });
    }
    Ok(pairs)
}

fn flatten_topic_defaults(
    file: &ParsedFile<'_>,
    prefix: &str,
    table: &toml::Table,
    pairs: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let key = format!("{prefix}{name}");
        match value {
            toml::Value::String(text) => pairs.push((key, text.clone())),
            toml::Value::Table(inner) => {
                flatten_topic_defaults(file, &format!("{key}."), inner, pairs)?;
            }
            other => {
                let origin = file.origin(format!("[topic_defaults] {key}"));
                let hint = match other {
                    toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                        format!("expected a string; write \"{key}\" = \"{other}\"")
                    }
                    _ => "expected a string".to_string(),
                };
                return Err(wrong_type(origin, other, &hint));
            }
        }
    }
    Ok(())
}

mod auth;
mod cluster;
mod connection_limits;
mod tls;

#[cfg(test)]
mod tests;
