//! Consumers of the Kafka bus: at-least-once, with retries and a
//! dead-letter topic.
//!
//! Offsets are committed only for messages whose handler succeeded (or that
//! were dead-lettered): librdkafka's automatic offset store is off
//! (`enable.auto.offset.store=false`); the bus stores a message's offset
//! after its handler and remembers it, so that background commits
//! (`enable.auto.commit=true`), the explicit commits (`false`), the commit
//! before a rebalance takes partitions away and the final commit on stop
//! all cover handled messages only.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use rdkafka::{
    ClientConfig, ClientContext, Message, Offset, TopicPartitionList,
    config::FromClientConfigAndContext,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer},
    error::KafkaError,
    message::{BorrowedMessage, Headers},
};
use tokio::sync::{oneshot, watch};

use super::{Inner, SendError, dlq_headers, lock, producer::Record};
use crate::{
    bus::{BusMessage, Handler, HandlerError, StopSignal, Subscription, SubscriptionHandle},
    config::KafkaConfig,
    consume::{SubscriberBreaker, Verdict, handle_message},
    envelope::OnexEnvelopeV1,
    error::BusError,
    event::MessageCategory,
    headers::EventHeaders,
};

/// Offsets of handled messages, per topic and partition: the next offset to
/// read. Keyed by topic first so that recording a message's offset looks the
/// topic up by `&str`, without allocating.
type Processed = HashMap<String, HashMap<i32, i64>>;

/// Consumer callbacks: commit handled offsets before partitions are
/// revoked, and signal the first assignment.
struct ConsumerCallbacks {
    processed: Arc<Mutex<Processed>>,
    assigned: watch::Sender<bool>,
}

impl ClientContext for ConsumerCallbacks {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%reason, "Kafka consumer: {error}");
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
            if tpl.count() > 0 {
                if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                    tracing::warn!("commit before rebalance failed: {e}");
                }
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
        .set("auto.offset.reset", config.auto_offset_reset.as_str())
        .set(
            "enable.auto.commit",
            if config.enable_auto_commit {
                "true"
            } else {
                "false"
            },
        )
        // Offsets are stored by the bus after the handler, never before.
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "true")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000");
    c
}

/// Creates the consumer, starts its task and waits (up to the timeout) for
/// its first partition assignment, so that messages published after this
/// returns reach it even with `auto_offset_reset=latest`.
pub(super) async fn subscribe(
    inner: Arc<Inner>,
    subscription: Subscription,
    handler: Arc<dyn Handler>,
) -> Result<SubscriptionHandle, BusError> {
    if subscription.topics.is_empty() {
        return Err(BusError::Other(
            "a subscription needs at least one topic".to_owned(),
        ));
    }
    let processed = Arc::new(Mutex::new(Processed::new()));
    let (assigned_tx, mut assigned_rx) = watch::channel(false);
    let callbacks = ConsumerCallbacks {
        processed: Arc::clone(&processed),
        assigned: assigned_tx,
    };
    let consumer = KafkaConsumer::from_config_and_context(
        &consumer_config(&inner.config, &subscription.group),
        callbacks,
    )
    .map_err(|e| BusError::Other(format!("cannot create the Kafka consumer: {e}")))?;
    let topics: Vec<&str> = subscription.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
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
    let task = ConsumerTask {
        inner,
        consumer,
        processed,
        handler,
        group: subscription.group.clone(),
    };
    let handle = SubscriptionHandle::spawn(move |stop| async move {
        task.run(stop).await;
        let _ = done_tx.send(());
    });
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
    handler: Arc<dyn Handler>,
    group: String,
}

/// Resolves when either the subscription or the whole bus is stopped.
async fn stopped(stop: &mut StopSignal, bus: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = stop.stopped() => {}
        _ = bus.wait_for(|s| *s) => {}
    }
}

