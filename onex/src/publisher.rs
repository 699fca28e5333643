//! Typed publishing: events in, envelopes with headers and keys out.

use std::{collections::BTreeMap, sync::Arc};

use uuid::Uuid;

use crate::{
    bus::{BusMessage, Delivery, EventBus},
    envelope::{CONTRACT_HASH_KEY, OnexEnvelopeV1, SourceInfo},
    error::BusError,
    event::Event,
    text::Text,
    topic,
};

/// What [`Publisher::publish`] did: the envelope's event id and what
/// became of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The envelope's event id (consumers dedupe on it).
    pub event_id: Uuid,
    /// Acknowledged, spooled or only buffered in memory.
    pub delivery: Delivery,
}

/// Publishes typed events of one node on a bus.
#[derive(Clone)]
pub struct Publisher {
    bus: Arc<dyn EventBus>,
    source: Arc<SourceInfo>,
    /// The source's node id as envelopes carry it, rendered once.
    node_id: Text,
    /// The contract hash as envelopes' metadata carries it.
    contract_hash: Option<serde_json::Value>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher for a node on a bus.
    pub fn new(bus: Arc<dyn EventBus>, source: SourceInfo) -> Self {
        Publisher {
            bus,
            node_id: crate::envelope::uuid_string(source.node_id).into(),
            contract_hash: source.contract_hash.as_deref().map(serde_json::Value::from),
            source: Arc::new(source),
        }
    }

    /// The node identity stamped on every envelope.
    pub fn source(&self) -> &SourceInfo {
        &self.source
    }

    /// The bus this publisher sends on.
    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    /// The full topic of `E` in this publisher's environment.
    pub fn topic_of<E: Event>(&self) -> String {
        topic::qualified(&self.source.environment, E::TOPIC)
    }

    /// Builds the message for an event without sending it.
    pub fn message<E: Event>(
        &self,
        event: &E,
        correlation_id: Option<Uuid>,
        metadata: BTreeMap<String, serde_json::Value>,
    ) -> Result<BusMessage, BusError> {
        // Refused here rather than by the broker, and on every bus alike,
        // so that a node tried on the in-memory bus fails as on Kafka.
        let topic = self.topic_of::<E>();
        topic::check(&topic)?;
        let mut envelope =
            OnexEnvelopeV1::wrap_from(event, &self.source, self.node_id.clone(), correlation_id)?;
        envelope.metadata = metadata;
        if let Some(hash) = &self.contract_hash {
            envelope
                .metadata
                .entry(CONTRACT_HASH_KEY.to_owned())
                .or_insert_with(|| hash.clone());
        }
        Ok(BusMessage::new(topic, envelope, E::CATEGORY))
    }

    /// Publishes an event on its own topic; returns the envelope's event id
    /// and the [`Delivery`].
    pub async fn publish<E: Event>(
        &self,
        event: &E,
        correlation_id: Option<Uuid>,
    ) -> Result<Published, BusError> {
        self.publish_with_metadata(event, correlation_id, BTreeMap::new())
            .await
    }

    /// Publishes an event with envelope metadata.
    pub async fn publish_with_metadata<E: Event>(
        &self,
        event: &E,
        correlation_id: Option<Uuid>,
        metadata: BTreeMap<String, serde_json::Value>,
    ) -> Result<Published, BusError> {
        let message = self.message(event, correlation_id, metadata)?;
        let event_id = message.envelope.event_id;
        let delivery = self.bus.publish(Arc::new(message)).await?;
        Ok(Published { event_id, delivery })
    }
}
