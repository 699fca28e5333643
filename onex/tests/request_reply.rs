//! Request and reply (`onex::request`) on both buses: the in-memory bus
//! always, the Kafka bus against the broker at
//! `ONEX_TEST_BOOTSTRAP_SERVERS` when it is set.
//!
//! A responder subscribed to the command topic answers each `Compute`
//! with `Computed` or `ComputeFailed` under the command's correlation id,
//! as the command asks: at once, after a delay, several times, not at all,
//! or with a reply that does not decode.

#[path = "support/kafka.rs"]
mod support;

use std::{sync::Arc, time::Duration};

use onex::{
    Event, EventBus, HandlerError, InMemoryBus, MessageCategory, Publisher, SourceInfo,
    bus::{Subscription, SubscriptionHandle, handler_fn},
    config::AutoOffsetReset,
    kafka::KafkaBus,
    request::{RequestError, Requester, RequesterStats, create_missing_topics},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The command.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Compute {
    n: u64,
    /// Answer with `ComputeFailed`.
    fail: bool,
    /// Do not answer at all.
    silent: bool,
    /// Answer with a `Computed` whose payload does not decode.
    garbled: bool,
    /// Answer after this long.
    delay_ms: u64,
    /// Answer this many times (0 counts as 1).
    replies: u32,
}

impl Event for Compute {
    const EVENT_TYPE: &'static str = "calc.compute";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Command;
    const TOPIC: &'static str = "calc.compute.v1";
}

/// The completed event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Computed {
    n: u64,
    doubled: u64,
}

impl Event for Computed {
    const EVENT_TYPE: &'static str = "calc.compute.completed";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Event;
    const TOPIC: &'static str = "calc.compute.completed.v1";
}

/// The failed event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ComputeFailed {
    n: u64,
    error_code: String,
    error_message: String,
}

impl Event for ComputeFailed {
    const EVENT_TYPE: &'static str = "calc.compute.failed";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Event;
    const TOPIC: &'static str = "calc.compute.failed.v1";
}

type Calc = Requester<Computed, ComputeFailed>;

/// A bus with a responder on it.
struct Harness {
    bus: Arc<dyn EventBus>,
    /// The same bus when it is the Kafka bus.
    kafka: Option<Arc<KafkaBus>>,
    environment: String,
    /// The longest a reply takes on this bus, with margin.
    patience: Duration,
    _responder: SubscriptionHandle,
}

impl Harness {
    fn publisher(&self, service: &str) -> Publisher {
        Publisher::new(
            self.bus.clone(),
            SourceInfo::new(service, "1.0.0", &self.environment),
        )
    }

    async fn requester(&self) -> Calc {
        let started = match &self.kafka {
            Some(bus) => {
                let source = SourceInfo::new("cli", "1.0.0", &self.environment);
                Requester::start_on_kafka(bus.clone(), source, "cli").await
            }
            None => Requester::start(self.publisher("cli"), "cli").await,
        };
        started.expect("requester starts")
    }

    async fn finish(self) {
        self.bus.shutdown().await.expect("shutdown");
    }
}

/// Subscribes the responder to the command topic.
async fn responder(bus: Arc<dyn EventBus>, environment: &str) -> SubscriptionHandle {
    let publisher = Publisher::new(bus.clone(), SourceInfo::new("calc", "1.0.0", environment));
    let topic = publisher.topic_of::<Compute>();
    let handler = handler_fn(move |msg| {
        let publisher = publisher.clone();
        async move {
            let command: Compute = msg
                .envelope
                .decode()
                .map_err(|e| HandlerError::new("decode", e.to_string()))?;
            let correlation_id = msg.correlation_id();
            if command.silent {
                return Ok(());
            }
            let delayed = command.delay_ms > 0;
            let answer = async move {
                if command.delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(command.delay_ms)).await;
                }
                for _ in 0..command.replies.max(1) {
                    answer(&publisher, &command, correlation_id).await;
                }
            };
            if delayed {
                // Late answers must not hold up the other commands.
                tokio::spawn(answer);
            } else {
                answer.await;
            }
            Ok(())
        }
    });
    bus.subscribe(
        Subscription {
            topics: vec![topic],
            // A group per environment: tests running at once must not
            // share one (their rebalances would hold each other up).
            group: format!("{environment}.calc"),
        },
        handler,
    )
    .await
    .expect("responder subscribes")
}

