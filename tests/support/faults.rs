//! Helpers of the fault suite (`tests/faults.rs`): the two fault-test nodes
//! (generated from `tests/faults/*.yaml`, with the handlers of
//! `tests/faults/`), their processes, sending commands and reading outcomes
//! with Python confluent-kafka, and the checker that counts what was lost,
//! duplicated and reordered.
//!
//! Included by `tests/faults.rs` next to `support/e2e.rs` and
//! `support/node_build.rs`, whose helpers it reuses.
#![allow(dead_code)]

use std::{
    collections::{BTreeMap, HashMap},
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use onex::chrono::{DateTime, Utc};
use onex_build::pipeline::{self, Mode, Request, RuntimeDependency};
use serde_json::{Value, json};

use crate::{
    e2e::{self, NodeProcess, root},
    node_build::build_without_warnings,
};

/// Where the fixtures live: contracts, handlers, Python scripts.
pub fn fixtures() -> PathBuf {
    root().join("tests/faults")
}

/// Where the suite keeps its generated crates, node working folders and logs.
pub fn scratch() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faults")
}

/// The two nodes of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultNode {
    /// `fault_probe`: an effect node applying keyed, numbered commands,
    /// with faults injected through the environment.
    Probe,
    /// `fault_window`: a reducer whose state lists the seqs of each window.
    Window,
}

impl FaultNode {
    fn contract(self) -> &'static str {
        match self {
            FaultNode::Probe => "fault_probe.yaml",
            FaultNode::Window => "fault_window.yaml",
        }
    }

    fn handler(self) -> &'static str {
        match self {
            FaultNode::Probe => "probe_handler.rs",
            FaultNode::Window => "window_handler.rs",
        }
    }

    /// The crate, package and binary name.
    fn crate_name(self) -> &'static str {
        match self {
            FaultNode::Probe => "fault-probe",
            FaultNode::Window => "fault-window",
        }
    }

    /// Generates the node crate (once per test process), puts the suite's
    /// handler into it, builds it (without a warning in its own files) in
    /// the target folder every node crate of the tests shares, and returns
    /// the binary.
    pub fn binary(self) -> PathBuf {
        static PROBE: OnceLock<PathBuf> = OnceLock::new();
        static WINDOW: OnceLock<PathBuf> = OnceLock::new();
        let cell = match self {
            FaultNode::Probe => &PROBE,
            FaultNode::Window => &WINDOW,
        };
        cell.get_or_init(|| self.generate_and_build()).clone()
    }

    fn generate_and_build(self) -> PathBuf {
        let out_dir = scratch().join("generated");
        std::fs::create_dir_all(&out_dir).expect("out dir");
        let request = Request {
            contracts: vec![fixtures().join(self.contract())],
            out_dir: out_dir.clone(),
            mode: Mode::Write,
            runtime: RuntimeDependency::from_crate_dirs(
                &out_dir,
                &root().join("onex"),
                &root().join("onex-build"),
            ),
            compile_check: false,
            target_dir: None,
            contract_path: Vec::new(),
        };
        let report = pipeline::run(&request).unwrap_or_else(|e| panic!("{e}"));
        let node_dir = report.contracts[0].node_dir.clone();
        // Written only when it changed, so that cargo does not rebuild an
        // unchanged crate.
        let handler = std::fs::read_to_string(fixtures().join(self.handler())).expect("handler");
        let target = node_dir.join("src/handler.rs");
        if std::fs::read_to_string(&target).ok().as_deref() != Some(handler.as_str()) {
            std::fs::write(&target, handler).expect("write the handler");
        }
        let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("node-target");
        build_without_warnings(&node_dir, &target_dir)
            .unwrap_or_else(|e| panic!("{}: {e}", node_dir.display()));
        target_dir.join("debug").join(self.crate_name())
    }
}

/// A fresh environment (topic namespace) for one scenario.
pub fn fresh_environment(scenario: &str) -> String {
    format!("faults{scenario}{}", &e2e::uuid_hex()[..10])
}

/// `{environment}.{topic}`.
pub fn topic(environment: &str, topic: &str) -> String {
    format!("{environment}.{topic}")
}

/// The probe's command topic, outcome topics and event type.
pub const COMMAND_TOPIC: &str = "fault_probe.effect.apply_requested.v1";
pub const COMMAND_TYPE: &str = "effect.apply_requested";
pub const STARTED_TOPIC: &str = "fault_probe.effect.apply.started.v1";
pub const COMPLETED_TOPIC: &str = "fault_probe.effect.apply.completed.v1";
pub const FAILED_TOPIC: &str = "fault_probe.effect.apply.failed.v1";
/// The reducer's input topic and event type, and its output topic.
pub const SAMPLE_TOPIC: &str = "fault_feed.effect.sample.recorded.v1";
pub const SAMPLE_TYPE: &str = "effect.sample.recorded";
pub const STATE_UPDATED_TOPIC: &str = "fault_window.reducer.state.updated.v1";

