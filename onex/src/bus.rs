//! The [`EventBus`] trait and the types every bus shares.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    envelope::OnexEnvelopeV1, error::BusError, event::MessageCategory, headers::EventHeaders,
};

/// One message on the bus: where it goes, its key, headers and envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct BusMessage {
    /// The full topic, namespace included.
    pub topic: String,
    /// The partition key (correlation id, falling back to node id).
    pub key: crate::Text,
    /// The message headers.
    pub headers: EventHeaders,
    /// The envelope.
    pub envelope: OnexEnvelopeV1,
}

impl BusMessage {
    /// A message for an envelope on a full topic, with headers and key
    /// derived from the envelope.
    pub fn new(topic: String, envelope: OnexEnvelopeV1, category: MessageCategory) -> Self {
        let headers = EventHeaders::for_envelope(&envelope, category);
        // The key is the partition key the headers carry: rendered once.
        let key = match &headers.partition_key {
            Some(key) => key.clone(),
            None => envelope.partition_key(),
        };
        BusMessage {
            topic,
            key,
            headers,
            envelope,
        }
    }

    /// The correlation id to carry on: the envelope's, or else the one the
    /// headers were given. A handler passes it on when it publishes in
    /// response: `publisher.publish(&event, Some(message.correlation_id()))`.
    pub fn correlation_id(&self) -> uuid::Uuid {
        self.envelope
            .correlation_id
            .unwrap_or(self.headers.correlation_id)
    }
}

/// What became of a published message: the answer of
/// [`EventBus::publish`].
///
/// `Acknowledged` and `Spooled` are durable: the message survives a crash
/// of the publishing process. A node commits a consumed message only after
/// every event it caused is one of them. `Buffered` is not durable: the
/// message waits in the process's memory for the broker.
// The order is from most to least certain: `weakest` is `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Delivery {
    /// Delivered: the broker acknowledged it (Kafka, with the configured
    /// `acks`), or the in-memory bus queued it for every subscribed group.
    Acknowledged,
    /// The broker was unreachable: the message was written to the node's
    /// durable spool file (and synced to disk) and is delivered, in order,
    /// once the broker answers, at the latest at the next start.
    Spooled,
    /// The broker was unreachable and there is no spool: the message waits
    /// in memory and is lost if the process dies before the broker answers.
    Buffered,
}

impl Delivery {
    /// Whether the message survives a crash of the publishing process
    /// (`Acknowledged` or `Spooled`).
    pub fn is_durable(self) -> bool {
        matches!(self, Delivery::Acknowledged | Delivery::Spooled)
    }

    /// The less certain of two outcomes, to summarise several publishes:
    /// `Buffered` over `Spooled` over `Acknowledged`.
    pub fn weakest(self, other: Delivery) -> Delivery {
        self.max(other)
    }
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Delivery::Acknowledged => "acknowledged",
            Delivery::Spooled => "spooled",
            Delivery::Buffered => "buffered in memory",
        })
    }
}

/// Why a handler did not process a message. The bus retries it, and after
/// the configured retries sends it to the dead-letter topic.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct HandlerError {
    /// A short classification, carried as the `error_type` DLQ header.
    pub kind: String,
    /// What went wrong.
    pub message: String,
}

impl HandlerError {
    /// A handler error of a kind with a message.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        HandlerError {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

/// Handles messages of a subscription.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Processes one message. `Ok` lets the bus commit it; `Err` makes the
    /// bus retry and eventually dead-letter it.
    async fn handle(&self, message: &BusMessage) -> Result<(), HandlerError>;
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// Calls a handler, turning a panic into a [`HandlerError`] of kind
/// [`crate::memory::PANIC_ERROR_TYPE`], so that every bus retries and
/// dead-letters a panicking handler like a failing one and goes on.
pub(crate) async fn handle_catching_panics(
    handler: &dyn Handler,
    message: &BusMessage,
) -> Result<(), HandlerError> {
    match CatchUnwind(handler.handle(message)).await {
        Ok(result) => result,
        Err(panic) => Err(HandlerError::new(
            crate::memory::PANIC_ERROR_TYPE,
            panic_text(&*panic),
        )),
    }
}

/// Turns a panic while polling the inner future into an `Err`.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let inner = &mut self.get_mut().0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("handler panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("handler panicked: {s}")
    } else {
        "handler panicked".to_owned()
    }
}

