//! Kafka bus configuration: the `KAFKA_*` environment variables, or YAML.
//!
//! Every setting has a default and a validated range. A value out of range is
//! a [`ConfigError`] that names the setting, the value given and what is
//! allowed:
//!
//! ```
//! let err = onex::KafkaConfig::from_env_pairs([("KAFKA_TIMEOUT_SECONDS", "0")]).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     r#"KAFKA_TIMEOUT_SECONDS="0" is invalid: out of range (allowed: 1..=300)"#
//! );
//! ```
//!
//! | variable | field | default | allowed |
//! |---|---|---|---|
//! | `KAFKA_BOOTSTRAP_SERVERS` | `bootstrap_servers` | `localhost:9092` | comma-separated `host:port` list |
//! | `KAFKA_ENVIRONMENT` | `environment` | `local` | 1 to 64 letters, digits, `.`, `_`, `-` (see below) |
//! | `KAFKA_GROUP` | `group` | `default` | non-empty, no control characters |
//! | `KAFKA_TIMEOUT_SECONDS` | `timeout_seconds` | `30` | `1..=300` |
//! | `KAFKA_MAX_RETRY_ATTEMPTS` | `max_retry_attempts` | `3` | `0..=10` |
//! | `KAFKA_RETRY_BACKOFF_BASE` | `retry_backoff_base` | `1.0` | `0.1..=60.0` (seconds) |
//! | `KAFKA_CIRCUIT_BREAKER_THRESHOLD` | `circuit_breaker_threshold` | `5` | `1..=100` |
//! | `KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT` | `circuit_breaker_reset_timeout` | `30.0` | `1.0..=3600.0` (seconds) |
//! | `KAFKA_CONSUMER_SLEEP_INTERVAL` | `consumer_sleep_interval` | `0.1` | `0.01..=10.0` (seconds) |
//! | `KAFKA_ACKS` | `acks` | `all` | `all`, `1`, `0` |
//! | `KAFKA_ENABLE_IDEMPOTENCE` | `enable_idempotence` | `true` | boolean |
//! | `KAFKA_CLOUDEVENTS` | `cloudevents` | `true` | boolean |
//! | `KAFKA_COMPRESSION` | `compression` | `lz4` | `none`, `gzip`, `snappy`, `lz4` |
//! | `KAFKA_AUTO_OFFSET_RESET` | `auto_offset_reset` | `latest` | `earliest`, `latest` |
//! | `KAFKA_ENABLE_AUTO_COMMIT` | `enable_auto_commit` | `true` | boolean |
//! | `KAFKA_DEAD_LETTER_TOPIC` | `dead_letter_topic` | unset (Kafka: `{environment}.dlq.v1`) | a topic name of at most 249 characters |
//! | `KAFKA_LINGER_MS` | `linger_ms` | `1` | `0..=1000` |
//! | `KAFKA_SESSION_TIMEOUT_MS` | `session_timeout_ms` | `6000` | `1000..=3600000` |
//! | `KAFKA_PUBLISH_BUFFER_CAPACITY` | `publish_buffer_capacity` | `10000` | `1..=10000000` |
//! | `KAFKA_SPOOL_DIR` | `spool_dir` | `.onex/spool` | a directory, or `off` |
//! | `KAFKA_SPOOL_CAPACITY_BYTES` | `spool_capacity_bytes` | `268435456` | `1048576..=1099511627776` |
//! | `KAFKA_MAX_POLL_INTERVAL_MS` | `max_poll_interval_ms` | `300000` | `1000..=86400000` |
//! | `KAFKA_COMMIT_INTERVAL_MS` | `commit_interval_ms` | `1000` | `10..=60000` |
//! | `KAFKA_FETCH_WAIT_MAX_MS` | `fetch_wait_max_ms` | `100` | `1..=5000` |
//! | `KAFKA_MAX_IN_FLIGHT` | `max_in_flight` | `1` | `1..=10000` |
//!
//! Booleans accept `true`/`false`, `1`/`0`, `yes`/`no` and `on`/`off`, in
//! any case. An empty variable counts as unset.
//!
//! The environment is bounded at
//! [`MAX_ENVIRONMENT_LEN`](crate::topic::MAX_ENVIRONMENT_LEN) (64)
//! characters because it prefixes every topic, `{environment}.{topic}`, and
//! Kafka allows 249 characters in all: cargo onex checks every contract's
//! topics against the rest (184 characters, gate FV-005), so a node whose
//! configuration loads never meets Kafka's limit. A longer environment
//! stops the node at start-up, before it publishes anything.

use std::{fmt, path::Path, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    circuit::CircuitBreaker,
    error::{ConfigError, ConfigFileError},
    retry::RetryPolicy,
    topic,
};

