//! Kafka consumers under faults: a handler slower than
//! `max.poll.interval.ms` keeps its consumer in the group; handled offsets
//! are committed within a commit interval without stopping the consumer;
//! batch subscriptions get their batches in order, again after a failure,
//! and commit them only once the handler returned `Ok`. Hermetic: rdkafka's
//! in-process mock cluster.

// Without the Kafka bus these tests must fail, not pass vacuously.
#[cfg(not(feature = "kafka"))]
compile_error!("the Kafka tests need the `kafka` feature of onex (on by default)");

#[path = "support/kafka.rs"]
mod support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use onex::{
    BusMessage, EventBus, HandlerError,
    bus::{BatchHandler, BatchOptions, Handler, Subscription},
    kafka::KafkaBus,
};
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    mocking::MockCluster,
};
use support::*;
use uuid::Uuid;

/// A handler that takes `delay` over every message and records its id.
struct Slow {
    delay: Duration,
    seen: Mutex<Vec<Uuid>>,
}

#[async_trait::async_trait]
impl Handler for Slow {
    async fn handle(&self, message: &BusMessage) -> Result<(), HandlerError> {
        tokio::time::sleep(self.delay).await;
        self.seen
            .lock()
            .expect("lock")
            .push(message.envelope.event_id);
        Ok(())
    }
}

impl Slow {
    fn seen(&self) -> Vec<Uuid> {
        self.seen.lock().expect("lock").clone()
    }
}

/// The offset the group committed for partition 0 of `topic`, read by a
/// client of its own.
fn committed_offset(bootstrap: &str, group: &str, topic: &str) -> Option<i64> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("client");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = client
        .committed_offsets(tpl, Duration::from_secs(5))
        .expect("committed offsets");
    match committed.find_partition(topic, 0)?.offset() {
        Offset::Offset(n) => Some(n),
        _ => None,
    }
}

async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slower_than_the_max_poll_interval_keeps_its_consumer_in_the_group() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let env = unique("slow");
    let topic = format!("{env}.orders.v1");
    mock.create_topic(&topic, 2, 1).expect("topic");
    let mut config = test_config(&mock.bootstrap_servers(), &env);
    // The mock cluster holds a join for 3 s, longer than librdkafka waits
    // for one under a shorter poll interval.
    config.max_poll_interval_ms = 6_000;
    let bus = Arc::new(KafkaBus::connect(config).await.expect("connect"));
    let slow = Arc::new(Slow {
        delay: Duration::from_millis(7_000),
        seen: Mutex::new(Vec::new()),
    });
    let handle = bus
        .subscribe(
            Subscription {
                topics: vec![topic.clone()],
                group: format!("{env}-group"),
            },
            slow.clone(),
        )
        .await
        .expect("subscribe");
    let publisher = publisher(bus.clone(), &env);
    let mut published = Vec::new();
    for n in 0..3 {
        let m = message(&publisher, &topic, n);
        published.push(m.envelope.event_id);
        bus.publish(m).await.expect("publish");
    }
    assert!(
        wait_until(Duration::from_secs(60), || slow.seen().len() >= 3).await,
        "handled: {:?}",
        slow.seen()
    );
    // A consumer that had left its group would get its uncommitted message
    // again after rejoining: give it the time to.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut seen = slow.seen();
    seen.sort();
    published.sort();
    assert_eq!(seen, published, "each message handled exactly once");
    assert_eq!(
        bus.stats().consumer_errors,
        0,
        "no max.poll.interval.ms violation"
    );
    handle.stop().await;
    bus.shutdown().await.expect("shutdown");
}

