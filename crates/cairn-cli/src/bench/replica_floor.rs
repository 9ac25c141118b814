//! `cairn bench floor`: the least ack latency this machine allows a paced produce with N
//! copies, measured with no broker, no gRPC and no Raft: only the work any replicated log that
//! fsyncs before it acknowledges must do, on the same disk and cores.
//!
//! Each partition has a leader thread and `replicas - 1` follower threads, each with a
//! laid-out file of its own (the log reserves its segments ahead the same way). Records arrive
//! on a fixed schedule (`--rate`, dealt round the partitions), and a partition's leader sends
//! them as the producer does: a request leaves when the one before it is acknowledged, with
//! every record that arrived meanwhile, up to `--records-per-request`. The leader sends the
//! request's bytes to its followers over loopback TCP first, then writes and `fdatasync`s them
//! itself, while each follower writes, `fdatasync`s and answers. The request is acknowledged
//! once the leader's fsync and enough followers' answers for a majority are in. A record's
//! latency runs from its scheduled arrival to that acknowledgement, as `bench produce --rate`
//! measures it, so queueing behind a slow request counts.
//!
//! Run with `--replicas 1` and `--replicas 3` at the same shape, the ratio of the two p99s is
//! what the disk and the loopback alone make of a third copy: a target ratio below it cannot be
//! met on this machine by any implementation that keeps the durability promise.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::json;

use super::cpu_ceiling::process_cpu_time;
use super::fsync_baseline::laid_out;
use super::report::{Percentiles, latency_histogram, record_latency};
use super::scratch::Scratch;
use super::{OutputFormat, flag_within};
use crate::usage_error::usage_bail;

/// Bytes of a batch's header in the log's format, added to each emulated request.
const BATCH_HEADER_BYTES: usize = 61;
/// Bytes a record adds to its value in a batch without key or headers (length, attributes,
/// deltas and counts as varints), near enough for the disk.
const RECORD_OVERHEAD_BYTES: usize = 12;
/// Largest request the emulation sends: the broker's limit on a request, 16 MiB.
const MAX_REQUEST_BYTES: usize = 16 << 20;
/// Largest file a replica lays out; longer runs wrap around to its start, as fio's
/// `--time_based` does.
const MAX_REPLICA_FILE_BYTES: u64 = 256 << 20;

/// `cairn bench floor` arguments.
#[derive(Debug, Args)]
pub struct BenchFloorArgs {
    /// Directory for the scratch files, removed afterwards: put it on the brokers' disk.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Copies of each request, 1 to 5; a request is acknowledged once a majority has it.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Partitions, each with its own leader and followers (1 to 64).
    #[arg(long, default_value_t = 3)]
    pub partitions: usize,
    /// Records per second offered, dealt round the partitions (1 to 1,000,000).
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// Records in all (1 to 100,000,000).
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
    /// Bytes of each record's value (1 to 1,048,576).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Records per request at most (1 to 100,000).
    #[arg(long, default_value_t = 64)]
    pub records_per_request: usize,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// The run's shape, checked.
#[derive(Clone, Copy, Debug)]
struct Shape {
    replicas: usize,
    partitions: usize,
    rate: u64,
    records: u64,
    record_size: usize,
    records_per_request: usize,
}

impl Shape {
    /// Followers' answers a request needs: a majority of the copies, less the leader's own.
    fn answers_needed(&self) -> usize {
        self.replicas / 2
    }

    /// Bytes of a request of `records` records.
    fn request_bytes(&self, records: usize) -> usize {
        BATCH_HEADER_BYTES + records * (self.record_size + RECORD_OVERHEAD_BYTES)
    }

    /// Records partition `partition` gets: every `partitions`-th, starting at its own index.
    fn records_of(&self, partition: usize) -> u64 {
        let (p, n) = (partition as u64, self.partitions as u64);
        self.records / n + u64::from(p < self.records % n)
    }