/// One setting of [`KafkaConfig`], for documentation and `.env` templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable, e.g. `KAFKA_TIMEOUT_SECONDS`.
    pub variable: &'static str,
    /// The YAML key and struct field, e.g. `timeout_seconds`.
    pub key: &'static str,
    /// The default, as it would be written in the variable (empty: unset).
    pub default: &'static str,
    /// The allowed values or range.
    pub allowed: &'static str,
    /// What the setting does.
    pub description: &'static str,
}

const fn setting(
    variable: &'static str,
    key: &'static str,
    default: &'static str,
    allowed: &'static str,
    description: &'static str,
) -> Setting {
    Setting {
        variable,
        key,
        default,
        allowed,
        description,
    }
}

const BOOTSTRAP: Setting = setting(
    "KAFKA_BOOTSTRAP_SERVERS",
    "bootstrap_servers",
    "localhost:9092",
    "a comma-separated list of host:port",
    "Brokers to connect to.",
);
const ENVIRONMENT: Setting = setting(
    "KAFKA_ENVIRONMENT",
    "environment",
    "local",
    "a name of 1 to 64 letters, digits, '.', '_' and '-'",
    "Topic namespace: topics are `{environment}.{service}.{event_type}.v1`.",
);
const GROUP: Setting = setting(
    "KAFKA_GROUP",
    "group",
    "default",
    "a non-empty name without control characters",
    "Default consumer group of subscriptions.",
);
const TIMEOUT: Setting = setting(
    "KAFKA_TIMEOUT_SECONDS",
    "timeout_seconds",
    "30",
    "1..=300",
    "Timeout of one broker operation (delivery, metadata, flush), in seconds.",
);
const MAX_RETRY: Setting = setting(
    "KAFKA_MAX_RETRY_ATTEMPTS",
    "max_retry_attempts",
    "3",
    "0..=10",
    "Retries after the first attempt, for publishing and for failing handlers.",
);
const BACKOFF: Setting = setting(
    "KAFKA_RETRY_BACKOFF_BASE",
    "retry_backoff_base",
    "1.0",
    "0.1..=60.0",
    "Base of the retry delay `base * 2^attempt * jitter(0.5..=1.5)`, in seconds.",
);
const CB_THRESHOLD: Setting = setting(
    "KAFKA_CIRCUIT_BREAKER_THRESHOLD",
    "circuit_breaker_threshold",
    "5",
    "1..=100",
    "Consecutive failures that open the circuit breaker.",
);
const CB_RESET: Setting = setting(
    "KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT",
    "circuit_breaker_reset_timeout",
    "30.0",
    "1.0..=3600.0",
    "Seconds an open breaker waits before letting a trial call through.",
);
const SLEEP: Setting = setting(
    "KAFKA_CONSUMER_SLEEP_INTERVAL",
    "consumer_sleep_interval",
    "0.1",
    "0.01..=10.0",
    "Seconds a consumer pauses after an error or an empty poll.",
);
const ACKS: Setting = setting(
    "KAFKA_ACKS",
    "acks",
    "all",
    "all, 1, 0",
    "Broker acknowledgements a delivery waits for.",
);
const IDEMPOTENCE: Setting = setting(
    "KAFKA_ENABLE_IDEMPOTENCE",
    "enable_idempotence",
    "true",
    "true, false",
    "Idempotent producer: retries never duplicate or reorder a partition.",
);
const CLOUDEVENTS: Setting = setting(
    "KAFKA_CLOUDEVENTS",
    "cloudevents",
    "true",
    "true, false",
    "CloudEvents 1.0 headers (ce_*) on every published record, beside the ONEX headers.",
);
const COMPRESSION: Setting = setting(
    "KAFKA_COMPRESSION",
    "compression",
    "lz4",
    "none, gzip, snappy, lz4",
    "Codec of the producer's record batches. lz4 costs the producer little and spares the broker most of its work per record.",
);
const OFFSET_RESET: Setting = setting(
    "KAFKA_AUTO_OFFSET_RESET",
    "auto_offset_reset",
    "latest",
    "earliest, latest",
    "Where a consumer group without committed offsets starts.",
);
const AUTO_COMMIT: Setting = setting(
    "KAFKA_ENABLE_AUTO_COMMIT",
    "enable_auto_commit",
    "true",
    "true, false",
    "true: offsets of handled messages are committed in the background; \
     false: after each handled message. Never before the handler succeeded.",
);
const DLQ: Setting = setting(
    "KAFKA_DEAD_LETTER_TOPIC",
    "dead_letter_topic",
    "dlq.v1",
    "a topic name of letters, digits, '.', '_' and '-', without the environment",
    "Topic for messages no handler could take after all retries; like every \
     topic it is prefixed with the environment: `{environment}.{this}`.",
);
const LINGER: Setting = setting(
    "KAFKA_LINGER_MS",
    "linger_ms",
    "1",
    "0..=1000",
    "Milliseconds the producer waits to batch; small keeps request/response fast.",
);
const SESSION: Setting = setting(
    "KAFKA_SESSION_TIMEOUT_MS",
    "session_timeout_ms",
    "6000",
    "1000..=3600000",
    "Consumer group session timeout; joining a group takes about half of it.",
);
const BUFFER: Setting = setting(
    "KAFKA_PUBLISH_BUFFER_CAPACITY",
    "publish_buffer_capacity",
    "10000",
    "1..=10000000",
    "Messages kept in memory while the broker is unreachable and no spool is \
     configured; beyond it publish fails.",
);
const SPOOL_DIR: Setting = setting(
    "KAFKA_SPOOL_DIR",
    "spool_dir",
    ".onex/spool",
    "a directory path, or `off`",
    "Where the Kafka bus keeps, durably, what it cannot deliver while the \
     broker is unreachable; delivered first at the next start.",
);
const SPOOL_CAPACITY: Setting = setting(
    "KAFKA_SPOOL_CAPACITY_BYTES",
    "spool_capacity_bytes",
    "268435456",
    "1048576..=1099511627776",
    "Largest size of the spool file; beyond it publish fails.",
);
const MAX_POLL: Setting = setting(
    "KAFKA_MAX_POLL_INTERVAL_MS",
    "max_poll_interval_ms",
    "300000",
    "1000..=86400000",
    "A consumer that does not poll for this long leaves its group; the bus \
     keeps polling while handlers run and retry.",
);
const FETCH_WAIT: Setting = setting(
    "KAFKA_FETCH_WAIT_MAX_MS",
    "fetch_wait_max_ms",
    "100",
    "1..=5000",
    "Longest time a broker may hold a consumer's fetch while no record is \
     ready; a broker that answers only when it runs out (Tansu) adds up to \
     this much latency per message.",
);
const COMMIT_INTERVAL: Setting = setting(
    "KAFKA_COMMIT_INTERVAL_MS",
    "commit_interval_ms",
    "1000",
    "10..=60000",
    "Longest time the offset of a handled message waits to be committed: \
     bounds what a crash replays.",
);

