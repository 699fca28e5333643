//! Behaviour of the in-memory bus: ordering, fan-out, groups, history,
//! retries, circuit breaker, dead letters, shutdown and correlation.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use onex::{
    BusError, BusHealth, BusMessage, Event, EventBus, HandlerError, InMemoryBus, MessageCategory,
    Publisher, SourceInfo,
    bus::{BatchHandler, BatchOptions, Subscription, batch_handler_fn, handler_fn},
    memory::PANIC_ERROR_TYPE,
    retry::RetryPolicy,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tick {
    n: u64,
    #[serde(default)]
    from: u64,
}

impl Event for Tick {
    const EVENT_TYPE: &'static str = "test.tick";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Event;
    const TOPIC: &'static str = "svc.test.tick.v1";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tock {
    n: u64,
}

impl Event for Tock {
    const EVENT_TYPE: &'static str = "test.tock";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Command;
    const TOPIC: &'static str = "svc.test.tock.v1";
}

const TICKS: &str = "dev.svc.test.tick.v1";
const TOCKS: &str = "dev.svc.test.tock.v1";

fn publisher(bus: &InMemoryBus) -> Publisher {
    Publisher::new(
        Arc::new(bus.clone()),
        SourceInfo::new("svc", "1.0.0", "dev"),
    )
}

fn sub(topic: &str, group: &str) -> Subscription {
    Subscription {
        topics: vec![topic.to_owned()],
        group: group.to_owned(),
    }
}

fn tick_of(msg: &BusMessage) -> Result<Tick, HandlerError> {
    msg.envelope
        .decode::<Tick>()
        .map_err(|e| HandlerError::new("decode", e.to_string()))
}

/// A handler that records the tick numbers it sees.
fn recorder() -> (Arc<Mutex<Vec<u64>>>, Arc<dyn onex::Handler>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let handler = handler_fn(move |msg| {
        let s = s.clone();
        async move {
            let tick = tick_of(&msg)?;
            s.lock().unwrap().push(tick.n);
            Ok(())
        }
    });
    (seen, handler)
}

fn fast_retries(retries: u32) -> RetryPolicy {
    RetryPolicy::new(retries, Duration::from_millis(1))
}