async fn answer(publisher: &Publisher, command: &Compute, correlation_id: Uuid) {
    let n = command.n;
    let published = if command.garbled {
        // A `Computed` envelope whose payload is not a `Computed`.
        let mut message = publisher
            .message(
                &ComputeFailed {
                    n,
                    error_code: "X".into(),
                    error_message: "x".into(),
                },
                Some(correlation_id),
                Default::default(),
            )
            .expect("message");
        message.topic = publisher.topic_of::<Computed>();
        message.envelope.event_type = Computed::EVENT_TYPE.into();
        message.headers.event_type = Computed::EVENT_TYPE.into();
        publisher.bus().publish(Arc::new(message)).await.map(|_| ())
    } else if command.fail {
        let failed = ComputeFailed {
            n,
            error_code: "ODD".into(),
            error_message: format!("{n} is odd"),
        };
        publisher
            .publish(&failed, Some(correlation_id))
            .await
            .map(|_| ())
    } else {
        let done = Computed { n, doubled: 2 * n };
        publisher
            .publish(&done, Some(correlation_id))
            .await
            .map(|_| ())
    };
    published.expect("the responder publishes its answer");
}

async fn memory() -> Harness {
    let bus: Arc<dyn EventBus> = Arc::new(InMemoryBus::new("dev"));
    let responder = responder(bus.clone(), "dev").await;
    Harness {
        bus,
        kafka: None,
        environment: "dev".to_owned(),
        patience: Duration::from_secs(5),
        _responder: responder,
    }
}

/// A Kafka bus in a fresh environment, consumers starting at the latest
/// offset (the production default): the requester must be subscribed
/// before its first command goes out.
async fn kafka(test: &str) -> Option<Harness> {
    let bootstrap = support::bootstrap(test)?;
    let environment = support::unique("rr");
    let mut config = support::test_config(&bootstrap, &environment);
    config.auto_offset_reset = AutoOffsetReset::Latest;
    let kafka = support::kafka_bus(config.clone()).await;
    let bus: Arc<dyn EventBus> = kafka.clone();
    // The responder's topic must exist when it subscribes, as the
    // requester's do (`start_on_kafka`).
    let command_topic = onex::topic::qualified(&environment, Compute::TOPIC);
    create_missing_topics(&config, &[command_topic])
        .await
        .expect("command topic");
    let responder = responder(bus.clone(), &environment).await;
    Some(Harness {
        bus,
        kafka: Some(kafka),
        environment,
        patience: Duration::from_secs(30),
        _responder: responder,
    })
}

