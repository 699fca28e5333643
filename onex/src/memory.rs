//! The in-memory event bus: the whole bus inside one process, for local
//! development, tests and single-process deployments.
//!
//! Guarantees:
//!
//! - **FIFO per subscriber.** Every subscriber has its own queue and a
//!   worker task that handles one message at a time, in publish order.
//! - **Fan-out and consumer groups.** Every consumer group subscribed to a
//!   topic gets each message; inside a group, each message goes to one
//!   member (round robin).
//! - **Publish returns once the message is queued** for every group. Queues
//!   are bounded softly by [`MemoryBusOptions::queue_capacity`]: a publisher
//!   waits while a subscriber's queue is full, except when it publishes from
//!   that subscriber's own handler (which would otherwise wait on itself).
//! - **Retries, circuit breaker, dead letters**, as on the Kafka bus. A
//!   failing (or panicking) handler is retried with the [`RetryPolicy`];
//!   when the retries are spent the message becomes a [`DeadLetter`], which
//!   is also published on the dead-letter topic
//!   ([`MemoryBusOptions::dead_letter_topic`], default
//!   `{environment}.dlq.v1`) with the failure fields in its metadata. After
//!   `circuit_breaker_threshold` consecutive dead-lettered messages the
//!   subscriber pauses for the reset timeout: its messages wait in its
//!   queue, none is dead-lettered because of the pause. The next message is
//!   the trial: handled, the breaker closes; dead-lettered, the subscriber
//!   pauses again. A subscription that stops ends its pause and handles
//!   what its queue holds.
//! - **Batch subscriptions** ([`EventBus::subscribe_batches`]) gather a
//!   subscriber's messages from the first of a batch for the window (or
//!   until the batch is full) and hand them over in order; a failing batch
//!   is retried whole, then each of its messages is dead-lettered.
//! - **Bounded history** of the most recent messages
//!   ([`MemoryBusOptions::history_capacity`], default 1,000; the oldest are
//!   dropped).
//! - **Shutdown drains**: [`EventBus::shutdown`] refuses new messages,
//!   delivers everything already queued, then returns. (Called from inside
//!   a handler it returns at once and the queues drain in the background.)
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), onex::BusError> {
//! use std::sync::Arc;
//! use onex::{EventBus, InMemoryBus, bus::{Subscription, handler_fn}};
//!
//! let bus = InMemoryBus::new("dev");
//! let _subscription = bus
//!     .subscribe(
//!         Subscription { topics: vec!["dev.orders.created.v1".into()], group: "audit".into() },
//!         handler_fn(|msg| async move {
//!             println!("{}", msg.envelope.event_type);
//!             Ok(())
//!         }),
//!     )
//!     .await?;
//! // ... publish ...
//! bus.shutdown().await?;
//! # Ok(())
//! # }
//! ```

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard, RwLock, Weak,
        atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::{
    bus::{
        BatchHandler, BatchOptions, BusHealth, BusMessage, Delivery, EventBus, Handler,
        HandlerError, StopSignal, Subscription, SubscriptionHandle,
    },
    config::KafkaConfig,
    consume::{Handling, SubscriberBreaker, Verdict, handle_batch, handle_message},
    error::BusError,
    retry::RetryPolicy,
};

/// The `error_type` of a message whose handler panicked.
pub const PANIC_ERROR_TYPE: &str = "panic";

/// Settings of an [`InMemoryBus`].
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryBusOptions {
    /// Messages kept in the history; the oldest are dropped (default
    /// 1,000; 0 keeps none).
    pub history_capacity: usize,
    /// Messages a subscriber's queue holds before publishers wait (default
    /// 10,000).
    pub queue_capacity: usize,
    /// Retries of a failing handler (default: 3 retries, 1 s base).
    pub retry: RetryPolicy,
    /// Consecutive failed messages (retries spent) that open a subscriber's breaker
    /// (default 5).
    pub circuit_breaker_threshold: u32,
    /// How long an open breaker pauses its subscriber before a trial
    /// (default 30 s).
    pub circuit_breaker_reset_timeout: Duration,
    /// Dead letters kept; the oldest are dropped (default 10,000).
    pub dead_letter_capacity: usize,
    /// The full topic every dead letter is also published on, with its
    /// failure fields (`original_topic`, `failure_reason`, `error_type`,
    /// `retry_count`, `failure_timestamp`, `correlation_id`, as in the Kafka
    /// bus's dead-letter headers) in the envelope's metadata and
    /// `retry_count` in its headers. `None` (the default) means
    /// `{environment}.dlq.v1`, the Kafka bus's default.
    pub dead_letter_topic: Option<String>,
    /// Most messages one subscriber handles at once (default 1): messages
    /// of one key (`BusMessage::key`) one after the other, in order,
    /// messages of different keys side by side, as on the Kafka bus
    /// (`KAFKA_MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
}

impl Default for MemoryBusOptions {
    fn default() -> Self {
        MemoryBusOptions {
            history_capacity: 1_000,
            queue_capacity: 10_000,
            retry: RetryPolicy::default(),
            circuit_breaker_threshold: 5,
            circuit_breaker_reset_timeout: Duration::from_secs(30),
            dead_letter_capacity: 10_000,
            dead_letter_topic: None,
            max_in_flight: 1,
        }
    }
}

impl MemoryBusOptions {
    /// Options taking retries, breaker and dead-letter topic from a Kafka
    /// configuration, so that a node behaves alike on both buses.
    pub fn from_kafka_config(config: &KafkaConfig) -> Self {
        MemoryBusOptions {
            retry: config.retry_policy(),
            circuit_breaker_threshold: config.circuit_breaker_threshold,
            circuit_breaker_reset_timeout: config.circuit_breaker_reset(),
            dead_letter_topic: Some(config.qualified_dead_letter_topic()),
            max_in_flight: config.max_in_flight,
            ..MemoryBusOptions::default()
        }
    }
}

/// Builds an [`InMemoryBus`]; see [`InMemoryBus::builder`].
#[derive(Debug, Clone)]
pub struct InMemoryBusBuilder {
    environment: String,
    options: MemoryBusOptions,
}

impl InMemoryBusBuilder {
    /// Messages kept in the history (default 1,000).
    pub fn history_capacity(mut self, capacity: usize) -> Self {
        self.options.history_capacity = capacity;
        self
    }

    /// Messages a subscriber's queue holds before publishers wait (default
    /// 10,000; at least 1).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.options.queue_capacity = capacity;
        self
    }

    /// The retry policy for failing handlers.
    ///
    /// ```
    /// use std::time::Duration;
    /// let bus = onex::InMemoryBus::builder("test")
    ///     .retry_policy(onex::retry::RetryPolicy::new(2, Duration::from_millis(5)))
    ///     .build();
    /// # let _ = bus;
    /// ```
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.options.retry = retry;
        self
    }

    /// The circuit breaker of every subscriber: pauses it after `threshold`
    /// consecutive dead-lettered messages, tries again after
    /// `reset_timeout`.
    pub fn circuit_breaker(mut self, threshold: u32, reset_timeout: Duration) -> Self {
        self.options.circuit_breaker_threshold = threshold;
        self.options.circuit_breaker_reset_timeout = reset_timeout;
        self
    }

    /// Dead letters kept (default 10,000).
    pub fn dead_letter_capacity(mut self, capacity: usize) -> Self {
        self.options.dead_letter_capacity = capacity;
        self
    }

    /// Publish every dead letter on this full topic (default
    /// `{environment}.dlq.v1`).
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.options.dead_letter_topic = Some(topic.into());
        self
    }

    /// Replaces all options at once.
    pub fn options(mut self, options: MemoryBusOptions) -> Self {
        self.options = options;
        self
    }

    /// The bus.
    pub fn build(self) -> InMemoryBus {
        InMemoryBus::with_options(self.environment, self.options)
    }
}

