//! The Kafka bus against the real broker (Tansu) at
//! `ONEX_TEST_BOOTSTRAP_SERVERS`, checked with an independent client.
//!
//! Without the variable these tests print a note and pass; with it they
//! fail when the broker does not answer.

// Without the Kafka bus these tests must fail, not pass vacuously.
#[cfg(not(feature = "kafka"))]
compile_error!("the Kafka tests need the `kafka` feature of onex (on by default)");

#[path = "support/kafka.rs"]
mod support;

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use onex::{
    BusMessage, EventBus, HandlerError, OnexEnvelopeV1,
    bus::{BatchOptions, Handler, Subscription, batch_handler_fn},
    kafka::dlq_headers,
};
use support::*;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_events_round_trip() {
    let Some(bootstrap) = bootstrap("typed_events_round_trip") else {
        return;
    };
    let env = unique("rt");
    let bus = kafka_bus(test_config(&bootstrap, &env)).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    assert_eq!(topic, format!("{env}.orders.order.placed.v1"));

    // Publish first: the topic exists when the consumer joins.
    let mut sent = Vec::new();
    for n in 0..20 {
        let id = publisher
            .publish(&order(n), Some(Uuid::new_v4()))
            .await
            .expect("publish");
        assert_eq!(id.delivery, onex::Delivery::Acknowledged);
        sent.push((id.event_id, order(n)));
    }
    let (collector, handle) = collect(bus.as_ref(), &topic, &unique("g")).await;
    collector.wait_for(20, Duration::from_secs(30)).await;
    handle.stop().await;

    let got = collector.messages();
    assert_eq!(got.len(), 20, "each event exactly once");
    for (id, event) in &sent {
        let m = got
            .iter()
            .find(|m| m.envelope.event_id == *id)
            .expect("every event consumed");
        let decoded: OrderPlaced = m.envelope.decode().expect("decodes as OrderPlaced");
        assert_eq!(&decoded, event);
        assert_eq!(m.topic, topic);
        assert_eq!(m.headers.message_id, *id);
        assert_eq!(m.headers.event_type, "orders.order.placed");
        assert_eq!(m.envelope.source_service, "orders");
    }
    bus.shutdown().await.expect("shutdown");
    assert_eq!(bus.health(), onex::BusHealth::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_client_reads_envelope_headers_key_and_topic() {
    let Some(bootstrap) = bootstrap("independent_client_reads_envelope_headers_key_and_topic")
    else {
        return;
    };
    let env = unique("ic");
    let bus = kafka_bus(test_config(&bootstrap, &env)).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    let mut sent: Vec<Arc<BusMessage>> = Vec::new();
    for n in 0..3 {
        let m = message(&publisher, &topic, n);
        bus.publish(m.clone()).await.expect("publish");
        sent.push(m);
    }
    bus.shutdown().await.expect("shutdown");

    let records = read_topic(&bootstrap, &topic, Some(3), Duration::from_secs(30));
    assert_eq!(records.len(), 3, "{records:?}");
    for m in &sent {
        let r = records
            .iter()
            .find(|r| r.envelope().event_id == m.envelope.event_id)
            .expect("record of each message");
        assert_eq!(r.topic, topic);
        assert_eq!(r.key.as_deref(), Some(m.key.as_str()));
        // The value is exactly the envelope JSON.
        let value: serde_json::Value =
            serde_json::from_str(r.value.as_deref().expect("value")).expect("json");
        let expected: serde_json::Value =
            serde_json::from_slice(&m.envelope.to_json()).expect("json");
        assert_eq!(value, expected);
        assert_eq!(value["envelope_version"], "1.0");
        assert_eq!(value["event_type"], "orders.order.placed");
        assert_eq!(
            value["payload"]["order_no"],
            m.envelope.payload_value()["order_no"]
        );
        // Every header of EventHeaders::to_pairs, with its value.
        for (name, v) in m.headers.to_pairs() {
            assert_eq!(r.header(name), Some(v.as_str()), "header {name}");
        }
        assert_eq!(r.header("message_category"), Some("EVENT"));
        assert_eq!(
            r.header("message_id"),
            Some(m.envelope.event_id.to_string().as_str())
        );
        let decoded: OrderPlaced = r.envelope().decode().expect("decodes");
        assert_eq!(decoded, m.envelope.decode::<OrderPlaced>().expect("own"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_many_delivers_a_batch_in_order_and_fails_only_what_the_broker_refuses() {
    let Some(bootstrap) =
        bootstrap("publish_many_delivers_a_batch_in_order_and_fails_only_what_the_broker_refuses")
    else {
        return;
    };
    let env = unique("pm");
    let bus = kafka_bus(test_config(&bootstrap, &env)).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    // One key: one partition, so the broker's order is the batch's.
    let keyed = |n: u64| {
        let mut m = (*message(&publisher, &topic, n)).clone();
        m.key = "one-key".into();
        m
    };
    let mut batch: Vec<Arc<BusMessage>> = (0..300).map(|n| Arc::new(keyed(n))).collect();
    // Larger than the broker takes (message.max.bytes): refused on its own.
    let mut huge = keyed(300);
    let mut order = order(300);
    order.customer = "x".repeat(2_000_000);
    huge.envelope = publisher
        .message(&order, None, Default::default())
        .expect("message")
        .envelope;
    batch.insert(150, Arc::new(huge));

    let outcomes = bus.publish_many(batch.clone()).await;
    assert_eq!(outcomes.len(), 301);
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 150 {
            let err = outcome.as_ref().expect_err("too large");
            assert!(
                matches!(err, onex::BusError::Delivery { attempts: 1, .. }),
                "{err}"
            );
        } else {
            assert_eq!(
                outcome.as_ref().ok(),
                Some(&onex::Delivery::Acknowledged),
                "{i}"
            );
        }
    }
    assert_eq!(bus.stats().delivered, 300);
    bus.shutdown().await.expect("shutdown");

    let mut records = read_topic(&bootstrap, &topic, Some(300), Duration::from_secs(30));
    records.sort_by_key(|r| (r.partition, r.offset));
    let got: Vec<Uuid> = records.iter().map(|r| r.envelope().event_id).collect();
    let sent: Vec<Uuid> = batch
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 150)
        .map(|(_, m)| m.envelope.event_id)
        .collect();
    assert_eq!(
        got, sent,
        "every delivered message once, in the batch's order"
    );
    let first = &records[0];
    assert_eq!(first.header("ce_id"), Some(sent[0].to_string().as_str()));
    assert_eq!(first.key.as_deref(), Some("one-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_none_lost_none_duplicated() {
    let Some(bootstrap) = bootstrap("ten_thousand_events_none_lost_none_duplicated") else {
        return;
    };
    const N: u64 = 10_000;
    let env = unique("tt");
    let bus = kafka_bus(test_config(&bootstrap, &env)).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();

    // All publishes in flight at once; each awaits its delivery report.
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = Vec::with_capacity(N as usize);
    for n in 0..N {
        let m = message(&publisher, &topic, n);
        sent.push(m.envelope.event_id);
        let bus = bus.clone();
        tasks.spawn(async move { bus.publish(m).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("publish");
    }
    assert_eq!(bus.stats().delivered, N);

    let (collector, handle) = collect(bus.as_ref(), &topic, &unique("g")).await;
    collector
        .wait_for(N as usize, Duration::from_secs(90))
        .await;
    // Anything extra would arrive now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    handle.stop().await;
    bus.shutdown().await.expect("shutdown");

    let got = collector.ids();
    let (distinct, duplicates) = distinct_ids(got.iter().copied());
    assert_eq!(duplicates, 0, "no event consumed twice");
    assert_eq!(got.len(), N as usize, "every event consumed once");
    assert_eq!(distinct, sent.iter().copied().collect::<HashSet<_>>());
    assert_eq!(checksum(got), checksum(sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_group_resumes_at_the_committed_offset() {
    let Some(bootstrap) = bootstrap("restarted_group_resumes_at_the_committed_offset") else {
        return;
    };
    let env = unique("rg");
    let bus = kafka_bus(test_config(&bootstrap, &env)).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    let group = unique("g");

    let first: HashSet<Uuid> = publish_orders(&publisher, 0..50)
        .await
        .into_iter()
        .collect();
    let (c1, h1) = collect(bus.as_ref(), &topic, &group).await;
    c1.wait_for(50, Duration::from_secs(30)).await;
    // Stopping commits what was handled.
    h1.stop().await;
    assert_eq!(c1.ids().into_iter().collect::<HashSet<_>>(), first);

    let second: HashSet<Uuid> = publish_orders(&publisher, 50..100)
        .await
        .into_iter()
        .collect();
    let (c2, h2) = collect(bus.as_ref(), &topic, &group).await;
    c2.wait_for(50, Duration::from_secs(30)).await;
    // Give redeliveries of the first batch, if any, time to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    h2.stop().await;
    bus.shutdown().await.expect("shutdown");

    let got = c2.ids();
    let (distinct, duplicates) = distinct_ids(got.iter().copied());
    assert_eq!(duplicates, 0);
    assert!(
        distinct.is_disjoint(&first),
        "committed events were delivered again"
    );
    assert_eq!(distinct, second, "resumed exactly at the committed offset");
}

/// Publishes the orders `numbers`; their event ids, in order.
async fn publish_orders(publisher: &onex::Publisher, numbers: std::ops::Range<u64>) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for n in numbers {
        ids.push(
            publisher
                .publish(&order(n), None)
                .await
                .expect("publish")
                .event_id,
        );
    }
    ids
}

/// A subscription to one topic under a fresh name.
fn one_topic(topic: &str, name: &str) -> Subscription {
    Subscription {
        topics: vec![topic.to_owned()],
        group: unique(name),
    }
}

/// A bus in a fresh environment whose groups start at `latest`, and its
/// publisher.
async fn latest_bus(
    bootstrap: &str,
    prefix: &str,
) -> (Arc<onex::kafka::KafkaBus>, onex::Publisher) {
    let env = unique(prefix);
    let mut config = test_config(bootstrap, &env);
    config.auto_offset_reset = onex::config::AutoOffsetReset::Latest;
    let bus = kafka_bus(config).await;
    let publisher = publisher(bus.clone(), &env);
    (bus, publisher)
}

/// A new group with `latest` and a subscription from now on each see
/// exactly what is published once they returned: the first message right
/// after, and nothing from before (librdkafka would look a `latest`
/// partition's end up only after the assignment, skipping what lands in
/// between).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_and_from_now_subscriptions_start_where_they_returned() {
    let Some(bootstrap) = bootstrap("latest_and_from_now_subscriptions_start_where_they_returned")
    else {
        return;
    };
    let (bus, publisher) = latest_bus(&bootstrap, "ln").await;
    let topic = publisher.topic_of::<OrderPlaced>();
    publish_orders(&publisher, 0..5).await;

    let (in_group, group_handle) = collect(bus.as_ref(), &topic, &unique("g")).await;
    let from_now = Collector::new();
    let from_now_handle = bus
        .subscribe_from_now(one_topic(&topic, "now"), from_now.clone())
        .await
        .expect("subscribed from now on");
    let after: HashSet<Uuid> = publish_orders(&publisher, 5..10)
        .await
        .into_iter()
        .collect();
    in_group.wait_for(5, Duration::from_secs(30)).await;
    from_now.wait_for(5, Duration::from_secs(30)).await;
    // Anything from before would have come first (lower offsets); give
    // stragglers a moment all the same.
    tokio::time::sleep(Duration::from_millis(500)).await;
    group_handle.stop().await;
    from_now_handle.stop().await;
    bus.shutdown().await.expect("shutdown");

    for (name, got) in [
        ("in a group", in_group.ids()),
        ("from now on", from_now.ids()),
    ] {
        let (distinct, duplicates) = distinct_ids(got.iter().copied());
        assert_eq!(duplicates, 0, "{name}: no message twice");
        assert_eq!(distinct, after, "{name}: what came after, nothing before");
    }
}

/// A subscription from the start reads what the topic kept and what comes
/// after, without joining a group (whatever the reset policy says).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_from_the_start_reads_the_history_and_what_follows() {
    let Some(bootstrap) =
        bootstrap("a_subscription_from_the_start_reads_the_history_and_what_follows")
    else {
        return;
    };
    let (bus, publisher) = latest_bus(&bootstrap, "fs").await;
    let topic = publisher.topic_of::<OrderPlaced>();
    let mut sent = publish_orders(&publisher, 0..5).await;
    let collector = Collector::new();
    let handle = bus
        .subscribe_from_start(one_topic(&topic, "history"), collector.clone())
        .await
        .expect("subscribed from the start");
    sent.extend(publish_orders(&publisher, 5..10).await);
    collector.wait_for(10, Duration::from_secs(30)).await;
    handle.stop().await;
    bus.shutdown().await.expect("shutdown");
    let (distinct, duplicates) = distinct_ids(collector.ids());
    assert_eq!(duplicates, 0, "no message twice");
    assert_eq!(
        distinct,
        sent.into_iter().collect(),
        "the history and what followed"
    );
}

/// Fails every message, counting the calls.
struct AlwaysFails(AtomicU32);

#[async_trait::async_trait]
impl Handler for AlwaysFails {
    async fn handle(&self, _message: &BusMessage) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(HandlerError::new(
            "validation_error",
            "amount must be positive",
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_handler_sends_the_event_to_the_dead_letter_topic() {
    let Some(bootstrap) = bootstrap("failing_handler_sends_the_event_to_the_dead_letter_topic")
    else {
        return;
    };
    let env = unique("dl");
    let mut config = test_config(&bootstrap, &env);
    config.max_retry_attempts = 2;
    let bus = kafka_bus(config).await;
    let dlq = bus.dead_letter_topic().to_owned();
    assert_eq!(dlq, format!("{env}.dlq.v1"));
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    let m = message(&publisher, &topic, 7);
    bus.publish(m.clone()).await.expect("publish");

    let handler = Arc::new(AlwaysFails(AtomicU32::new(0)));
    let group = unique("g");
    let handle = bus
        .subscribe(
            Subscription {
                topics: vec![topic.clone()],
                group: group.clone(),
            },
            handler.clone(),
        )
        .await
        .expect("subscribe");

    let records = read_topic(&bootstrap, &dlq, Some(1), Duration::from_secs(45));
    assert_eq!(records.len(), 1, "one dead letter");
    let r = &records[0];
    assert_eq!(handler.0.load(Ordering::SeqCst), 3, "first try + 2 retries");
    assert_eq!(r.topic, dlq);
    assert_eq!(r.key.as_deref(), Some(m.key.as_str()));
    // The value is the original envelope.
    assert_eq!(r.envelope(), m.envelope);
    assert_eq!(r.header(dlq_headers::ORIGINAL_TOPIC), Some(topic.as_str()));
    assert_eq!(
        r.header(dlq_headers::FAILURE_REASON),
        Some("amount must be positive")
    );
    assert_eq!(r.header(dlq_headers::ERROR_TYPE), Some("validation_error"));
    assert_eq!(r.header(dlq_headers::RETRY_COUNT), Some("2"));
    assert_eq!(
        r.header(dlq_headers::CORRELATION_ID),
        Some(m.headers.correlation_id.to_string().as_str())
    );
    let ts = r
        .header(dlq_headers::FAILURE_TIMESTAMP)
        .expect("failure timestamp");
    chrono_parse(ts);
    assert!(r.header(dlq_headers::ORIGINAL_OFFSET).is_some());
    // The original headers travel along.
    assert_eq!(r.header("event_type"), Some("orders.order.placed"));
    assert_eq!(
        r.header("message_id"),
        Some(m.envelope.event_id.to_string().as_str())
    );
    assert_eq!(r.header("source"), Some("orders"));

    // Dead-lettered counts as handled: its offset is committed, so the
    // group does not get it again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.stop().await;
    assert_eq!(bus.stats().dead_lettered, 1);
    let again = Arc::new(AlwaysFails(AtomicU32::new(0)));
    let handle = bus
        .subscribe(
            Subscription {
                topics: vec![topic.clone()],
                group,
            },
            again.clone(),
        )
        .await
        .expect("subscribe");
    tokio::time::sleep(Duration::from_secs(2)).await;
    handle.stop().await;
    assert_eq!(again.0.load(Ordering::SeqCst), 0, "offset was committed");
    bus.shutdown().await.expect("shutdown");
}

fn chrono_parse(ts: &str) {
    onex::chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap_or_else(|e| panic!("failure_timestamp {ts:?} is not RFC 3339: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_records_are_dead_lettered_not_dropped() {
    let Some(bootstrap) = bootstrap("undecodable_records_are_dead_lettered_not_dropped") else {
        return;
    };
    let env = unique("ud");
    let bus = kafka_bus(test_config(&bootstrap, &env)).await;
    let topic = format!("{env}.raw.v1");
    // A record that is not an envelope, written by another client.
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&topic)
                .key("k1")
                .payload("this is not JSON"),
            Duration::from_secs(10),
        )
        .await
        .expect("sent");
    let (collector, handle) = collect(bus.as_ref(), &topic, &unique("g")).await;
    let records = read_topic(
        &bootstrap,
        bus.dead_letter_topic(),
        Some(1),
        Duration::from_secs(30),
    );
    handle.stop().await;
    bus.shutdown().await.expect("shutdown");
    assert_eq!(collector.len(), 0);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value.as_deref(), Some("this is not JSON"));
    assert_eq!(
        records[0].header(dlq_headers::ERROR_TYPE),
        Some("decode_error")
    );
    assert_eq!(
        records[0].header(dlq_headers::ORIGINAL_TOPIC),
        Some(topic.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_everything_in_flight() {
    let Some(bootstrap) = bootstrap("shutdown_delivers_everything_in_flight") else {
        return;
    };
    const N: usize = 2_000;
    let env = unique("sd");
    let mut config = test_config(&bootstrap, &env);
    // Batches wait a second before they go: at shutdown the messages are
    // still queued in the client.
    config.linger_ms = 1000;
    let bus = kafka_bus(config).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();

    // Every publish has handed its message to the client.
    let (mut tasks, sent) = publish_in_flight(&bus, &publisher, &topic, N).await;
    bus.shutdown().await.expect("shutdown delivers everything");
    assert_eq!(bus.in_flight(), 0);
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("every publish acknowledged");
    }
    assert!(matches!(
        bus.publish(message(&publisher, &topic, 0)).await,
        Err(onex::BusError::Shutdown)
    ));

    let records = read_topic(&bootstrap, &topic, Some(N), Duration::from_secs(30));
    let ids: Vec<Uuid> = records.iter().map(|r| r.envelope().event_id).collect();
    let (distinct, duplicates) = distinct_ids(ids);
    assert_eq!(duplicates, 0);
    assert_eq!(distinct, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_sends_what_lingers_and_the_bus_stays_open() {
    let Some(bootstrap) = bootstrap("flush_sends_what_lingers_and_the_bus_stays_open") else {
        return;
    };
    const N: usize = 100;
    let env = unique("fl");
    let mut config = test_config(&bootstrap, &env);
    config.linger_ms = 1000;
    let bus = kafka_bus(config).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();

    // Every publish has handed its message to the client.
    let (mut tasks, mut sent) = publish_in_flight(&bus, &publisher, &topic, N).await;
    bus.flush().await.expect("flush delivers what is queued");
    // Nothing is left in the client once the flush returns.
    assert_eq!(bus.in_flight(), 0);
    while let Some(r) = tasks.join_next().await {
        assert_eq!(
            r.expect("task").expect("publish"),
            onex::bus::Delivery::Acknowledged
        );
    }
    // A flush is no shutdown: the bus takes more.
    let last = message(&publisher, &topic, N as u64);
    sent.insert(last.envelope.event_id);
    bus.publish(last).await.expect("publish after a flush");
    bus.shutdown().await.expect("shutdown");

    let records = read_topic(&bootstrap, &topic, Some(N + 1), Duration::from_secs(30));
    let ids: Vec<Uuid> = records.iter().map(|r| r.envelope().event_id).collect();
    let (distinct, duplicates) = distinct_ids(ids);
    assert_eq!(duplicates, 0);
    assert_eq!(distinct, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_picks_kafka_when_a_broker_is_configured() {
    let Some(bootstrap) = bootstrap("connect_picks_kafka_when_a_broker_is_configured") else {
        return;
    };
    let env = unique("cn");
    let config = test_config(&bootstrap, &env);
    assert_eq!(
        onex::connect::choose(&config),
        onex::connect::BusKind::Kafka
    );
    let bus = onex::connect(config).await.expect("connect");
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    let id = publisher
        .publish(&order(1), None)
        .await
        .expect("publish")
        .event_id;
    bus.shutdown().await.expect("shutdown");
    let records = read_topic(&bootstrap, &topic, Some(1), Duration::from_secs(30));
    assert_eq!(records.len(), 1);
    let envelope: OnexEnvelopeV1 = records[0].envelope();
    assert_eq!(envelope.event_id, id);
}

/// Panics on order 1, keeps the others.
struct PanicsOnOne(Arc<Collector>);

#[async_trait::async_trait]
impl Handler for PanicsOnOne {
    async fn handle(&self, message: &BusMessage) -> Result<(), HandlerError> {
        let order: OrderPlaced = message.envelope.decode().expect("order");
        if order.order_no == 1 {
            panic!("order 1 is cursed");
        }
        self.0.handle(message).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_dead_letters_and_the_consumer_goes_on() {
    let Some(bootstrap) = bootstrap("panicking_handler_dead_letters_and_the_consumer_goes_on")
    else {
        return;
    };
    let env = unique("pa");
    let mut config = test_config(&bootstrap, &env);
    config.max_retry_attempts = 0;
    let bus = kafka_bus(config).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    // One key: one partition, in order.
    let correlation = Some(Uuid::new_v4());
    for n in 0..3 {
        publisher
            .publish(&order(n), correlation)
            .await
            .expect("publish");
    }
    let collector = Collector::new();
    let handle = bus
        .subscribe(
            Subscription {
                topics: vec![topic.clone()],
                group: unique("g"),
            },
            Arc::new(PanicsOnOne(collector.clone())),
        )
        .await
        .expect("subscribe");
    collector.wait_for(2, Duration::from_secs(30)).await;
    let records = read_topic(
        &bootstrap,
        bus.dead_letter_topic(),
        Some(1),
        Duration::from_secs(30),
    );
    handle.stop().await;
    bus.shutdown().await.expect("shutdown");
    let handled: Vec<u64> = collector
        .messages()
        .iter()
        .map(|m| m.envelope.decode::<OrderPlaced>().expect("order").order_no)
        .collect();
    assert_eq!(handled, vec![0, 2], "the consumer went on after the panic");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].header(dlq_headers::ERROR_TYPE), Some("panic"));
    assert_eq!(
        records[0].header(dlq_headers::FAILURE_REASON),
        Some("handler panicked: order 1 is cursed")
    );
    assert_eq!(
        records[0]
            .envelope()
            .decode::<OrderPlaced>()
            .expect("order"),
        order(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_subscription_gets_ordered_batches_and_a_failed_batch_again() {
    let Some(bootstrap) =
        bootstrap("batch_subscription_gets_ordered_batches_and_a_failed_batch_again")
    else {
        return;
    };
    let env = unique("bt");
    let bus = kafka_bus(test_config(&bootstrap, &env)).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    // One key: one partition, so one order.
    let correlation = Uuid::new_v4();
    let mut published = Vec::new();
    for n in 0..20 {
        let sent = publisher.publish(&order(n), Some(correlation)).await;
        published.push(sent.expect("publish").event_id);
    }
    let seen: Arc<Mutex<Vec<Vec<Uuid>>>> = Arc::default();
    let s = seen.clone();
    let handler = batch_handler_fn(move |batch: Vec<BusMessage>| {
        let s = s.clone();
        async move {
            let mut seen = s.lock().expect("lock");
            seen.push(batch.iter().map(|m| m.envelope.event_id).collect());
            if seen.len() == 1 {
                Err(HandlerError::new("store_down", "first try fails"))
            } else {
                Ok(())
            }
        }
    });
    let handle = bus
        .subscribe_batches(
            Subscription {
                topics: vec![topic],
                group: unique("g"),
            },
            BatchOptions {
                window: Duration::from_millis(1_000),
                max_messages: 8,
            },
            handler,
        )
        .await
        .expect("subscribe");
    let handled = |seen: &[Vec<Uuid>]| seen.iter().skip(1).map(Vec::len).sum::<usize>();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while handled(&seen.lock().expect("lock")) < published.len() {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", seen.lock());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.stop().await;
    bus.shutdown().await.expect("shutdown");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen[1], seen[0], "the failed batch is handed over again");
    assert!(seen.iter().all(|b| !b.is_empty() && b.len() <= 8));
    let in_order: Vec<Uuid> = seen[1..].concat();
    assert_eq!(in_order, published, "every message once, in order");
}

/// Spawns `n` publishes of `OrderPlaced` to `topic` and waits until every
/// one has handed its message to the client; the tasks and the event ids.
async fn publish_in_flight(
    bus: &Arc<onex::KafkaBus>,
    publisher: &onex::Publisher,
    topic: &str,
    n: usize,
) -> (
    tokio::task::JoinSet<Result<onex::bus::Delivery, onex::BusError>>,
    HashSet<Uuid>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = HashSet::new();
    for i in 0..n as u64 {
        let m = message(publisher, topic, i);
        sent.insert(m.envelope.event_id);
        let bus = bus.clone();
        tasks.spawn(async move { bus.publish(m).await });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bus.in_flight() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} in flight",
            bus.in_flight()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (tasks, sent)
}