const MAX_IN_FLIGHT: Setting = setting(
    "KAFKA_MAX_IN_FLIGHT",
    "max_in_flight",
    "1",
    "1..=10000",
    "Most messages one subscriber handles at once: messages of one key one \
     after the other, in order; offsets committed in order; 1 handles one \
     message at a time.",
);

/// Every setting of [`KafkaConfig`], in declaration order.
pub const SETTINGS: &[Setting] = &[
    BOOTSTRAP,
    ENVIRONMENT,
    GROUP,
    TIMEOUT,
    MAX_RETRY,
    BACKOFF,
    CB_THRESHOLD,
    CB_RESET,
    SLEEP,
    ACKS,
    IDEMPOTENCE,
    CLOUDEVENTS,
    COMPRESSION,
    OFFSET_RESET,
    AUTO_COMMIT,
    DLQ,
    LINGER,
    SESSION,
    BUFFER,
    SPOOL_DIR,
    SPOOL_CAPACITY,
    MAX_POLL,
    COMMIT_INTERVAL,
    FETCH_WAIT,
    MAX_IN_FLIGHT,
];

/// Broker acknowledgements a delivery waits for (`KAFKA_ACKS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Acks {
    /// `all`: every in-sync replica (required for idempotence).
    #[default]
    All,
    /// `1`: the partition leader only.
    Leader,
    /// `0`: no acknowledgement.
    None,
}

impl Acks {
    /// The value as Kafka spells it: `all`, `1` or `0`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        }
    }
}

impl FromStr for Acks {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim() {
            "all" | "-1" => Ok(Acks::All),
            "1" => Ok(Acks::Leader),
            "0" => Ok(Acks::None),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Acks {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Acks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `acks: 1` is an integer in YAML, `acks: all` a string.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            Raw::Str(s) => s,
        };
        text.parse().map_err(|()| {
            serde::de::Error::custom(format!("invalid acks `{text}` (allowed: {})", ACKS.allowed))
        })
    }
}

/// The codec of the producer's record batches (`KAFKA_COMPRESSION`).
///
/// A compressed batch is one opaque value to the broker: it stores and
/// serves it without reading each record and its headers, which is most
/// of a broker's work per small event (on Tansu, a tenth of the CPU for
/// the same records with lz4). Consumers decompress transparently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip: small, slow.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4: fast, the default.
    #[default]
    Lz4,
}

impl Compression {
    /// The value as librdkafka's `compression.type` spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
        }
    }
}

