//! The Kafka event bus, on rdkafka (librdkafka) and tokio.
//!
//! [`KafkaBus`] implements [`EventBus`]:
//!
//! - **Publishing** uses an idempotent producer with `acks=all` (both from
//!   [`KafkaConfig`]) and awaits every delivery report. A message's key is
//!   [`BusMessage::key`], its value the envelope JSON, its headers
//!   [`EventHeaders::to_pairs`](crate::EventHeaders::to_pairs). Publishes
//!   are futures that can run concurrently: thousands can be in flight.
//! - A failed delivery is retried with exponential backoff and jitter
//!   ([`KafkaConfig::retry_policy`]). A **circuit breaker**
//!   ([`KafkaConfig::circuit_breaker`]) counts failed deliveries; when it is
//!   open, [`KafkaBus::publish_now`] fails fast with
//!   [`BusError::CircuitOpen`] and [`EventBus::publish`] buffers instead.
//! - **Graceful degradation**: when the broker cannot be reached (at start,
//!   or when the breaker opens) the bus reports [`BusHealth::Degraded`] and
//!   keeps what it is asked to publish in a bounded buffer
//!   ([`KafkaConfig::publish_buffer_capacity`]); a background task delivers
//!   the buffer, in order, once the broker answers. A buffered message not
//!   delivered within [`KafkaConfig::timeout_seconds`] is moved to the
//!   undelivered list ([`KafkaBus::take_undelivered`]) and reported by
//!   [`EventBus::shutdown`]; a full buffer refuses with
//!   [`BusError::BufferFull`]. Nothing is dropped silently.
//! - A **fatal producer error** (an idempotent producer can get
//!   `UnknownProducerId` after a broker restart) makes the bus build a new
//!   producer and send again what failed.
//! - **Consumers** ([`EventBus::subscribe`]) join a consumer group and
//!   commit a message's offset only after its handler succeeded
//!   (at-least-once). A handler that keeps failing is retried per the retry
//!   policy, then the message goes to the dead-letter topic
//!   ([`KafkaBus::dead_letter_topic`]) with failure headers, and only then
//!   is its offset committed.
//! - [`EventBus::shutdown`] stops the consumers (committing what they
//!   handled), delivers the buffer and flushes the producer.
//!
//! ```no_run
//! # async fn demo() -> Result<(), onex::BusError> {
//! use onex::{EventBus, KafkaConfig, kafka::KafkaBus};
//!
//! let config = KafkaConfig::from_env()?;
//! let bus = KafkaBus::connect(config).await?;
//! // ... publish and subscribe ...
//! bus.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod batch;
mod consumer;
mod outage;
mod producer;

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use rdkafka::ClientConfig;
use tokio::sync::{Notify, oneshot, watch};

use crate::{
    bus::{
        BatchHandler, BatchOptions, BusHealth, BusMessage, Delivery, EventBus, Handler,
        Subscription, SubscriptionHandle,
    },
    circuit::{CircuitBreaker, CircuitState},
    config::KafkaConfig,
    consume::Handling,
    error::BusError,
    retry::RetryPolicy,
};

use crate::{
    request::kafka_replies::{Edge, edges},
    time::Rfc3339,
};
use outage::{Buffer, SpoolSlot, background};
use producer::{ProducerSlot, Record, RecordHeaders, SharedProducer};

/// Headers a dead-lettered message carries besides its original headers.
pub mod dlq_headers {
    /// The topic the message was consumed from.
    pub const ORIGINAL_TOPIC: &str = "original_topic";
    /// Its partition there.
    pub const ORIGINAL_PARTITION: &str = "original_partition";
    /// Its offset there.
    pub const ORIGINAL_OFFSET: &str = "original_offset";
    /// The last handler error's message.
    pub const FAILURE_REASON: &str = "failure_reason";
    /// When it was dead-lettered (RFC 3339, UTC).
    pub const FAILURE_TIMESTAMP: &str = "failure_timestamp";
    /// The message's correlation id (replaces the original header).
    pub const CORRELATION_ID: &str = "correlation_id";
    /// How many times the handler was retried after its first failure
    /// (replaces the original header).
    pub const RETRY_COUNT: &str = "retry_count";
    /// The handler error's kind ([`crate::HandlerError::kind`]), `panic`
    /// for a handler that panicked, or `decode_error` for a message that is
    /// not an envelope.
    pub const ERROR_TYPE: &str = "error_type";
}

