//! What a node's `main` needs: announce itself, send heartbeats, keep its
//! subscriptions, wait for SIGINT or SIGTERM, and shut down in order.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{sync::Arc, time::Duration};
//! use onex::{InMemoryBus, SourceInfo, lifecycle::NodeRuntime};
//!
//! onex::logging::init();
//! let bus = Arc::new(InMemoryBus::new("dev"));
//! let runtime = NodeRuntime::new(bus, SourceInfo::new("postgres_writer", "1.0.0", "dev"));
//! // runtime.publish_introspection(&introspection).await?;
//! runtime.spawn_heartbeat(Duration::from_secs(30), "NodePostgresWriterEffect");
//! // runtime.subscribe(subscription, handler).await?;
//! let signal = runtime.run_until_shutdown_signal().await?;
//! tracing::info!(%signal, "stopped");
//! # Ok(())
//! # }
//! ```

use std::{
    fmt,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::Utc;
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use uuid::Uuid;

use crate::{
    bus::{
        BatchHandler, BatchOptions, BusHealth, EventBus, Handler, HandlerError, Subscription,
        SubscriptionHandle,
    },
    discovery::{NodeHeartbeatEvent, NodeIntrospectionEvent},
    envelope::SourceInfo,
    error::BusError,
    publisher::{Published, Publisher},
};

/// The status of the last heartbeat a node sends, when it shuts down: a
/// registry counts it gone at once rather than after missed heartbeats.
pub const STOPPED_STATUS: &str = "stopped";

/// The heartbeat status of a bus health: `healthy`, or `degraded` when the
/// bus runs without its broker. `None` once the bus is stopped.
pub fn heartbeat_status(health: &BusHealth) -> Option<&'static str> {
    match health {
        BusHealth::Healthy => Some("healthy"),
        BusHealth::Degraded { .. } => Some("degraded"),
        BusHealth::Stopped => None,
    }
}

/// A running node: its bus, its publisher, its background tasks.
///
/// [`NodeRuntime::shutdown`] stops heartbeats, then subscriptions, then the
/// bus (which delivers what is in flight).
pub struct NodeRuntime {
    bus: Arc<dyn EventBus>,
    publisher: Publisher,
    started: Instant,
    stop: watch::Sender<bool>,
    /// Set by [`NodeRuntime::expedite_shutdown`].
    expedite: watch::Sender<bool>,
    heartbeats: Mutex<Vec<JoinHandle<()>>>,
    /// The name and interval of the heartbeats, once started: the last one
    /// says the node stopped.
    beating: Mutex<Option<(String, Duration)>>,
    subscriptions: Mutex<Vec<SubscriptionHandle>>,
    shut_down: AtomicBool,
    rejected: AtomicU64,
}

