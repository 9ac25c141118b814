//! Faults on demand for tests (the `fault-injection` feature; compiled out otherwise): make the
//! next `write` or `fdatasync` of segment files under a directory fail with a chosen OS error,
//! so tests can prove that a failed fsync is never retried and then acknowledged, or stop a
//! compaction swap after a chosen step, leaving its files as a crash there would. Faults are
//! keyed by directory, so tests running in parallel do not see each other's.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where a fault strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// The `pwritev` of appended batches.
    Write,
    /// The `fdatasync` of a segment.
    Sync,
    /// A step of the compaction file protocol (`segments-format.md`, "Compaction"): before the
    /// commit rename, before each file moved into place, before the swap directory goes.
    CleanStep,
}

struct Armed {
    dir: PathBuf,
    point: FaultPoint,
    errno: i32,
    remaining: u32,
    skip: u32,
}

static ARMED: Mutex<Vec<Armed>> = Mutex::new(Vec::new());

/// Makes the next `count` operations at `point` on files under `dir` fail with `errno`.
pub fn arm(dir: &Path, point: FaultPoint, errno: i32, count: u32) {
    arm_after(dir, point, errno, 0, count);
}

/// Like [`arm`], but the first `skip` operations at `point` pass before `count` fail.
pub fn arm_after(dir: &Path, point: FaultPoint, errno: i32, skip: u32, count: u32) {
    let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
    armed.push(Armed {
        dir: dir.to_path_buf(),
        point,
        errno,
        remaining: count,
        skip,
    });
}

/// Removes every fault armed for `dir`.
pub fn disarm(dir: &Path) {
    ARMED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|a| a.dir != dir);
}

/// The error to fail with at `point` for `path`, consuming one armed fault.
pub(crate) fn check(path: &Path, point: FaultPoint) -> Option<std::io::Error> {
    let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
    let fault = armed
        .iter_mut()
        .find(|a| a.point == point && a.remaining > 0 && path.starts_with(&a.dir))?;
    if fault.skip > 0 {
        fault.skip -= 1;
        return None;
    }
    fault.remaining -= 1;
    Some(std::io::Error::from_raw_os_error(fault.errno))
}