async fn handled_offsets_are_committed_promptly(auto_commit: bool) {
    let mock = MockCluster::new(1).expect("mock cluster");
    let env = unique("commit");
    let topic = format!("{env}.orders.v1");
    let group = format!("{env}-group");
    mock.create_topic(&topic, 1, 1).expect("topic");
    let mut config = test_config(&mock.bootstrap_servers(), &env);
    config.enable_auto_commit = auto_commit;
    config.commit_interval_ms = 300;
    let interval = config.commit_interval();
    let bus = Arc::new(KafkaBus::connect(config).await.expect("connect"));
    let (collector, handle) = collect(bus.as_ref(), &topic, &group).await;
    let publisher = publisher(bus.clone(), &env);
    const N: i64 = 5;
    for n in 0..N {
        bus.publish(message(&publisher, &topic, n as u64))
            .await
            .expect("publish");
    }
    collector
        .wait_for(N as usize, Duration::from_secs(30))
        .await;
    let (bootstrap, g, t) = (mock.bootstrap_servers(), group.clone(), topic.clone());
    let committed = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + interval * 2;
        loop {
            let committed = committed_offset(&bootstrap, &g, &t);
            if committed == Some(N) || std::time::Instant::now() >= deadline {
                return committed;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("reader");
    assert_eq!(
        committed,
        Some(N),
        "enable_auto_commit={auto_commit}: committed within two commit intervals, consumer running"
    );
    assert!(!handle.is_finished(), "the consumer was not stopped");
    handle.stop().await;
    bus.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handled_offsets_are_committed_within_two_commit_intervals_with_auto_commit() {
    handled_offsets_are_committed_promptly(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handled_offsets_are_committed_within_two_commit_intervals_without_auto_commit() {
    handled_offsets_are_committed_promptly(false).await;
}

/// A batch handler that records the event ids of every batch, fails its
/// first `failures` calls, and waits while `hold` is set.
struct Reducer {
    failures: usize,
    hold: AtomicBool,
    batches: Mutex<Vec<Vec<Uuid>>>,
}

impl Reducer {
    fn new(failures: usize, hold: bool) -> Arc<Self> {
        Arc::new(Reducer {
            failures,
            hold: AtomicBool::new(hold),
            batches: Mutex::new(Vec::new()),
        })
    }

    fn batches(&self) -> Vec<Vec<Uuid>> {
        self.batches.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl BatchHandler for Reducer {
    async fn handle_batch(&self, messages: &[BusMessage]) -> Result<(), HandlerError> {
        let call = {
            let mut batches = self.batches.lock().expect("lock");
            batches.push(messages.iter().map(|m| m.envelope.event_id).collect());
            batches.len()
        };
        while self.hold.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if call <= self.failures {
            Err(HandlerError::new("store_down", "the store did not answer"))
        } else {
            Ok(())
        }
    }
}

async fn subscribe_reducer(
    bus: &KafkaBus,
    topic: &str,
    group: &str,
    reducer: &Arc<Reducer>,
) -> onex::SubscriptionHandle {
    bus.subscribe_batches(
        Subscription {
            topics: vec![topic.to_owned()],
            group: group.to_owned(),
        },
        BatchOptions {
            window: Duration::from_millis(1_000),
            max_messages: 100,
        },
        reducer.clone(),
    )
    .await
    .expect("subscribe")
}

/// Publishes `n` orders on `topic`, returning their event ids in order.
async fn publish_orders(bus: &Arc<KafkaBus>, env: &str, topic: &str, n: u64) -> Vec<Uuid> {
    let publisher = publisher(bus.clone(), env);
    let mut ids = Vec::new();
    for i in 0..n {
        let m = message(&publisher, topic, i);
        ids.push(m.envelope.event_id);
        bus.publish(m).await.expect("publish");
    }
    ids
}

/// The committed offset once it is `want`, or whatever it is after
/// `timeout`.
async fn committed_within(
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    group: &str,
    topic: &str,
    want: i64,
    timeout: Duration,
) -> Option<i64> {
    let (bootstrap, g, t) = (mock.bootstrap_servers(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let committed = committed_offset(&bootstrap, &g, &t);
            if committed == Some(want) || std::time::Instant::now() >= deadline {
                return committed;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("reader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_arrives_in_order_and_a_failed_batch_is_handed_over_again() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let env = unique("batch");
    let topic = format!("{env}.orders.v1");
    let group = format!("{env}-reducer");
    mock.create_topic(&topic, 1, 1).expect("topic");
    let bus = Arc::new(
        KafkaBus::connect(test_config(&mock.bootstrap_servers(), &env))
            .await
            .expect("connect"),
    );
    let published = publish_orders(&bus, &env, &topic, 5).await;
    let reducer = Reducer::new(1, false);
    let handle = subscribe_reducer(&bus, &topic, &group, &reducer).await;
    assert!(
        wait_until(Duration::from_secs(30), || reducer.batches().len() >= 2).await,
        "batches: {:?}",
        reducer.batches()
    );
    let batches = reducer.batches();
    assert_eq!(batches[0], published, "one batch, in publish order");
    assert_eq!(batches[1], batches[0], "the failed batch, again");
    assert_eq!(
        committed_within(&mock, &group, &topic, 5, Duration::from_secs(5)).await,
        Some(5)
    );
    assert_eq!(bus.stats().dead_lettered, 0);
    handle.stop().await;
    bus.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batchs_offsets_are_committed_only_once_its_handler_returned_ok() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let env = unique("batchcommit");
    let topic = format!("{env}.orders.v1");
    let group = format!("{env}-reducer");
    mock.create_topic(&topic, 1, 1).expect("topic");
    let mut config = test_config(&mock.bootstrap_servers(), &env);
    config.commit_interval_ms = 200;
    let interval = config.commit_interval();
    let bus = Arc::new(KafkaBus::connect(config).await.expect("connect"));
    publish_orders(&bus, &env, &topic, 3).await;
    let reducer = Reducer::new(0, true);
    let handle = subscribe_reducer(&bus, &topic, &group, &reducer).await;
    assert!(wait_until(Duration::from_secs(30), || !reducer.batches().is_empty()).await);
    // The handler holds the batch for many commit intervals.
    tokio::time::sleep(interval * 5).await;
    let early = committed_within(&mock, &group, &topic, 3, Duration::ZERO).await;
    assert_ne!(early, Some(3), "not committed while the handler runs");
    reducer.hold.store(false, Ordering::SeqCst);
    assert_eq!(
        committed_within(
            &mock,
            &group,
            &topic,
            3,
            interval * 2 + Duration::from_millis(500)
        )
        .await,
        Some(3),
        "committed within two commit intervals of Ok"
    );
    assert_eq!(reducer.batches().len(), 1);
    handle.stop().await;
    bus.shutdown().await.expect("shutdown");
}

/// A handler that records, per key, the order numbers in the order it
/// finished them, how many messages it held at once at most, and holds
/// order 0 while `hold` is set.
#[derive(Default)]
struct Lanes {
    by_key: Mutex<std::collections::BTreeMap<String, Vec<u64>>>,
    in_hand: std::sync::atomic::AtomicUsize,
    most_in_hand: std::sync::atomic::AtomicUsize,
    hold: AtomicBool,
}

#[async_trait::async_trait]
impl Handler for Lanes {
    async fn handle(&self, message: &BusMessage) -> Result<(), HandlerError> {
        let now = self.in_hand.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_hand.fetch_max(now, Ordering::SeqCst);
        let n = message.envelope.payload_value()["order_no"]
            .as_u64()
            .expect("order_no");
        // Keys finish at different paces, so that order could break.
        tokio::time::sleep(Duration::from_millis(if n.is_multiple_of(4) {
            30
        } else {
            3
        }))
        .await;
        while n == 0 && self.hold.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.by_key
            .lock()
            .expect("lock")
            .entry(message.key.to_string())
            .or_default()
            .push(n);
        self.in_hand.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_messages_in_flight_keep_order_per_key_and_commit_in_order() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let env = unique("inflight");
    let topic = format!("{env}.orders.v1");
    let group = format!("{env}-group");
    mock.create_topic(&topic, 1, 1).expect("topic");
    let mut config = test_config(&mock.bootstrap_servers(), &env);
    config.max_in_flight = 8;
    config.commit_interval_ms = 100;
    let bus = Arc::new(KafkaBus::connect(config).await.expect("connect"));
    let lanes = Arc::new(Lanes::default());
    lanes.hold.store(true, Ordering::SeqCst);
    let handle = bus
        .subscribe(
            Subscription {
                topics: vec![topic.clone()],
                group: group.clone(),
            },
            lanes.clone(),
        )
        .await
        .expect("subscribe");
    let publisher = publisher(bus.clone(), &env);
    const N: u64 = 40;
    for n in 0..N {
        let mut m = BusMessage::clone(&message(&publisher, &topic, n));
        m.key = format!("key-{}", n % 4).into();
        bus.publish(Arc::new(m)).await.expect("publish");
    }
    let handled = |lanes: &Lanes| {
        lanes
            .by_key
            .lock()
            .expect("lock")
            .values()
            .map(Vec::len)
            .sum::<usize>()
    };
    // Order 0 is held: other keys go on beside it (up to 8 in hand, while
    // up to 16 × 8 wait), and nothing is committed past it.
    assert!(
        wait_until(Duration::from_secs(30), || handled(&lanes) >= 3).await,
        "other keys were handled beside the held message: {:?}",
        lanes.by_key.lock().expect("lock")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !lanes.by_key.lock().expect("lock").contains_key("key-0"),
        "key 0 waits behind its first message"
    );
    let (bootstrap, g, t) = (mock.bootstrap_servers(), group.clone(), topic.clone());
    let committed = tokio::task::spawn_blocking(move || committed_offset(&bootstrap, &g, &t))
        .await
        .expect("reader");
    assert!(
        committed.is_none_or(|c| c <= 0),
        "committed past the open message: {committed:?}"
    );
    lanes.hold.store(false, Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(30), || handled(&lanes) == N as usize).await);
    for (key, numbers) in lanes.by_key.lock().expect("lock").iter() {
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {numbers:?}"
        );
        assert_eq!(numbers.len(), 10, "{key}: {numbers:?}");
    }
    let most = lanes.most_in_hand.load(Ordering::SeqCst);
    assert!((2..=8).contains(&most), "{most} messages in hand at once");
    let (bootstrap, g, t) = (mock.bootstrap_servers(), group.clone(), topic.clone());
    let committed = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let committed = committed_offset(&bootstrap, &g, &t);
            if committed == Some(N as i64) || std::time::Instant::now() >= deadline {
                return committed;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("reader");
    assert_eq!(
        committed,
        Some(N as i64),
        "every offset committed once all are done"
    );
    handle.stop().await;
    bus.shutdown().await.expect("shutdown");
}
