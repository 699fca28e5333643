//! CloudEvents on Kafka against the real broker (Tansu) at
//! `ONEX_TEST_BOOTSTRAP_SERVERS`, checked with clients this project did not
//! write: confluent-kafka reads the records, and the CloudEvents Python
//! SDK's Kafka binding converts them (and writes bare CloudEvents).
//!
//! Without the variable these tests print a note and pass; with it they
//! fail when the broker does not answer.

#[cfg(not(feature = "kafka"))]
compile_error!("the Kafka tests need the `kafka` feature of onex (on by default)");

#[path = "support/kafka.rs"]
mod support;

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use onex::{EventBus, Publisher, kafka::dlq_headers};
use serde_json::{Value, json};
use support::*;
use uuid::Uuid;

fn sdk_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/cloudevents_kafka.py")
}

/// What the SDK made of each record: its attributes and data.
fn convert_with_the_sdk(records: &[ReadRecord]) -> Vec<Value> {
    let mut child = Command::new("python3")
        .arg(sdk_script())
        .arg("convert")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (bash scripts/tansu.sh install installs the CloudEvents SDK)");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for r in records {
            let line = json!({
                "topic": r.topic, "partition": r.partition, "offset": r.offset,
                "key": r.key, "headers": r.headers, "value": r.value,
            });
            writeln!(stdin, "{line}").expect("write");
        }
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "the CloudEvents SDK refused a record: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Produces a bare CloudEvent (ce_ headers, JSON data) with the SDK.
fn send_with_the_sdk(bootstrap: &str, topic: &str, attributes: Value, data: Value) {
    let out = Command::new("python3")
        .arg(sdk_script())
        .args(["send", "--bootstrap", bootstrap, "--topic", topic])
        .args(["--attributes", &attributes.to_string()])
        .args(["--data", &data.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "sending with the SDK failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_a_cloudevent_the_sdk_reads() {
    let Some(bootstrap) = bootstrap("every_record_is_a_cloudevent_the_sdk_reads") else {
        return;
    };
    let env = unique("ce");
    let bus = kafka_bus(test_config(&bootstrap, &env)).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    // With a correlation id and without one.
    for (n, correlation) in [(1, Some(Uuid::new_v4())), (2, None)] {
        publisher
            .publish(&order(n), correlation)
            .await
            .expect("published");
    }
    bus.shutdown().await.expect("shutdown");

    let records = read_topic(&bootstrap, &topic, Some(2), Duration::from_secs(30));
    assert_eq!(records.len(), 2);
    let events = convert_with_the_sdk(&records);
    assert_eq!(events.len(), 2);
    for (record, event) in records.iter().zip(&events) {
        let envelope = record.envelope();
        let attr = |name: &str| event["attributes"][name].as_str().map(str::to_owned);
        assert_eq!(attr("specversion").as_deref(), Some("1.0"));
        assert_eq!(attr("id"), Some(envelope.event_id.to_string()));
        assert_eq!(
            attr("source"),
            Some(format!("/onex/{env}/{}", envelope.source_service))
        );
        assert_eq!(attr("type"), Some(envelope.event_type.to_string()));
        let time = attr("time").expect("time");
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(&time).expect("RFC 3339"),
            envelope.event_timestamp
        );
        assert_eq!(attr("datacontenttype").as_deref(), Some("application/json"));
        assert_eq!(
            attr("correlationid"),
            envelope.correlation_id.map(|c| c.to_string())
        );
        // The SDK maps the record key to `partitionkey`.
        assert_eq!(attr("partitionkey"), record.key.clone());
        // The data is the envelope, unchanged; the ONEX headers stay.
        let value: Value =
            serde_json::from_str(record.value.as_deref().expect("value")).expect("json");
        assert_eq!(event["data"], value);
        assert_eq!(
            record.header("message_id"),
            Some(envelope.event_id.to_string().as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_headers_can_be_turned_off() {
    let Some(bootstrap) = bootstrap("cloudevents_headers_can_be_turned_off") else {
        return;
    };
    let env = unique("ceoff");
    let mut config = test_config(&bootstrap, &env);
    config.cloudevents = false;
    let bus = kafka_bus(config).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    publisher.publish(&order(1), None).await.expect("published");
    bus.shutdown().await.expect("shutdown");
    let records = read_topic(&bootstrap, &topic, Some(1), Duration::from_secs(30));
    assert_eq!(records.len(), 1);
    assert!(records[0].headers.keys().all(|k| !k.starts_with("ce_")));
    assert!(records[0].header("message_id").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_cloudevent_reaches_a_subscriber_as_an_envelope() {
    let Some(bootstrap) = bootstrap("a_bare_cloudevent_reaches_a_subscriber_as_an_envelope") else {
        return;
    };
    let env = unique("cebare");
    let bus = kafka_bus(test_config(&bootstrap, &env)).await;
    let topic = Publisher::new(bus.clone(), onex::SourceInfo::new("x", "1.0.0", &env))
        .topic_of::<OrderPlaced>();
    let correlation = Uuid::new_v4();
    let id = Uuid::new_v4();
    send_with_the_sdk(
        &bootstrap,
        &topic,
        json!({
            "id": id.to_string(),
            "source": "https://shop.example/checkout",
            "type": "orders.order.placed",
            "time": "2026-11-30T12:00:00Z",
            "correlationid": correlation.to_string(),
        }),
        json!({"order_no": 7, "customer": "ada", "amount_cents": 1299}),
    );
    // Not JSON: dead-lettered with the reason, never dropped.
    send_with_the_sdk(
        &bootstrap,
        &topic,
        json!({
            "id": "plain-1",
            "source": "https://shop.example/checkout",
            "type": "orders.order.placed",
            "datacontenttype": "text/plain",
        }),
        json!("seven"),
    );
    let (collector, handle) = collect(bus.as_ref(), &topic, &unique("g")).await;
    collector.wait_for(1, Duration::from_secs(30)).await;
    let dead = read_topic(
        &bootstrap,
        bus.dead_letter_topic(),
        Some(1),
        Duration::from_secs(30),
    );
    handle.stop().await;
    bus.shutdown().await.expect("shutdown");

    let messages = collector.messages();
    assert_eq!(messages.len(), 1);
    let envelope = &messages[0].envelope;
    assert_eq!(envelope.event_id, id);
    assert_eq!(envelope.event_type, "orders.order.placed");
    assert_eq!(envelope.correlation_id, Some(correlation));
    assert_eq!(envelope.environment, env);
    assert_eq!(envelope.source_service, "https://shop.example/checkout");
    assert_eq!(
        envelope.event_timestamp.to_rfc3339(),
        "2026-11-30T12:00:00+00:00"
    );
    let order: OrderPlaced = envelope.decode().expect("the typed event decodes");
    assert_eq!(order.order_no, 7);
    assert_eq!(order.customer, "ada");
    assert_eq!(messages[0].correlation_id(), correlation);

    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].header(dlq_headers::ERROR_TYPE),
        Some("decode_error")
    );
    let reason = dead[0].header(dlq_headers::FAILURE_REASON).unwrap_or("");
    assert!(reason.contains("text/plain"), "reason: {reason}");
}
