//! The `OnexEnvelopeV1` envelope every event travels in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{
    error::{BusError, DecodeError},
    event::Event,
    text::Text,
};

/// The envelope format version written by this crate.
pub const ENVELOPE_VERSION: &str = "1.0";

/// A UUID as hyphenated lower-case text: what `to_string` gives, without
/// the formatting machinery (it is rendered several times per message).
pub(crate) fn uuid_string(id: Uuid) -> String {
    id.hyphenated()
        .encode_lower(&mut Uuid::encode_buffer())
        .to_owned()
}

/// Who publishes: the identity a node stamps on every envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The node's id, fresh for each process.
    pub node_id: Uuid,
    /// The service name, e.g. `postgres_writer`.
    pub service: Text,
    /// The node's semver version.
    pub version: Text,
    /// The environment (topic namespace), e.g. `dev`.
    pub environment: Text,
    /// The hash of the contract the node was generated from (its
    /// `CONTRACT_HASH`): every envelope it publishes carries it in its
    /// metadata under [`CONTRACT_HASH_KEY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_hash: Option<String>,
}

/// The envelope metadata key of the publisher's contract hash.
pub const CONTRACT_HASH_KEY: &str = "contract_hash";

impl SourceInfo {
    /// A source with a fresh node id.
    pub fn new(
        service: impl Into<String>,
        version: impl Into<String>,
        environment: impl Into<String>,
    ) -> Self {
        SourceInfo {
            node_id: Uuid::new_v4(),
            service: Text::from(service.into()),
            version: Text::from(version.into()),
            environment: Text::from(environment.into()),
            contract_hash: None,
        }
    }

    /// The same source, stamping `hash` (a generated `CONTRACT_HASH`) on
    /// every envelope.
    pub fn with_contract_hash(mut self, hash: impl Into<String>) -> Self {
        self.contract_hash = Some(hash.into());
        self
    }
}

/// The ONEX envelope, version 1.
///
/// The payload is kept as the JSON text it arrived as (or was serialized
/// to): parsing an envelope does not build a tree of the event, and the
/// typed event is decoded from that text once, by [`OnexEnvelopeV1::decode`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnexEnvelopeV1 {
    /// Always [`ENVELOPE_VERSION`].
    pub envelope_version: Text,
    /// Unique id of this event; consumers dedupe on it.
    pub event_id: Uuid,
    /// The event type, e.g. `effect.write_record.started`.
    pub event_type: Text,
    /// The payload schema version.
    pub event_version: Text,
    /// When the event was created (UTC).
    #[serde(with = "crate::time")]
    pub event_timestamp: DateTime<Utc>,
    /// The publishing node's id.
    pub source_node_id: Text,
    /// The publishing service.
    pub source_service: Text,
    /// The publishing service's version.
    pub source_version: Text,
    /// Correlates the events of one request.
    pub correlation_id: Option<Uuid>,
    /// The environment the event was published in.
    pub environment: Text,
    /// The event's payload, as JSON text. [`OnexEnvelopeV1::decode`] and
    /// [`OnexEnvelopeV1::payload_as`] decode it, [`OnexEnvelopeV1::payload_value`]
    /// gives it as a `serde_json::Value`, [`OnexEnvelopeV1::set_payload`]
    /// replaces it.
    pub payload: Box<RawValue>,
    /// Observability metadata (node type, operation, lifecycle stage, ...).
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl OnexEnvelopeV1 {
    /// Wraps a typed event.
    pub fn wrap<E: Event>(
        event: &E,
        source: &SourceInfo,
        correlation_id: Option<Uuid>,
    ) -> Result<Self, BusError> {
        Self::wrap_from(
            event,
            source,
            uuid_string(source.node_id).into(),
            correlation_id,
        )
    }

    /// [`OnexEnvelopeV1::wrap`] with the source's node id already rendered
    /// (a [`Publisher`](crate::Publisher) renders it once).
    pub(crate) fn wrap_from<E: Event>(
        event: &E,
        source: &SourceInfo,
        source_node_id: Text,
        correlation_id: Option<Uuid>,
    ) -> Result<Self, BusError> {
        let payload =
            serde_json::value::to_raw_value(&crate::fast_str::Whole(event)).map_err(|source| {
                BusError::Serialize {
                    event_type: E::EVENT_TYPE.to_owned(),
                    source,
                }
            })?;
        Ok(OnexEnvelopeV1 {
            envelope_version: Text::from_static(ENVELOPE_VERSION),
            event_id: Uuid::new_v4(),
            event_type: Text::from_static(E::EVENT_TYPE),
            event_version: Text::from_static(E::EVENT_VERSION),
            event_timestamp: Utc::now(),
            source_node_id,
            source_service: source.service.clone(),
            source_version: source.version.clone(),
            correlation_id,
            environment: source.environment.clone(),
            payload,
            metadata: BTreeMap::new(),
        })
    }

    /// Decodes the payload as `E`, checking the event type.
    pub fn decode<E: Event>(&self) -> Result<E, DecodeError> {
        E::from_envelope(self)
    }

    /// Decodes the payload as any deserializable type, without checking the
    /// event type (for a payload that is an operation's input rather than
    /// an [`Event`]).
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.payload.get())
    }

    /// The payload as a `serde_json::Value`, for code that inspects it
    /// without a type (it is parsed on each call).
    pub fn payload_value(&self) -> serde_json::Value {
        // The text was valid JSON when it became a `RawValue`, within the
        // same nesting limit: it parses again.
        serde_json::from_str(self.payload.get()).unwrap_or(serde_json::Value::Null)
    }

    /// Replaces the payload with `payload` serialized.
    pub fn set_payload<T: Serialize + ?Sized>(
        &mut self,
        payload: &T,
    ) -> Result<(), serde_json::Error> {
        self.payload = serde_json::value::to_raw_value(payload)?;
        Ok(())
    }

    /// The envelope as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Room for a typical envelope up front: growing the buffer from
        // empty costs several reallocations per message. Under 1 KiB, as
        // glibc consolidates its free lists for every larger allocation.
        let mut out = Vec::with_capacity(512);
        // Strings, ids, a timestamp, JSON text and a map with string keys:
        // this always serializes.
        match serde_json::to_writer(&mut out, self) {
            Ok(()) => out,
            Err(_) => Vec::new(),
        }
    }

    /// Parses an envelope from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes).map_err(DecodeError::Envelope)
    }

    /// The partition key: the correlation id, falling back to the node id.
    pub fn partition_key(&self) -> Text {
        match self.correlation_id {
            Some(id) => uuid_string(id).into(),
            None => self.source_node_id.clone(),
        }
    }
}

