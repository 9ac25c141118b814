//! The producer's background task: what has no caller to do it. It sends batches whose linger,
//! retry or expiry comes due, fetches a fresh producer id when a queue needs one, and answers
//! flush and close once nothing is held. Records and answers reach the queues without it (see
//! `dispatch`); it sleeps until the earliest instant a queue planned for, and a queue that
//! needs it sooner notifies it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::config::ProducerConfig;
use super::dispatch::Dispatcher;
use super::{ProducerIdentity, init_producer_id};
use crate::error::ClientError;

/// Commands from producer handles.
pub(crate) enum Command {
    /// Send everything held now and answer once nothing is queued or in flight.
    Flush(oneshot::Sender<()>),
}

/// Longest sleep with nothing planned; a notification ends it sooner.
const IDLE_SLEEP: Duration = Duration::from_secs(3600);

/// The background task's state.
pub(crate) struct Sender {
    config: Arc<ProducerConfig>,
    dispatcher: Arc<Dispatcher>,
    identities: mpsc::UnboundedSender<Result<ProducerIdentity, ClientError>>,
    identity_answers: mpsc::UnboundedReceiver<Result<ProducerIdentity, ClientError>>,
    flushes: Vec<oneshot::Sender<()>>,
    identity_request: bool,
    identity_retry_at: Option<Instant>,
    identity_attempts: u32,
}

impl Sender {
    /// The task of the producer whose queues `dispatcher` holds.
    pub fn new(config: Arc<ProducerConfig>, dispatcher: Arc<Dispatcher>) -> Sender {
        let (identities, identity_answers) = mpsc::unbounded_channel();
        Sender {
            config,
            dispatcher,
            identities,
            identity_answers,
            flushes: Vec::new(),
            identity_request: false,
            identity_retry_at: None,
            identity_attempts: 0,
        }
    }

    /// Runs until every handle is gone and everything held has its answer.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut closing = false;
        loop {
            let now = Instant::now();
            let (outgoing, needs_identity, idle, wake) = {
                let mut accumulator = self.dispatcher.lock();
                let (outgoing, needs_identity) = accumulator.poll(now);
                let wake = accumulator
                    .next_wakeup()
                    .into_iter()
                    .chain(self.identity_retry_at)
                    .min()
                    .unwrap_or(now + IDLE_SLEEP);
                // Under the same lock as the plan, so a queue that changes after it knows
                // whether it must wake this task.
                accumulator.plan_wakeup(wake, closing || !self.flushes.is_empty());
                (outgoing, needs_identity, accumulator.is_idle(), wake)
            };
            for batch in outgoing {
                self.dispatcher.spawn_request(batch);
            }
            if needs_identity {
                self.request_identity(now);
            }
            if idle {
                for done in self.flushes.drain(..) {
                    let _ = done.send(());
                }
                if closing {
                    return;
                }
            }
            tokio::select! {
                biased;
                Some(answer) = self.identity_answers.recv() => self.on_identity(answer),
                () = self.dispatcher.wake.notified() => {}
                command = commands.recv(), if !closing => match command {
                    Some(Command::Flush(done)) => {
                        self.dispatcher.lock().seal_all();
                        self.flushes.push(done);
                    }
                    None => {
                        closing = true;
                        self.dispatcher.lock().seal_all();
                    }
                },
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    fn on_identity(&mut self, answer: Result<ProducerIdentity, ClientError>) {
        self.identity_request = false;
        match answer {
            Ok(identity) => {
                self.identity_attempts = 0;
                self.dispatcher.lock().set_identity(identity);
            }
            Err(error) => {
                tracing::warn!(%error, "could not get a new producer id; retrying");
                self.identity_attempts += 1;
                self.identity_retry_at =
                    Some(Instant::now() + self.config.backoff(self.identity_attempts));
            }
        }
    }

    /// Asks for a fresh producer id unless a request is out or its retry is not due yet.
    fn request_identity(&mut self, now: Instant) {
        if self.identity_request || self.identity_retry_at.is_some_and(|at| now < at) {
            return;
        }
        self.identity_request = true;
        self.identity_retry_at = None;
        let dispatcher = Arc::clone(&self.dispatcher);
        let answers = self.identities.clone();
        tokio::spawn(async move {
            let _ = answers.send(init_producer_id(dispatcher.router()).await);
        });
    }
}
