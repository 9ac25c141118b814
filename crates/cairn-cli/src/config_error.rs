//! `ConfigError`: why `cairn serve`'s settings could not be resolved, and `Origin`, where a
//! value came from. Every error is an operator's mistake in flags, environment or config file.
//!
//! The invariant: each displays as one line that names the flag, variable or file key, and the
//! value, so the `cairn` binary can print it as is and exit with status 2.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_broker::{ClusterSpecError, TopicConfig};

/// The flag that sets one topic default; [`Origin::TopicDefaultFlag`] names it.
pub const TOPIC_DEFAULT_FLAG: &str = "--topic-default";

/// Where a value came from, as an error message names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, such as `--grpc-addr`.
    Flag(&'static str),
    /// One `--topic-default` flag, for the topic config key it sets.
    TopicDefaultFlag {
        /// The topic config key.
        key: String,
    },
    /// An environment variable, such as `CAIRN_GRPC_ADDR`.
    Env(&'static str),
    /// A key of the config file.
    File {
        /// The file.
        path: PathBuf,
        /// The key as written in messages: `grpc_addr`, or `[topic_defaults] retention.ms`.
        key: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => f.write_str(flag),
            Origin::TopicDefaultFlag { key } => write!(f, "{TOPIC_DEFAULT_FLAG} {key}"),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::File { path, key } => write!(f, "{key} in config file {}", path.display()),
        }
    }
}

/// Why the settings could not be resolved. Each is an operator's mistake in flags, environment
/// or config file (the `cairn` binary exits with status 2), and displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("invalid value {value:?} for {origin}: {reason}")]
    InvalidValue {
        /// Where it came from.
        origin: Origin,
        /// The value as given.
        value: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A config file value of the wrong TOML type.
    #[error("invalid value {value} for {origin}: {expected}")]
    WrongType {
        /// Where it is.
        origin: Origin,
        /// The value as TOML text (a string in quotes).
        value: String,
        /// What is expected instead.
        expected: String,
    },
    /// A topic default for a key that topic configs do not have.
    #[error(
        "unknown topic config key {key:?} in {origin}; known keys: {}",
        known_topic_keys()
    )]
    UnknownTopicKey {
        /// Where it came from.
        origin: Origin,
        /// The key as given.
        key: String,
    },
    /// An environment variable whose value is not UTF-8, for a setting that must be text.
    #[error("environment variable {var} is not valid UTF-8")]
    NotUnicode {
        /// The variable.
        var: &'static str,
    },
    /// The config file is not TOML, or has a key `cairn serve` does not know.
    #[error("config file {}{}: {message}", path.display(), line_text(*line_number))]
    MalformedFile {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem, when the parser knows it.
        line_number: Option<usize>,
        /// The parser's message, on one line.
        message: String,
    },
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The config file is larger than [`MAX_CONFIG_FILE_BYTES`].
    #[error("config file {} is larger than the {max_bytes}-byte limit", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max_bytes: u64,
    },
    /// A cluster setting (peer list, node id, Raft timings, default replication factor, or the
    /// listen address against the peer list) that the cluster rules refuse.
    #[error("{context}: {source}")]
    Cluster {
        /// Which settings, and where they came from: `invalid value "..." for --peers`, or
        /// `--node-id 4 with --peers` for a disagreement between two.
        context: String,
        /// What the rules say is wrong.
        #[source]
        source: ClusterSpecError,
    },
    /// Both listeners were given the same fixed address, so the second bind would fail.
    #[error("gRPC address ({grpc}) and HTTP address ({http}) are both {addr}; they must differ")]
    SameAddress {
        /// Where the gRPC address came from: an [`Origin`], or `default`.
        grpc: String,
        /// Where the HTTP address came from.
        http: String,
        /// The shared address.
        addr: SocketAddr,
    },
}

fn line_text(line_number: Option<usize>) -> String {
    line_number.map_or_else(String::new, |n| format!(" line {n}"))
}

fn known_topic_keys() -> String {
    TopicConfig::keys().collect::<Vec<_>>().join(", ")
}
