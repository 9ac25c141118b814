//! `DATA/security.json`: the users, ACLs and quotas of a node that is a cluster of one, which has no
//! controller log to keep them in. The state is the same [`Security`] type the cluster metadata
//! holds, changed by the same methods, so a rule is never written twice.
//!
//! The file is `{"v":1,"security":{...}}` (the `security` object as in a controller snapshot),
//! replaced whole: written to `security.json.tmp`, fsynced, renamed over the old one, and the
//! directory fsynced, so a crash leaves the old file or the new one, never half of either.
//! It holds salted keys, never a password, and is created mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_controller::Security;
use serde::{Deserialize, Serialize};

use crate::error::BrokerError;
use crate::topic_store::fsync_dir;

/// The file's name in the data directory.
pub const SECURITY_FILE: &str = "security.json";

/// The format version this build writes and reads.
const SECURITY_FILE_VERSION: u64 = 1;

/// Largest file read (users and ACLs are small; a bigger file is damage or not ours).
const SECURITY_FILE_BYTES_MAX: u64 = 64 << 20;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecurityFile {
    v: u64,
    security: Security,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(SECURITY_FILE)
}

/// Reads the file; no file is an empty state.
///
/// # Errors
/// [`BrokerError::Io`] if it cannot be read, [`BrokerError::InvalidRequest`] naming the file if
/// it is too large, does not decode, is another version, or breaks a rule (a node must not
/// start with users or ACLs it cannot read: it would run more open than configured).
pub fn load(data_dir: &Path) -> Result<Security, BrokerError> {
    let path = path(data_dir);
    let bytes = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Security::new()),
        Err(e) => return Err(BrokerError::io("stat security file", &path, e)),
        Ok(meta) if meta.len() > SECURITY_FILE_BYTES_MAX => {
            return Err(damaged(&path, "larger than 64 MiB"));
        }
        Ok(_) => {
            std::fs::read(&path).map_err(|e| BrokerError::io("read security file", &path, e))?
        }
    };
    let file: SecurityFile =
        serde_json::from_slice(&bytes).map_err(|e| damaged(&path, &e.to_string()))?;
    if file.v != SECURITY_FILE_VERSION {
        return Err(damaged(
            &path,
            &format!("format version {} is not 1", file.v),
        ));
    }
    // Re-applying every entry through the checked methods proves each one valid.
    let mut checked = Security::new();
    for (name, credential) in file.security.users() {
        checked
            .upsert_user(name.clone(), credential.clone())
            .map_err(|e| damaged(&path, &e.to_string()))?;
    }
    checked
        .create_acls(file.security.acls().iter().cloned().collect())
        .map_err(|e| damaged(&path, &e.to_string()))?;
    Ok(checked)
}

/// Replaces the file with `security` (see the module docs for the crash safety).
///
/// # Errors
/// [`BrokerError::Io`] naming the step that failed; the old file is then still in place.
pub fn save(data_dir: &Path, security: &Security) -> Result<(), BrokerError> {
    let path = path(data_dir);
    let tmp = data_dir.join(format!("{SECURITY_FILE}.tmp"));
    let file = SecurityFile {
        v: SECURITY_FILE_VERSION,
        security: security.clone(),
    };
    let bytes = serde_json::to_vec(&file).expect("the security state always serializes to JSON");
    let written = write_private(&tmp, &bytes).and_then(|()| {
        std::fs::rename(&tmp, &path).map_err(|e| BrokerError::io("rename security file", &path, e))
    });
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err);
    }
    fsync_dir(data_dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BrokerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| BrokerError::io("create security file", path, e))?;
    file.write_all(bytes)
        .map_err(|e| BrokerError::io("write security file", path, e))?;
    file.sync_all()
        .map_err(|e| BrokerError::io("fsync security file", path, e))
}

fn damaged(path: &Path, reason: &str) -> BrokerError {
    BrokerError::InvalidRequest(format!("{} is unreadable: {reason}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_controller::security::scram::ScramCredential;

    #[test]
    fn no_file_is_empty_and_a_saved_state_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let mut security = Security::new();
        security
            .upsert_user(
                "alice".into(),
                ScramCredential::derive(b"pw", b"saltsalt", 4096),
            )
            .unwrap();
        save(dir.path(), &security).unwrap();
        assert_eq!(load(dir.path()).unwrap(), security);
        let text = std::fs::read_to_string(dir.path().join(SECURITY_FILE)).unwrap();
        assert!(!text.contains("\"pw\""));
    }

    #[test]
    fn a_damaged_file_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "{",
            r#"{"v":2,"security":{}}"#,
            r#"{"v":1,"security":{"users":{"a b":{"mechanism":"SCRAM-SHA-256","salt":"0011223344556677","iterations":4096,"stored_key":"00","server_key":"00"}}}}"#,
        ] {
            std::fs::write(dir.path().join(SECURITY_FILE), text).unwrap();
            assert!(load(dir.path()).is_err(), "{text}");
        }
    }
}