struct FnHandler<F>(F);

#[async_trait]
impl<F> Handler for FnHandler<F>
where
    F: Fn(BusMessage) -> BoxFuture + Send + Sync + 'static,
{
    async fn handle(&self, message: &BusMessage) -> Result<(), HandlerError> {
        (self.0)(message.clone()).await
    }
}

/// A handler from an async closure.
///
/// ```
/// let handler = onex::bus::handler_fn(|msg| async move {
///     println!("{}", msg.envelope.event_type);
///     Ok(())
/// });
/// # let _ = handler;
/// ```
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn Handler>
where
    F: Fn(BusMessage) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Arc::new(FnHandler(move |m| Box::pin(f(m)) as BoxFuture))
}

/// How a batch subscription ([`EventBus::subscribe_batches`]) gathers
/// messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// How long a batch gathers messages, from its first one.
    pub window: Duration,
    /// The most messages a batch holds (0 counts as 1); a full batch is
    /// handed over before its window ends.
    pub max_messages: usize,
}

/// Handles a subscription's messages in batches, for reducers that fold
/// many messages into one write.
#[async_trait]
pub trait BatchHandler: Send + Sync + 'static {
    /// Processes a batch, its messages in the order they were consumed.
    /// `Ok` lets the bus commit all of them; `Err` makes the bus retry the
    /// whole batch and eventually dead-letter every message of it.
    async fn handle_batch(&self, messages: &[BusMessage]) -> Result<(), HandlerError>;
}

/// Calls a batch handler, turning a panic into a [`HandlerError`] of kind
/// [`crate::memory::PANIC_ERROR_TYPE`], as [`handle_catching_panics`] does.
pub(crate) async fn handle_batch_catching_panics(
    handler: &dyn BatchHandler,
    messages: &[BusMessage],
) -> Result<(), HandlerError> {
    match CatchUnwind(handler.handle_batch(messages)).await {
        Ok(result) => result,
        Err(panic) => Err(HandlerError::new(
            crate::memory::PANIC_ERROR_TYPE,
            panic_text(&*panic),
        )),
    }
}

struct FnBatchHandler<F>(F);

#[async_trait]
impl<F> BatchHandler for FnBatchHandler<F>
where
    F: Fn(Vec<BusMessage>) -> BoxFuture + Send + Sync + 'static,
{
    async fn handle_batch(&self, messages: &[BusMessage]) -> Result<(), HandlerError> {
        (self.0)(messages.to_vec()).await
    }
}

/// A batch handler from an async closure.
///
/// ```
/// let handler = onex::bus::batch_handler_fn(|batch| async move {
///     println!("{} messages", batch.len());
///     Ok(())
/// });
/// # let _ = handler;
/// ```
pub fn batch_handler_fn<F, Fut>(f: F) -> Arc<dyn BatchHandler>
where
    F: Fn(Vec<BusMessage>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Arc::new(FnBatchHandler(move |m| Box::pin(f(m)) as BoxFuture))
}

/// What to subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Full topics, namespace included.
    pub topics: Vec<String>,
    /// The consumer group: subscribers of one group share the messages.
    pub group: String,
}

