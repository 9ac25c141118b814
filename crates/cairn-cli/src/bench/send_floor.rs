//! The client's CPU floor for a produce run, measured in the same run: the CPU one thread
//! spends to copy each record into a request-sized buffer, checksum the buffer (a batch's
//! CRC-32C) and write it into a loopback TCP socket. Any producer of this protocol does at
//! least that per byte it sends, whatever else it does, so the bench's own CPU per GB read
//! against this floor says how far the client is from "copying it"; the floor itself moves
//! with the machine (this VM's CPU reads up to twice as slow in some hours), which an absolute
//! CPU-s per GB target does not.
//!
//! Only the sending thread's CPU is counted (its thread CPU clock). On loopback the sender's
//! `write` also runs the receiving side's protocol processing inline, as a producer's does; the
//! reader that drains the socket stands for the broker and is left out.

use std::io::{self, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::loopback_baseline::drain_one_connection;

/// Record bytes the floor sends: enough for a steady reading (a few tenths of a second here),
/// few enough to be a small part of a run.
pub const FLOOR_RECORD_BYTES: u64 = 256 << 20;

/// At most this many bytes of distinct records to copy from (up to 64 records).
const SOURCE_BYTES: usize = 16 << 20;

/// What the floor measured.
#[derive(Clone, Copy, Debug)]
pub struct SendFloor {
    /// The sending thread's CPU for the whole run of the floor.
    pub cpu: Duration,
    /// Record bytes sent (framing not counted, as the bench counts record bytes).
    pub record_bytes: u64,
}

impl SendFloor {
    /// CPU-seconds per GB (10^9 bytes) of record bytes.
    pub fn cpu_seconds_per_gb(&self) -> f64 {
        self.cpu.as_secs_f64() / (self.record_bytes.max(1) as f64 / 1e9)
    }

    /// `cpu_seconds_per_gb` (a client's) as a multiple of this floor.
    pub fn multiple(&self, cpu_seconds_per_gb: f64) -> f64 {
        cpu_seconds_per_gb / self.cpu_seconds_per_gb().max(1e-9)
    }
}

/// Times the floor is measured; the least reading is kept.
///
/// A floor is the least the work takes, and one reading of a few tenths of a second on a
/// shared VM caught a neighbour's burst now and then: on 2026-12-08 single readings in one
/// series were 0.22 - 0.33 CPU-s per GB with one at 0.62, which made that run's bench look
/// 1.3x its floor instead of about 3x.
const FLOOR_READINGS: usize = 3;

/// Sends at least `record_bytes` bytes of `record_size`-byte records, `records_per_request`
/// to a buffer, through a loopback TCP connection, [`FLOOR_READINGS`] times, and returns the
/// reading whose sending thread spent the least CPU.
///
/// # Errors
/// Socket errors, a thread CPU clock that cannot be read, or a receiver that got fewer bytes
/// than were sent.
pub fn measure(
    record_bytes: u64,
    record_size: usize,
    records_per_request: usize,
) -> io::Result<SendFloor> {
    let mut least = measure_once(record_bytes, record_size, records_per_request)?;
    for _ in 1..FLOOR_READINGS {
        let reading = measure_once(record_bytes, record_size, records_per_request)?;
        if reading.cpu < least.cpu {
            least = reading;
        }
    }
    Ok(least)
}

/// One reading of [`measure`]: one connection, one pass over the records.
fn measure_once(
    record_bytes: u64,
    record_size: usize,
    records_per_request: usize,
) -> io::Result<SendFloor> {
    let record_size = record_size.max(1);
    let records_per_request = records_per_request.max(1);
    let (receiver, addr) = drain_one_connection()?;
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    // Each record differs from the last, so the copy reads a stream of source bytes as a
    // producer's caller hands over new records, not one value kept hot in the cache.
    let distinct = (SOURCE_BYTES / record_size).clamp(1, 64);
    let source: Vec<u8> = (0..record_size * distinct)
        .map(|i| (i % 251) as u8)
        .collect();
    let mut request = Vec::with_capacity(4 + record_size * records_per_request);
    let requests = record_bytes.div_ceil((record_size * records_per_request) as u64);
    let mut sent = 0u64;
    let mut checksums = 0u32;
    let started = thread_cpu_time()?;
    for _ in 0..requests {
        request.clear();
        // A place for the checksum, as a batch header holds its CRC ahead of the records.
        request.extend_from_slice(&[0; 4]);
        for record in 0..records_per_request {
            let from = (record % distinct) * record_size;
            request.extend_from_slice(&source[from..from + record_size]);
        }
        let crc = crc32c::crc32c(&request[4..]);
        request[..4].copy_from_slice(&crc.to_be_bytes());
        checksums ^= crc;
        stream.write_all(&request)?;
        sent += request.len() as u64;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let cpu = thread_cpu_time()?.saturating_sub(started);
    std::hint::black_box(checksums);
    let received = receiver
        .join()
        .map_err(|_| io::Error::other("the send floor's receiver panicked"))??;
    if received != sent {
        return Err(io::Error::other(format!(
            "the send floor's receiver got {received} of {sent} bytes"
        )));
    }
    Ok(SendFloor {
        cpu,
        record_bytes: requests * (record_size * records_per_request) as u64,
    })
}

/// The calling thread's CPU time (user and system).
fn thread_cpu_time() -> io::Result<Duration> {
    // SAFETY: `now` is a plain C struct that clock_gettime fills in; zeroed is a valid value.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and a pointer to a live, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(now.tv_nsec).unwrap_or(0);
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_sends_whole_requests_and_counts_their_record_bytes() {
        let floor = measure(10_000, 1_000, 3).expect("loopback works");
        // 10,000 bytes in requests of 3,000: four requests.
        assert_eq!(floor.record_bytes, 12_000);
        assert!(floor.cpu_seconds_per_gb().is_finite());
    }

    #[test]
    fn odd_shapes_are_taken_as_at_least_one() {
        let floor = measure(10, 0, 0).expect("loopback works");
        assert_eq!(floor.record_bytes, 10);
    }
}
