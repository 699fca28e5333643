//! The quick start's events travel through envelopes and come back as the
//! same typed values.

use onex::{Event, EventSet, MessageCategory, OnexEnvelopeV1, SourceInfo, uuid::Uuid};
use onex_quickstart::pricing::{self, PricingEvent};

fn source() -> SourceInfo {
    SourceInfo::new(pricing::SERVICE, pricing::VERSION, "dev")
}

/// Wraps an event, sends it through JSON and decodes it with the node's
/// event enum.
fn round_trip<E>(event: E) -> PricingEvent
where
    E: Event + Clone + Into<PricingEvent>,
{
    let correlation_id = Uuid::new_v4();
    let envelope = OnexEnvelopeV1::wrap(&event, &source(), Some(correlation_id)).expect("wraps");
    assert_eq!(envelope.event_type, E::EVENT_TYPE);
    assert_eq!(envelope.event_version, E::EVENT_VERSION);
    let bytes = envelope.to_json();
    let received = OnexEnvelopeV1::from_json(&bytes).expect("parses");
    assert_eq!(received, envelope);
    let decoded = PricingEvent::decode(&received).expect("decodes");
    assert_eq!(decoded, event.into());
    decoded
}

fn request() -> pricing::QuoteRequest {
    pricing::QuoteRequest {
        quote_id: Uuid::new_v4(),
        customer_id: "c-42".to_owned(),
        currency: pricing::Currency::Eur,
        lines: vec![pricing::QuoteLine {
            sku: "SKU-1".to_owned(),
            quantity: 3,
            unit_price_cents: 1250,
        }],
        coupon: None,
    }
}

#[test]
fn custom_events_round_trip_with_their_topic_and_category() {
    let command = pricing::QuoteRequested { request: request() };
    let decoded = round_trip(command);
    assert_eq!(decoded.topic(), "pricing.compute.quote_requested.v1");
    assert_eq!(decoded.topic(), pricing::topics::QUOTE_REQUESTED);
    assert_eq!(decoded.category(), MessageCategory::Command);
    assert_eq!(decoded.event_type(), "compute.quote_requested");

    let intent = pricing::PriceCheck {
        sku: "SKU-1".to_owned(),
        quantity: Some(2),
        attributes: [("colour".to_owned(), "red".to_owned())].into(),
    };
    let decoded = round_trip(intent);
    assert_eq!(decoded.topic(), "pricing.pricing.price_check.requested.v1");
    assert_eq!(decoded.category(), MessageCategory::Intent);
    assert_eq!(<pricing::PriceCheck as Event>::EVENT_VERSION, "1.1");

    let priced = pricing::QuotePriced {
        quote: pricing::PricedQuote {
            quote_id: Uuid::new_v4(),
            subtotal_cents: 3750,
            discount_cents: 0,
            tax_cents: 750,
            total_cents: 4500,
            tax_rate: 0.2,
            currency: pricing::Currency::Eur,
            margin_cents: Some(900),
        },
        priced_at: onex::chrono::Utc::now(),
    };
    assert_eq!(round_trip(priced).category(), MessageCategory::Event);
}

#[test]
fn operation_events_carry_the_result_and_a_summary_of_types() {
    let node_id = Uuid::new_v4();
    let correlation_id = Uuid::new_v4();
    let started = pricing::PriceQuoteStarted::new(node_id, correlation_id);
    assert_eq!(started.operation, "price_quote");
    assert_eq!(started.input_summary["lines"], "list<QuoteLine>");
    assert_eq!(started.input_summary["coupon"], "optional<string>");
    assert_eq!(
        round_trip(started).topic(),
        "pricing.compute.price_quote.started.v1"
    );

    let quote = pricing::PricedQuote {
        quote_id: Uuid::new_v4(),
        subtotal_cents: 3750,
        discount_cents: 0,
        tax_cents: 750,
        total_cents: 4500,
        tax_rate: 0.2,
        currency: pricing::Currency::Eur,
        margin_cents: Some(900),
    };
    let completed = pricing::PriceQuoteCompleted::new(node_id, correlation_id, 1.5, &quote);
    assert!(completed.success);
    assert_eq!(completed.result_summary["total_cents"], "u64");
    assert_eq!(completed.result.total_cents, 4500);
    assert_eq!(completed.result.margin_cents, None, "summary-only");
    round_trip(completed);

    let failed = pricing::PriceQuoteFailed::new(
        node_id,
        correlation_id,
        2.0,
        &onex::OperationError::new("not_found", "no such SKU"),
    );
    let decoded = round_trip(failed);
    assert_eq!(decoded.event_type(), "compute.price_quote.failed");
    assert_eq!(
        <pricing::PriceQuoteFailed as Event>::TOPIC,
        pricing::topics::PRICE_QUOTE_FAILED
    );
}

