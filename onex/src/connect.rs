//! Picking the bus a node runs on: Kafka when a broker is configured, the
//! embedded [`InMemoryBus`] otherwise.
//!
//! | configuration | feature `kafka` on | feature `kafka` off |
//! |---|---|---|
//! | `KAFKA_BOOTSTRAP_SERVERS` set (or `bootstrap_servers` in YAML) | [`KafkaBus`](crate::kafka::KafkaBus) | in-memory (with a warning) |
//! | no broker given | in-memory | in-memory |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), onex::BusError> {
//! // No broker configured: the in-memory bus.
//! let config = onex::KafkaConfig::from_env_pairs([("KAFKA_ENVIRONMENT", "dev")])?;
//! assert_eq!(onex::connect::choose(&config), onex::connect::BusKind::InMemory);
//! let bus = onex::connect::connect(config).await?;
//! assert_eq!(bus.environment(), "dev");
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use crate::{
    bus::EventBus,
    config::KafkaConfig,
    error::BusError,
    memory::{InMemoryBus, MemoryBusOptions},
};

/// Which bus [`connect`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// The Kafka bus (feature `kafka`).
    Kafka,
    /// The embedded in-memory bus.
    InMemory,
}

/// The bus [`connect`] builds for a configuration: Kafka when the brokers
/// were configured explicitly ([`KafkaConfig::bootstrap_configured`]) and
/// the `kafka` feature is on, in-memory otherwise.
pub fn choose(config: &KafkaConfig) -> BusKind {
    if cfg!(feature = "kafka") && config.bootstrap_configured() {
        BusKind::Kafka
    } else {
        BusKind::InMemory
    }
}

/// Builds the bus [`choose`] picks.
///
/// The Kafka bus starts even when the broker does not answer (it reports
/// [`BusHealth::Degraded`](crate::BusHealth::Degraded) and buffers); the
/// in-memory bus takes its retry, circuit-breaker and dead-letter settings
/// from the same configuration.
///
/// Errors: an invalid configuration, or settings librdkafka rejects.
pub async fn connect(config: KafkaConfig) -> Result<Arc<dyn EventBus>, BusError> {
    config.validate()?;
    match choose(&config) {
        #[cfg(feature = "kafka")]
        BusKind::Kafka => Ok(Arc::new(crate::kafka::KafkaBus::connect(config).await?)),
        _ => {
            if config.bootstrap_configured() {
                tracing::warn!(
                    bootstrap_servers = %config.bootstrap_servers,
                    "brokers configured but onex was built without the `kafka` feature; \
                     using the in-memory bus"
                );
            }
            let options = MemoryBusOptions::from_kafka_config(&config);
            Ok(Arc::new(InMemoryBus::with_options(
                config.environment.clone(),
                options,
            )))
        }
    }
}

/// [`connect`] with the configuration of the `KAFKA_*` environment
/// variables ([`KafkaConfig::from_env`]): Kafka when
/// `KAFKA_BOOTSTRAP_SERVERS` is set, in-memory otherwise.
pub async fn connect_from_env() -> Result<Arc<dyn EventBus>, BusError> {
    connect(KafkaConfig::from_env()?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_broker_means_in_memory() {
        let config = KafkaConfig::default();
        assert_eq!(choose(&config), BusKind::InMemory);
    }

    #[test]
    fn a_configured_broker_means_kafka_with_the_feature() {
        let config = KafkaConfig::from_env_pairs([("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")])
            .expect("valid");
        let expected = if cfg!(feature = "kafka") {
            BusKind::Kafka
        } else {
            BusKind::InMemory
        };
        assert_eq!(choose(&config), expected);
    }

    #[tokio::test]
    async fn connect_without_broker_builds_the_in_memory_bus() {
        let config = KafkaConfig::from_env_pairs([("KAFKA_ENVIRONMENT", "test")]).expect("valid");
        let bus = connect(config).await.expect("in-memory bus");
        assert_eq!(bus.environment(), "test");
        assert_eq!(bus.health(), crate::BusHealth::Healthy);
    }
}