/// Waits until the requester's counters satisfy `check`; panics after
/// `patience`.
async fn stats_until(
    requester: &Calc,
    patience: Duration,
    what: &str,
    check: impl Fn(&RequesterStats) -> bool,
) -> RequesterStats {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let stats = requester.stats();
        if check(&stats) {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {patience:?} for {what}; stats: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn compute(n: u64) -> Compute {
    Compute {
        n,
        ..Compute::default()
    }
}

// --- Scenarios, run on each bus ------------------------------------------------

async fn completes(h: Harness) {
    let requester = h.requester().await;
    let done = requester
        .request(&compute(21), h.patience)
        .await
        .expect("completed");
    assert_eq!(done, Computed { n: 21, doubled: 42 });
    let stats = requester.stats();
    assert_eq!((stats.sent, stats.completed), (1, 1), "{stats:?}");
    assert_eq!(requester.pending(), 0);
    assert!(requester.group().starts_with("cli.replies."));
    requester.stop().await;
    h.finish().await;
}

async fn fails_with_the_typed_failure(h: Harness) {
    let requester = h.requester().await;
    let id = Uuid::new_v4();
    let command = Compute {
        fail: true,
        ..compute(7)
    };
    let err = requester
        .request_with_correlation_id(&command, id, h.patience)
        .await
        .expect_err("failed");
    assert_eq!(err.correlation_id(), id);
    let text = err.to_string();
    assert!(
        text.contains("calc.compute.failed") && text.contains("7 is odd"),
        "{text}"
    );
    let failure = err.into_failure().expect("the failed event");
    assert_eq!(failure.error_code, "ODD");
    assert_eq!(failure.n, 7);
    assert_eq!(requester.stats().failed, 1);
    assert_eq!(requester.pending(), 0);
    requester.stop().await;
    h.finish().await;
}

async fn times_out_when_nobody_answers(h: Harness) {
    let requester = h.requester().await;
    let command = Compute {
        silent: true,
        ..compute(1)
    };
    let started = tokio::time::Instant::now();
    let err = requester
        .request(&command, Duration::from_millis(300))
        .await
        .expect_err("no answer");
    assert!(
        matches!(err, RequestError::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(err.to_string().contains("no reply within 300ms"), "{err}");
    assert_eq!(requester.pending(), 0);
    assert_eq!(requester.stats().timed_out, 1);
    requester.stop().await;
    h.finish().await;
}

async fn concurrent_requests_each_get_their_own_reply(h: Harness) {
    let requester = h.requester().await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..100u64 {
        let requester = requester.clone();
        let patience = h.patience;
        tasks.spawn(async move {
            // Odd numbers fail, so both reply topics carry traffic.
            let command = Compute {
                fail: n % 2 == 1,
                ..compute(n)
            };
            (n, requester.request(&command, patience).await)
        });
    }
    let mut answered = 0;
    while let Some(joined) = tasks.join_next().await {
        let (n, result) = joined.expect("task");
        match result {
            Ok(done) => {
                assert_eq!(n % 2, 0);
                assert_eq!(done, Computed { n, doubled: 2 * n });
            }
            Err(RequestError::Failed { failure, .. }) => {
                assert_eq!(n % 2, 1);
                assert_eq!(failure.n, n);
            }
            Err(e) => panic!("request {n}: {e}"),
        }
        answered += 1;
    }
    assert_eq!(answered, 100);
    let stats = requester.stats();
    assert_eq!((stats.sent, stats.completed, stats.failed), (100, 50, 50));
    assert_eq!(stats.late_replies + stats.duplicate_replies, 0, "{stats:?}");
    assert_eq!(requester.pending(), 0);
    requester.stop().await;
    h.finish().await;
}

async fn late_reply_is_ignored_and_counted(h: Harness) {
    let requester = h.requester().await;
    let command = Compute {
        delay_ms: 800,
        ..compute(3)
    };
    let err = requester
        .request(&command, Duration::from_millis(200))
        .await
        .expect_err("too slow");
    assert!(matches!(err, RequestError::Timeout { .. }), "{err}");
    assert_eq!(requester.pending(), 0);
    let stats = stats_until(&requester, h.patience, "the late reply", |s| {
        s.late_replies == 1
    })
    .await;
    assert_eq!((stats.timed_out, stats.completed), (1, 0), "{stats:?}");
    assert_eq!(requester.pending(), 0);
    // The requester still answers the next request.
    let done = requester
        .request(&compute(4), h.patience)
        .await
        .expect("completed");
    assert_eq!(done.doubled, 8);
    requester.stop().await;
    h.finish().await;
}

async fn dropped_request_leaves_nothing_behind(h: Harness) {
    let requester = h.requester().await;
    let command = Compute {
        delay_ms: 800,
        ..compute(5)
    };
    let gave_up = tokio::time::timeout(
        Duration::from_millis(150),
        requester.request(&command, Duration::from_secs(60)),
    )
    .await;
    assert!(gave_up.is_err(), "the caller gave up first");
    assert_eq!(requester.pending(), 0, "the dropped request left its entry");
    assert_eq!(requester.stats().abandoned, 1);
    let stats = stats_until(&requester, h.patience, "the late reply", |s| {
        s.late_replies == 1
    })
    .await;
    assert_eq!(stats.timed_out, 0, "{stats:?}");
    requester.stop().await;
    h.finish().await;
}

async fn duplicate_replies_are_ignored(h: Harness) {
    let requester = h.requester().await;
    let command = Compute {
        replies: 3,
        ..compute(10)
    };
    let done = requester
        .request(&command, h.patience)
        .await
        .expect("completed");
    assert_eq!(done.doubled, 20);
    let stats = stats_until(&requester, h.patience, "two duplicates", |s| {
        s.duplicate_replies == 2
    })
    .await;
    assert_eq!((stats.completed, stats.late_replies), (1, 0), "{stats:?}");
    assert_eq!(requester.pending(), 0);
    requester.stop().await;
    h.finish().await;
}

async fn undecodable_reply_fails_its_request(h: Harness) {
    let requester = h.requester().await;
    let command = Compute {
        garbled: true,
        ..compute(6)
    };
    let err = requester
        .request(&command, h.patience)
        .await
        .expect_err("garbled");
    assert!(matches!(err, RequestError::Undecodable { .. }), "{err}");
    assert!(err.to_string().contains("cannot be read"), "{err}");
    assert_eq!(requester.stats().undecodable, 1);
    assert_eq!(requester.pending(), 0);
    requester.stop().await;
    h.finish().await;
}

async fn stop_fails_waiting_requests(h: Harness) {
    let requester = h.requester().await;
    let waiting = {
        let requester = requester.clone();
        tokio::spawn(async move {
            let command = Compute {
                silent: true,
                ..compute(8)
            };
            requester.request(&command, Duration::from_secs(60)).await
        })
    };
    let deadline = tokio::time::Instant::now() + h.patience;
    while requester.stats().sent == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    requester.stop().await;
    let err = waiting.await.expect("task").expect_err("stopped");
    assert!(matches!(err, RequestError::Stopped { .. }), "{err}");
    assert_eq!(requester.pending(), 0);
    let after = requester
        .request(&compute(9), h.patience)
        .await
        .expect_err("refused after stop");
    assert!(matches!(after, RequestError::Stopped { .. }), "{after}");
    assert_eq!(requester.stats().stopped, 1);
    h.finish().await;
}

async fn requesters_see_each_others_replies_but_keep_their_own(h: Harness) {
    let a = h.requester().await;
    let b = h.requester().await;
    assert_ne!(a.group(), b.group(), "each requester has its own group");
    let (ca, cb) = (compute(100), compute(200));
    let (ra, rb) = tokio::join!(a.request(&ca, h.patience), b.request(&cb, h.patience));
    assert_eq!(ra.expect("a").n, 100);
    assert_eq!(rb.expect("b").n, 200);
    stats_until(&a, h.patience, "b's reply seen by a", |s| {
        s.unrelated_replies == 1
    })
    .await;
    stats_until(&b, h.patience, "a's reply seen by b", |s| {
        s.unrelated_replies == 1
    })
    .await;
    a.stop().await;
    b.stop().await;
    h.finish().await;
}

async fn a_given_correlation_id_cannot_wait_twice(h: Harness) {
    let requester = h.requester().await;
    let id = Uuid::new_v4();
    let silent = Compute {
        silent: true,
        ..compute(11)
    };
    let pending = requester.send(&silent, id).await.expect("sent");
    assert_eq!(pending.correlation_id(), id);
    assert_eq!(requester.pending(), 1);
    let err = requester
        .request_with_correlation_id(&compute(11), id, h.patience)
        .await
        .expect_err("already waiting");
    assert!(matches!(err, RequestError::AlreadyWaiting { .. }), "{err}");
    drop(pending);
    assert_eq!(requester.pending(), 0);
    requester.stop().await;
    h.finish().await;
}

/// One test per scenario and bus.
macro_rules! on_both_buses {
    ($($scenario:ident),* $(,)?) => {
        mod memory_bus {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::memory().await).await;
                }
            )*
        }
        mod kafka_bus {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(h) = super::kafka(stringify!($scenario)).await {
                        super::$scenario(h).await;
                    }
                }
            )*
        }
    };
}