/// Resends of one message after its producer was replaced, on top of the
/// retry policy's attempts.
const MAX_RESENDS: u32 = 8;

/// Counters of a [`KafkaBus`], for health pages and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaBusStats {
    /// Messages the broker acknowledged.
    pub delivered: u64,
    /// Messages held for the broker (spooled or buffered in memory).
    pub buffered: u64,
    /// Messages now waiting in the in-memory buffer (spool off).
    pub buffer_len: usize,
    /// Messages now waiting in the spool.
    pub spooled: usize,
    /// Messages moved to the undelivered list (not yet taken).
    pub undelivered: usize,
    /// Times the producer was rebuilt after a fatal error.
    pub producer_rebuilds: u64,
    /// Messages sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Errors the consumers met (each logged at WARN).
    pub consumer_errors: u64,
}

/// What a delivery attempt sequence ended with.
#[derive(Debug)]
enum SendError {
    /// The breaker refused the attempt.
    CircuitOpen,
    /// The broker did not take it; `retriable`: the broker (not the
    /// message) was at fault, so it may take it later.
    Failed {
        attempts: u32,
        reason: String,
        retriable: bool,
    },
}

/// The shared state of a [`KafkaBus`], also held by its background tasks.
struct Inner {
    config: KafkaConfig,
    client_config: ClientConfig,
    dead_letter_topic: String,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    producer: RwLock<SharedProducer>,
    next_generation: AtomicU64,
    degraded: AtomicBool,
    degraded_reason: Mutex<String>,
    /// The durable spool; `None` when it is turned off.
    spool: Option<Arc<SpoolSlot>>,
    /// The in-memory buffer, used when there is no spool.
    buffer: Mutex<Buffer>,
    /// Buffer entries (queued + sending); read on the hot path.
    buffer_len: AtomicUsize,
    /// Set by [`EventBus::expedite_shutdown`]: shutdown stops waiting.
    expedite: AtomicBool,
    expedited: Notify,
    wake: Notify,
    closing: AtomicBool,
    stopped: AtomicBool,
    /// Tells consumers and the background task to stop.
    shutdown: watch::Sender<bool>,
    consumers: Mutex<Vec<oneshot::Receiver<()>>>,
    delivered: AtomicU64,
    buffered_total: AtomicU64,
    rebuilds: AtomicU64,
    dead_lettered: AtomicU64,
    consumer_errors: AtomicU64,
}

/// The Kafka event bus. See the [module documentation](self).
pub struct KafkaBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("bootstrap_servers", &self.inner.config.bootstrap_servers)
            .field("environment", &self.inner.config.environment)
            .field("health", &self.inner.health())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data stays consistent across a panic in another holder.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How the bus's producer and consumers connect: quickly again once a
/// broker is back, and to a broker as soon as the metadata names it.
/// librdkafka 2.12 drops the bootstrap connection once the first metadata
/// answer names the cluster's brokers, and with sparse connections it then
/// waits half the reconnect back-off before connecting to one: every new
/// client spent about 25 ms idle at its start.
fn set_connection_settings(c: &mut ClientConfig) {
    c.set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("enable.sparse.connections", "false");
}

/// How long construction waits for the broker before starting degraded.
fn probe_timeout(config: &KafkaConfig) -> Duration {
    config.timeout().min(Duration::from_secs(3))
}

