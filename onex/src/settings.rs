//! A node's run-time settings: its contract's values, overridden by the
//! environment. Every generated node crate names them `Settings`, an alias
//! of [`NodeSettings`] over the contract's [`ContractSettings`].

use std::{fmt, marker::PhantomData, time::Duration};

/// The values a contract gives a node's settings; generated node crates
/// implement it on a marker type from their events module's constants.
pub trait ContractSettings {
    /// The service name (`node.service`).
    const SERVICE: &'static str;
    /// The consumer group (`event_bus.consumer_group`).
    const CONSUMER_GROUP: &'static str;
    /// Seconds between two heartbeats
    /// (`event_bus.heartbeat_interval_seconds`).
    const HEARTBEAT_INTERVAL_SECONDS: u64;
}

/// Run-time settings of the node whose contract is `C`: the contract's
/// values ([`Default`]), overridden by the environment
/// ([`NodeSettings::from_env`]).
pub struct NodeSettings<C> {
    /// The service name stamped on envelopes (`SERVICE_NAME`).
    pub service: String,
    /// The consumer group of the node's subscriptions (`KAFKA_GROUP`).
    pub consumer_group: String,
    /// Time between two heartbeats (`HEARTBEAT_INTERVAL_SECONDS`).
    pub heartbeat_interval: Duration,
    contract: PhantomData<fn() -> C>,
}

impl<C: ContractSettings> Default for NodeSettings<C> {
    fn default() -> Self {
        NodeSettings {
            service: C::SERVICE.to_owned(),
            consumer_group: C::CONSUMER_GROUP.to_owned(),
            heartbeat_interval: Duration::from_secs(C::HEARTBEAT_INTERVAL_SECONDS),
            contract: PhantomData,
        }
    }
}

impl<C: ContractSettings> NodeSettings<C> {
    /// The contract's settings, overridden by `SERVICE_NAME`, `KAFKA_GROUP`
    /// and `HEARTBEAT_INTERVAL_SECONDS` where they are set and not empty.
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`NodeSettings::from_env`] over any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut settings = Self::default();
        if let Some(service) = var("SERVICE_NAME") {
            settings.service = service;
        }
        if let Some(group) = var("KAFKA_GROUP") {
            settings.consumer_group = group;
        }
        if let Some(seconds) = var("HEARTBEAT_INTERVAL_SECONDS") {
            let invalid = |expected: &str| {
                format!("HEARTBEAT_INTERVAL_SECONDS={seconds:?} is invalid: expected {expected}")
            };
            let seconds: u64 = seconds
                .trim()
                .parse()
                .map_err(|_| invalid("whole seconds, at least 1"))?;
            if seconds == 0 {
                return Err(invalid("at least 1"));
            }
            settings.heartbeat_interval = Duration::from_secs(seconds);
        }
        Ok(settings)
    }
}

// By hand: derives would ask `C` for the same traits, and `C` is only a
// marker.
impl<C> fmt::Debug for NodeSettings<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeSettings")
            .field("service", &self.service)
            .field("consumer_group", &self.consumer_group)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .finish()
    }
}

impl<C> Clone for NodeSettings<C> {
    fn clone(&self) -> Self {
        NodeSettings {
            service: self.service.clone(),
            consumer_group: self.consumer_group.clone(),
            heartbeat_interval: self.heartbeat_interval,
            contract: PhantomData,
        }
    }
}

impl<C> PartialEq for NodeSettings<C> {
    fn eq(&self, other: &Self) -> bool {
        self.service == other.service
            && self.consumer_group == other.consumer_group
            && self.heartbeat_interval == other.heartbeat_interval
    }
}

impl<C> Eq for NodeSettings<C> {}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tiny;

    impl ContractSettings for Tiny {
        const SERVICE: &'static str = "tiny";
        const CONSUMER_GROUP: &'static str = "tiny_consumers";
        const HEARTBEAT_INTERVAL_SECONDS: u64 = 30;
    }

    fn from(pairs: &[(&str, &str)]) -> Result<NodeSettings<Tiny>, String> {
        NodeSettings::from_vars(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_environment_overrides_the_contract() {
        let defaults = from(&[("SERVICE_NAME", " ")]).expect("valid");
        assert_eq!(defaults, NodeSettings::default());
        assert_eq!(defaults.service, "tiny");
        assert_eq!(defaults.heartbeat_interval, Duration::from_secs(30));
        let set = from(&[
            ("SERVICE_NAME", "other"),
            ("KAFKA_GROUP", "g"),
            ("HEARTBEAT_INTERVAL_SECONDS", " 5 "),
        ])
        .expect("valid");
        assert_eq!(
            (set.service.as_str(), set.consumer_group.as_str()),
            ("other", "g")
        );
        assert_eq!(set.heartbeat_interval, Duration::from_secs(5));
    }

    #[test]
    fn a_bad_interval_is_an_error_naming_the_variable() {
        for bad in ["0", "soon", "-1"] {
            let error = from(&[("HEARTBEAT_INTERVAL_SECONDS", bad)]).expect_err(bad);
            assert!(error.starts_with("HEARTBEAT_INTERVAL_SECONDS="), "{error}");
        }
    }
}
