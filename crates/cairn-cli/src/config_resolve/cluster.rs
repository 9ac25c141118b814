//! The cluster settings of `cairn serve`: the node id, `--peers`, the Raft timings and the
//! default replication factor, resolved like every other setting (flag, else `CAIRN_*`
//! variable, else the config file's `[cluster]` table, else the default) and checked by
//! [`ClusterSpec`]'s own rules, each refusal naming where the value came from.
//!
//! Decisions written down here, because they are the operator's contract:
//! - No `--peers`: a cluster of one, exactly the lone broker of before. `--node-id` alone is
//!   allowed: it names the node (its `node.meta` records it), so the data directory can later
//!   join a cluster under that id.
//! - `--peers` with several nodes needs the node id given explicitly: defaulting every machine
//!   to node 1 would start three nodes that all claim to be node 1.
//! - The listen address follows the node's own peer address unless `--grpc-addr` is given; if
//!   both are given they must agree (same port; same IP unless either is a host name or the
//!   listen IP is a wildcard). A disagreement is refused, not warned about: peers dial the
//!   listed address, so a node listening elsewhere would stall every election it is counted in.
//! - The advertised address defaults to the node's own peer address, which serves clients and
//!   peers alike; `--advertised-address` overrides it for clients.

use std::ffi::OsString;
use std::net::SocketAddr;

use cairn_broker::{
    ClusterSpec, ClusterSpecError, LeaderBalanceSettings, MAX_NODE_ID, RaftTimings, parse_node_id,
    parse_peers, peers_from_entries,
};

use super::{Given, Lower, NODE_ID, ParsedFile, Setting};
use crate::cli::ServeArgs;
use crate::config_error::{ConfigError, Origin};

pub(super) const PEERS: Setting = Setting {
    flag: "--peers",
    var: "CAIRN_PEERS",
    file_key: "[cluster] peers",
};
pub(super) const ELECTION_TIMEOUT: Setting = Setting {
    flag: "--raft-election-timeout-ms",
    var: "CAIRN_RAFT_ELECTION_TIMEOUT_MS",
    file_key: "[cluster] raft_election_timeout_ms",
};
pub(super) const HEARTBEAT: Setting = Setting {
    flag: "--raft-heartbeat-ms",
    var: "CAIRN_RAFT_HEARTBEAT_MS",
    file_key: "[cluster] raft_heartbeat_ms",
};
pub(super) const DEFAULT_REPLICATION_FACTOR: Setting = Setting {
    flag: "--default-replication-factor",
    var: "CAIRN_DEFAULT_REPLICATION_FACTOR",
    file_key: "[cluster] default_replication_factor",
};
pub(super) const LEADER_BALANCE_INTERVAL: Setting = Setting {
    flag: "--leader-balance-interval-ms",
    var: "CAIRN_LEADER_BALANCE_INTERVAL_MS",
    file_key: "[cluster] leader_balance_interval_ms",
};
/// The node id may also sit in `[cluster]`, beside the peers it must be one of.
pub(super) const CLUSTER_NODE_ID_KEY: &str = "[cluster] node_id";

/// The `[cluster]` table's keys: (name in the table, name in messages, is an integer).
const TABLE_KEYS: [(&str, &str, bool); 5] = [
    ("node_id", CLUSTER_NODE_ID_KEY, true),
    ("raft_election_timeout_ms", ELECTION_TIMEOUT.file_key, false),
    ("raft_heartbeat_ms", HEARTBEAT.file_key, true),
    (
        "default_replication_factor",
        DEFAULT_REPLICATION_FACTOR.file_key,
        true,
    ),
    (
        "leader_balance_interval_ms",
        LEADER_BALANCE_INTERVAL.file_key,
        true,
    ),
];

/// The cluster as resolved, with where the peer list came from (for messages about the
/// listen address).
pub(super) struct Resolved {
    pub(super) spec: ClusterSpec,
    pub(super) peers_origin: Option<Origin>,
}