impl KafkaBus {
    /// Validates the configuration, opens the spool (delivering what an
    /// earlier run left in it first), creates the producer and asks the
    /// broker for metadata.
    ///
    /// An unreachable broker is not an error: the bus starts
    /// [`BusHealth::Degraded`], spools what is published and delivers it
    /// once the broker answers. Construction waits at most
    /// `min(timeout_seconds, 3 s)` for that answer.
    ///
    /// Errors: [`BusError::Config`] for an invalid configuration,
    /// [`BusError::Spool`] when the spool cannot be opened,
    /// [`BusError::Other`] when librdkafka rejects a setting.
    pub async fn connect(config: KafkaConfig) -> Result<Self, BusError> {
        config.validate()?;
        let client_config = producer::client_config(&config);
        let slot = Arc::new(
            ProducerSlot::create(&client_config, 0)
                .map_err(|e| BusError::Other(format!("cannot create the Kafka producer: {e}")))?,
        );
        let dead_letter_topic = config.qualified_dead_letter_topic();
        let spool = open_spool(&config).await?;
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            retry: config.retry_policy(),
            breaker: config.circuit_breaker(),
            spool,
            client_config,
            dead_letter_topic,
            producer: RwLock::new(Arc::clone(&slot)),
            next_generation: AtomicU64::new(1),
            degraded: AtomicBool::new(false),
            degraded_reason: Mutex::new(String::new()),
            buffer: Mutex::new(Buffer::default()),
            buffer_len: AtomicUsize::new(0),
            expedite: AtomicBool::new(false),
            expedited: Notify::new(),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            shutdown,
            consumers: Mutex::new(Vec::new()),
            delivered: AtomicU64::new(0),
            buffered_total: AtomicU64::new(0),
            rebuilds: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            consumer_errors: AtomicU64::new(0),
            config,
        });
        let timeout = probe_timeout(&inner.config);
        let probe = tokio::task::spawn_blocking(move || slot.probe(timeout)).await;
        match probe {
            Ok(Ok(())) => {}
            Ok(Err(e)) => inner.set_degraded(format!(
                "broker {} did not answer: {e}",
                inner.config.bootstrap_servers
            )),
            Err(e) => inner.set_degraded(format!("broker probe failed: {e}")),
        }
        if inner.is_degraded() {
            tracing::warn!(
                bootstrap_servers = %inner.config.bootstrap_servers,
                "Kafka broker unreachable; the bus starts degraded and {} publishes",
                if inner.spool.is_some() { "spools" } else { "buffers" }
            );
        }
        tokio::spawn(background(Arc::clone(&inner)));
        Ok(KafkaBus { inner })
    }

    /// The configuration the bus runs with.
    pub fn config(&self) -> &KafkaConfig {
        &self.inner.config
    }

    /// The dead-letter topic, [`KafkaConfig::qualified_dead_letter_topic`]:
    /// `{environment}.{dead_letter_topic}`.
    pub fn dead_letter_topic(&self) -> &str {
        &self.inner.dead_letter_topic
    }

    /// Publishes without the degraded-mode buffer: returns once the broker
    /// acknowledged the message, retrying per the policy; fails fast with
    /// [`BusError::CircuitOpen`] while the circuit breaker is open, and
    /// with [`BusError::Delivery`] when the retries are spent.
    pub async fn publish_now(&self, message: &BusMessage) -> Result<(), BusError> {
        self.inner.check_open()?;
        let record = record_of(message, self.inner.config.cloudevents);
        self.inner
            .deliver(&record)
            .await
            .map_err(|e| e.into_bus_error(&record.topic))
    }

    /// The circuit breaker's state.
    pub fn circuit_state(&self) -> CircuitState {
        self.inner.breaker.state()
    }

    /// Messages handed to librdkafka and not yet acknowledged or failed.
    pub fn in_flight(&self) -> usize {
        usize::try_from(self.inner.current_producer().in_flight()).unwrap_or(0)
    }

    /// Messages held for the broker: in the spool, or in memory when the
    /// spool is off.
    pub fn buffered(&self) -> usize {
        self.inner.held()
    }

    /// The spool file, when the spool is on.
    pub fn spool_path(&self) -> Option<&std::path::Path> {
        self.inner.spool.as_deref().map(SpoolSlot::path)
    }

    /// Takes the messages that could not be delivered within the timeout
    /// after they were buffered, oldest first, so the application can
    /// store, log or publish them again.
    pub fn take_undelivered(&self) -> Vec<Arc<BusMessage>> {
        std::mem::take(&mut lock(&self.inner.buffer).undelivered)
    }

    /// The bus's counters.
    pub fn stats(&self) -> KafkaBusStats {
        let i = &self.inner;
        let buffer = lock(&i.buffer);
        KafkaBusStats {
            delivered: i.delivered.load(Ordering::Relaxed),
            buffered: i.buffered_total.load(Ordering::Relaxed),
            buffer_len: buffer.waiting(),
            spooled: i.spool.as_deref().map_or(0, SpoolSlot::len),
            undelivered: buffer.undelivered.len(),
            producer_rebuilds: i.rebuilds.load(Ordering::Relaxed),
            dead_lettered: i.dead_lettered.load(Ordering::Relaxed),
            consumer_errors: i.consumer_errors.load(Ordering::Relaxed),
        }
    }

    /// Raises a fatal error in the current producer, as a broker restart
    /// can; the bus then rebuilds the producer and re-sends what failed.
    /// For tests of that recovery.
    #[doc(hidden)]
    pub fn inject_fatal_error(&self, reason: &str) {
        self.inner.current_producer().raise_fatal_error(reason);
    }

    /// Starts a consumer outside any group, assigned every partition of the
    /// subscription's topics at `edge`.
    async fn subscribe_at(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
        edge: Edge,
    ) -> Result<SubscriptionHandle, BusError> {
        self.inner.check_open()?;
        let at = edges(&self.inner.config, &subscription.topics, edge).await?;
        let handling = Handling::One(handler);
        self.consume(subscription, handling, consumer::Start::At(at))
            .await
    }

    /// Starts a consumer for a subscription, unless the bus is shut down.
    async fn consume(
        &self,
        subscription: Subscription,
        handling: Handling,
        start: consumer::Start,
    ) -> Result<SubscriptionHandle, BusError> {
        self.inner.check_open()?;
        consumer::subscribe(Arc::clone(&self.inner), subscription, handling, start).await
    }
}