impl FromStr for Compression {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim() {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a consumer group without committed offsets starts
/// (`KAFKA_AUTO_OFFSET_RESET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoOffsetReset {
    /// Start at the oldest retained message.
    Earliest,
    /// Start with messages published after joining.
    #[default]
    Latest,
}

impl AutoOffsetReset {
    /// The value as Kafka spells it: `earliest` or `latest`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AutoOffsetReset::Earliest => "earliest",
            AutoOffsetReset::Latest => "latest",
        }
    }
}

impl FromStr for AutoOffsetReset {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim() {
            "earliest" => Ok(AutoOffsetReset::Earliest),
            "latest" => Ok(AutoOffsetReset::Latest),
            _ => Err(()),
        }
    }
}

impl fmt::Display for AutoOffsetReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Configuration of the Kafka bus.
///
/// Build it with [`KafkaConfig::default`], [`KafkaConfig::from_env`],
/// [`KafkaConfig::from_env_pairs`] (tests), or
/// [`KafkaConfig::from_yaml_str`] / [`KafkaConfig::from_yaml_file`] (keys are
/// the field names; unknown keys are errors). The constructors validate;
/// after changing fields by hand, call [`KafkaConfig::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Brokers, comma-separated `host:port` (`KAFKA_BOOTSTRAP_SERVERS`).
    pub bootstrap_servers: String,
    /// Whether `bootstrap_servers` was given explicitly (by the variable or
    /// the YAML key) rather than defaulted. Lets a caller choose the
    /// in-memory bus when no broker was configured.
    #[serde(skip)]
    pub bootstrap_configured: bool,
    /// Topic namespace (`KAFKA_ENVIRONMENT`).
    pub environment: String,
    /// Default consumer group (`KAFKA_GROUP`).
    pub group: String,
    /// Timeout of one broker operation, seconds (`KAFKA_TIMEOUT_SECONDS`).
    pub timeout_seconds: u64,
    /// Retries after the first attempt (`KAFKA_MAX_RETRY_ATTEMPTS`).
    pub max_retry_attempts: u32,
    /// Base retry delay, seconds (`KAFKA_RETRY_BACKOFF_BASE`).
    pub retry_backoff_base: f64,
    /// Failures that open the breaker (`KAFKA_CIRCUIT_BREAKER_THRESHOLD`).
    pub circuit_breaker_threshold: u32,
    /// Seconds before an open breaker allows a trial
    /// (`KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT`).
    pub circuit_breaker_reset_timeout: f64,
    /// Seconds a consumer pauses after an error or empty poll
    /// (`KAFKA_CONSUMER_SLEEP_INTERVAL`).
    pub consumer_sleep_interval: f64,
    /// Acknowledgements a delivery waits for (`KAFKA_ACKS`).
    pub acks: Acks,
    /// Idempotent producer (`KAFKA_ENABLE_IDEMPOTENCE`).
    pub enable_idempotence: bool,
    /// CloudEvents headers on every published record (`KAFKA_CLOUDEVENTS`);
    /// see [`crate::cloudevents`].
    pub cloudevents: bool,
    /// Codec of the producer's record batches (`KAFKA_COMPRESSION`).
    pub compression: Compression,
    /// Start of a group without offsets (`KAFKA_AUTO_OFFSET_RESET`).
    pub auto_offset_reset: AutoOffsetReset,
    /// How handled offsets are committed (`KAFKA_ENABLE_AUTO_COMMIT`).
    ///
    /// Consumers commit only what a handler finished, whatever this says
    /// (at-least-once). `true`: the offset of each handled message is
    /// stored after its handler succeeded and the client commits stored
    /// offsets in the background; `false`: the bus commits explicitly after
    /// each handled message. `false` costs a broker round trip per message
    /// and narrows the window of redelivery after a crash.
    pub enable_auto_commit: bool,
    /// Topic for dead letters, without the environment
    /// (`KAFKA_DEAD_LETTER_TOPIC`, default `dlq.v1`). Both buses publish
    /// dead letters on [`KafkaConfig::qualified_dead_letter_topic`],
    /// `{environment}.{dead_letter_topic}`.
    pub dead_letter_topic: String,
    /// Producer batching delay, milliseconds (`KAFKA_LINGER_MS`).
    pub linger_ms: u64,
    /// Consumer group session timeout, milliseconds
    /// (`KAFKA_SESSION_TIMEOUT_MS`).
    pub session_timeout_ms: u64,
    /// Messages kept in memory while the broker is unreachable and there
    /// is no spool (`KAFKA_PUBLISH_BUFFER_CAPACITY`).
    pub publish_buffer_capacity: usize,
    /// Directory of the durable spool (`KAFKA_SPOOL_DIR`, default
    /// `.onex/spool`; `off` turns it off): see [`KafkaConfig::spool_path`].
    pub spool_dir: String,
    /// Largest size of the spool file, bytes (`KAFKA_SPOOL_CAPACITY_BYTES`).
    pub spool_capacity_bytes: u64,
    /// Longest pause between two polls before the group evicts a consumer,
    /// milliseconds (`KAFKA_MAX_POLL_INTERVAL_MS`).
    pub max_poll_interval_ms: u64,
    /// Longest delay before a handled message's offset is committed,
    /// milliseconds (`KAFKA_COMMIT_INTERVAL_MS`).
    pub commit_interval_ms: u64,
    /// Longest time a broker may hold a fetch with nothing to return,
    /// milliseconds (`KAFKA_FETCH_WAIT_MAX_MS`; librdkafka's
    /// `fetch.wait.max.ms`, 500 there).
    pub fetch_wait_max_ms: u64,
    /// Most messages one subscriber handles at once
    /// (`KAFKA_MAX_IN_FLIGHT`): messages of one key one after the other,
    /// in order, messages of different keys side by side; a message's
    /// offset is committed only once every message before it in its
    /// partition is done. `1`, the default, handles one at a time.
    pub max_in_flight: usize,
    /// The name of the spool file, `{environment}.{spool_name}.spool`: a
    /// node sets its service name. Not a variable; `None` uses the
    /// consumer group.
    #[serde(skip)]
    pub spool_name: Option<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "localhost:9092".to_owned(),
            bootstrap_configured: false,
            environment: "local".to_owned(),
            group: "default".to_owned(),
            timeout_seconds: 30,
            max_retry_attempts: 3,
            retry_backoff_base: 1.0,
            circuit_breaker_threshold: 5,
            circuit_breaker_reset_timeout: 30.0,
            consumer_sleep_interval: 0.1,
            acks: Acks::All,
            enable_idempotence: true,
            cloudevents: true,
            compression: Compression::Lz4,
            auto_offset_reset: AutoOffsetReset::Latest,
            enable_auto_commit: true,
            dead_letter_topic: "dlq.v1".to_owned(),
            linger_ms: 1,
            session_timeout_ms: 6000,
            publish_buffer_capacity: 10_000,
            spool_dir: ".onex/spool".to_owned(),
            spool_capacity_bytes: 256 * 1024 * 1024,
            max_poll_interval_ms: 300_000,
            commit_interval_ms: 1000,
            fetch_wait_max_ms: 100,
            max_in_flight: 1,
            spool_name: None,
        }
    }
}

