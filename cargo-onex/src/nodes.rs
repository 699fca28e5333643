//! `cargo onex nodes`: the registry of live nodes.
//!
//! The registry is a node of its own, generated from
//! `contracts/node_registry.yaml`: a reducer over the discovery events every
//! node publishes, its introspection event on start-up and its heartbeats.
//! It reads both topics from their beginning (assigned, in no consumer
//! group), so it finds nodes that started before it. It keeps one entry per
//! node name: a node that restarts with a new id replaces its old entry.
//! A node is live while its heartbeats come on time, late once it missed
//! one, and gone once it missed `--missed` of them or said it stopped.

use std::{
    collections::{BTreeMap, HashMap},
    io::IsTerminal as _,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{Context as _, bail};
use onex::{
    BusMessage, Event as _, Publisher,
    bus::{Subscription, handler_fn},
    chrono::{DateTime, Utc},
    config::AutoOffsetReset,
    discovery::{NodeHeartbeatEvent, NodeIntrospectionEvent},
    lifecycle::NodeRuntime,
    tokio,
    uuid::Uuid,
};

use crate::{
    bus::{self, BusArgs},
    events::registry::{self as events, NodeEntry, NodeStatus, NodeStatusChanged, Registry},
};

/// `cargo onex nodes`.
#[derive(Debug, clap::Args)]
pub struct NodesArgs {
    /// The bus to look at.
    #[command(flatten)]
    pub bus: BusArgs,
    /// Keep the table current until interrupted (and announce the registry
    /// itself, publishing each status change).
    #[arg(long)]
    pub watch: bool,
    /// `table` for people, `json` for scripts (one document; with --watch,
    /// one line per change).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Heartbeats a node may miss before it counts as gone (it is late
    /// after the first).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub missed: u32,
    /// The heartbeat interval of nodes whose heartbeats do not announce
    /// theirs, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_interval: u64,
    /// Without --watch: how long no event published before the registry
    /// started may arrive before the history counts as read and the table
    /// is printed, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1500)]
    pub settle_ms: u64,
}

/// How `cargo onex nodes` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// JSON.
    Json,
}

/// The registry's state: the table, and heartbeats that came before their
/// node's introspection event (the two topics are read side by side).
#[derive(Debug, Default)]
pub struct State {
    registry: Registry,
    early: HashMap<Uuid, NodeHeartbeatEvent>,
    /// When the last event published before the registry started arrived:
    /// the history is read once none came for a while (live nodes keep
    /// sending new ones, which do not count).
    last_past_event: Option<std::time::Instant>,
}

