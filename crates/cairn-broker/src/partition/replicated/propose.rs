//! The append path of a replicated copy: making the proposal state valid for this leader's
//! term, checking a batch against the producer state under the proposal lock, proposing it,
//! and answering a retry of a batch already proposed (see the parent module's docs for the
//! reasoning). Kept apart from the copy's start-up, reads and reports, which do not touch it.

use super::*;

impl ReplicatedReplica {
    /// Makes the proposal state valid for the current term: waits until this new leader has
    /// applied its whole log (its no-op committed), then rebuilds the producer states and the
    /// predicted log end from it.
    async fn ready(&self, state: &mut ProposalState, term: u64) -> Result<(), BrokerError> {
        if state.term == Some(term) {
            return Ok(());
        }
        state.term = None;
        let mut metrics = self.raft.metrics();
        let waited_from = tokio::time::Instant::now();
        let deadline = waited_from + LEADER_READY_WAIT;
        loop {
            {
                let m = metrics.borrow_and_update();
                if m.state != ServerState::Leader || m.current_term != term {
                    return Err(self.not_leader(&m));
                }
                let applied = m.last_applied.map(|l| l.index);
                if applied.is_some() && applied >= m.last_log_index {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, metrics.changed())
                .await
                .is_err()
            {
                return Err(BrokerError::NotLeader {
                    topic: self.topic.to_string(),
                    partition: self.index,
                    leader: None,
                });
            }
        }
        let applied_ms = waited_from.elapsed().as_millis();
        // The background tracker has recorded the committed log up to its last pass; only the
        // rest is read here (`producer_tracker.rs`).
        let started = tokio::time::Instant::now();
        let reader = self.reader().clone();
        let tracker = Arc::clone(&self.producer_tracker);
        let (topic, index) = (Arc::clone(&self.topic), self.index);
        let now_ms = self.clock.now_ms();
        let (producers, next_offset) = tokio::task::spawn_blocking(move || {
            let mut tracker = tracker.lock().unwrap_or_else(|e| e.into_inner());
            let states = tracker
                .for_leadership(&reader, &topic, index, now_ms)
                .clone();
            (states, reader.log_end_offset().0)
        })
        .await
        .map_err(|e| raft_failure(&self.topic, self.index, e.to_string()))?;
        *state = ProposalState {
            term: Some(term),
            next_offset,
            producers,
        };
        let producer_state_ms = started.elapsed().as_millis();
        tracing::info!(topic = %self.topic, partition = self.index, term, next_offset, applied_ms, producer_state_ms, "leading the partition");
        Ok(())
    }

    /// Waits until this node leads the group with its whole log applied (so the high watermark
    /// covers every entry it holds, and reads up to it see everything ever committed), and
    /// returns the term it leads in.
    ///
    /// # Errors
    /// [`BrokerError::NotLeader`] when another node leads, or leadership moved while waiting.
    pub(in crate::partition) async fn lead(&self) -> Result<u64, BrokerError> {
        Ok(self.ready_proposals().await?.1)
    }

    /// Takes the proposal lock once this node leads with its proposal state valid for the
    /// current term (see [`ReplicatedReplica::ready`]); a refusal also forgets the state, so the
    /// next leadership rebuilds it.
    async fn ready_proposals(
        &self,
    ) -> Result<(tokio::sync::MutexGuard<'_, ProposalState>, u64), BrokerError> {
        let mut state = self.proposals.lock().await;
        let term = match self.check_leader() {
            Ok(term) => term,
            Err(e) => {
                state.term = None;
                return Err(e);
            }
        };
        // A leaving node hands its leaderships over; a proposal now would grow the log its
        // successor must match first (see `stop_proposing`). The client retries elsewhere.
        // A damaged copy proposes nothing: it is handing its leadership over (see `heal`).
        if self.leaving.load(Ordering::SeqCst) || !self.standing.may_stand() {
            return Err(BrokerError::NotLeader {
                topic: self.topic.to_string(),
                partition: self.index,
                leader: None,
            });
        }
        self.ready(&mut state, term).await?;
        Ok((state, term))
    }

    /// Appends one batch through Raft and answers as `acks` asks (see the module docs).
    ///
    /// # Errors
    /// [`BrokerError::NotLeader`]; a sequence refusal; the group's failure. Nothing is
    /// acknowledged then.
    pub(in crate::partition) async fn append(
        &self,
        batch: Batch,
        acks: AckLevel,
    ) -> Result<Option<Offset>, BrokerError> {
        let term_seen = self.check_leader()?;
        // Here and not in storage: every copy must store what the group decides (see
        // `max_message_bytes`), so a batch over the limit must never be proposed.
        let max_bytes = self.max_message_bytes();
        if batch.len_bytes() > max_bytes {
            return Err(LogError::BatchTooLarge {
                size_bytes: batch.len_bytes(),
                max_bytes,
            }
            .into());
        }
        let header = *batch.header();
        let producer = (header.producer_id >= 0).then_some(ProducerBatch {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            record_count: header.last_offset_delta.saturating_add(1),
        });
        if let Some(p) = &producer {
            self.wait_turn(p, term_seen).await;
        }
        let span = batch.offset_count();
        let (mut state, term) = self.ready_proposals().await?;
        if let Some(p) = &producer {
            match state.producers.check(p) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate {
                    base_offset,
                    last_offset,
                } => {
                    drop(state);
                    return self
                        .answer_duplicate(base_offset, last_offset, acks, term)
                        .await;
                }
                refusal => return Err(sequence_refusal(p, refusal)),
            }
        }
        let base = state.next_offset;
        let end = base.saturating_add(span);
        let written = self
            .raft
            .client_write_ff(BatchData(batch.into_bytes()))
            .await
            .map_err(|e| raft_failure(&self.topic, self.index, e.to_string()));
        if let Some(p) = &producer {
            self.sequencer.queued(
                p.producer_id,
                p.producer_epoch,
                p.base_sequence,
                p.record_count,
                term,
            );
        }
        let pending = match written {
            Ok(pending) => pending,
            Err(e) => {
                state.term = None;
                return Err(e);
            }
        };
        state.next_offset = end;
        if let Some(p) = &producer {
            let now_ms = self.clock.now_ms();
            state
                .producers
                .record(p, base, end.saturating_sub(1), now_ms);
            state.producers.expire_due(now_ms, self.producer_expiration);
        }
        drop(state);
        // From here the batch is in the Raft log: any failure leaves its fate open.
        match acks {
            AckLevel::None => Ok(None),
            AckLevel::Leader => {
                self.raft_log
                    .wait_durable(Offset(end), tokio::time::Instant::now() + LEADER_READY_WAIT)
                    .await
                    .map_err(|e| self.outcome_unknown(e.to_string()))?;
                self.still_leading(term)?;
                Ok(Some(Offset(base)))
            }
            AckLevel::All => {
                // A leader that has voted for a newer term's candidate (a handover, an
                // election) may learn only much later whether its proposals committed: it
                // answers them when it applies them, and it hears of the commit from the new
                // leader. Measured on a leadership move at 20,000 records/s, its clients waited
                // about 0.5 s for that. So the answer goes at once: outcome unknown, which the
                // client retries under the same sequence at the new leader, and the new leader
                // answers it as a duplicate if it was committed.
                let superseded = self.newer_term_known(term);
                let answered = tokio::select! {
                    // An answer already there wins: the write committed.
                    biased;
                    answered = pending => answered,
                    () = superseded => {
                        self.forget_proposal_state(term).await;
                        return Err(self.outcome_unknown(
                            "this node lost the leadership".to_string(),
                        ));
                    }
                };
                match answered {
                    Ok(Ok(response)) => {
                        let landed = response.data.base_offset;
                        if u64::try_from(landed).ok() != Some(base) {
                            // The prediction is wrong only through a bug; the batch is committed
                            // at `landed`, which is the truth to answer. Rebuild next time.
                            tracing::error!(topic = %self.topic, partition = self.index, predicted = base, landed, "offset prediction missed");
                            self.forget_proposal_state(term).await;
                        }
                        Ok(Some(Offset(u64::try_from(landed).unwrap_or(base))))
                    }
                    Ok(Err(ClientWriteError::ForwardToLeader(_))) | Err(_) => {
                        self.forget_proposal_state(term).await;
                        Err(self.outcome_unknown("this node lost the leadership".to_string()))
                    }
                    Ok(Err(e)) => Err(self.outcome_unknown(e.to_string())),
                }
            }
        }
    }

