//! `KafkaConfig`: defaults, environment variables, YAML, validation errors.

use std::time::Duration;

use onex::{
    KafkaConfig,
    circuit::CircuitState,
    config::{Acks, AutoOffsetReset, Compression, SETTINGS},
    error::{ConfigError, ConfigFileError},
};

fn env(pairs: &[(&str, &str)]) -> Result<KafkaConfig, ConfigError> {
    KafkaConfig::from_env_pairs(pairs.iter().copied())
}

fn env_err(name: &str, value: &str) -> String {
    match env(&[(name, value)]) {
        Ok(c) => panic!("{name}={value} was accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_default_matches_the_seed_table() {
    let c = KafkaConfig::default();
    assert_eq!(c.bootstrap_servers, "localhost:9092");
    assert!(!c.bootstrap_configured);
    assert_eq!(c.environment, "local");
    assert_eq!(c.group, "default");
    assert_eq!(c.timeout_seconds, 30);
    assert_eq!(c.max_retry_attempts, 3);
    assert_eq!(c.retry_backoff_base, 1.0);
    assert_eq!(c.circuit_breaker_threshold, 5);
    assert_eq!(c.circuit_breaker_reset_timeout, 30.0);
    assert_eq!(c.consumer_sleep_interval, 0.1);
    assert_eq!(c.acks, Acks::All);
    assert!(c.enable_idempotence);
    assert_eq!(c.auto_offset_reset, AutoOffsetReset::Latest);
    assert!(c.enable_auto_commit);
    assert_eq!(c.dead_letter_topic, "dlq.v1");
    assert_eq!(c.qualified_dead_letter_topic(), "local.dlq.v1");
    assert_eq!(c.linger_ms, 1);
    assert_eq!(c.session_timeout_ms, 6000);
    assert_eq!(c.publish_buffer_capacity, 10_000);
    assert_eq!(c.spool_path(), Some(std::path::Path::new(".onex/spool")));
    assert_eq!(c.spool_capacity_bytes, 256 * 1024 * 1024);
    assert_eq!(c.max_poll_interval_ms, 300_000);
    assert_eq!(c.commit_interval_ms, 1000);
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn an_empty_environment_gives_the_defaults() {
    let c = env(&[]).unwrap();
    assert_eq!(c, KafkaConfig::default());
    // Empty variables count as unset.
    let c = env(&[
        ("KAFKA_TIMEOUT_SECONDS", ""),
        ("KAFKA_BOOTSTRAP_SERVERS", " "),
    ])
    .unwrap();
    assert_eq!(c, KafkaConfig::default());
}

#[test]
fn every_variable_is_read() {
    let c = env(&[
        ("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9093"),
        ("KAFKA_ENVIRONMENT", "prod"),
        ("KAFKA_GROUP", "writers"),
        ("KAFKA_TIMEOUT_SECONDS", "300"),
        ("KAFKA_MAX_RETRY_ATTEMPTS", "0"),
        ("KAFKA_RETRY_BACKOFF_BASE", "0.1"),
        ("KAFKA_CIRCUIT_BREAKER_THRESHOLD", "100"),
        ("KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT", "3600"),
        ("KAFKA_CONSUMER_SLEEP_INTERVAL", "0.01"),
        ("KAFKA_ACKS", "1"),
        ("KAFKA_ENABLE_IDEMPOTENCE", "false"),
        ("KAFKA_CLOUDEVENTS", "false"),
        ("KAFKA_COMPRESSION", "gzip"),
        ("KAFKA_AUTO_OFFSET_RESET", "earliest"),
        ("KAFKA_ENABLE_AUTO_COMMIT", "no"),
        ("KAFKA_DEAD_LETTER_TOPIC", "prod.dead_letters.v1"),
        ("KAFKA_LINGER_MS", "0"),
        ("KAFKA_SESSION_TIMEOUT_MS", "45000"),
        ("KAFKA_PUBLISH_BUFFER_CAPACITY", "5"),
        ("UNRELATED", "ignored"),
    ])
    .unwrap();
    assert_eq!(c.bootstrap_servers, "kafka-1:9092,kafka-2:9093");
    assert_eq!(c.bootstrap_list(), ["kafka-1:9092", "kafka-2:9093"]);
    assert!(c.bootstrap_configured());
    assert_eq!(c.environment, "prod");
    assert_eq!(c.group, "writers");
    assert_eq!(c.timeout_seconds, 300);
    assert_eq!(c.max_retry_attempts, 0);
    assert_eq!(c.retry_backoff_base, 0.1);
    assert_eq!(c.circuit_breaker_threshold, 100);
    assert_eq!(c.circuit_breaker_reset_timeout, 3600.0);
    assert_eq!(c.consumer_sleep_interval, 0.01);
    assert_eq!(c.acks, Acks::Leader);
    assert_eq!(c.compression, Compression::Gzip);
    assert!(!c.enable_idempotence);
    assert!(!c.cloudevents);
    assert_eq!(c.auto_offset_reset, AutoOffsetReset::Earliest);
    assert!(!c.enable_auto_commit);
    assert_eq!(c.dead_letter_topic, "prod.dead_letters.v1");
    assert_eq!(c.linger_ms, 0);
    assert_eq!(c.session_timeout_ms, 45_000);
    assert_eq!(c.publish_buffer_capacity, 5);
}

#[test]
fn acks_values() {
    for (raw, acks, text) in [
        ("all", Acks::All, "all"),
        ("-1", Acks::All, "all"),
        ("1", Acks::Leader, "1"),
        ("0", Acks::None, "0"),
    ] {
        let c = env(&[("KAFKA_ACKS", raw)]).unwrap();
        assert_eq!(c.acks, acks);
        assert_eq!(c.acks.as_str(), text);
    }
    assert_eq!(
        env_err("KAFKA_ACKS", "2"),
        r#"KAFKA_ACKS="2" is invalid: not a known value (allowed: all, 1, 0)"#
    );
    // zstd is not built into the bundled librdkafka: refused here rather
    // than when the producer starts.
    assert_eq!(
        env_err("KAFKA_COMPRESSION", "zstd"),
        r#"KAFKA_COMPRESSION="zstd" is invalid: not a known value (allowed: none, gzip, snappy, lz4)"#
    );
}

#[test]
fn booleans_accept_the_usual_spellings() {
    for (raw, value) in [
        ("true", true),
        ("TRUE", true),
        ("1", true),
        ("yes", true),
        ("on", true),
        ("false", false),
        ("False", false),
        ("0", false),
        ("no", false),
        ("off", false),
    ] {
        let c = env(&[("KAFKA_ENABLE_IDEMPOTENCE", raw)]).unwrap();
        assert_eq!(c.enable_idempotence, value, "{raw}");
        let c = env(&[("KAFKA_ENABLE_AUTO_COMMIT", raw)]).unwrap();
        assert_eq!(c.enable_auto_commit, value, "{raw}");
    }
    assert_eq!(
        env_err("KAFKA_ENABLE_IDEMPOTENCE", "maybe"),
        r#"KAFKA_ENABLE_IDEMPOTENCE="maybe" is invalid: not a boolean (allowed: true, false)"#
    );
}

#[test]
fn integer_ranges_name_the_variable_value_and_range() {
    let cases = [
        ("KAFKA_TIMEOUT_SECONDS", "0", "1..=300"),
        ("KAFKA_TIMEOUT_SECONDS", "301", "1..=300"),
        ("KAFKA_MAX_RETRY_ATTEMPTS", "11", "0..=10"),
        ("KAFKA_CIRCUIT_BREAKER_THRESHOLD", "0", "1..=100"),
        ("KAFKA_CIRCUIT_BREAKER_THRESHOLD", "101", "1..=100"),
        ("KAFKA_LINGER_MS", "1001", "0..=1000"),
        ("KAFKA_SESSION_TIMEOUT_MS", "999", "1000..=3600000"),
        ("KAFKA_PUBLISH_BUFFER_CAPACITY", "0", "1..=10000000"),
    ];
    for (name, value, range) in cases {
        assert_eq!(
            env_err(name, value),
            format!(r#"{name}="{value}" is invalid: out of range (allowed: {range})"#)
        );
    }
    // Bounds are inclusive.
    env(&[
        ("KAFKA_TIMEOUT_SECONDS", "1"),
        ("KAFKA_MAX_RETRY_ATTEMPTS", "10"),
        ("KAFKA_CIRCUIT_BREAKER_THRESHOLD", "1"),
        ("KAFKA_LINGER_MS", "1000"),
        ("KAFKA_SESSION_TIMEOUT_MS", "3600000"),
        ("KAFKA_PUBLISH_BUFFER_CAPACITY", "10000000"),
    ])
    .unwrap();
}

#[test]
fn float_ranges_name_the_variable_value_and_range() {
    assert_eq!(
        env_err("KAFKA_RETRY_BACKOFF_BASE", "0.05"),
        r#"KAFKA_RETRY_BACKOFF_BASE="0.05" is invalid: out of range (allowed: 0.1..=60.0)"#
    );
    assert_eq!(
        env_err("KAFKA_RETRY_BACKOFF_BASE", "61"),
        r#"KAFKA_RETRY_BACKOFF_BASE="61" is invalid: out of range (allowed: 0.1..=60.0)"#
    );
    assert_eq!(
        env_err("KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT", "0.5"),
        r#"KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT="0.5" is invalid: out of range (allowed: 1.0..=3600.0)"#
    );
    assert_eq!(
        env_err("KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT", "3600.5"),
        r#"KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT="3600.5" is invalid: out of range (allowed: 1.0..=3600.0)"#
    );
    assert_eq!(
        env_err("KAFKA_CONSUMER_SLEEP_INTERVAL", "0.001"),
        r#"KAFKA_CONSUMER_SLEEP_INTERVAL="0.001" is invalid: out of range (allowed: 0.01..=10.0)"#
    );
    assert_eq!(
        env_err("KAFKA_CONSUMER_SLEEP_INTERVAL", "10.5"),
        r#"KAFKA_CONSUMER_SLEEP_INTERVAL="10.5" is invalid: out of range (allowed: 0.01..=10.0)"#
    );
    assert_eq!(
        env_err("KAFKA_RETRY_BACKOFF_BASE", "NaN"),
        r#"KAFKA_RETRY_BACKOFF_BASE="NaN" is invalid: out of range (allowed: 0.1..=60.0)"#
    );
}

#[test]
fn values_that_do_not_parse_are_named() {
    assert_eq!(
        env_err("KAFKA_TIMEOUT_SECONDS", "thirty"),
        r#"KAFKA_TIMEOUT_SECONDS="thirty" is invalid: not an integer (allowed: 1..=300)"#
    );
    assert_eq!(
        env_err("KAFKA_MAX_RETRY_ATTEMPTS", "-1"),
        r#"KAFKA_MAX_RETRY_ATTEMPTS="-1" is invalid: not an integer (allowed: 0..=10)"#
    );
    assert_eq!(
        env_err("KAFKA_RETRY_BACKOFF_BASE", "1s"),
        r#"KAFKA_RETRY_BACKOFF_BASE="1s" is invalid: not a number (allowed: 0.1..=60.0)"#
    );
    assert_eq!(
        env_err("KAFKA_AUTO_OFFSET_RESET", "none"),
        r#"KAFKA_AUTO_OFFSET_RESET="none" is invalid: not a known value (allowed: earliest, latest)"#
    );
}

#[test]
fn names_are_checked() {
    assert_eq!(
        env_err("KAFKA_BOOTSTRAP_SERVERS", "localhost"),
        r#"KAFKA_BOOTSTRAP_SERVERS="localhost" is invalid: `localhost` has no port (allowed: a comma-separated list of host:port)"#
    );
    assert_eq!(
        env_err("KAFKA_BOOTSTRAP_SERVERS", "a:9092,b:http"),
        r#"KAFKA_BOOTSTRAP_SERVERS="a:9092,b:http" is invalid: `b:http` has no valid port (1..=65535) (allowed: a comma-separated list of host:port)"#
    );
    assert_eq!(
        env_err("KAFKA_BOOTSTRAP_SERVERS", ":9092"),
        r#"KAFKA_BOOTSTRAP_SERVERS=":9092" is invalid: `:9092` has no valid host (allowed: a comma-separated list of host:port)"#
    );
    assert_eq!(
        env_err("KAFKA_ENVIRONMENT", "my env"),
        r#"KAFKA_ENVIRONMENT="my env" is invalid: contains a character not allowed (allowed: a name of 1 to 64 letters, digits, '.', '_' and '-')"#
    );
    assert_eq!(
        env_err("KAFKA_GROUP", "a\u{7}b"),
        r#"KAFKA_GROUP="a\u{7}b" is invalid: contains a control character (allowed: a non-empty name without control characters)"#
    );
    assert_eq!(
        env_err("KAFKA_DEAD_LETTER_TOPIC", "dead/letters"),
        r#"KAFKA_DEAD_LETTER_TOPIC="dead/letters" is invalid: contains a character not allowed (allowed: a topic name of letters, digits, '.', '_' and '-', without the environment)"#
    );
    // IPv6 literals and several brokers are fine.
    env(&[("KAFKA_BOOTSTRAP_SERVERS", "[::1]:9092, 127.0.0.1:9093")]).unwrap();
}

#[test]
fn validate_checks_hand_built_values() {
    let c = KafkaConfig {
        timeout_seconds: 0,
        ..KafkaConfig::default()
    };
    let err = c.validate().unwrap_err();
    assert_eq!(err.name, "KAFKA_TIMEOUT_SECONDS");
    assert_eq!(err.value, "0");
    assert_eq!(err.allowed, "1..=300");
    let c = KafkaConfig {
        group: String::new(),
        ..KafkaConfig::default()
    };
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        r#"KAFKA_GROUP="" is invalid: empty (allowed: a non-empty name without control characters)"#
    );
}

#[test]
fn derived_policies_follow_the_settings() {
    let c = env(&[
        ("KAFKA_MAX_RETRY_ATTEMPTS", "4"),
        ("KAFKA_RETRY_BACKOFF_BASE", "0.5"),
        ("KAFKA_CIRCUIT_BREAKER_THRESHOLD", "2"),
        ("KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT", "90"),
        ("KAFKA_CONSUMER_SLEEP_INTERVAL", "0.25"),
        ("KAFKA_TIMEOUT_SECONDS", "12"),
    ])
    .unwrap();
    let retry = c.retry_policy();
    assert_eq!(retry.max_retries, 4);
    assert_eq!(retry.base, Duration::from_millis(500));
    assert_eq!(c.timeout(), Duration::from_secs(12));
    assert_eq!(c.consumer_sleep(), Duration::from_millis(250));
    assert_eq!(c.circuit_breaker_reset(), Duration::from_secs(90));
    let breaker = c.circuit_breaker();
    breaker.record_failure();
    assert_eq!(breaker.state(), CircuitState::Closed);
    breaker.record_failure();
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[test]
fn yaml_keys_are_the_field_names() {
    let c = KafkaConfig::from_yaml_str(
        "bootstrap_servers: broker:29092\n\
         environment: dev\n\
         timeout_seconds: 10\n\
         retry_backoff_base: 0.5\n\
         acks: 1\n\
         auto_offset_reset: earliest\n\
         enable_auto_commit: false\n\
         dead_letter_topic: dev.dlq\n",
    )
    .unwrap();
    assert_eq!(c.bootstrap_servers, "broker:29092");
    assert!(c.bootstrap_configured);
    assert_eq!(c.environment, "dev");
    assert_eq!(c.timeout_seconds, 10);
    assert_eq!(c.retry_backoff_base, 0.5);
    assert_eq!(c.acks, Acks::Leader);
    assert_eq!(c.auto_offset_reset, AutoOffsetReset::Earliest);
    assert!(!c.enable_auto_commit);
    assert_eq!(c.dead_letter_topic, "dev.dlq");
    assert_eq!(c.qualified_dead_letter_topic(), "dev.dev.dlq");
    // Unnamed keys keep their defaults.
    assert_eq!(c.group, "default");
    assert_eq!(c.session_timeout_ms, 6000);

    let c = KafkaConfig::from_yaml_str("acks: all\n").unwrap();
    assert_eq!(c.acks, Acks::All);
    assert!(!c.bootstrap_configured);
    assert_eq!(
        KafkaConfig::from_yaml_str("").unwrap(),
        KafkaConfig::default()
    );
}

#[test]
fn yaml_unknown_key_is_an_error_with_its_location() {
    let err = KafkaConfig::from_yaml_str("environment: dev\ntimeout: 10\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("Kafka configuration: unknown field `timeout`, expected one of"),
        "{text}"
    );
    assert!(text.contains("`timeout_seconds`"), "{text}");
    match err {
        ConfigFileError::Parse { line, .. } => assert_eq!(line, Some(2)),
        other => panic!("expected a parse error, got {other:?}"),
    }
    // The derived flag is not a key.
    assert!(KafkaConfig::from_yaml_str("bootstrap_configured: true\n").is_err());
}

#[test]
fn yaml_range_errors_name_the_key() {
    let err = KafkaConfig::from_yaml_str("timeout_seconds: 0\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Kafka configuration: timeout_seconds="0" is invalid: out of range (allowed: 1..=300)"#
    );
    let err = KafkaConfig::from_yaml_str("acks: 2\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid acks `2` (allowed: all, 1, 0)"),
        "{err}"
    );
    let err = KafkaConfig::from_yaml_str("max_retry_attempts: many\n").unwrap_err();
    assert!(matches!(err, ConfigFileError::Parse { .. }), "{err}");
}

#[test]
fn yaml_files_are_read_and_named_in_errors() {
    let dir = std::env::temp_dir().join(format!("onex-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("kafka.yaml");
    std::fs::write(&good, "environment: staging\nlinger_ms: 0\n").unwrap();
    let c = KafkaConfig::from_yaml_file(&good).unwrap();
    assert_eq!(c.environment, "staging");
    assert_eq!(c.linger_ms, 0);

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "linger_ms: 5000\n").unwrap();
    let err = KafkaConfig::from_yaml_file(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            r#"{}: linger_ms="5000" is invalid: out of range (allowed: 0..=1000)"#,
            bad.display()
        )
    );
    let missing = dir.join("missing.yaml");
    let err = KafkaConfig::from_yaml_file(&missing).unwrap_err();
    assert!(matches!(err, ConfigFileError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read {}:", missing.display()))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn yaml_round_trips() {
    let c = env(&[("KAFKA_ACKS", "0"), ("KAFKA_DEAD_LETTER_TOPIC", "x.dlq")]).unwrap();
    let yaml = serde_yaml::to_string(&c).unwrap();
    let back = KafkaConfig::from_yaml_str(&yaml).unwrap();
    assert_eq!(
        back,
        KafkaConfig {
            bootstrap_configured: true,
            ..c
        }
    );
}

#[test]
fn the_settings_table_lists_every_field_once() {
    let yaml = serde_yaml::to_value(KafkaConfig::default()).unwrap();
    let keys: Vec<&str> = yaml
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    let table: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
    assert_eq!(keys, table);
    for s in SETTINGS {
        assert_eq!(s.variable, format!("KAFKA_{}", s.key.to_uppercase()));
    }
}

/// The environment prefixes every topic and Kafka allows 249 characters:
/// the runtime accepts at most 64, the bound cargo onex checks contracts'
/// topics against, and refuses a longer one when the node starts, before it
/// publishes anything.
#[test]
fn the_environment_is_bounded_for_kafka_topics() {
    let longest = "e".repeat(onex::topic::MAX_ENVIRONMENT_LEN);
    let config = env(&[("KAFKA_ENVIRONMENT", longest.as_str())]).unwrap();
    assert_eq!(config.environment, longest);
    // The longest topic a contract may have fits behind it.
    let topic = "t".repeat(onex::topic::MAX_TOPIC_LEN - onex::topic::MAX_ENVIRONMENT_LEN - 1);
    assert!(onex::topic::check(&onex::topic::qualified(&config.environment, &topic)).is_ok());

    let too_long = format!("{longest}x");
    assert_eq!(
        env_err("KAFKA_ENVIRONMENT", &too_long),
        format!(
            r#"KAFKA_ENVIRONMENT="{too_long}" is invalid: 65 characters, longer than 64: it prefixes every topic, and Kafka allows 249 characters per topic (allowed: a name of 1 to 64 letters, digits, '.', '_' and '-')"#
        )
    );
    let yaml = format!("environment: {too_long}\n");
    let err = KafkaConfig::from_yaml_str(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("environment=") && err.contains("longer than 64"),
        "{err}"
    );
    let hand_built = KafkaConfig {
        environment: too_long,
        ..KafkaConfig::default()
    };
    assert!(hand_built.validate().is_err());

    let dead_letters = format!("{}.dlq.v1", "d".repeat(onex::topic::MAX_TOPIC_LEN));
    let err = env_err("KAFKA_DEAD_LETTER_TOPIC", &dead_letters);
    assert!(err.contains("longer than Kafka's limit of 249"), "{err}");
}

/// A node connects with a configuration it built by hand, too: `connect`
/// (what a generated node's `main` runs before anything is published)
/// refuses an environment too long for Kafka's topics on either bus.
#[tokio::test]
async fn connect_refuses_an_environment_too_long_for_kafka() {
    let config = KafkaConfig {
        environment: "e".repeat(onex::topic::MAX_ENVIRONMENT_LEN + 1),
        ..KafkaConfig::default()
    };
    let Err(err) = onex::connect(config).await else {
        panic!("a 65-character environment was accepted");
    };
    assert!(matches!(err, onex::BusError::Config(_)), "{err}");
    assert!(err.to_string().contains("longer than 64"), "{err}");
}