/// A running subscription; [`SubscriptionHandle::stop`] ends it after the
/// message in hand and commits what was handled.
#[derive(Debug)]
pub struct SubscriptionHandle {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// The stop signal a subscription's task watches.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    /// Whether stop was requested.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when stop is requested (or the handle is dropped).
    pub async fn stopped(&mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

impl SubscriptionHandle {
    /// Spawns a subscription task that receives the stop signal.
    pub fn spawn<F, Fut>(task: F) -> Self
    where
        F: FnOnce(StopSignal) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(task(StopSignal(rx)));
        SubscriptionHandle {
            stop,
            task: Some(task),
        }
    }

    /// Asks the subscription to stop after the message in hand, without
    /// waiting: a handler that gives up because its node is stopping
    /// finds its message abandoned (delivered again), not retried.
    pub fn request_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops the subscription and waits for its task to finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops the subscription like [`SubscriptionHandle::stop`], unless
    /// `cancel` resolves first: then its task is aborted, and the message in
    /// hand stays uncommitted (delivered again).
    pub async fn stop_unless(mut self, cancel: impl Future<Output = ()>) {
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take() {
            tokio::select! {
                _ = &mut task => {}
                _ = cancel => task.abort(),
            }
        }
    }

    /// Whether the subscription's task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for SubscriptionHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// How a bus is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusHealth {
    /// Connected and delivering.
    Healthy,
    /// Running without its broker: publishing is buffered.
    Degraded {
        /// Why.
        reason: String,
    },
    /// Shut down.
    Stopped,
}

/// An event bus: publish envelopes, subscribe handlers.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// The environment that namespaces topics.
    fn environment(&self) -> &str;

    /// Publishes one message and says what became of it: [`Delivery`].
    /// The Kafka bus answers `Acknowledged` once the broker acknowledged
    /// it, and while the broker is unreachable `Spooled` (written to the
    /// durable spool) or, without a spool, `Buffered` (kept in memory). The
    /// in-memory bus answers `Acknowledged` once every subscribed group has
    /// the message queued.
    ///
    /// The message is shared, not copied: the in-memory bus hands the same
    /// message to every subscriber, and the Kafka bus keeps it while it is
    /// buffered. A built message becomes one with `Arc::new` or `.into()`.
    async fn publish(&self, message: Arc<BusMessage>) -> Result<Delivery, BusError>;

    /// Publishes several messages and says what became of each, in their
    /// order, as [`publish`](EventBus::publish) would have. They are handed
    /// to the bus together and their deliveries awaited together: the
    /// Kafka bus waits for a batch's acknowledgements with one task where
    /// a publish each has its own, which is what makes thousands of small
    /// events cheap. Order between them is that of concurrent publishes:
    /// kept per partition while nothing fails.
    async fn publish_many(
        &self,
        messages: Vec<Arc<BusMessage>>,
    ) -> Vec<Result<Delivery, BusError>> {
        futures_util::future::join_all(messages.into_iter().map(|m| self.publish(m))).await
    }

    /// Subscribes a handler to topics in a consumer group.
    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<SubscriptionHandle, BusError>;

    /// Subscribes a batch handler to topics in a consumer group. From the
    /// first message of a batch the bus gathers messages for
    /// `options.window` (or until `options.max_messages`), then hands them
    /// to the handler in order. Only once it returns `Ok` are all of them
    /// committed; a failing batch is retried per the retry policy, then
    /// every message of it is dead-lettered with the reason. On stop, a
    /// partial batch is handed to the handler first. A crash before the
    /// handler returned `Ok` replays the whole batch. Both buses of this
    /// crate implement it; the default refuses.
    async fn subscribe_batches(
        &self,
        subscription: Subscription,
        options: BatchOptions,
        handler: Arc<dyn BatchHandler>,
    ) -> Result<SubscriptionHandle, BusError> {
        let _ = (subscription, options, handler);
        Err(BusError::Other(
            "this event bus does not support batch subscriptions".to_owned(),
        ))
    }

