//! CloudEvents 1.0 in Kafka's binary content mode: the `ce_` record headers
//! every message carries beside the ONEX headers, and the envelope of a
//! message that carries only them (as other producers send events).
//!
//! | CloudEvents attribute | Kafka header | from the envelope |
//! |---|---|---|
//! | `specversion` | `ce_specversion` | `1.0` |
//! | `id` | `ce_id` | `event_id` |
//! | `source` | `ce_source` | `/onex/{environment}/{source_service}` |
//! | `type` | `ce_type` | `event_type` |
//! | `time` | `ce_time` | `event_timestamp` (RFC 3339) |
//! | `datacontenttype` | `content-type` | `application/json` |
//! | `correlationid` (extension) | `ce_correlationid` | `correlation_id`, when set |
//!
//! The record's value stays the ONEX envelope: a CloudEvents reader gets the
//! envelope as the event's data. A message with `ce_specversion` but no
//! ONEX headers is read the other way round: its value is the event's
//! payload, and [`envelope_of`] builds the envelope from the attributes.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{
    envelope::{ENVELOPE_VERSION, OnexEnvelopeV1},
    text::Text,
};

/// The CloudEvents version this crate writes and reads.
pub const SPEC_VERSION: &str = "1.0";

/// The Kafka header names of the binary content mode.
pub mod header {
    /// `specversion`
    pub const SPEC_VERSION: &str = "ce_specversion";
    /// `id`
    pub const ID: &str = "ce_id";
    /// `source`
    pub const SOURCE: &str = "ce_source";
    /// `type`
    pub const TYPE: &str = "ce_type";
    /// `time`
    pub const TIME: &str = "ce_time";
    /// `datacontenttype`: the one attribute without the `ce_` prefix.
    pub const CONTENT_TYPE: &str = "content-type";
    /// The correlation id, as the extension attribute `correlationid`.
    pub const CORRELATION_ID: &str = "ce_correlationid";
}

/// The content type of every value this crate writes.
const JSON: &str = "application/json";

/// The `source` attribute of events a service publishes in an environment.
pub fn source(environment: &str, service: &str) -> String {
    format!("/onex/{environment}/{service}")
}

/// The CloudEvents headers of an envelope, in the order of the table above.
pub fn headers(envelope: &OnexEnvelopeV1) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(7);
    each_header(
        envelope,
        crate::time::Rfc3339::offset(&envelope.event_timestamp).as_str(),
        |name, parts| {
            out.push((name, parts.concat()));
        },
    );
    out
}

/// Calls `each` with the name and value of every header of [`headers`], in
/// its order, without allocating: a value comes in parts to be joined (the
/// `source` is made of three). `time` is the envelope's timestamp in RFC
/// 3339 (the Kafka bus renders it once for these headers and the ONEX
/// `timestamp`).
pub(crate) fn each_header(
    envelope: &OnexEnvelopeV1,
    time: &str,
    mut each: impl FnMut(&'static str, &[&str]),
) {
    let mut ids = [Uuid::encode_buffer(), Uuid::encode_buffer()];
    let [event, correlation] = &mut ids;
    each(header::SPEC_VERSION, &[SPEC_VERSION]);
    each(
        header::ID,
        &[envelope.event_id.hyphenated().encode_lower(event)],
    );
    each(
        header::SOURCE,
        &[
            "/onex/",
            &envelope.environment,
            "/",
            &envelope.source_service,
        ],
    );
    each(header::TYPE, &[&envelope.event_type]);
    each(header::TIME, &[time]);
    each(header::CONTENT_TYPE, &[JSON]);
    if let Some(id) = envelope.correlation_id {
        each(
            header::CORRELATION_ID,
            &[id.hyphenated().encode_lower(correlation)],
        );
    }
}

/// Whether a record is a CloudEvent without an ONEX envelope: it has the
/// `ce_specversion` header and not the ONEX `message_id` header.
pub fn is_bare<'a>(header_names: impl Iterator<Item = &'a str>) -> bool {
    let (mut ce, mut onex) = (false, false);
    for name in header_names {
        ce |= name == header::SPEC_VERSION;
        onex |= name == "message_id";
    }
    ce && !onex
}

