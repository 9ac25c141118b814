//! The fastest any replay of the measured topic could run on this machine, worked out from two
//! readings of the same run: a replay has to move the batch bytes from the broker's process to
//! the client's (at least the CPU the bare loopback stream spent on them, sender and receiver
//! together) and to decode every record (at least the CPU of the log's own full decode, which
//! runs on one thread, so its wall time is its CPU time). It has the machine's cores to spend
//! that CPU on, and nothing else to do in between.
//!
//! So `ceiling = (loopback CPU + full decode CPU) / cores`. The bound is generous: it leaves
//! out the broker's own read of the log, HTTP/2 and gRPC framing, and any core left idle
//! while one side waits for the other. A target ratio above `full decode / ceiling` cannot be
//! met on this machine by any protocol over a socket.

use std::io;
use std::time::Duration;

use super::read_baseline::Reading;

/// CPU time (user and system) this process has used so far, all threads together.
///
/// # Errors
/// `getrusage` failing, which it does only for a bad argument.
pub fn process_cpu_time() -> io::Result<Duration> {
    // SAFETY: `usage` is a plain C struct that getrusage fills in; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a pointer to a live, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(timeval(usage.ru_utime) + timeval(usage.ru_stime))
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

/// The ceiling as a reading of `full_decode`'s records: its elapsed time is the least wall
/// time the CPU work above needs on `cores` cores.
pub fn ceiling(loopback_cpu: Duration, full_decode: &Reading, cores: usize) -> Reading {
    let cores = u32::try_from(cores.max(1)).unwrap_or(u32::MAX);
    Reading {
        records: full_decode.records,
        bytes: full_decode.bytes,
        elapsed: (loopback_cpu + full_decode.elapsed) / cores,
    }
}

/// The cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_shares_both_costs_over_the_cores() {
        let full = Reading {
            records: 1_000,
            bytes: 10_000,
            elapsed: Duration::from_millis(20),
        };
        let two = ceiling(Duration::from_millis(40), &full, 2);
        assert_eq!(two.elapsed, Duration::from_millis(30));
        assert_eq!((two.records, two.bytes), (1_000, 10_000));
        // No cores reported is treated as one, not as a division by zero.
        assert_eq!(
            ceiling(Duration::from_millis(40), &full, 0).elapsed,
            Duration::from_millis(60)
        );
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let before = process_cpu_time().expect("getrusage works");
        let mut x = 0_u64;
        for i in 0..2_000_000_u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        assert!(process_cpu_time().expect("getrusage works") >= before);
        std::hint::black_box(x);
    }
}
