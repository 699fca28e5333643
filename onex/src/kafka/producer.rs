//! The rdkafka producer behind [`super::KafkaBus`]: a `ThreadedProducer`
//! whose delivery callback completes a oneshot per message, so that any
//! number of publishes can await their delivery reports concurrently, or
//! counts the reports of a batch of messages, which one task awaits
//! together ([`BatchReports`]).

use std::{
    borrow::Cow,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, ClientContext,
    config::{FromClientConfigAndContext, RDKafkaLogLevel},
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{
        BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
    },
};
use tokio::sync::{Notify, oneshot};

use super::consumer::{
    CONNECTION_WARNING_INTERVAL, LogThrottle, is_connection_error, log_librdkafka,
};
use crate::config::KafkaConfig;

/// The outcome of one delivery report.
pub(crate) type Report = Result<(), KafkaError>;

/// Client callbacks of the producer: delivery reports go to the waiting
/// publish; a fatal error is remembered so that the bus rebuilds the
/// producer.
pub(crate) struct ProducerCallbacks {
    fatal: AtomicBool,
    /// `UnknownProducerId` answers since the last delivery. After a broker
    /// restart that forgot the producer id, librdkafka can loop on them
    /// (bumping the epoch of an id the broker does not know) until every
    /// queued message times out; the bus treats that like a fatal error.
    unknown_producer_id: AtomicU32,
    /// Whether the producer is idempotent and has not asked for its
    /// producer id yet, as the `eos` debug log tells (librdkafka's states
    /// `WaitPID` and `Assigned` come after the asking).
    pid_unrequested: AtomicBool,
    /// Holds back repeated connection warnings.
    connection_warnings: LogThrottle,
}

/// How long [`ProducerSlot::probe`] helps an idempotent producer to its
/// producer id: librdkafka's own retry comes after 500 ms.
const PID_NUDGE: Duration = Duration::from_millis(400);

/// `UnknownProducerId` answers in a row that make a producer "stuck".
const STUCK_AFTER_UNKNOWN_PID: u32 = 3;

impl ClientContext for ProducerCallbacks {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // `debug=eos` (set for idempotent producers) logs the idempotence
        // state machine, where the unknown-producer-id loop shows.
        if facility == "UNKPID" {
            self.unknown_producer_id.fetch_add(1, Ordering::AcqRel);
        }
        if facility == "IDEMPSTATE"
            && (message.ends_with("-> WaitPID") || message.ends_with("-> Assigned"))
        {
            self.pid_unrequested.store(false, Ordering::Release);
        }
        log_librdkafka(
            &self.connection_warnings,
            "producer",
            level,
            facility,
            message,
        );
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match &error {
            KafkaError::Global(RDKafkaErrorCode::Fatal) => {
                self.fatal.store(true, Ordering::Release);
                tracing::error!(%reason, "fatal Kafka producer error; the producer will be rebuilt");
            }
            // An outage repeats these for as long as it lasts; the bus's
            // health reports it too.
            _ if is_connection_error(&error) => {
                if let Some(held_back) = self.connection_warnings.admit() {
                    tracing::warn!(
                        %reason,
                        held_back,
                        "Kafka producer cannot reach the broker: {error} (similar warnings are held back for {}s)",
                        CONNECTION_WARNING_INTERVAL.as_secs()
                    );
                }
            }
            _ => tracing::warn!(%reason, "Kafka producer: {error}"),
        }
    }
}

/// Who waits for a message's delivery report.
pub(crate) enum Waiter {
    /// One publish, on its oneshot.
    One(oneshot::Sender<Report>),
    /// A batch's message at `index`.
    Batch {
        batch: Arc<BatchReports>,
        index: usize,
    },
}

impl ProducerContext for ProducerCallbacks {
    type DeliveryOpaque = Box<Waiter>;

    fn delivery(&self, result: &DeliveryResult<'_>, waiter: Self::DeliveryOpaque) {
        let report = match result {
            Ok(_) => {
                self.unknown_producer_id.store(0, Ordering::Release);
                Ok(())
            }
            Err((e, _)) => Err(e.clone()),
        };
        match *waiter {
            // The publish may have been cancelled; nobody waits then.
            Waiter::One(tx) => {
                let _ = tx.send(report);
            }
            Waiter::Batch { batch, index } => batch.report(index, report),
        }
    }
}

/// The delivery reports of a batch of messages: counted as they come, the
/// failures kept, one wake-up when the last one is in. A batch of events
/// costs one waiting task instead of a future, a oneshot and a wake-up
/// per message.
#[derive(Debug)]
pub(crate) struct BatchReports {
    remaining: AtomicUsize,
    failures: Mutex<Vec<(usize, KafkaError)>>,
    done: Notify,
}