impl PartialEq for OnexEnvelopeV1 {
    /// Field by field; payloads are equal when their JSON texts are.
    fn eq(&self, other: &Self) -> bool {
        self.envelope_version == other.envelope_version
            && self.event_id == other.event_id
            && self.event_type == other.event_type
            && self.event_version == other.event_version
            && self.event_timestamp == other.event_timestamp
            && self.source_node_id == other.source_node_id
            && self.source_service == other.source_service
            && self.source_version == other.source_version
            && self.correlation_id == other.correlation_id
            && self.environment == other.environment
            && self.payload.get() == other.payload.get()
            && self.metadata == other.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MessageCategory;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Placed {
        order_no: u64,
        item: String,
    }

    impl Event for Placed {
        const EVENT_TYPE: &'static str = "orders.order.placed";
        const EVENT_VERSION: &'static str = "1.0";
        const CATEGORY: MessageCategory = MessageCategory::Event;
        const TOPIC: &'static str = "orders.order.placed.v1";
    }

    fn envelope() -> OnexEnvelopeV1 {
        let source = SourceInfo::new("orders", "1.0.0", "dev");
        let event = Placed {
            order_no: 7,
            item: "tea".to_owned(),
        };
        OnexEnvelopeV1::wrap(&event, &source, Some(Uuid::new_v4())).expect("wraps")
    }

    #[test]
    fn the_wire_format_keeps_its_fields_in_order_and_round_trips() {
        let envelope = envelope();
        let text = String::from_utf8(envelope.to_json()).expect("UTF-8");
        let fields = [
            "envelope_version",
            "event_id",
            "event_type",
            "event_version",
            "event_timestamp",
            "source_node_id",
            "source_service",
            "source_version",
            "correlation_id",
            "environment",
            "payload",
            "metadata",
        ];
        let at: Vec<usize> = fields
            .iter()
            .map(|f| text.find(&format!("\"{f}\":")).expect(f))
            .collect();
        assert!(at.is_sorted(), "fields in order: {text}");
        assert!(text.contains(r#""payload":{"order_no":7,"item":"tea"},"#));
        let back = OnexEnvelopeV1::from_json(text.as_bytes()).expect("parses");
        assert_eq!(back, envelope);
        assert_eq!(back.source_node_id, envelope.source_node_id);
        assert_eq!(
            back.decode::<Placed>().expect("decodes"),
            Placed {
                order_no: 7,
                item: "tea".to_owned()
            }
        );
    }

    #[test]
    fn a_payload_is_kept_as_it_came_and_can_be_read_untyped_or_replaced() {
        let mut envelope = envelope();
        let mut value: serde_json::Value =
            serde_json::from_slice(&envelope.to_json()).expect("JSON");
        value["payload"] = serde_json::json!({"item": "tea", "order_no": 8});
        let spaced = serde_json::to_string_pretty(&value).expect("JSON");
        let back = OnexEnvelopeV1::from_json(spaced.as_bytes()).expect("parses");
        assert_eq!(back.payload_value()["order_no"], 8);
        assert_eq!(back.payload_as::<Placed>().expect("decodes").order_no, 8);
        envelope
            .set_payload(&serde_json::json!({"order_no": "eight"}))
            .expect("a payload");
        assert!(matches!(
            envelope.decode::<Placed>(),
            Err(DecodeError::Payload { .. })
        ));
    }

    #[test]
    fn unknown_fields_and_invalid_payloads_are_refused() {
        let text = String::from_utf8(envelope().to_json()).expect("UTF-8");
        let extra = text.replacen('{', r#"{"extra":1,"#, 1);
        assert!(OnexEnvelopeV1::from_json(extra.as_bytes()).is_err());
        let broken = text.replace(r#""order_no":7"#, r#""order_no":7,"#);
        assert!(OnexEnvelopeV1::from_json(broken.as_bytes()).is_err());
        let source = SourceInfo::new("orders", "1.0.0", "dev");
        assert_eq!(
            OnexEnvelopeV1::wrap(
                &Placed {
                    order_no: 1,
                    item: String::new()
                },
                &source,
                None
            )
            .expect("wraps")
            .partition_key(),
            source.node_id.to_string()
        );
    }
}