impl State {
    /// Folds an introspection event published at `at`.
    pub fn introspection(
        &mut self,
        event: &NodeIntrospectionEvent,
        at: DateTime<Utc>,
        default_interval: u64,
    ) {
        let nodes = &mut self.registry.nodes;
        if let Some(known) = nodes.get(&event.node_name)
            && known.node_id != event.node_id
            && known.announced_at > at
        {
            // An older instance's announcement, read after the newer one.
            return;
        }
        let metadata = |key: &str| {
            event
                .capabilities
                .metadata
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let same = nodes
            .get(&event.node_name)
            .filter(|known| known.node_id == event.node_id);
        let mut entry = NodeEntry {
            node_name: event.node_name.clone(),
            node_id: event.node_id,
            version: event.version.clone(),
            node_type: metadata("node_type"),
            domain: metadata("domain"),
            service: metadata("service_name"),
            actions: event.capabilities.actions.clone(),
            health_endpoint: event.health_endpoint.clone(),
            contract_hash: event.contract_hash.clone(),
            announced_at: at,
            last_heartbeat: same.and_then(|k| k.last_heartbeat),
            heartbeat_interval_seconds: same
                .map_or(default_interval, |k| k.heartbeat_interval_seconds),
            health: same.and_then(|k| k.health.clone()),
            status: NodeStatus::Live,
        };
        if let Some(heartbeat) = self.early.remove(&event.node_id) {
            beat(&mut entry, &heartbeat);
        }
        nodes.insert(event.node_name.clone(), entry);
    }

    /// Folds a heartbeat.
    pub fn heartbeat(&mut self, event: &NodeHeartbeatEvent) {
        match self.registry.nodes.get_mut(&event.node_name) {
            Some(entry) if entry.node_id == event.node_id => beat(entry, event),
            _ => {
                // Its introspection event may still come; keep the latest.
                let keep = self
                    .early
                    .get(&event.node_id)
                    .is_none_or(|known| known.timestamp <= event.timestamp);
                if keep {
                    self.early.insert(event.node_id, event.clone());
                }
            }
        }
    }

    /// The table at `now`, each entry's status brought up to date; returns
    /// the entries whose status changed, with the status before.
    pub fn refresh(&mut self, now: DateTime<Utc>, missed: u32) -> Vec<(NodeEntry, NodeStatus)> {
        let mut changed = Vec::new();
        for entry in self.registry.nodes.values_mut() {
            let status = status_at(entry, now, missed);
            if status != entry.status {
                let before = entry.status;
                entry.status = status;
                changed.push((entry.clone(), before));
            }
        }
        changed
    }

    /// The registry as it stands.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// A heartbeat applied to its node's entry (the latest one wins).
fn beat(entry: &mut NodeEntry, heartbeat: &NodeHeartbeatEvent) {
    if entry
        .last_heartbeat
        .is_some_and(|last| last > heartbeat.timestamp)
    {
        return;
    }
    entry.last_heartbeat = Some(heartbeat.timestamp);
    entry.health = Some(heartbeat.status.clone());
    if let Some(seconds) = heartbeat.interval_seconds.filter(|s| *s > 0) {
        entry.heartbeat_interval_seconds = seconds;
    }
}

/// Live while the last sign of life (heartbeat, else announcement) is
/// less than two intervals old (the next heartbeat may still be on its
/// way); late after that; gone once `missed` intervals passed (at least
/// two), or when the node said it stopped.
pub fn status_at(entry: &NodeEntry, now: DateTime<Utc>, missed: u32) -> NodeStatus {
    if entry.health.as_deref() == Some(onex::lifecycle::STOPPED_STATUS) {
        return NodeStatus::Gone;
    }
    let last = entry
        .last_heartbeat
        .unwrap_or(entry.announced_at)
        .max(entry.announced_at);
    let age_ms = (now - last).num_milliseconds().max(0) as u128;
    let interval_ms = u128::from(entry.heartbeat_interval_seconds.max(1)) * 1000;
    // The next heartbeat is due one interval after the last; it is overdue
    // (missed) once a whole interval more passed, which leaves it that
    // long to cross the bus.
    if age_ms < 2 * interval_ms {
        NodeStatus::Live
    } else if age_ms < interval_ms * u128::from(missed.max(2)) {
        NodeStatus::Late
    } else {
        NodeStatus::Gone
    }
}

/// Runs `cargo onex nodes`.
pub fn run(args: &NodesArgs) -> anyhow::Result<std::process::ExitCode> {
    let Some(mut config) = args.bus.configured()? else {
        bail!(
            "`cargo onex nodes` needs a broker to read the nodes' events from\n\
             help: set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap-servers HOST:PORT"
        );
    };
    // The whole history: nodes that announced themselves before we came.
    config.auto_offset_reset = AutoOffsetReset::Earliest;
    let runtime = bus::runtime()?;
    runtime.block_on(async {
        let publisher = bus::join(config, events::SERVICE).await?;
        let state = Arc::new(Mutex::new(State::default()));
        let default_interval = args.heartbeat_interval;
        let started = Utc::now();
        let folded = Arc::clone(&state);
        let handler = handler_fn(move |message: BusMessage| {
            let state = Arc::clone(&folded);
            async move {
                fold(&state, &message, default_interval, started);
                Ok(())
            }
        });
        let topics = vec![
            publisher.topic_of::<NodeIntrospectionEvent>(),
            publisher.topic_of::<NodeHeartbeatEvent>(),
        ];
        // Every run reads the whole history, under a name of its own and
        // outside any consumer group (no join to wait for).
        let group = format!("{}.{}", events::CONSUMER_GROUP, Uuid::new_v4());
        let subscription = publisher
            .bus()
            .subscribe_from_start(Subscription { topics, group }, handler)
            .await
            .context("cannot read the discovery topics")?;
        let result = if args.watch {
            watch(args, &publisher, &state).await
        } else {
            settle(&state, Duration::from_millis(args.settle_ms)).await;
            let mut state = lock(&state);
            state.refresh(Utc::now(), args.missed);
            print(args.format, state.registry(), Utc::now())
        };
        subscription.stop().await;
        let _ = publisher.bus().shutdown().await;
        result.map(|()| std::process::ExitCode::SUCCESS)
    })
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Folds one discovery message; anything else on the topics is skipped.
fn fold(state: &Mutex<State>, message: &BusMessage, default_interval: u64, started: DateTime<Utc>) {
    let envelope = &message.envelope;
    let mut state = lock(state);
    if envelope.event_timestamp < started {
        state.last_past_event = Some(std::time::Instant::now());
    }
    if envelope.event_type == NodeIntrospectionEvent::EVENT_TYPE {
        if let Ok(event) = envelope.decode::<NodeIntrospectionEvent>() {
            state.introspection(&event, envelope.event_timestamp, default_interval);
        }
    } else if envelope.event_type == NodeHeartbeatEvent::EVENT_TYPE
        && let Ok(event) = envelope.decode::<NodeHeartbeatEvent>()
    {
        state.heartbeat(&event);
    }
}

/// Waits until no event of the history came for `quiet` (the history is
/// read).
async fn settle(state: &Mutex<State>, quiet: Duration) {
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let last = lock(state).last_past_event.unwrap_or(started);
        if last.elapsed() >= quiet {
            return;
        }
    }
}

/// Keeps the table current until SIGINT or SIGTERM: the registry announces
/// itself and publishes each status change.
async fn watch(
    args: &NodesArgs,
    publisher: &Publisher,
    state: &Mutex<State>,
) -> anyhow::Result<()> {
    let node = NodeRuntime::new(publisher.bus().clone(), publisher.source().clone());
    let introspection = events::introspection(node.node_id(), Uuid::new_v4());
    if let Err(e) = node.publish_introspection(&introspection).await {
        eprintln!("warning: the registry could not announce itself: {e}");
    }
    node.spawn_heartbeat(
        Duration::from_secs(events::HEARTBEAT_INTERVAL_SECONDS),
        events::NODE_STRUCT_NAME,
    );
    let mut signals =
        onex::lifecycle::ShutdownSignals::new().context("cannot watch for signals")?;
    let mut ticks = tokio::time::interval(Duration::from_millis(500));
    let terminal = std::io::stdout().is_terminal() && args.format == Format::Table;
    let mut shown: Option<String> = None;
    // The id of each node last shown.
    let mut known: HashMap<String, Uuid> = HashMap::new();
    loop {
        tokio::select! {
            _ = signals.recv() => break,
            _ = ticks.tick() => {}
        }
        let now = Utc::now();
        let (changed, registry) = {
            let mut state = lock(state);
            let changed = state.refresh(now, args.missed);
            (changed, state.registry().clone())
        };
        // New nodes and new instances appear with no status before.
        let mut events: Vec<NodeStatusChanged> = registry
            .nodes
            .values()
            .filter(|entry| {
                known.get(&entry.node_name) != Some(&entry.node_id)
                    && !changed.iter().any(|(c, _)| c.node_name == entry.node_name)
            })
            .map(|entry| NodeStatusChanged {
                entry: entry.clone(),
                previous: None,
            })
            .collect();
        events.extend(changed.iter().map(|(entry, previous)| NodeStatusChanged {
            entry: entry.clone(),
            previous: Some(*previous),
        }));
        known = registry
            .nodes
            .values()
            .map(|e| (e.node_name.clone(), e.node_id))
            .collect();
        for event in &events {
            let _ = node.publisher().publish(event, None).await;
        }
        match args.format {
            Format::Json => {
                if !events.is_empty() || shown.is_none() {
                    println!("{}", onex::serde_json::to_string(&registry)?);
                    shown = Some(String::new());
                }
            }
            Format::Table => {
                let table = table(&registry, now);
                if shown.as_ref() != Some(&table) {
                    if terminal {
                        print!("\x1b[H\x1b[2J");
                    }
                    println!("{table}");
                    shown = Some(table);
                }
            }
        }
    }
    let _ = node.shutdown().await;
    Ok(())
}

fn print(format: Format, registry: &Registry, now: DateTime<Utc>) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", onex::serde_json::to_string_pretty(registry)?),
        Format::Table => println!("{}", table(registry, now)),
    }
    Ok(())
}