/// How settings are named in errors: by variable or by YAML key.
#[derive(Clone, Copy)]
enum Naming {
    Env,
    Yaml,
}

impl Naming {
    fn name(self, s: &Setting) -> String {
        match self {
            Naming::Env => s.variable.to_owned(),
            Naming::Yaml => s.key.to_owned(),
        }
    }
}

fn invalid(naming: Naming, s: &Setting, value: impl Into<String>, reason: &str) -> ConfigError {
    ConfigError {
        name: naming.name(s),
        value: value.into(),
        reason: reason.to_owned(),
        allowed: s.allowed.to_owned(),
    }
}

fn check_range<T: PartialOrd + fmt::Display>(
    naming: Naming,
    s: &Setting,
    value: T,
    lo: T,
    hi: T,
) -> Result<(), ConfigError> {
    // `!(lo <= v && v <= hi)` also rejects NaN.
    if lo <= value && value <= hi {
        Ok(())
    } else {
        Err(invalid(naming, s, value.to_string(), "out of range"))
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn check_topic_name(naming: Naming, s: &Setting, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(invalid(naming, s, value, "empty"));
    }
    if !value.chars().all(is_name_char) {
        return Err(invalid(
            naming,
            s,
            value,
            "contains a character not allowed",
        ));
    }
    Ok(())
}

fn check_bootstrap(naming: Naming, value: &str) -> Result<(), ConfigError> {
    let s = &BOOTSTRAP;
    if value.trim().is_empty() {
        return Err(invalid(naming, s, value, "empty"));
    }
    for entry in value.split(',') {
        let entry = entry.trim();
        let Some((host, port)) = entry.rsplit_once(':') else {
            return Err(invalid(naming, s, value, &format!("`{entry}` has no port")));
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                naming,
                s,
                value,
                &format!("`{entry}` has no valid host"),
            ));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => {
                return Err(invalid(
                    naming,
                    s,
                    value,
                    &format!("`{entry}` has no valid port (1..=65535)"),
                ));
            }
        }
    }
    Ok(())
}

fn parse_bool(naming: Naming, s: &Setting, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(naming, s, raw, "not a boolean")),
    }
}