on_both_buses!(
    completes,
    fails_with_the_typed_failure,
    times_out_when_nobody_answers,
    concurrent_requests_each_get_their_own_reply,
    late_reply_is_ignored_and_counted,
    dropped_request_leaves_nothing_behind,
    duplicate_replies_are_ignored,
    undecodable_reply_fails_its_request,
    stop_fails_waiting_requests,
    requesters_see_each_others_replies_but_keep_their_own,
    a_given_correlation_id_cannot_wait_twice,
);

#[tokio::test]
async fn completed_and_failed_events_must_differ() {
    let bus = Arc::new(InMemoryBus::new("dev"));
    let publisher = Publisher::new(bus, SourceInfo::new("cli", "1.0.0", "dev"));
    let err = Requester::<Computed, Computed>::start(publisher, "cli")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("must differ"), "{err}");
}

#[tokio::test]
async fn dropping_the_requester_ends_its_subscription() {
    let bus = InMemoryBus::new("dev");
    let publisher = Publisher::new(
        Arc::new(bus.clone()),
        SourceInfo::new("cli", "1.0.0", "dev"),
    );
    let requester = Calc::start(publisher, "cli").await.expect("start");
    let topic = requester.reply_topics()[0].clone();
    assert_eq!(requester.reply_topics().len(), 2);
    assert_eq!(bus.subscriber_count(&topic), 1);
    drop(requester);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while bus.subscriber_count(&topic) > 0 {
        assert!(tokio::time::Instant::now() < deadline, "still subscribed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
