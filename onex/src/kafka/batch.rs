//! Publishing a batch of messages ([`EventBus::publish_many`]) on Kafka:
//! every record is handed to librdkafka at once and one task awaits their
//! delivery reports together ([`BatchReports`]), instead of a future, a
//! oneshot and a wake-up per message. What the batch does not deliver goes
//! through [`EventBus::publish`], with its retries, breaker and spool, so
//! a batch promises what a publish each would.

use std::{sync::Arc, sync::atomic::Ordering, time::Instant};

use futures_util::future::join_all;
use rdkafka::error::KafkaError;

use super::{KafkaBus, SendError, producer, producer::BatchReports, record_of};
use crate::{
    bus::{BusMessage, Delivery, EventBus},
    error::BusError,
};

impl KafkaBus {
    pub(super) async fn publish_batch(
        &self,
        messages: Vec<Arc<BusMessage>>,
    ) -> Vec<Result<Delivery, BusError>> {
        let inner = &self.inner;
        let ready = inner.check_open().is_ok() && !inner.is_degraded() && !inner.holds_messages();
        // A batch is one attempt of each of its messages.
        let permit = if ready { inner.breaker.permit() } else { None };
        let Some(permit) = permit else {
            // Held, refused or closed: as a publish each says.
            return join_all(messages.into_iter().map(|m| self.publish(m))).await;
        };
        let slot = inner.current_producer();
        let batch = BatchReports::new(messages.len());
        let deadline = Instant::now() + inner.config.timeout();
        for (index, message) in messages.iter().enumerate() {
            let record = record_of(message, inner.config.cloudevents);
            if let Err(e) = slot
                .enqueue_in_batch(&record, &batch, index, deadline)
                .await
            {
                batch.report(index, Err(e));
            }
        }
        let failures = batch.wait().await;
        let delivered = messages.len() - failures.len();
        inner
            .delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
        let mut outcomes: Vec<Result<Delivery, BusError>> = messages
            .iter()
            .map(|_| Ok(Delivery::Acknowledged))
            .collect();
        if failures.is_empty() {
            permit.success();
            inner.note_success();
            return outcomes;
        }
        // The failed messages' own publishes count their failures.
        drop(permit);
        if slot.is_fatal() {
            inner.rebuild_producer(&slot);
        }
        let again = failures.into_iter().map(|(index, error)| {
            let message = Arc::clone(&messages[index]);
            async move { (index, self.after_batch(message, error).await) }
        });
        for (index, outcome) in join_all(again).await {
            outcomes[index] = outcome;
        }
        outcomes
    }

    /// A message the batch did not deliver: a fault of the message itself
    /// fails it; anything else is published again, as one.
    async fn after_batch(
        &self,
        message: Arc<BusMessage>,
        error: KafkaError,
    ) -> Result<Delivery, BusError> {
        if producer::is_retriable(&error) || producer::is_purged(&error) {
            return self.publish(message).await;
        }
        let reason = error.to_string();
        self.inner.note_failure(&reason);
        Err(SendError::Failed {
            attempts: 1,
            reason,
            retriable: false,
        }
        .into_bus_error(&message.topic))
    }
}
