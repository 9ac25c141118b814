//! Deterministic simulation of a Raft group under faults: openraft itself (elections,
//! replication, commit, the wire encoding and the group network) runs unmodified over a simulated
//! network and simulated disks, on a tokio runtime whose clock is virtual, with every random
//! choice drawn from one seed. The network loses, delays, reorders and duplicates messages and
//! cuts links one way or both; nodes crash (losing unflushed log entries) and restart from their
//! disks. Clients write throughout; the observer checks Raft's safety properties as they happen
//! and the cluster's convergence after everything is healed. A failing seed is printed and
//! replays with `CAIRN_SIM_SEED`.
//!
//! What is not deterministic: openraft's election timeout is drawn from an unseeded thread RNG,
//! so each node is given a one-millisecond range (a seeded timeout per node and life, a heartbeat
//! apart between nodes so that elections on the exact virtual clock do not tie forever); and
//! tokio's `select!` picks at random among ready branches, which openraft's core avoids
//! (`biased`) but its replication backoff does not. The fault schedule is drawn up front and each
//! message's fate is keyed by its link and number, so a replay injects the same faults even if
//! such a choice turns out differently.
//!
//! - `rng`: [`SimRng`], the seeded streams. `network`: [`SimNetwork`] and [`FaultProfile`].
//! - `disk`: [`SimDisk`], a log store that separates flushed from unflushed entries.
//! - `nemesis`: the seeded fault schedule ([`Fault`]). `observer`: the online checker.
//! - `cluster`: [`SimCluster`] and the [`SimGroup`] a test plugs in; `client`: the writers;
//!   `run`: one seed ([`run_seed`]) and many ([`run_seeds`]).

mod client;
mod cluster;
mod disk;
mod nemesis;
mod network;
mod observer;
mod rng;
mod run;

pub use client::ClientStats;
pub use cluster::{Digest, LiveNodes, SimCluster, SimGroup};
pub use disk::{DiskBug, SimDisk, SimLog};
pub use nemesis::{Fault, schedule};
pub use network::{FaultProfile, NetStats, SimNetwork};
pub use observer::{AppliedEntry, Observed, Observer, describe};
pub use rng::{SimRng, mix};
pub use run::{SimOptions, SimSummary, run_seed, run_seeds, seeds};

/// Why a simulated run failed.
#[derive(Debug, thiserror::Error)]
pub enum SimFailure {
    /// openraft or the runtime would not start.
    #[error("start: {0}")]
    Start(String),
    /// Safety or convergence checks failed; every violation found.
    #[error("{} violation(s): {}", .0.len(), .0.join("; "))]
    Violations(Vec<String>),
    /// After healing, the cluster did not commit or catch up (a liveness failure).
    #[error("no progress: {0}")]
    NoProgress(String),
    /// Code panicked during the run (the message went to stderr).
    #[error("{0} panic(s) during the run")]
    Panicked(u64),
}
