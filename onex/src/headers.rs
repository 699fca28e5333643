//! Message headers (seed 003's `ModelEventHeaders`), carried beside the
//! envelope as Kafka record headers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    envelope::{OnexEnvelopeV1, uuid_string},
    event::MessageCategory,
};

/// The content type of every envelope: JSON.
const JSON: &str = "application/json";

/// Standard headers of every message on the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventHeaders {
    /// Correlates the messages of one request.
    pub correlation_id: Uuid,
    /// Unique id of this message (the envelope's event id).
    pub message_id: Uuid,
    /// When the message was created (UTC).
    pub timestamp: DateTime<Utc>,
    /// The service that produced the message.
    pub source: String,
    /// The event type.
    pub event_type: String,
    /// EVENT, COMMAND or INTENT.
    pub message_category: MessageCategory,
    /// MIME type of the value.
    pub content_type: String,
    /// Version of the payload schema.
    pub schema_version: String,
    /// Optional target destination.
    pub destination: Option<String>,
    /// Distributed-tracing trace id.
    pub trace_id: Option<String>,
    /// Distributed-tracing span id.
    pub span_id: Option<String>,
    /// Parent span id.
    pub parent_span_id: Option<String>,
    /// The operation being traced.
    pub operation_name: Option<String>,
    /// low, normal, high or critical.
    pub priority: Option<String>,
    /// Key for routing.
    pub routing_key: Option<String>,
    /// Key for partition assignment.
    pub partition_key: Option<String>,
    /// Current retry attempt.
    pub retry_count: u32,
    /// Retries allowed.
    pub max_retries: Option<u32>,
    /// Time to live in seconds.
    pub ttl_seconds: Option<u64>,
}

impl EventHeaders {
    /// Headers for an envelope: ids, timestamp, source and type taken from
    /// it; a missing correlation id is replaced by a fresh one.
    pub fn for_envelope(envelope: &OnexEnvelopeV1, category: MessageCategory) -> Self {
        EventHeaders {
            correlation_id: envelope.correlation_id.unwrap_or_else(Uuid::new_v4),
            message_id: envelope.event_id,
            timestamp: envelope.event_timestamp,
            source: envelope.source_service.clone(),
            event_type: envelope.event_type.clone(),
            message_category: category,
            content_type: JSON.to_owned(),
            schema_version: envelope.event_version.clone(),
            destination: None,
            trace_id: None,
            span_id: None,
            parent_span_id: None,
            operation_name: None,
            priority: None,
            routing_key: None,
            partition_key: Some(envelope.partition_key()),
            retry_count: 0,
            max_retries: None,
            ttl_seconds: None,
        }
    }

    /// The headers as (name, value) pairs; absent optional headers are left
    /// out.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("correlation_id", uuid_string(self.correlation_id)),
            ("message_id", uuid_string(self.message_id)),
            ("timestamp", self.timestamp.to_rfc3339()),
            ("source", self.source.clone()),
            ("event_type", self.event_type.clone()),
            (
                "message_category",
                self.message_category.as_str().to_owned(),
            ),
            ("content_type", self.content_type.clone()),
            ("schema_version", self.schema_version.clone()),
            ("retry_count", self.retry_count.to_string()),
        ];
        let optional = [
            ("destination", &self.destination),
            ("trace_id", &self.trace_id),
            ("span_id", &self.span_id),
            ("parent_span_id", &self.parent_span_id),
            ("operation_name", &self.operation_name),
            ("priority", &self.priority),
            ("routing_key", &self.routing_key),
            ("partition_key", &self.partition_key),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                out.push((name, v.clone()));
            }
        }
        if let Some(v) = self.max_retries {
            out.push(("max_retries", v.to_string()));
        }
        if let Some(v) = self.ttl_seconds {
            out.push(("ttl_seconds", v.to_string()));
        }
        out
    }

    /// Rebuilds headers from (name, value) pairs. Returns `None` when a
    /// required header is missing or malformed; unknown headers are ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        // Values are borrowed from the pairs and copied once; the default
        // content type only when the pairs have none.
        let mut content_type = None;
        let mut h = EventHeaders {
            correlation_id: Uuid::nil(),
            message_id: Uuid::nil(),
            timestamp: DateTime::<Utc>::MIN_UTC,
            source: String::new(),
            event_type: String::new(),
            message_category: MessageCategory::Event,
            content_type: String::new(),
            schema_version: String::new(),
            destination: None,
            trace_id: None,
            span_id: None,
            parent_span_id: None,
            operation_name: None,
            priority: None,
            routing_key: None,
            partition_key: None,
            retry_count: 0,
            max_retries: None,
            ttl_seconds: None,
        };
        let (mut has_corr, mut has_id, mut has_ts, mut has_type) = (false, false, false, false);
        for (name, value) in pairs {
            let v = || value.to_owned();
            match name {
                "correlation_id" => {
                    h.correlation_id = value.parse().ok()?;
                    has_corr = true;
                }
                "message_id" => {
                    h.message_id = value.parse().ok()?;
                    has_id = true;
                }
                "timestamp" => {
                    h.timestamp = DateTime::parse_from_rfc3339(value)
                        .ok()?
                        .with_timezone(&Utc);
                    has_ts = true;
                }
                "source" => h.source = v(),
                "event_type" => {
                    h.event_type = v();
                    has_type = true;
                }
                "message_category" => h.message_category = MessageCategory::parse(value)?,
                "content_type" => content_type = Some(value),
                "schema_version" => h.schema_version = v(),
                "destination" => h.destination = Some(v()),
                "trace_id" => h.trace_id = Some(v()),
                "span_id" => h.span_id = Some(v()),
                "parent_span_id" => h.parent_span_id = Some(v()),
                "operation_name" => h.operation_name = Some(v()),
                "priority" => h.priority = Some(v()),
                "routing_key" => h.routing_key = Some(v()),
                "partition_key" => h.partition_key = Some(v()),
                "retry_count" => h.retry_count = value.parse().ok()?,
                "max_retries" => h.max_retries = Some(value.parse().ok()?),
                "ttl_seconds" => h.ttl_seconds = Some(value.parse().ok()?),
                _ => {}
            }
        }
        if !(has_corr && has_id && has_ts && has_type) {
            return None;
        }
        h.content_type = content_type.unwrap_or(JSON).to_owned();
        Some(h)
    }
}
