//! Rebuilding a read model by replaying an event log: order totals per customer.
//!
//! The `orders` topic holds `ORDER_CREATED` events keyed by customer, as an order service would
//! publish them:
//!
//! ```text
//! key:   customer-42
//! value: {"event_type":"ORDER_CREATED","order_id":"order-17","customer_id":"customer-42","total_cents":1999}
//! ```
//!
//! `--produce N` writes N such events with the client `Producer` (creating the topic if it does
//! not exist; `--compression lz4` compresses its batches, as many production producers
//! are set to). Without it, the example replays the topic with `Replay` from the earliest offset
//! to its current end, summing `total_cents` per customer, and prints records/s, MB/s, the
//! number of customers and a checksum of the totals (the same for the same events, however
//! the partitions interleaved). With `--checkpoint FILE` it starts from the read model and
//! offsets saved there and saves both again at the end, so a second run reads only new events.
//!
//! ```sh
//! cargo run --release -p cairn-client --example order_totals -- --produce 1000000
//! cargo run --release -p cairn-client --example order_totals
//! cargo run --release -p cairn-client --example order_totals -- --checkpoint totals.state
//! ```

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cairn_client::{
    Admin, Checkpoint, Compression, ErrorCode, OutgoingRecord, Producer, ProducerConfig, Replay,
    ReplayConfig, ReplayFormat,
};

type Result<T> = std::result::Result<T, Box<dyn Error>>;
/// The read model: total cents per customer (the event key).
type Totals = HashMap<Box<[u8]>, u64>;

/// Deliveries awaited at once while producing; past it the oldest is awaited first.
const DELIVERIES_IN_FLIGHT: usize = 100_000;
/// The field the read model sums.
const TOTAL_FIELD: &str = "\"total_cents\":";
/// Lines of a saved state that hold the read model (the rest is the replay checkpoint).
const TOTAL_LINE_PREFIX: &str = "total ";

/// Command-line settings.
struct Options {
    broker: String,
    topic: String,
    produce: Option<u64>,
    partitions: i32,
    customers: u64,
    checkpoint: Option<PathBuf>,
    format: ReplayFormat,
    compression: Compression,
}

fn options() -> Result<Options> {
    let mut options = Options {
        broker: "127.0.0.1:7070".to_string(),
        topic: "orders".to_string(),
        produce: None,
        partitions: 4,
        customers: 10_000,
        checkpoint: None,
        format: ReplayFormat::RawBatches,
        compression: Compression::None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--broker" => options.broker = value()?,
            "--topic" => options.topic = value()?,
            "--produce" => options.produce = Some(value()?.parse()?),
            "--partitions" => options.partitions = value()?.parse()?,
            "--customers" => options.customers = value()?.parse::<u64>()?.max(1),
            "--checkpoint" => options.checkpoint = Some(PathBuf::from(value()?)),
            "--decoded" => options.format = ReplayFormat::Decoded,
            "--compression" => {
                let name = value()?;
                options.compression = Compression::from_name(&name).ok_or_else(|| {
                    format!("unknown --compression {name:?}; use none, gzip, snappy, lz4 or zstd")
                })?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; use --broker ADDR --topic NAME --produce N \
                     --partitions P --customers C --checkpoint FILE --decoded \
                     --compression NAME"
                )
                .into());
            }
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = options()?;
    match options.produce {
        Some(count) => produce(&options, count).await,
        None => rebuild(&options).await,
    }
}