fn parse_num<T: FromStr>(
    naming: Naming,
    s: &Setting,
    raw: &str,
    what: &str,
) -> Result<T, ConfigError> {
    raw.trim()
        .parse()
        .map_err(|_| invalid(naming, s, raw, &format!("not {what}")))
}

impl KafkaConfig {
    /// The configuration from the process environment (`KAFKA_*`
    /// variables), defaults for those unset, validated.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_over(KafkaConfig::default())
    }

    /// The configuration from a variable lookup, so that tests need not
    /// touch the process environment. Unset or empty variables take their
    /// defaults.
    pub fn from_env_map(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_env_map_over(KafkaConfig::default(), lookup)
    }

    /// The configuration from the process environment over `base`: the
    /// variables that are set override `base`'s values. A node passes its
    /// contract's settings (its dead-letter topic, say) as `base`.
    pub fn from_env_over(base: KafkaConfig) -> Result<Self, ConfigError> {
        Self::from_env_map_over(base, |name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        })
    }

    /// [`KafkaConfig::from_env_map`] over `base` rather than the defaults.
    pub fn from_env_map_over(
        base: KafkaConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let n = Naming::Env;
        let get = |s: &Setting| lookup(s.variable).filter(|v| !v.trim().is_empty());
        let mut c = base;
        if let Some(v) = get(&BOOTSTRAP) {
            c.bootstrap_servers = v.trim().to_owned();
            c.bootstrap_configured = true;
        }
        if let Some(v) = get(&ENVIRONMENT) {
            c.environment = v.trim().to_owned();
        }
        if let Some(v) = get(&GROUP) {
            c.group = v.trim().to_owned();
        }
        if let Some(v) = get(&TIMEOUT) {
            c.timeout_seconds = parse_num(n, &TIMEOUT, &v, "an integer")?;
        }
        if let Some(v) = get(&MAX_RETRY) {
            c.max_retry_attempts = parse_num(n, &MAX_RETRY, &v, "an integer")?;
        }
        if let Some(v) = get(&BACKOFF) {
            c.retry_backoff_base = parse_num(n, &BACKOFF, &v, "a number")?;
        }
        if let Some(v) = get(&CB_THRESHOLD) {
            c.circuit_breaker_threshold = parse_num(n, &CB_THRESHOLD, &v, "an integer")?;
        }
        if let Some(v) = get(&CB_RESET) {
            c.circuit_breaker_reset_timeout = parse_num(n, &CB_RESET, &v, "a number")?;
        }
        if let Some(v) = get(&SLEEP) {
            c.consumer_sleep_interval = parse_num(n, &SLEEP, &v, "a number")?;
        }
        if let Some(v) = get(&ACKS) {
            c.acks = v
                .parse()
                .map_err(|()| invalid(n, &ACKS, v.as_str(), "not a known value"))?;
        }
        if let Some(v) = get(&IDEMPOTENCE) {
            c.enable_idempotence = parse_bool(n, &IDEMPOTENCE, &v)?;
        }
        if let Some(v) = get(&CLOUDEVENTS) {
            c.cloudevents = parse_bool(n, &CLOUDEVENTS, &v)?;
        }
        if let Some(v) = get(&COMPRESSION) {
            c.compression = v
                .parse()
                .map_err(|()| invalid(n, &COMPRESSION, v.as_str(), "not a known value"))?;
        }
        if let Some(v) = get(&OFFSET_RESET) {
            c.auto_offset_reset = v
                .parse()
                .map_err(|()| invalid(n, &OFFSET_RESET, v.as_str(), "not a known value"))?;
        }
        if let Some(v) = get(&AUTO_COMMIT) {
            c.enable_auto_commit = parse_bool(n, &AUTO_COMMIT, &v)?;
        }
        if let Some(v) = get(&DLQ) {
            c.dead_letter_topic = v.trim().to_owned();
        }
        if let Some(v) = get(&LINGER) {
            c.linger_ms = parse_num(n, &LINGER, &v, "an integer")?;
        }
        if let Some(v) = get(&SESSION) {
            c.session_timeout_ms = parse_num(n, &SESSION, &v, "an integer")?;
        }
        if let Some(v) = get(&BUFFER) {
            c.publish_buffer_capacity = parse_num(n, &BUFFER, &v, "an integer")?;
        }
        if let Some(v) = get(&SPOOL_DIR) {
            c.spool_dir = v.trim().to_owned();
        }
        if let Some(v) = get(&SPOOL_CAPACITY) {
            c.spool_capacity_bytes = parse_num(n, &SPOOL_CAPACITY, &v, "an integer")?;
        }
        if let Some(v) = get(&MAX_POLL) {
            c.max_poll_interval_ms = parse_num(n, &MAX_POLL, &v, "an integer")?;
        }
        if let Some(v) = get(&COMMIT_INTERVAL) {
            c.commit_interval_ms = parse_num(n, &COMMIT_INTERVAL, &v, "an integer")?;
        }
        if let Some(v) = get(&MAX_IN_FLIGHT) {
            c.max_in_flight = parse_num(n, &MAX_IN_FLIGHT, &v, "an integer")?;
        }
        if let Some(v) = get(&FETCH_WAIT) {
            c.fetch_wait_max_ms = parse_num(n, &FETCH_WAIT, &v, "an integer")?;
        }
        c.check(n)?;
        Ok(c)
    }

    /// The configuration from (variable, value) pairs, e.g.
    /// `[("KAFKA_ACKS", "1")]`; see [`KafkaConfig::from_env_map`].
    pub fn from_env_pairs<K, V>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let map: std::collections::HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        Self::from_env_map(|name| map.get(name).cloned())
    }

    /// The configuration from YAML whose keys are the field names, e.g.
    /// `timeout_seconds: 10`. Missing keys take their defaults; unknown keys
    /// are errors; values are validated (errors name the key).
    pub fn from_yaml_str(yaml: &str) -> Result<Self, ConfigFileError> {
        Self::parse_yaml(yaml, "Kafka configuration")
    }

    /// [`KafkaConfig::from_yaml_str`] on a file's content.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self, ConfigFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_yaml(&text, &path.display().to_string())
    }

    fn parse_yaml(yaml: &str, origin: &str) -> Result<Self, ConfigFileError> {
        let parse_error = |e: serde_yaml::Error| {
            let location = e.location();
            ConfigFileError::Parse {
                origin: origin.to_owned(),
                line: location.as_ref().map(|l| l.line()),
                column: location.as_ref().map(|l| l.column()),
                message: e.to_string(),
            }
        };
        // An empty document is an empty configuration: all defaults.
        if yaml.trim().is_empty() {
            return Ok(KafkaConfig::default());
        }
        let mut config: KafkaConfig = serde_yaml::from_str(yaml).map_err(parse_error)?;
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).map_err(parse_error)?;
        config.bootstrap_configured = value.get(BOOTSTRAP.key).is_some_and(|v| !v.is_null());
        config
            .check(Naming::Yaml)
            .map_err(|source| ConfigFileError::Invalid {
                origin: origin.to_owned(),
                source,
            })?;
        Ok(config)
    }

    /// Checks every value against its allowed range; the error names the
    /// setting by its `KAFKA_*` variable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(Naming::Env)
    }

    fn check(&self, n: Naming) -> Result<(), ConfigError> {
        check_bootstrap(n, &self.bootstrap_servers)?;
        check_topic_name(n, &ENVIRONMENT, &self.environment)?;
        let length = self.environment.chars().count();
        if length > topic::MAX_ENVIRONMENT_LEN {
            return Err(invalid(
                n,
                &ENVIRONMENT,
                &*self.environment,
                &format!(
                    "{length} characters, longer than {}: it prefixes every topic, and Kafka allows {} characters per topic",
                    topic::MAX_ENVIRONMENT_LEN,
                    topic::MAX_TOPIC_LEN
                ),
            ));
        }
        if self.group.is_empty() {
            return Err(invalid(n, &GROUP, &*self.group, "empty"));
        }
        if self.group.chars().any(char::is_control) {
            return Err(invalid(
                n,
                &GROUP,
                &*self.group,
                "contains a control character",
            ));
        }
        check_range(n, &TIMEOUT, self.timeout_seconds, 1, 300)?;
        check_range(n, &MAX_RETRY, self.max_retry_attempts, 0, 10)?;
        check_range(n, &BACKOFF, self.retry_backoff_base, 0.1, 60.0)?;
        check_range(n, &CB_THRESHOLD, self.circuit_breaker_threshold, 1, 100)?;
        check_range(
            n,
            &CB_RESET,
            self.circuit_breaker_reset_timeout,
            1.0,
            3600.0,
        )?;
        check_range(n, &SLEEP, self.consumer_sleep_interval, 0.01, 10.0)?;
        check_topic_name(n, &DLQ, &self.dead_letter_topic)?;
        if let Err(e) = topic::check(&self.qualified_dead_letter_topic()) {
            return Err(invalid(
                n,
                &DLQ,
                &*self.dead_letter_topic,
                &format!(
                    "{} characters with the environment, longer than Kafka's limit of {}",
                    e.length,
                    topic::MAX_TOPIC_LEN
                ),
            ));
        }
        check_range(n, &LINGER, self.linger_ms, 0, 1000)?;
        check_range(n, &SESSION, self.session_timeout_ms, 1000, 3_600_000)?;
        check_range(n, &BUFFER, self.publish_buffer_capacity, 1, 10_000_000)?;
        if self.spool_dir.trim().is_empty() {
            return Err(invalid(n, &SPOOL_DIR, &*self.spool_dir, "empty"));
        }
        check_range(
            n,
            &SPOOL_CAPACITY,
            self.spool_capacity_bytes,
            1 << 20,
            1 << 40,
        )?;
        check_range(n, &MAX_POLL, self.max_poll_interval_ms, 1_000, 86_400_000)?;
        check_range(n, &COMMIT_INTERVAL, self.commit_interval_ms, 10, 60_000)?;
        check_range(n, &FETCH_WAIT, self.fetch_wait_max_ms, 1, 5000)?;
        check_range(n, &MAX_IN_FLIGHT, self.max_in_flight, 1, 10_000)?;
        Ok(())
    }

    /// The dead-letter topic both buses publish on:
    /// `{environment}.{dead_letter_topic}`.
    ///
    /// ```
    /// let config = onex::KafkaConfig::from_env_pairs([("KAFKA_ENVIRONMENT", "dev")])?;
    /// assert_eq!(config.qualified_dead_letter_topic(), "dev.dlq.v1");
    /// # Ok::<(), onex::error::ConfigError>(())
    /// ```
    pub fn qualified_dead_letter_topic(&self) -> String {
        topic::qualified(&self.environment, &self.dead_letter_topic)
    }

    /// The spool directory, or `None` when the spool is turned off
    /// (`KAFKA_SPOOL_DIR=off`).
    pub fn spool_path(&self) -> Option<&Path> {
        let dir = self.spool_dir.trim();
        (!dir.eq_ignore_ascii_case("off")).then(|| Path::new(dir))
    }

    /// The spool file's name: the environment and
    /// [`KafkaConfig::spool_name`] (or else the consumer group), so that
    /// nodes of different environments never share a spool.
    pub fn spool_file_name(&self) -> String {
        let name = self.spool_name.as_deref().unwrap_or(&self.group);
        format!("{}.{name}", self.environment)
    }

    /// [`KafkaConfig::commit_interval_ms`] as a duration.
    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms)
    }

    /// The brokers as a list, whitespace trimmed.
    pub fn bootstrap_list(&self) -> Vec<&str> {
        self.bootstrap_servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// [`KafkaConfig::timeout_seconds`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    /// [`KafkaConfig::consumer_sleep_interval`] as a duration.
    pub fn consumer_sleep(&self) -> Duration {
        secs(self.consumer_sleep_interval)
    }

    /// [`KafkaConfig::circuit_breaker_reset_timeout`] as a duration.
    pub fn circuit_breaker_reset(&self) -> Duration {
        secs(self.circuit_breaker_reset_timeout)
    }

    /// The retry policy of these settings: `max_retry_attempts` retries,
    /// `retry_backoff_base` base delay.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new(self.max_retry_attempts, secs(self.retry_backoff_base))
    }

    /// A fresh, closed circuit breaker with these settings' threshold and
    /// reset timeout.
    pub fn circuit_breaker(&self) -> CircuitBreaker {
        CircuitBreaker::new(self.circuit_breaker_threshold, self.circuit_breaker_reset())
    }

    /// Whether the brokers were configured explicitly (see
    /// [`KafkaConfig::bootstrap_configured`](KafkaConfig#structfield.bootstrap_configured)).
    pub fn bootstrap_configured(&self) -> bool {
        self.bootstrap_configured
    }
}

/// Seconds as a duration; values that do not fit (negative, NaN) become 0.
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_defaults_match_default() {
        let d = KafkaConfig::default();
        let from_table = KafkaConfig::from_env_pairs(
            SETTINGS
                .iter()
                .filter(|s| !s.default.is_empty())
                .map(|s| (s.variable, s.default)),
        )
        .expect("defaults are valid");
        assert_eq!(
            KafkaConfig {
                bootstrap_configured: false,
                ..from_table
            },
            d
        );
        assert!(d.validate().is_ok());
    }

    #[test]
    fn nan_is_out_of_range() {
        let c = KafkaConfig {
            retry_backoff_base: f64::NAN,
            ..KafkaConfig::default()
        };
        assert_eq!(
            c.validate().map_err(|e| e.name),
            Err("KAFKA_RETRY_BACKOFF_BASE".to_owned())
        );
    }

    #[test]
    fn bootstrap_list_splits_and_trims() {
        let c =
            KafkaConfig::from_env_pairs([("KAFKA_BOOTSTRAP_SERVERS", "a:1, b:2")]).expect("valid");
        assert_eq!(c.bootstrap_list(), vec!["a:1", "b:2"]);
        assert!(c.bootstrap_configured());
    }
}
