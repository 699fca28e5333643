//! Shared helpers of the Kafka tests: where the broker is, a typed test
//! event, a collecting handler, the independent reader (confluent-kafka)
//! and private Tansu brokers for the tests that stop and restart one.
#![allow(dead_code)]

use std::{
    collections::HashSet,
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use onex::{
    BusMessage, Event, EventBus, KafkaConfig, MessageCategory, Publisher, SourceInfo,
    bus::{Handler, HandlerError, Subscription, SubscriptionHandle},
    config::AutoOffsetReset,
    kafka::KafkaBus,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

/// The variable scripts/test sets to the shared broker's address.
pub const BOOTSTRAP_VAR: &str = "ONEX_TEST_BOOTSTRAP_SERVERS";

/// The shared broker's address, or `None` (with a note) when the tests run
/// without one. When the variable is set, the broker must answer: a test
/// fails rather than skips.
pub fn bootstrap(test: &str) -> Option<String> {
    let Ok(servers) = std::env::var(BOOTSTRAP_VAR) else {
        println!("{test}: {BOOTSTRAP_VAR} is not set; skipping this broker test");
        return None;
    };
    let first = servers.split(',').next().unwrap_or_default().trim();
    let addr: SocketAddr = first
        .parse()
        .unwrap_or_else(|e| panic!("{BOOTSTRAP_VAR}={servers:?} is not host:port: {e}"));
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        panic!("{BOOTSTRAP_VAR}={servers} is set but the broker does not answer: {e}");
    }
    Some(servers)
}

/// Whether broker tests run at all (the variable is set).
pub fn broker_tests_enabled(test: &str) -> bool {
    if std::env::var_os(BOOTSTRAP_VAR).is_some() {
        true
    } else {
        println!("{test}: {BOOTSTRAP_VAR} is not set; skipping this broker test");
        false
    }
}

/// Logs to the test output, filtered by `RUST_LOG` (default: warnings).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    init_logging();
    format!("{prefix}-{}", Uuid::new_v4().simple())
}

/// Settings for tests: short timeouts and backoffs, groups that join fast,
/// consumers that start at the beginning of a topic.
pub fn test_config(bootstrap: &str, environment: &str) -> KafkaConfig {
    let mut c = KafkaConfig::from_env_pairs([("KAFKA_BOOTSTRAP_SERVERS", bootstrap)])
        .expect("valid bootstrap servers");
    c.environment = environment.to_owned();
    c.timeout_seconds = 15;
    c.max_retry_attempts = 2;
    c.retry_backoff_base = 0.1;
    c.circuit_breaker_threshold = 5;
    c.circuit_breaker_reset_timeout = 1.0;
    c.session_timeout_ms = 6000;
    c.auto_offset_reset = AutoOffsetReset::Earliest;
    c.linger_ms = 1;
    // Spool files of tests stay in the build's temporary folder.
    c.spool_dir = concat!(env!("CARGO_TARGET_TMPDIR"), "/spool").to_owned();
    c.validate().expect("valid test config");
    c
}

/// A typed test event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_no: u64,
    pub customer: String,
    pub amount_cents: i64,
}

impl Event for OrderPlaced {
    const EVENT_TYPE: &'static str = "orders.order.placed";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Event;
    const TOPIC: &'static str = "orders.order.placed.v1";
}

pub fn order(n: u64) -> OrderPlaced {
    OrderPlaced {
        order_no: n,
        customer: format!("customer-{}", n % 7),
        amount_cents: (n as i64) * 100 + 99,
    }
}

/// A publisher for `environment` on a bus.
pub fn publisher(bus: Arc<dyn EventBus>, environment: &str) -> Publisher {
    Publisher::new(bus, SourceInfo::new("orders", "1.2.3", environment))
}

/// A message for `OrderPlaced` number `n` on `topic`.
pub fn message(publisher: &Publisher, topic: &str, n: u64) -> Arc<BusMessage> {
    let mut m = publisher
        .message(&order(n), Some(Uuid::new_v4()), Default::default())
        .expect("message");
    m.topic = topic.to_owned();
    Arc::new(m)
}

/// A handler that keeps every message it gets.
#[derive(Default)]
pub struct Collector {
    messages: Mutex<Vec<BusMessage>>,
    changed: Notify,
}

impl Collector {
    pub fn new() -> Arc<Self> {
        Arc::new(Collector::default())
    }

    pub fn messages(&self) -> Vec<BusMessage> {
        self.messages.lock().expect("lock").clone()
    }

    pub fn len(&self) -> usize {
        self.messages.lock().expect("lock").len()
    }

