//! Kafka consumers under faults: a handler slower than
//! `max.poll.interval.ms` keeps its consumer in the group; handled offsets
//! are committed within a commit interval without stopping the consumer;
//! batch subscriptions get their batches in order, again after a failure,
//! and commit them only once the handler returned `Ok`; several messages
//! in flight keep order per key, and an operation run hands its key back
//! once its outcome event is handed over, yet is committed only once
//! acknowledged. Hermetic: rdkafka's
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
    BusError, BusMessage, EventBus, HandlerError, OperationError, Publisher,
    bus::{
        BatchHandler, BatchOptions, BusHealth, Delivery, Handler, Subscription, SubscriptionHandle,
    },
    kafka::KafkaBus,
    operation::{handing_back_key, run_operation, settle},
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
    let committed = committed_within(&mock, &group, &topic, N, interval * 2).await;
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

/// A topic of one partition on a mock cluster, subscribed to by a Kafka
/// bus with eight messages in flight: what the in-flight tests share.
struct InFlight {
    mock: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    bus: Arc<KafkaBus>,
    topic: String,
    group: String,
    handle: SubscriptionHandle,
}

impl InFlight {
    async fn subscribe(prefix: &str, handler: Arc<dyn Handler>) -> Self {
        let mock = MockCluster::new(1).expect("mock cluster");
        let env = unique(prefix);
        let topic = format!("{env}.orders.v1");
        let group = format!("{env}-group");
        mock.create_topic(&topic, 1, 1).expect("topic");
        let mut config = test_config(&mock.bootstrap_servers(), &env);
        config.max_in_flight = 8;
        config.commit_interval_ms = 100;
        let bus = Arc::new(KafkaBus::connect(config).await.expect("connect"));
        let handle = bus
            .subscribe(
                Subscription {
                    topics: vec![topic.clone()],
                    group: group.clone(),
                },
                handler,
            )
            .await
            .expect("subscribe");
        InFlight {
            mock,
            bus,
            topic,
            group,
            handle,
        }
    }

    /// Publishes orders `0..n`, order `i` with the key `key_of(i)`.
    async fn publish_orders(&self, n: u64, key_of: impl Fn(u64) -> String) {
        let publisher = publisher(self.bus.clone(), self.bus.environment());
        for i in 0..n {
            let mut m = BusMessage::clone(&message(&publisher, &self.topic, i));
            m.key = key_of(i).into();
            self.bus.publish(Arc::new(m)).await.expect("publish");
        }
    }

    /// The committed offset, read at once.
    async fn committed_now(&self) -> Option<i64> {
        let (bootstrap, g, t) = (
            self.mock.bootstrap_servers(),
            self.group.clone(),
            self.topic.clone(),
        );
        tokio::task::spawn_blocking(move || committed_offset(&bootstrap, &g, &t))
            .await
            .expect("reader")
    }

    /// The committed offset once it is `expected`, or after 10 s.
    async fn committed_soon(&self, expected: i64) -> Option<i64> {
        committed_within(
            &self.mock,
            &self.group,
            &self.topic,
            expected,
            Duration::from_secs(10),
        )
        .await
    }