impl BatchReports {
    pub(crate) fn new(messages: usize) -> Arc<Self> {
        Arc::new(BatchReports {
            remaining: AtomicUsize::new(messages),
            failures: Mutex::new(Vec::new()),
            done: Notify::new(),
        })
    }

    /// Notes the outcome of the message at `index`.
    pub(crate) fn report(&self, index: usize, report: Report) {
        if let Err(e) = report {
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((index, e));
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Stores the permit if the batch is not waiting yet.
            self.done.notify_one();
        }
    }

    /// Waits for every report; the failed messages' positions and errors,
    /// in position order.
    pub(crate) async fn wait(&self) -> Vec<(usize, KafkaError)> {
        if self.remaining.load(Ordering::Acquire) > 0 {
            self.done.notified().await;
        }
        let mut failures =
            std::mem::take(&mut *self.failures.lock().unwrap_or_else(|e| e.into_inner()));
        failures.sort_by_key(|(index, _)| *index);
        failures
    }
}

/// One producer instance. A fatal error replaces the slot with a new one of
/// the next generation.
pub(crate) struct ProducerSlot {
    pub(crate) generation: u64,
    producer: Option<ThreadedProducer<ProducerCallbacks>>,
}

impl std::fmt::Debug for ProducerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerSlot")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// A record ready to send: serialized once, sent as often as retries need.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) topic: String,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Vec<u8>,
    pub(crate) headers: RecordHeaders,
}

impl Record {
    fn owned_headers(&self) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new_with_capacity(self.headers.len());
        for (name, value) in self.headers.iter() {
            headers = headers.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        headers
    }
}

/// A record's headers: names, and every value in one buffer. A message
/// carries seventeen or so headers; a buffer each cost as many allocations
/// per message, freed again on librdkafka's thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecordHeaders {
    /// Each header's name and the end of its value in `values`.
    entries: Vec<(Cow<'static, str>, usize)>,
    values: Vec<u8>,
}

impl RecordHeaders {
    /// Room for `headers` headers whose values add up to `bytes`.
    pub(crate) fn with_capacity(headers: usize, bytes: usize) -> Self {
        RecordHeaders {
            entries: Vec::with_capacity(headers),
            values: Vec::with_capacity(bytes),
        }
    }

    /// Adds a header whose value is `parts` joined.
    pub(crate) fn push<P: AsRef<[u8]>>(&mut self, name: impl Into<Cow<'static, str>>, parts: &[P]) {
        for part in parts {
            self.values.extend_from_slice(part.as_ref());
        }
        self.entries.push((name.into(), self.values.len()));
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every header's name and value, in the order they were added.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let mut start = 0;
        self.entries.iter().map(move |(name, end)| {
            let value = &self.values[start..*end];
            start = *end;
            (name.as_ref(), value)
        })
    }
}

impl<N: Into<Cow<'static, str>>> FromIterator<(N, Vec<u8>)> for RecordHeaders {
    fn from_iter<I: IntoIterator<Item = (N, Vec<u8>)>>(pairs: I) -> Self {
        let mut headers = RecordHeaders::default();
        for (name, value) in pairs {
            headers.push(name, &[value]);
        }
        headers
    }
}

/// The librdkafka settings of the bus's producer.
pub(crate) fn client_config(config: &KafkaConfig) -> ClientConfig {
    let timeout_ms = config.timeout_seconds.saturating_mul(1000).to_string();
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", format!("onex-{}", config.environment))
        .set("acks", config.acks.as_str())
        .set(
            "enable.idempotence",
            if config.enable_idempotence {
                "true"
            } else {
                "false"
            },
        )
        .set("linger.ms", config.linger_ms.to_string())
        .set("compression.type", config.compression.as_str())
        // A delivery report arrives within the timeout, success or not.
        .set("message.timeout.ms", &timeout_ms)
        .set("socket.connection.setup.timeout.ms", &timeout_ms);
    super::set_connection_settings(&mut c);
    if config.enable_idempotence {
        // Lets the bus see an idempotent producer stuck on an unknown
        // producer id (only state changes are logged: cheap).
        c.set("debug", "eos");
        c.set_log_level(RDKafkaLogLevel::Debug);
    }
    c
}