/// Every topic a probe node publishes to, besides the dead-letter topic.
pub fn probe_output_topics(environment: &str) -> Vec<String> {
    [
        STARTED_TOPIC,
        COMPLETED_TOPIC,
        FAILED_TOPIC,
        "omninode.discovery.node_introspection.v1",
        "omninode.discovery.node_heartbeat.v1",
    ]
    .iter()
    .map(|t| topic(environment, t))
    .collect()
}

/// The probe's dead-letter topic, as its contract names it (the bus puts
/// the environment in front).
pub const DEAD_LETTER_TOPIC: &str = "fault_probe.dlq.v1";

/// The probe's full dead-letter topic in `environment`.
pub fn dead_letter_topic(environment: &str) -> String {
    topic(environment, DEAD_LETTER_TOPIC)
}

/// How a scenario runs its node: which binary, where, with what settings.
#[derive(Debug, Clone)]
pub struct NodeRun {
    pub node: FaultNode,
    pub bootstrap: String,
    pub environment: String,
    /// The node's working folder (its spool lives under it), kept across
    /// restarts.
    pub workdir: PathBuf,
    /// Extra variables (fault injection, retry settings).
    pub env: Vec<(String, String)>,
    starts: usize,
}

impl NodeRun {
    /// A run of `node` on `bootstrap` in `environment`, in a fresh working
    /// folder, reading from the earliest offset, in a consumer group of its
    /// own, retrying quickly.
    pub fn new(node: FaultNode, bootstrap: &str, environment: &str) -> Self {
        let workdir = scratch().join("runs").join(environment);
        let _ = std::fs::remove_dir_all(&workdir);
        std::fs::create_dir_all(&workdir).expect("working folder");
        NodeRun {
            node,
            bootstrap: bootstrap.to_owned(),
            environment: environment.to_owned(),
            workdir,
            env: vec![
                ("KAFKA_AUTO_OFFSET_RESET".into(), "earliest".into()),
                ("KAFKA_GROUP".into(), format!("{environment}-group")),
                ("KAFKA_MAX_RETRY_ATTEMPTS".into(), "2".into()),
                ("KAFKA_RETRY_BACKOFF_BASE".into(), "0.1".into()),
                ("HEARTBEAT_INTERVAL_SECONDS".into(), "5".into()),
            ],
            starts: 0,
        }
    }

    /// Sets (or replaces) a variable of the node's environment.
    pub fn set(mut self, name: &str, value: impl ToString) -> Self {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.to_string()));
        self
    }

    /// The log of the `n`th start (from 1).
    pub fn log(&self, n: usize) -> PathBuf {
        self.workdir.join(format!("node-{n}.log"))
    }

    /// Starts the node and waits until it joined the bus (`node
    /// initialized` in its log); returns the process and its log.
    pub fn start(&mut self) -> (NodeProcess, PathBuf) {
        let (mut child, log) = self.spawn();
        e2e::wait_for_log(&log, "node initialized", &mut child);
        (child, log)
    }

    /// Starts the node without waiting for it.
    pub fn spawn(&mut self) -> (NodeProcess, PathBuf) {
        self.starts += 1;
        let log = self.log(self.starts);
        let mut command = Command::new(self.node.binary());
        command
            .current_dir(&self.workdir)
            .env("KAFKA_BOOTSTRAP_SERVERS", &self.bootstrap)
            .env("KAFKA_ENVIRONMENT", &self.environment)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (name, value) in &self.env {
            command.env(name, value);
        }
        let child = command.spawn().expect("the node starts");
        (NodeProcess(child), log)
    }
}

/// SIGKILL: the process gets no chance to commit, flush or spool anything.
pub fn sigkill(mut child: NodeProcess) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends SIGTERM and waits (up to `within`) for the process to exit;
/// returns its status. Fails when it does not exit in time.
pub fn sigterm(mut child: NodeProcess, within: Duration, log: &Path) -> ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not stop within {within:?} of SIGTERM:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A random duration in `min..max` (from /dev/urandom: the kill moments).
pub fn random_between(min: Duration, max: Duration) -> Duration {
    let hex = e2e::uuid_hex();
    let r = u64::from_str_radix(&hex[..12], 16).expect("hex");
    let span = (max - min).as_millis() as u64;
    min + Duration::from_millis(r % span.max(1))
}

/// A record to send: topic, key, value, and the `event_type` header.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: String,
    pub key: String,
    pub value: String,
    pub event_type: Option<String>,
}