    pub fn ids(&self) -> Vec<Uuid> {
        self.messages()
            .iter()
            .map(|m| m.envelope.event_id)
            .collect()
    }

    /// Waits until `n` messages arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let have = self.len();
            if have >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("waited {timeout:?} for {n} messages, got {}", self.len());
            }
        }
    }
}

#[async_trait::async_trait]
impl Handler for Collector {
    async fn handle(&self, message: &BusMessage) -> Result<(), HandlerError> {
        self.messages.lock().expect("lock").push(message.clone());
        self.changed.notify_waiters();
        Ok(())
    }
}

/// Subscribes a collector to one topic in a group.
pub async fn collect(
    bus: &dyn EventBus,
    topic: &str,
    group: &str,
) -> (Arc<Collector>, SubscriptionHandle) {
    let collector = Collector::new();
    let handle = bus
        .subscribe(
            Subscription {
                topics: vec![topic.to_owned()],
                group: group.to_owned(),
            },
            collector.clone(),
        )
        .await
        .expect("subscribe");
    (collector, handle)
}

/// One record as the independent client printed it.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub headers: std::collections::BTreeMap<String, Option<String>>,
    pub value: Option<String>,
}

impl ReadRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.as_deref())
    }

    pub fn envelope(&self) -> onex::OnexEnvelopeV1 {
        onex::OnexEnvelopeV1::from_json(self.value.as_deref().unwrap_or_default().as_bytes())
            .expect("the value is an envelope")
    }
}

fn reader_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/kafka_read.py")
}

/// Reads a topic from the beginning with confluent-kafka (a client this
/// project did not write). With `expect`, reads until that many records
/// arrived or `timeout` passed; without, to the end of every partition.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    expect: Option<usize>,
    timeout: Duration,
) -> Vec<ReadRecord> {
    let mut cmd = Command::new("python3");
    cmd.arg(reader_script())
        .args(["--bootstrap", bootstrap, "--topic", topic])
        .args(["--timeout", &timeout.as_secs_f64().to_string()]);
    if let Some(n) = expect {
        cmd.args(["--expect", &n.to_string()]);
    }
    let out = cmd
        .output()
        .expect("python3 runs (bash scripts/tansu.sh install installs confluent-kafka)");
    assert!(
        out.status.success(),
        "kafka_read.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

/// The event ids of records, checked for duplicates.
pub fn distinct_ids(ids: impl IntoIterator<Item = Uuid>) -> (HashSet<Uuid>, usize) {
    let mut set = HashSet::new();
    let mut duplicates = 0;
    for id in ids {
        if !set.insert(id) {
            duplicates += 1;
        }
    }
    (set, duplicates)
}

/// A checksum of event ids that ignores order: the wrapping sum and the
/// xor of their 128-bit values.
pub fn checksum(ids: impl IntoIterator<Item = Uuid>) -> (u128, u128) {
    ids.into_iter().fold((0u128, 0u128), |(sum, xor), id| {
        (sum.wrapping_add(id.as_u128()), xor ^ id.as_u128())
    })
}

/// Connects a Kafka bus and checks it is healthy.
pub async fn kafka_bus(config: KafkaConfig) -> Arc<KafkaBus> {
    let bus = KafkaBus::connect(config).await.expect("connect");
    assert_eq!(bus.health(), onex::BusHealth::Healthy, "broker answers");
    Arc::new(bus)
}

/// The tansu binary: `$TANSU_BIN`, or what `scripts/tansu.sh path` prints.
pub fn tansu_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(bin);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/tansu.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("path")
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/tansu.sh path failed (run `bash scripts/tansu.sh install`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).expect("utf8").trim())
}

/// A free loopback port.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A private Tansu broker on its own loopback port, for tests that stop
/// and restart a broker without disturbing the shared one. Memory storage:
/// a restart forgets every topic. Stopped when dropped.
pub struct Tansu {
    port: u16,
    binary: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Tansu {
    /// A broker on a free port, not started.
    pub fn new() -> Tansu {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("onex-test-tansu-{port}.log"));
        Tansu {
            port,
            binary: tansu_binary(),
            log,
            child: None,
        }
    }

    /// A broker on a free port, started.
    pub fn started() -> Tansu {
        let mut t = Tansu::new();
        t.start();
        t
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker and waits until its port answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(&self.binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env_remove("STORAGE_ENGINE")
            .env_remove("CLUSTER_ID")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let addr: SocketAddr = self.bootstrap().parse().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not answer on {addr}; see {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker (SIGKILL: nothing survives anyway with memory
    /// storage) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}
