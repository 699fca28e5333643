//! Message headers (seed 003's `ModelEventHeaders`), carried beside the
//! envelope as Kafka record headers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{envelope::OnexEnvelopeV1, event::MessageCategory, text::Text};

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
    pub source: Text,
    /// The event type.
    pub event_type: Text,
    /// EVENT, COMMAND or INTENT.
    pub message_category: MessageCategory,
    /// MIME type of the value.
    pub content_type: Text,
    /// Version of the payload schema.
    pub schema_version: Text,
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
    pub partition_key: Option<Text>,
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
            content_type: Text::from_static(JSON),
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
        let mut out = Vec::with_capacity(12);
        self.each_pair(
            crate::time::Rfc3339::offset(&self.timestamp).as_str(),
            |name, value| {
                out.push((name, value.to_owned()));
            },
        );
        out
    }

    /// Calls `each` with the name and value of every header of
    /// [`EventHeaders::to_pairs`], in its order, without allocating:
    /// `timestamp` is `self.timestamp` in RFC 3339 (the Kafka bus renders it
    /// once for these headers and the CloudEvents `ce_time`).
    pub(crate) fn each_pair(&self, timestamp: &str, mut each: impl FnMut(&'static str, &str)) {
        let mut ids = [Uuid::encode_buffer(), Uuid::encode_buffer()];
        let [correlation, message] = &mut ids;
        each(
            "correlation_id",
            self.correlation_id.hyphenated().encode_lower(correlation),
        );
        each(
            "message_id",
            self.message_id.hyphenated().encode_lower(message),
        );
        each("timestamp", timestamp);
        each("source", &self.source);
        each("event_type", &self.event_type);
        each("message_category", self.message_category.as_str());
        each("content_type", &self.content_type);
        each("schema_version", &self.schema_version);
        each("retry_count", Decimal::of(self.retry_count.into()).as_str());
        let optional = [
            ("destination", self.destination.as_deref()),
            ("trace_id", self.trace_id.as_deref()),
            ("span_id", self.span_id.as_deref()),
            ("parent_span_id", self.parent_span_id.as_deref()),
            ("operation_name", self.operation_name.as_deref()),
            ("priority", self.priority.as_deref()),
            ("routing_key", self.routing_key.as_deref()),
            ("partition_key", self.partition_key.as_deref()),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                each(name, v);
            }
        }
        if let Some(v) = self.max_retries {
            each("max_retries", Decimal::of(v.into()).as_str());
        }
        if let Some(v) = self.ttl_seconds {
            each("ttl_seconds", Decimal::of(v).as_str());
        }
    }

    /// Rebuilds headers from (name, value) pairs. Returns `None` when a
    /// required header is missing or malformed; unknown headers are ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        Self::from_pairs_sharing(pairs, &[])
    }

    /// [`EventHeaders::from_pairs`], taking a string value from `known`
    /// (the envelope's, say) instead of copying it when one is equal.
    pub(crate) fn from_pairs_sharing<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        known: &[&Text],
    ) -> Option<Self> {
        let text = |value: &str| match known.iter().find(|k| k.as_str() == value) {
            Some(k) => (*k).clone(),
            None => Text::copied(value),
        };
        // Values are borrowed from the pairs and copied once; the default
        // content type only when the pairs have none.
        let mut content_type = None;
        let mut h = EventHeaders {
            correlation_id: Uuid::nil(),
            message_id: Uuid::nil(),
            timestamp: DateTime::<Utc>::MIN_UTC,
            source: Text::default(),
            event_type: Text::default(),
            message_category: MessageCategory::Event,
            content_type: Text::default(),
            schema_version: Text::default(),
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
                    h.timestamp = crate::time::parse_rfc3339(value).ok()?;
                    has_ts = true;
                }
                "source" => h.source = text(value),
                "event_type" => {
                    h.event_type = text(value);
                    has_type = true;
                }
                "message_category" => h.message_category = MessageCategory::parse(value)?,
                "content_type" => content_type = Some(value),
                "schema_version" => h.schema_version = text(value),
                "destination" => h.destination = Some(v()),
                "trace_id" => h.trace_id = Some(v()),
                "span_id" => h.span_id = Some(v()),
                "parent_span_id" => h.parent_span_id = Some(v()),
                "operation_name" => h.operation_name = Some(v()),
                "priority" => h.priority = Some(v()),
                "routing_key" => h.routing_key = Some(v()),
                "partition_key" => h.partition_key = Some(Text::copied(value)),
                "retry_count" => h.retry_count = value.parse().ok()?,
                "max_retries" => h.max_retries = Some(value.parse().ok()?),
                "ttl_seconds" => h.ttl_seconds = Some(value.parse().ok()?),
                _ => {}
            }
        }
        if !(has_corr && has_id && has_ts && has_type) {
            return None;
        }
        h.content_type = match content_type {
            None | Some(JSON) => Text::from_static(JSON),
            Some(other) => Text::copied(other),
        };
        Some(h)
    }
}

/// An unsigned integer in decimal, rendered on the stack.
struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    fn of(mut n: u64) -> Self {
        let mut digits = [b'0'; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Decimal { digits, start }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        std::str::from_utf8(&self.digits[self.start..]).unwrap_or("0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_render_in_decimal_from_zero_to_the_largest() {
        for n in [0, 7, 10, 4_294_967_295, u64::MAX] {
            assert_eq!(Decimal::of(n).as_str(), n.to_string());
        }
    }

    #[test]
    fn pairs_round_trip_every_header_that_is_set() {
        let mut headers = EventHeaders {
            correlation_id: Uuid::new_v4(),
            message_id: Uuid::new_v4(),
            timestamp: Utc::now(),
            source: "orders".into(),
            event_type: "effect.placed".into(),
            message_category: MessageCategory::Command,
            content_type: Text::from_static(JSON),
            schema_version: "1.0".into(),
            destination: Some("billing".to_owned()),
            trace_id: Some("t".to_owned()),
            span_id: None,
            parent_span_id: None,
            operation_name: Some("place".to_owned()),
            priority: Some("high".to_owned()),
            routing_key: None,
            partition_key: Some("k".into()),
            retry_count: 12,
            max_retries: Some(3),
            ttl_seconds: Some(86_400),
        };
        let pairs = headers.to_pairs();
        assert_eq!(pairs[8], ("retry_count", "12".to_owned()));
        assert!(pairs.contains(&("ttl_seconds", "86400".to_owned())));
        let back = EventHeaders::from_pairs(pairs.iter().map(|(n, v)| (*n, v.as_str())));
        assert_eq!(back.as_ref(), Some(&headers));
        headers.trace_id = None;
        assert!(!headers.to_pairs().iter().any(|(n, _)| *n == "trace_id"));
    }
}
