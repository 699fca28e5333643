//! The node lifecycle: introspection, heartbeats, subscriptions, signals
//! and ordered shutdown.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use onex::{
    BusError, BusHealth, BusMessage, Event, EventBus, Handler, InMemoryBus, SourceInfo,
    SubscriptionHandle,
    bus::{Subscription, handler_fn},
    discovery::{NodeCapabilities, NodeHeartbeatEvent, NodeIntrospectionEvent},
    lifecycle::{NodeRuntime, ShutdownSignal, ShutdownSignals},
};
use uuid::Uuid;

const HEARTBEATS: &str = "dev.omninode.discovery.node_heartbeat.v1";
const INTROSPECTION: &str = "dev.omninode.discovery.node_introspection.v1";

/// An in-memory bus whose health a test can set, counting publish calls.
struct TestBus {
    inner: InMemoryBus,
    degraded: AtomicBool,
    publish_calls: AtomicUsize,
}

impl TestBus {
    fn new() -> Arc<Self> {
        Arc::new(TestBus {
            inner: InMemoryBus::new("dev"),
            degraded: AtomicBool::new(false),
            publish_calls: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl EventBus for TestBus {
    fn environment(&self) -> &str {
        self.inner.environment()
    }

    async fn publish(&self, message: Arc<BusMessage>) -> Result<onex::Delivery, BusError> {
        self.publish_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.publish(message).await
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<SubscriptionHandle, BusError> {
        self.inner.subscribe(subscription, handler).await
    }

    fn health(&self) -> BusHealth {
        match self.inner.health() {
            BusHealth::Healthy if self.degraded.load(Ordering::SeqCst) => BusHealth::Degraded {
                reason: "broker unreachable".into(),
            },
            other => other,
        }
    }

    async fn shutdown(&self) -> Result<(), BusError> {
        self.inner.shutdown().await
    }
}

fn runtime(bus: &Arc<TestBus>) -> NodeRuntime {
    NodeRuntime::new(
        bus.clone(),
        SourceInfo::new("postgres_writer", "1.0.0", "dev"),
    )
}

fn heartbeats(bus: &TestBus) -> Vec<NodeHeartbeatEvent> {
    bus.inner
        .history_for(HEARTBEATS)
        .iter()
        .map(|m| m.envelope.decode::<NodeHeartbeatEvent>().unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn heartbeat_is_published_at_the_interval_with_status_and_uptime() {
    let bus = TestBus::new();
    let rt = runtime(&bus);
    rt.spawn_heartbeat(Duration::from_secs(1), "NodePostgresWriterEffect");
    tokio::time::sleep(Duration::from_millis(10_500)).await;

    let beats = heartbeats(&bus);
    // One at start, then one a second: 11 in 10.5 s (paused time is exact,
    // the bounds only allow for where the first tick falls).
    assert!(
        (10..=12).contains(&beats.len()),
        "{} heartbeats",
        beats.len()
    );
    for b in &beats {
        assert_eq!(b.status, "healthy");
        assert_eq!(b.node_name, "NodePostgresWriterEffect");
        assert_eq!(b.node_id, rt.node_id());
    }
    assert_eq!(beats[0].uptime_seconds, 0);
    let last = beats.last().unwrap().uptime_seconds;
    assert!((9..=10).contains(&last), "uptime {last}");
    assert!(
        beats
            .windows(2)
            .all(|w| w[0].uptime_seconds <= w[1].uptime_seconds)
    );
    let message = &bus.inner.history_for(HEARTBEATS)[0];
    assert_eq!(message.envelope.event_type, NodeHeartbeatEvent::EVENT_TYPE);
    assert_eq!(message.envelope.source_service, "postgres_writer");
    rt.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn heartbeat_reports_degraded_while_the_bus_is_degraded() {
    let bus = TestBus::new();
    let rt = runtime(&bus);
    rt.spawn_heartbeat(Duration::from_secs(5), "Node");
    tokio::time::sleep(Duration::from_secs(1)).await;
    bus.degraded.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    bus.degraded.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;

    let statuses: Vec<String> = heartbeats(&bus).into_iter().map(|b| b.status).collect();
    assert_eq!(statuses, ["healthy", "degraded", "degraded", "healthy"]);
    assert_eq!(
        rt.heartbeat("Node").map(|b| b.status),
        Some("healthy".into())
    );
    rt.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn heartbeats_stop_on_shutdown() {
    let bus = TestBus::new();
    let rt = runtime(&bus);
    rt.spawn_heartbeat(Duration::from_secs(1), "Node");
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let before = bus.publish_calls.load(Ordering::SeqCst);
    assert!(before >= 3, "{before} heartbeats before shutdown");

    rt.shutdown().await.unwrap();
    assert!(rt.is_shut_down());
    // The shutdown's own last heartbeat says the node stopped...
    let last = heartbeats(&bus).pop().expect("a last heartbeat");
    assert_eq!(last.status, onex::lifecycle::STOPPED_STATUS);
    assert_eq!(last.interval_seconds, Some(1));
    tokio::time::sleep(Duration::from_secs(10)).await;
    // ... and none is even attempted after it.
    assert_eq!(
        bus.publish_calls.load(Ordering::SeqCst),
        before + 1,
        "no heartbeat is even attempted after shutdown"
    );
    rt.shutdown().await.unwrap();
    assert_eq!(
        bus.publish_calls.load(Ordering::SeqCst),
        before + 1,
        "a second shutdown sends no second last heartbeat"
    );
    // Heartbeats asked for after shutdown never start.
    rt.spawn_heartbeat(Duration::from_secs(1), "Node");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(bus.publish_calls.load(Ordering::SeqCst), before + 1);
    assert_eq!(rt.heartbeat("Node"), None, "a stopped bus has no status");
}

#[tokio::test]
async fn introspection_is_published_with_its_correlation_id() {
    let bus = TestBus::new();
    let rt = runtime(&bus);
    let event = NodeIntrospectionEvent {
        node_id: rt.node_id(),
        node_name: "NodePostgresWriterEffect".into(),
        version: "1.0.0".into(),
        capabilities: NodeCapabilities {
            actions: vec!["write_record".into()],
            protocols: vec!["kafka".into()],
            metadata: Default::default(),
        },
        tags: vec!["database".into()],
        health_endpoint: "/health".into(),
        correlation_id: Uuid::new_v4(),
        contract_hash: None,
    };
    let id = rt.publish_introspection(&event).await.unwrap();
    let published = bus.inner.history_for(INTROSPECTION);
    assert_eq!(published.len(), 1);
    let message = &published[0];
    assert_eq!(message.envelope.event_id, id.event_id);
    assert_eq!(message.envelope.correlation_id, Some(event.correlation_id));
    assert_eq!(message.key, event.correlation_id.to_string());
    assert_eq!(
        message.envelope.decode::<NodeIntrospectionEvent>().unwrap(),
        event
    );
}

#[tokio::test]
async fn shutdown_stops_subscriptions_and_drains_the_bus() {
    let bus = TestBus::new();
    let rt = runtime(&bus);
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    rt.subscribe(
        Subscription {
            topics: vec!["dev.orders.created.v1".into()],
            group: "g".into(),
        },
        handler_fn(move |_msg| {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }),
    )
    .await
    .unwrap();
    assert_eq!(bus.inner.subscriber_count("dev.orders.created.v1"), 1);
    for _ in 0..100 {
        let message = rt
            .publisher()
            .message(&heartbeat_like(&rt), None, Default::default())
            .unwrap();
        let message = BusMessage {
            topic: "dev.orders.created.v1".into(),
            ..message
        };
        bus.publish(message.into()).await.unwrap();
    }
    rt.shutdown().await.unwrap();
    assert_eq!(
        handled.load(Ordering::SeqCst),
        100,
        "queued messages handled"
    );
    assert_eq!(bus.inner.subscriber_count("dev.orders.created.v1"), 0);
    assert_eq!(bus.health(), BusHealth::Stopped);
    // A second shutdown is harmless.
    rt.shutdown().await.unwrap();
}

fn heartbeat_like(rt: &NodeRuntime) -> NodeHeartbeatEvent {
    NodeHeartbeatEvent {
        node_id: rt.node_id(),
        node_name: "x".into(),
        status: "healthy".into(),
        uptime_seconds: 0,
        timestamp: chrono::Utc::now(),
        interval_seconds: None,
    }
}

fn send_signal(name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(std::process::id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
}

// All signal checks live in one test: signals go to the whole process.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_and_sigint_are_recognised_and_shut_the_node_down() {
    let mut signals = ShutdownSignals::new().unwrap();
    send_signal("TERM");
    let got = tokio::time::timeout(Duration::from_secs(20), signals.recv())
        .await
        .expect("SIGTERM seen");
    assert_eq!(got, ShutdownSignal::Terminate);
    send_signal("INT");
    let got = tokio::time::timeout(Duration::from_secs(20), signals.recv())
        .await
        .expect("SIGINT seen");
    assert_eq!(got, ShutdownSignal::Interrupt);

    // A signal during a start-up step cancels the step.
    let mut startup_signals = ShutdownSignals::new().unwrap();
    let startup = tokio::spawn(async move {
        onex::lifecycle::unless_signalled(&mut startup_signals, std::future::pending::<()>()).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_signal("TERM");
    let cancelled = tokio::time::timeout(Duration::from_secs(20), startup)
        .await
        .expect("the start-up step is cancelled")
        .unwrap();
    assert_eq!(cancelled, None);

    // run_until_shutdown_signal installs its own listeners when first
    // polled; send until it has seen one.
    let bus = TestBus::new();
    let rt = Arc::new(runtime(&bus));
    let task = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.run_until_shutdown_signal().await })
    };
    let mut result = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if task.is_finished() {
            result = Some(task.await.unwrap());
            break;
        }
        send_signal("TERM");
    }
    let signal = result.expect("the node stopped on SIGTERM").unwrap();
    assert_eq!(signal, ShutdownSignal::Terminate);
    assert!(rt.is_shut_down());
    assert_eq!(bus.health(), BusHealth::Stopped);

    // A second signal stops a shutdown that waits on a handler that never
    // finishes: the handler is abandoned and the shutdown returns.
    let bus = TestBus::new();
    let rt = Arc::new(runtime(&bus));
    let (entered_tx, entered) = tokio::sync::oneshot::channel();
    let entered_tx = std::sync::Mutex::new(Some(entered_tx));
    rt.subscribe(
        Subscription {
            topics: vec!["dev.orders.created.v1".into()],
            group: "stuck".into(),
        },
        handler_fn(move |_msg| {
            if let Some(tx) = entered_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            async move {
                std::future::pending::<()>().await;
                Ok(())
            }
        }),
    )
    .await
    .unwrap();
    let message = rt
        .publisher()
        .message(&heartbeat_like(&rt), None, Default::default())
        .unwrap();
    let message = BusMessage {
        topic: "dev.orders.created.v1".into(),
        ..message
    };
    bus.publish(message.into()).await.unwrap();
    entered.await.expect("the handler runs");
    let mut signals = ShutdownSignals::new().unwrap();
    let shutdown = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.shutdown_on_signals(&mut signals).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!shutdown.is_finished(), "waits for the handler in hand");
    send_signal("INT");
    let stopped = tokio::time::timeout(Duration::from_secs(15), shutdown)
        .await
        .expect("the second signal stops the shutdown");
    stopped.unwrap().unwrap();
    assert!(rt.is_shut_down());
}

#[tokio::test]
async fn a_subscription_to_a_topic_kafka_would_refuse_fails_at_start_up() {
    let bus = TestBus::new();
    let node = runtime(&bus);
    let long = format!("dev.{}", "t".repeat(onex::topic::MAX_TOPIC_LEN));
    let subscription = Subscription {
        topics: vec![
            "dev.orders.effect.place.started.v1".to_owned(),
            long.clone(),
        ],
        group: "orders".to_owned(),
    };
    let result = node
        .subscribe(
            subscription,
            handler_fn(|_message: BusMessage| async { Ok(()) }),
        )
        .await;
    let Err(BusError::TopicTooLong(error)) = result else {
        panic!("expected TopicTooLong, got {result:?}");
    };
    assert!(error.to_string().contains(&long[..40]), "{error}");
}