/// A message whose handler failed (or panicked) after all retries.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The message as it was published.
    pub message: BusMessage,
    /// The topic it was published on.
    pub original_topic: String,
    /// The consumer group of the subscriber that failed.
    pub group: String,
    /// Why it failed (the handler's message).
    pub failure_reason: String,
    /// The handler error's kind, or [`PANIC_ERROR_TYPE`].
    pub error_type: String,
    /// Retries made after the first attempt.
    pub retry_count: u32,
    /// When the message was given up.
    pub failure_timestamp: DateTime<Utc>,
    /// The message's correlation id.
    pub correlation_id: Uuid,
}

const RUNNING: u8 = 0;
const STOPPED: u8 = 1;

tokio::task_local! {
    /// The id of the subscriber whose worker runs the current task.
    static CURRENT_SUBSCRIBER: u64;
}

/// Counters shared by the bus and its workers.
#[derive(Debug)]
struct Core {
    options: MemoryBusOptions,
    /// Where dead letters are published.
    dead_letter_topic: String,
    dead_letters: Mutex<VecDeque<DeadLetter>>,
    /// Every message dead-lettered since the bus started (the list above
    /// is bounded; this count is not).
    dead_lettered: AtomicU64,
    /// Messages queued or being handled, over all subscribers.
    pending: AtomicUsize,
    idle_waiters: AtomicUsize,
    idle: Notify,
    /// Worker tasks still running.
    live_workers: AtomicUsize,
    workers_done: Notify,
}