#[tokio::test]
async fn delivers_in_fifo_order_per_subscriber_over_thousands_of_messages() {
    // A small queue makes the publisher wait for the worker many times.
    let bus = InMemoryBus::builder("dev").queue_capacity(16).build();
    let (seen, handler) = recorder();
    let _s = bus.subscribe(sub(TICKS, "g"), handler).await.unwrap();
    let p = publisher(&bus);
    for n in 0..5_000 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    bus.wait_until_idle().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, (0..5_000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_each_publishers_order_with_concurrent_publishers() {
    let bus = InMemoryBus::builder("dev").queue_capacity(64).build();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let _s = bus
        .subscribe(
            sub(TICKS, "g"),
            handler_fn(move |msg| {
                let s = s.clone();
                async move {
                    let t = tick_of(&msg)?;
                    s.lock().unwrap().push((t.from, t.n));
                    Ok(())
                }
            }),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for from in 0..3u64 {
        let p = publisher(&bus);
        tasks.push(tokio::spawn(async move {
            for n in 0..2_000 {
                p.publish(&Tick { n, from }, None).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    bus.wait_until_idle().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6_000);
    for from in 0..3u64 {
        let mine: Vec<u64> = seen
            .iter()
            .filter(|(f, _)| *f == from)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(mine, (0..2_000).collect::<Vec<_>>(), "publisher {from}");
    }
}

#[tokio::test]
async fn fans_out_to_every_group() {
    let bus = InMemoryBus::new("dev");
    let mut recorders = Vec::new();
    let mut handles = Vec::new();
    for g in 0..4 {
        let (seen, handler) = recorder();
        handles.push(
            bus.subscribe(sub(TICKS, &format!("group-{g}")), handler)
                .await
                .unwrap(),
        );
        recorders.push(seen);
    }
    assert_eq!(bus.subscriber_count(TICKS), 4);
    let p = publisher(&bus);
    for n in 0..100 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    bus.wait_until_idle().await;
    for (g, seen) in recorders.iter().enumerate() {
        assert_eq!(
            *seen.lock().unwrap(),
            (0..100).collect::<Vec<_>>(),
            "group-{g}"
        );
    }
}

/// A subscription from now on sees what comes after it, and nothing from
/// before; one from the start is refused, as the bus hands no history to
/// its subscribers.
#[tokio::test]
async fn from_now_sees_what_follows_and_from_the_start_is_refused() {
    let bus = InMemoryBus::new("dev");
    let p = publisher(&bus);
    p.publish(&Tick { n: 0, from: 0 }, None).await.unwrap();
    let (seen, handler) = recorder();
    let _handle = bus
        .subscribe_from_now(sub(TICKS, "now"), handler)
        .await
        .unwrap();
    for n in 1..4 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    bus.wait_until_idle().await;
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3]);
    let (_, handler) = recorder();
    let refused = bus
        .subscribe_from_start(sub(TICKS, "history"), handler)
        .await;
    assert!(matches!(refused, Err(BusError::Other(_))), "{refused:?}");
}

#[tokio::test]
async fn members_of_one_group_share_messages_and_other_groups_get_all() {
    let bus = InMemoryBus::new("dev");
    let mut members = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let (seen, handler) = recorder();
        handles.push(bus.subscribe(sub(TICKS, "workers"), handler).await.unwrap());
        members.push(seen);
    }
    let (audit, handler) = recorder();
    handles.push(bus.subscribe(sub(TICKS, "audit"), handler).await.unwrap());

    let p = publisher(&bus);
    for n in 0..300 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    bus.wait_until_idle().await;

    let mut union = BTreeSet::new();
    let mut total = 0;
    for m in &members {
        let m = m.lock().unwrap();
        assert_eq!(m.len(), 100, "round robin gives each member a third");
        assert!(m.windows(2).all(|w| w[0] < w[1]), "each member in order");
        total += m.len();
        union.extend(m.iter().copied());
    }
    assert_eq!(total, 300, "each message went to exactly one member");
    assert_eq!(union, (0..300).collect::<BTreeSet<_>>());
    assert_eq!(*audit.lock().unwrap(), (0..300).collect::<Vec<_>>());
}

#[tokio::test]
async fn history_is_bounded_and_drops_the_oldest() {
    let bus = InMemoryBus::builder("dev").history_capacity(10).build();
    let p = publisher(&bus);
    for n in 0..25 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
        if n % 5 == 0 {
            p.publish(&Tock { n }, None).await.unwrap();
        }
    }
    let history = bus.history();
    assert_eq!(history.len(), 10);
    assert_eq!(bus.history_len(), 10);
    let ticks: Vec<u64> = bus
        .history_for(TICKS)
        .iter()
        .map(|m| tick_of(m).unwrap().n)
        .collect();
    // The last ten messages are ticks 16..=24 and the tock of 20.
    assert_eq!(ticks, (16..25).collect::<Vec<_>>());
    let tocks = bus.history_for(TOCKS);
    assert_eq!(tocks.len(), 1);
    assert_eq!(tocks[0].headers.message_category, MessageCategory::Command);
    bus.clear_history();
    assert!(bus.history().is_empty());
}

#[tokio::test]
async fn default_history_keeps_one_thousand_messages() {
    let bus = InMemoryBus::new("dev");
    assert_eq!(bus.options().history_capacity, 1_000);
    let p = publisher(&bus);
    for n in 0..1_200 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    let history = bus.history();
    assert_eq!(history.len(), 1_000);
    assert_eq!(tick_of(&history[0]).unwrap().n, 200);
    assert_eq!(tick_of(&history[999]).unwrap().n, 1_199);
}

#[tokio::test(start_paused = true)]
async fn failing_handler_is_retried_then_dead_lettered_with_metadata() {
    let bus = InMemoryBus::builder("dev")
        .retry_policy(RetryPolicy::new(2, Duration::from_millis(100)))
        .build();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let _s = bus
        .subscribe(
            sub(TICKS, "writers"),
            handler_fn(move |_msg| {
                c.fetch_add(1, Ordering::SeqCst);
                async { Err(HandlerError::new("db_error", "connection refused")) }
            }),
        )
        .await
        .unwrap();
    let correlation = Uuid::new_v4();
    let before = chrono::Utc::now();
    let event_id = publisher(&bus)
        .publish(&Tick { n: 7, from: 0 }, Some(correlation))
        .await
        .unwrap()
        .event_id;
    bus.wait_until_idle().await;
    let after = chrono::Utc::now();

    assert_eq!(calls.load(Ordering::SeqCst), 3, "first try and two retries");
    let letters = bus.dead_letters();
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(l.retry_count, 2);
    assert_eq!(l.error_type, "db_error");
    assert_eq!(l.failure_reason, "connection refused");
    assert_eq!(l.original_topic, TICKS);
    assert_eq!(l.group, "writers");
    assert_eq!(l.correlation_id, correlation);
    assert_eq!(l.message.envelope.event_id, event_id);
    assert!(before <= l.failure_timestamp && l.failure_timestamp <= after);
    assert_eq!(bus.take_dead_letters().len(), 1);
    assert!(bus.dead_letters().is_empty());
}

#[tokio::test(start_paused = true)]
async fn handler_that_succeeds_on_a_retry_is_not_dead_lettered() {
    let bus = InMemoryBus::builder("dev")
        .retry_policy(RetryPolicy::new(3, Duration::from_millis(100)))
        .build();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let _s = bus
        .subscribe(
            sub(TICKS, "g"),
            handler_fn(move |_msg| {
                let attempt = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if attempt < 2 {
                        Err(HandlerError::new("flaky", "not yet"))
                    } else {
                        Ok(())
                    }
                }
            }),
        )
        .await
        .unwrap();
    publisher(&bus)
        .publish(&Tick { n: 1, from: 0 }, None)
        .await
        .unwrap();
    bus.wait_until_idle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(bus.dead_letters().is_empty());
}

#[tokio::test]
async fn dead_letters_are_forwarded_to_the_dead_letter_topic() {
    let bus = InMemoryBus::builder("dev")
        .retry_policy(fast_retries(1))
        .dead_letter_topic("dev.dlq")
        .build();
    let _s = bus
        .subscribe(
            sub(TICKS, "g"),
            handler_fn(|_msg| async { Err(HandlerError::new("bad_input", "no")) }),
        )
        .await
        .unwrap();
    let forwarded = Arc::new(Mutex::new(Vec::new()));
    let f = forwarded.clone();
    let _dlq = bus
        .subscribe(
            sub("dev.dlq", "ops"),
            handler_fn(move |msg| {
                let f = f.clone();
                async move {
                    f.lock().unwrap().push(msg);
                    Ok(())
                }
            }),
        )
        .await
        .unwrap();
    let correlation = Uuid::new_v4();
    publisher(&bus)
        .publish(&Tick { n: 3, from: 0 }, Some(correlation))
        .await
        .unwrap();
    bus.wait_until_idle().await;
    let forwarded = forwarded.lock().unwrap();
    assert_eq!(forwarded.len(), 1);
    let m = &forwarded[0];
    assert_eq!(m.topic, "dev.dlq");
    assert_eq!(m.headers.retry_count, 1);
    assert_eq!(m.correlation_id(), correlation);
    assert_eq!(m.envelope.metadata["original_topic"], TICKS);
    assert_eq!(m.envelope.metadata["error_type"], "bad_input");
    assert_eq!(m.envelope.metadata["failure_reason"], "no");
    assert_eq!(m.envelope.metadata["retry_count"], 1);
    assert_eq!(tick_of(m).unwrap().n, 3);
}

#[tokio::test]
async fn a_panicking_handler_is_dead_lettered_and_the_subscriber_lives_on() {
    let bus = InMemoryBus::builder("dev")
        .retry_policy(fast_retries(0))
        .build();
    let (seen, _) = recorder();
    let s = seen.clone();
    let _s = bus
        .subscribe(
            sub(TICKS, "g"),
            handler_fn(move |msg| {
                let s = s.clone();
                async move {
                    let t = tick_of(&msg)?;
                    if t.n == 1 {
                        panic!("tick one is cursed");
                    }
                    s.lock().unwrap().push(t.n);
                    Ok(())
                }
            }),
        )
        .await
        .unwrap();
    let p = publisher(&bus);
    for n in 0..3 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    bus.wait_until_idle().await;
    assert_eq!(*seen.lock().unwrap(), vec![0, 2]);
    let letters = bus.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].error_type, PANIC_ERROR_TYPE);
    assert!(
        letters[0].failure_reason.contains("tick one is cursed"),
        "{}",
        letters[0].failure_reason
    );
}