impl fmt::Debug for NodeRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeRuntime")
            .field("source", self.publisher.source())
            .field("uptime", &self.uptime())
            .field("shut_down", &self.is_shut_down())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The lists stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl NodeRuntime {
    /// A runtime for a node on a bus; its uptime starts now.
    pub fn new(bus: Arc<dyn EventBus>, source: SourceInfo) -> Self {
        let publisher = Publisher::new(bus.clone(), source);
        NodeRuntime {
            bus,
            publisher,
            started: Instant::now(),
            stop: watch::channel(false).0,
            expedite: watch::channel(false).0,
            heartbeats: Mutex::new(Vec::new()),
            beating: Mutex::new(None),
            subscriptions: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
            rejected: AtomicU64::new(0),
        }
    }

    /// The bus.
    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.bus
    }

    /// The node's publisher.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The node's identity.
    pub fn source(&self) -> &SourceInfo {
        self.publisher.source()
    }

    /// The node's id (fresh for each process).
    pub fn node_id(&self) -> Uuid {
        self.publisher.source().node_id
    }

    /// Time since the runtime was created.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Refuses a subscribed message the node cannot take (its payload does
    /// not decode, or no operation handles its event type): counts it and
    /// returns the [`HandlerError`] of `kind` to return from the handler,
    /// which makes the bus retry the message and then dead-letter it with
    /// `reason`, like any failed handler. Nothing is dropped silently.
    pub fn reject_message(&self, kind: &str, reason: impl Into<String>) -> HandlerError {
        let reason = reason.into();
        self.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(kind, %reason, "message refused; the bus retries, then dead-letters it");
        HandlerError::new(kind, reason)
    }

    /// How many deliveries [`NodeRuntime::reject_message`] refused (each
    /// retry of a message counts once more).
    pub fn rejected_messages(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// How many messages the node's bus dead-lettered, when it counts them
    /// ([`EventBus::dead_lettered`]).
    pub fn dead_lettered(&self) -> Option<u64> {
        self.bus.dead_lettered()
    }

    /// Whether [`NodeRuntime::shutdown`] has begun.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// Publishes the node's introspection event (once, on start-up) so that
    /// a registry can discover it; correlated by the event's own
    /// correlation id. Returns the envelope's event id and its delivery.
    pub async fn publish_introspection(
        &self,
        event: &NodeIntrospectionEvent,
    ) -> Result<Published, BusError> {
        let id = self
            .publisher
            .publish(event, Some(event.correlation_id))
            .await?;
        tracing::info!(node = %event.node_name, node_id = %event.node_id, "introspection published");
        Ok(id)
    }

    /// The heartbeat the node would send now.
    pub fn heartbeat(&self, node_name: &str) -> Option<NodeHeartbeatEvent> {
        let status = heartbeat_status(&self.bus.health())?;
        Some(NodeHeartbeatEvent {
            node_id: self.node_id(),
            node_name: node_name.to_owned(),
            status: status.to_owned(),
            uptime_seconds: self.uptime().as_secs(),
            timestamp: Utc::now(),
            interval_seconds: lock(&self.beating)
                .as_ref()
                .map(|(_, i)| i.as_secs().max(1)),
        })
    }

    /// Starts a task that publishes a [`NodeHeartbeatEvent`] at once and then
    /// every `interval`, with status `healthy` or `degraded` from the bus's
    /// health and the uptime. It ends on [`NodeRuntime::shutdown`] or when
    /// the bus stops. A heartbeat that cannot be published is logged and
    /// the next one is tried on time. Must be called inside a tokio
    /// runtime.
    pub fn spawn_heartbeat(&self, interval: Duration, node_name: impl Into<String>) {
        let node_name = node_name.into();
        let bus = self.bus.clone();
        let publisher = self.publisher.clone();
        let started = self.started;
        let mut stop = self.stop.subscribe();
        let interval = interval.max(Duration::from_millis(1));
        *lock(&self.beating) = Some((node_name.clone(), interval));
        let interval_seconds = Some(interval.as_secs().max(1));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stopped| *stopped) => break,
                    _ = ticks.tick() => {}
                }
                let Some(status) = heartbeat_status(&bus.health()) else {
                    break;
                };
                let event = NodeHeartbeatEvent {
                    node_id: publisher.source().node_id,
                    node_name: node_name.clone(),
                    status: status.to_owned(),
                    uptime_seconds: started.elapsed().as_secs(),
                    timestamp: Utc::now(),
                    interval_seconds,
                };
                if let Err(e) = publisher.publish(&event, None).await {
                    tracing::warn!(error = %e, node = %node_name, "heartbeat not published");
                }
            }
        });
        // A runtime already shut down gets no new heartbeats.
        if self.is_shut_down() {
            task.abort();
            return;
        }
        lock(&self.heartbeats).push(task);
    }

    /// Subscribes a handler on the node's bus and keeps the subscription
    /// until [`NodeRuntime::shutdown`].
    pub async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<(), BusError> {
        check_topics(&subscription)?;
        let handle = self.bus.subscribe(subscription, handler).await?;
        self.keep_subscription(handle);
        Ok(())
    }

    /// Subscribes a batch handler on the node's bus
    /// ([`EventBus::subscribe_batches`]) and keeps the subscription until
    /// [`NodeRuntime::shutdown`]. A batch's offsets are committed only once
    /// its handler returned `Ok`.
    pub async fn subscribe_batches(
        &self,
        subscription: Subscription,
        options: BatchOptions,
        handler: Arc<dyn BatchHandler>,
    ) -> Result<(), BusError> {
        check_topics(&subscription)?;
        let handle = self
            .bus
            .subscribe_batches(subscription, options, handler)
            .await?;
        self.keep_subscription(handle);
        Ok(())
    }

    /// Keeps a subscription made elsewhere until [`NodeRuntime::shutdown`].
    pub fn keep_subscription(&self, handle: SubscriptionHandle) {
        lock(&self.subscriptions).push(handle);
    }

    /// Stops heartbeats, then subscriptions (each finishes the message in
    /// hand), then shuts the bus down (delivering what is in flight).
    /// Calling it again only repeats the bus's shutdown. Says what it waits
    /// for; [`NodeRuntime::expedite_shutdown`] makes it stop waiting.
    pub async fn shutdown(&self) -> Result<(), BusError> {
        self.shut_down.store(true, Ordering::Release);
        let heartbeats: Vec<_> = lock(&self.heartbeats).drain(..).collect();
        for task in heartbeats {
            task.abort();
        }
        self.say_stopped().await;
        let subscriptions: Vec<_> = lock(&self.subscriptions).drain(..).collect();
        // The subscriptions first, then the work waiting on other nodes
        // ([`NodeRuntime::stopping`]): a run that gives up finds its
        // message abandoned, to be delivered again, rather than retried.
        for handle in &subscriptions {
            handle.request_stop();
        }
        self.stop.send_replace(true);
        if !subscriptions.is_empty() {
            tracing::info!(
                subscriptions = subscriptions.len(),
                "stopping subscriptions: each finishes the message in hand"
            );
        }
        let waiting = subscriptions.len();
        let stopping = async {
            for handle in subscriptions {
                handle.stop_unless(self.expedited()).await;
            }
        };
        report_while_waiting(stopping, || {
            format!("still waiting for {waiting} subscription(s) to finish their message")
        })
        .await;
        self.bus.shutdown().await
    }

    /// The last heartbeat, on the first shutdown of a node that sent
    /// heartbeats: status [`STOPPED_STATUS`].
    async fn say_stopped(&self) {
        let Some((node_name, interval)) = lock(&self.beating).take() else {
            return;
        };
        if self.bus.health() == BusHealth::Stopped {
            return;
        }
        let event = NodeHeartbeatEvent {
            node_id: self.node_id(),
            node_name,
            status: STOPPED_STATUS.to_owned(),
            uptime_seconds: self.uptime().as_secs(),
            timestamp: Utc::now(),
            interval_seconds: Some(interval.as_secs().max(1)),
        };
        if let Err(e) = self.publisher.publish(&event, None).await {
            tracing::warn!(error = %e, "the last heartbeat was not published");
        }
    }

    /// Resolves once the node's shutdown has begun. Work that waits for
    /// another node (a workflow step, a request) gives up then, with
    /// [`crate::OperationError::INTERRUPTED`], so that the shutdown does
    /// not wait for replies that may never come; its message is delivered
    /// again after the restart.
    pub async fn stopping(&self) {
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|stopped| *stopped).await;
    }

    /// Makes a running [`NodeRuntime::shutdown`] stop waiting: handlers in
    /// progress are abandoned (their messages stay uncommitted and are
    /// delivered again) and the bus leaves what the broker has not taken in
    /// its spool ([`EventBus::expedite_shutdown`]).
    pub fn expedite_shutdown(&self) {
        self.expedite.send_replace(true);
        self.bus.expedite_shutdown();
    }

    async fn expedited(&self) {
        let mut expedite = self.expedite.subscribe();
        let _ = expedite.wait_for(|e| *e).await;
    }

    /// Shuts down ([`NodeRuntime::shutdown`]); a further SIGINT or SIGTERM
    /// meanwhile stops at once ([`NodeRuntime::expedite_shutdown`]), and
    /// the shutdown then gets a few seconds before it is given up.
    pub async fn shutdown_on_signals(&self, signals: &mut ShutdownSignals) -> Result<(), BusError> {
        let shutdown = self.shutdown();
        tokio::pin!(shutdown);
        tokio::select! {
            result = &mut shutdown => return result,
            signal = signals.recv() => tracing::warn!(
                %signal,
                "second signal: stopping at once; unfinished messages are delivered again \
                 after the restart, and undelivered events stay in the spool"
            ),
        }
        self.expedite_shutdown();
        match tokio::time::timeout(EXPEDITED_GRACE, shutdown).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    grace_seconds = EXPEDITED_GRACE.as_secs(),
                    "shutdown did not finish after the second signal; stopping anyway"
                );
                Ok(())
            }
        }
    }

    /// Waits for SIGINT or SIGTERM, then shuts down; returns the signal. A
    /// second signal during the shutdown stops at once.
    pub async fn run_until_shutdown_signal(&self) -> Result<ShutdownSignal, LifecycleError> {
        let mut signals = ShutdownSignals::new().map_err(LifecycleError::Signal)?;
        let signal = signals.recv().await;
        tracing::info!(%signal, "shutting down");
        self.shutdown_on_signals(&mut signals)
            .await
            .map_err(LifecycleError::Shutdown)?;
        Ok(signal)
    }
}

