//! Helpers of the end-to-end node tests (`tests/e2e_*.rs`): build an example
//! node, start it against the broker, talk to the broker with an
//! independent client (Python confluent-kafka), stop the node.
//!
//! Included by each test with `#[path = "support/e2e.rs"] mod e2e;`, so that
//! it can use the dev-dependencies; not every test uses every helper.
#![allow(dead_code)]

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The broker's address, from `ONEX_TEST_BOOTSTRAP_SERVERS` (set by
/// `scripts/test`); `None` when it is unset or empty.
pub fn bootstrap() -> Option<String> {
    std::env::var("ONEX_TEST_BOOTSTRAP_SERVERS")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Builds a node crate and returns its binary. Every node builds in the
/// same target directory, so that librdkafka and the other dependencies
/// build once.
pub fn build_node(crate_dir: &Path, binary: &str) -> PathBuf {
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("node-target");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "{} does not build", crate_dir.display());
    target_dir.join("debug").join(binary)
}

/// A fresh environment name, so that each run has topics of its own.
pub fn fresh_environment() -> String {
    format!("e2e{}", &uuid_hex()[..12])
}

/// A command envelope (`OnexEnvelopeV1`) from the test.
pub fn command_envelope(
    event_type: &str,
    environment: &str,
    correlation_id: &str,
    payload: Value,
) -> Value {
    serde_json::json!({
        "envelope_version": "1.0",
        "event_id": uuid_string(),
        "event_type": event_type,
        "event_version": "1.0",
        "event_timestamp": "2026-01-01T00:00:00Z",
        "source_node_id": "e2e-test",
        "source_service": "e2e_test",
        "source_version": "0.0.0",
        "correlation_id": correlation_id,
        "environment": environment,
        "payload": payload,
        "metadata": {},
    })
}

/// Sends one command envelope with confluent-kafka (not our client), keyed
/// by `key`, with the `event_type` and `message_category` headers.
pub fn send(bootstrap: &str, topic: &str, key: &str, envelope: &Value) {
    let script = r#"
import sys
from confluent_kafka import Producer
bootstrap, topic, key, value, event_type = sys.argv[1:6]
p = Producer({"bootstrap.servers": bootstrap})
p.produce(topic, key=key.encode(), value=value.encode(),
          headers=[("event_type", event_type.encode()), ("message_category", b"COMMAND")])
if p.flush(30) != 0:
    sys.exit("not delivered")
"#;
    let event_type = envelope["event_type"].as_str().expect("an event_type");
    let output = Command::new("python3")
        .args(["-c", script, bootstrap, topic, key])
        .arg(envelope.to_string())
        .arg(event_type)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "sending to {topic} failed (is the broker at {bootstrap} up?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Reads records of a topic from its beginning with confluent-kafka;
/// returns their envelopes. With `Some(n)`, reads until `n` records arrived
/// (failing after 60 s without them); with `None`, reads what the topic
/// holds now.
pub fn read_records(bootstrap: &str, topic: &str, expect: Option<usize>) -> Vec<Value> {
    let envelopes: Vec<Value> = read_raw(bootstrap, topic, expect)
        .iter()
        .map(|record| {
            serde_json::from_str(record["value"].as_str().expect("a value")).expect("an envelope")
        })
        .collect();
    if let Some(expect) = expect {
        assert!(
            envelopes.len() >= expect,
            "{topic}: {} records in 60 s, expected {expect}: {envelopes:#?}",
            envelopes.len()
        );
    }
    envelopes
}

/// Reads records of a topic like [`read_records`], as the reader prints
/// them: `topic`, `partition`, `offset`, `key`, `headers` (name to value)
/// and `value` (text).
pub fn read_raw(bootstrap: &str, topic: &str, expect: Option<usize>) -> Vec<Value> {
    let (output, stderr) = run_reader(bootstrap, topic, expect, 60);
    assert!(output.is_some(), "reading {topic} failed: {stderr}");
    output.unwrap_or_default()
}

/// The envelopes a topic holds now, none when the topic does not exist
/// within a few seconds (nothing was published to it).
pub fn read_if_any(bootstrap: &str, topic: &str) -> Vec<Value> {
    let (output, stderr) = run_reader(bootstrap, topic, None, 3);
    let records = match output {
        Some(records) => records,
        None if stderr.contains("not found") => return Vec::new(),
        None => panic!("reading {topic} failed: {stderr}"),
    };
    records
        .iter()
        .map(|record| {
            serde_json::from_str(record["value"].as_str().expect("a value")).expect("an envelope")
        })
        .collect()
}

/// Runs the confluent-kafka reader on a topic for up to `timeout_seconds`:
/// its records when it succeeded, and its stderr.
fn run_reader(
    bootstrap: &str,
    topic: &str,
    expect: Option<usize>,
    timeout_seconds: u32,
) -> (Option<Vec<Value>>, String) {
    let mut command = Command::new("python3");
    command
        .arg(root().join("onex/tests/support/kafka_read.py"))
        .args(["--bootstrap", bootstrap, "--topic", topic, "--timeout"])
        .arg(timeout_seconds.to_string());
    if let Some(expect) = expect {
        command.args(["--expect", &expect.to_string()]);
    }
    let output = command.output().expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let records = output.status.success().then(|| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    });
    (records, stderr)
}