/// The registry as an aligned table, one node per line, by name.
pub fn table(registry: &Registry, now: DateTime<Utc>) -> String {
    let header = [
        "NAME",
        "ID",
        "VERSION",
        "TYPE",
        "DOMAIN",
        "ACTIONS",
        "HEALTH",
        "CONTRACT",
        "LAST HEARTBEAT",
        "STATUS",
    ];
    let rows: Vec<[String; 10]> = registry
        .nodes
        .values()
        .map(|e| {
            let id = e.node_id.to_string();
            [
                e.node_name.clone(),
                id[..8].to_owned(),
                e.version.clone(),
                e.node_type.clone(),
                e.domain.clone(),
                e.actions.join(","),
                e.health_endpoint.clone(),
                e.contract_hash.clone().unwrap_or_else(|| "-".to_owned()),
                e.last_heartbeat
                    .map_or_else(|| "never".to_owned(), |at| ago(now, at)),
                e.status.as_str().to_owned(),
            ]
        })
        .collect();
    let mut widths: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, title) in header.iter().enumerate() {
        let widest = rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
        widths.insert(i, widest.max(title.len()));
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[&i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    for row in &rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    if rows.is_empty() {
        out.push("(no node has announced itself on this bus)".to_owned());
    }
    out.join("\n")
}

/// `3s ago`, `2m ago`, `1h ago`.
fn ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        _ => format!("{}h ago", seconds / 3600),
    }
}