impl Core {
    fn record_dead_letter(&self, letter: DeadLetter) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            topic = %letter.original_topic,
            group = %letter.group,
            error_type = %letter.error_type,
            retry_count = letter.retry_count,
            correlation_id = %letter.correlation_id,
            reason = %letter.failure_reason,
            "message dead-lettered"
        );
        let capacity = self.options.dead_letter_capacity;
        if capacity == 0 {
            return;
        }
        let mut list = lock(&self.dead_letters);
        if list.len() >= capacity
            && let Some(oldest) = list.pop_front()
        {
            tracing::warn!(
                capacity,
                topic = %oldest.original_topic,
                correlation_id = %oldest.correlation_id,
                "dead-letter list full; oldest dead letter dropped from it"
            );
        }
        list.push_back(letter);
    }

    fn message_done(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1
            && self.idle_waiters.load(Ordering::SeqCst) > 0
        {
            self.idle.notify_waiters();
        }
    }
}

/// The part of a subscriber's queue its worker shares with publishers.
#[derive(Debug)]
struct QueueState {
    id: u64,
    len: AtomicUsize,
    space_waiters: AtomicUsize,
    space: Notify,
}

/// A subscriber's queue as publishers see it. Dropping every copy closes
/// the queue; the worker then ends after draining it.
#[derive(Debug)]
struct Queue {
    tx: mpsc::UnboundedSender<Arc<BusMessage>>,
    state: Arc<QueueState>,
}

impl Queue {
    async fn push(&self, core: &Core, message: Arc<BusMessage>) {
        let state = &*self.state;
        let capacity = core.options.queue_capacity.max(1);
        if state.len.load(Ordering::SeqCst) >= capacity && !is_current_subscriber(state.id) {
            let _waiting = Waiting::new(&state.space_waiters);
            loop {
                let notified = state.space.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if state.len.load(Ordering::SeqCst) < capacity {
                    break;
                }
                notified.await;
            }
        }
        state.len.fetch_add(1, Ordering::SeqCst);
        core.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(message).is_err() {
            // The worker is gone (its runtime is shutting down).
            state.len.fetch_sub(1, Ordering::SeqCst);
            core.message_done();
        }
    }
}

/// Counts a waiter for as long as it lives, also when its future is
/// dropped while waiting.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn is_current_subscriber(id: u64) -> bool {
    CURRENT_SUBSCRIBER
        .try_with(|current| *current == id)
        .unwrap_or(false)
}

/// The members of one consumer group on one topic.
#[derive(Debug)]
struct GroupRoute {
    members: Vec<Arc<Queue>>,
    next: AtomicUsize,
}

impl GroupRoute {
    fn pick(&self) -> &Arc<Queue> {
        let i = if self.members.len() == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % self.members.len()
        };
        &self.members[i]
    }
}

/// Topic -> the groups subscribed to it. Rebuilt on (un)subscribe;
/// publishers take a snapshot.
type Routes = HashMap<String, Vec<GroupRoute>, foldhash::fast::RandomState>;

/// A group's name and members, while routes are rebuilt.
type NamedGroup<'a> = (&'a str, Vec<Arc<Queue>>);

#[derive(Debug)]
struct Registration {
    id: u64,
    subscription: Subscription,
    queue: Arc<Queue>,
}

#[derive(Debug)]
struct Inner {
    environment: String,
    core: Arc<Core>,
    state: AtomicU8,
    next_id: AtomicU64,
    history: Mutex<VecDeque<Arc<BusMessage>>>,
    registry: Mutex<Vec<Registration>>,
    routes: RwLock<Arc<Routes>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here can be left half-updated by a panic, so a poisoned lock
    // is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn routes(&self) -> Arc<Routes> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Rebuilds the routing table from the registry. Groups keep the order
    /// in which they first subscribed.
    fn rebuild_routes(&self, registry: &[Registration]) {
        let mut named: HashMap<&str, Vec<NamedGroup<'_>>> = HashMap::new();
        for reg in registry {
            for topic in &reg.subscription.topics {
                let groups = named.entry(topic.as_str()).or_default();
                match groups
                    .iter_mut()
                    .find(|(g, _)| *g == reg.subscription.group.as_str())
                {
                    Some((_, members)) => {
                        if !members.iter().any(|q| q.state.id == reg.id) {
                            members.push(reg.queue.clone());
                        }
                    }
                    None => groups.push((reg.subscription.group.as_str(), vec![reg.queue.clone()])),
                }
            }
        }
        let routes: Routes = named
            .into_iter()
            .map(|(topic, groups)| {
                let groups = groups
                    .into_iter()
                    .map(|(_, members)| GroupRoute {
                        members,
                        next: AtomicUsize::new(0),
                    })
                    .collect();
                (topic.to_owned(), groups)
            })
            .collect();
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(routes);
    }