#[test]
fn derived_node_events_round_trip() {
    let metric = pricing::MetricRecorded {
        node_id: Uuid::new_v4(),
        node_type: pricing::NODE_TYPE.to_owned(),
        correlation_id: Uuid::new_v4(),
        recorded_at: onex::chrono::Utc::now(),
        metric_name: "quotes_priced".to_owned(),
        value: 12.0,
        unit: None,
        tags: Default::default(),
    };
    assert_eq!(
        round_trip(metric).topic(),
        "pricing.compute.metric.recorded.v1"
    );
}

#[test]
fn introspection_announces_the_contract() {
    let node_id = Uuid::new_v4();
    let event = pricing::introspection(node_id, Uuid::new_v4());
    assert_eq!(event.node_name, "NodePricingCompute");
    assert_eq!(event.version, "1.2.0");
    assert_eq!(
        event.capabilities.actions,
        ["execute_compute", "validate_input", "price_quote"]
    );
    assert_eq!(event.capabilities.protocols, ["kafka", "http"]);
    assert_eq!(event.capabilities.metadata["domain"], "commerce");
    assert_eq!(
        event.tags,
        ["pricing", "quotes", "commerce", "compute"],
        "tags are the contract's, then domain, node type and service, without duplicates"
    );
    let decoded = round_trip(event);
    assert_eq!(decoded.topic(), "omninode.discovery.node_introspection.v1");

    let heartbeat = pricing::heartbeat(node_id, "healthy", 5);
    assert_eq!(
        round_trip(heartbeat).topic(),
        pricing::topics::NODE_HEARTBEAT
    );
}

#[test]
fn event_types_list_every_variant() {
    assert_eq!(PricingEvent::EVENT_TYPES, pricing::EVENT_TYPES);
    assert!(pricing::EVENT_TYPES.contains(&"compute.price_quote.started"));
    assert!(pricing::EVENT_TYPES.contains(&"omninode.discovery.node_introspection"));
    let mut unique = pricing::EVENT_TYPES.to_vec();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), pricing::EVENT_TYPES.len());
}

#[test]
fn decoding_an_unknown_event_type_fails() {
    let event = pricing::QuoteRequested { request: request() };
    let mut envelope = OnexEnvelopeV1::wrap(&event, &source(), None).expect("wraps");
    envelope.event_type = "compute.no_such_event".into();
    match PricingEvent::decode(&envelope) {
        Err(onex::DecodeError::UnknownEventType {
            event_type,
            expected,
        }) => {
            assert_eq!(event_type, "compute.no_such_event");
            assert!(expected.contains("compute.quote_requested"));
        }
        other => panic!("expected UnknownEventType, got {other:?}"),
    }
}

#[test]
fn decoding_a_payload_of_the_wrong_shape_fails() {
    let event = pricing::QuoteRequested { request: request() };
    let mut envelope = OnexEnvelopeV1::wrap(&event, &source(), None).expect("wraps");
    envelope
        .set_payload(&onex::serde_json::json!({ "request": "not a request" }))
        .expect("a payload");
    assert!(matches!(
        PricingEvent::decode(&envelope),
        Err(onex::DecodeError::Payload { .. })
    ));
}

#[test]
fn enums_serialize_as_the_contract_writes_them() {
    let json = onex::serde_json::to_value(pricing::Currency::Gbp).expect("serializes");
    assert_eq!(json, "gbp");
    assert_eq!(pricing::Currency::Gbp.as_str(), "gbp");
    assert_eq!(pricing::Currency::ALL.len(), 3);
}
