//! Disk space reserved ahead of the active segment's data end, and the positional writes that
//! fill it (`segments-format.md` §7.2). Under `flush.policy=always` every group commit ends in
//! an `fdatasync`; if the write grew the file, that `fdatasync` must also journal the inode's new
//! size, which on ext4 costs about 40 % more per sync (measured p50 256 µs against 180 µs). So
//! the file is extended with `fallocate` (mode 0, which sets the size) in large steps and the
//! data is written in place below the file's end.
//!
//! Preallocation is only ever an optimisation: when the filesystem cannot do it, or the disk is
//! too full for a step, the write simply extends the file as it always did, and a full disk
//! reaches the caller as the write's own `ENOSPC`. The invariant a reader must carry: bytes past
//! the segment's data end are zeros this process reserved (or garbage from a write torn by a
//! crash), never data, and the writer's state, not the file's length, says where the data ends.

use std::fs::File;
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The unit the active segment's file is reserved in: one `fallocate` (and one inode size
/// change) per 8 MiB of appends, while a segment that is closed cleanly or sealed gives back at
/// most this much when it is trimmed.
pub(crate) const PREALLOCATE_STEP_BYTES: u64 = 8 << 20;

/// What the writer knows about the space behind one segment file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Preallocation {
    /// The file's length as this process last set or saw it. It may be below the truth (a
    /// failed `fallocate` that extended the file part-way) but that only costs one more
    /// `fallocate`; the data end is never taken from it.
    pub(crate) file_bytes: u64,
    /// False once the filesystem has said it cannot preallocate: the file is then extended by
    /// each write, as before preallocation existed.
    supported: bool,
}

impl Preallocation {
    /// The state for a file that is `file_bytes` long now.
    pub(crate) fn new(file_bytes: u64) -> Preallocation {
        Preallocation {
            file_bytes,
            supported: true,
        }
    }

    /// Makes sure, if it can, that the file reaches at least `data_end` before a write up to
    /// there: reserves up to the next multiple of `PREALLOCATE_STEP_BYTES` at or above
    /// `data_end`, capped at `cap_bytes` (a full segment plus one largest batch, past which the
    /// segment rolls). On `ENOSPC` it tries just `data_end`; on any failure the write that
    /// follows extends the file itself, so nothing here is an error the caller sees. A segment
    /// already past the cap (one holding only meta entries, which never rolls) is not
    /// preallocated.
    ///
    /// Rounding to whole steps, rather than reserving a step past wherever the data ends now,
    /// makes the file's length a function of its data end alone (while space lasts): replicas
    /// that hold the same batches have identical files, however their appends were grouped or
    /// restarted, and each reservation is step-aligned.
    pub(crate) fn reserve_ahead(
        &mut self,
        file: &File,
        path: &Path,
        data_end: u64,
        cap_bytes: u64,
    ) {
        if !self.supported || data_end <= self.file_bytes {
            return;
        }
        let ahead = data_end
            .div_ceil(PREALLOCATE_STEP_BYTES)
            .saturating_mul(PREALLOCATE_STEP_BYTES)
            .min(cap_bytes);
        if ahead < data_end {
            return;
        }
        let smaller = (ahead > data_end).then_some(data_end);
        for target in std::iter::once(ahead).chain(smaller) {
            if target <= self.file_bytes {
                return;
            }
            match fallocate_to(file, self.file_bytes, target) {
                Ok(()) => {
                    self.file_bytes = target;
                    return;
                }
                Err(err) if is_disk_full(&err) => {
                    // ext4 may have extended the file part-way before giving up: learn its
                    // length again, and try the smaller step (or let the write find the end).
                    if let Ok(meta) = file.metadata() {
                        self.file_bytes = self.file_bytes.max(meta.len());
                    }
                }
                Err(err) if is_unsupported(&err) => {
                    tracing::debug!(segment = %path.display(), %err, "filesystem cannot preallocate; appends extend the file");
                    self.supported = false;
                    return;
                }
                Err(err) => {
                    // Unexpected (`EIO`, `EPERM`, `EFBIG`): stop trying for this segment, so
                    // every append does not log it again; the write reports its own errors.
                    tracing::warn!(segment = %path.display(), %err, "preallocating segment space failed; this segment's appends extend the file");
                    self.supported = false;
                    return;
                }
            }
        }
    }
}

/// True for the errors of a full disk or quota (`ENOSPC`, `EDQUOT`).
pub(crate) fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

fn is_unsupported(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL)
    )
}

/// Reserves bytes `from..to` of `file` with `fallocate` mode 0, which also sets the file's size
/// to `to`: the point is that later writes below `to` change no inode size. Not
/// `posix_fallocate`, which glibc emulates by writing zeros where the filesystem lacks it.
#[cfg(target_os = "linux")]
fn fallocate_to(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    let offset = libc::off_t::try_from(from).map_err(std::io::Error::other)?;
    let len = libc::off_t::try_from(to - from).map_err(std::io::Error::other)?;
    loop {
        // SAFETY: a plain syscall on an fd we own; no memory is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn fallocate_to(_file: &File, _from: u64, _to: u64) -> std::io::Result<()> {
    Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

/// Writes every byte of `slices` at `position` with `pwritev`, in chunks below `IOV_MAX`. No
/// `O_APPEND`: the active segment's file may be longer than its data (zeros reserved ahead),
/// and the data end is the writer's state, not the file's length.
///
/// # Errors
/// The OS error of the first `pwritev` that fails (`ENOSPC` on a full disk); bytes before it
/// may have been written, and the caller cuts them off.
pub(crate) fn write_all_vectored_at(
    file: &File,
    mut slices: &mut [IoSlice<'_>],
    mut position: u64,
) -> std::io::Result<()> {
    // IOV_MAX is 1024 on Linux.
    const MAX_IOVECS: usize = 1024;
    while !slices.is_empty() {
        let chunk = slices.len().min(MAX_IOVECS);
        let offset = libc::off_t::try_from(position).map_err(std::io::Error::other)?;
        // SAFETY: `IoSlice` is guaranteed ABI-compatible with `iovec` on Unix, the pointer and
        // count describe `chunk` live slices, and the fd is ours for the call's duration.
        let rc = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                slices.as_ptr().cast::<libc::iovec>(),
                chunk as libc::c_int,
                offset,
            )
        };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if rc == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "pwritev wrote nothing",
            ));
        }
        let written = rc as usize;
        position += written as u64;
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}