    fn unregister(&self, id: u64) {
        let mut registry = lock(&self.registry);
        registry.retain(|r| r.id != id);
        self.rebuild_routes(&registry);
    }

    async fn publish_arc(&self, message: Arc<BusMessage>) -> Result<(), BusError> {
        if self.state.load(Ordering::SeqCst) != RUNNING {
            return Err(BusError::Shutdown);
        }
        let capacity = self.core.options.history_capacity;
        if capacity > 0 {
            let mut history = lock(&self.history);
            if history.len() >= capacity {
                history.pop_front();
            }
            history.push_back(message.clone());
        }
        let routes = self.routes();
        if let Some(groups) = routes.get(&message.topic) {
            for group in groups {
                group.pick().push(&self.core, message.clone()).await;
            }
        }
        Ok(())
    }
}

/// The in-memory event bus. Cheap to clone: clones share one bus.
#[derive(Debug, Clone)]
pub struct InMemoryBus {
    inner: Arc<Inner>,
}

impl InMemoryBus {
    /// A bus for an environment (the topic namespace) with default options.
    pub fn new(environment: impl Into<String>) -> Self {
        Self::with_options(environment, MemoryBusOptions::default())
    }

    /// A builder for a bus with non-default options.
    pub fn builder(environment: impl Into<String>) -> InMemoryBusBuilder {
        InMemoryBusBuilder {
            environment: environment.into(),
            options: MemoryBusOptions::default(),
        }
    }

    /// A bus with the given options.
    pub fn with_options(environment: impl Into<String>, options: MemoryBusOptions) -> Self {
        let environment = environment.into();
        let history = VecDeque::with_capacity(options.history_capacity.min(65_536));
        let dead_letter_topic = options.dead_letter_topic.clone().unwrap_or_else(|| {
            KafkaConfig {
                environment: environment.clone(),
                ..KafkaConfig::default()
            }
            .qualified_dead_letter_topic()
        });
        InMemoryBus {
            inner: Arc::new(Inner {
                environment,
                core: Arc::new(Core {
                    options,
                    dead_letter_topic,
                    dead_letters: Mutex::new(VecDeque::new()),
                    dead_lettered: AtomicU64::new(0),
                    pending: AtomicUsize::new(0),
                    idle_waiters: AtomicUsize::new(0),
                    idle: Notify::new(),
                    live_workers: AtomicUsize::new(0),
                    workers_done: Notify::new(),
                }),
                state: AtomicU8::new(RUNNING),
                next_id: AtomicU64::new(1),
                history: Mutex::new(history),
                registry: Mutex::new(Vec::new()),
                routes: RwLock::new(Arc::new(Routes::default())),
            }),
        }
    }

    /// The bus's options.
    pub fn options(&self) -> &MemoryBusOptions {
        &self.inner.core.options
    }

    /// The most recent published messages, oldest first.
    pub fn history(&self) -> Vec<BusMessage> {
        lock(&self.inner.history)
            .iter()
            .map(|m| BusMessage::clone(m))
            .collect()
    }

    /// The most recent messages published on `topic` (a full topic),
    /// oldest first.
    pub fn history_for(&self, topic: &str) -> Vec<BusMessage> {
        lock(&self.inner.history)
            .iter()
            .filter(|m| m.topic == topic)
            .map(|m| BusMessage::clone(m))
            .collect()
    }

    /// How many messages the history holds.
    pub fn history_len(&self) -> usize {
        lock(&self.inner.history).len()
    }

    /// Empties the history.
    pub fn clear_history(&self) {
        lock(&self.inner.history).clear();
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.inner.core.dead_letters)
            .iter()
            .cloned()
            .collect()
    }

    /// Empties the dead-letter list and returns what it held.
    pub fn take_dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.inner.core.dead_letters).drain(..).collect()
    }

    /// Running subscribers of a full topic, over all groups.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        lock(&self.inner.registry)
            .iter()
            .filter(|r| r.subscription.topics.iter().any(|t| t == topic))
            .count()
    }

    /// Messages queued or being handled, over all subscribers.
    pub fn pending(&self) -> usize {
        self.inner.core.pending.load(Ordering::SeqCst)
    }

    /// Waits until every queued message has been handled (or
    /// dead-lettered), including messages that handlers publish meanwhile.
    pub async fn wait_until_idle(&self) {
        let core = &self.inner.core;
        let _waiting = Waiting::new(&core.idle_waiters);
        loop {
            let notified = core.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if core.pending.load(Ordering::SeqCst) == 0 {
                break;
            }
            notified.await;
        }
    }
}

