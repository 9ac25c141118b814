//! Who a data directory belongs to: `DATA/node.meta` (Kafka's `meta.properties` idea) records the
//! node id the directory was written as and, once the controller assigns one, the cluster id.
//! Checked before anything else in the directory is opened, so a node started with another
//! node's data, or under a changed `--node-id`, stops before it could serve or replicate data
//! that is not its own. The layout is in `segments-format.md` §16.
//!
//! It never deletes or rewrites anything but `node.meta` itself: an unreadable file stops the
//! start with an error naming it, and the operator decides. A directory that holds data from
//! before clustering (no `node.meta`) is adopted by a cluster of one, so single-node users
//! upgrade without a step; a multi-node cluster refuses it, since its logs were never
//! replicated and would silently disagree with the other nodes'.
//!
//! The invariant: `node.meta` is replaced only whole (temporary file, fsync, rename, fsync of
//! the directory), so a crash leaves the old file or the new one, never a torn one.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cluster_spec::{ClusterSpec, MAX_NODE_ID};

/// The file's name in the data directory.
pub const NODE_META_FILE: &str = "node.meta";
/// The temporary name it is written under before its rename. Ends in `.tmp`, so a leftover is
/// removed at start with the broker's other temporary files.
const NODE_META_TMP_FILE: &str = "node.meta.tmp";
/// The format version this code writes and reads.
pub const NODE_META_VERSION: u16 = 1;
/// The whole file's length in bytes.
pub const NODE_META_BYTES: usize = 40;

const MAGIC: &[u8; 8] = b"CAIRNNOD";
/// Flag bit: the cluster id field holds an id.
const FLAG_CLUSTER_ID: u16 = 1;
const CRC_POS: usize = 36;
const _: () = assert!(CRC_POS + 4 == NODE_META_BYTES);

/// A cluster's id: 16 bytes, shown as 32 lowercase hex digits. The controller draws it when
/// the cluster first forms; until then a node has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClusterId(pub [u8; 16]);

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// What `node.meta` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeMeta {
    /// The node id the directory belongs to.
    pub node_id: u64,
    /// The cluster the node joined, once the controller has said.
    pub cluster_id: Option<ClusterId>,
}

