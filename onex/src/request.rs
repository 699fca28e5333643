//! Request and reply over the bus: publish a command (or intent) and await
//! its outcome, matched by correlation id.
//!
//! A [`Requester<R, F>`] subscribes once to the topics of the completed
//! event `R` and the failed event `F`, from now on and under a name of its
//! own (on Kafka outside any consumer group), and routes every reply by its
//! event type and correlation id to the caller waiting for it. [`Requester::request`] sends a command with a fresh
//! correlation id and resolves to `R`, to [`RequestError::Failed`] with the
//! typed `F`, or to [`RequestError::Timeout`].
//!
//! ```no_run
//! # use std::{sync::Arc, time::Duration};
//! # use onex::{Event, InMemoryBus, MessageCategory, Publisher, SourceInfo};
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Serialize, Deserialize)] struct GenerateNode { prompt: String }
//! # impl Event for GenerateNode { const EVENT_TYPE: &'static str = "pipeline.generate";
//! #   const EVENT_VERSION: &'static str = "1.0"; const CATEGORY: MessageCategory = MessageCategory::Command;
//! #   const TOPIC: &'static str = "cli.pipeline.generate.v1"; }
//! # #[derive(Debug, Serialize, Deserialize)] struct PipelineCompleted { output_path: String }
//! # impl Event for PipelineCompleted { const EVENT_TYPE: &'static str = "pipeline.completed";
//! #   const EVENT_VERSION: &'static str = "1.0"; const CATEGORY: MessageCategory = MessageCategory::Event;
//! #   const TOPIC: &'static str = "generator.pipeline.completed.v1"; }
//! # #[derive(Debug, Serialize, Deserialize)] struct PipelineFailed { error_message: String }
//! # impl Event for PipelineFailed { const EVENT_TYPE: &'static str = "pipeline.failed";
//! #   const EVENT_VERSION: &'static str = "1.0"; const CATEGORY: MessageCategory = MessageCategory::Event;
//! #   const TOPIC: &'static str = "generator.pipeline.failed.v1"; }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use onex::request::{RequestError, Requester};
//!
//! let bus = Arc::new(InMemoryBus::new("dev"));
//! let publisher = Publisher::new(bus, SourceInfo::new("cli", "1.0.0", "dev"));
//! let requester = Requester::<PipelineCompleted, PipelineFailed>::start(publisher, "cli").await?;
//! let command = GenerateNode { prompt: "an EFFECT node for database writes".into() };
//! match requester.request(&command, Duration::from_secs(300)).await {
//!     Ok(done) => println!("written to {}", done.output_path),
//!     Err(RequestError::Failed { failure, .. }) => eprintln!("failed: {}", failure.error_message),
//!     Err(other) => eprintln!("{other}"),
//! }
//! requester.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! Guarantees:
//! - **Correlation.** A reply reaches the caller whose command carried its
//!   correlation id, and no other. Replies are told apart by the envelope's
//!   event type (`R::EVENT_TYPE` or `F::EVENT_TYPE`), never by trying to
//!   decode them; other event types on the reply topics are ignored and
//!   counted.
//! - **Concurrency.** Any number of requests may be in flight at once, from
//!   any number of tasks sharing (or cloning) one requester.
//! - **One reply per request.** The first reply wins; a reply nobody waits
//!   for any more (the caller timed out or gave up: late; or it was
//!   answered already: duplicate) is ignored, logged at debug level and
//!   counted in [`Requester::stats`]. So are replies to other requesters'
//!   commands, which every requester sees.
//! - **Cancellation.** A caller that gives up (its future dropped, or timed
//!   out) leaves nothing behind: its entry is removed at once
//!   ([`Requester::pending`]).
//! - **A reply that does not decode** as `R` or `F` fails its request with
//!   [`RequestError::Undecodable`] instead of leaving it to time out.
//! - **Never blocking the consumer.** The reply handler decodes the reply
//!   and hands it over through a oneshot channel; it never waits, and it
//!   always returns `Ok`, so no reply is retried or dead-lettered.
//! - **Subscribed before sending.** [`Requester::start`] returns once the
//!   bus subscribed the reply topics. On Kafka it first creates missing
//!   reply topics and looks up the current end of each reply partition,
//!   where its consumer is assigned to start (no group to join), so that a
//!   reply to the very first command is never skipped, whatever
//!   `auto_offset_reset` says.
//!
//! A timeout does not mean that the command was not executed: it may still
//! be handled, and its late reply is then counted and dropped.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    marker::PhantomData,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use tokio::{sync::oneshot, time::Instant};
use uuid::Uuid;