/// Sends the records with Python confluent-kafka (idempotent, in order per
/// key); fails unless the broker acknowledged every one.
pub fn send_all(bootstrap: &str, records: &[Outgoing]) {
    let mut child = Command::new("python3")
        .arg(fixtures().join("send_commands.py"))
        .args(["--bootstrap", bootstrap])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for r in records {
            let line = json!({
                "topic": r.topic, "key": r.key, "value": r.value, "event_type": r.event_type,
            });
            writeln!(stdin, "{line}").expect("write to the sender");
        }
    }
    let output = child.wait_with_output().expect("the sender ends");
    assert!(
        output.status.success(),
        "sending {} records to {bootstrap} failed (is the broker up?): {}",
        records.len(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Reads whole topics with Python confluent-kafka (up to their ends as of
/// now; a topic that does not exist reads as empty): one JSON value per
/// record, as `tests/faults/read_topics.py` prints them.
pub fn read_topics(bootstrap: &str, topics: &[String]) -> Vec<Value> {
    let mut command = Command::new("python3");
    command.arg(fixtures().join("read_topics.py")).args([
        "--bootstrap",
        bootstrap,
        "--timeout",
        "60",
    ]);
    for t in topics {
        command.args(["--topic", t]);
    }
    let output = command.output().expect("python3 runs");
    assert!(
        output.status.success(),
        "reading {topics:?} from {bootstrap} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// The envelope a record carries (its value parsed as JSON).
pub fn envelope_of(record: &Value) -> Value {
    serde_json::from_str(record["value"].as_str().expect("a value")).expect("an envelope")
}

/// One command the test sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub key: String,
    pub seq: u64,
    pub correlation_id: String,
}

/// Every command a scenario sent: what the checker holds the outcomes to.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub commands: Vec<Sent>,
}

impl Ledger {
    /// `per_key` commands for each of `keys` keys, interleaved (seq 0 of
    /// every key, then seq 1, ...), as records for the probe's command
    /// topic: the record key is the command's key, the correlation id is
    /// fresh per command.
    pub fn probe_commands(environment: &str, keys: usize, per_key: u64) -> (Ledger, Vec<Outgoing>) {
        let mut ledger = Ledger::default();
        let mut records = Vec::new();
        for seq in 0..per_key {
            for k in 0..keys {
                let key = format!("key-{k}");
                let (sent, record) = probe_command(environment, &key, seq);
                ledger.commands.push(sent);
                records.push(record);
            }
        }
        (ledger, records)
    }
}

/// One command for the probe, and the record that carries it.
pub fn probe_command(environment: &str, key: &str, seq: u64) -> (Sent, Outgoing) {
    let correlation_id = e2e::uuid_string();
    let envelope = e2e::command_envelope(
        COMMAND_TYPE,
        environment,
        &correlation_id,
        json!({"probe": {"key": key, "seq": seq}}),
    );
    (
        Sent {
            key: key.to_owned(),
            seq,
            correlation_id,
        },
        Outgoing {
            topic: topic(environment, COMMAND_TOPIC),
            key: key.to_owned(),
            value: envelope.to_string(),
            event_type: Some(COMMAND_TYPE.to_owned()),
        },
    )
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Commands sent.
    pub sent: usize,
    /// Commands with no outcome at all (no completed or failed event, no
    /// dead letter).
    pub lost: usize,
    /// Outcomes beyond the first, summed over commands.
    pub duplicated: usize,
    /// Commands whose first outcome came before the first outcome of an
    /// earlier command of the same key.
    pub out_of_order: usize,
    /// Commands with a completed event.
    pub completed: usize,
    /// Commands with a failed event.
    pub failed: usize,
    /// Commands dead-lettered.
    pub dead_lettered: usize,
    /// Outcomes of commands the test did not send (must be 0).
    pub unknown: usize,
}

impl Verdict {
    /// One line for the test output.
    pub fn line(&self, scenario: &str) -> String {
        format!(
            "faults: {scenario}: sent {}, lost {}, duplicated {}, out of order {} \
             (completed {}, failed {}, dead-lettered {}, unknown {})",
            self.sent,
            self.lost,
            self.duplicated,
            self.out_of_order,
            self.completed,
            self.failed,
            self.dead_lettered,
            self.unknown
        )
    }
}

/// An outcome seen on the broker: its command, and when the node created
/// it (the envelope's `event_timestamp`, or a dead letter's
/// `failure_timestamp` header).
#[derive(Debug, Clone)]
struct Outcome {
    correlation_id: String,
    at: DateTime<Utc>,
    kind: OutcomeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutcomeKind {
    Completed,
    Failed,
    DeadLetter,
}

fn timestamp(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not an RFC 3339 timestamp: {e}"))
        .with_timezone(&Utc)
}

fn outcomes(records: &[Value], completed: &str, failed: &str, dlq: &str) -> Vec<Outcome> {
    records
        .iter()
        .filter_map(|record| {
            let t = record["topic"].as_str().expect("a topic");
            if t == dlq {
                let headers = &record["headers"];
                return Some(Outcome {
                    correlation_id: headers["correlation_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    at: timestamp(headers["failure_timestamp"].as_str().unwrap_or_default()),
                    kind: OutcomeKind::DeadLetter,
                });
            }
            let kind = if t == completed {
                OutcomeKind::Completed
            } else if t == failed {
                OutcomeKind::Failed
            } else {
                return None;
            };
            let envelope = envelope_of(record);
            Some(Outcome {
                correlation_id: envelope["correlation_id"]
                    .as_str()
                    .expect("a correlation id")
                    .to_owned(),
                at: timestamp(envelope["event_timestamp"].as_str().expect("a timestamp")),
                kind,
            })
        })
        .collect()
}

/// Counts, for the commands of `ledger`, what the records of the outcome
/// topics (completed, failed, dead letters) show.
///
/// Order: the commands of one key were sent in seq order to one partition,
/// so the node must take them in that order. For each command the first
/// outcome (by the node's `event_timestamp`) is when it was first
/// finished; a command whose first outcome precedes that of an earlier
/// command of its key is out of order. Later copies (a replay after a
/// crash) are duplicates, not reordering. Dead letters count as outcomes
/// (the command is not lost) but carry the dead-lettering time, so they
/// take part in the order check like the others.
pub fn judge(ledger: &Ledger, environment: &str, records: &[Value]) -> Verdict {
    let all = outcomes(
        records,
        &topic(environment, COMPLETED_TOPIC),
        &topic(environment, FAILED_TOPIC),
        &dead_letter_topic(environment),
    );
    let mut by_command: HashMap<&str, Vec<&Outcome>> = HashMap::new();
    let known: HashMap<&str, &Sent> = ledger
        .commands
        .iter()
        .map(|s| (s.correlation_id.as_str(), s))
        .collect();
    let mut verdict = Verdict {
        sent: ledger.commands.len(),
        ..Verdict::default()
    };
    for outcome in &all {
        if known.contains_key(outcome.correlation_id.as_str()) {
            by_command
                .entry(outcome.correlation_id.as_str())
                .or_default()
                .push(outcome);
        } else {
            verdict.unknown += 1;
        }
    }
    let mut first_by_key: BTreeMap<&str, Vec<(u64, DateTime<Utc>)>> = BTreeMap::new();
    for sent in &ledger.commands {
        let Some(seen) = by_command.get(sent.correlation_id.as_str()) else {
            verdict.lost += 1;
            continue;
        };
        verdict.duplicated += seen.len() - 1;
        let kinds = |k| seen.iter().any(|o| o.kind == k);
        verdict.completed += usize::from(kinds(OutcomeKind::Completed));
        verdict.failed += usize::from(kinds(OutcomeKind::Failed));
        verdict.dead_lettered += usize::from(kinds(OutcomeKind::DeadLetter));
        let first = seen.iter().map(|o| o.at).min().expect("at least one");
        first_by_key
            .entry(sent.key.as_str())
            .or_default()
            .push((sent.seq, first));
    }
    for firsts in first_by_key.values_mut() {
        firsts.sort_by_key(|(seq, _)| *seq);
        let mut latest: Option<DateTime<Utc>> = None;
        for (_, at) in firsts.iter() {
            if latest.is_some_and(|latest| *at < latest) {
                verdict.out_of_order += 1;
            }
            latest = latest.max(Some(*at));
        }
    }
    verdict
}

/// The topics the checker reads for a probe scenario.
pub fn outcome_topics(environment: &str) -> Vec<String> {
    vec![
        topic(environment, COMPLETED_TOPIC),
        topic(environment, FAILED_TOPIC),
        dead_letter_topic(environment),
    ]
}

/// Reads the outcome topics until no command of `ledger` is lost, or
/// `within` passed; returns the last verdict.
pub fn await_outcomes(
    bootstrap: &str,
    environment: &str,
    ledger: &Ledger,
    within: Duration,
) -> Verdict {
    let deadline = Instant::now() + within;
    loop {
        let records = read_topics(bootstrap, &outcome_topics(environment));
        let verdict = judge(ledger, environment, &records);
        if verdict.lost == 0 || Instant::now() > deadline {
            return verdict;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The records of the outcome topics now, judged.
pub fn final_verdict(bootstrap: &str, environment: &str, ledger: &Ledger) -> Verdict {
    judge(
        ledger,
        environment,
        &read_topics(bootstrap, &outcome_topics(environment)),
    )
}

/// The tail of a node's log, for failure messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