    async fn stop(self) {
        self.handle.stop().await;
        self.bus.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_messages_in_flight_keep_order_per_key_and_commit_in_order() {
    let lanes = Arc::new(Lanes::default());
    lanes.hold.store(true, Ordering::SeqCst);
    let topic = InFlight::subscribe("inflight", lanes.clone()).await;
    const N: u64 = 40;
    topic.publish_orders(N, |n| format!("key-{}", n % 4)).await;
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
    let committed = topic.committed_now().await;
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
    assert_eq!(
        topic.committed_soon(N as i64).await,
        Some(N as i64),
        "every offset committed once all are done"
    );
    topic.stop().await;
}

/// A bus that takes every publish at once and acknowledges none until the
/// test opens its gate: where a node's run waits once it has handed its
/// outcome event over.
struct GatedBus {
    gate: tokio::sync::watch::Sender<bool>,
    /// The order numbers of the events handed over, in order.
    handed_over: Mutex<Vec<u64>>,
}

impl GatedBus {
    fn closed() -> Self {
        GatedBus {
            gate: tokio::sync::watch::channel(false).0,
            handed_over: Mutex::default(),
        }
    }
}

#[async_trait::async_trait]
impl EventBus for GatedBus {
    fn environment(&self) -> &str {
        "gated"
    }

    async fn publish(&self, message: Arc<BusMessage>) -> Result<Delivery, BusError> {
        self.handed_over
            .lock()
            .expect("lock")
            .push(order_no(&message));
        let mut gate = self.gate.subscribe();
        gate.wait_for(|open| *open)
            .await
            .map_err(|_| BusError::Other("the gate is gone".to_owned()))?;
        Ok(Delivery::Acknowledged)
    }

    async fn subscribe(
        &self,
        _subscription: Subscription,
        _handler: Arc<dyn Handler>,
    ) -> Result<SubscriptionHandle, BusError> {
        Err(BusError::Other("the gated bus only publishes".to_owned()))
    }

    fn health(&self) -> BusHealth {
        BusHealth::Healthy
    }

    async fn shutdown(&self) -> Result<(), BusError> {
        Ok(())
    }
}

fn order_no(message: &BusMessage) -> u64 {
    message.envelope.payload_value()["order_no"]
        .as_u64()
        .expect("order_no")
}

/// A command handled as a node's dispatch handles one: an operation run
/// (started, the logic, completed) on the gated bus, through
/// `handing_back_key` when `hand_back`.
struct OperationRun {
    publisher: Publisher,
    hand_back: bool,
    /// The order numbers whose logic ran, in order.
    ran: Mutex<Vec<u64>>,
}

#[async_trait::async_trait]
impl Handler for OperationRun {
    async fn handle(&self, message: &BusMessage) -> Result<(), HandlerError> {
        let n = order_no(message);
        let run = run_operation(
            &self.publisher,
            Uuid::new_v4(),
            order(n),
            || async move {
                self.ran.lock().expect("lock").push(n);
                Ok::<_, OperationError>(n)
            },
            |_, n| order(*n),
            |_, _| order(n),
        );
        let result = if self.hand_back {
            handing_back_key(run).await
        } else {
            run.await
        };
        settle("order", result)
    }
}

/// Four commands of one key, each run's events taken by the bus but not
/// acknowledged: the run hands its key back once its completed event is
/// handed over, so all four run, in order, and their events are handed
/// over in order; nothing is committed until the acknowledgements come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_hands_its_key_back_once_its_outcome_is_handed_over() {
    let (ran, handed_over, committed) = runs_with_acknowledgements_held(true).await;
    assert_eq!(ran, [0, 1, 2, 3], "the key's next commands ran meanwhile");
    assert_eq!(
        handed_over,
        [0, 0, 1, 1, 2, 2, 3, 3],
        "each run's started and completed, run after run"
    );
    assert!(
        committed.is_none_or(|c| c <= 0),
        "committed before the acknowledgements: {committed:?}"
    );
}

/// The same without `handing_back_key` (an operation run inside another
/// handling, a workflow's step): the key stays in hand until the run is
/// done, so only the first command runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_not_dispatched_as_the_whole_handling_keeps_its_key() {
    let (ran, handed_over, committed) = runs_with_acknowledgements_held(false).await;
    assert_eq!(ran, [0], "the key's next command waited");
    assert_eq!(handed_over, [0, 0]);
    assert!(committed.is_none_or(|c| c <= 0), "{committed:?}");
}

/// Subscribes an [`OperationRun`] to four commands of one key with
/// acknowledgements held; returns what ran, what was handed over and what
/// was committed after a while, then opens the gate and checks that all
/// four are done and committed.
async fn runs_with_acknowledgements_held(hand_back: bool) -> (Vec<u64>, Vec<u64>, Option<i64>) {
    let gated = Arc::new(GatedBus::closed());
    let operation = Arc::new(OperationRun {
        publisher: publisher(gated.clone(), "gated"),
        hand_back,
        ran: Mutex::default(),
    });
    let topic = InFlight::subscribe("handback", operation.clone()).await;
    const N: u64 = 4;
    topic.publish_orders(N, |_| "one-key".to_owned()).await;
    let expected = if hand_back { N as usize } else { 1 };
    assert!(
        wait_until(Duration::from_secs(30), || {
            operation.ran.lock().expect("lock").len() >= expected
        })
        .await,
        "ran: {:?}",
        operation.ran.lock().expect("lock")
    );
    // Time for anything that should not happen to happen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ran = operation.ran.lock().expect("lock").clone();
    let handed_over = gated.handed_over.lock().expect("lock").clone();
    let committed = topic.committed_now().await;
    gated.gate.send_replace(true);
    assert!(
        wait_until(Duration::from_secs(30), || {
            operation.ran.lock().expect("lock").len() == N as usize
        })
        .await
    );
    let all_committed = topic.committed_soon(N as i64).await;
    assert_eq!(
        all_committed,
        Some(N as i64),
        "every command committed once acknowledged"
    );
    assert_eq!(*operation.ran.lock().expect("lock"), [0, 1, 2, 3]);
    topic.stop().await;
    (ran, handed_over, committed)
}