use crate::{
    bus::{BusMessage, Handler, HandlerError, Subscription, SubscriptionHandle},
    error::{BusError, DecodeError},
    event::Event,
    publisher::{Published, Publisher},
    topic,
};

/// How many answered or abandoned correlation ids a requester remembers, to
/// tell a late or duplicate reply from one that was never its own.
const REMEMBERED_ENDINGS: usize = 16_384;

/// Why a request did not end with the completed event `R`.
#[derive(Debug, thiserror::Error)]
pub enum RequestError<F: Event> {
    /// The responder answered with the failed event.
    #[error("{} (correlation id {correlation_id}): {}", F::EVENT_TYPE, describe(.failure))]
    Failed {
        /// The failed event, as the responder sent it.
        failure: F,
        /// The request's correlation id.
        correlation_id: Uuid,
    },
    /// No reply arrived in time. The command may still be handled later.
    #[error(
        "no reply within {after:?} (correlation id {correlation_id}); the command may still be handled"
    )]
    Timeout {
        /// The timeout that passed.
        after: Duration,
        /// The request's correlation id.
        correlation_id: Uuid,
    },
    /// The command could not be published.
    #[error("could not send the request (correlation id {correlation_id}): {source}")]
    Bus {
        /// Why the bus refused it.
        #[source]
        source: BusError,
        /// The request's correlation id.
        correlation_id: Uuid,
    },
    /// A reply with the request's correlation id and the event type of `R`
    /// or `F` arrived, but its payload does not decode as that event.
    #[error("the reply to correlation id {correlation_id} cannot be read: {source}")]
    Undecodable {
        /// The decoding error, naming the event type.
        #[source]
        source: DecodeError,
        /// The request's correlation id.
        correlation_id: Uuid,
    },
    /// The requester was stopped (or dropped) before a reply arrived.
    #[error("the requester stopped before a reply arrived (correlation id {correlation_id})")]
    Stopped {
        /// The request's correlation id.
        correlation_id: Uuid,
    },
    /// A request with this correlation id is already waiting for its reply
    /// on this requester.
    #[error("a request with correlation id {correlation_id} is already waiting for its reply")]
    AlreadyWaiting {
        /// The correlation id given twice.
        correlation_id: Uuid,
    },
}

impl<F: Event> RequestError<F> {
    /// The correlation id of the request this error ended.
    pub fn correlation_id(&self) -> Uuid {
        match self {
            RequestError::Failed { correlation_id, .. }
            | RequestError::Timeout { correlation_id, .. }
            | RequestError::Bus { correlation_id, .. }
            | RequestError::Undecodable { correlation_id, .. }
            | RequestError::Stopped { correlation_id }
            | RequestError::AlreadyWaiting { correlation_id } => *correlation_id,
        }
    }