#[async_trait]
impl EventBus for InMemoryBus {
    fn environment(&self) -> &str {
        &self.inner.environment
    }

    /// Queues the message for every subscribed group: `Acknowledged`.
    async fn publish(&self, message: Arc<BusMessage>) -> Result<Delivery, BusError> {
        self.inner.publish_arc(message).await?;
        Ok(Delivery::Acknowledged)
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<SubscriptionHandle, BusError> {
        self.register(subscription, Handling::One(handler))
    }

    /// Gathers each batch from the subscriber's queue: from its first
    /// message for the window, or until it is full. A stopping subscription
    /// hands over what it gathered plus what its queue holds. Messages are
    /// removed from the bus once their batch is handled or dead-lettered.
    async fn subscribe_batches(
        &self,
        subscription: Subscription,
        options: BatchOptions,
        handler: Arc<dyn BatchHandler>,
    ) -> Result<SubscriptionHandle, BusError> {
        self.register(subscription, Handling::Batches(handler, options))
    }

    fn dead_lettered(&self) -> Option<u64> {
        Some(self.inner.core.dead_lettered.load(Ordering::Relaxed))
    }

    fn health(&self) -> BusHealth {
        match self.inner.state.load(Ordering::SeqCst) {
            RUNNING => BusHealth::Healthy,
            _ => BusHealth::Stopped,
        }
    }

    async fn shutdown(&self) -> Result<(), BusError> {
        self.shutdown_now().await
    }
}

impl InMemoryBus {
    /// Adds a subscriber and starts its worker.
    fn register(
        &self,
        subscription: Subscription,
        handling: Handling,
    ) -> Result<SubscriptionHandle, BusError> {
        if subscription.topics.is_empty() {
            return Err(BusError::Other(format!(
                "subscription of group `{}` names no topic",
                subscription.group
            )));
        }
        let inner = &self.inner;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        if inner.state.load(Ordering::SeqCst) != RUNNING {
            return Err(BusError::Shutdown);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        inner.core.live_workers.fetch_add(1, Ordering::SeqCst);
        let state = Arc::new(QueueState {
            id,
            len: AtomicUsize::new(0),
            space_waiters: AtomicUsize::new(0),
            space: Notify::new(),
        });
        let worker = Worker {
            _live: LiveGuard(inner.core.clone()),
            id,
            group: subscription.group.clone(),
            core: inner.core.clone(),
            bus: Arc::downgrade(inner),
            queue: state.clone(),
            breaker: SubscriberBreaker::new(
                inner.core.options.circuit_breaker_threshold,
                inner.core.options.circuit_breaker_reset_timeout,
                &subscription.group,
            ),
            handling,
        };
        {
            let mut registry = lock(&inner.registry);
            // Checked under the registry lock, which shutdown also takes:
            // no subscriber can register after shutdown emptied it.
            if inner.state.load(Ordering::SeqCst) != RUNNING {
                return Err(BusError::Shutdown);
            }
            registry.push(Registration {
                id,
                subscription,
                queue: Arc::new(Queue { tx, state }),
            });
            inner.rebuild_routes(&registry);
        }
        Ok(SubscriptionHandle::spawn(move |stop| {
            CURRENT_SUBSCRIBER.scope(id, worker.run(rx, stop))
        }))
    }

    async fn shutdown_now(&self) -> Result<(), BusError> {
        let inner = &self.inner;
        {
            let mut registry = lock(&inner.registry);
            inner.state.store(STOPPED, Ordering::SeqCst);
            registry.clear();
            inner.rebuild_routes(&registry);
        }
        // Called from a handler, waiting for the workers would wait on this
        // very worker: the queues are closed and drain on their own.
        if CURRENT_SUBSCRIBER.try_with(|_| ()).is_ok() {
            return Ok(());
        }
        // With every queue closed, each worker ends once it has handled
        // what its queue holds.
        let core = &inner.core;
        loop {
            let notified = core.workers_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if core.live_workers.load(Ordering::SeqCst) == 0 {
                break;
            }
            notified.await;
        }
        Ok(())
    }
}

/// Counts a worker as live until dropped.
struct LiveGuard(Arc<Core>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.live_workers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.workers_done.notify_waiters();
        }
    }
}