impl ConsumerTask {
    async fn run(self, mut stop: StopSignal) {
        let mut bus_stop = self.inner.shutdown.subscribe();
        let sleep = self.inner.config.consumer_sleep();
        let config = &self.inner.config;
        let mut breaker = SubscriberBreaker::new(
            config.circuit_breaker_threshold,
            config.circuit_breaker_reset(),
            &self.group,
        );
        loop {
            if stop.is_stopped() || *bus_stop.borrow() {
                break;
            }
            if let Some(pause) = breaker.pause_left() {
                tokio::select! {
                    _ = stopped(&mut stop, &mut bus_stop) => break,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
            // The record first: while records flow, the stop signals are
            // not polled (each poll registers a waiter); the check above
            // sees a stop before the next record.
            let received = tokio::select! {
                biased;
                r = self.consumer.recv() => r,
                _ = stopped(&mut stop, &mut bus_stop) => break,
            };
            // Handled in place: the record is copied out of librdkafka only
            // when it has to be dead-lettered.
            let record = match received {
                Ok(record) => record,
                Err(e) => {
                    tracing::debug!(group = %self.group, "Kafka consume error: {e}");
                    tokio::select! {
                        _ = stopped(&mut stop, &mut bus_stop) => break,
                        _ = tokio::time::sleep(sleep) => continue,
                    }
                }
            };
            match self
                .process(&record, &mut breaker, &mut stop, &mut bus_stop)
                .await
            {
                Outcome::Done => self.mark_processed(&record),
                Outcome::Abandoned => break,
            }
        }
        self.finish().await;
    }

    /// Stores the offset after the handler, and commits it explicitly
    /// when background commits are off.
    fn mark_processed(&self, record: &BorrowedMessage<'_>) {
        let (topic, partition) = (record.topic(), record.partition());
        let next = record.offset() + 1;
        {
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
        // Stores `offset + 1`, the next one to read.
        if let Err(e) = self.consumer.store_offset_from_message(record) {
            // The partition was revoked meanwhile; its new owner reads the
            // message again (at-least-once).
            tracing::debug!("cannot store offset {next} of {topic}/{partition}: {e}");
        }
        if !self.inner.config.enable_auto_commit {
            let mut tpl = TopicPartitionList::new();
            if tpl
                .add_partition_offset(topic, partition, Offset::Offset(next))
                .is_ok()
            {
                if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                    tracing::debug!("commit of {topic}/{partition} failed: {e}");
                }
            }
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
            if tpl.count() > 0 {
                if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                    tracing::warn!(%group, "final commit failed: {e}");
                }
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
        record: &BorrowedMessage<'_>,
        breaker: &mut SubscriberBreaker,
        stop: &mut StopSignal,
        bus_stop: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let message = match decode(record) {
            Ok(m) => m,
            Err(reason) => {
                tracing::error!(
                    topic = %record.topic(), partition = record.partition(), offset = record.offset(),
                    "undecodable message, dead-lettering it: {reason}"
                );
                let error = HandlerError::new("decode_error", reason);
                let raw = detach(record);
                return Box::pin(self.dead_letter(&raw, None, &error, 0, stop, bus_stop)).await;
            }
        };
        let verdict = handle_message(
            self.handler.as_ref(),
            &message,
            &self.inner.retry,
            stopped(stop, bus_stop),
        )
        .await;
        let outcome = match &verdict {
            Verdict::Handled => Outcome::Done,
            Verdict::Abandoned => return Outcome::Abandoned,
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
        if let Outcome::Done = outcome {
            breaker.record(&verdict);
        }
        outcome
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
/// missing), the key from the record key.
fn decode<M: Message>(record: &M) -> Result<BusMessage, String> {
    let envelope = OnexEnvelopeV1::from_json(record.payload().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let header = |name: &str| {
        record.headers().and_then(|hs| {
            hs.iter()
                .find(|h| h.key == name)
                .and_then(|h| std::str::from_utf8(h.value?).ok())
        })
    };
    let pairs = record.headers().into_iter().flat_map(|hs| {
        hs.iter()
            .filter_map(|h| Some((h.key, std::str::from_utf8(h.value?).ok()?)))
    });
    let headers = EventHeaders::from_pairs(pairs).unwrap_or_else(|| {
        let category = header("message_category")
            .and_then(MessageCategory::parse)
            .unwrap_or(MessageCategory::Event);
        EventHeaders::for_envelope(&envelope, category)
    });
    let key = record
        .key()
        .and_then(|k| std::str::from_utf8(k).ok())
        .map_or_else(|| envelope.partition_key(), str::to_owned);
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
    let mut headers: Vec<(Cow<'static, str>, Vec<u8>)> = raw
        .headers
        .iter()
        .filter(|(k, _)| !failure.iter().any(|(name, _)| name == k))
        .map(|(k, v)| (Cow::Owned(k.clone()), v.clone()))
        .collect();
    headers.extend(
        failure
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), v.into_bytes())),
    );
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
            let all: Vec<_> = rec.headers.iter().filter(|(k, _)| k == name).collect();
            assert_eq!(all.len(), 1, "{name} appears once");
            String::from_utf8(all[0].1.clone()).expect("utf8")
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
        assert!(decode(&record).is_err());
    }
}