    /// The failed event, when the responder answered with one.
    pub fn failure(&self) -> Option<&F> {
        match self {
            RequestError::Failed { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// Takes the failed event, when the responder answered with one.
    pub fn into_failure(self) -> Option<F> {
        match self {
            RequestError::Failed { failure, .. } => Some(failure),
            _ => None,
        }
    }
}

/// A failed event as compact JSON, for error messages.
fn describe<F: Event>(failure: &F) -> String {
    serde_json::to_string(failure).unwrap_or_else(|e| format!("(not printable: {e})"))
}

/// Counters of a [`Requester`], since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequesterStats {
    /// Commands published.
    pub sent: u64,
    /// Requests answered with the completed event.
    pub completed: u64,
    /// Requests answered with the failed event.
    pub failed: u64,
    /// Requests whose reply did not decode.
    pub undecodable: u64,
    /// Requests that timed out.
    pub timed_out: u64,
    /// Requests whose caller gave up (dropped the future) before an answer.
    pub abandoned: u64,
    /// Requests ended by [`Requester::stop`] or by dropping the requester.
    pub stopped: u64,
    /// Replies that came after their request timed out or was abandoned.
    pub late_replies: u64,
    /// Further replies to a request that was answered already.
    pub duplicate_replies: u64,
    /// Replies whose correlation id this requester does not know (other
    /// requesters' replies, which every requester sees, or ids it forgot).
    pub unrelated_replies: u64,
    /// Messages on the reply topics with another event type than `R` or `F`.
    pub other_events: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    undecodable: AtomicU64,
    timed_out: AtomicU64,
    abandoned: AtomicU64,
    stopped: AtomicU64,
    late: AtomicU64,
    duplicates: AtomicU64,
    unrelated: AtomicU64,
    other_events: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What a waiting caller receives.
enum Outcome<R, F> {
    Completed(R),
    Failed(F),
    Undecodable(DecodeError),
    Stopped,
}

/// How a request that no longer waits ended, remembered to classify
/// replies that still come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Answered,
    GaveUp,
}

/// The last endings, bounded: oldest forgotten first.
#[derive(Default)]
struct Endings {
    order: VecDeque<Uuid>,
    by_id: HashMap<Uuid, Ending>,
}

impl Endings {
    fn record(&mut self, id: Uuid, ending: Ending) {
        if self.by_id.insert(id, ending).is_none() {
            self.order.push_back(id);
            if self.order.len() > REMEMBERED_ENDINGS
                && let Some(old) = self.order.pop_front()
            {
                self.by_id.remove(&old);
            }
        }
    }
}

struct RouteState<R, F> {
    waiting: HashMap<Uuid, oneshot::Sender<Outcome<R, F>>>,
    endings: Endings,
    stopped: bool,
}

/// The routing table shared by the requester, its waiting callers and its
/// reply handler.
struct Routes<R, F> {
    state: Mutex<RouteState<R, F>>,
    counters: Counters,
}

impl<R: Event, F: Event> Routes<R, F> {
    fn new() -> Self {
        Routes {
            state: Mutex::new(RouteState {
                waiting: HashMap::new(),
                endings: Endings::default(),
                stopped: false,
            }),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RouteState<R, F>> {
        // The table stays consistent across a panic in another holder: every
        // change is a single insert or remove.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands one reply to its caller. Never waits: the lock is held for a
    /// map lookup, and the hand-over is a oneshot send.
    fn route(&self, message: &BusMessage) {
        let event_type = message.envelope.event_type.as_str();
        let is_completed = event_type == R::EVENT_TYPE;
        if !is_completed && event_type != F::EVENT_TYPE {
            bump(&self.counters.other_events);
            tracing::trace!(event_type, topic = %message.topic, "not a reply type; ignored");
            return;
        }
        let correlation_id = message.correlation_id();
        let sender = {
            let mut state = self.lock();
            let sender = state.waiting.remove(&correlation_id);
            match sender {
                Some(sender) => {
                    state.endings.record(correlation_id, Ending::Answered);
                    sender
                }
                None => {
                    let ending = state.endings.by_id.get(&correlation_id).copied();
                    drop(state);
                    self.unmatched(message, correlation_id, ending);
                    return;
                }
            }
        };
        let outcome = if is_completed {
            match message.envelope.decode::<R>() {
                Ok(r) => Outcome::Completed(r),
                Err(e) => Outcome::Undecodable(e),
            }
        } else {
            match message.envelope.decode::<F>() {
                Ok(f) => Outcome::Failed(f),
                Err(e) => Outcome::Undecodable(e),
            }
        };
        if let Outcome::Undecodable(e) = &outcome {
            tracing::warn!(%correlation_id, event_id = %message.envelope.event_id, "reply cannot be read: {e}");
        }
        if sender.send(outcome).is_err() {
            // The caller gave up between the lookup and the send.
            bump(&self.counters.late);
            tracing::debug!(%correlation_id, "reply arrived as its caller gave up; dropped");
        }
    }

    fn unmatched(&self, message: &BusMessage, correlation_id: Uuid, ending: Option<Ending>) {
        let event_type = message.envelope.event_type.as_str();
        let event_id = message.envelope.event_id;
        match ending {
            Some(Ending::GaveUp) => {
                bump(&self.counters.late);
                tracing::debug!(%correlation_id, %event_id, event_type, "late reply (its request timed out or was abandoned); ignored");
            }
            Some(Ending::Answered) => {
                bump(&self.counters.duplicates);
                tracing::debug!(%correlation_id, %event_id, event_type, "duplicate reply (its request was answered); ignored");
            }
            None => {
                // Every requester sees every reply: most of these answer
                // other requesters, which is why this is not a warning.
                bump(&self.counters.unrelated);
                tracing::debug!(%correlation_id, %event_id, event_type, "reply to a request this requester did not send; ignored");
            }
        }
    }

    /// Fails every waiting request with [`RequestError::Stopped`] and
    /// refuses new ones.
    fn stop(&self) {
        let waiting: Vec<_> = {
            let mut state = self.lock();
            state.stopped = true;
            let ids: Vec<Uuid> = state.waiting.keys().copied().collect();
            for id in &ids {
                state.endings.record(*id, Ending::GaveUp);
            }
            state.waiting.drain().map(|(_, s)| s).collect()
        };
        for sender in waiting {
            let _ = sender.send(Outcome::Stopped);
        }
    }

    fn stats(&self) -> RequesterStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequesterStats {
            sent: get(&c.sent),
            completed: get(&c.completed),
            failed: get(&c.failed),
            undecodable: get(&c.undecodable),
            timed_out: get(&c.timed_out),
            abandoned: get(&c.abandoned),
            stopped: get(&c.stopped),
            late_replies: get(&c.late),
            duplicate_replies: get(&c.duplicates),
            unrelated_replies: get(&c.unrelated),
            other_events: get(&c.other_events),
        }
    }
}

/// The subscription's handler: routes each reply, never fails.
struct ReplyHandler<R, F>(Arc<Routes<R, F>>);

#[async_trait]
impl<R: Event, F: Event> Handler for ReplyHandler<R, F> {
    async fn handle(&self, message: &BusMessage) -> Result<(), HandlerError> {
        // Always Ok: a reply nobody can use must not be retried (which
        // would hold up the replies behind it) nor dead-lettered.
        self.0.route(message);
        Ok(())
    }
}

struct Shared<R, F> {
    publisher: Publisher,
    group: String,
    topics: Vec<String>,
    routes: Arc<Routes<R, F>>,
    subscription: Mutex<Option<SubscriptionHandle>>,
}

impl<R, F> Drop for Shared<R, F> {
    fn drop(&mut self) {
        // The last handle is gone: waiting callers (holding a
        // `PendingReply`) learn it at once instead of at their timeout.
        let senders: Vec<_> = {
            let mut state = self.routes.state.lock().unwrap_or_else(|e| e.into_inner());
            state.stopped = true;
            state.waiting.drain().map(|(_, s)| s).collect()
        };
        drop(senders);
        // Dropping the subscription handle ends the subscription.
    }
}

/// Sends commands and awaits their completed (`R`) or failed (`F`) event.
/// See the [module documentation](self).
///
/// Cheap to clone: clones share the subscription and the table of waiting
/// requests. Dropping the last clone ends the subscription.
pub struct Requester<R, F> {
    shared: Arc<Shared<R, F>>,
    _events: PhantomData<fn() -> (R, F)>,
}

impl<R, F> Clone for Requester<R, F> {
    fn clone(&self) -> Self {
        Requester {
            shared: Arc::clone(&self.shared),
            _events: PhantomData,
        }
    }
}

impl<R: Event, F: Event> fmt::Debug for Requester<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Requester")
            .field("completed", &R::EVENT_TYPE)
            .field("failed", &F::EVENT_TYPE)
            .field("group", &self.shared.group)
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl<R: Event, F: Event> Requester<R, F> {
    /// Subscribes to the topics of `R` and `F` from now on
    /// ([`EventBus::subscribe_from_now`](crate::EventBus::subscribe_from_now)),
    /// under a name of this requester's own, `{group}.replies.{uuid}`
    /// (every requester must see every reply), and returns once the bus
    /// subscribed. On Kafka that
    /// - creates the reply topics that do not exist yet
    ///   ([`create_missing_topics`]): a consumer of a missing topic learns
    ///   of it only at its next metadata refresh (librdkafka: every 5
    ///   minutes), missing the replies meanwhile;
    /// - assigns the requester's consumer every reply partition at its
    ///   current end, outside any consumer group: it starts exactly there
    ///   whatever `auto_offset_reset` says, reads no old reply, and does
    ///   not wait for a group's join (seconds on some brokers).
    ///
    /// Errors: the bus's, when it refuses the subscription (for instance
    /// [`BusError::Shutdown`]) or, on Kafka, when the broker does not
    /// answer within `KAFKA_TIMEOUT_SECONDS` ([`BusError::Unavailable`]: a
    /// command-line tool may then fall back to calling the work directly);
    /// [`BusError::TopicTooLong`] for a reply topic Kafka would refuse;
    /// [`BusError::Other`] when `R` and `F` have the same event type, as
    /// replies could not be told apart.
    pub async fn start(publisher: Publisher, group: impl Into<String>) -> Result<Self, BusError> {
        if R::EVENT_TYPE == F::EVENT_TYPE {
            return Err(BusError::Other(format!(
                "the completed and the failed event of a request must differ; both are `{}`",
                R::EVENT_TYPE
            )));
        }
        let topics = Self::topics(&publisher);
        for t in &topics {
            topic::check(t)?;
        }
        let group = Self::own_group(group);
        Self::subscribe(publisher, topics, group).await
    }

    /// A subscription name no other requester uses.
    fn own_group(group: impl Into<String>) -> String {
        format!("{}.replies.{}", group.into(), Uuid::new_v4().simple())
    }

    async fn subscribe(
        publisher: Publisher,
        topics: Vec<String>,
        group: String,
    ) -> Result<Self, BusError> {
        let routes = Arc::new(Routes::new());
        let handle = publisher
            .bus()
            .subscribe_from_now(
                Subscription {
                    topics: topics.clone(),
                    group: group.clone(),
                },
                Arc::new(ReplyHandler(Arc::clone(&routes))),
            )
            .await?;
        tracing::debug!(%group, ?topics, "requester subscribed to its replies");
        Ok(Requester {
            shared: Arc::new(Shared {
                publisher,
                group,
                topics,
                routes,
                subscription: Mutex::new(Some(handle)),
            }),
            _events: PhantomData,
        })
    }

    /// [`Requester::start`] on a Kafka bus, kept for callers that hold
    /// the bus as a [`crate::KafkaBus`].
    #[cfg(feature = "kafka")]
    pub async fn start_on_kafka(
        bus: Arc<crate::KafkaBus>,
        source: crate::SourceInfo,
        group: impl Into<String>,
    ) -> Result<Self, BusError> {
        Self::start(Publisher::new(bus, source), group).await
    }

    /// The reply topics: `R`'s, then `F`'s unless it is the same.
    fn topics(publisher: &Publisher) -> Vec<String> {
        let mut topics = vec![publisher.topic_of::<R>()];
        let failed_topic = publisher.topic_of::<F>();
        if failed_topic != topics[0] {
            topics.push(failed_topic);
        }
        topics
    }

    /// Sends `command` with a fresh correlation id and waits up to
    /// `timeout` (sending included) for its reply.
    pub async fn request<C: Event>(
        &self,
        command: &C,
        timeout: Duration,
    ) -> Result<R, RequestError<F>> {
        self.request_with_correlation_id(command, Uuid::new_v4(), timeout)
            .await
    }

    /// [`Requester::request`] with a given correlation id (for instance one
    /// the caller logged or showed already). It must not be waiting on this
    /// requester already ([`RequestError::AlreadyWaiting`]).
    pub async fn request_with_correlation_id<C: Event>(
        &self,
        command: &C,
        correlation_id: Uuid,
        timeout: Duration,
    ) -> Result<R, RequestError<F>> {
        let deadline = Instant::now() + timeout;
        let (mut registration, rx) = self.register(correlation_id)?;
        let published =
            match tokio::time::timeout_at(deadline, self.publish(command, &mut registration)).await
            {
                Ok(published) => published?,
                Err(_) => {
                    registration.stage = Stage::TimedOut;
                    bump(&self.shared.routes.counters.timed_out);
                    return Err(RequestError::Timeout {
                        after: timeout,
                        correlation_id,
                    });
                }
            };
        PendingReply {
            rx,
            registration,
            published,
        }
        .wait_until(deadline, timeout)
        .await
    }

    /// Registers a request under `correlation_id` and publishes `command`
    /// with it; the returned [`PendingReply`] waits for the reply. The
    /// request is registered before the command goes out, so that even an
    /// immediate reply finds it. Dropping the `PendingReply` (or this
    /// future) gives the request up.
    pub async fn send<C: Event>(
        &self,
        command: &C,
        correlation_id: Uuid,
    ) -> Result<PendingReply<R, F>, RequestError<F>> {
        let (mut registration, rx) = self.register(correlation_id)?;
        let published = self.publish(command, &mut registration).await?;
        Ok(PendingReply {
            rx,
            registration,
            published,
        })
    }

    /// Enters a request into the table; the returned registration takes it
    /// out again when the caller stops waiting.
    #[allow(clippy::type_complexity)]
    fn register(
        &self,
        correlation_id: Uuid,
    ) -> Result<(Registration<R, F>, oneshot::Receiver<Outcome<R, F>>), RequestError<F>> {
        let routes = &self.shared.routes;
        let (tx, rx) = oneshot::channel();
        let mut state = routes.lock();
        if state.stopped {
            return Err(RequestError::Stopped { correlation_id });
        }
        if state.waiting.contains_key(&correlation_id) {
            return Err(RequestError::AlreadyWaiting { correlation_id });
        }
        state.waiting.insert(correlation_id, tx);
        drop(state);
        let registration = Registration {
            routes: Arc::clone(routes),
            correlation_id,
            stage: Stage::Waiting,
        };
        Ok((registration, rx))
    }

    /// Publishes the command of a registered request.
    async fn publish<C: Event>(
        &self,
        command: &C,
        registration: &mut Registration<R, F>,
    ) -> Result<Published, RequestError<F>> {
        let correlation_id = registration.correlation_id;
        match self
            .shared
            .publisher
            .publish(command, Some(correlation_id))
            .await
        {
            Ok(published) => {
                bump(&self.shared.routes.counters.sent);
                Ok(published)
            }
            Err(source) => {
                registration.stage = Stage::NotSent;
                Err(RequestError::Bus {
                    source,
                    correlation_id,
                })
            }
        }
    }

    /// Requests waiting for their reply now.
    pub fn pending(&self) -> usize {
        self.shared.routes.lock().waiting.len()
    }

    /// The requester's counters.
    pub fn stats(&self) -> RequesterStats {
        self.shared.routes.stats()
    }

    /// The name of the requester's subscription, its own (on Kafka, the
    /// group id its offsets are committed under; it joins no group).
    pub fn group(&self) -> &str {
        &self.shared.group
    }

    /// The full topics it subscribed to: `R`'s, then `F`'s (one topic when
    /// both share it).
    pub fn reply_topics(&self) -> &[String] {
        &self.shared.topics
    }

    /// The publisher commands are sent with.
    pub fn publisher(&self) -> &Publisher {
        &self.shared.publisher
    }

    /// Fails every waiting request with [`RequestError::Stopped`], refuses
    /// new ones, and ends the reply subscription (for every clone).
    /// Replies still coming are not consumed any more. Idempotent.
    pub async fn stop(&self) {
        self.shared.routes.stop();
        let handle = self
            .shared
            .subscription
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            handle.stop().await;
            tracing::debug!(group = %self.shared.group, "requester stopped");
        }
    }
}

/// Where a registered request stands, for its clean-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Sent (or being sent), no answer yet.
    Waiting,
    /// The command was not published: nothing can answer it.
    NotSent,
    /// The caller's timeout passed.
    TimedOut,
    /// The caller received its outcome.
    Done,
}

/// Takes its request out of the table when the caller stops waiting
/// without an answer (timed out, future dropped, publish failed).
struct Registration<R: Event, F: Event> {
    routes: Arc<Routes<R, F>>,
    correlation_id: Uuid,
    stage: Stage,
}

impl<R: Event, F: Event> Drop for Registration<R, F> {
    fn drop(&mut self) {
        if self.stage == Stage::Done {
            return;
        }
        let mut state = self.routes.lock();
        let removed = state.waiting.remove(&self.correlation_id).is_some();
        if self.stage != Stage::NotSent {
            // Remembered even when a reply raced the drop, so that any
            // further reply counts as late rather than unrelated.
            state.endings.record(self.correlation_id, Ending::GaveUp);
        }
        drop(state);
        if self.stage == Stage::Waiting && removed {
            bump(&self.routes.counters.abandoned);
            tracing::debug!(correlation_id = %self.correlation_id, "request abandoned by its caller");
        }
    }
}

/// A sent request waiting for its reply ([`Requester::send`]). Dropping it
/// gives the request up: a reply that still comes is counted as late.
pub struct PendingReply<R: Event, F: Event> {
    rx: oneshot::Receiver<Outcome<R, F>>,
    registration: Registration<R, F>,
    published: Published,
}

impl<R: Event, F: Event> fmt::Debug for PendingReply<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingReply")
            .field("correlation_id", &self.registration.correlation_id)
            .field("published", &self.published)
            .finish_non_exhaustive()
    }
}