/// One subscriber's worker: handles its queue in order.
struct Worker {
    /// Created before the task is spawned, so that a task dropped unpolled
    /// still counts itself out.
    _live: LiveGuard,
    id: u64,
    group: String,
    core: Arc<Core>,
    bus: Weak<Inner>,
    queue: Arc<QueueState>,
    handling: Handling,
    breaker: SubscriberBreaker,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Arc<BusMessage>>, mut stop: StopSignal) {
        let mut stopping = false;
        loop {
            if let (false, Some(pause)) = (stopping, self.breaker.pause_left()) {
                // The breaker is open: take nothing from the queue until the
                // pause is over (or the subscription stops).
                tokio::select! {
                    biased;
                    () = stop.stopped() => {
                        stopping = true;
                        if let Some(bus) = self.bus.upgrade() {
                            bus.unregister(self.id);
                        }
                    }
                    () = tokio::time::sleep(pause) => {}
                }
                continue;
            }
            let next = if stopping {
                rx.recv().await
            } else if !stop.is_stopped()
                && let Ok(message) = rx.try_recv()
            {
                // A message is queued: taken without arming the stop's
                // watch, which cost as much as the delivery.
                Some(message)
            } else {
                tokio::select! {
                    biased;
                    () = stop.stopped() => {
                        // Leave the routing table; what is already queued is
                        // still handled, then the closed queue ends the loop.
                        stopping = true;
                        if let Some(bus) = self.bus.upgrade() {
                            bus.unregister(self.id);
                        }
                        continue;
                    }
                    next = rx.recv() => next,
                }
            };
            let Some(message) = next else { break };
            match self.handling.clone() {
                Handling::One(handler) if self.core.options.max_in_flight > 1 => {
                    let limit = self.core.options.max_in_flight;
                    self.run_concurrently(&*handler, message, &mut rx, &mut stop, stopping, limit)
                        .await;
                    break;
                }
                Handling::One(handler) => {
                    self.deliver(&*handler, &message).await;
                    self.done(1);
                }
                Handling::Batches(handler, options) => {
                    let batch = self
                        .gather(message, options, &mut rx, &mut stop, &mut stopping)
                        .await;
                    self.deliver_batch(&*handler, &batch).await;
                    self.done(batch.len());
                }
            }
        }
    }

    /// Takes `n` handled messages off the queue's count.
    fn done(&self, n: usize) {
        for _ in 0..n {
            if self.queue.len.fetch_sub(1, Ordering::SeqCst)
                <= self.core.options.queue_capacity.max(1)
                && self.queue.space_waiters.load(Ordering::SeqCst) > 0
            {
                self.queue.space.notify_waiters();
            }
            self.core.message_done();
        }
    }

    /// A batch from its first message: what arrives within the window, up
    /// to the batch size. Once stopping, what is queued and no more.
    async fn gather(
        &self,
        first: Arc<BusMessage>,
        options: BatchOptions,
        rx: &mut mpsc::UnboundedReceiver<Arc<BusMessage>>,
        stop: &mut StopSignal,
        stopping: &mut bool,
    ) -> Vec<BusMessage> {
        let max = options.max_messages.max(1);
        let mut batch = vec![BusMessage::clone(&first)];
        let deadline = tokio::time::Instant::now() + options.window;
        while batch.len() < max {
            let next = if *stopping {
                rx.try_recv().ok()
            } else {
                tokio::select! {
                    biased;
                    next = rx.recv() => next,
                    () = tokio::time::sleep_until(deadline) => None,
                    () = stop.stopped() => {
                        *stopping = true;
                        if let Some(bus) = self.bus.upgrade() {
                            bus.unregister(self.id);
                        }
                        continue;
                    }
                }
            };
            match next {
                Some(message) => batch.push(BusMessage::clone(&message)),
                None => break,
            }
        }
        batch
    }

    async fn deliver_batch(&mut self, handler: &dyn BatchHandler, batch: &[BusMessage]) {
        // No redelivery here either: a stopping subscriber finishes its
        // retries.
        let verdict = handle_batch(
            handler,
            batch,
            &self.core.options.retry,
            std::future::pending(),
        )
        .await;
        if let Verdict::DeadLetter { error, retries } = &verdict {
            for message in batch {
                self.dead_letter(message, error.clone(), *retries).await;
            }
        }
        self.breaker.record(&verdict);
    }

    async fn deliver(&mut self, handler: &dyn Handler, message: &BusMessage) {
        let verdict = self.handle(handler, message).await;
        self.breaker.record(&verdict);
    }

    /// Hands a message to the handler with retries and dead-letters it when
    /// they are spent; the verdict is for the subscriber's breaker.
    async fn handle(&self, handler: &dyn Handler, message: &BusMessage) -> Verdict {
        // The in-memory bus has no redelivery: a stopping subscriber
        // finishes its retries instead of abandoning the message.
        let verdict = handle_message(
            handler,
            message,
            &self.core.options.retry,
            std::future::pending(),
        )
        .await;
        if let Verdict::DeadLetter { error, retries } = &verdict {
            self.dead_letter(message, error.clone(), *retries).await;
        }
        verdict
    }

    /// The rest of [`Worker::run`] with up to `limit` messages in hand at
    /// once, from `first`: messages of one key one after the other, in
    /// order; others side by side. Ends when the queue is closed and
    /// everything taken is done.
    async fn run_concurrently(
        &mut self,
        handler: &dyn Handler,
        first: Arc<BusMessage>,
        rx: &mut mpsc::UnboundedReceiver<Arc<BusMessage>>,
        stop: &mut StopSignal,
        mut stopping: bool,
        limit: usize,
    ) {
        // The worker ends with this loop: its breaker moves in, shared by
        // the messages in hand.
        let breaker = Mutex::new(std::mem::replace(
            &mut self.breaker,
            SubscriberBreaker::new(1, Duration::ZERO, &self.group),
        ));
        let this = &*self;
        let mut busy: HashSet<crate::Text> = HashSet::new();
        let mut waiting: VecDeque<Arc<BusMessage>> = VecDeque::from([first]);
        let mut running = FuturesUnordered::new();
        let mut closed = false;
        loop {
            let pause = lock(&breaker).pause_left();
            if pause.is_none() {
                while running.len() < limit {
                    let Some(index) = waiting.iter().position(|m| !busy.contains(&m.key)) else {
                        break;
                    };
                    let Some(message) = waiting.remove(index) else {
                        break;
                    };
                    busy.insert(message.key.clone());
                    let breaker = &breaker;
                    running.push(async move {
                        let verdict = this.handle(handler, &message).await;
                        lock(breaker).record(&verdict);
                        message
                    });
                }
            }
            if closed && running.is_empty() && waiting.is_empty() {
                break;
            }
            let full = running.len() + waiting.len() >= limit;
            tokio::select! {
                biased;
                Some(message) = running.next(), if !running.is_empty() => {
                    busy.remove(&message.key);
                    this.done(1);
                }
                () = stop.stopped(), if !stopping => {
                    // Leave the routing table; what is queued is still
                    // handled, then the closed queue ends the loop.
                    stopping = true;
                    if let Some(bus) = this.bus.upgrade() {
                        bus.unregister(this.id);
                    }
                }
                next = rx.recv(), if !full && !closed => match next {
                    Some(message) => waiting.push_back(message),
                    None => closed = true,
                },
                () = tokio::time::sleep(pause.unwrap_or_default()), if pause.is_some() => {}
            }
        }
    }

    async fn dead_letter(&self, message: &BusMessage, error: HandlerError, retry_count: u32) {
        let letter = DeadLetter {
            message: message.clone(),
            original_topic: message.topic.clone(),
            group: self.group.clone(),
            failure_reason: error.message,
            error_type: error.kind,
            retry_count,
            failure_timestamp: Utc::now(),
            correlation_id: message.correlation_id(),
        };
        let forward = dead_letter_message(&self.core.dead_letter_topic, &letter);
        self.core.record_dead_letter(letter);
        // Best effort: a failed forward (the bus shut down) is logged only;
        // the dead letter stays in the list.
        if let Some(bus) = self.bus.upgrade()
            && let Err(e) = bus.publish_arc(Arc::new(forward)).await
        {
            tracing::warn!(error = %e, "could not publish a dead letter");
        }
    }
}

