//! The two `fio` figures PERFORMANCE.md compares produce with, measured in-process in the same
//! run: sequential `write` + `fdatasync` at the request's size, and the latency of a 4 KiB
//! `write` + `fdatasync`. Both write into a file laid out first, as fio does (it allocates the
//! whole `--size` before the first timed write), so the figures leave out the block allocation
//! an appending file pays, which the raw-append baseline in `baseline` keeps.
//!
//! Checked by hand against fio 3.33 on this project's kind of machine (2 vCPU EPYC VM, ext4 on
//! virtio, another engineer's build running), 2026-12-04, in the same directory, interleaved
//! with this code in three rounds (writes of 1,033,997 bytes, one request of 1,000 records of
//! 1 KiB). `fio --name=w --rw=write --bs=1034061 --size=1G --fdatasync=1 --direct=0
//! --time_based --runtime=3`: fio 309, 314, 307 MB/s against 347, 1172, 291 MB/s here; a fast
//! period minutes earlier gave fio 977 to 1077 MB/s against 1277 here. Writes wrap around the
//! file here as with fio's `--time_based`; fio's single pass (no `--time_based`) came out
//! slower twice (903 and 506 MB/s), probably because a first write to an allocated block also
//! converts its extent. `fio --name=l
//! --rw=write --bs=4k --size=64M --fdatasync=1 --runtime=3 --time_based`, fdatasync p50/p99:
//! fio 0.73/5.2, 0.23/4.7, 0.27/5.5 ms against write+fdatasync 0.25/5.3, 0.36/5.4, 0.81/7.5 ms
//! here, and 0.20/0.33 ms against 0.19/0.33 ms in the fast period. So the figures agree
//! within this machine's drift (3x within minutes, more than between the two tools); that is
//! all either can claim, which is why they are measured in the same run as Cairn.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::report::{Percentiles, latency_histogram, record_latency};
use super::scratch::Scratch;

/// Size of the laid-out file of the sequential measurement, fio's `--size=1G`; writes wrap
/// around to its start when they reach its end.
pub const SEQUENTIAL_FILE_BYTES: u64 = 1 << 30;
/// How long the sequential measurement writes.
pub const SEQUENTIAL_DURATION: Duration = Duration::from_secs(3);
/// Bytes of each write of the latency measurement.
pub const SMALL_WRITE_BYTES: usize = 4096;
/// Size of the laid-out file of the latency measurement.
pub const SMALL_FILE_BYTES: u64 = 64 << 20;
/// How long the latency measurement runs, unless it reaches [`SMALL_MAX_OPS`] first.
pub const SMALL_DURATION: Duration = Duration::from_secs(3);
/// Most writes the latency measurement times (enough for a steady p99).
pub const SMALL_MAX_OPS: u64 = 20_000;

/// Sequential `write` + `fdatasync` of `write_bytes`-byte writes into a laid-out file at
/// `path`, in bytes per second.
///
/// # Errors
/// The file cannot be made, laid out (a full disk), written or synced.
pub fn sequential(path: &Path, write_bytes: usize) -> anyhow::Result<f64> {
    if write_bytes == 0 || write_bytes as u64 > SEQUENTIAL_FILE_BYTES {
        bail!("a sequential baseline write must be 1..={SEQUENTIAL_FILE_BYTES} bytes");
    }
    let file = laid_out(path, SEQUENTIAL_FILE_BYTES)?;
    let chunk = vec![b'x'; write_bytes];
    let (mut position, mut written) = (0_u64, 0_u64);
    let start = Instant::now();
    while start.elapsed() < SEQUENTIAL_DURATION {
        write_and_sync(&file, path, &chunk, position)?;
        written += write_bytes as u64;
        position = next_position(position, write_bytes as u64, SEQUENTIAL_FILE_BYTES);
    }
    Ok(written as f64 / start.elapsed().as_secs_f64())
}

/// Latency of 4 KiB `write` + `fdatasync` into a laid-out file at `path`: its percentiles and
/// how many writes they cover.
///
/// # Errors
/// The file cannot be made, laid out, written or synced.
pub fn small_write_latency(path: &Path) -> anyhow::Result<(Percentiles, u64)> {
    small_writes(path, SMALL_DURATION, SMALL_MAX_OPS, None)
}

/// [`small_write_latency`] in a scratch directory of its own under `dir`, removed afterwards:
/// for a second reading after the end-to-end run, since fsync latency here drifts within
/// minutes.
///
/// # Errors
/// As [`small_write_latency`], or the scratch directory cannot be made.
pub fn small_write_latency_in(dir: &Path) -> anyhow::Result<(Percentiles, u64)> {
    small_write_latency(&scratch_in(dir)?.path().join("small"))
}

