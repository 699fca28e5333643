//! What the Kafka bus does with messages the broker cannot take now: it
//! keeps them in the node's durable spool (or, with the spool turned off,
//! in a bounded buffer in memory) and a background task delivers them, in
//! order, once the broker answers; an open circuit breaker is probed on a
//! timer, whatever is waiting.

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::error::KafkaError;

use super::{
    Inner, lock, probe_timeout,
    producer::{self, Record},
};
use crate::{
    bus::{BusMessage, Delivery},
    error::BusError,
    spool::{Spool, SpoolRecord},
};

/// Messages sent from the spool or the buffer in one go.
const BATCH: usize = 1_000;

/// A message waiting in the in-memory buffer.
#[derive(Debug)]
pub(super) struct Pending {
    message: Arc<BusMessage>,
    record: Record,
    since: Instant,
}

/// The in-memory buffer, used only when the spool is turned off.
#[derive(Debug, Default)]
pub(super) struct Buffer {
    queue: VecDeque<Pending>,
    /// Taken by the background task and being sent.
    sending: usize,
    /// Given up on after the timeout; handed back by `take_undelivered`.
    pub(super) undelivered: Vec<Arc<BusMessage>>,
}

impl Buffer {
    /// Messages queued or being sent.
    pub(super) fn waiting(&self) -> usize {
        self.queue.len() + self.sending
    }

    /// Empties the queue into the undelivered list; returns how many
    /// messages are lost: the undelivered ones, and those of a send cut
    /// short (by a second signal), which took its batch along.
    pub(super) fn give_up(&mut self) -> usize {
        let rest = self.queue.drain(..).map(|p| p.message);
        self.undelivered.extend(rest);
        self.undelivered.len() + std::mem::take(&mut self.sending)
    }
}

/// The node's durable spool, shared by publishes and the background task.
pub(super) struct SpoolSlot {
    spool: Mutex<Spool>,
    /// Records waiting in the spool; read on the hot path.
    len: AtomicUsize,
    path: PathBuf,
}