/// Reads the file's `[cluster]` table into `file`: scalar keys into its values (as text, under
/// their message names), a `peers` table into its peer entries. Types are checked here, values
/// later and only if they win.
///
/// # Errors
/// [`ConfigError::WrongType`] for a key of the wrong type or a table that is not one;
/// [`ConfigError::MalformedFile`] for an unknown key; [`ConfigError::InvalidValue`] for a node
/// id set both at the top level and in `[cluster]`.
pub(super) fn read_file_table(
    file: &mut ParsedFile<'_>,
    value: &toml::Value,
) -> Result<(), ConfigError> {
    let toml::Value::Table(table) = value else {
        return Err(wrong_type(file, "cluster", value, "expected a table"));
    };
    for (key, value) in table {
        if key == "peers" {
            read_peers(file, value)?;
            continue;
        }
        let Some(&(_, name, integer)) = TABLE_KEYS.iter().find(|(k, _, _)| k == key) else {
            return Err(ConfigError::MalformedFile {
                path: file.path.to_path_buf(),
                line_number: None,
                message: format!(
                    "unknown key `{key}` in [cluster]; known keys: peers, {}",
                    TABLE_KEYS.map(|(k, _, _)| k).join(", ")
                ),
            });
        };
        let text = match value {
            toml::Value::Integer(n) if integer => n.to_string(),
            toml::Value::String(text) if !integer => text.clone(),
            other if integer => return Err(wrong_type(file, name, other, "expected an integer")),
            other => {
                return Err(wrong_type(
                    file,
                    name,
                    other,
                    "expected a string, such as \"1000..2000\"",
                ));
            }
        };
        file.values.push((name, text));
    }
    let top_level = file.values.iter().any(|(k, _)| *k == NODE_ID.file_key);
    let in_table = file.values.iter().find(|(k, _)| *k == CLUSTER_NODE_ID_KEY);
    if let (true, Some((_, text))) = (top_level, in_table) {
        return Err(ConfigError::InvalidValue {
            origin: file.origin(CLUSTER_NODE_ID_KEY),
            value: text.clone(),
            reason: "node_id is also set at the top level; set it once".to_string(),
        });
    }
    Ok(())
}

/// `peers = "1=a:7070,2=b:7070"` (as the flag) or `peers = { 1 = "a:7070", 2 = "b:7070" }`.
fn read_peers(file: &mut ParsedFile<'_>, value: &toml::Value) -> Result<(), ConfigError> {
    const EXPECTED: &str = "expected \"ID=HOST:PORT,...\" or a table of ID = \"HOST:PORT\"";
    match value {
        toml::Value::String(text) => file.values.push((PEERS.file_key, text.clone())),
        toml::Value::Table(table) => {
            let mut entries = Vec::with_capacity(table.len());
            for (id, address) in table {
                let toml::Value::String(address) = address else {
                    let key = format!("{} {id}", PEERS.file_key);
                    return Err(wrong_type(file, &key, address, "expected \"HOST:PORT\""));
                };
                entries.push((id.clone(), address.clone()));
            }
            file.peer_table = Some(entries);
        }
        other => return Err(wrong_type(file, PEERS.file_key, other, EXPECTED)),
    }
    Ok(())
}

