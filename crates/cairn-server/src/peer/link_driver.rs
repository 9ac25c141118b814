//! The task behind one [`Link`](super::link::Link): opens the stream to the peer when the first
//! call arrives, runs it until it breaks, then pauses (failing the calls that arrive meanwhile
//! at once) and waits for the next call to open a new one. It never retries a call: Raft
//! retries on its own schedule, and a stale retry could arrive after a newer call.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::link::{LinkShared, LinkState, Outgoing};
use super::metrics::PeerCounter;
use super::session::{self, SessionEnd};

/// A year: the stand-in for a pause that overflows the clock.
const FOREVER_SECS: u64 = 365 * 24 * 3600;

/// Drives the link until it is dropped (its queue closes).
pub(crate) async fn drive(shared: Arc<LinkShared>, mut queue: mpsc::Receiver<Outgoing>) {
    let limits = shared.limits;
    let mut backoff = Backoff::new(limits.reconnect_backoff_min, limits.reconnect_backoff_max);
    // Opened lazily: a peer no group calls costs no connection.
    while let Some(first) = queue.recv().await {
        shared.set_state(LinkState::Opening);
        let reason = match session::open(&shared).await {
            Ok(session) => {
                shared.set_state(LinkState::Up);
                shared.counters.incr(PeerCounter::StreamsOpened);
                backoff.reset();
                tracing::info!(peer = shared.node, addr = %shared.addr, "stream to peer open");
                let end = session.run(first, &mut queue, &shared).await;
                shared.counters.incr(PeerCounter::StreamsClosed);
                match end {
                    SessionEnd::LinkClosed => return,
                    SessionEnd::Broken(reason) => {
                        tracing::warn!(peer = shared.node, addr = %shared.addr, %reason, "stream to peer broke");
                        reason
                    }
                }
            }
            Err(reason) => {
                tracing::debug!(peer = shared.node, addr = %shared.addr, %reason, "cannot open a stream to peer");
                fail(&shared, first, &reason);
                reason
            }
        };
        let failed = shared
            .pending
            .fail_all(|| shared.unreachable(reason.clone()));
        if failed > 0 {
            tracing::debug!(
                peer = shared.node,
                failed,
                "calls in flight failed with the stream"
            );
        }
        let pause = backoff.failed();
        // A pause too long for the clock (a misconfigured maximum) is as good as forever.
        let now = Instant::now();
        let until = now
            .checked_add(pause)
            .unwrap_or_else(|| now + Duration::from_secs(FOREVER_SECS));
        let reason = format!("{reason} (next attempt in {} ms)", pause.as_millis());
        shared.set_state(LinkState::Down {
            until,
            reason: reason.clone(),
        });
        // Calls that got past the state check before it changed fail like the later ones.
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                next = queue.recv() => match next {
                    Some(outgoing) => fail(&shared, outgoing, &reason),
                    None => return,
                },
            }
        }
        shared.set_state(LinkState::Idle);
    }
}

/// Fails one queued call as unreachable.
fn fail(shared: &LinkShared, outgoing: Outgoing, reason: &str) {
    // A caller that gave up already is no loss.
    let _ = outgoing.reply.send(Err(shared.unreachable(reason)));
}