/// Reads `expect` records of a topic (see [`read_records`]).
pub fn read(bootstrap: &str, topic: &str, expect: usize) -> Vec<Value> {
    read_records(bootstrap, topic, Some(expect))
}

/// Runs a query with psql on the test database; returns its output.
pub fn psql(query: &str) -> String {
    let output = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-tAc",
            query,
        ])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql failed (run `bash scripts/postgres.sh ensure`): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A node process started by a test; killed when dropped while it still
/// runs, so that a failing assertion leaves no node behind.
pub struct NodeProcess(pub Child);

impl std::ops::Deref for NodeProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for NodeProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts a node binary on the broker in `environment`, reading from the
/// earliest offset, with a heartbeat every second and one quick retry of a
/// message its handler refuses; its log goes to `log`. Its consumer group
/// is the environment's own (`{environment}-{binary}`): consumer groups are
/// cluster-wide, and runs that share a broker must not rebalance each
/// other's nodes.
pub fn start_node(binary: &Path, bootstrap: &str, environment: &str, log: &Path) -> NodeProcess {
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let child = Command::new(binary)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("KAFKA_ENVIRONMENT", environment)
        .env("KAFKA_GROUP", format!("{environment}-{name}"))
        .env("KAFKA_AUTO_OFFSET_RESET", "earliest")
        .env("HEARTBEAT_INTERVAL_SECONDS", "1")
        .env("KAFKA_MAX_RETRY_ATTEMPTS", "1")
        .env("KAFKA_RETRY_BACKOFF_BASE", "0.1")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("the node starts");
    NodeProcess(child)
}

/// Where a node started by a test writes its log.
pub fn log_path(environment: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{environment}.log"))
}

/// Stops the node with SIGTERM, waits for it, checks that it exited with
/// status 0, returns its log.
pub fn terminate(mut child: NodeProcess, log: &Path) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut text = String::new();
    std::fs::File::open(log)
        .expect("log")
        .read_to_string(&mut text)
        .expect("utf-8 log");
    assert!(status.success(), "the node exited with {status}:\n{text}");
    text
}

/// Waits (60 s at most) until the node's log contains `needle`; fails when
/// the node exits first.
pub fn wait_for_log(log: &Path, needle: &str, child: &mut NodeProcess) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the node exited with {status} before `{needle}`:\n{text}");
        }
        assert!(Instant::now() < deadline, "no `{needle}` in 60 s:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A random v4 UUID without dashes.
pub fn uuid_hex() -> String {
    uuid_string().replace('-', "")
}

/// A random v4 UUID, without a uuid dependency.
pub fn uuid_string() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("random bytes");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