#[cfg(test)]
mod tests {
    use onex::discovery::NodeCapabilities;

    use super::*;

    fn introspection(name: &str, id: Uuid) -> NodeIntrospectionEvent {
        NodeIntrospectionEvent {
            node_id: id,
            node_name: name.to_owned(),
            version: "1.0.0".to_owned(),
            capabilities: NodeCapabilities {
                actions: vec!["write_record".to_owned()],
                protocols: vec!["kafka".to_owned()],
                metadata: BTreeMap::from([("node_type".to_owned(), "effect".into())]),
            },
            tags: Vec::new(),
            health_endpoint: "/health".to_owned(),
            correlation_id: Uuid::new_v4(),
            contract_hash: Some("0123456789abcdef".to_owned()),
        }
    }

    fn heartbeat(name: &str, id: Uuid, at: DateTime<Utc>, status: &str) -> NodeHeartbeatEvent {
        NodeHeartbeatEvent {
            node_id: id,
            node_name: name.to_owned(),
            status: status.to_owned(),
            uptime_seconds: 1,
            timestamp: at,
            interval_seconds: Some(2),
        }
    }

    #[test]
    fn live_late_gone_by_missed_heartbeats() {
        let t0 = Utc::now();
        let id = Uuid::new_v4();
        let mut state = State::default();
        state.introspection(&introspection("A", id), t0, 30);
        state.heartbeat(&heartbeat("A", id, t0, "healthy"));
        let entry = &state.registry().nodes["A"];
        assert_eq!(entry.heartbeat_interval_seconds, 2);
        let at = |s: i64| t0 + onex::chrono::Duration::seconds(s);
        assert_eq!(status_at(entry, at(3), 3), NodeStatus::Live);
        assert_eq!(status_at(entry, at(4), 3), NodeStatus::Late);
        assert_eq!(status_at(entry, at(5), 3), NodeStatus::Late);
        assert_eq!(status_at(entry, at(6), 3), NodeStatus::Gone);
        let changed = state.refresh(at(6), 3);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].1, NodeStatus::Live);
    }

    #[test]
    fn a_restart_replaces_the_entry_and_a_stop_is_gone_at_once() {
        let t0 = Utc::now();
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        let mut state = State::default();
        // The new instance's heartbeat comes before its announcement.
        state.introspection(&introspection("A", old), t0, 30);
        let later = t0 + onex::chrono::Duration::seconds(5);
        state.heartbeat(&heartbeat("A", new, later, "healthy"));
        state.introspection(&introspection("A", new), later, 30);
        // The old instance's last words, read late, change nothing.
        state.heartbeat(&heartbeat("A", old, t0, onex::lifecycle::STOPPED_STATUS));
        state.introspection(&introspection("A", old), t0, 30);
        let entry = &state.registry().nodes["A"];
        assert_eq!(entry.node_id, new);
        assert_eq!(entry.last_heartbeat, Some(later));
        assert_eq!(state.registry().nodes.len(), 1);

        state.heartbeat(&heartbeat("A", new, later, onex::lifecycle::STOPPED_STATUS));
        assert_eq!(
            status_at(&state.registry().nodes["A"], later, 3),
            NodeStatus::Gone
        );
    }

    #[test]
    fn the_table_lists_every_node() {
        let t0 = Utc::now();
        let mut state = State::default();
        state.introspection(&introspection("NodeB", Uuid::new_v4()), t0, 30);
        state.introspection(&introspection("NodeA", Uuid::new_v4()), t0, 30);
        let table = table(state.registry(), t0);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME"));
        assert!(
            lines[1].starts_with("NodeA") && lines[2].starts_with("NodeB"),
            "{table}"
        );
        assert!(lines[1].contains("write_record") && lines[1].contains("never"));
        assert!(lines[0].contains("CONTRACT") && lines[1].contains("0123456789abcdef"));
        assert_eq!(
            state.registry().nodes["NodeA"].contract_hash.as_deref(),
            Some("0123456789abcdef")
        );
    }
}