/// A topic Kafka would refuse fails at start-up, with its name and length,
/// rather than as a broker error on the first poll.
fn check_topics(subscription: &Subscription) -> Result<(), BusError> {
    for topic in &subscription.topics {
        crate::topic::check(topic)?;
    }
    Ok(())
}

/// How long an expedited shutdown may still take before it is given up.
const EXPEDITED_GRACE: Duration = Duration::from_secs(5);

/// Awaits `work`, logging `what()` every few seconds until it is done, so
/// that a slow shutdown says what it is waiting for.
async fn report_while_waiting(
    work: impl std::future::Future<Output = ()>,
    what: impl Fn() -> String,
) {
    tokio::pin!(work);
    let started = Instant::now();
    loop {
        tokio::select! {
            () = &mut work => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => tracing::info!(
                waited_seconds = started.elapsed().as_secs(),
                "{}",
                what()
            ),
        }
    }
}

/// Runs a start-up step unless SIGINT or SIGTERM comes first: `None` then,
/// and the step is dropped (cancelled). A signal during start-up is handled
/// like one after it: the caller shuts down what has started.
pub async fn unless_signalled<T>(
    signals: &mut ShutdownSignals,
    step: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        result = step => Some(result),
        signal = signals.recv() => {
            tracing::info!(%signal, "signal during start-up: shutting down");
            None
        }
    }
}