    /// Waits for `p`'s turn in the sequencer (see `sequencer.rs`), in the term this node leads.
    ///
    /// Ordering is for one term only: once a newer one is known, the predecessor this batch
    /// waits for goes to the new leader, and the client is better told so now (the proposal
    /// lock answers NOT_LEADER naming it). Waiting out the full bound here held every batch
    /// behind this one for half a second on a leadership move. A node that has won the newer
    /// term meanwhile orders the batch in that term.
    async fn wait_turn(&self, p: &ProducerBatch, mut term: u64) {
        loop {
            let turn =
                self.sequencer
                    .wait_turn(p.producer_id, p.producer_epoch, p.base_sequence, term);
            tokio::select! {
                () = turn => return,
                () = self.newer_term_known(term) => {}
            }
            match self.check_leader() {
                Ok(now) if now > term => term = now,
                _ => return,
            }
        }
    }

    /// Answers a retried batch with its original offsets, once they are committed (or, for
    /// `acks=leader`, once this node has them), if this node still leads in `term`, the term
    /// whose proposal state found the batch.
    ///
    /// The batch may be one this leader proposed and has not committed yet. If it loses the
    /// leadership meanwhile, the next leader drops that batch and commits other records at the
    /// same offsets, and this node, now its follower, copies them: the high watermark passes
    /// the offsets all the same. Only a node that led throughout knows they hold this batch (a
    /// leader never rewrites its own log), so anything else is a refusal the client retries
    /// at the new leader (found by a CI fault loop that counted 6 acknowledged writes lost).
    async fn answer_duplicate(
        &self,
        base: u64,
        last: u64,
        acks: AckLevel,
        term: u64,
    ) -> Result<Option<Offset>, BrokerError> {
        let end = Offset(last.saturating_add(1));
        match acks {
            AckLevel::None => return Ok(None),
            AckLevel::Leader => {
                self.raft_log
                    .wait_durable(end, tokio::time::Instant::now() + LEADER_READY_WAIT)
                    .await
                    .map_err(|e| self.outcome_unknown(e.to_string()))?;
            }
            AckLevel::All => {
                let deadline = tokio::time::Instant::now() + LEADER_READY_WAIT;
                if wait_for_high_watermark(self.reader(), Offset(last), deadline)
                    .await
                    .is_none()
                {
                    return Err(self.outcome_unknown("not committed in time".to_string()));
                }
            }
        }
        self.still_leading(term)?;
        Ok(Some(Offset(base)))
    }