/// Why a bare CloudEvent could not become an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BareEventError {
    /// A required attribute is missing.
    #[error("the CloudEvent has no `{0}` header")]
    Missing(&'static str),
    /// The spec version is not 1.0.
    #[error("CloudEvents `{0}` is not supported (only 1.0)")]
    SpecVersion(String),
    /// The data is not JSON.
    #[error("the CloudEvent's data is {0}, not application/json")]
    ContentType(String),
    /// The value does not parse as JSON.
    #[error("the CloudEvent's data is not valid JSON: {0}")]
    Data(String),
    /// `time` is not an RFC 3339 timestamp.
    #[error("the CloudEvent's time `{0}` is not an RFC 3339 timestamp")]
    Time(String),
}

/// The envelope of a bare CloudEvent: its `headers` (name, value) and its
/// `value`, the event's JSON payload, received in `environment`.
///
/// `id` becomes the event id when it is a UUID; any other id becomes the
/// UUID v5 of `source` and `id` (which CloudEvents says identify an event),
/// so a redelivered event keeps its id. Without `time`, the event is
/// stamped now. `source` becomes the source service and node id, and is
/// kept, with the original `id`, in the metadata (`cloudevents_source`,
/// `cloudevents_id`).
pub fn envelope_of<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    value: &[u8],
    environment: &str,
) -> Result<OnexEnvelopeV1, BareEventError> {
    let mut attrs: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, value) in headers {
        attrs.entry(name).or_insert(value);
    }
    let get = |name: &'static str| attrs.get(name).copied();
    let need = |name: &'static str| get(name).ok_or(BareEventError::Missing(name));
    let spec = need(header::SPEC_VERSION)?;
    if spec != SPEC_VERSION {
        return Err(BareEventError::SpecVersion(spec.to_owned()));
    }
    let id = need(header::ID)?;
    let source = need(header::SOURCE)?;
    let event_type = need(header::TYPE)?;
    if let Some(content_type) = get(header::CONTENT_TYPE) {
        // `application/json; charset=utf-8` and `application/cloudevents+json`
        // style suffixes are JSON too.
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !(media == JSON || media.ends_with("+json")) {
            return Err(BareEventError::ContentType(content_type.to_owned()));
        }
    }
    let event_timestamp = match get(header::TIME) {
        Some(time) => {
            crate::time::parse_rfc3339(time).map_err(|_| BareEventError::Time(time.to_owned()))?
        }
        None => Utc::now(),
    };
    let text = std::str::from_utf8(value).map_err(|e| BareEventError::Data(e.to_string()))?;
    let payload: Box<RawValue> =
        serde_json::from_str(text).map_err(|e| BareEventError::Data(e.to_string()))?;
    let event_id = id
        .parse::<Uuid>()
        .unwrap_or_else(|_| Uuid::new_v5(&NAMESPACE, format!("{source}\n{id}").as_bytes()));
    let correlation_id = get(header::CORRELATION_ID).and_then(|c| c.parse().ok());
    let mut metadata = BTreeMap::new();
    metadata.insert("cloudevents_source".to_owned(), source.into());
    metadata.insert("cloudevents_id".to_owned(), id.into());
    Ok(OnexEnvelopeV1 {
        envelope_version: Text::from_static(ENVELOPE_VERSION),
        event_id,
        event_type: event_type.to_owned().into(),
        event_version: Text::from_static("1.0"),
        event_timestamp,
        source_node_id: source.to_owned().into(),
        source_service: source.to_owned().into(),
        source_version: Text::default(),
        correlation_id,
        environment: environment.to_owned().into(),
        payload,
        metadata,
    })
}