fn wrong_type(
    file: &ParsedFile<'_>,
    key: &str,
    value: &toml::Value,
    expected: &str,
) -> ConfigError {
    ConfigError::WrongType {
        origin: file.origin(key),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Resolves and checks the cluster settings (see the module doc).
///
/// # Errors
/// [`ConfigError::InvalidValue`] for a node id that is not one, [`ConfigError::Cluster`] for
/// anything [`ClusterSpec`] refuses, naming the flag, variable or file key;
/// [`ConfigError::NotUnicode`].
pub(super) fn resolve<E: Fn(&str) -> Option<OsString>>(
    args: &ServeArgs,
    lower: &Lower<'_, E>,
) -> Result<Resolved, ConfigError> {
    let node_given = match lower.pick(args.node_id.as_deref(), &NODE_ID)? {
        Some(given) => Some(given),
        None => lower.file_text(CLUSTER_NODE_ID_KEY),
    };
    let node_id = node_given.as_ref().map(parse_given_node_id).transpose()?;
    let (peers, peers_origin) = match lower.pick(args.peers.as_deref(), &PEERS)? {
        Some(given) => (
            parse_peers(&given.text).map_err(|e| refused(&given, e))?,
            Some(given.origin),
        ),
        None => match lower.file.as_ref().and_then(|f| f.peer_table.clone()) {
            Some(entries) => {
                let origin = lower.file.as_ref().map(|f| f.origin(PEERS.file_key));
                let peers = peers_from_entries(entries).map_err(|source| ConfigError::Cluster {
                    context: format!("invalid {}", origin_text(origin.as_ref())),
                    source,
                })?;
                (peers, origin)
            }
            None => (Default::default(), None),
        },
    };
    let timings = resolve_timings(args, lower)?;
    let factor = lower.pick(
        args.default_replication_factor.as_deref(),
        &DEFAULT_REPLICATION_FACTOR,
    )?;
    let factor_text = factor.as_ref().map(|given| given.text.as_str());
    let spec = ClusterSpec::new(node_id, peers, timings, factor_text).map_err(|source| {
        let context = match &source {
            ClusterSpecError::InvalidDefaultReplicationFactor { .. } => {
                factor.as_ref().map_or_else(String::new, invalid_context)
            }
            ClusterSpecError::NodeIdRequired { .. } => {
                format!("invalid {}", origin_text(peers_origin.as_ref()))
            }
            _ => format!(
                "{} with {}",
                node_given.as_ref().map_or_else(
                    || "node id 1 (the default)".to_string(),
                    |given| format!("{} {}", given.origin, given.text)
                ),
                origin_text(peers_origin.as_ref())
            ),
        };
        ConfigError::Cluster { context, source }
    })?;
    let balance = lower.pick(
        args.leader_balance_interval_ms.as_deref(),
        &LEADER_BALANCE_INTERVAL,
    )?;
    let settings = LeaderBalanceSettings::parse(balance.as_ref().map(|g| g.text.as_str()))
        .map_err(|source| ConfigError::Cluster {
            context: balance.as_ref().map_or_else(String::new, invalid_context),
            source,
        })?;
    let spec = spec.with_leader_balance(settings);
    Ok(Resolved { spec, peers_origin })
}

/// The gRPC listen address: the one given (which must agree with the node's peer address), else
/// the node's peer address, else the default.
///
/// # Errors
/// [`ConfigError::Cluster`] when the given address disagrees with the peer address;
/// [`ConfigError::InvalidValue`] when the peer address is a host name and no listen address is
/// given (names are not resolved).
pub(super) fn listen_address(
    cluster: &Resolved,
    given: Option<(SocketAddr, &Given)>,
    default: SocketAddr,
) -> Result<SocketAddr, ConfigError> {
    let peers = origin_text(cluster.peers_origin.as_ref());
    match (given, cluster.spec.own_address()) {
        (Some((addr, given)), Some(_)) => {
            cluster
                .spec
                .check_listen_address(addr)
                .map_err(|source| ConfigError::Cluster {
                    context: format!("{} {} with {peers}", given.origin, given.text),
                    source,
                })?;
            Ok(addr)
        }
        (Some((addr, _)), None) => Ok(addr),
        (None, Some(own)) => {
            cluster
                .spec
                .own_socket_addr()
                .ok_or_else(|| ConfigError::InvalidValue {
                    origin: cluster
                        .peers_origin
                        .clone()
                        .unwrap_or(Origin::Flag(PEERS.flag)),
                    value: own.to_string(),
                    reason: format!(
                        "this node's address (node {}) is a host name, which is not resolved: \
                         give --grpc-addr IP:PORT to listen on",
                        cluster.spec.node_id()
                    ),
                })
        }
        (None, None) => Ok(default),
    }
}

fn resolve_timings<E: Fn(&str) -> Option<OsString>>(
    args: &ServeArgs,
    lower: &Lower<'_, E>,
) -> Result<RaftTimings, ConfigError> {
    let election = lower.pick(args.raft_election_timeout_ms.as_deref(), &ELECTION_TIMEOUT)?;
    let heartbeat = lower.pick(args.raft_heartbeat_ms.as_deref(), &HEARTBEAT)?;
    RaftTimings::parse(
        election.as_ref().map(|g| g.text.as_str()),
        heartbeat.as_ref().map(|g| g.text.as_str()),
    )
    .map_err(|source| {
        // Blame the heartbeat for its own errors; the election timeout for the rest (also
        // when a short timeout meets the default heartbeat).
        let blamed = match &source {
            ClusterSpecError::InvalidHeartbeat { .. } => heartbeat.as_ref(),
            _ => election.as_ref(),
        };
        ConfigError::Cluster {
            context: blamed.map_or_else(|| "raft timings".to_string(), invalid_context),
            source,
        }
    })
}

fn parse_given_node_id(given: &Given) -> Result<u64, ConfigError> {
    parse_node_id(&given.text).map_err(|_| ConfigError::InvalidValue {
        origin: given.origin.clone(),
        value: given.text.clone(),
        reason: format!("expected an integer from 1 to {MAX_NODE_ID}"),
    })
}

fn invalid_context(given: &Given) -> String {
    format!("invalid value {:?} for {}", given.text, given.origin)
}

fn refused(given: &Given, source: ClusterSpecError) -> ConfigError {
    ConfigError::Cluster {
        context: invalid_context(given),
        source,
    }
}

fn origin_text(origin: Option<&Origin>) -> String {
    origin.map_or_else(|| "no peer list".to_string(), Origin::to_string)
}
