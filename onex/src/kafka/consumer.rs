//! Consumers of the Kafka bus: at-least-once, with retries, a per-subscriber
//! circuit breaker and a dead-letter topic.
//!
//! Offsets are committed only for messages whose handler succeeded (or that
//! were dead-lettered): librdkafka's automatic offset store is off
//! (`enable.auto.offset.store=false`); the bus stores a message's offset
//! after its handler and remembers it, so that every commit covers handled
//! messages only. Stored offsets are committed as soon as no further message
//! is ready, and at the latest every [`KafkaConfig::commit_interval`] while
//! messages keep coming (librdkafka's `auto.commit.interval.ms` is the same
//! interval); also before a rebalance takes partitions away and on stop. A
//! crash therefore replays at most the messages handled within one commit
//! interval, plus the one in hand.
//!
//! A consumer stays in its group however long a handler takes: once a
//! message has been in hand for [`SLOW_HANDLING`], the consumer pauses its
//! partitions and goes on polling beside the handler, so that librdkafka
//! sees the application alive (`max.poll.interval.ms`) and serves
//! rebalances. A message that arrives anyway (from a partition assigned
//! meanwhile) is kept, its partition paused, and handled next. The same
//! holds while the circuit breaker pauses the subscriber.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, ClientContext, Message, Offset, TopicPartitionList,
    config::{FromClientConfigAndContext, RDKafkaLogLevel},
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer},
    error::{KafkaError, KafkaResult, RDKafkaErrorCode},
    message::{BorrowedMessage, Headers},
};
use tokio::sync::{oneshot, watch};

use super::{
    Inner, SendError, dlq_headers, lock,
    producer::{Record, RecordHeaders},
};

mod in_flight;
use crate::{
    bus::{
        BatchHandler, BatchOptions, BusMessage, Handler, HandlerError, StopSignal, Subscription,
        SubscriptionHandle,
    },
    cloudevents,
    config::{AutoOffsetReset, KafkaConfig},
    consume::{Handling, SubscriberBreaker, Verdict, handle_batch, handle_message},
    envelope::OnexEnvelopeV1,
    error::BusError,
    event::MessageCategory,
    headers::EventHeaders,
    text::Text,
};

/// How long a message may be in hand before the consumer pauses its
/// partitions and polls beside the handler.
pub(super) const SLOW_HANDLING: Duration = Duration::from_millis(200);

/// One warning per this interval for repeated connection trouble.
pub(super) const CONNECTION_WARNING_INTERVAL: Duration = Duration::from_secs(30);

