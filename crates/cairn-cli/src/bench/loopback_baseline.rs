//! The bare socket's share of a replay: the time and CPU one loopback TCP stream takes to carry
//! the same bytes, measured in the same run. A replay moves at least its batch bytes from the
//! broker's process to the client's over loopback, whatever the protocol; `cpu_ceiling` adds
//! the decode to this CPU to bound any replay from above.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::cpu_ceiling::process_cpu_time;
use super::read_baseline::Reading;

/// Bytes per write and per read, as a broker's 1 MiB chunks.
const CHUNK_BYTES: usize = 1 << 20;

/// What one loopback run measured.
#[derive(Clone, Copy, Debug)]
pub struct Loopback {
    /// The wall time, as a reading of the replay's records.
    pub reading: Reading,
    /// The CPU both ends spent (the whole process's, which does nothing else meanwhile).
    pub cpu: Duration,
}

/// Sends `bytes` through one loopback TCP connection and returns how long it took, as a
/// [`Reading`] of `records` records (the replay's count, so ratios of records/s compare the
/// two wall times directly), and the CPU it took.
///
/// # Errors
/// Socket errors, or a receiver that got fewer bytes than were sent.
pub fn loopback_tcp(bytes: u64, records: u64) -> io::Result<Loopback> {
    let cpu_before = process_cpu_time()?;
    let (receiver, addr) = drain_one_connection()?;
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let chunk = vec![0x5au8; CHUNK_BYTES];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK_BYTES as u64)).unwrap_or(CHUNK_BYTES);
        stream.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let received = receiver
        .join()
        .map_err(|_| io::Error::other("the loopback receiver panicked"))??;
    let elapsed = started.elapsed();
    let cpu = process_cpu_time()?.saturating_sub(cpu_before);
    if received != bytes {
        return Err(io::Error::other(format!(
            "loopback receiver got {received} of {bytes} bytes"
        )));
    }
    Ok(Loopback {
        reading: Reading {
            records,
            bytes,
            elapsed,
        },
        cpu,
    })
}

/// Listens on a loopback port and, on a thread, accepts one connection and reads it to its
/// end, returning how many bytes came; the other end of a loopback measurement.
///
/// # Errors
/// If the port cannot be bound; the thread returns accept and read errors.
pub fn drain_one_connection() -> io::Result<(thread::JoinHandle<io::Result<u64>>, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let receiver = thread::spawn(move || -> io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; CHUNK_BYTES];
        let mut received = 0u64;
        loop {
            match stream.read(&mut buf)? {
                0 => return Ok(received),
                n => received += n as u64,
            }
        }
    });
    Ok((receiver, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_arrives() {
        let Loopback { reading, .. } =
            loopback_tcp(3 * CHUNK_BYTES as u64 + 17, 5).expect("loopback works");
        assert_eq!(reading.bytes, 3 * CHUNK_BYTES as u64 + 17);
        assert_eq!(reading.records, 5);
    }
}