impl SpoolSlot {
    pub(super) fn new(spool: Spool) -> Self {
        SpoolSlot {
            len: AtomicUsize::new(spool.len()),
            path: spool.path().to_path_buf(),
            spool: Mutex::new(spool),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    pub(super) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Runs `work` on the spool off the async runtime (its file I/O
    /// blocks), then records how many records wait.
    async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        what: &str,
        work: impl FnOnce(&mut Spool) -> Result<T, crate::spool::SpoolError> + Send + 'static,
    ) -> Result<T, BusError> {
        let slot = Arc::clone(self);
        let done = tokio::task::spawn_blocking(move || {
            let mut spool = lock(&slot.spool);
            let done = work(&mut spool);
            slot.len.store(spool.len(), Ordering::Release);
            done
        })
        .await
        .map_err(|e| BusError::Other(format!("{what} the spool: {e}")))?;
        Ok(done?)
    }
}

fn spool_record(record: &Record) -> SpoolRecord {
    SpoolRecord {
        topic: record.topic.clone(),
        key: record.key.clone(),
        value: record.value.clone(),
        headers: record
            .headers
            .iter()
            .map(|(name, value)| (name.to_owned(), value.to_vec()))
            .collect(),
    }
}

fn record_of_spooled(record: SpoolRecord) -> Record {
    Record {
        topic: record.topic,
        key: record.key,
        value: record.value,
        headers: record.headers.into_iter().collect(),
    }
}

impl Inner {
    /// Whether messages wait for the broker (spooled or buffered): new
    /// publishes then queue behind them, to keep the order.
    pub(super) fn holds_messages(&self) -> bool {
        self.buffer_len.load(Ordering::Acquire) > 0
            || self.spool.as_ref().is_some_and(|s| s.len() > 0)
    }

    /// Messages waiting for the broker, spooled and buffered.
    pub(super) fn held(&self) -> usize {
        self.buffer_len.load(Ordering::Acquire) + self.spool.as_ref().map_or(0, |s| s.len())
    }

    /// Keeps a message the broker cannot take now: durably in the spool
    /// (`Spooled`), or without a spool in memory (`Buffered`).
    pub(super) async fn hold(
        &self,
        message: Arc<BusMessage>,
        record: Record,
    ) -> Result<Delivery, BusError> {
        let Some(slot) = &self.spool else {
            return self.enqueue(message, record);
        };
        let spooled = spool_record(&record);
        slot.with("writing", move |spool| {
            spool.append(std::slice::from_ref(&spooled))
        })
        .await?;
        self.buffered_total.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        Ok(Delivery::Spooled)
    }

    /// Puts a message into the in-memory buffer.
    fn enqueue(&self, message: Arc<BusMessage>, record: Record) -> Result<Delivery, BusError> {
        let capacity = self.config.publish_buffer_capacity;
        {
            let mut buffer = lock(&self.buffer);
            if buffer.waiting() + buffer.undelivered.len() >= capacity {
                return Err(BusError::BufferFull { capacity });
            }
            buffer.queue.push_back(Pending {
                message,
                record,
                since: Instant::now(),
            });
            self.buffer_len.fetch_add(1, Ordering::AcqRel);
        }
        self.buffered_total.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        Ok(Delivery::Buffered)
    }

    /// Moves buffered messages older than the timeout to the undelivered
    /// list (spooled messages never expire).
    pub(super) fn expire(&self) {
        let timeout = self.config.timeout();
        let mut buffer = lock(&self.buffer);
        let mut expired = 0;
        while buffer
            .queue
            .front()
            .is_some_and(|p| p.since.elapsed() >= timeout)
        {
            if let Some(p) = buffer.queue.pop_front() {
                buffer.undelivered.push(p.message);
                expired += 1;
            }
        }
        if expired > 0 {
            self.buffer_len.fetch_sub(expired, Ordering::AcqRel);
            tracing::error!(
                count = expired,
                timeout_seconds = self.config.timeout_seconds,
                "buffered messages not delivered within the timeout (the spool is off); \
                 they are kept for KafkaBus::take_undelivered"
            );
        }
    }

    /// Sends records in order (librdkafka keeps the order per partition)
    /// and returns how many from the front were delivered, and the first
    /// error.
    async fn send_in_order(&self, records: &[&Record]) -> (usize, Option<KafkaError>) {
        let Some(permit) = self.breaker.permit() else {
            return (0, None);
        };
        let slot = self.current_producer();
        let deadline = Instant::now() + self.config.timeout();
        let mut receivers = Vec::with_capacity(records.len());
        for record in records {
            receivers.push(slot.enqueue(record, deadline).await);
        }
        let mut prefix = 0;
        let mut first_error = None;
        let mut delivered = 0;
        for rx in receivers {
            let report = match rx {
                Ok(rx) => rx.await.unwrap_or(Err(KafkaError::Canceled)),
                Err(e) => Err(e),
            };
            match report {
                Ok(()) => {
                    delivered += 1;
                    if first_error.is_none() {
                        prefix += 1;
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.delivered.fetch_add(delivered, Ordering::Relaxed);
        match &first_error {
            None => permit.success(),
            Some(e) if slot.is_fatal() => {
                drop(permit);
                self.rebuild_producer(&slot);
                tracing::debug!("re-sending held messages on a new producer: {e}");
            }
            Some(e) if producer::is_purged(e) => drop(permit),
            Some(e) => {
                permit.failure();
                let reason = format!("held messages not delivered: {e}");
                self.note_failure(&reason);
                self.set_degraded(reason);
            }
        }
        (prefix, first_error)
    }

    /// Delivers a batch from the front of the spool; the delivered prefix
    /// is removed from it. Returns whether the whole batch went out.
    async fn drain_spool(&self) -> Result<bool, BusError> {
        let Some(slot) = &self.spool else {
            return Ok(true);
        };
        if slot.len() == 0 {
            return Ok(true);
        }
        let batch: Vec<Record> = slot
            .with("reading", |spool| spool.peek(BATCH))
            .await?
            .into_iter()
            .map(record_of_spooled)
            .collect();
        if batch.is_empty() {
            return Ok(true);
        }
        let refs: Vec<&Record> = batch.iter().collect();
        let (prefix, error) = self.send_in_order(&refs).await;
        if prefix > 0 {
            slot.with("updating", move |spool| spool.acknowledge(prefix))
                .await?;
            tracing::debug!(delivered = prefix, "delivered spooled messages");
        }
        Ok(error.is_none() && prefix == batch.len())
    }

    /// Sends a batch from the front of the in-memory buffer, in order.
    /// Returns whether all of it was delivered.
    async fn drain_buffer(&self) -> bool {
        let batch: Vec<Pending> = {
            let mut buffer = lock(&self.buffer);
            let n = buffer.queue.len().min(BATCH);
            let batch: Vec<Pending> = buffer.queue.drain(..n).collect();
            buffer.sending += batch.len();
            batch
        };
        if batch.is_empty() {
            return true;
        }
        let refs: Vec<&Record> = batch.iter().map(|p| &p.record).collect();
        let (prefix, _) = self.send_in_order(&refs).await;
        let all = batch.len();
        let mut buffer = lock(&self.buffer);
        buffer.sending = buffer.sending.saturating_sub(all);
        // What follows the delivered prefix goes back to the front, in
        // order (some of it may have been delivered: at-least-once).
        for p in batch.into_iter().skip(prefix).rev() {
            buffer.queue.push_front(p);
        }
        self.buffer_len.fetch_sub(prefix, Ordering::AcqRel);
        prefix == all
    }

    /// Delivers what is held, spool first (it is older). Returns whether
    /// everything attempted went out.
    pub(super) async fn drain(&self) -> bool {
        match self.drain_spool().await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                tracing::error!("cannot deliver from the spool: {e}");
                return false;
            }
        }
        self.drain_buffer().await
    }

    /// Asks the broker whether it answers (blocking call off the runtime).
    async fn probe(&self) -> bool {
        let slot = self.current_producer();
        let timeout = probe_timeout(&self.config);
        matches!(
            tokio::task::spawn_blocking(move || slot.probe(timeout)).await,
            Ok(Ok(()))
        )
    }

    /// Probes the broker when the breaker is due for a trial, or when the
    /// bus is degraded with a closed breaker: an answer closes the breaker
    /// and ends the degradation (what is held is delivered next); silence
    /// counts as a failure.
    pub(super) async fn probe_if_due(&self) {
        let closed = self.breaker.state() == crate::circuit::CircuitState::Closed;
        let due = self.breaker.trial_due() || (self.is_degraded() && closed);
        if !due {
            return;
        }
        let Some(permit) = self.breaker.permit() else {
            return;
        };
        if self.probe().await {
            permit.success();
            self.clear_degraded();
        } else {
            permit.failure();
            self.note_failure("the broker does not answer");
        }
    }

    /// How long the background task may sleep before its next round.
    fn pause(&self) -> Duration {
        let until_trial = self.breaker.until_trial();
        if until_trial > Duration::ZERO {
            until_trial.min(Duration::from_secs(1))
        } else if self.holds_messages() {
            self.retry.delay(0).min(Duration::from_secs(5))
        } else if self.is_degraded() {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(250)
        }
    }
}

impl Inner {
    /// Resolves once [`crate::EventBus::expedite_shutdown`] was called.
    pub(super) async fn expedited(&self) {
        loop {
            let notified = self.expedited.notified();
            if self.expedite.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Delivers what is held, for up to `timeout`, saying what it waits for.
    pub(super) async fn deliver_held(&self, timeout: Duration) {
        let held = self.held();
        if held == 0 {
            return;
        }
        tracing::info!(
            held,
            timeout_seconds = timeout.as_secs(),
            "delivering held messages before stopping; a second SIGINT or SIGTERM stops at once{}",
            if self.spool.is_some() {
                " and keeps them in the spool"
            } else {
                ""
            }
        );
        let deadline = Instant::now() + timeout;
        let mut next_report = Instant::now() + Duration::from_secs(5);
        while self.holds_messages() && Instant::now() < deadline {
            self.expire();
            self.probe_if_due().await;
            let healthy =
                !self.is_degraded() && self.breaker.state() == crate::circuit::CircuitState::Closed;
            if !(healthy && self.drain().await) {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(self.pause().min(left)).await;
            }
            if Instant::now() >= next_report && self.holds_messages() {
                next_report = Instant::now() + Duration::from_secs(5);
                tracing::info!(
                    held = self.held(),
                    seconds_left = deadline.saturating_duration_since(Instant::now()).as_secs(),
                    "still waiting for the broker to take held messages"
                );
            }
        }
    }
}

/// The background task: rebuilds a failed producer, expires what waited
/// too long in memory, probes the broker on a timer while the breaker is
/// open, and delivers what is held.
pub(super) async fn background(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let slot = inner.current_producer();
        if slot.is_fatal() {
            inner.rebuild_producer(&slot);
        }
        drop(slot);
        inner.expire();
        inner.probe_if_due().await;
        if inner.holds_messages()
            && !inner.is_degraded()
            && inner.breaker.state() == crate::circuit::CircuitState::Closed
            && inner.drain().await
        {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(inner.pause()) => {}
            _ = inner.wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}
