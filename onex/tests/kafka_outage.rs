//! Broker outages: the circuit breaker, degraded mode, publishing while the
//! broker is down, and producer rebuilds after a broker restart.
//!
//! These tests never touch the shared broker: the hermetic ones use
//! rdkafka's in-process mock cluster or a dead port; the ones that stop and
//! restart a real broker start their own Tansu on a free loopback port (so
//! they run only when `ONEX_TEST_BOOTSTRAP_SERVERS` says broker tests are
//! on).

// Without the Kafka bus these tests must fail, not pass vacuously.
#[cfg(not(feature = "kafka"))]
compile_error!("the Kafka tests need the `kafka` feature of onex (on by default)");

#[path = "support/kafka.rs"]
mod support;

use std::{collections::HashSet, sync::Arc, time::Duration};

use onex::{BusError, BusHealth, Delivery, EventBus, circuit::CircuitState, kafka::KafkaBus};
use rdkafka::mocking::MockCluster;
use support::*;
use uuid::Uuid;

/// Settings for a bus whose broker will fail: one-second deliveries, no
/// retries, a breaker that opens after two failures and tries again after
/// one second.
fn fragile(bootstrap: &str, environment: &str) -> onex::KafkaConfig {
    let mut c = test_config(bootstrap, environment);
    c.timeout_seconds = 1;
    c.max_retry_attempts = 0;
    c.circuit_breaker_threshold = 2;
    c.circuit_breaker_reset_timeout = 1.0;
    c.validate().expect("valid");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_opens_at_the_threshold_and_lets_a_trial_through() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let env = unique("cb");
    let bus = KafkaBus::connect(fragile(&mock.bootstrap_servers(), &env))
        .await
        .expect("connect");
    let publisher = publisher(Arc::new(DummyBus), &env);
    let topic = format!("{env}.orders.v1");
    mock.create_topic(&topic, 1, 1).expect("topic");
    bus.publish_now(&message(&publisher, &topic, 0))
        .await
        .expect("broker up: delivered");
    assert_eq!(bus.circuit_state(), CircuitState::Closed);

    mock.broker_down(1).expect("broker down");
    for n in 1..=2 {
        let err = bus
            .publish_now(&message(&publisher, &topic, n))
            .await
            .expect_err("broker down: delivery fails");
        assert!(matches!(err, BusError::Delivery { .. }), "{err}");
    }
    assert_eq!(
        bus.circuit_state(),
        CircuitState::Open,
        "opens at 2 failures"
    );
    assert!(matches!(bus.health(), BusHealth::Degraded { .. }));

    // Open: fails fast, without waiting for the broker.
    let started = std::time::Instant::now();
    let err = bus
        .publish_now(&message(&publisher, &topic, 3))
        .await
        .expect_err("open breaker refuses");
    assert!(matches!(err, BusError::CircuitOpen { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_millis(200));

    // After each reset timeout the bus probes the broker by itself (the
    // half-open trial, on a timer, with nothing published); while the
    // broker is down the trial fails and the breaker opens again, and
    // publishes keep failing fast.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(bus.circuit_state(), CircuitState::Open);
    assert!(matches!(
        bus.publish_now(&message(&publisher, &topic, 5)).await,
        Err(BusError::CircuitOpen { .. })
    ));

    // Broker back: the next timed trial closes the breaker, again without
    // a publish.
    mock.broker_up(1).expect("broker up");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bus.circuit_state() != CircuitState::Closed {
        assert!(
            std::time::Instant::now() < deadline,
            "the breaker stays open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(bus.health(), BusHealth::Healthy);
    bus.publish_now(&message(&publisher, &topic, 6))
        .await
        .expect("delivered");
    bus.publish_now(&message(&publisher, &topic, 7))
        .await
        .expect("closed again");
    bus.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_breaker_buffers_publishes_and_delivers_them_when_the_broker_returns() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let env = unique("bf");
    let mut config = fragile(&mock.bootstrap_servers(), &env);
    // Buffered messages wait up to this long for the broker.
    config.timeout_seconds = 4;
    let bus = Arc::new(KafkaBus::connect(config).await.expect("connect"));
    let publisher = publisher(Arc::new(DummyBus), &env);
    let topic = format!("{env}.orders.v1");
    mock.create_topic(&topic, 1, 1).expect("topic");

    mock.broker_down(1).expect("broker down");
    // Their delivery fails (and opens the breaker): they are spooled.
    let failing: Vec<_> = (0..2)
        .map(|n| {
            let bus = bus.clone();
            let m = message(&publisher, &topic, n);
            tokio::spawn(async move { bus.publish(m).await })
        })
        .collect();
    for f in failing {
        let delivery = f.await.expect("task").expect("spooled");
        assert_eq!(delivery, Delivery::Spooled);
    }
    assert_eq!(bus.circuit_state(), CircuitState::Open);
    // Degraded: publish goes to the spool at once.
    for n in 10..20 {
        let delivery = bus
            .publish(message(&publisher, &topic, n))
            .await
            .expect("spooled");
        assert_eq!(delivery, Delivery::Spooled);
    }
    assert!(matches!(bus.health(), BusHealth::Degraded { .. }));
    assert_eq!(bus.stats().buffered, 12);
    assert_eq!(bus.stats().spooled, 12);

    mock.broker_up(1).expect("broker up");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while bus.buffered() > 0 || bus.health() != BusHealth::Healthy {
        assert!(
            tokio::time::Instant::now() < deadline,
            "buffer not delivered: {:?} {:?}",
            bus.stats(),
            bus.health()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = bus.stats();
    assert_eq!(stats.undelivered, 0, "{stats:?}");
    assert_eq!(stats.delivered, 12, "{stats:?}");
    bus.shutdown().await.expect("shutdown");
}

/// A bus whose broker does not answer, without a spool: held messages live
/// in memory, at most three. With a publisher and a topic for it.
async fn unreachable_with_room_for_three(prefix: &str) -> (KafkaBus, onex::Publisher, String) {
    // Nothing listens on this port.
    let dead = format!("127.0.0.1:{}", free_port());
    let env = unique(prefix);
    let mut config = fragile(&dead, &env);
    config.spool_dir = "off".to_owned();
    config.publish_buffer_capacity = 3;
    let bus = KafkaBus::connect(config).await.expect("constructs anyway");
    let publisher = publisher(Arc::new(DummyBus), &env);
    (bus, publisher, format!("{env}.orders.v1"))
}

/// Not delivered within the timeout, the held messages are handed back by
/// shutdown, in order, not dropped.
async fn assert_handed_back(bus: &KafkaBus, sent: &[Uuid]) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let err = bus.shutdown().await.expect_err("undelivered messages");
    assert!(
        matches!(err, BusError::Undelivered { count } if count == sent.len()),
        "{err}"
    );
    let undelivered: Vec<Uuid> = bus
        .take_undelivered()
        .iter()
        .map(|m| m.envelope.event_id)
        .collect();
    assert_eq!(undelivered, sent, "all of them, in order");
    assert_eq!(bus.health(), BusHealth::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_degrades_buffers_then_refuses_when_full() {
    let (bus, publisher, topic) = unreachable_with_room_for_three("dp").await;
    assert!(
        matches!(bus.health(), BusHealth::Degraded { .. }),
        "{:?}",
        bus.health()
    );
    let mut sent = Vec::new();
    for n in 0..3 {
        let m = message(&publisher, &topic, n);
        sent.push(m.envelope.event_id);
        let delivery = bus.publish(m).await.expect("buffered");
        assert_eq!(delivery, Delivery::Buffered, "only in memory: not durable");
    }
    assert!(matches!(
        bus.publish(message(&publisher, &topic, 3)).await,
        Err(BusError::BufferFull { capacity: 3 })
    ));
    assert_handed_back(&bus, &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_many_on_an_unreachable_broker_buffers_each_message_as_publish_would() {
    let (bus, publisher, topic) = unreachable_with_room_for_three("dm").await;
    let batch: Vec<_> = (0..4).map(|n| message(&publisher, &topic, n)).collect();
    let outcomes = bus.publish_many(batch.clone()).await;
    assert_eq!(outcomes.len(), 4);
    for outcome in &outcomes[..3] {
        assert_eq!(outcome.as_ref().ok(), Some(&Delivery::Buffered));
    }
    assert!(
        matches!(outcomes[3], Err(BusError::BufferFull { capacity: 3 })),
        "{:?}",
        outcomes[3]
    );
    let sent: Vec<Uuid> = batch[..3].iter().map(|m| m.envelope.event_id).collect();
    assert_handed_back(&bus, &sent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_broker_did_not_take_by_shutdown_is_delivered_first_at_the_next_start() {
    let spool_dir = tempfile::tempdir().expect("spool dir");
    let env = unique("sp");
    let topic = format!("{env}.orders.v1");
    let publisher = publisher(Arc::new(DummyBus), &env);
    let config = |bootstrap: &str| {
        let mut c = fragile(bootstrap, &env);
        c.spool_dir = spool_dir.path().display().to_string();
        c.spool_name = Some("writer".to_owned());
        c.validate().expect("valid");
        c
    };

    // The broker is down through the whole first run.
    let dead = format!("127.0.0.1:{}", free_port());
    let bus = KafkaBus::connect(config(&dead)).await.expect("connect");
    let mut sent = Vec::new();
    for n in 0..5 {
        let m = message(&publisher, &topic, n);
        sent.push(m.envelope.event_id);
        assert_eq!(bus.publish(m).await.expect("spooled"), Delivery::Spooled);
    }
    let spool = bus.spool_path().expect("spool on").to_path_buf();
    assert_eq!(spool, spool_dir.path().join(format!("{env}.writer.spool")));
    bus.shutdown()
        .await
        .expect("nothing lost: it is in the spool");
    drop(bus);
    assert!(std::fs::metadata(&spool).expect("spool file").len() > 0);

    // The next start, with the broker back: the spool goes out first, in
    // order, before what this run publishes.
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic(&topic, 1, 1).expect("topic");
    let bus = KafkaBus::connect(config(&mock.bootstrap_servers()))
        .await
        .expect("connect");
    let later = message(&publisher, &topic, 99);
    sent.push(later.envelope.event_id);
    bus.publish(later).await.expect("published");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while bus.buffered() > 0 {
        assert!(std::time::Instant::now() < deadline, "{:?}", bus.stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bus.shutdown().await.expect("shutdown");

    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    rdkafka::consumer::Consumer::subscribe(&consumer, &[topic.as_str()]).expect("subscribe");
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < sent.len() && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let envelope =
                onex::OnexEnvelopeV1::from_json(rdkafka::Message::payload(&m).unwrap_or_default())
                    .expect("envelope");
            seen.push(envelope.event_id);
        }
    }
    assert_eq!(
        seen, sent,
        "the spooled messages first, in order, then the new one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_started_without_broker_delivers_its_buffer_once_the_broker_answers() {
    if !broker_tests_enabled(
        "bus_started_without_broker_delivers_its_buffer_once_the_broker_answers",
    ) {
        return;
    }
    let mut tansu = Tansu::new(); // not started yet
    let env = unique("sb");
    let bus = KafkaBus::connect(test_config(&tansu.bootstrap(), &env))
        .await
        .expect("constructs without a broker");
    assert!(matches!(bus.health(), BusHealth::Degraded { .. }));
    let publisher = publisher(Arc::new(DummyBus), &env);
    let topic = format!("{env}.orders.v1");
    let mut sent = HashSet::new();
    for n in 0..50 {
        let m = message(&publisher, &topic, n);
        sent.insert(m.envelope.event_id);
        bus.publish(m).await.expect("buffered while degraded");
    }
    tansu.start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while bus.buffered() > 0 || bus.health() != BusHealth::Healthy {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered: {:?} {:?}",
            bus.stats(),
            bus.health()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bus.shutdown().await.expect("shutdown");
    let records = read_topic(
        &tansu.bootstrap(),
        &topic,
        Some(50),
        Duration::from_secs(20),
    );
    let (got, duplicates) = distinct_ids(records.iter().map(|r| r.envelope().event_id));
    assert_eq!(duplicates, 0);
    assert_eq!(got, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_during_an_outage_are_delivered_when_the_broker_returns() {
    if !broker_tests_enabled("publishes_during_an_outage_are_delivered_when_the_broker_returns") {
        return;
    }
    let mut tansu = Tansu::started();
    let env = unique("ou");
    let bus = kafka_bus(test_config(&tansu.bootstrap(), &env)).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    publisher.publish(&order(0), None).await.expect("warm up");

    tansu.stop();
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = HashSet::new();
    for n in 1..=200 {
        let m = message(&publisher, &topic, n);
        sent.insert(m.envelope.event_id);
        let bus = bus.clone();
        tasks.spawn(async move { bus.publish(m).await });
    }
    // Down for a while, well within the timeout (15 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        tasks.try_join_next().is_none(),
        "nothing is acknowledged or given up while the broker is down"
    );
    tansu.start();
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("delivered once the broker is back");
    }
    bus.shutdown().await.expect("shutdown");
    // The restarted broker (memory storage) holds what came after it.
    let records = read_topic(
        &tansu.bootstrap(),
        &topic,
        Some(200),
        Duration::from_secs(20),
    );
    let (got, duplicates) = distinct_ids(records.iter().map(|r| r.envelope().event_id));
    assert!(
        got.is_superset(&sent),
        "missing {:?}",
        sent.difference(&got)
    );
    assert_eq!(got.len(), 200);
    // Re-sends after a producer rebuild may duplicate (at-least-once);
    // consumers dedupe by event id.
    println!("duplicates: {duplicates}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_is_rebuilt_after_a_fatal_error_and_resends_what_failed() {
    if !broker_tests_enabled("producer_is_rebuilt_after_a_fatal_error_and_resends_what_failed") {
        return;
    }
    let mut tansu = Tansu::started();
    let env = unique("fe");
    let bus = kafka_bus(test_config(&tansu.bootstrap(), &env)).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    for n in 0..20 {
        publisher.publish(&order(n), None).await.expect("before");
    }

    // The broker restarts and forgets the producer id; publishes continue
    // across it.
    tansu.restart();
    let mut sent = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 100..600 {
        let m = message(&publisher, &topic, n);
        sent.insert(m.envelope.event_id);
        let bus2 = bus.clone();
        tasks.spawn(async move { bus2.publish(m).await });
        if n == 300 {
            // What the broker restart can cause (UnknownProducerId): a
            // fatal error with messages in flight.
            bus.inject_fatal_error("test: unknown producer id after broker restart");
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("re-sent, not dropped");
    }
    let stats = bus.stats();
    assert!(stats.producer_rebuilds >= 1, "{stats:?}");
    // The rebuilt producer keeps working.
    let after = message(&publisher, &topic, 1000);
    sent.insert(after.envelope.event_id);
    bus.publish(after).await.expect("after rebuild");
    bus.shutdown().await.expect("shutdown");

    let duplicates = assert_none_lost(&tansu, &topic, &sent);
    println!(
        "rebuilds: {}, duplicates: {duplicates}",
        stats.producer_rebuilds
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_many_resends_what_a_fatal_error_failed_on_the_rebuilt_producer() {
    if !broker_tests_enabled(
        "publish_many_resends_what_a_fatal_error_failed_on_the_rebuilt_producer",
    ) {
        return;
    }
    let tansu = Tansu::started();
    let env = unique("fm");
    let bus = kafka_bus(test_config(&tansu.bootstrap(), &env)).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    publisher.publish(&order(0), None).await.expect("before");

    let batch: Vec<_> = (1..501).map(|n| message(&publisher, &topic, n)).collect();
    let sent: HashSet<Uuid> = batch.iter().map(|m| m.envelope.event_id).collect();
    let publishing = tokio::spawn({
        let bus = bus.clone();
        async move { bus.publish_many(batch).await }
    });
    // A fatal error while the batch is being handed over or in flight.
    tokio::task::yield_now().await;
    bus.inject_fatal_error("test: fatal error during a batch");
    let outcomes = publishing.await.expect("task");
    for outcome in &outcomes {
        outcome.as_ref().expect("re-sent, not dropped");
    }
    assert!(bus.stats().producer_rebuilds >= 1, "{:?}", bus.stats());
    bus.shutdown().await.expect("shutdown");

    assert_none_lost(&tansu, &topic, &sent);
}

/// Reads `topic` back with confluent-kafka and checks that every message of
/// `sent` reached it; how many came more than once (a re-send after a
/// fatal error may duplicate, at-least-once).
fn assert_none_lost(tansu: &Tansu, topic: &str, sent: &HashSet<Uuid>) -> usize {
    let records = read_topic(&tansu.bootstrap(), topic, None, Duration::from_secs(20));
    let (got, duplicates) = distinct_ids(records.iter().map(|r| r.envelope().event_id));
    assert!(
        got.is_superset(sent),
        "lost {} message(s)",
        sent.difference(&got).count()
    );
    duplicates
}

/// A bus that is never used: the publisher only builds messages here.
struct DummyBus;

#[async_trait::async_trait]
impl EventBus for DummyBus {
    fn environment(&self) -> &str {
        "unused"
    }
    async fn publish(&self, _message: Arc<onex::BusMessage>) -> Result<onex::Delivery, BusError> {
        Err(BusError::Shutdown)
    }
    async fn subscribe(
        &self,
        _subscription: onex::bus::Subscription,
        _handler: Arc<dyn onex::Handler>,
    ) -> Result<onex::SubscriptionHandle, BusError> {
        Err(BusError::Shutdown)
    }
    fn health(&self) -> BusHealth {
        BusHealth::Stopped
    }
    async fn shutdown(&self) -> Result<(), BusError> {
        Ok(())
    }
}