/// A subscriber whose handler fails while `failing` is set, counting calls.
fn switchable(failing: &Arc<AtomicBool>, calls: &Arc<AtomicUsize>) -> Arc<dyn onex::Handler> {
    let (f, c) = (failing.clone(), calls.clone());
    handler_fn(move |_msg| {
        c.fetch_add(1, Ordering::SeqCst);
        let fail = f.load(Ordering::SeqCst);
        async move {
            if fail {
                Err(HandlerError::new("down", "dependency down"))
            } else {
                Ok(())
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn open_breaker_pauses_the_subscriber_without_dead_lettering_then_a_trial_closes_it() {
    let reset = Duration::from_millis(1_000);
    let bus = InMemoryBus::builder("dev")
        .retry_policy(fast_retries(0))
        .circuit_breaker(3, reset)
        .build();
    let failing = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let _s = bus
        .subscribe(sub(TICKS, "g"), switchable(&failing, &calls))
        .await
        .unwrap();
    let p = publisher(&bus);
    for n in 0..5 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    tokio::time::sleep(reset / 2).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the subscriber pauses once the breaker opened"
    );
    let kinds: Vec<String> = bus
        .dead_letters()
        .into_iter()
        .map(|l| l.error_type)
        .collect();
    assert_eq!(
        kinds,
        ["down", "down", "down"],
        "a pause dead-letters nothing"
    );

    // After the reset timeout the next message is the trial; its success
    // closes the breaker and the rest flow again.
    failing.store(false, Ordering::SeqCst);
    bus.wait_until_idle().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        5,
        "the waiting messages are handled"
    );
    for n in 5..8 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    bus.wait_until_idle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 8);
    assert_eq!(bus.dead_letters().len(), 3, "no new dead letters");
}

#[tokio::test(start_paused = true)]
async fn a_failed_trial_pauses_the_subscriber_again() {
    let reset = Duration::from_millis(300);
    let bus = InMemoryBus::builder("dev")
        .retry_policy(fast_retries(0))
        .circuit_breaker(1, reset)
        .build();
    let calls = Arc::new(AtomicUsize::new(0));
    let _s = bus
        .subscribe(
            sub(TICKS, "g"),
            switchable(&Arc::new(AtomicBool::new(true)), &calls),
        )
        .await
        .unwrap();
    let p = publisher(&bus);
    let start = tokio::time::Instant::now();
    for n in 0..3 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    tokio::time::sleep(reset / 2).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(reset).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one trial, which fails");
    bus.wait_until_idle().await;
    assert!(
        start.elapsed() >= reset * 2,
        "a pause after each failed trial"
    );
    let kinds: Vec<String> = bus
        .dead_letters()
        .into_iter()
        .map(|l| l.error_type)
        .collect();
    assert_eq!(kinds, ["down", "down", "down"], "every message was tried");
}

#[tokio::test(start_paused = true)]
async fn a_stopping_subscription_ends_its_pause_and_handles_its_queue() {
    let bus = InMemoryBus::builder("dev")
        .retry_policy(fast_retries(0))
        .circuit_breaker(1, Duration::from_secs(3_600))
        .build();
    let failing = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let s = bus
        .subscribe(sub(TICKS, "g"), switchable(&failing, &calls))
        .await
        .unwrap();
    let p = publisher(&bus);
    for n in 0..3 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    failing.store(false, Ordering::SeqCst);
    let before = tokio::time::Instant::now();
    s.stop().await;
    assert!(
        before.elapsed() < Duration::from_secs(60),
        "no waiting out the pause"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(bus.dead_letters().len(), 1);
}

#[tokio::test]
async fn dead_letters_go_to_the_environments_dlq_topic_by_default() {
    let bus = InMemoryBus::builder("stage")
        .retry_policy(fast_retries(0))
        .build();
    let topic = "stage.svc.test.tick.v1";
    let _s = bus
        .subscribe(
            sub(topic, "g"),
            handler_fn(|_msg| async { Err(HandlerError::new("bad_input", "no")) }),
        )
        .await
        .unwrap();
    let correlation = Uuid::new_v4();
    Publisher::new(
        Arc::new(bus.clone()),
        SourceInfo::new("svc", "1.0.0", "stage"),
    )
    .publish(&Tick { n: 1, from: 0 }, Some(correlation))
    .await
    .unwrap();
    bus.wait_until_idle().await;
    let forwarded = bus.history_for("stage.dlq.v1");
    assert_eq!(forwarded.len(), 1);
    let meta = &forwarded[0].envelope.metadata;
    for field in [
        "original_topic",
        "failure_reason",
        "error_type",
        "retry_count",
        "failure_timestamp",
        "correlation_id",
    ] {
        assert!(meta.contains_key(field), "{field} missing");
    }
    assert_eq!(meta["original_topic"], topic);
    assert_eq!(meta["correlation_id"], correlation.to_string().as_str());
    assert_eq!(
        InMemoryBus::new("prod").options().dead_letter_topic,
        None,
        "None means {{environment}}.dlq.v1"
    );
}

#[tokio::test]
async fn shutdown_delivers_everything_queued_then_refuses() {
    let bus = InMemoryBus::new("dev");
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let _s = bus
        .subscribe(
            sub(TICKS, "g"),
            handler_fn(move |_msg| {
                let h = h.clone();
                async move {
                    // Slow enough that the queue is full when shutdown starts.
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    h.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            }),
        )
        .await
        .unwrap();
    let p = publisher(&bus);
    for n in 0..500 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    assert!(
        handled.load(Ordering::SeqCst) < 500,
        "messages are still queued"
    );
    assert_eq!(bus.health(), BusHealth::Healthy);
    bus.shutdown().await.unwrap();
    assert_eq!(handled.load(Ordering::SeqCst), 500);
    assert_eq!(bus.pending(), 0);
    assert_eq!(bus.health(), BusHealth::Stopped);
    assert!(matches!(
        p.publish(&Tick { n: 0, from: 0 }, None).await,
        Err(BusError::Shutdown)
    ));
    let (_, handler) = recorder();
    assert!(matches!(
        bus.subscribe(sub(TICKS, "late"), handler).await,
        Err(BusError::Shutdown)
    ));
    // A second shutdown is harmless.
    bus.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stopped_subscription_receives_nothing_more() {
    let bus = InMemoryBus::new("dev");
    let (stopped_seen, handler) = recorder();
    let stopped = bus.subscribe(sub(TICKS, "a"), handler).await.unwrap();
    let (kept_seen, handler) = recorder();
    let _kept = bus.subscribe(sub(TICKS, "b"), handler).await.unwrap();
    let p = publisher(&bus);
    p.publish(&Tick { n: 0, from: 0 }, None).await.unwrap();
    bus.wait_until_idle().await;
    stopped.stop().await;
    assert_eq!(bus.subscriber_count(TICKS), 1);
    p.publish(&Tick { n: 1, from: 0 }, None).await.unwrap();
    bus.wait_until_idle().await;
    assert_eq!(*stopped_seen.lock().unwrap(), vec![0]);
    assert_eq!(*kept_seen.lock().unwrap(), vec![0, 1]);
}

#[tokio::test]
async fn a_member_leaving_its_group_leaves_the_messages_to_the_others() {
    let bus = InMemoryBus::new("dev");
    let (a_seen, handler) = recorder();
    let a = bus.subscribe(sub(TICKS, "g"), handler).await.unwrap();
    let (b_seen, handler) = recorder();
    let _b = bus.subscribe(sub(TICKS, "g"), handler).await.unwrap();
    a.stop().await;
    let p = publisher(&bus);
    for n in 0..10 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    bus.wait_until_idle().await;
    assert!(a_seen.lock().unwrap().is_empty());
    assert_eq!(*b_seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn correlation_ids_propagate_through_a_handler_that_publishes() {
    let bus = InMemoryBus::new("dev");
    let p = publisher(&bus);
    let responder = p.clone();
    let _ticks = bus
        .subscribe(
            sub(TICKS, "responder"),
            handler_fn(move |msg| {
                let responder = responder.clone();
                async move {
                    let tick = tick_of(&msg)?;
                    responder
                        .publish(&Tock { n: tick.n }, Some(msg.correlation_id()))
                        .await
                        .map_err(|e| HandlerError::new("publish", e.to_string()))?;
                    Ok(())
                }
            }),
        )
        .await
        .unwrap();
    let replies = Arc::new(Mutex::new(Vec::new()));
    let r = replies.clone();
    let _tocks = bus
        .subscribe(
            sub(TOCKS, "caller"),
            handler_fn(move |msg| {
                let r = r.clone();
                async move {
                    r.lock().unwrap().push((
                        msg.envelope.correlation_id,
                        msg.headers.correlation_id,
                        msg.key.clone(),
                    ));
                    Ok(())
                }
            }),
        )
        .await
        .unwrap();

    let correlation = Uuid::new_v4();
    p.publish(&Tick { n: 1, from: 0 }, Some(correlation))
        .await
        .unwrap();
    // Without a correlation id on the envelope, the header's is carried on.
    let message = p
        .message(&Tick { n: 2, from: 0 }, None, Default::default())
        .unwrap();
    let header_correlation = message.headers.correlation_id;
    bus.publish(message.into()).await.unwrap();
    bus.wait_until_idle().await;

    let replies = replies.lock().unwrap();
    assert_eq!(replies.len(), 2);
    assert_eq!(
        replies[0],
        (
            Some(correlation),
            correlation,
            correlation.to_string().into()
        )
    );
    assert_eq!(replies[1].0, Some(header_correlation));
    assert_eq!(replies[1].1, header_correlation);
}

#[tokio::test]
async fn a_handler_can_publish_to_its_own_full_queue_without_waiting_on_itself() {
    let bus = InMemoryBus::builder("dev").queue_capacity(1).build();
    let p = publisher(&bus);
    let count = Arc::new(AtomicUsize::new(0));
    let (c, again) = (count.clone(), p.clone());
    let _s = bus
        .subscribe(
            sub(TICKS, "g"),
            handler_fn(move |msg| {
                let (c, again) = (c.clone(), again.clone());
                async move {
                    let tick = tick_of(&msg)?;
                    c.fetch_add(1, Ordering::SeqCst);
                    if tick.n == 0 {
                        // Five messages into a queue of one, from its own
                        // worker: must not deadlock.
                        for n in 1..=5 {
                            again
                                .publish(&Tick { n, from: 0 }, None)
                                .await
                                .map_err(|e| HandlerError::new("publish", e.to_string()))?;
                        }
                    }
                    Ok(())
                }
            }),
        )
        .await
        .unwrap();
    p.publish(&Tick { n: 0, from: 0 }, None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), bus.wait_until_idle())
        .await
        .expect("the bus drained instead of deadlocking");
    assert_eq!(count.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn environment_and_subscription_errors() {
    let bus = InMemoryBus::new("staging");
    assert_eq!(bus.environment(), "staging");
    let (_, handler) = recorder();
    let err = bus
        .subscribe(
            Subscription {
                topics: vec![],
                group: "g".into(),
            },
            handler,
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "subscription of group `g` names no topic");
}

#[tokio::test]
async fn a_published_message_without_subscribers_lands_in_history_only() {
    let bus = InMemoryBus::new("dev");
    let as_dyn: Arc<dyn EventBus> = Arc::new(bus.clone());
    let p = Publisher::new(as_dyn, SourceInfo::new("svc", "1.0.0", "dev"));
    let id = p
        .publish(&Tick { n: 9, from: 0 }, None)
        .await
        .unwrap()
        .event_id;
    let history = bus.history_for(TICKS);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].envelope.event_id, id);
    assert_eq!(bus.pending(), 0);
}

#[tokio::test]
async fn shutdown_from_inside_a_handler_does_not_wait_on_itself() {
    let bus = InMemoryBus::new("dev");
    let handled = Arc::new(AtomicUsize::new(0));
    let (h, b) = (handled.clone(), bus.clone());
    let _s = bus
        .subscribe(
            sub(TICKS, "g"),
            handler_fn(move |msg| {
                let (h, b) = (h.clone(), b.clone());
                async move {
                    if tick_of(&msg)?.n == 0 {
                        b.shutdown()
                            .await
                            .map_err(|e| HandlerError::new("shutdown", e.to_string()))?;
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            }),
        )
        .await
        .unwrap();
    let p = publisher(&bus);
    for n in 0..5 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), bus.wait_until_idle())
        .await
        .expect("no deadlock");
    assert_eq!(handled.load(Ordering::SeqCst), 5, "the queue still drained");
    assert_eq!(bus.health(), BusHealth::Stopped);
    bus.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_dead_letter_list_is_bounded_and_keeps_the_newest() {
    let bus = InMemoryBus::builder("dev")
        .retry_policy(fast_retries(0))
        .circuit_breaker(100, Duration::from_secs(60))
        .dead_letter_capacity(2)
        .build();
    let _s = bus
        .subscribe(
            sub(TICKS, "g"),
            handler_fn(|_msg| async { Err(HandlerError::new("nope", "always fails")) }),
        )
        .await
        .unwrap();
    let p = publisher(&bus);
    for n in 0..5 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    bus.wait_until_idle().await;
    let kept: Vec<u64> = bus
        .dead_letters()
        .iter()
        .map(|l| tick_of(&l.message).unwrap().n)
        .collect();
    assert_eq!(kept, [3, 4]);
}

#[tokio::test(start_paused = true)]
async fn refused_messages_are_retried_dead_lettered_and_counted() {
    let bus = Arc::new(
        InMemoryBus::builder("dev")
            .retry_policy(RetryPolicy::new(1, Duration::from_millis(10)))
            .dead_letter_capacity(1)
            .build(),
    );
    let runtime = Arc::new(onex::lifecycle::NodeRuntime::new(
        bus.clone(),
        SourceInfo::new("svc", "1.0.0", "dev"),
    ));
    let node = runtime.clone();
    runtime
        .subscribe(
            sub(TICKS, "nodes"),
            handler_fn(move |msg| {
                let node = node.clone();
                async move {
                    Err(node.reject_message(
                        "unroutable",
                        format!("no operation handles `{}`", msg.envelope.event_type),
                    ))
                }
            }),
        )
        .await
        .unwrap();
    for n in 0..3 {
        publisher(&bus)
            .publish(&Tick { n, from: 0 }, None)
            .await
            .unwrap();
    }
    bus.wait_until_idle().await;

    // The list keeps the last one; the count keeps them all.
    let letters = bus.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].error_type, "unroutable");
    assert_eq!(
        letters[0].failure_reason,
        "no operation handles `test.tick`"
    );
    assert_eq!(bus.dead_lettered(), Some(3));
    assert_eq!(runtime.dead_lettered(), Some(3));
    assert_eq!(runtime.rejected_messages(), 6, "each message tried twice");
    runtime.shutdown().await.unwrap();
}

/// A batch handler that records the tick numbers of every batch it gets
/// and fails its first `failures` calls.
/// The tick numbers of every batch a handler got.
type Batches = Arc<Mutex<Vec<Vec<u64>>>>;

fn batch_recorder(failures: usize) -> (Batches, Arc<dyn BatchHandler>) {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let b = batches.clone();
    let handler = batch_handler_fn(move |batch: Vec<BusMessage>| {
        let b = b.clone();
        let call = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let ticks = batch
                .iter()
                .map(|m| tick_of(m).map(|t| t.n))
                .collect::<Result<Vec<_>, _>>()?;
            b.lock().unwrap().push(ticks);
            if call < failures {
                Err(HandlerError::new("store_down", "the store did not answer"))
            } else {
                Ok(())
            }
        }
    });
    (batches, handler)
}

fn batches(window: Duration, max_messages: usize) -> BatchOptions {
    BatchOptions {
        window,
        max_messages,
    }
}

#[tokio::test(start_paused = true)]
async fn a_windows_messages_arrive_as_one_batch_in_order_and_full_batches_go_early() {
    let bus = InMemoryBus::new("dev");
    let (seen, handler) = batch_recorder(0);
    let _s = bus
        .subscribe_batches(
            sub(TICKS, "reducer"),
            batches(Duration::from_millis(500), 3),
            handler,
        )
        .await
        .unwrap();
    let p = publisher(&bus);
    let start = tokio::time::Instant::now();
    for n in 0..7 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    bus.wait_until_idle().await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
    );
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "the last, partial batch waited for its window"
    );
    p.publish(&Tick { n: 7, from: 0 }, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.publish(&Tick { n: 8, from: 0 }, None).await.unwrap();
    bus.wait_until_idle().await;
    assert_eq!(seen.lock().unwrap()[3], vec![7, 8], "one window, one batch");
}

#[tokio::test(start_paused = true)]
async fn a_failing_batch_is_retried_whole_then_succeeds() {
    let bus = InMemoryBus::builder("dev")
        .retry_policy(fast_retries(2))
        .build();
    let (seen, handler) = batch_recorder(1);
    let _s = bus
        .subscribe_batches(
            sub(TICKS, "reducer"),
            batches(Duration::from_millis(100), 10),
            handler,
        )
        .await
        .unwrap();
    let p = publisher(&bus);
    for n in 0..4 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    bus.wait_until_idle().await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![vec![0, 1, 2, 3], vec![0, 1, 2, 3]],
        "the same batch again"
    );
    assert!(bus.dead_letters().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_keeps_failing_dead_letters_every_message_with_the_reason() {
    let bus = InMemoryBus::builder("dev")
        .retry_policy(fast_retries(1))
        .build();
    let (seen, handler) = batch_recorder(usize::MAX);
    let _s = bus
        .subscribe_batches(
            sub(TICKS, "reducer"),
            batches(Duration::from_millis(100), 10),
            handler,
        )
        .await
        .unwrap();
    let p = publisher(&bus);
    for n in 0..3 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    bus.wait_until_idle().await;
    assert_eq!(seen.lock().unwrap().len(), 2, "first try and one retry");
    let letters = bus.dead_letters();
    let ticks: Vec<u64> = letters
        .iter()
        .map(|l| tick_of(&l.message).unwrap().n)
        .collect();
    assert_eq!(ticks, [0, 1, 2]);
    for l in &letters {
        assert_eq!(l.error_type, "store_down");
        assert_eq!(l.failure_reason, "the store did not answer");
        assert_eq!(l.retry_count, 1);
        assert_eq!(l.group, "reducer");
    }
    assert_eq!(bus.history_for("dev.dlq.v1").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_stopping_batch_subscription_hands_over_its_partial_batch() {
    let bus = InMemoryBus::new("dev");
    let (seen, handler) = batch_recorder(0);
    let s = bus
        .subscribe_batches(
            sub(TICKS, "reducer"),
            batches(Duration::from_secs(3_600), 100),
            handler,
        )
        .await
        .unwrap();
    let p = publisher(&bus);
    for n in 0..2 {
        p.publish(&Tick { n, from: 0 }, None).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(seen.lock().unwrap().is_empty(), "the window is still open");
    let before = tokio::time::Instant::now();
    s.stop().await;
    assert!(before.elapsed() < Duration::from_secs(60));
    assert_eq!(*seen.lock().unwrap(), vec![vec![0, 1]]);
}

/// With `max_in_flight` above 1, a subscriber handles messages of different
/// keys side by side and those of one key in order, as the Kafka bus does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_messages_in_flight_keep_order_per_key() {
    let options = onex::memory::MemoryBusOptions {
        max_in_flight: 8,
        ..Default::default()
    };
    let bus = InMemoryBus::with_options("dev", options);
    let by_key: Arc<Mutex<std::collections::BTreeMap<String, Vec<u64>>>> = Arc::default();
    let in_hand = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (b, h, m) = (by_key.clone(), in_hand.clone(), most.clone());
    let handler = handler_fn(move |msg| {
        let (b, h, m) = (b.clone(), h.clone(), m.clone());
        async move {
            let now = h.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            let tick = tick_of(&msg)?;
            // Keys finish at different paces, so that order could break.
            let pause = if tick.n.is_multiple_of(4) { 20 } else { 2 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
            b.lock()
                .unwrap()
                .entry(msg.key.to_string())
                .or_default()
                .push(tick.n);
            h.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    });
    // Kept: dropping the handle stops the subscription.
    let _subscription = bus
        .subscribe(sub(TICKS, "lanes"), handler)
        .await
        .expect("subscribe");
    let publisher = publisher(&bus);
    for n in 0..40u64 {
        let mut message = publisher
            .message(&Tick { n, from: 0 }, None, Default::default())
            .expect("message");
        message.key = format!("key-{}", n % 4).into();
        bus.publish(Arc::new(message)).await.expect("publish");
    }
    bus.wait_until_idle().await;
    let by_key = by_key.lock().unwrap();
    assert_eq!(by_key.len(), 4);
    for (key, numbers) in by_key.iter() {
        assert_eq!(numbers.len(), 10, "{key}: {numbers:?}");
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {numbers:?}"
        );
    }
    let most = most.load(Ordering::SeqCst);
    assert!((2..=8).contains(&most), "{most} messages in hand at once");
}