    /// When the `k`-th record of `partition` arrives, after the start.
    fn arrival(&self, partition: usize, k: u64) -> Duration {
        let global = k * self.partitions as u64 + partition as u64;
        Duration::from_secs_f64(global as f64 / self.rate as f64)
    }

    /// Records of `partition` arrived `elapsed` after the start, at most `total`.
    fn arrived_by(&self, partition: usize, elapsed: Duration, total: u64) -> u64 {
        let global = (elapsed.as_secs_f64() * self.rate as f64).floor() as u64;
        let p = partition as u64;
        if global < p {
            return 0;
        }
        ((global - p) / self.partitions as u64 + 1).min(total)
    }

    /// Where the write after one of `written` bytes at `position` goes: right after it, or
    /// back at the file's start when the largest request would not fit before its end.
    fn position_after(&self, position: u64, written: usize) -> u64 {
        let largest = self.request_bytes(self.records_per_request) as u64;
        let next = position + written as u64;
        if next + largest > self.file_bytes() {
            0
        } else {
            next
        }
    }

    /// The size each replica lays out: the partition's bytes, bounded.
    fn file_bytes(&self) -> u64 {
        let largest = self.request_bytes(self.records_per_request) as u64;
        let total = self.records_of(0) * (self.record_size + RECORD_OVERHEAD_BYTES) as u64;
        (total + largest).clamp(2 * largest, MAX_REPLICA_FILE_BYTES.max(2 * largest))
    }
}

/// The run's shape from `args`; a flag out of range or a missing `--dir` is a usage error
/// (`cairn` exits 2), found before anything is written.
fn check(args: &BenchFloorArgs) -> anyhow::Result<Shape> {
    flag_within("replicas", args.replicas as u64, 1, 5)?;
    flag_within("partitions", args.partitions as u64, 1, 64)?;
    flag_within("rate", args.rate, 1, 1_000_000)?;
    flag_within("records", args.records, 1, 100_000_000)?;
    flag_within("record-size", args.record_size as u64, 1, 1 << 20)?;
    flag_within(
        "records-per-request",
        args.records_per_request as u64,
        1,
        100_000,
    )?;
    let shape = Shape {
        replicas: args.replicas,
        partitions: args.partitions,
        rate: args.rate,
        records: args.records,
        record_size: args.record_size,
        records_per_request: args.records_per_request,
    };
    let largest = shape.request_bytes(shape.records_per_request);
    if largest > MAX_REQUEST_BYTES {
        usage_bail!(
            "--records-per-request {} of --record-size {} makes requests of {largest} bytes, over the {MAX_REQUEST_BYTES}-byte limit",
            args.records_per_request,
            args.record_size
        );
    }
    if !args.dir.is_dir() {
        usage_bail!("--dir {}: no such directory", args.dir.display());
    }
    Ok(shape)
}

/// One partition's threads: its leader's, which returns the figures, and its followers'.
struct PartitionThreads {
    leader: thread::JoinHandle<anyhow::Result<LeaderRun>>,
    followers: Vec<thread::JoinHandle<anyhow::Result<()>>>,
}

/// What one partition's leader measured.
struct LeaderRun {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    requests: u64,
}

/// What a follower's connection tells its leader.
enum Heard {
    /// Follower `.0` holds every request up to number `.1`.
    Answer(usize, u64),
    /// Follower `.0` hung up or failed: it answers nothing more.
    Gone(usize),
}

/// What a whole run measured.
struct Figures {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    requests: u64,
    elapsed: Duration,
    cpu: Duration,
}

/// Runs `cairn bench floor`.
///
/// # Errors
/// A flag out of range (before anything is written), or a scratch file or loopback socket
/// that cannot be made, written or synced.
pub fn run(args: &BenchFloorArgs) -> anyhow::Result<()> {
    let shape = check(args)?;
    let figures = measure(shape, &args.dir)?;
    let latency = Percentiles::of(&figures.latency);
    let service = Percentiles::of(&figures.service);
    let requests = figures.requests;
    let per_request = shape.records as f64 / requests.max(1) as f64;
    let (elapsed, cpu) = (figures.elapsed.as_secs_f64(), figures.cpu.as_secs_f64());
    match args.format {
        OutputFormat::Json => println!(
            "{}",
            json!({
                "replicas": shape.replicas, "partitions": shape.partitions,
                "rate": shape.rate, "records": shape.records,
                "record_size": shape.record_size,
                "records_per_request": shape.records_per_request,
                "elapsed_seconds": elapsed,
                "latency_ms": latency.to_json(), "service_time_ms": service.to_json(),
                "requests": requests, "records_per_request_mean": per_request,
                "cpu_seconds": cpu,
            })
        ),
        OutputFormat::Text => {
            println!(
                "floor: {} {} (acknowledged by {}), {} partitions, {} records/s offered, {} records of {} bytes, at most {} per request",
                shape.replicas,
                if shape.replicas == 1 {
                    "copy"
                } else {
                    "copies"
                },
                shape.answers_needed() + 1,
                shape.partitions,
                shape.rate,
                shape.records,
                shape.record_size,
                shape.records_per_request
            );
            println!(
                "record latency (scheduled arrival to acknowledgement): {}",
                latency.to_text()
            );
            println!(
                "service time (request sent to acknowledged): {}",
                service.to_text()
            );
            println!(
                "{requests} requests ({per_request:.1} records each), {elapsed:.1} s, {cpu:.2} CPU-s (every thread of this process)"
            );
        }
    }
    Ok(())
}

/// Runs the emulation in a scratch directory under `dir`, removed afterwards.
fn measure(shape: Shape, dir: &Path) -> anyhow::Result<Figures> {
    let scratch = Scratch::new_in(dir, "cairn-bench-floor-")?;
    let cpu_before = process_cpu_time()?;
    let started = Instant::now();
    let mut partitions = Vec::with_capacity(shape.partitions);
    for partition in 0..shape.partitions {
        let dir = scratch.path().join(partition.to_string());
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        partitions.push(start_partition(shape, partition, &dir)?);
    }
    let mut figures = Figures {
        latency: latency_histogram()?,
        service: latency_histogram()?,
        requests: 0,
        elapsed: Duration::ZERO,
        cpu: Duration::ZERO,
    };
    for threads in partitions {
        let led = threads
            .leader
            .join()
            .map_err(|_| anyhow::anyhow!("a leader thread panicked"))?;
        // A follower's failure is the root cause of its leader's (a broken pipe), and a run
        // whose follower failed measured another shape: its error fails the run first.
        for follower in threads.followers {
            follower
                .join()
                .map_err(|_| anyhow::anyhow!("a follower thread panicked"))?
                .context("a follower failed")?;
        }
        let led = led?;
        figures.latency.add(&led.latency)?;
        figures.service.add(&led.service)?;
        figures.requests += led.requests;
    }
    figures.elapsed = started.elapsed();
    figures.cpu = process_cpu_time()?.saturating_sub(cpu_before);
    Ok(figures)
}

/// Starts one partition's followers and leader.
fn start_partition(shape: Shape, partition: usize, dir: &Path) -> anyhow::Result<PartitionThreads> {
    let (heard_tx, heard) = mpsc::channel();
    let mut streams = Vec::with_capacity(shape.replicas - 1);
    let mut followers = Vec::with_capacity(shape.replicas - 1);
    for follower in 0..shape.replicas - 1 {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback socket")?;
        // Connected before the follower's thread starts: the listener's backlog holds the
        // connection, and a failed connect leaves no thread waiting in `accept`.
        let stream =
            TcpStream::connect(listener.local_addr()?).context("connecting to a follower")?;
        stream.set_nodelay(true)?;
        let file = laid_out(
            &dir.join(format!("follower-{follower}")),
            shape.file_bytes(),
        )?;
        followers.push(thread::spawn(move || follow(listener, file, shape)));
        let mut reader = stream.try_clone()?;
        let heard_tx = heard_tx.clone();
        // Reads every answer to the end, even once the leader has stopped listening, so that
        // a follower behind it never blocks on a full socket.
        thread::spawn(move || {
            let mut seq = [0_u8; 8];
            while reader.read_exact(&mut seq).is_ok() {
                let _ = heard_tx.send(Heard::Answer(follower, u64::from_le_bytes(seq)));
            }
            let _ = heard_tx.send(Heard::Gone(follower));
        });
        streams.push(stream);
    }
    drop(heard_tx);
    let file = laid_out(&dir.join("leader"), shape.file_bytes())?;
    let leader = thread::spawn(move || {
        let run = lead(shape, partition, &file, &mut streams, &heard);
        // Done sending, either way: each follower ends once it has written what it was sent.
        for stream in &streams {
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        run
    });
    Ok(PartitionThreads { leader, followers })
}

/// A partition's leader: sends each request as the producer would, and times it.
///
/// It ships to its followers one after the other, as a single writer; a follower so far
/// behind that its socket buffer is full would hold the others up, which at these request
/// sizes takes megabytes of backlog.
fn lead(
    shape: Shape,
    partition: usize,
    file: &File,
    followers: &mut [TcpStream],
    heard: &mpsc::Receiver<Heard>,
) -> anyhow::Result<LeaderRun> {
    let total = shape.records_of(partition);
    let payload = vec![b'x'; shape.request_bytes(shape.records_per_request)];
    let mut answered = vec![0_u64; followers.len()];
    let mut gone = vec![false; followers.len()];
    let mut run = LeaderRun {
        latency: latency_histogram()?,
        service: latency_histogram()?,
        requests: 0,
    };
    let (mut next, mut position) = (0_u64, 0_u64);
    let start = Instant::now();
    while next < total {
        let now = start.elapsed();
        let arrived = shape.arrived_by(partition, now, total);
        if arrived <= next {
            thread::sleep(shape.arrival(partition, next).saturating_sub(now));
            continue;
        }
        let take = (arrived - next).min(shape.records_per_request as u64);
        let bytes = &payload[..shape.request_bytes(take as usize)];
        run.requests += 1;
        let seq = run.requests;
        let sent = Instant::now();
        let mut header = [0_u8; 12];
        header[..8].copy_from_slice(&seq.to_le_bytes());
        header[8..].copy_from_slice(&u32::try_from(bytes.len())?.to_le_bytes());
        for stream in followers.iter_mut() {
            stream.write_all(&header).context("sending to a follower")?;
            stream.write_all(bytes).context("sending to a follower")?;
        }
        file.write_all_at(bytes, position)
            .context("writing the leader's file")?;
        file.sync_data().context("fdatasync of the leader's file")?;
        position = shape.position_after(position, bytes.len());
        while answered.iter().filter(|&&a| a >= seq).count() < shape.answers_needed() {
            if gone.iter().filter(|g| !**g).count() < shape.answers_needed() {
                bail!("too few followers left to acknowledge request {seq}");
            }
            match heard.recv().context("every follower stopped")? {
                Heard::Answer(follower, acked) => answered[follower] = acked,
                Heard::Gone(follower) => gone[follower] = true,
            }
        }
        let acked = Instant::now();
        record_latency(&mut run.service, acked - sent);
        for k in next..next + take {
            let due = start + shape.arrival(partition, k);
            record_latency(&mut run.latency, acked.saturating_duration_since(due));
        }
        next += take;
    }
    Ok(run)
}

/// A follower: writes and syncs each request it is sent, then answers with its number, until
/// its leader is done sending.
fn follow(listener: TcpListener, file: File, shape: Shape) -> anyhow::Result<()> {
    let (mut stream, _) = listener.accept()?;
    stream.set_nodelay(true)?;
    let largest = shape.request_bytes(shape.records_per_request);
    let mut buf = Vec::new();
    let mut position = 0_u64;
    let mut header = [0_u8; 12];
    while stream.read_exact(&mut header).is_ok() {
        let seq = &header[..8];
        let mut bytes = [0_u8; 4];
        bytes.copy_from_slice(&header[8..]);
        let bytes = usize::try_from(u32::from_le_bytes(bytes))?;
        if bytes > largest {
            bail!("a request of {bytes} bytes, over the largest of {largest}");
        }
        buf.resize(bytes, 0);
        stream.read_exact(&mut buf)?;
        file.write_all_at(&buf, position)?;
        file.sync_data()?;
        position = shape.position_after(position, bytes);
        stream.write_all(seq)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn shape(replicas: usize, records: u64) -> Shape {
        Shape {
            replicas,
            partitions: 3,
            rate: 1000,
            records,
            record_size: 100,
            records_per_request: 4,
        }
    }

    #[test]
    fn records_are_dealt_round_the_partitions_on_schedule() {
        let s = shape(3, 10);
        assert_eq!(
            (0..3).map(|p| s.records_of(p)).collect::<Vec<_>>(),
            [4, 3, 3]
        );
        // Record 1 of partition 2 is the 5th of all: due at 5 ms.
        assert_eq!(s.arrival(2, 1), Duration::from_millis(5));
        assert_eq!(s.arrived_by(2, Duration::from_millis(4), 3), 1);
        assert_eq!(s.arrived_by(2, Duration::from_millis(5), 3), 2);
        assert_eq!(s.arrived_by(2, Duration::from_millis(1), 3), 0);
        assert_eq!(s.arrived_by(0, Duration::from_secs(9), 4), 4);
    }

    #[test]
    fn a_majority_less_the_leader_must_answer() {
        assert_eq!(shape(1, 1).answers_needed(), 0);
        assert_eq!(shape(3, 1).answers_needed(), 1);
        assert_eq!(shape(5, 1).answers_needed(), 2);
    }

    #[test]
    fn every_record_is_acknowledged_through_real_followers() {
        let dir = tempfile::tempdir().unwrap();
        for replicas in [1, 3] {
            let shape = Shape {
                replicas,
                partitions: 2,
                rate: 2000,
                records: 201,
                record_size: 100,
                records_per_request: 8,
            };
            let figures = measure(shape, dir.path()).unwrap();
            assert_eq!(figures.latency.len(), 201, "one latency per record");
            assert_eq!(figures.service.len(), figures.requests);
            assert!(figures.requests >= 201_u64.div_ceil(8));
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "scratch removed"
        );
    }

    #[test]
    fn writes_wrap_before_the_largest_request_would_pass_the_end() {
        let s = shape(3, 10);
        let (largest, len) = (s.request_bytes(4) as u64, s.file_bytes());
        assert_eq!(len, 2 * largest);
        assert_eq!(s.position_after(0, 10), 10);
        assert_eq!(s.position_after(len - largest - 10, 10), len - largest);
        assert_eq!(s.position_after(len - largest - 10, 11), 0);
    }

    #[test]
    fn flags_out_of_range_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = BenchFloorArgs {
            dir: dir.path().to_path_buf(),
            replicas: 6,
            partitions: 3,
            rate: 1000,
            records: 10,
            record_size: 10,
            records_per_request: 1,
            format: OutputFormat::Text,
        };
        let err = run(&args).unwrap_err().to_string();
        assert!(err.contains("--replicas 6"), "{err}");
        args.replicas = 3;
        (args.records_per_request, args.record_size) = (100_000, 1 << 20);
        let err = run(&args).unwrap_err().to_string();
        assert!(err.contains("over the 16777216-byte limit"), "{err}");
        (args.records_per_request, args.record_size) = (1, 10);
        args.replicas = 3;
        args.rate = 0;
        assert!(run(&args).unwrap_err().to_string().contains("--rate 0"));
        args.rate = 10;
        args.dir = dir.path().join("missing");
        assert!(run(&args).unwrap_err().to_string().contains("no such"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