    /// Drops the proposal state if it is still `term`'s, so the next proposal rebuilds it. A
    /// state built since for a later term is left alone: its proposals may be on their way into
    /// the log, and a rebuild now would miss them.
    async fn forget_proposal_state(&self, term: u64) {
        let mut state = self.proposals.lock().await;
        if state.term == Some(term) {
            state.term = None;
        }
    }

    /// Refuses unless this node leads now in `term`, and so has led since `term` began: terms
    /// only grow, and a leader leaves its term only for a later one. Called after a batch was
    /// proposed, so the refusal leaves its fate open.
    fn still_leading(&self, term: u64) -> Result<(), BrokerError> {
        match self.check_leader() {
            Ok(now) if now == term => Ok(()),
            _ => Err(self.outcome_unknown("this node lost the leadership".to_string())),
        }
    }

    /// Resolves once this node knows a term newer than `term` (it voted for another
    /// candidate, or heard from a newer leader); never, if the group stops first (whatever
    /// waits on it then gets its answer from the group).
    fn newer_term_known(&self, term: u64) -> impl Future<Output = ()> + Send + 'static {
        let mut known_term = self.known_term.clone();
        async move {
            if known_term.wait_for(|known| *known > term).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The answer for a batch that reached the Raft log (here or through an earlier attempt)
    /// when this node cannot say whether it was committed. A `NOT_LEADER` here would tell the
    /// client nothing was written, and a producer may then give the batch's sequence numbers
    /// to other records, which the next leader would answer as duplicates of this batch: a
    /// fault loop lost 19 acknowledged records that way.
    fn outcome_unknown(&self, reason: String) -> BrokerError {
        BrokerError::AppendOutcomeUnknown {
            topic: self.topic.to_string(),
            partition: self.index,
            reason,
        }
    }
}

/// A sequence refusal, as the local filter words it.
fn sequence_refusal(p: &ProducerBatch, check: SequenceCheck) -> BrokerError {
    let err = match check {
        SequenceCheck::OutOfOrder { expected, found } => SequenceError::OutOfOrder {
            producer_id: p.producer_id,
            expected,
            found,
        },
        SequenceCheck::FencedEpoch { current, found } => SequenceError::FencedEpoch {
            producer_id: p.producer_id,
            current,
            found,
        },
        SequenceCheck::UnknownProducer
        | SequenceCheck::Append
        | SequenceCheck::Duplicate { .. } => SequenceError::UnknownProducer {
            producer_id: p.producer_id,
        },
    };
    BrokerError::from(LogError::Rejected(Arc::new(err)))
}