impl<R: Event, F: Event> PendingReply<R, F> {
    /// The request's correlation id.
    pub fn correlation_id(&self) -> Uuid {
        self.registration.correlation_id
    }

    /// The command's event id and delivery (a `Spooled` or `Buffered`
    /// command goes out once the broker answers).
    pub fn published(&self) -> Published {
        self.published
    }

    /// Waits up to `timeout` for the reply.
    pub async fn wait(self, timeout: Duration) -> Result<R, RequestError<F>> {
        self.wait_until(Instant::now() + timeout, timeout).await
    }

    async fn wait_until(
        mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<R, RequestError<F>> {
        let correlation_id = self.registration.correlation_id;
        let outcome = match tokio::time::timeout_at(deadline, &mut self.rx).await {
            Ok(Ok(outcome)) => outcome,
            // The table went with the last handle of the requester.
            Ok(Err(_)) => Outcome::Stopped,
            Err(_) => {
                self.registration.stage = Stage::TimedOut;
                bump(&self.registration.routes.counters.timed_out);
                // The registration, dropped with `self`, removes the entry.
                return Err(RequestError::Timeout {
                    after: timeout,
                    correlation_id,
                });
            }
        };
        self.registration.stage = Stage::Done;
        let counters = &self.registration.routes.counters;
        match outcome {
            Outcome::Completed(r) => {
                bump(&counters.completed);
                Ok(r)
            }
            Outcome::Failed(failure) => {
                bump(&counters.failed);
                Err(RequestError::Failed {
                    failure,
                    correlation_id,
                })
            }
            Outcome::Undecodable(source) => {
                bump(&counters.undecodable);
                Err(RequestError::Undecodable {
                    source,
                    correlation_id,
                })
            }
            Outcome::Stopped => {
                bump(&counters.stopped);
                Err(RequestError::Stopped { correlation_id })
            }
        }
    }
}

/// Makes sure Kafka topics exist, asking the broker to create the missing
/// ones with its defaults, as a first publish would.
///
/// A Kafka consumer subscribed to a topic that does not exist yet gets no
/// partitions for it, and learns of the topic only at its next metadata
/// refresh (librdkafka: every 5 minutes): what is published meanwhile is
/// missed. [`Requester::start`] does this for the reply topics on Kafka; a
/// responder does well to call it for its command topic before it
/// subscribes.
#[cfg(feature = "kafka")]
pub async fn create_missing_topics(
    config: &crate::KafkaConfig,
    topics: &[String],
) -> Result<(), BusError> {
    let config = config.clone();
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let client = kafka_replies::client(&config, None)?;
        kafka_replies::partitions(&client, &topics, config.timeout()).map(|_| ())
    })
    .await
    .map_err(|e| BusError::Other(format!("creating topics: {e}")))?
}

