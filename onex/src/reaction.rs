//! What a node's typed reaction to another node's event learns besides the
//! event itself: who sent it, in which flow, and the envelope's metadata.
//!
//! A contract's `event:` subscription becomes a method of the node's
//! generated `Handler` trait that takes the producer's event type and a
//! [`ReactionContext`]; the generated dispatch builds the context from the
//! message with [`ReactionContext::from_message`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::bus::BusMessage;

/// Where a consumed event comes from and the flow it belongs to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReactionContext {
    /// The flow the event belongs to: the envelope's correlation id, or a
    /// fresh one when the producer sent none (see
    /// [`ReactionContext::correlated`]). Pass it on to what the reaction
    /// publishes, so that the flow stays one.
    pub correlation_id: Uuid,
    /// Whether the envelope carried the correlation id.
    pub correlated: bool,
    /// The id of the event.
    pub event_id: Uuid,
    /// The event's schema version, as the producer stamped it.
    pub event_version: crate::Text,
    /// When the producer created the event.
    pub event_timestamp: DateTime<Utc>,
    /// The producing node's id.
    pub source_node_id: crate::Text,
    /// The producing node's service.
    pub source_service: crate::Text,
    /// The producing node's version.
    pub source_version: crate::Text,
    /// The full topic the event arrived on, environment included.
    pub topic: String,
    /// The envelope's metadata.
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl ReactionContext {
    /// The context of a consumed message.
    pub fn from_message(message: &BusMessage) -> Self {
        let envelope = &message.envelope;
        ReactionContext {
            correlation_id: envelope.correlation_id.unwrap_or_else(Uuid::new_v4),
            correlated: envelope.correlation_id.is_some(),
            event_id: envelope.event_id,
            event_version: envelope.event_version.clone(),
            event_timestamp: envelope.event_timestamp,
            source_node_id: envelope.source_node_id.clone(),
            source_service: envelope.source_service.clone(),
            source_version: envelope.source_version.clone(),
            topic: message.topic.clone(),
            metadata: envelope.metadata.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, MessageCategory, OnexEnvelopeV1, SourceInfo};

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Written {
        id: u32,
    }

    impl Event for Written {
        const EVENT_TYPE: &'static str = "effect.written";
        const EVENT_VERSION: &'static str = "1.0";
        const CATEGORY: MessageCategory = MessageCategory::Event;
        const TOPIC: &'static str = "writer.effect.written.v1";
    }

    fn message(correlation_id: Option<Uuid>) -> BusMessage {
        let source = SourceInfo::new("writer", "1.0.0", "dev");
        let envelope = OnexEnvelopeV1::wrap(&Written { id: 7 }, &source, correlation_id)
            .expect("the event serializes");
        BusMessage::new(
            "dev.writer.effect.written.v1".to_owned(),
            envelope,
            MessageCategory::Event,
        )
    }

    #[test]
    fn the_context_carries_the_envelope_and_the_topic() {
        let correlation_id = Uuid::new_v4();
        let message = message(Some(correlation_id));
        let context = ReactionContext::from_message(&message);
        assert_eq!(context.correlation_id, correlation_id);
        assert!(context.correlated);
        assert_eq!(context.event_id, message.envelope.event_id);
        assert_eq!(context.source_service, "writer");
        assert_eq!(context.source_node_id, message.envelope.source_node_id);
        assert_eq!(context.topic, "dev.writer.effect.written.v1");
    }

    #[test]
    fn an_uncorrelated_event_gets_a_fresh_correlation_id() {
        let context = ReactionContext::from_message(&message(None));
        assert!(!context.correlated);
        assert_ne!(context.correlation_id, Uuid::nil());
    }
}
