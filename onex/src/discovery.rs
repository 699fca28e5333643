//! Service discovery events shared by every node: the introspection event a
//! node publishes on start-up, and its periodic heartbeat.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    envelope::{CONTRACT_HASH_KEY, OnexEnvelopeV1},
    event::{Event, MessageCategory},
};

/// Whether an event's producer was generated from the contract this node
/// was built against: `expected` is the `CONTRACT_HASH` of the producer's
/// contract as this node compiled it (`crate::consumed::{node}`), the
/// envelope's metadata says which hash its producer was generated from.
///
/// On a mismatch it logs a warning, once per producer service and hash,
/// and returns `false`; the event is still handled (a changed contract
/// often still decodes: a new optional field, a new operation). An
/// envelope without a hash (a producer that does not say, a bare
/// CloudEvent) counts as a match.
pub fn check_contract_hash(envelope: &OnexEnvelopeV1, expected: &str) -> bool {
    let Some(found) = envelope
        .metadata
        .get(CONTRACT_HASH_KEY)
        .and_then(serde_json::Value::as_str)
    else {
        return true;
    };
    if found == expected {
        return true;
    }
    static WARNED: std::sync::Mutex<std::collections::BTreeSet<(String, String)>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let first = WARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert((
            envelope.source_service.as_str().to_owned(),
            found.to_owned(),
        ));
    if first {
        tracing::warn!(
            producer = %envelope.source_service,
            producer_contract_hash = found,
            expected_contract_hash = expected,
            event_type = %envelope.event_type,
            "the producer was generated from another version of its contract than this node \
             was built against: regenerate this node (`cargo onex generate`) to take the \
             producer's contract as it is now"
        );
    }
    false
}

/// What a node can do, announced for discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeCapabilities {
    /// Actions, e.g. `execute_effect`, `validate_input`, `write_record`.
    pub actions: Vec<String>,
    /// Protocols, e.g. `kafka`, `http`.
    pub protocols: Vec<String>,
    /// Node type, domain, service name and the like.
    pub metadata: BTreeMap<String, serde_json::Value>,
}

/// Published once on start-up so that a registry can discover the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeIntrospectionEvent {
    /// The node's id.
    pub node_id: Uuid,
    /// The node's name, e.g. `NodePostgresWriterEffect`.
    pub node_name: String,
    /// The node's semver version.
    pub version: String,
    /// What it offers.
    pub capabilities: NodeCapabilities,
    /// Discovery tags.
    pub tags: Vec<String>,
    /// The health endpoint, e.g. `/health`.
    pub health_endpoint: String,
    /// Correlation id of the announcement.
    pub correlation_id: Uuid,
    /// The hash of the contract the node was generated from; absent from
    /// nodes that do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_hash: Option<String>,
}

impl Event for NodeIntrospectionEvent {
    const EVENT_TYPE: &'static str = "omninode.discovery.node_introspection";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Event;
    const TOPIC: &'static str = "omninode.discovery.node_introspection.v1";
}

/// Published periodically while the node runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHeartbeatEvent {
    /// The node's id.
    pub node_id: Uuid,
    /// The node's name.
    pub node_name: String,
    /// `healthy` or `degraded`.
    pub status: String,
    /// Seconds since start-up.
    pub uptime_seconds: u64,
    /// When the heartbeat was sent.
    #[serde(with = "crate::time")]
    pub timestamp: DateTime<Utc>,
    /// Seconds until the next heartbeat, so that a registry can tell a
    /// late node from a live one; absent from nodes that do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
}

impl Event for NodeHeartbeatEvent {
    const EVENT_TYPE: &'static str = "omninode.discovery.node_heartbeat";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Event;
    const TOPIC: &'static str = "omninode.discovery.node_heartbeat.v1";
}

/// What a node announces about itself in its introspection and heartbeat
/// events, from the constants of its generated module (`NODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's struct name, e.g. `NodePostgresWriterEffect`.
    pub name: &'static str,
    /// The node's semver version.
    pub version: &'static str,
    /// The announced actions.
    pub actions: &'static [&'static str],
    /// The announced protocols.
    pub protocols: &'static [&'static str],
    /// The capabilities' metadata (node type, domain, service name), as
    /// string values.
    pub metadata: &'static [(&'static str, &'static str)],
    /// The discovery tags.
    pub tags: &'static [&'static str],
    /// The health endpoint, e.g. `/health`.
    pub health_endpoint: &'static str,
    /// The hash of the contract the node was generated from.
    pub contract_hash: &'static str,
    /// Seconds between two heartbeats.
    pub heartbeat_interval_seconds: u64,
}

impl NodeInfo {
    /// The introspection event announcing the node to a registry.
    pub fn introspection(&self, node_id: Uuid, correlation_id: Uuid) -> NodeIntrospectionEvent {
        NodeIntrospectionEvent {
            node_id,
            node_name: self.name.to_owned(),
            version: self.version.to_owned(),
            capabilities: NodeCapabilities {
                actions: strings(self.actions),
                protocols: strings(self.protocols),
                metadata: self
                    .metadata
                    .iter()
                    .map(|(key, value)| ((*key).to_owned(), serde_json::Value::from(*value)))
                    .collect(),
            },
            tags: strings(self.tags),
            health_endpoint: self.health_endpoint.to_owned(),
            correlation_id,
            contract_hash: Some(self.contract_hash.to_owned()),
        }
    }

    /// A heartbeat of the node, stamped now. `status` is `healthy` or
    /// `degraded`.
    pub fn heartbeat(
        &self,
        node_id: Uuid,
        status: &str,
        uptime_seconds: u64,
    ) -> NodeHeartbeatEvent {
        NodeHeartbeatEvent {
            node_id,
            node_name: self.name.to_owned(),
            status: status.to_owned(),
            uptime_seconds,
            timestamp: Utc::now(),
            interval_seconds: Some(self.heartbeat_interval_seconds),
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::SourceInfo;

    fn envelope(hash: Option<&str>) -> OnexEnvelopeV1 {
        let mut source = SourceInfo::new("producer", "1.0.0", "dev");
        if let Some(hash) = hash {
            source = source.with_contract_hash(hash);
        }
        let heartbeat = NodeHeartbeatEvent {
            node_id: source.node_id,
            node_name: "NodeProducerEffect".to_owned(),
            status: "healthy".to_owned(),
            uptime_seconds: 1,
            timestamp: Utc::now(),
            interval_seconds: None,
        };
        let bus: std::sync::Arc<dyn crate::EventBus> =
            std::sync::Arc::new(crate::InMemoryBus::new("dev"));
        crate::Publisher::new(bus, source)
            .message(&heartbeat, None, BTreeMap::new())
            .expect("message")
            .envelope
    }

    #[test]
    fn the_publisher_stamps_its_hash_and_a_consumer_compares_it() {
        let stamped = envelope(Some("00112233aabbccdd"));
        assert_eq!(stamped.metadata[CONTRACT_HASH_KEY], "00112233aabbccdd");
        assert!(check_contract_hash(&stamped, "00112233aabbccdd"));
        assert!(!check_contract_hash(&stamped, "ffffffffffffffff"));
        // Warned once; still a mismatch the second time.
        assert!(!check_contract_hash(&stamped, "ffffffffffffffff"));
        let unstamped = envelope(None);
        assert!(!unstamped.metadata.contains_key(CONTRACT_HASH_KEY));
        assert!(check_contract_hash(&unstamped, "ffffffffffffffff"));
    }
}