/// The message forwarded to the dead-letter topic: the original envelope
/// with the failure metadata added to its metadata and headers.
fn dead_letter_message(topic: &str, letter: &DeadLetter) -> BusMessage {
    let mut message = letter.message.clone();
    message.topic = topic.to_owned();
    message.headers.retry_count = letter.retry_count;
    let meta = &mut message.envelope.metadata;
    meta.insert(
        "original_topic".into(),
        letter.original_topic.clone().into(),
    );
    meta.insert(
        "failure_reason".into(),
        letter.failure_reason.clone().into(),
    );
    meta.insert("error_type".into(), letter.error_type.clone().into());
    meta.insert("retry_count".into(), letter.retry_count.into());
    meta.insert(
        "failure_timestamp".into(),
        letter.failure_timestamp.to_rfc3339().into(),
    );
    meta.insert(
        "correlation_id".into(),
        letter.correlation_id.to_string().into(),
    );
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{envelope::SourceInfo, event::MessageCategory};

    fn message(topic: &str) -> BusMessage {
        let envelope = crate::envelope::OnexEnvelopeV1 {
            envelope_version: "1.0".into(),
            event_id: Uuid::new_v4(),
            event_type: "test.thing".into(),
            event_version: "1.0".into(),
            event_timestamp: Utc::now(),
            source_node_id: SourceInfo::new("svc", "1.0.0", "dev")
                .node_id
                .to_string()
                .into(),
            source_service: "svc".into(),
            source_version: "1.0.0".into(),
            correlation_id: Some(Uuid::new_v4()),
            environment: "dev".into(),
            payload: serde_json::value::to_raw_value(&serde_json::json!({"n": 1}))
                .expect("a payload"),
            metadata: Default::default(),
        };
        BusMessage::new(topic.into(), envelope, MessageCategory::Event)
    }

    #[test]
    fn dead_letter_copies_carry_the_failure_metadata() {
        let original = message("dev.svc.test.thing.v1");
        let letter = DeadLetter {
            message: original.clone(),
            original_topic: original.topic.clone(),
            group: "g".into(),
            failure_reason: "no database".into(),
            error_type: "db".into(),
            retry_count: 3,
            failure_timestamp: Utc::now(),
            correlation_id: original.correlation_id(),
        };
        let copy = dead_letter_message("dev.dlq", &letter);
        assert_eq!(copy.topic, "dev.dlq");
        assert_eq!(copy.key, original.key, "same partition key");
        assert_eq!(copy.envelope.event_id, original.envelope.event_id);
        assert_eq!(copy.headers.retry_count, 3);
        let meta = &copy.envelope.metadata;
        assert_eq!(meta["original_topic"], "dev.svc.test.thing.v1");
        assert_eq!(meta["failure_reason"], "no database");
        assert_eq!(meta["error_type"], "db");
        assert_eq!(meta["retry_count"], 3);
        assert_eq!(
            meta["correlation_id"],
            original.correlation_id().to_string().as_str()
        );
        assert!(meta.contains_key("failure_timestamp"));
    }

    #[test]
    fn group_members_take_turns() {
        let queues: Vec<Arc<Queue>> = (0..3)
            .map(|id| {
                Arc::new(Queue {
                    tx: mpsc::unbounded_channel().0,
                    state: Arc::new(QueueState {
                        id,
                        len: AtomicUsize::new(0),
                        space_waiters: AtomicUsize::new(0),
                        space: Notify::new(),
                    }),
                })
            })
            .collect();
        let route = GroupRoute {
            members: queues,
            next: AtomicUsize::new(0),
        };
        let picks: Vec<u64> = (0..7).map(|_| route.pick().state.id).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn options_follow_a_kafka_config() {
        let config = KafkaConfig {
            max_retry_attempts: 7,
            circuit_breaker_threshold: 9,
            circuit_breaker_reset_timeout: 12.0,
            dead_letter_topic: "x.dlq".into(),
            ..KafkaConfig::default()
        };
        let o = MemoryBusOptions::from_kafka_config(&config);
        assert_eq!(o.retry.max_retries, 7);
        assert_eq!(o.circuit_breaker_threshold, 9);
        assert_eq!(o.circuit_breaker_reset_timeout, Duration::from_secs(12));
        assert_eq!(o.dead_letter_topic.as_deref(), Some("local.x.dlq"));
        assert_eq!(o.history_capacity, 1_000);
    }

    #[tokio::test]
    async fn routes_follow_subscriptions() {
        let bus = InMemoryBus::new("dev");
        let handler = crate::bus::handler_fn(|_m| async { Ok(()) });
        let both = Subscription {
            topics: vec!["a".into(), "b".into(), "a".into()],
            group: "g".into(),
        };
        let h1 = bus.subscribe(both, handler.clone()).await.unwrap();
        let h2 = bus
            .subscribe(
                Subscription {
                    topics: vec!["a".into()],
                    group: "g".into(),
                },
                handler,
            )
            .await
            .unwrap();
        {
            let routes = bus.inner.routes();
            assert_eq!(routes["a"].len(), 1, "one group");
            assert_eq!(
                routes["a"][0].members.len(),
                2,
                "a topic named twice counts once"
            );
            assert_eq!(routes["b"][0].members.len(), 1);
        }
        h1.stop().await;
        let routes = bus.inner.routes();
        assert!(!routes.contains_key("b"));
        assert_eq!(routes["a"][0].members.len(), 1);
        drop(routes);
        h2.stop().await;
        assert!(bus.inner.routes().is_empty());
        bus.shutdown().await.unwrap();
    }
}