/// Latency of 4 KiB `write` + `fdatasync` started `interval` apart (a paced run's schedule),
/// in a scratch directory of its own under `dir`, removed afterwards.
///
/// Why it exists: on this project's VMs a sync that follows an idle spell is slower than one
/// that follows another sync (measured: p50 0.26 ms with 5 ms between syncs against 0.12 to
/// 0.18 ms back to back, the same 4 KiB writes into the same kind of file; presumably the
/// hypervisor's I/O path stops polling once idle), so back-to-back figures are not what the
/// disk gives a producer at 200 records/s. This is.
///
/// # Errors
/// As [`small_write_latency`], or the scratch directory cannot be made.
pub fn paced_small_write_latency_in(
    dir: &Path,
    interval: Duration,
) -> anyhow::Result<(Percentiles, u64)> {
    let scratch = scratch_in(dir)?;
    let path = scratch.path().join("small");
    // On a thread of its own: the timer slack below is a thread's setting, which a caller's
    // thread (a runtime worker) should not be left with.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                super::pacer::precise_thread_sleeps();
                small_writes(&path, SMALL_DURATION, SMALL_MAX_OPS, Some(interval))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the paced fsync measurement panicked"))?
    })
}

/// A scratch directory under `dir` for one measurement, removed when dropped.
fn scratch_in(dir: &Path) -> anyhow::Result<Scratch> {
    Scratch::new_in(dir, "cairn-bench-fsync-")
}

/// `write` + `fdatasync` of 4 KiB at a time for `duration` or `max_ops` writes, back to back,
/// or each started `interval` after the previous one was due.
fn small_writes(
    path: &Path,
    duration: Duration,
    max_ops: u64,
    interval: Option<Duration>,
) -> anyhow::Result<(Percentiles, u64)> {
    let file = laid_out(path, SMALL_FILE_BYTES)?;
    let chunk = [b'x'; SMALL_WRITE_BYTES];
    let mut histogram = latency_histogram()?;
    let (mut position, mut ops) = (0_u64, 0_u64);
    let start = Instant::now();
    while start.elapsed() < duration && ops < max_ops {
        if let Some(interval) = interval {
            let due = start + interval.saturating_mul(u32::try_from(ops).unwrap_or(u32::MAX));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let one = Instant::now();
        write_and_sync(&file, path, &chunk, position)?;
        record_latency(&mut histogram, one.elapsed());
        ops += 1;
        position = next_position(position, SMALL_WRITE_BYTES as u64, SMALL_FILE_BYTES);
    }
    Ok((Percentiles::of(&histogram), ops))
}

/// A new file of `len` bytes with its blocks allocated and the allocation synced, so the
/// timed writes change data only.
pub(super) fn laid_out(path: &Path, len: u64) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let len_off = libc::off_t::try_from(len).context("the baseline file size")?;
    // SAFETY: posix_fallocate on a file descriptor this function owns; no memory is passed.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len_off) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc))
            .with_context(|| format!("allocating {len} bytes for {}", path.display()));
    }
    file.sync_all()
        .with_context(|| format!("fsync of {}", path.display()))?;
    Ok(file)
}

fn write_and_sync(file: &File, path: &Path, chunk: &[u8], position: u64) -> anyhow::Result<()> {
    file.write_all_at(chunk, position)
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_data()
        .with_context(|| format!("fdatasync of {}", path.display()))
}

/// Where the write after one at `position` goes: right after it, or back at the start when
/// another would not fit before `len`.
pub(super) fn next_position(position: u64, write_bytes: u64, len: u64) -> u64 {
    let next = position + write_bytes;
    if next + write_bytes > len { 0 } else { next }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn writes_wrap_to_the_start_before_passing_the_end() {
        assert_eq!(next_position(0, 4, 12), 4);
        assert_eq!(next_position(4, 4, 12), 8);
        assert_eq!(next_position(8, 4, 12), 0);
        assert_eq!(next_position(0, 5, 12), 5);
        assert_eq!(next_position(5, 5, 12), 0);
    }

    #[test]
    fn the_latency_baseline_times_real_synced_writes_in_a_laid_out_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        let (latency, ops) = small_writes(&path, SMALL_DURATION, 50, None).unwrap();
        assert_eq!(ops, 50);
        assert!(0.0 < latency.p50 && latency.p50 <= latency.p99);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SMALL_FILE_BYTES);
        assert!(small_write_latency(&path).is_err(), "never reuses a file");
    }

    #[test]
    fn the_paced_baseline_spaces_its_writes_by_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paced");
        let interval = Duration::from_millis(20);
        let start = Instant::now();
        let (latency, ops) = small_writes(&path, SMALL_DURATION, 10, Some(interval)).unwrap();
        assert_eq!(ops, 10);
        assert!(start.elapsed() >= interval * 9, "{:?}", start.elapsed());
        assert!(0.0 < latency.p50 && latency.p50 <= latency.p99);
    }
}
