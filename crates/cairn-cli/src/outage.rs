//! Riding through a broker that is away for a moment (a restart, a leader moving): a long-running
//! `consume` that has read from the broker keeps polling after a retriable failure, as a Kafka
//! consumer reconnects, and gives up only once no poll has succeeded for the command's
//! `--timeout`. Until its first successful poll a command fails at once, as every command does
//! against an address that does not answer. It says so once on stderr,
//! so that a pipeline's reader is not left guessing, and once more when reads resume.

use std::time::{Duration, Instant};

use cairn_client::ClientError;

/// Pause between polls while the broker is away.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// The state of one command's polls: since when they have failed, if they have.
#[derive(Debug)]
pub struct Outage {
    /// How long polls may fail in a row before the command gives up (`--timeout`).
    limit: Duration,
    /// When the current run of failures began.
    since: Option<Instant>,
    /// Whether a poll has succeeded yet.
    reached: bool,
}

impl Outage {
    /// No failures yet; give up after `limit` of them in a row.
    pub fn new(limit: Duration) -> Outage {
        Outage {
            limit,
            since: None,
            reached: false,
        }
    }

    /// What a poll's result means for the command: its records, `None` after a failure it
    /// rides through (poll again), or the command's error ([`Outage::on_error`]).
    ///
    /// # Errors
    /// As [`Outage::on_error`].
    pub async fn settle<T>(
        &mut self,
        polled: Result<T, ClientError>,
        what: &str,
    ) -> anyhow::Result<Option<T>> {
        match polled {
            Ok(records) => {
                self.on_success(what);
                Ok(Some(records))
            }
            Err(err) => {
                self.on_error(err, what).await?;
                Ok(None)
            }
        }
    }

    /// A poll succeeded: the outage, if any, is over.
    pub fn on_success(&mut self, what: &str) {
        self.reached = true;
        if let Some(since) = self.since.take() {
            eprintln!(
                "{what}: reading again after {:.1} s",
                since.elapsed().as_secs_f64()
            );
        }
    }

    /// A poll failed with `err`. A retriable failure after a successful poll, within the
    /// limit, waits a moment and returns `Ok` (poll again); anything else is the command's
    /// error.
    ///
    /// # Errors
    /// `err` itself when it is not retriable or no poll has succeeded yet, or when polls have
    /// failed for the whole limit.
    pub async fn on_error(&mut self, err: ClientError, what: &str) -> anyhow::Result<()> {
        if !err.is_retriable() || !self.reached {
            return Err(anyhow::Error::new(err).context(what.to_string()));
        }
        let since = match self.since {
            Some(since) => since,
            None => {
                eprintln!(
                    "{what}: {err}; retrying for up to {} s (--timeout)",
                    self.limit.as_secs_f64()
                );
                *self.since.insert(Instant::now())
            }
        };
        if since.elapsed() >= self.limit {
            return Err(anyhow::Error::new(err).context(format!(
                "{what}: no successful read for {} s (--timeout)",
                self.limit.as_secs_f64()
            )));
        }
        tokio::time::sleep(RETRY_PAUSE).await;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use cairn_client::ErrorCode;

    fn unavailable() -> ClientError {
        ClientError::Broker {
            code: ErrorCode::BrokerNotAvailable,
            status: tonic::Code::Unavailable,
            message: "connection refused".to_string(),
            leader: None,
        }
    }

    #[tokio::test]
    async fn retriable_failures_are_ridden_through_until_the_limit() {
        let mut outage = Outage::new(Duration::from_millis(600));
        // Never reached: the broker's address may be wrong, so the first failure ends it.
        assert!(outage.on_error(unavailable(), "reading t").await.is_err());
        outage.on_success("reading t");
        assert!(outage.on_error(unavailable(), "reading t").await.is_ok());
        assert!(outage.on_error(unavailable(), "reading t").await.is_ok());
        outage.on_success("reading t");
        // A success starts the count again.
        assert!(outage.on_error(unavailable(), "reading t").await.is_ok());
        tokio::time::sleep(Duration::from_millis(700)).await;
        let err = outage
            .on_error(unavailable(), "reading t")
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("no successful read for 0.6 s"),
            "{err:#}"
        );
    }

    #[tokio::test]
    async fn a_failure_that_is_not_retriable_ends_the_command_at_once() {
        let mut outage = Outage::new(Duration::from_secs(30));
        outage.on_success("reading t");
        let err = ClientError::InvalidArgument("bad".to_string());
        assert!(outage.on_error(err, "reading t").await.is_err());
    }
}