/// Why the data directory's identity could not be read, written or accepted.
#[derive(Debug, thiserror::Error)]
pub enum NodeMetaError {
    /// `node.meta` names another node id than the one configured: the directory is another
    /// node's, or `--node-id` changed. Nothing was opened.
    #[error(
        "{} belongs to node {stored}, but this node was started as node {configured}: \
         start it with --node-id {stored}, or give it its own data directory",
        path.display()
    )]
    NodeIdMismatch {
        /// The `node.meta` file.
        path: PathBuf,
        /// The id it holds.
        stored: u64,
        /// The id given (`--node-id`).
        configured: u64,
    },
    /// `node.meta` names another cluster than the one given.
    #[error("{} belongs to cluster {stored}, not cluster {given}", path.display())]
    ClusterIdMismatch {
        /// The `node.meta` file.
        path: PathBuf,
        /// The id it holds.
        stored: ClusterId,
        /// The id given.
        given: ClusterId,
    },
    /// `node.meta` is not a valid file of this format. Nothing was deleted.
    #[error("{} is unreadable: {reason}; nothing was changed, repair or restore it", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The data directory holds data but no `node.meta`, and the node starts in a cluster of
    /// several: data written by a lone broker cannot join a replicated cluster unchecked.
    #[error(
        "{} holds data but no {NODE_META_FILE}, and this node starts in a cluster of \
         {node_count} nodes: start it once without --peers (a cluster of one adopts the data), \
         or give it an empty data directory",
        data_dir.display()
    )]
    UnclaimedData {
        /// The data directory.
        data_dir: PathBuf,
        /// Nodes in the configured cluster.
        node_count: usize,
    },
    /// Reading or writing failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl NodeMetaError {
    /// True when the operator's settings disagree with the directory (a node id or cluster id
    /// mismatch, or data a multi-node start cannot adopt), as opposed to a damaged file or an
    /// I/O failure: the fix is in the flags.
    pub fn is_config_mistake(&self) -> bool {
        matches!(
            self,
            NodeMetaError::NodeIdMismatch { .. }
                | NodeMetaError::ClusterIdMismatch { .. }
                | NodeMetaError::UnclaimedData { .. }
        )
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NodeMetaError {
    let path = path.to_path_buf();
    move |source| NodeMetaError::Io { op, path, source }
}

impl NodeMeta {
    /// The file's bytes (layout in `segments-format.md` §16).
    pub fn encode(&self) -> [u8; NODE_META_BYTES] {
        let mut bytes = [0u8; NODE_META_BYTES];
        bytes[0..8].copy_from_slice(MAGIC);
        bytes[8..10].copy_from_slice(&NODE_META_VERSION.to_be_bytes());
        let flags = if self.cluster_id.is_some() {
            FLAG_CLUSTER_ID
        } else {
            0
        };
        bytes[10..12].copy_from_slice(&flags.to_be_bytes());
        bytes[12..20].copy_from_slice(&self.node_id.to_be_bytes());
        if let Some(ClusterId(id)) = self.cluster_id {
            bytes[20..36].copy_from_slice(&id);
        }
        let crc = crc32c::crc32c(&bytes[..CRC_POS]);
        bytes[CRC_POS..].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    /// Decodes the file's bytes, checking everything §16 requires of them.
    ///
    /// # Errors
    /// The reason the bytes are not a valid `node.meta`.
    pub fn decode(bytes: &[u8]) -> Result<NodeMeta, String> {
        let bytes: &[u8; NODE_META_BYTES] = bytes
            .try_into()
            .map_err(|_| format!("{} bytes long, expected {NODE_META_BYTES}", bytes.len()))?;
        let (body, crc) = bytes.split_at(CRC_POS);
        let stored_crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let computed_crc = crc32c::crc32c(body);
        if stored_crc != computed_crc {
            return Err(format!(
                "CRC-32C mismatch (stored {stored_crc:#010x}, computed {computed_crc:#010x})"
            ));
        }
        if &bytes[0..8] != MAGIC {
            return Err("wrong magic (not a node.meta file)".to_string());
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != NODE_META_VERSION {
            return Err(format!(
                "format version {version}, this build reads version {NODE_META_VERSION}"
            ));
        }
        let flags = u16::from_be_bytes([bytes[10], bytes[11]]);
        if flags & !FLAG_CLUSTER_ID != 0 {
            return Err(format!("unknown flags {flags:#06x}"));
        }
        let mut node_id = [0u8; 8];
        node_id.copy_from_slice(&bytes[12..20]);
        let node_id = u64::from_be_bytes(node_id);
        if !(1..=MAX_NODE_ID).contains(&node_id) {
            return Err(format!("node id {node_id} is outside 1..={MAX_NODE_ID}"));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[20..36]);
        let cluster_id = if flags & FLAG_CLUSTER_ID != 0 {
            Some(ClusterId(id))
        } else if id != [0; 16] {
            return Err("a cluster id is stored but its flag is clear".to_string());
        } else {
            None
        };
        Ok(NodeMeta {
            node_id,
            cluster_id,
        })
    }
}

/// Reads `data_dir`'s `node.meta`; `None` when there is none.
///
/// # Errors
/// [`NodeMetaError::Unreadable`] for a file that fails [`NodeMeta::decode`] (or is too
/// large to be one), [`NodeMetaError::Io`].
pub fn read(data_dir: &Path) -> Result<Option<NodeMeta>, NodeMetaError> {
    let path = data_dir.join(NODE_META_FILE);
    let size = match fs::metadata(&path) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io("read", &path)(err)),
    };
    // Checked before reading, so a wrong file in its place (a log, a device) is never read whole.
    if size != NODE_META_BYTES as u64 {
        return Err(NodeMetaError::Unreadable {
            path,
            reason: format!("{size} bytes long, expected {NODE_META_BYTES}"),
        });
    }
    let bytes = fs::read(&path).map_err(io("read", &path))?;
    NodeMeta::decode(&bytes)
        .map(Some)
        .map_err(|reason| NodeMetaError::Unreadable { path, reason })
}

/// Writes `identity` as `data_dir`'s `node.meta`, atomically: a temporary file, fsynced, renamed
/// over the old one, then the directory fsynced. Durable when it returns.
///
/// # Errors
/// [`NodeMetaError::Io`]; the old file, if any, is then still in place.
pub fn write(data_dir: &Path, identity: &NodeMeta) -> Result<(), NodeMetaError> {
    let tmp = data_dir.join(NODE_META_TMP_FILE);
    let path = data_dir.join(NODE_META_FILE);
    let written = fs::File::create(&tmp)
        .map_err(io("create", &tmp))
        .and_then(|mut file| {
            file.write_all(&identity.encode())
                .map_err(io("write", &tmp))?;
            file.sync_all().map_err(io("fsync", &tmp))
        })
        .and_then(|()| fs::rename(&tmp, &path).map_err(io("rename", &path)));
    if let Err(err) = written {
        // Best effort: a leftover is removed at the next start anyway.
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io("fsync directory", data_dir))
}

/// Checks `data_dir` belongs to the node `spec` describes, before anything in it is opened, and
/// records the node's identity if the directory has none yet: an empty directory is claimed by
/// any node, a directory holding data only by a cluster of one (see the module doc).
///
/// # Errors
/// [`NodeMetaError::NodeIdMismatch`], [`NodeMetaError::UnclaimedData`],
/// [`NodeMetaError::Unreadable`], [`NodeMetaError::Io`]. None of them changes the
/// directory.
pub fn check_or_claim(data_dir: &Path, spec: &ClusterSpec) -> Result<NodeMeta, NodeMetaError> {
    if let Some(identity) = read(data_dir)? {
        if identity.node_id != spec.node_id() {
            return Err(NodeMetaError::NodeIdMismatch {
                path: data_dir.join(NODE_META_FILE),
                stored: identity.node_id,
                configured: spec.node_id(),
            });
        }
        return Ok(identity);
    }
    if holds_data(data_dir)? {
        if !spec.is_single_node() {
            return Err(NodeMetaError::UnclaimedData {
                data_dir: data_dir.to_path_buf(),
                node_count: spec.node_count(),
            });
        }
        tracing::info!(
            data_dir = %data_dir.display(),
            node_id = spec.node_id(),
            "adopting a data directory from before node.meta as a cluster of one"
        );
    }
    let identity = NodeMeta {
        node_id: spec.node_id(),
        cluster_id: None,
    };
    write(data_dir, &identity)?;
    Ok(identity)
}

/// Records the cluster id the controller assigned in `data_dir`'s `node.meta`. Setting the id
/// the file already holds changes nothing; another one is refused.
///
/// # Errors
/// [`NodeMetaError::ClusterIdMismatch`]; [`NodeMetaError::Unreadable`] or
/// [`NodeMetaError::Io`], and a missing file as `Io` with `NotFound` (the node's identity is
/// claimed at open, so it exists by the time a controller speaks).
pub fn set_cluster_id(data_dir: &Path, cluster_id: ClusterId) -> Result<NodeMeta, NodeMetaError> {
    let path = data_dir.join(NODE_META_FILE);
    let Some(identity) = read(data_dir)? else {
        return Err(io("read", &path)(std::io::Error::from(
            std::io::ErrorKind::NotFound,
        )));
    };
    match identity.cluster_id {
        Some(stored) if stored == cluster_id => Ok(identity),
        Some(stored) => Err(NodeMetaError::ClusterIdMismatch {
            path,
            stored,
            given: cluster_id,
        }),
        None => {
            let updated = NodeMeta {
                cluster_id: Some(cluster_id),
                ..identity
            };
            write(data_dir, &updated)?;
            Ok(updated)
        }
    }
}

/// True when `data_dir` holds anything but temporary files (`*.tmp`, which start-up removes).
fn holds_data(data_dir: &Path) -> Result<bool, NodeMetaError> {
    let entries = fs::read_dir(data_dir).map_err(io("list", data_dir))?;
    for entry in entries {
        let entry = entry.map_err(io("list", data_dir))?;
        let is_tmp = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.ends_with(".tmp"));
        if !is_tmp {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests;