impl ProducerSlot {
    /// Creates a producer; fails only on invalid settings.
    pub(crate) fn create(config: &ClientConfig, generation: u64) -> Result<Self, KafkaError> {
        let callbacks = ProducerCallbacks {
            fatal: AtomicBool::new(false),
            unknown_producer_id: AtomicU32::new(0),
            pid_unrequested: AtomicBool::new(config.get("enable.idempotence") == Some("true")),
            connection_warnings: LogThrottle::new(CONNECTION_WARNING_INTERVAL),
        };
        let producer = ThreadedProducer::from_config_and_context(config, callbacks)?;
        Ok(ProducerSlot {
            generation,
            producer: Some(producer),
        })
    }

    fn producer(&self) -> Option<&ThreadedProducer<ProducerCallbacks>> {
        self.producer.as_ref()
    }

    /// Whether this producer hit a fatal error, or is stuck on a producer
    /// id the broker forgot, and must be replaced.
    pub(crate) fn is_fatal(&self) -> bool {
        self.producer().is_some_and(|p| {
            let ctx = p.context();
            ctx.fatal.load(Ordering::Acquire)
                || ctx.unknown_producer_id.load(Ordering::Acquire) >= STUCK_AFTER_UNKNOWN_PID
                || p.client().fatal_error().is_some()
        })
    }

    /// Why the producer is being replaced.
    pub(crate) fn fatal_reason(&self) -> String {
        match self.producer().and_then(|p| p.client().fatal_error()) {
            Some((code, reason)) => format!("fatal error {code}: {reason}"),
            None => "the broker does not know the producer id (UnknownProducerId)".to_owned(),
        }
    }

    /// Fails everything queued or in flight at once (with a purge error),
    /// so that it is re-sent on a new producer instead of waiting for the
    /// timeout. Blocks briefly.
    pub(crate) fn purge(&self) {
        if let Some(p) = self.producer() {
            p.purge(PurgeConfig::default().queue().inflight());
        }
    }

    /// Hands the record to librdkafka and returns the receiver of its
    /// delivery report. Waits (asynchronously) while librdkafka's queue is
    /// full, until `deadline`.
    pub(crate) async fn enqueue(
        &self,
        record: &Record,
        deadline: Instant,
    ) -> Result<oneshot::Receiver<Report>, KafkaError> {
        let (tx, rx) = oneshot::channel();
        self.hand_over(record, Waiter::One(tx), deadline).await?;
        Ok(rx)
    }

    /// Hands the record to librdkafka; its delivery report goes to the
    /// batch, as the message at `index`. Waits (asynchronously) while
    /// librdkafka's queue is full, until `deadline`. On an error the batch
    /// hears nothing of this message.
    pub(crate) async fn enqueue_in_batch(
        &self,
        record: &Record,
        batch: &Arc<BatchReports>,
        index: usize,
        deadline: Instant,
    ) -> Result<(), KafkaError> {
        let waiter = Waiter::Batch {
            batch: Arc::clone(batch),
            index,
        };
        self.hand_over(record, waiter, deadline).await
    }

