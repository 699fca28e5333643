//! Joining the event bus, as every node does: the `KAFKA_*` settings
//! (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_ENVIRONMENT`, ...), or
//! `--bootstrap-servers`, which overrides the variable.

use std::sync::Arc;

use anyhow::Context as _;
use onex::{EventBus, KafkaConfig, Publisher, SourceInfo, tokio};

/// The bus options every command that may join the bus takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BusArgs {
    /// Kafka brokers to join, as `KAFKA_BOOTSTRAP_SERVERS` (which this
    /// overrides); the other `KAFKA_*` settings apply as for any node.
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub bootstrap_servers: Option<String>,
}

impl BusArgs {
    /// The bus settings: the `KAFKA_*` variables, with the flag over them.
    pub fn config(&self) -> anyhow::Result<KafkaConfig> {
        let flag = self.bootstrap_servers.clone();
        KafkaConfig::from_env_map(|key| match (&flag, key) {
            (Some(servers), "KAFKA_BOOTSTRAP_SERVERS") => Some(servers.clone()),
            _ => std::env::var(key).ok(),
        })
        .context("invalid bus settings")
    }

    /// The settings when a broker is configured (flag or variable); `None`
    /// when not, and then nothing is published.
    pub fn configured(&self) -> anyhow::Result<Option<KafkaConfig>> {
        let config = self.config()?;
        Ok(config.bootstrap_configured().then_some(config))
    }
}

/// A runtime for the bus: the pipeline keeps its own threads, so the bus
/// needs few.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    runtime_with_workers(2)
}

/// A runtime for one task beside the pipeline (its progress): a second
/// worker would only be woken to find nothing to do.
pub fn one_worker_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    runtime_with_workers(1)
}

fn runtime_with_workers(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("onex-bus")
        .enable_all()
        .build()
        .context("cannot start the async runtime for the event bus")
}

/// Joins the bus of `config` and returns a publisher for the node `service`
/// of this cargo-onex.
pub async fn join(config: KafkaConfig, service: &str) -> anyhow::Result<Publisher> {
    let environment = config.environment.clone();
    let bus: Arc<dyn EventBus> = onex::connect(config)
        .await
        .context("cannot join the event bus")?;
    let source = SourceInfo::new(service, env!("CARGO_PKG_VERSION"), environment);
    Ok(Publisher::new(bus, source))
}
