//! The `OnexEnvelopeV1` envelope every event travels in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    error::{BusError, DecodeError},
    event::Event,
};

/// The envelope format version written by this crate.
pub const ENVELOPE_VERSION: &str = "1.0";

/// Who publishes: the identity a node stamps on every envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The node's id, fresh for each process.
    pub node_id: Uuid,
    /// The service name, e.g. `postgres_writer`.
    pub service: String,
    /// The node's semver version.
    pub version: String,
    /// The environment (topic namespace), e.g. `dev`.
    pub environment: String,
}

impl SourceInfo {
    /// A source with a fresh node id.
    pub fn new(
        service: impl Into<String>,
        version: impl Into<String>,
        environment: impl Into<String>,
    ) -> Self {
        SourceInfo {
            node_id: Uuid::new_v4(),
            service: service.into(),
            version: version.into(),
            environment: environment.into(),
        }
    }
}

/// The ONEX envelope, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnexEnvelopeV1 {
    /// Always [`ENVELOPE_VERSION`].
    pub envelope_version: String,
    /// Unique id of this event; consumers dedupe on it.
    pub event_id: Uuid,
    /// The event type, e.g. `effect.write_record.started`.
    pub event_type: String,
    /// The payload schema version.
    pub event_version: String,
    /// When the event was created (UTC).
    pub event_timestamp: DateTime<Utc>,
    /// The publishing node's id.
    pub source_node_id: String,
    /// The publishing service.
    pub source_service: String,
    /// The publishing service's version.
    pub source_version: String,
    /// Correlates the events of one request.
    pub correlation_id: Option<Uuid>,
    /// The environment the event was published in.
    pub environment: String,
    /// The event's payload.
    pub payload: serde_json::Value,
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
        let payload = serde_json::to_value(event).map_err(|source| BusError::Serialize {
            event_type: E::EVENT_TYPE.to_owned(),
            source,
        })?;
        Ok(OnexEnvelopeV1 {
            envelope_version: ENVELOPE_VERSION.to_owned(),
            event_id: Uuid::new_v4(),
            event_type: E::EVENT_TYPE.to_owned(),
            event_version: E::EVENT_VERSION.to_owned(),
            event_timestamp: Utc::now(),
            source_node_id: source.node_id.to_string(),
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

    /// The envelope as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Room for a typical envelope up front: growing the buffer from
        // empty costs several reallocations per message. Under 1 KiB, as
        // glibc consolidates its free lists for every larger allocation.
        let mut out = Vec::with_capacity(512);
        // A Value-backed struct with string keys always serializes.
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
    pub fn partition_key(&self) -> String {
        match self.correlation_id {
            Some(id) => id.to_string(),
            None => self.source_node_id.clone(),
        }
    }
}