    async fn hand_over(
        &self,
        record: &Record,
        waiter: Waiter,
        deadline: Instant,
    ) -> Result<(), KafkaError> {
        let producer = self.producer().ok_or(KafkaError::Canceled)?;
        let mut base = BaseRecord::with_opaque_to(&record.topic, Box::new(waiter))
            .payload(&record.value)
            .headers(record.owned_headers());
        if let Some(key) = &record.key {
            base = base.key(key);
        }
        match producer.send(base) {
            Ok(()) => Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                // Boxed: the rare wait for room would otherwise make the
                // future of every publish larger.
                Box::pin(send_when_room(producer, back, deadline)).await
            }
            Err((e, _)) => Err(e),
        }
    }

    /// Sends one record and awaits its delivery report.
    pub(crate) async fn send(&self, record: &Record, deadline: Instant) -> Report {
        let rx = self.enqueue(record, deadline).await?;
        rx.await.unwrap_or(Err(KafkaError::Canceled))
    }

    /// Sends what lingers at once and waits (blocking) until everything
    /// queued is delivered or failed.
    ///
    /// librdkafka's own flush, called with the whole timeout: it ignores
    /// `linger.ms` for as long as it waits. rdkafka's `Producer::flush`
    /// calls it with no timeout and then polls for up to 100 ms at a time,
    /// so the linger held for most of that wait (a flush took 100 ms
    /// where the broker answered in one).
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let Some(p) = self.producer() else {
            return Ok(());
        };
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the client pointer is valid while the producer lives (we
        // hold it). The producer takes delivery reports as events, which
        // its own thread serves, so the flush only waits for the count of
        // messages to reach zero.
        let code =
            unsafe { rdkafka::bindings::rd_kafka_flush(p.client().native_ptr(), timeout_ms) };
        match code {
            rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR => Ok(()),
            code => Err(KafkaError::Flush(code.into())),
        }
    }

    /// Messages queued or in flight.
    pub(crate) fn in_flight(&self) -> i32 {
        self.producer().map_or(0, |p| p.in_flight_count())
    }

    /// Asks the broker for metadata (blocking): whether it answers.
    ///
    /// An idempotent producer asks for its producer id when a metadata
    /// answer arrives, from a broker that is up. The first answer comes
    /// through the bootstrap connection, which does not count, often before
    /// the connection to the broker it names is up; librdkafka then tries
    /// again only half a second later, and every publish waits for it. So
    /// the metadata is asked for again, briefly, until the producer id is
    /// asked for.
    pub(crate) fn probe(&self, timeout: Duration) -> Result<(), KafkaError> {
        let Some(p) = self.producer() else {
            return Err(KafkaError::Canceled);
        };
        p.client().fetch_metadata(None, timeout)?;
        let deadline = Instant::now() + PID_NUDGE;
        let unrequested = || p.context().pid_unrequested.load(Ordering::Acquire);
        while unrequested() && Instant::now() < deadline {
            // The log that says it was asked for may still be on its way.
            std::thread::sleep(Duration::from_millis(2));
            if unrequested() {
                p.client().fetch_metadata(None, timeout)?;
            }
        }
        Ok(())
    }

    /// Raises a fatal error in librdkafka, as a broker restart can
    /// (`UnknownProducerId`); for tests of the recovery path.
    pub(crate) fn raise_fatal_error(&self, reason: &str) {
        let Some(p) = self.producer() else { return };
        let reason = std::ffi::CString::new(reason.replace('\0', " ")).unwrap_or_default();
        // SAFETY: the client pointer is valid while the producer lives (we
        // hold it), and the reason is a NUL-terminated string that outlives
        // the call; librdkafka copies it.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                p.client().native_ptr(),
                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID,
                reason.as_ptr(),
            );
        }
    }
}

impl Drop for ProducerSlot {
    fn drop(&mut self) {
        // Destroying a producer joins its polling thread and waits for
        // librdkafka: do it off the async runtime's threads. The bus flushes
        // before it lets go of a producer that may still hold messages.
        if let Some(producer) = self.producer.take() {
            let spawned = std::thread::Builder::new()
                .name("onex-producer-drop".to_owned())
                .spawn(move || drop(producer));
            if let Err(e) = spawned {
                tracing::warn!("could not spawn a thread to drop a producer: {e}");
            }
        }
    }
}

/// Retries handing a record to librdkafka while its queue is full, until
/// `deadline`.
async fn send_when_room<'a>(
    producer: &ThreadedProducer<ProducerCallbacks>,
    mut base: BaseRecord<'a, Vec<u8>, Vec<u8>, Box<Waiter>>,
    deadline: Instant,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(base) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if Instant::now() < deadline =>
            {
                base = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Whether a producer error is worth another attempt. Errors about the
/// message itself or permissions are not: they would fail again.
pub(crate) fn is_retriable(error: &KafkaError) -> bool {
    let code = match error {
        KafkaError::MessageProduction(code) => *code,
        KafkaError::Global(code) => *code,
        KafkaError::Nul(_) => return false,
        _ => return true,
    };
    !matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::BadMessage
            | RDKafkaErrorCode::UnknownTopic
    )
}

/// Whether the message failed only because its producer was purged or
/// destroyed (after a fatal error): send it again on the new producer.
pub(crate) fn is_purged(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::Canceled
            | KafkaError::MessageProduction(
                RDKafkaErrorCode::PurgeQueue
                    | RDKafkaErrorCode::PurgeInflight
                    | RDKafkaErrorCode::Fatal
            )
    )
}

/// A shared producer handle.
pub(crate) type SharedProducer = Arc<ProducerSlot>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe that `KafkaBus::connect` waits for returns only once an
    /// idempotent producer asked for its producer id, so that its first
    /// publish does not wait for librdkafka's half-second retry.
    #[test]
    fn the_probe_returns_once_the_producer_id_was_asked_for() {
        let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        let config = KafkaConfig {
            bootstrap_servers: cluster.bootstrap_servers(),
            ..KafkaConfig::default()
        };
        let slot = ProducerSlot::create(&client_config(&config), 0).expect("producer");
        slot.probe(Duration::from_secs(10))
            .expect("the mock broker answers");
        let producer = slot.producer().expect("a producer");
        assert!(
            !producer.context().pid_unrequested.load(Ordering::Acquire),
            "the probe returned before the producer asked for its id"
        );
    }
}
