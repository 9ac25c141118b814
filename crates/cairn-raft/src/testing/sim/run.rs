//! One simulated run per seed, and the loop over many seeds that the tests call. A run builds its
//! own single-threaded tokio runtime with the clock paused, so virtual time jumps ahead whenever
//! every task waits: a run of 20 simulated seconds takes a fraction of that in real time, and no
//! result depends on how fast the machine is.
//!
//! Seeds: `CAIRN_SIM_SEED=<n>` runs that one seed (the replay of a failure); otherwise
//! `CAIRN_SIM_SEEDS=<count>` seeds from 1 (the default is the caller's), stopping at nothing:
//! every failing seed is listed at the end.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::SimFailure;
use super::client::{ClientStats, spawn_client};
use super::cluster::{SimCluster, SimGroup};
use super::disk::DiskBug;
use super::nemesis::schedule;
use super::network::NetStats;

/// The shape of one run.
#[derive(Clone, Copy, Debug)]
pub struct SimOptions {
    /// Nodes in the group.
    pub node_count: u64,
    /// Virtual time the faults and clients run for, before healing.
    pub fault_ms: u64,
    /// Concurrent clients.
    pub client_count: u64,
    /// A planted storage bug (to show the checker catches it), or none.
    pub bug: DiskBug,
}

/// What a passing run did, for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimSummary {
    /// Writes acknowledged to clients.
    pub acked: u64,
    /// Writes that failed or timed out.
    pub failed: u64,
    /// Faults applied.
    pub faults: u64,
    /// Terms that had a leader.
    pub terms: u64,
    /// The network's counters.
    pub net: NetStats,
    /// [`super::Observer::fingerprint`]: equal for two runs of a seed that behaved alike.
    pub fingerprint: u64,
}

thread_local! {
    /// Panics on this thread since the hook was installed. Tasks of a current-thread runtime run
    /// on the thread that drives it, so a panic in any of them (openraft's core included, which
    /// tokio would otherwise swallow) is counted here.
    static PANICS: Cell<u64> = const { Cell::new(0) };
}

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

/// Runs the simulation of `group` for `seed`.
///
/// # Errors
/// [`SimFailure`] naming the first kind of failure found, with every violation listed.
pub fn run_seed<G: SimGroup>(
    group: Arc<G>,
    seed: u64,
    opts: SimOptions,
) -> Result<SimSummary, SimFailure> {
    count_panics();
    let panics_before = PANICS.with(Cell::get);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimFailure::Start(e.to_string()))?;
    let result = runtime.block_on(simulate(group, seed, opts));
    drop(runtime);
    let panics = PANICS.with(Cell::get) - panics_before;
    if panics > 0 {
        return Err(SimFailure::Panicked(panics));
    }
    result
}

async fn simulate<G: SimGroup>(
    group: Arc<G>,
    seed: u64,
    opts: SimOptions,
) -> Result<SimSummary, SimFailure> {
    let mut cluster =
        SimCluster::start(Arc::clone(&group), seed, opts.node_count, opts.bug).await?;
    let (stop, stopped) = watch::channel(false);
    let clients: Vec<_> = (0..opts.client_count)
        .map(|client| {
            let observer = cluster.observer().clone();
            spawn_client(
                Arc::clone(&group),
                cluster.live(),
                observer,
                (seed, client),
                stopped.clone(),
            )
        })
        .collect();
    let start = tokio::time::Instant::now();
    let plan = schedule(seed, opts.node_count, opts.fault_ms);
    for (at_ms, fault) in &plan {
        tokio::time::sleep_until(start + Duration::from_millis(*at_ms)).await;
        tracing::debug!(seed, at_ms, %fault, "fault");
        cluster.apply(fault).await?;
    }
    tokio::time::sleep_until(start + Duration::from_millis(opts.fault_ms)).await;
    let _ = stop.send(true);
    let mut totals = ClientStats::default();
    for client in clients {
        let stats = client.await.unwrap_or_default();
        totals.acked += stats.acked;
        totals.failed += stats.failed;
    }
    let converged = cluster.heal_and_converge(Duration::from_secs(30)).await;
    if let Ok(index) = converged {
        cluster.check_converged(index);
    }
    let summary = SimSummary {
        acked: totals.acked,
        failed: totals.failed,
        faults: u64::try_from(plan.len()).unwrap_or(u64::MAX),
        terms: u64::try_from(cluster.observer().terms_led()).unwrap_or(u64::MAX),
        net: cluster.network().stats(),
        fingerprint: cluster.observer().fingerprint(),
    };
    cluster.shutdown().await;
    let violations = cluster.observer().violations();
    if !violations.is_empty() {
        return Err(SimFailure::Violations(violations));
    }
    converged.map(|_| summary)
}

/// The seeds to run: the one in `CAIRN_SIM_SEED`, else `1..=CAIRN_SIM_SEEDS`, else
/// `1..=default_count`.
pub fn seeds(default_count: u64) -> Vec<u64> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    match (var("CAIRN_SIM_SEED"), var("CAIRN_SIM_SEEDS")) {
        (Some(seed), _) => vec![seed],
        (None, Some(count)) => (1..=count).collect(),
        (None, None) => (1..=default_count).collect(),
    }
}

/// Logs to the test's output when `RUST_LOG` is set (to read a replayed seed's Raft traffic);
/// silent otherwise.
fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Runs `run` for every seed of [`seeds`], prints one line per seed and, per failure, the command
/// that replays it (`replay`, the cargo command that runs this test, after `CAIRN_SIM_SEED=<n>`),
/// and returns the failing seeds with their failures.
pub fn run_seeds(
    name: &str,
    replay: &str,
    default_count: u64,
    run: impl Fn(u64) -> Result<SimSummary, SimFailure>,
) -> Vec<(u64, String)> {
    init_logs();
    let began = Instant::now();
    let mut failures = Vec::new();
    let all = seeds(default_count);
    for seed in &all {
        let outcome = catch_unwind(AssertUnwindSafe(|| run(*seed)));
        match outcome {
            Ok(Ok(s)) => println!(
                "{name} seed {seed}: ok, {} acked, {} failed, {} faults, {} terms, {:?}, \
                 fingerprint {:016x}",
                s.acked, s.failed, s.faults, s.terms, s.net, s.fingerprint
            ),
            Ok(Err(failure)) => failures.push((*seed, failure.to_string())),
            Err(_) => failures.push((*seed, "panicked".to_string())),
        }
    }
    for (seed, failure) in &failures {
        eprintln!("{name} seed {seed} FAILED: {failure}");
        eprintln!("  replay: CAIRN_SIM_SEED={seed} {replay}");
    }
    println!(
        "{name}: {} seeds, {} failed, in {:.1} s",
        all.len(),
        failures.len(),
        began.elapsed().as_secs_f64()
    );
    failures
}
