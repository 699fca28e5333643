//! Topic naming: `{namespace}.{service}.{event_type}.v1`.
//!
//! Generated constants carry the namespace-free part; the namespace is the
//! configured environment, applied at run time.
//!
//! Kafka refuses a topic longer than [`MAX_TOPIC_LEN`] characters. The
//! runtime bounds the environment at [`MAX_ENVIRONMENT_LEN`] characters
//! (`KafkaConfig` refuses a longer `KAFKA_ENVIRONMENT` at start-up), and
//! cargo onex's gate FV-005 keeps every namespace-free topic of a contract
//! within the rest, [`MAX_TOPIC_LEN`]` - `[`MAX_ENVIRONMENT_LEN`]` - 1` = 184
//! characters; so a node that starts never meets the limit. [`check`] is the
//! last line: the publisher refuses a longer topic with a clear error
//! rather than the broker's.

use thiserror::Error;

/// Kafka's limit on a topic name, in characters.
pub const MAX_TOPIC_LEN: usize = 249;

/// The longest environment (topic namespace) the runtime accepts, in
/// characters. Real ones (`dev`, `staging-eu-west-1`, a branch name) are
/// far shorter; the bound is what contracts are checked against.
pub const MAX_ENVIRONMENT_LEN: usize = 64;

/// A full topic longer than Kafka allows.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "the topic `{topic}` is {length} characters, longer than Kafka's limit of {max}; use a shorter environment or shorter names in the contract",
    max = MAX_TOPIC_LEN
)]
pub struct TopicTooLong {
    /// The full topic.
    pub topic: String,
    /// Its length in characters.
    pub length: usize,
}

/// Checks that a full topic fits Kafka's limit.
///
/// ```
/// assert!(onex::topic::check("dev.orders.effect.persist.started.v1").is_ok());
/// let long = format!("dev.{}.v1", "x".repeat(250));
/// assert!(onex::topic::check(&long).is_err());
/// ```
pub fn check(topic: &str) -> Result<(), TopicTooLong> {
    // Topics are ASCII; counting bytes first spares the common case a walk.
    if topic.len() <= MAX_TOPIC_LEN {
        return Ok(());
    }
    let length = topic.chars().count();
    if length <= MAX_TOPIC_LEN {
        return Ok(());
    }
    Err(TopicTooLong {
        topic: topic.to_owned(),
        length,
    })
}

/// Joins the environment and a namespace-free topic.
///
/// ```
/// assert_eq!(
///     onex::topic::qualified("dev", "orders.effect.persist.started.v1"),
///     "dev.orders.effect.persist.started.v1"
/// );
/// ```
pub fn qualified(environment: &str, topic: &str) -> String {
    let mut out = String::with_capacity(environment.len() + 1 + topic.len());
    out.push_str(environment);
    out.push('.');
    out.push_str(topic);
    out
}

/// The namespace-free topic for an event type of a service.
///
/// ```
/// assert_eq!(
///     onex::topic::for_event("orders", "effect.persist.started"),
///     "orders.effect.persist.started.v1"
/// );
/// ```
pub fn for_event(service: &str, event_type: &str) -> String {
    format!("{service}.{event_type}.v1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_environment_and_topic_fit() {
        let environment = "e".repeat(MAX_ENVIRONMENT_LEN);
        let topic = "t".repeat(MAX_TOPIC_LEN - MAX_ENVIRONMENT_LEN - 1);
        let full = qualified(&environment, &topic);
        assert_eq!(full.len(), MAX_TOPIC_LEN);
        assert_eq!(check(&full), Ok(()));
        let over = format!("{full}x");
        let err = check(&over).expect_err("250 characters");
        assert_eq!(err.length, 250);
        assert!(err.to_string().contains("limit of 249"), "{err}");
    }

    /// An event whose topic, behind the environment, is one too long.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Long;

    const LONG_TOPIC: &str = two_hundred_forty_six_x();

    /// 246 `x`: behind `dev.`, a topic of 250 characters.
    const fn two_hundred_forty_six_x() -> &'static str {
        const BYTES: [u8; 246] = [b'x'; 246];
        match std::str::from_utf8(&BYTES) {
            Ok(s) => s,
            Err(_) => "",
        }
    }

    impl crate::Event for Long {
        const EVENT_TYPE: &'static str = "test.long";
        const EVENT_VERSION: &'static str = "1.0";
        const CATEGORY: crate::MessageCategory = crate::MessageCategory::Event;
        const TOPIC: &'static str = LONG_TOPIC;
    }

    #[test]
    fn the_publisher_refuses_a_topic_kafka_would_refuse() {
        let bus = std::sync::Arc::new(crate::memory::InMemoryBus::new("dev"));
        let publisher = crate::Publisher::new(bus, crate::SourceInfo::new("svc", "1.0.0", "dev"));
        let result = publisher.message(&Long, None, Default::default());
        let Err(crate::error::BusError::TopicTooLong(e)) = result else {
            panic!("a 250-character topic was accepted");
        };
        assert_eq!(e.length, 250);
        assert!(e.topic.starts_with("dev.xxx"));
    }
}