/// Writes `count` order events, keyed by customer.
async fn produce(options: &Options, count: u64) -> Result<()> {
    let admin = Admin::connect(&options.broker).await?;
    match admin.describe_topic(&options.topic).await {
        Ok(_) => {}
        Err(err) if err.code() == Some(ErrorCode::UnknownTopicOrPartition) => {
            admin
                .create_topic(&options.topic, options.partitions, 0, HashMap::new())
                .await?;
        }
        Err(err) => return Err(err.into()),
    }
    let config = ProducerConfig {
        compression: options.compression,
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(&options.broker, config).await?;
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    let mut random = 0x9e37_79b9_7f4a_7c15_u64;
    for order in 0..count {
        random = xorshift(random);
        let customer = random % options.customers;
        let total_cents = 100 + xorshift(random) % 50_000;
        let value = format!(
            "{{\"event_type\":\"ORDER_CREATED\",\"order_id\":\"order-{order}\",\
             \"customer_id\":\"customer-{customer}\",{TOTAL_FIELD}{total_cents}}}"
        );
        let record = OutgoingRecord::keyed(format!("customer-{customer}"), value);
        pending.push_back(producer.send(&options.topic, record).await?);
        if pending.len() >= DELIVERIES_IN_FLIGHT
            && let Some(oldest) = pending.pop_front()
        {
            oldest.await?;
        }
    }
    for delivery in pending {
        delivery.await?;
    }
    producer.flush().await?;
    let seconds = started.elapsed().as_secs_f64();
    writeln!(
        std::io::stdout(),
        "produced {count} order events to {} in {seconds:.2} s ({:.0} records/s)",
        options.topic,
        count as f64 / seconds
    )?;
    Ok(())
}

/// Replays the topic into order totals per customer.
async fn rebuild(options: &Options) -> Result<()> {
    let (mut totals, checkpoint) = match &options.checkpoint {
        Some(path) if path.exists() => load_state(path)?,
        _ => (HashMap::new(), None),
    };
    let config = ReplayConfig {
        format: options.format,
        checkpoint,
        ..ReplayConfig::default()
    };
    let started = Instant::now();
    let mut replay = Replay::start(&options.broker, &options.topic, config).await?;
    let mut skipped = 0_u64;
    // A chunk (one fetched answer of one partition) per await; its records without awaiting.
    while let Some(chunk) = replay.next_chunk().await {
        for event in chunk? {
            let event = event?;
            let (Some(customer), Some(total)) = (event.key, event.value.and_then(total_cents))
            else {
                skipped += 1;
                continue;
            };
            // Look up by the borrowed key; allocate only for a customer seen for the first time.
            match totals.get_mut(customer) {
                Some(sum) => *sum += total,
                None => {
                    totals.insert(customer.to_vec().into_boxed_slice(), total);
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let progress = replay.progress();
    writeln!(
        std::io::stdout(),
        "replayed {} events ({:.1} MB of keys and values) in {seconds:.3} s: {:.0} records/s, {:.1} MB/s",
        progress.records,
        progress.payload_bytes as f64 / 1e6,
        progress.records as f64 / seconds,
        progress.payload_bytes as f64 / 1e6 / seconds,
    )?;
    let grand_total: u64 = totals.values().sum();
    writeln!(
        std::io::stdout(),
        "{} customers, {grand_total} cents in all, checksum {:016x}{}",
        totals.len(),
        checksum(&totals),
        if skipped > 0 {
            format!(" ({skipped} events without a total skipped)")
        } else {
            String::new()
        }
    )?;
    if let Some(path) = &options.checkpoint {
        save_state(path, &totals, &replay.checkpoint())?;
        writeln!(
            std::io::stdout(),
            "saved the read model and its offsets to {}",
            path.display()
        )?;
    }
    Ok(())
}

/// The `total_cents` of an order event, if it has one.
fn total_cents(value: &[u8]) -> Option<u64> {
    let at = value
        .windows(TOTAL_FIELD.len())
        .position(|w| w == TOTAL_FIELD.as_bytes())?;
    let digits = value.get(at + TOTAL_FIELD.len()..)?;
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(digits.get(..end)?).ok()?.parse().ok()
}

/// FNV-1a over `customer=total` lines in customer order: equal for equal read models.
fn checksum(totals: &Totals) -> u64 {
    let sorted: BTreeMap<&[u8], u64> = totals.iter().map(|(k, v)| (&**k, *v)).collect();
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for (customer, total) in sorted {
        for byte in customer
            .iter()
            .chain(b"=")
            .chain(total.to_string().as_bytes())
            .chain(b"\n")
        {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Reads a saved state: `total CUSTOMER CENTS` lines, and the replay checkpoint's text.
/// Saving both in one file, replaced atomically, keeps the model and its offsets in step.
fn load_state(path: &Path) -> Result<(Totals, Option<Checkpoint>)> {
    let text = std::fs::read_to_string(path)?;
    let mut totals = HashMap::new();
    let mut checkpoint = String::new();
    for (idx, line) in text.lines().enumerate() {
        match line.strip_prefix(TOTAL_LINE_PREFIX) {
            Some(rest) => {
                let (customer, cents) = rest.split_once(' ').ok_or_else(|| {
                    format!(
                        "{}: line {}: expected total CUSTOMER CENTS",
                        path.display(),
                        idx + 1
                    )
                })?;
                let cents: u64 = cents
                    .parse()
                    .map_err(|e| format!("{}: line {}: {e}", path.display(), idx + 1))?;
                totals.insert(customer.as_bytes().to_vec().into_boxed_slice(), cents);
                // Keep line numbers of the checkpoint part true to the file.
                checkpoint.push('\n');
            }
            None => {
                checkpoint.push_str(line);
                checkpoint.push('\n');
            }
        }
    }
    let checkpoint =
        Checkpoint::parse(&checkpoint).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((totals, Some(checkpoint)))
}

/// Writes the state to a temporary file, fsyncs it and renames it over `path`.
fn save_state(
    path: &Path,
    totals: &HashMap<Box<[u8]>, u64>,
    checkpoint: &Checkpoint,
) -> Result<()> {
    use std::io::Write;
    let mut text = checkpoint.to_text();
    let sorted: BTreeMap<&[u8], u64> = totals.iter().map(|(k, v)| (&**k, *v)).collect();
    for (customer, cents) in sorted {
        text.push_str(&format!(
            "{TOTAL_LINE_PREFIX}{} {cents}\n",
            String::from_utf8_lossy(customer)
        ));
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}