/// Opens the spool the configuration asks for and says what an earlier run
/// left in it.
async fn open_spool(config: &KafkaConfig) -> Result<Option<Arc<SpoolSlot>>, BusError> {
    let Some(dir) = config.spool_path() else {
        return Ok(None);
    };
    let dir = dir.to_path_buf();
    let name = config.spool_file_name();
    let capacity = config.spool_capacity_bytes;
    let spool =
        tokio::task::spawn_blocking(move || crate::spool::Spool::open(&dir, &name, capacity))
            .await
            .map_err(|e| BusError::Other(format!("opening the spool: {e}")))??;
    if !spool.is_empty() {
        tracing::info!(
            spooled = spool.len(),
            spool = %spool.path().display(),
            "messages an earlier run could not deliver wait in the spool; they go out first"
        );
    }
    Ok(Some(Arc::new(SpoolSlot::new(spool))))
}

/// The record of a bus message: topic, key, envelope JSON and headers.
fn record_of(message: &BusMessage, cloudevents: bool) -> Record {
    let (headers, envelope) = (&message.headers, &message.envelope);
    // The headers' timestamp is the envelope's unless someone changed one
    // of them: rendered once for both `timestamp` and `ce_time`.
    let timestamp = Rfc3339::offset(&headers.timestamp);
    let mut out = RecordHeaders::with_capacity(18, 512);
    headers.each_pair(timestamp.as_str(), |name, value| out.push(name, &[value]));
    if cloudevents {
        let other;
        let time = if envelope.event_timestamp == headers.timestamp {
            &timestamp
        } else {
            other = Rfc3339::offset(&envelope.event_timestamp);
            &other
        };
        crate::cloudevents::each_header(envelope, time.as_str(), |name, parts| {
            out.push(name, parts)
        });
    }
    Record {
        topic: message.topic.clone(),
        key: Some(message.key.as_bytes().to_vec()),
        value: envelope.to_json(),
        headers: out,
    }
}

impl SendError {
    fn into_bus_error(self, topic: &str) -> BusError {
        match self {
            SendError::CircuitOpen => BusError::CircuitOpen {
                target: format!("Kafka topic `{topic}`"),
            },
            SendError::Failed {
                attempts, reason, ..
            } => BusError::Delivery {
                topic: topic.to_owned(),
                attempts,
                reason,
            },
        }
    }
}

impl Inner {
    fn check_open(&self) -> Result<(), BusError> {
        if self.closing.load(Ordering::Acquire) {
            Err(BusError::Shutdown)
        } else {
            Ok(())
        }
    }

    fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    fn set_degraded(&self, reason: String) {
        let mut r = lock(&self.degraded_reason);
        if !self.degraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(%reason, "Kafka bus degraded");
        }
        *r = reason;
    }

    fn clear_degraded(&self) {
        if self.degraded.load(Ordering::Acquire) {
            let _r = lock(&self.degraded_reason);
            if self.degraded.swap(false, Ordering::AcqRel) {
                tracing::info!("Kafka bus healthy again");
            }
        }
    }

    fn health(&self) -> BusHealth {
        if self.stopped.load(Ordering::Acquire) {
            BusHealth::Stopped
        } else if self.is_degraded() {
            BusHealth::Degraded {
                reason: lock(&self.degraded_reason).clone(),
            }
        } else {
            BusHealth::Healthy
        }
    }

    fn current_producer(&self) -> SharedProducer {
        Arc::clone(&self.producer.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the producer of `generation` (if it is still the current
    /// one) after a fatal error.
    fn rebuild_producer(&self, failed: &ProducerSlot) {
        let mut current = self.producer.write().unwrap_or_else(|e| e.into_inner());
        if current.generation != failed.generation {
            return; // Another task rebuilt it already.
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        match ProducerSlot::create(&self.client_config, generation) {
            Ok(slot) => {
                tracing::warn!(
                    reason = failed.fatal_reason(),
                    generation,
                    "rebuilt the Kafka producer; re-sending what failed"
                );
                let old = std::mem::replace(&mut *current, Arc::new(slot));
                self.rebuilds.fetch_add(1, Ordering::Relaxed);
                drop(current);
                // What waits in the old producer fails now (purged) and its
                // publishes send it again on the new one.
                let purged = std::thread::Builder::new()
                    .name("onex-producer-purge".to_owned())
                    .spawn(move || old.purge());
                if let Err(e) = purged {
                    tracing::warn!("could not purge the old producer: {e}");
                }
            }
            Err(e) => tracing::error!("cannot rebuild the Kafka producer: {e}"),
        }
    }

    /// A failed call to the broker was reported: when that opened the
    /// breaker, the bus is degraded.
    fn note_failure(&self, error: &str) {
        if self.breaker.state() == CircuitState::Open {
            self.set_degraded(format!(
                "circuit breaker open after {} consecutive failed deliveries; last: {error}",
                self.breaker.failures()
            ));
        }
    }

    /// A call to the broker succeeded: healthy again once nothing waits.
    fn note_success(&self) {
        if !self.holds_messages() {
            self.clear_degraded();
        }
    }

    /// Sends one record with the retry policy, the circuit breaker and
    /// producer rebuilds.
    async fn deliver(&self, record: &Record) -> Result<(), SendError> {
        let mut attempt = 0u32;
        let mut resends = 0u32;
        loop {
            // Reports the attempt's outcome; dropped with a cancelled
            // publish, it frees a half-open breaker's trial.
            let Some(permit) = self.breaker.permit() else {
                return Err(SendError::CircuitOpen);
            };
            // One attempt; re-sends after a producer rebuild belong to it.
            let result = loop {
                let slot = self.current_producer();
                let deadline = Instant::now() + self.config.timeout();
                match slot.send(record, deadline).await {
                    Ok(()) => break Ok(()),
                    Err(e) => {
                        let fatal = slot.is_fatal();
                        if fatal {
                            self.rebuild_producer(&slot);
                        }
                        if (fatal || producer::is_purged(&e)) && resends < MAX_RESENDS {
                            resends += 1;
                            continue;
                        }
                        break Err(e);
                    }
                }
            };
            match result {
                Ok(()) => {
                    self.delivered.fetch_add(1, Ordering::Relaxed);
                    permit.success();
                    self.note_success();
                    return Ok(());
                }
                Err(e) => {
                    let reason = e.to_string();
                    if !producer::is_retriable(&e) {
                        // The message itself is at fault; the broker
                        // answered.
                        permit.success();
                        return Err(SendError::Failed {
                            attempts: attempt + 1,
                            reason,
                            retriable: false,
                        });
                    }
                    permit.failure();
                    self.note_failure(&reason);
                    if attempt >= self.retry.max_retries {
                        return Err(SendError::Failed {
                            attempts: attempt + 1,
                            reason,
                            retriable: true,
                        });
                    }
                    tracing::debug!(topic = %record.topic, attempt, "delivery failed, retrying: {reason}");
                    // Boxed, as the retry is the rare path: keeps the future
                    // of every delivery small.
                    Box::pin(tokio::time::sleep(self.retry.delay(attempt))).await;
                    attempt += 1;
                }
            }
        }
    }
}

#[async_trait]
impl EventBus for KafkaBus {
    fn environment(&self) -> &str {
        &self.inner.config.environment
    }

    /// Publishes and awaits the broker's acknowledgement (`Acknowledged`).
    /// While the broker is unreachable (the bus is degraded, the breaker
    /// open, or the retries of this message spent on a broker error), or
    /// while older messages wait, the message joins them: in the spool
    /// (`Spooled`) or, with the spool off, in memory (`Buffered`).
    async fn publish(&self, message: Arc<BusMessage>) -> Result<Delivery, BusError> {
        let inner = &self.inner;
        inner.check_open()?;
        let record = record_of(&message, inner.config.cloudevents);
        if inner.is_degraded() || inner.holds_messages() {
            // Keep the order: behind what is held already.
            return inner.hold(message, record).await;
        }
        match inner.deliver(&record).await {
            Ok(()) => Ok(Delivery::Acknowledged),
            Err(
                SendError::CircuitOpen
                | SendError::Failed {
                    retriable: true, ..
                },
            ) => inner.hold(message, record).await,
            Err(e) => Err(e.into_bus_error(&record.topic)),
        }
    }

    /// Hands the whole batch to librdkafka and awaits its acknowledgements
    /// together; what the batch does not deliver goes through
    /// [`publish`](EventBus::publish). While the bus is degraded or holds
    /// messages, a publish each.
    async fn publish_many(
        &self,
        messages: Vec<Arc<BusMessage>>,
    ) -> Vec<Result<Delivery, BusError>> {
        self.publish_batch(messages).await
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<SubscriptionHandle, BusError> {
        let handling = Handling::One(handler);
        self.consume(subscription, handling, consumer::Start::InGroup)
            .await
    }

    async fn subscribe_batches(
        &self,
        subscription: Subscription,
        options: BatchOptions,
        handler: Arc<dyn BatchHandler>,
    ) -> Result<SubscriptionHandle, BusError> {
        let handling = Handling::Batches(handler, options);
        self.consume(subscription, handling, consumer::Start::InGroup)
            .await
    }

    /// Creates the missing topics and assigns the consumer every partition
    /// of them at its current end: no group to join.
    async fn subscribe_from_now(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<SubscriptionHandle, BusError> {
        self.subscribe_at(subscription, handler, Edge::End).await
    }

    /// Creates the missing topics and assigns the consumer every partition
    /// of them at the oldest message it keeps: no group to join.
    async fn subscribe_from_start(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<SubscriptionHandle, BusError> {
        self.subscribe_at(subscription, handler, Edge::Start).await
    }

    /// Creates the missing topics and commits, for the group, the current
    /// end of each partition it has no offset for, on a client of its own.
    async fn start_group_at_end(&self, group: &str, topics: &[String]) -> Result<(), BusError> {
        use crate::request::kafka_replies::{GroupStart, start_group_at_end};
        match start_group_at_end(&self.inner.config, group, topics).await? {
            GroupStart::Set => Ok(()),
            GroupStart::Running => Err(BusError::Other(format!(
                "group `{group}` has members already: it cannot be started at the end"
            ))),
        }
    }

    fn health(&self) -> BusHealth {
        self.inner.health()
    }

    fn dead_lettered(&self) -> Option<u64> {
        Some(self.inner.dead_lettered.load(Ordering::Relaxed))
    }

    /// Flushes the producer: librdkafka sends what lingers at once.
    async fn flush(&self) -> Result<(), BusError> {
        let inner = &self.inner;
        inner.check_open()?;
        let slot = inner.current_producer();
        let timeout = inner.config.timeout();
        tokio::task::spawn_blocking(move || slot.flush(timeout))
            .await
            .map_err(|e| BusError::Other(format!("flushing the Kafka producer: {e}")))?
            .map_err(|e| BusError::Other(format!("flushing the Kafka producer: {e}")))
    }

    /// Stops the consumers (each commits what it handled), delivers what
    /// is held (waiting up to the timeout), flushes the producer. What the
    /// broker did not take stays in the spool, durably, for the next start.
    /// Without a spool it is lost: [`BusError::Undelivered`] says how many,
    /// and [`KafkaBus::take_undelivered`] hands them back.
    async fn shutdown(&self) -> Result<(), BusError> {
        let inner = &self.inner;
        if inner.closing.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let timeout = inner.config.timeout();
        // 1. Consumers: they may still dead-letter through the producer.
        let _ = inner.shutdown.send(true);
        let consumers = std::mem::take(&mut *lock(&inner.consumers));
        if !consumers.is_empty() {
            tracing::info!(
                consumers = consumers.len(),
                "stopping the consumers: each finishes the message in hand and commits"
            );
        }
        for done in consumers {
            tokio::select! {
                stopped = tokio::time::timeout(timeout * 2, done) => if stopped.is_err() {
                    tracing::warn!("a Kafka consumer did not stop within the timeout");
                },
                _ = inner.expedited() => break,
            }
        }
        // 2. What is held: the background task stopped; deliver here.
        tokio::select! {
            _ = inner.deliver_held(timeout) => {}
            _ = inner.expedited() => {}
        }
        let lost = {
            inner.buffer_len.store(0, Ordering::Release);
            lock(&inner.buffer).give_up()
        };
        if let Some(spool) = &inner.spool
            && spool.len() > 0
        {
            tracing::warn!(
                spooled = spool.len(),
                spool = %spool.path().display(),
                "the broker did not take every message before shutdown; they stay in \
                 the spool and are delivered first at the next start"
            );
        }
        // 3. The producer: dropping it would purge its queue.
        let flush_timeout = if inner.expedite.load(Ordering::Acquire) {
            Duration::from_secs(1)
        } else {
            timeout
        };
        let slot = inner.current_producer();
        let flushed = tokio::task::spawn_blocking(move || {
            let r = slot.flush(flush_timeout);
            (r, slot.in_flight())
        })
        .await;
        inner.stopped.store(true, Ordering::Release);
        if lost > 0 {
            tracing::error!(
                count = lost,
                "messages held in memory (the spool is off) were not delivered"
            );
            return Err(BusError::Undelivered { count: lost });
        }
        match flushed {
            Ok((Ok(()), _)) => Ok(()),
            Ok((Err(e), in_flight)) => Err(BusError::Undelivered {
                count: usize::try_from(in_flight).unwrap_or(0).max(1),
            })
            .inspect_err(|_| tracing::error!("flushing the Kafka producer failed: {e}")),
            Err(e) => Err(BusError::Other(format!("flushing the Kafka producer: {e}"))),
        }
    }

    /// Makes a running [`EventBus::shutdown`] stop waiting: held messages
    /// stay in the spool at once.
    fn expedite_shutdown(&self) {
        self.inner.expedite.store(true, Ordering::Release);
        self.inner.expedited.notify_waiters();
    }
}

impl Drop for KafkaBus {
    fn drop(&mut self) {
        let inner = &self.inner;
        let _ = inner.shutdown.send(true);
        if inner.stopped.load(Ordering::Acquire) {
            return;
        }
        // Not shut down: at least hand librdkafka's queue to the broker
        // before the producer goes (dropping it would purge the queue).
        let slot = inner.current_producer();
        let buffered = inner.buffer_len.load(Ordering::Acquire);
        if buffered > 0 || slot.in_flight() > 0 {
            tracing::warn!(
                buffered,
                in_flight = slot.in_flight(),
                "KafkaBus dropped without shutdown(); flushing what is in flight"
            );
            let timeout = inner.config.timeout();
            let flush = move || {
                if let Err(e) = slot.flush(timeout) {
                    tracing::error!("flushing the Kafka producer on drop failed: {e}");
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(_) => {
                    let _ = std::thread::Builder::new()
                        .name("onex-producer-flush".to_owned())
                        .spawn(flush);
                }
                Err(_) => flush(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_settings_follow_the_config() {
        let config = KafkaConfig {
            linger_ms: 0,
            timeout_seconds: 7,
            ..KafkaConfig::default()
        };
        let c = producer::client_config(&config);
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("linger.ms"), Some("0"));
        assert_eq!(c.get("message.timeout.ms"), Some("7000"));
        // Connects to the brokers the first metadata answer names at once.
        assert_eq!(c.get("enable.sparse.connections"), Some("false"));
    }
}