    /// Subscribes a handler to everything the topics keep, oldest first,
    /// and what is published after, outside any consumer group's balancing:
    /// what a reader of a whole history wants (`cargo onex nodes` reads
    /// every node's announcements). `subscription.group` names it, as for
    /// [`EventBus::subscribe_from_now`].
    ///
    /// The Kafka bus creates the missing topics and assigns the consumer
    /// every partition at the oldest message it keeps, so it does not wait
    /// for a group's join. By default a bus refuses: the in-memory bus
    /// hands a new subscription only what is published after it.
    async fn subscribe_from_start(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<SubscriptionHandle, BusError> {
        let _ = (subscription, handler);
        Err(BusError::Other(
            "this event bus cannot read its topics from their start".to_owned(),
        ))
    }

    /// Prepares a consumer group that is about to subscribe to `topics`:
    /// it must see every message published from now on, and none from
    /// before. The Kafka bus creates the missing topics and commits, for
    /// the group, the current end of every partition it has no offset for
    /// (the broker refuses this while members of the group run); the
    /// in-memory bus, whose new subscriptions see what is published after
    /// them, needs nothing.
    async fn start_group_at_end(&self, group: &str, topics: &[String]) -> Result<(), BusError> {
        let _ = (group, topics);
        Ok(())
    }

    /// Subscribes a handler to what is published on the topics from now on,
    /// outside any consumer group's balancing: the subscription sees every
    /// message published after this returns, and none from before. What a
    /// client waiting for answers wants (a requester, a progress display).
    /// `subscription.group` names it (in logs, and on Kafka the offsets it
    /// commits); it must be a name no one else uses.
    ///
    /// The Kafka bus creates the missing topics and assigns the consumer
    /// every partition at its current end, so it does not wait for a
    /// group's join and rebalance (seconds on some brokers). By default, a
    /// group of its own prepared with [`EventBus::start_group_at_end`],
    /// then [`EventBus::subscribe`]: the in-memory bus needs no more.
    async fn subscribe_from_now(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<SubscriptionHandle, BusError> {
        self.start_group_at_end(&subscription.group, &subscription.topics)
            .await?;
        self.subscribe(subscription, handler).await
    }

    /// Health of the bus.
    fn health(&self) -> BusHealth;

    /// How many messages the bus has dead-lettered since it started, when
    /// it counts them (both buses of this crate do); `None` otherwise. A
    /// node reports it next to the messages it refused
    /// ([`crate::lifecycle::NodeRuntime::rejected_messages`]).
    fn dead_lettered(&self) -> Option<u64> {
        None
    }

    /// Sends at once what the bus holds back to batch (Kafka's
    /// `linger.ms`) and waits until everything handed to it so far is
    /// delivered or failed. A publisher that has nothing more to say calls
    /// it so that its last messages do not wait out the linger. Does
    /// nothing by default: the in-memory bus holds nothing back.
    async fn flush(&self) -> Result<(), BusError> {
        Ok(())
    }

    /// Delivers what is in flight and releases the bus.
    async fn shutdown(&self) -> Result<(), BusError>;

    /// Asks a running [`EventBus::shutdown`] to stop waiting (a second
    /// SIGINT or SIGTERM): the Kafka bus leaves what the broker has not
    /// taken in its spool at once. Does nothing by default.
    fn expedite_shutdown(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakest_delivery_wins_and_only_memory_is_not_durable() {
        use Delivery::*;
        assert_eq!(Acknowledged.weakest(Spooled), Spooled);
        assert_eq!(Buffered.weakest(Acknowledged), Buffered);
        assert_eq!(Spooled.weakest(Buffered), Buffered);
        assert!(Acknowledged.is_durable() && Spooled.is_durable());
        assert!(!Buffered.is_durable());
    }

    #[test]
    fn panic_payloads_become_readable_reasons() {
        assert_eq!(panic_text(&"boom"), "handler panicked: boom");
        assert_eq!(
            panic_text(&String::from("bad state")),
            "handler panicked: bad state"
        );
        assert_eq!(panic_text(&42u8), "handler panicked");
    }
}