/// Lets one warning through per interval and counts the ones held back, so
/// that a broker outage does not flood the log.
#[derive(Debug)]
pub(super) struct LogThrottle {
    interval: Duration,
    /// When a warning was last let through, and how many were held back
    /// since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    pub(super) fn new(interval: Duration) -> Self {
        LogThrottle {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(held_back)`: log now, saying how many were held back since the
    /// last one; `None`: held back (and counted).
    pub(super) fn admit(&self) -> Option<u64> {
        let mut state = lock(&self.state);
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.interval => {
                state.1 += 1;
                None
            }
            _ => {
                state.0 = Some(now);
                Some(std::mem::take(&mut state.1))
            }
        }
    }
}

/// Whether an error says the broker cannot be reached (which repeats for
/// as long as the outage lasts).
pub(super) fn is_connection_error(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
        )
    )
}

/// Forwards a librdkafka log line to `tracing`. Connection failures (the
/// `FAIL` facility) become one warning per interval with the count of those
/// held back.
pub(super) fn log_librdkafka(
    throttle: &LogThrottle,
    client: &str,
    level: RDKafkaLogLevel,
    facility: &str,
    message: &str,
) {
    if facility == "FAIL" {
        if let Some(held_back) = throttle.admit() {
            tracing::warn!(
                target: "librdkafka",
                client,
                held_back,
                "{facility}: {message} (similar warnings are held back for {}s)",
                throttle.interval.as_secs()
            );
        }
        return;
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", client, "{facility}: {message}")
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", client, "{facility}: {message}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", client, "{facility}: {message}")
        }
        RDKafkaLogLevel::Debug => {
            tracing::debug!(target: "librdkafka", client, "{facility}: {message}")
        }
    }
}

/// Offsets of handled messages, per topic and partition: the next offset to
/// read. Keyed by topic first so that recording a message's offset looks the
/// topic up by `&str`, without allocating.
type Processed = HashMap<String, HashMap<i32, i64>>;

/// Consumer callbacks: commit handled offsets before partitions are
/// revoked, signal the first assignment, count and log errors.
struct ConsumerCallbacks {
    inner: Arc<Inner>,
    group: String,
    processed: Arc<Mutex<Processed>>,
    assigned: watch::Sender<bool>,
    connection_warnings: LogThrottle,
}

impl ConsumerCallbacks {
    /// Counts a consumer error and logs it at WARN (connection errors at
    /// most once per interval).
    fn report(&self, error: &KafkaError, reason: &str) {
        self.inner.consumer_errors.fetch_add(1, Ordering::Relaxed);
        if !is_connection_error(error) {
            tracing::warn!(group = %self.group, %reason, "Kafka consumer error: {error}");
        } else if let Some(held_back) = self.connection_warnings.admit() {
            tracing::warn!(
                group = %self.group,
                %reason,
                held_back,
                "Kafka consumer cannot reach the broker: {error} (similar warnings are held back for {}s)",
                CONNECTION_WARNING_INTERVAL.as_secs()
            );
        }
    }
}

impl ClientContext for ConsumerCallbacks {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(
            &self.connection_warnings,
            "consumer",
            level,
            facility,
            message,
        );
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.report(&error, reason);
    }
}

impl ConsumerContext for ConsumerCallbacks {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            let mut processed = lock(&self.processed);
            let mut tpl = TopicPartitionList::new();
            for elem in revoked.elements() {
                let next = processed
                    .get_mut(elem.topic())
                    .and_then(|partitions| partitions.remove(&elem.partition()));
                if let Some(next) = next {
                    let _ = tpl.add_partition_offset(
                        elem.topic(),
                        elem.partition(),
                        Offset::Offset(next),
                    );
                }
            }
            drop(processed);
            if tpl.count() > 0
                && let Err(e) = consumer.commit(&tpl, CommitMode::Sync)
            {
                tracing::warn!("commit before rebalance failed: {e}");
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.assigned.send_replace(true);
        }
    }
}

type KafkaConsumer = StreamConsumer<ConsumerCallbacks>;

fn consumer_config(config: &KafkaConfig, group: &str) -> ClientConfig {
    let session = config.session_timeout_ms;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", format!("onex-{}", config.environment))
        .set("group.id", group)
        .set("session.timeout.ms", session.to_string())
        .set(
            "heartbeat.interval.ms",
            (session / 3).clamp(100, 3000).to_string(),
        )
        // librdkafka refuses a poll interval below the session timeout.
        .set(
            "max.poll.interval.ms",
            config.max_poll_interval_ms.max(session).to_string(),
        )
        .set("auto.offset.reset", config.auto_offset_reset.as_str())
        .set(
            "enable.auto.commit",
            if config.enable_auto_commit {
                "true"
            } else {
                "false"
            },
        )
        .set(
            "auto.commit.interval.ms",
            config.commit_interval_ms.to_string(),
        )
        // Offsets are stored by the bus after the handler, never before.
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // A broker that holds every empty fetch for the whole wait (Tansu
        // does) would add up to librdkafka's 500 ms to each message.
        .set("fetch.wait.max.ms", config.fetch_wait_max_ms.to_string())
        .set("allow.auto.create.topics", "true");
    super::set_connection_settings(&mut c);
    c
}

/// Where a consumer reads from.
pub(super) enum Start {
    /// It joins its consumer group, which shares the partitions among its
    /// members and starts at the offsets committed for it.
    InGroup,
    /// It is assigned these partitions at these offsets, outside any
    /// group's balancing (the topics exist already).
    At(TopicPartitionList),
}

/// Creates the consumer, starts its task and, in a group, waits (up to the
/// timeout) for its first partition assignment, so that messages published
/// after this returns reach it even with `auto_offset_reset=latest`.
pub(super) async fn subscribe(
    inner: Arc<Inner>,
    subscription: Subscription,
    handling: Handling,
    start: Start,
) -> Result<SubscriptionHandle, BusError> {
    if subscription.topics.is_empty() {
        return Err(BusError::Other(
            "a subscription needs at least one topic".to_owned(),
        ));
    }
    // A consumer subscribed to a topic that does not exist yet gets no
    // partition of it until its next metadata refresh (librdkafka: every 5
    // minutes), and misses what is published meanwhile: a node started
    // before anyone published its commands would sit idle. So the topics
    // are created first, as a first publish would create them. A broker
    // that does not answer leaves this to the consumer's own retries.
    //
    // With `latest`, librdkafka looks the end of a partition the group has
    // no offset for up only once it starts fetching it, a while after the
    // assignment: a message published in between would be skipped,
    // although this returned before it was published. So the group's
    // offset of such a partition is first set to its end as of now. (The
    // broker refuses that while other members of the group run; they
    // started those partitions already.)
    if matches!(start, Start::InGroup) && !inner.is_degraded() {
        let topics = &subscription.topics;
        let prepared = match inner.config.auto_offset_reset {
            AutoOffsetReset::Latest => crate::request::kafka_replies::start_group_at_end(
                &inner.config,
                &subscription.group,
                topics,
            )
            .await
            .map(|_| ()),
            AutoOffsetReset::Earliest => {
                crate::request::create_missing_topics(&inner.config, topics).await
            }
        };
        if let Err(error) = prepared {
            tracing::warn!(%error, ?topics, "could not prepare the subscribed topics");
        }
    }
    let processed = Arc::new(Mutex::new(Processed::new()));
    let (assigned_tx, mut assigned_rx) = watch::channel(false);
    let callbacks = ConsumerCallbacks {
        inner: Arc::clone(&inner),
        group: subscription.group.clone(),
        processed: Arc::clone(&processed),
        assigned: assigned_tx,
        connection_warnings: LogThrottle::new(CONNECTION_WARNING_INTERVAL),
    };
    let consumer = KafkaConsumer::from_config_and_context(
        &consumer_config(&inner.config, &subscription.group),
        callbacks,
    )
    .map_err(|e| BusError::Other(format!("cannot create the Kafka consumer: {e}")))?;
    let topics: Vec<&str> = subscription.topics.iter().map(String::as_str).collect();
    match &start {
        Start::InGroup => consumer.subscribe(&topics),
        Start::At(partitions) => consumer.assign(partitions),
    }
    .map_err(|e| BusError::Other(format!("cannot subscribe to {topics:?}: {e}")))?;
    let consumer = Arc::new(consumer);

    let (done_tx, done_rx) = oneshot::channel();
    {
        let mut consumers = lock(&inner.consumers);
        // Forget subscriptions that ended already.
        consumers
            .retain_mut(|done| matches!(done.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
        consumers.push(done_rx);
    }
    let degraded = inner.is_degraded();
    let timeout = inner.config.timeout();
    // Polling at least this often keeps the consumer in its group.
    let poll_tick = Duration::from_millis((inner.config.max_poll_interval_ms / 4).clamp(50, 5_000));
    let task = ConsumerTask {
        inner,
        consumer,
        processed,
        handling,
        group: subscription.group.clone(),
        poll_tick,
    };
    let handle = SubscriptionHandle::spawn(move |stop| async move {
        task.run(stop).await;
        let _ = done_tx.send(());
    });
    if let Start::At(_) = start {
        // Assigned already: nothing to wait for.
        return Ok(handle);
    }
    if degraded {
        // The broker does not answer: do not hold up the node; the consumer
        // joins its group once the broker is back.
        tracing::warn!(
            group = %subscription.group,
            "subscribed while the Kafka bus is degraded; the consumer joins when the broker answers"
        );
        return Ok(handle);
    }
    let assigned = tokio::time::timeout(timeout, assigned_rx.wait_for(|a| *a)).await;
    if !matches!(assigned, Ok(Ok(_))) {
        tracing::warn!(
            group = %subscription.group,
            topics = ?subscription.topics,
            "no partitions assigned within the timeout; the consumer keeps trying"
        );
    }
    Ok(handle)
}

/// A consumed record, detached from the consumer.
struct Raw {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

/// What became of a message.
enum Outcome {
    /// Handled or dead-lettered: its offset may be committed.
    Done,
    /// Stop was requested before it was done: not committed, so it is
    /// delivered again.
    Abandoned,
}

struct ConsumerTask {
    inner: Arc<Inner>,
    consumer: Arc<KafkaConsumer>,
    processed: Arc<Mutex<Processed>>,
    handling: Handling,
    group: String,
    /// The longest wait between two polls.
    poll_tick: Duration,
}

/// Resolves when either the subscription or the whole bus is stopped.
async fn stopped(stop: &mut StopSignal, bus: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = stop.stopped() => {}
        _ = bus.wait_for(|s| *s) => {}
    }
}

/// When stored offsets were last committed, and whether some are waiting.
struct Commits {
    interval: Duration,
    last: tokio::time::Instant,
    pending: bool,
}

impl Commits {
    fn new(interval: Duration) -> Self {
        Commits {
            interval,
            last: tokio::time::Instant::now(),
            pending: false,
        }
    }

    /// A handled message's offset was stored: commit when the interval is
    /// over.
    fn stored(&mut self, consumer: &KafkaConsumer) {
        self.pending = true;
        if self.last.elapsed() >= self.interval {
            self.commit(consumer);
        }
    }

    /// Commits the stored offsets, if any are waiting.
    fn commit(&mut self, consumer: &KafkaConsumer) {
        if !self.pending {
            return;
        }
        self.pending = false;
        self.last = tokio::time::Instant::now();
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Async) {
            // Nothing stored for the current assignment (it was revoked and
            // committed before the rebalance), or the broker is away: the
            // next commit covers it.
            tracing::debug!("commit of stored offsets failed: {e}");
        }
    }
}

/// Records received while a message was in hand, handled before the
/// consumer polls on.
type Kept<'c> = VecDeque<BorrowedMessage<'c>>;

/// What [`ConsumerTask::next_after_breaker`] found.
enum Next<'c> {
    Record(BorrowedMessage<'c>),
    /// The breaker's pause ended: look again.
    Paused,
    Stopped,
}

impl ConsumerTask {
    async fn run(self, mut stop: StopSignal) {
        match &self.handling {
            Handling::One(handler) if self.inner.config.max_in_flight > 1 => {
                let limit = self.inner.config.max_in_flight;
                self.consume_concurrently(handler.as_ref(), &mut stop, limit)
                    .await
            }
            Handling::One(handler) => self.consume(handler.as_ref(), &mut stop).await,
            Handling::Batches(handler, options) => {
                self.consume_batches(handler.as_ref(), *options, &mut stop)
                    .await
            }
        }
        self.finish().await;
    }

    /// The subscriber's breaker (see [`SubscriberBreaker`]), from the
    /// configuration.
    fn subscriber_breaker(&self) -> SubscriberBreaker {
        let config = &self.inner.config;
        SubscriberBreaker::new(
            config.circuit_breaker_threshold,
            config.circuit_breaker_reset(),
            &self.group,
        )
    }

    async fn consume(&self, handler: &dyn Handler, stop: &mut StopSignal) {
        let mut bus_stop = self.inner.shutdown.subscribe();
        let mut breaker = self.subscriber_breaker();
        let mut commits = Commits::new(self.inner.config.commit_interval());
        let mut kept = Kept::new();
        loop {
            if stop.is_stopped() || *bus_stop.borrow() {
                break;
            }
            let record = match self
                .next_after_breaker(&breaker, &mut kept, &mut commits, stop, &mut bus_stop)
                .await
            {
                Next::Record(record) => record,
                Next::Paused => continue,
                Next::Stopped => break,
            };
            let work = self.process(handler, &record, &mut breaker, stop, &mut bus_stop);
            match self
                .keep_polling(work, SLOW_HANDLING, &mut kept, &mut commits)
                .await
            {
                Outcome::Done => {
                    self.mark_processed(&record);
                    commits.stored(&self.consumer);
                }
                Outcome::Abandoned => break,
            }
        }
    }

    /// Like [`ConsumerTask::consume`], in batches: a batch gathers records
    /// from its first one for the window (or until it is full), polling
    /// all the while; a stop ends the gathering and the partial batch is
    /// handed over first. Offsets are stored only once the batch is done.
    async fn consume_batches(
        &self,
        handler: &dyn BatchHandler,
        options: BatchOptions,
        stop: &mut StopSignal,
    ) {
        let mut bus_stop = self.inner.shutdown.subscribe();
        let mut breaker = self.subscriber_breaker();
        let mut commits = Commits::new(self.inner.config.commit_interval());
        let mut kept = Kept::new();
        let max = options.max_messages.max(1);
        loop {
            if stop.is_stopped() || *bus_stop.borrow() {
                break;
            }
            let first = match self
                .next_after_breaker(&breaker, &mut kept, &mut commits, stop, &mut bus_stop)
                .await
            {
                Next::Record(record) => record,
                Next::Paused => continue,
                Next::Stopped => break,
            };
            let deadline = tokio::time::Instant::now() + options.window;
            let mut batch = vec![first];
            while batch.len() < max {
                if let Some(record) = kept.pop_front() {
                    batch.push(record);
                    continue;
                }
                tokio::select! {
                    biased;
                    received = self.consumer.recv() => match received {
                        Ok(record) => batch.push(record),
                        Err(e) => self.consumer.context().report(&e, "gathering a batch"),
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                    () = stopped(stop, &mut bus_stop) => break,
                }
            }
            let work = self.process_batch(handler, &batch, &mut breaker, stop, &mut bus_stop);
            match self
                .keep_polling(work, SLOW_HANDLING, &mut kept, &mut commits)
                .await
            {
                Outcome::Done => {
                    // In consumption order: the last stored offset of each
                    // partition is its highest, plus one.
                    for record in &batch {
                        self.mark_processed(record);
                    }
                    commits.stored(&self.consumer);
                }
                Outcome::Abandoned => break,
            }
        }
    }

    /// Hands a batch to its handler; undecodable records are dead-lettered
    /// first, on their own.
    async fn process_batch(
        &self,
        handler: &dyn BatchHandler,
        records: &[BorrowedMessage<'_>],
        breaker: &mut SubscriberBreaker,
        stop: &mut StopSignal,
        bus_stop: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let mut decoded = Vec::with_capacity(records.len());
        let mut messages = Vec::with_capacity(records.len());
        for record in records {
            match decode(record, &self.inner.config.environment) {
                Ok(message) => {
                    decoded.push(record);
                    messages.push(message);
                }
                Err(reason) => {
                    tracing::error!(
                        topic = %record.topic(), partition = record.partition(), offset = record.offset(),
                        "undecodable message, dead-lettering it: {reason}"
                    );
                    let error = HandlerError::new("decode_error", reason);
                    let raw = detach(record);
                    if let Outcome::Abandoned =
                        Box::pin(self.dead_letter(&raw, None, &error, 0, stop, bus_stop)).await
                    {
                        return Outcome::Abandoned;
                    }
                }
            }
        }
        if messages.is_empty() {
            return Outcome::Done;
        }
        let verdict = handle_batch(
            handler,
            &messages,
            &self.inner.retry,
            stopped(stop, bus_stop),
        )
        .await;
        match &verdict {
            Verdict::Handled => {}
            Verdict::Abandoned => return Outcome::Abandoned,
            Verdict::DeadLetter { error, retries } => {
                tracing::error!(
                    messages = messages.len(),
                    retries,
                    "batch handler failed after all retries, dead-lettering every message: {error}"
                );
                for (record, message) in decoded.iter().zip(&messages) {
                    let raw = detach(record);
                    let outcome = Box::pin(self.dead_letter(
                        &raw,
                        Some(message),
                        error,
                        *retries,
                        stop,
                        bus_stop,
                    ))
                    .await;
                    if let Outcome::Abandoned = outcome {
                        return Outcome::Abandoned;
                    }
                }
            }
        }
        breaker.record(&verdict);
        Outcome::Done
    }

    /// The next record from the consumer. When none is ready at once, the
    /// stored offsets are committed first. `None` when stop is requested.
    /// The next record to handle, a kept one first; while the
    /// subscriber's breaker is open, instead waits out the pause without
    /// consuming (polling all the while).
    async fn next_after_breaker<'c>(
        &'c self,
        breaker: &SubscriberBreaker,
        kept: &mut Kept<'c>,
        commits: &mut Commits,
        stop: &mut StopSignal,
        bus_stop: &mut watch::Receiver<bool>,
    ) -> Next<'c> {
        if let Some(pause) = breaker.pause_left() {
            let pausing = async {
                tokio::select! {
                    () = stopped(&mut *stop, &mut *bus_stop) => true,
                    () = tokio::time::sleep(pause) => false,
                }
            };
            return if self
                .keep_polling(pausing, Duration::ZERO, kept, commits)
                .await
            {
                Next::Stopped
            } else {
                Next::Paused
            };
        }
        if let Some(record) = kept.pop_front() {
            return Next::Record(record);
        }
        match self.next_record(commits, stop, bus_stop).await {
            Some(record) => Next::Record(record),
            None => Next::Stopped,
        }
    }

    async fn next_record(
        &self,
        commits: &mut Commits,
        stop: &mut StopSignal,
        bus_stop: &mut watch::Receiver<bool>,
    ) -> Option<BorrowedMessage<'_>> {
        loop {
            // A record that is ready now keeps the stop signals unpolled
            // (each poll registers a waiter); the caller checks them
            // before every record.
            let ready = tokio::select! {
                biased;
                received = self.consumer.recv() => Some(received),
                () = std::future::ready(()) => None,
            };
            let received = match ready {
                Some(received) => received,
                None => {
                    commits.commit(&self.consumer);
                    tokio::select! {
                        biased;
                        received = self.consumer.recv() => received,
                        () = stopped(stop, bus_stop) => return None,
                        // Polling again now and then keeps an idle consumer
                        // in its group.
                        () = tokio::time::sleep(self.poll_tick) => continue,
                    }
                }
            };
            match received {
                Ok(record) => return Some(record),
                Err(e) => {
                    self.consumer.context().report(&e, "receiving a message");
                    tokio::select! {
                        () = stopped(stop, bus_stop) => return None,
                        () = tokio::time::sleep(self.inner.config.consumer_sleep()) => {}
                    }
                }
            }
        }
    }

    /// Runs `work` (a message's handling, or a pause) while the consumer
    /// keeps polling: once `work` has taken `slow_after`, the assigned
    /// partitions are paused and polled beside it; a record that arrives
    /// anyway is kept for later (its partition paused too). The partitions
    /// are resumed when `work` is done.
    async fn keep_polling<'c, F: Future>(
        &'c self,
        work: F,
        slow_after: Duration,
        kept: &mut Kept<'c>,
        commits: &mut Commits,
    ) -> F::Output {
        tokio::pin!(work);
        tokio::select! {
            biased;
            output = &mut work => return output,
            () = tokio::time::sleep(slow_after) => {}
        }
        // Waiting anyway: commit what was handled before.
        commits.commit(&self.consumer);
        let mut paused = match self.consumer.assignment() {
            Ok(assignment) => assignment,
            Err(e) => {
                tracing::debug!(group = %self.group, "cannot read the assignment: {e}");
                TopicPartitionList::new()
            }
        };
        self.pause(&paused);
        let output = loop {
            tokio::select! {
                biased;
                output = &mut work => break output,
                received = self.consumer.recv() => match received {
                    Ok(record) => {
                        // From a partition assigned meanwhile: bounded to
                        // one record per partition by pausing it now.
                        let mut partition = TopicPartitionList::new();
                        partition.add_partition(record.topic(), record.partition());
                        self.pause(&partition);
                        paused.add_partition(record.topic(), record.partition());
                        kept.push_back(record);
                    }
                    Err(e) => self.consumer.context().report(&e, "polling beside a handler"),
                },
                () = tokio::time::sleep(self.poll_tick) => {}
            }
        };
        if paused.count() > 0
            && let Err(e) = self.consumer.resume(&paused)
        {
            tracing::debug!(group = %self.group, "cannot resume partitions: {e}");
        }
        output
    }

    fn pause(&self, partitions: &TopicPartitionList) {
        if partitions.count() > 0
            && let Err(e) = self.consumer.pause(partitions)
        {
            tracing::debug!(group = %self.group, "cannot pause partitions: {e}");
        }
    }

    /// Stores the offset after the handler and remembers it for the commit
    /// before a rebalance and on stop. From the record, librdkafka finds
    /// its partition without looking the topic up by name (which
    /// [`ConsumerTask::mark_processed_up_to`] does, a copy of the name and
    /// a lock of the client's topics for every message).
    fn mark_processed(&self, record: &BorrowedMessage<'_>) {
        let (topic, partition, offset) = (record.topic(), record.partition(), record.offset());
        self.remember_processed(topic, partition, offset);
        let stored = self.consumer.store_offset_from_message(record);
        self.report_store(stored, topic, partition, offset);
    }

    /// Stores `offset + 1` of a partition, the next to read: every record
    /// up to `offset` is done.
    fn mark_processed_up_to(&self, topic: &str, partition: i32, offset: i64) {
        self.remember_processed(topic, partition, offset);
        let stored = self.consumer.store_offset(topic, partition, offset);
        self.report_store(stored, topic, partition, offset);
    }

    /// Remembers that every record of a partition up to `offset` is done,
    /// for the commits this task makes itself.
    fn remember_processed(&self, topic: &str, partition: i32, offset: i64) {
        let next = offset + 1;
        let mut processed = lock(&self.processed);
        match processed.get_mut(topic) {
            Some(partitions) => {
                partitions.insert(partition, next);
            }
            None => {
                processed.insert(topic.to_owned(), HashMap::from([(partition, next)]));
            }
        }
    }

    fn report_store(&self, stored: KafkaResult<()>, topic: &str, partition: i32, offset: i64) {
        if let Err(e) = stored {
            // The partition was revoked meanwhile; its new owner reads the
            // message again (at-least-once).
            let next = offset + 1;
            tracing::debug!("cannot store offset {next} of {topic}/{partition}: {e}");
        }
    }

    /// Commits the handled offsets and leaves the group.
    async fn finish(self) {
        let processed = std::mem::take(&mut *lock(&self.processed));
        let consumer = self.consumer;
        let group = self.group;
        let joined = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for (topic, partitions) in &processed {
                for (partition, next) in partitions {
                    let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
                }
            }
            if tpl.count() > 0
                && let Err(e) = consumer.commit(&tpl, CommitMode::Sync)
            {
                tracing::warn!(%group, "final commit failed: {e}");
            }
            consumer.unsubscribe();
            drop(consumer);
        })
        .await;
        if let Err(e) = joined {
            tracing::warn!("closing a Kafka consumer failed: {e}");
        }
    }

    async fn process(
        &self,
        handler: &dyn Handler,
        record: &BorrowedMessage<'_>,
        breaker: &mut SubscriberBreaker,
        stop: &mut StopSignal,
        bus_stop: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let (outcome, verdict) = self.handle_record(handler, record, stop, bus_stop).await;
        if let (Outcome::Done, Some(verdict)) = (&outcome, &verdict) {
            breaker.record(verdict);
        }
        outcome
    }

    /// Handles one record: decoded, handed to the handler with retries,
    /// dead-lettered when they are spent. Also returns the handler's
    /// verdict, for the subscriber's breaker (none for a record that does
    /// not decode).
    async fn handle_record(
        &self,
        handler: &dyn Handler,
        record: &BorrowedMessage<'_>,
        stop: &mut StopSignal,
        bus_stop: &mut watch::Receiver<bool>,
    ) -> (Outcome, Option<Verdict>) {
        let message = match decode(record, &self.inner.config.environment) {
            Ok(m) => m,
            Err(reason) => {
                tracing::error!(
                    topic = %record.topic(), partition = record.partition(), offset = record.offset(),
                    "undecodable message, dead-lettering it: {reason}"
                );
                let error = HandlerError::new("decode_error", reason);
                let raw = detach(record);
                let outcome =
                    Box::pin(self.dead_letter(&raw, None, &error, 0, stop, bus_stop)).await;
                return (outcome, None);
            }
        };
        let verdict = handle_message(
            handler,
            &message,
            &self.inner.retry,
            stopped(stop, bus_stop),
        )
        .await;
        let outcome = match &verdict {
            Verdict::Handled => Outcome::Done,
            Verdict::Abandoned => return (Outcome::Abandoned, None),
            Verdict::DeadLetter { error, retries } => {
                tracing::error!(
                    topic = %record.topic(), offset = record.offset(), retries,
                    "handler failed after all retries, dead-lettering: {error}"
                );
                let raw = detach(record);
                Box::pin(self.dead_letter(&raw, Some(&message), error, *retries, stop, bus_stop))
                    .await
            }
        };
        (outcome, Some(verdict))
    }

    /// Publishes the original record to the dead-letter topic with failure
    /// headers, retrying until it is delivered or stop is requested.
    async fn dead_letter(
        &self,
        raw: &Raw,
        message: Option<&BusMessage>,
        error: &HandlerError,
        retries: u32,
        stop: &mut StopSignal,
        bus_stop: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let record =
            dead_letter_record(&self.inner.dead_letter_topic, raw, message, error, retries);
        let mut attempt = 0u32;
        loop {
            match self.inner.deliver(&record).await {
                Ok(()) => {
                    self.inner
                        .dead_lettered
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Outcome::Done;
                }
                Err(e) => {
                    let reason = match e {
                        SendError::CircuitOpen => "circuit breaker open".to_owned(),
                        SendError::Failed { reason, .. } => reason,
                    };
                    tracing::error!(
                        dead_letter_topic = %record.topic,
                        "dead-lettering failed, will retry (offset not committed): {reason}"
                    );
                }
            }
            let pause = self
                .inner
                .retry
                .delay(attempt.min(5))
                .max(Duration::from_millis(100));
            tokio::select! {
                _ = stopped(stop, bus_stop) => return Outcome::Abandoned,
                _ = tokio::time::sleep(pause) => {}
            }
            attempt = attempt.saturating_add(1);
        }
    }
}

fn detach(m: &rdkafka::message::BorrowedMessage<'_>) -> Raw {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Raw {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        headers,
    }
}

/// The bus message of a record: the envelope from the value, the headers
/// from the record headers (derived from the envelope when they are
/// missing), the key from the record key. A record with CloudEvents
/// headers and no ONEX ones carries its payload bare: the envelope is built
/// from the `ce_` headers ([`cloudevents::envelope_of`]), in `environment`.
fn decode<M: Message>(record: &M, environment: &str) -> Result<BusMessage, String> {
    // The headers, read once: librdkafka hands them out a call (and a
    // UTF-8 check) per header, and reading them three times cost a tenth
    // of consuming a message.
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(32);
    let mut names = Vec::new();
    if let Some(headers) = record.headers() {
        for h in headers.iter() {
            match h.value.map(std::str::from_utf8) {
                Some(Ok(value)) => pairs.push((h.key, value)),
                // A name without a (textual) value still counts for
                // telling a bare CloudEvent from an ONEX message.
                _ => names.push(h.key),
            }
        }
    }
    let bare = cloudevents::is_bare(pairs.iter().map(|(name, _)| *name).chain(names));
    let envelope = if bare {
        cloudevents::envelope_of(
            pairs.iter().copied(),
            record.payload().unwrap_or_default(),
            environment,
        )
        .map_err(|e| e.to_string())?
    } else {
        OnexEnvelopeV1::from_json(record.payload().unwrap_or_default())
            .map_err(|e| e.to_string())?
    };
    let header = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
    };
    let known = [
        &envelope.source_service,
        &envelope.event_type,
        &envelope.event_version,
    ];
    let headers =
        EventHeaders::from_pairs_sharing(pairs.iter().copied(), &known).unwrap_or_else(|| {
            let category = header("message_category")
                .and_then(MessageCategory::parse)
                .unwrap_or(MessageCategory::Event);
            EventHeaders::for_envelope(&envelope, category)
        });
    let key = record
        .key()
        .and_then(|k| std::str::from_utf8(k).ok())
        .map_or_else(|| envelope.partition_key(), Text::copied);
    Ok(BusMessage {
        topic: record.topic().to_owned(),
        key,
        headers,
        envelope,
    })
}

/// The dead-letter record: the original value and key, the original
/// headers, and the failure headers (which replace original headers of the
/// same name).
fn dead_letter_record(
    topic: &str,
    raw: &Raw,
    message: Option<&BusMessage>,
    error: &HandlerError,
    retries: u32,
) -> Record {
    let correlation_id = message
        .map(|m| m.headers.correlation_id.to_string())
        .or_else(|| {
            raw.headers
                .iter()
                .find(|(k, _)| k == dlq_headers::CORRELATION_ID)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        })
        .unwrap_or_default();
    let failure: [(&'static str, String); 8] = [
        (dlq_headers::ORIGINAL_TOPIC, raw.topic.clone()),
        (dlq_headers::ORIGINAL_PARTITION, raw.partition.to_string()),
        (dlq_headers::ORIGINAL_OFFSET, raw.offset.to_string()),
        (dlq_headers::FAILURE_REASON, error.message.clone()),
        (
            dlq_headers::FAILURE_TIMESTAMP,
            chrono::Utc::now().to_rfc3339(),
        ),
        (dlq_headers::CORRELATION_ID, correlation_id),
        (dlq_headers::RETRY_COUNT, retries.to_string()),
        (dlq_headers::ERROR_TYPE, error.kind.clone()),
    ];
    let mut headers = RecordHeaders::with_capacity(raw.headers.len() + failure.len(), 512);
    for (name, value) in &raw.headers {
        if !failure.iter().any(|(failed, _)| failed == name) {
            headers.push(name.clone(), &[value]);
        }
    }
    for (name, value) in failure {
        headers.push(name, &[value]);
    }
    Record {
        topic: topic.to_owned(),
        key: raw.key.clone(),
        value: raw.value.clone(),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(headers: Vec<(&str, &str)>) -> Raw {
        Raw {
            topic: "dev.orders.v1".to_owned(),
            partition: 2,
            offset: 41,
            key: Some(b"k".to_vec()),
            value: b"not json".to_vec(),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn dead_letter_headers_replace_originals_of_the_same_name() {
        let r = raw(vec![
            ("retry_count", "0"),
            ("correlation_id", "abc"),
            ("source", "orders"),
        ]);
        let e = HandlerError::new("timeout", "db did not answer");
        let rec = dead_letter_record("dev.dlq.v1", &r, None, &e, 3);
        let get = |name: &str| {
            let all: Vec<_> = rec.headers.iter().filter(|(k, _)| *k == name).collect();
            assert_eq!(all.len(), 1, "{name} appears once");
            String::from_utf8(all[0].1.to_vec()).expect("utf8")
        };
        assert_eq!(get("retry_count"), "3");
        assert_eq!(get("correlation_id"), "abc");
        assert_eq!(get("source"), "orders");
        assert_eq!(get("original_topic"), "dev.orders.v1");
        assert_eq!(get("original_offset"), "41");
        assert_eq!(get("error_type"), "timeout");
        assert_eq!(get("failure_reason"), "db did not answer");
        assert_eq!(rec.value, b"not json");
        assert_eq!(rec.key.as_deref(), Some(&b"k"[..]));
    }

    #[test]
    fn repeated_warnings_are_held_back_and_counted() {
        let throttle = LogThrottle::new(Duration::from_millis(50));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(throttle.admit(), Some(2), "the next one says how many");
        assert_eq!(throttle.admit(), None);
    }

    #[test]
    fn consumer_settings_follow_the_config() {
        let config = KafkaConfig {
            max_poll_interval_ms: 45_000,
            commit_interval_ms: 250,
            fetch_wait_max_ms: 7,
            ..KafkaConfig::default()
        };
        let c = consumer_config(&config, "g");
        assert_eq!(c.get("max.poll.interval.ms"), Some("45000"));
        assert_eq!(c.get("fetch.wait.max.ms"), Some("7"));
        assert_eq!(c.get("auto.commit.interval.ms"), Some("250"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("enable.sparse.connections"), Some("false"));
    }

    #[test]
    fn undecodable_value_is_an_error() {
        let record = rdkafka::message::OwnedMessage::new(
            Some(b"not json".to_vec()),
            Some(b"k".to_vec()),
            "dev.orders.v1".to_owned(),
            rdkafka::Timestamp::NotAvailable,
            2,
            41,
            None,
        );
        assert!(decode(&record, "dev").is_err());
    }
}
