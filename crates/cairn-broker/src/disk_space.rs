//! The check of free disk space before the broker creates partitions: a create whose new
//! partitions, at [`PARTITION_DISK_BYTES`] each, would leave less than [`CREATE_MARGIN_BYTES`]
//! free on the data directory's filesystem is refused up front, with what it needed and what was
//! free, rather than failing half-way on `ENOSPC`. It is a guard, not a reservation: other
//! writers can still fill the disk afterwards, and a full disk then is an ordinary `DiskFull`.

use std::path::Path;

use crate::error::BrokerError;

/// Disk budgeted for one new partition: an empty one takes a few pages (a `.log` of no bytes,
/// three index files of one 4 KiB step each, a checkpoint), and the budget leaves it room for
/// its first writes. It is also the documented ceiling on an empty partition's size.
pub const PARTITION_DISK_BYTES: u64 = 1 << 20;

/// Space a create must leave free, so that existing partitions can keep taking writes.
pub const CREATE_MARGIN_BYTES: u64 = 16 << 20;

/// Checks that `data_dir`'s filesystem has room for `partition_count` new partitions plus the
/// margin.
///
/// # Errors
/// [`BrokerError::InsufficientDiskSpace`] when it does not; [`BrokerError::Io`] when the free
/// space cannot be read.
pub(crate) fn check_room_for_partitions(
    data_dir: &Path,
    partition_count: u32,
) -> Result<(), BrokerError> {
    let needed_bytes = u64::from(partition_count)
        .saturating_mul(PARTITION_DISK_BYTES)
        .saturating_add(CREATE_MARGIN_BYTES);
    let available_bytes = available_bytes(data_dir)?;
    if available_bytes < needed_bytes {
        return Err(BrokerError::InsufficientDiskSpace {
            data_dir: data_dir.to_path_buf(),
            partition_count,
            needed_bytes,
            available_bytes,
        });
    }
    Ok(())
}

/// Bytes an unprivileged writer may still use on `dir`'s filesystem (`statvfs`: free blocks
/// for non-root users times the fragment size).
fn available_bytes(dir: &Path) -> Result<u64, BrokerError> {
    use std::os::unix::ffi::OsStrExt;
    let unreadable = |source| BrokerError::io("read free space of", dir, source);
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| unreadable(std::io::Error::other(e)))?;
    // SAFETY: `statvfs` is plain old data, so all-zero bytes are a valid value.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a pointer to a live, writable `statvfs`.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) };
    if rc != 0 {
        return Err(unreadable(std::io::Error::last_os_error()));
    }
    #[allow(
        clippy::useless_conversion,
        reason = "the field types differ between targets"
    )]
    Ok(u64::from(stats.f_bavail).saturating_mul(u64::from(stats.f_frsize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_create_within_the_free_space_passes_and_one_past_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        check_room_for_partitions(dir.path(), 1).unwrap();
        let err = check_room_for_partitions(dir.path(), u32::MAX).unwrap_err();
        match &err {
            BrokerError::InsufficientDiskSpace {
                needed_bytes,
                available_bytes,
                partition_count,
                ..
            } => {
                assert_eq!(*partition_count, u32::MAX);
                assert!(needed_bytes > available_bytes);
            }
            other => panic!("expected InsufficientDiskSpace, got {other}"),
        }
        let text = err.to_string();
        assert!(text.contains("4294967295 partitions"), "{text}");
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = check_room_for_partitions(&missing, 1).unwrap_err();
        assert!(matches!(err, BrokerError::Io { .. }), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
