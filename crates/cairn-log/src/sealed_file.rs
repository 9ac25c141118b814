//! Small metadata files sealed with a CRC-32C and written atomically (temporary file, fsync,
//! rename, fsync of the directory), so a crash leaves the old file or the new one and damage is
//! detected rather than believed. One layout serves every such file of Cairn's; each family
//! (the log's checkpoints, the Raft metadata files) has its own magic, version and size bound,
//! and each file its kind, so a file renamed to the wrong name is caught. Layout:
//! `segments-format.md`, "Checkpoint files".
//!
//! Errors come back as [`SealedFileError`], which each family turns into its own crate's error.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Magic, version and size bound of one family of sealed files.
#[derive(Clone, Copy, Debug)]
pub struct SealedFormat {
    /// The first eight bytes of every file of the family.
    pub magic: &'static [u8; 8],
    /// The only version read.
    pub version: u16,
    /// The largest payload written or read; a larger length field is damage, refused before
    /// allocating.
    pub max_payload: usize,
}

/// Bytes before the payload: magic, version, kind, length.
const HEADER_BYTES: usize = 8 + 2 + 2 + 4;

/// Why a sealed file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SealedFileError {
    /// The file system refused an operation.
    #[error("{operation} {}: {source}", path.display())]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid file of its family and kind, or a payload is too large to be one.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn io(operation: &'static str, path: &Path, source: std::io::Error) -> SealedFileError {
    SealedFileError::Io {
        operation,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `payload` as file `name` of `dir`, atomically and durably.
///
/// # Errors
/// [`SealedFileError::Io`]; [`SealedFileError::Corrupt`] for a payload over the bound. The
/// previous file is then still in place.
pub fn write_sealed(
    dir: &Path,
    name: &str,
    format: SealedFormat,
    kind: u16,
    payload: &[u8],
) -> Result<(), SealedFileError> {
    let path = dir.join(name);
    let length = u32::try_from(payload.len())
        .ok()
        .filter(|_| payload.len() <= format.max_payload)
        .ok_or_else(|| SealedFileError::Corrupt {
            path: path.clone(),
            reason: format!("payload of {} bytes is over the limit", payload.len()),
        })?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len() + 4);
    bytes.extend_from_slice(format.magic);
    bytes.extend_from_slice(&format.version.to_be_bytes());
    bytes.extend_from_slice(&kind.to_be_bytes());
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(payload);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());

    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|source| io("create checkpoint", &tmp, source))?;
    file.write_all(&bytes)
        .map_err(|source| io("write checkpoint", &tmp, source))?;
    file.sync_all()
        .map_err(|source| io("fsync checkpoint", &tmp, source))?;
    fs::rename(&tmp, &path).map_err(|source| io("rename checkpoint", &path, source))?;
    // The rename is durable only once the directory entry is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| io("fsync directory", dir, source))
}

/// Reads file `path`: `None` if it does not exist, its payload if every check passes (size,
/// checksum, magic, version, kind, length).
///
/// # Errors
/// [`SealedFileError::Corrupt`] naming the failed check; [`SealedFileError::Io`].
pub fn read_sealed(
    path: &Path,
    format: SealedFormat,
    kind: u16,
) -> Result<Option<Vec<u8>>, SealedFileError> {
    let corrupt = |reason: &str| SealedFileError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let len = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io("stat checkpoint", path, source)),
    };
    if len > (HEADER_BYTES + format.max_payload + 4) as u64 {
        return Err(corrupt("larger than any checkpoint"));
    }
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io("read checkpoint", path, source)),
    };
    let (body, crc) = bytes
        .split_last_chunk::<4>()
        .filter(|(body, _)| body.len() >= HEADER_BYTES)
        .ok_or_else(|| corrupt("shorter than a checkpoint header"))?;
    if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
        return Err(corrupt("checksum mismatch"));
    }
    if &body[..8] != format.magic {
        return Err(corrupt("bad magic"));
    }
    if u16::from_be_bytes([body[8], body[9]]) != format.version {
        return Err(corrupt("unknown version"));
    }
    if u16::from_be_bytes([body[10], body[11]]) != kind {
        return Err(corrupt("wrong checkpoint kind"));
    }
    let length = u32::from_be_bytes([body[12], body[13], body[14], body[15]]) as usize;
    if length > format.max_payload || body.len() != HEADER_BYTES + length {
        return Err(corrupt("payload length does not match the file"));
    }
    Ok(Some(body[HEADER_BYTES..].to_vec()))
}
