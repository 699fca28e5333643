//! The [`Event`] trait: compile-time identity of a typed event.

use serde::{Serialize, de::DeserializeOwned};

use crate::{envelope::OnexEnvelopeV1, error::DecodeError};

/// The three message categories of the ONEX event bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageCategory {
    /// A fact that happened (immutable, past tense).
    Event,
    /// An instruction to perform an action (imperative).
    Command,
    /// A user intent that needs interpretation (declarative).
    Intent,
}

impl MessageCategory {
    /// The header value: `EVENT`, `COMMAND` or `INTENT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageCategory::Event => "EVENT",
            MessageCategory::Command => "COMMAND",
            MessageCategory::Intent => "INTENT",
        }
    }

    /// Parses a header value written by [`MessageCategory::as_str`].
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "EVENT" => Some(MessageCategory::Event),
            "COMMAND" => Some(MessageCategory::Command),
            "INTENT" => Some(MessageCategory::Intent),
            _ => None,
        }
    }
}

impl std::fmt::Display for MessageCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed event payload whose identity is fixed at compile time.
///
/// Generated code implements this for every event of a contract. Because the
/// topic is an associated constant, [`crate::Publisher::publish`] cannot send
/// an event to another event's topic.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event type string, e.g. `effect.write_record.started`.
    const EVENT_TYPE: &'static str;
    /// The event schema version, e.g. `1.0`.
    const EVENT_VERSION: &'static str;
    /// Whether this is an event, a command or an intent.
    const CATEGORY: MessageCategory;
    /// The topic without its namespace, e.g.
    /// `postgres_writer.effect.write_record.started.v1`. The bus prefixes the
    /// configured environment at run time.
    const TOPIC: &'static str;

    /// Decodes this event from an envelope, checking the event type first.
    fn from_envelope(envelope: &OnexEnvelopeV1) -> Result<Self, DecodeError> {
        if envelope.event_type != Self::EVENT_TYPE {
            return Err(DecodeError::UnknownEventType {
                event_type: envelope.event_type.as_str().to_owned(),
                expected: Self::EVENT_TYPE.to_owned(),
            });
        }
        envelope
            .payload_as()
            .map_err(|source| DecodeError::Payload {
                event_type: Self::EVENT_TYPE.to_owned(),
                source,
            })
    }
}

/// All the events of one node, as one enum that decodes an envelope by its
/// event type. Generated for every contract.
pub trait EventSet: Sized {
    /// Every event type this set decodes, in a stable order.
    const EVENT_TYPES: &'static [&'static str];

    /// Decodes the envelope into the variant its event type names.
    fn decode(envelope: &OnexEnvelopeV1) -> Result<Self, DecodeError>;

    /// The event type of this value.
    fn event_type(&self) -> &'static str;
}