/// The namespace of the v5 ids of CloudEvents whose id is no UUID.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f6e_6578_2d63_6c6f_7564_6576_656e_7473);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{envelope::SourceInfo, event::Event, event::MessageCategory};

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Placed {
        order_no: u64,
    }

    impl Event for Placed {
        const EVENT_TYPE: &'static str = "orders.order.placed";
        const EVENT_VERSION: &'static str = "1.0";
        const CATEGORY: MessageCategory = MessageCategory::Event;
        const TOPIC: &'static str = "orders.order.placed.v1";
    }

    #[test]
    fn headers_map_the_envelope() {
        let source_info = SourceInfo::new("orders", "1.0.0", "dev");
        let correlation = Uuid::new_v4();
        let envelope =
            OnexEnvelopeV1::wrap(&Placed { order_no: 7 }, &source_info, Some(correlation))
                .expect("wraps");
        let h: BTreeMap<_, _> = headers(&envelope).into_iter().collect();
        assert_eq!(h[header::SPEC_VERSION], "1.0");
        assert_eq!(h[header::ID], envelope.event_id.to_string());
        assert_eq!(h[header::SOURCE], "/onex/dev/orders");
        assert_eq!(h[header::TYPE], "orders.order.placed");
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(&h[header::TIME]).expect("rfc3339"),
            envelope.event_timestamp
        );
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        assert_eq!(h[header::CORRELATION_ID], correlation.to_string());
    }

    #[test]
    fn a_bare_event_becomes_an_envelope_that_decodes() {
        let pairs = [
            ("ce_specversion", "1.0"),
            ("ce_id", "order-7"),
            ("ce_source", "https://shop.example/orders"),
            ("ce_type", "orders.order.placed"),
            ("ce_time", "2026-11-30T12:00:00Z"),
            ("content-type", "application/json; charset=utf-8"),
        ];
        assert!(is_bare(pairs.iter().map(|(k, _)| *k)));
        let envelope = envelope_of(pairs, br#"{"order_no": 7}"#, "dev").expect("maps");
        assert_eq!(
            envelope.decode::<Placed>().expect("decodes"),
            Placed { order_no: 7 }
        );
        assert_eq!(envelope.environment, "dev");
        assert_eq!(envelope.source_service, "https://shop.example/orders");
        assert_eq!(envelope.metadata["cloudevents_id"], "order-7");
        // The same source and id give the same event id: redelivery dedupes.
        let again = envelope_of(pairs, br#"{"order_no": 7}"#, "dev").expect("maps");
        assert_eq!(envelope.event_id, again.event_id);
        assert_eq!(envelope.correlation_id, None);
    }

    #[test]
    fn bare_events_that_cannot_be_read_say_why() {
        let base = [
            ("ce_specversion", "1.0"),
            ("ce_id", "1"),
            ("ce_source", "/x"),
            ("ce_type", "t"),
        ];
        assert_eq!(
            envelope_of(base[..3].iter().copied(), b"{}", "dev").unwrap_err(),
            BareEventError::Missing("ce_type")
        );
        let xml = [base.as_slice(), &[("content-type", "application/xml")]].concat();
        assert!(matches!(
            envelope_of(xml, b"<a/>", "dev"),
            Err(BareEventError::ContentType(_))
        ));
        assert!(matches!(
            envelope_of(base, b"not json", "dev"),
            Err(BareEventError::Data(_))
        ));
        let old = [
            ("ce_specversion", "0.3"),
            ("ce_id", "1"),
            ("ce_source", "/x"),
            ("ce_type", "t"),
        ];
        assert!(matches!(
            envelope_of(old, b"{}", "dev"),
            Err(BareEventError::SpecVersion(_))
        ));
        // ONEX messages carry both kinds of headers: they are not bare.
        assert!(!is_bare(["ce_specversion", "message_id"].into_iter()));
    }
}