impl Drop for NodeRuntime {
    fn drop(&mut self) {
        // Heartbeat tasks must not outlive the runtime that owns them.
        self.stop.send_replace(true);
    }
}

/// An error of the node lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The signal handlers could not be installed.
    #[error("cannot listen for shutdown signals: {0}")]
    Signal(#[source] std::io::Error),
    /// The bus did not shut down cleanly.
    #[error("shutdown failed: {0}")]
    Shutdown(#[source] BusError),
}

/// The signal that asked the node to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (e.g. `docker stop`).
    Terminate,
}

impl fmt::Display for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShutdownSignal::Interrupt => "SIGINT",
            ShutdownSignal::Terminate => "SIGTERM",
        })
    }
}

/// Listeners for SIGINT and SIGTERM. Installed by [`ShutdownSignals::new`],
/// so that signals arriving before [`ShutdownSignals::recv`] is awaited are
/// not lost.
#[derive(Debug)]
pub struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the listeners. Must be called inside a tokio runtime.
    pub fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(ShutdownSignals {})
        }
    }

    /// Resolves with the first SIGINT or SIGTERM received since the
    /// listeners were installed.
    pub async fn recv(&mut self) -> ShutdownSignal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => ShutdownSignal::Interrupt,
                _ = self.terminate.recv() => ShutdownSignal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            ShutdownSignal::Interrupt
        }
    }
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C elsewhere than Unix).
pub async fn wait_for_shutdown_signal() -> std::io::Result<ShutdownSignal> {
    let mut signals = ShutdownSignals::new()?;
    Ok(signals.recv().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_health() {
        assert_eq!(heartbeat_status(&BusHealth::Healthy), Some("healthy"));
        assert_eq!(
            heartbeat_status(&BusHealth::Degraded {
                reason: "broker down".into()
            }),
            Some("degraded")
        );
        assert_eq!(heartbeat_status(&BusHealth::Stopped), None);
    }

    #[test]
    fn signals_display_their_names() {
        assert_eq!(ShutdownSignal::Interrupt.to_string(), "SIGINT");
        assert_eq!(ShutdownSignal::Terminate.to_string(), "SIGTERM");
    }
}