/// The Kafka side of starting a requester, on a client of its own.
#[cfg(feature = "kafka")]
pub(crate) mod kafka_replies {
    use std::time::{Duration, Instant};

    use rdkafka::{
        ClientConfig, Offset, TopicPartitionList,
        consumer::{BaseConsumer, CommitMode, Consumer as _},
        error::{KafkaError, RDKafkaErrorCode},
    };

    use crate::{KafkaConfig, error::BusError};

    /// A consumer client for metadata, watermarks and commits; in `group`
    /// when given. It never subscribes.
    pub(super) fn client(
        config: &KafkaConfig,
        group: Option<&str>,
    ) -> Result<BaseConsumer, BusError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.bootstrap_servers)
            .set(
                "client.id",
                format!("onex-{}-requester", config.environment),
            )
            .set("enable.auto.commit", "false")
            // Asks the broker to create a topic its metadata is asked for.
            .set("allow.auto.create.topics", "true")
            // Connects to the brokers the first metadata answer names at
            // once, not after half the reconnect back-off (see the bus's
            // connection settings): this client lives for a few requests.
            .set("enable.sparse.connections", "false");
        if let Some(group) = group {
            c.set("group.id", group);
        }
        c.create()
            .map_err(|e| BusError::Other(format!("cannot create a Kafka client: {e}")))
    }

    /// The partitions of each topic, waiting (up to `timeout`) for the
    /// broker to create the missing ones.
    pub(super) fn partitions(
        client: &BaseConsumer,
        topics: &[String],
        timeout: Duration,
    ) -> Result<Vec<(String, Vec<i32>)>, BusError> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        for topic in topics {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let metadata = client
                    .fetch_metadata(Some(topic), left.max(Duration::from_millis(100)))
                    .map_err(|e| {
                        BusError::Unavailable(format!("no metadata for topic `{topic}`: {e}"))
                    })?;
                let found = metadata.topics().iter().find(|t| t.name() == topic);
                let error = found.and_then(|t| t.error()).map(RDKafkaErrorCode::from);
                let ids: Vec<i32> = found
                    .map(|t| t.partitions().iter().map(|p| p.id()).collect())
                    .unwrap_or_default();
                if error.is_none() && !ids.is_empty() {
                    out.push((topic.clone(), ids));
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(BusError::Other(format!(
                        "topic `{topic}` does not exist and the broker did not create it \
                         within {timeout:?} ({error:?})"
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(out)
    }

    /// One edge of a partition's log.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Edge {
        /// The oldest message still kept (the low watermark).
        Start,
        /// Where the next message goes (the high watermark).
        End,
    }

    /// The current `edge` of every partition of `topics`, the missing
    /// topics created first.
    fn edges_with(
        client: &BaseConsumer,
        topics: &[String],
        edge: Edge,
        timeout: Duration,
    ) -> Result<TopicPartitionList, BusError> {
        let mut edges = TopicPartitionList::new();
        for (topic, partitions) in partitions(client, topics, timeout)? {
            for partition in partitions {
                let (low, high) = client
                    .fetch_watermarks(&topic, partition, timeout)
                    .map_err(|e| {
                        BusError::Unavailable(format!(
                            "no offsets for `{topic}` partition {partition}: {e}"
                        ))
                    })?;
                let offset = match edge {
                    Edge::Start => low,
                    Edge::End => high,
                };
                edges
                    .add_partition_offset(&topic, partition, Offset::Offset(offset))
                    .map_err(|e| BusError::Other(e.to_string()))?;
            }
        }
        Ok(edges)
    }

    /// Creates the missing topics; the current `edge` of every partition of
    /// them: where a consumer assigned them starts to read all they keep
    /// ([`Edge::Start`]) or what is published from now on ([`Edge::End`]).
    pub(crate) async fn edges(
        config: &KafkaConfig,
        topics: &[String],
        edge: Edge,
    ) -> Result<TopicPartitionList, BusError> {
        let config = config.clone();
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || {
            let client = client(&config, None)?;
            edges_with(&client, &topics, edge, config.timeout())
        })
        .await
        .map_err(|e| BusError::Other(format!("looking up the topics' offsets: {e}")))?
    }

    /// Whether a commit from outside the group failed because the group has
    /// members.
    fn members_run(error: &KafkaError) -> bool {
        matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::UnknownMemberId
                    | RDKafkaErrorCode::IllegalGeneration
                    | RDKafkaErrorCode::RebalanceInProgress
            )
        )
    }

    /// What [`start_group_at_end`] found.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum GroupStart {
        /// Every partition has an offset for the group now.
        Set,
        /// The broker refused the commit: members of the group run, and
        /// they started its partitions already.
        Running,
    }

    /// Creates the missing topics, then commits, for `group`, the current
    /// end of every partition of them it has no offset for.
    pub(crate) async fn start_group_at_end(
        config: &KafkaConfig,
        group: &str,
        topics: &[String],
    ) -> Result<GroupStart, BusError> {
        let config = config.clone();
        let group = group.to_owned();
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || {
            let client = client(&config, Some(&group))?;
            let timeout = config.timeout();
            let ends = edges_with(&client, &topics, Edge::End, timeout)?;
            let committed = client
                .committed_offsets(ends.clone(), timeout)
                .map_err(|e| {
                    BusError::Unavailable(format!("no committed offsets of group `{group}`: {e}"))
                })?;
            let mut uncommitted = TopicPartitionList::new();
            for end in ends.elements() {
                let offset = committed
                    .find_partition(end.topic(), end.partition())
                    .map(|p| p.offset());
                if matches!(offset, None | Some(Offset::Invalid)) {
                    uncommitted
                        .add_partition_offset(end.topic(), end.partition(), end.offset())
                        .map_err(|e| BusError::Other(e.to_string()))?;
                }
            }
            if uncommitted.count() == 0 {
                return Ok(GroupStart::Set);
            }
            match client.commit(&uncommitted, CommitMode::Sync) {
                Ok(()) => Ok(GroupStart::Set),
                Err(e) if members_run(&e) => Ok(GroupStart::Running),
                Err(e) => Err(BusError::Unavailable(format!(
                    "cannot commit the start of group `{group}`: {e}"
                ))),
            }
        })
        .await
        .map_err(|e| BusError::Other(format!("preparing a consumer group: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MessageCategory;

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Failed {
        error_message: String,
    }

    impl Event for Failed {
        const EVENT_TYPE: &'static str = "pipeline.failed";
        const EVENT_VERSION: &'static str = "1.0";
        const CATEGORY: MessageCategory = MessageCategory::Event;
        const TOPIC: &'static str = "generator.pipeline.failed.v1";
    }

    #[test]
    fn endings_forget_the_oldest_beyond_their_bound() {
        let mut endings = Endings::default();
        let first = Uuid::new_v4();
        endings.record(first, Ending::GaveUp);
        for _ in 0..REMEMBERED_ENDINGS {
            endings.record(Uuid::new_v4(), Ending::Answered);
        }
        assert_eq!(endings.by_id.len(), REMEMBERED_ENDINGS);
        assert_eq!(endings.order.len(), REMEMBERED_ENDINGS);
        assert!(!endings.by_id.contains_key(&first));
    }

    #[test]
    fn errors_read_well_on_a_terminal() {
        let id = Uuid::nil();
        let failed = RequestError::Failed {
            failure: Failed {
                error_message: "omnibase_core not found".into(),
            },
            correlation_id: id,
        };
        assert_eq!(
            failed.to_string(),
            format!(
                "pipeline.failed (correlation id {id}): {{\"error_message\":\"omnibase_core not found\"}}"
            )
        );
        assert_eq!(failed.correlation_id(), id);
        let timeout = RequestError::<Failed>::Timeout {
            after: Duration::from_secs(5),
            correlation_id: id,
        };
        assert_eq!(
            timeout.to_string(),
            format!("no reply within 5s (correlation id {id}); the command may still be handled")
        );
        assert!(timeout.failure().is_none());
    }
}
