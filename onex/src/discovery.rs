//! Service discovery events shared by every node: the introspection event a
//! node publishes on start-up, and its periodic heartbeat.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{Event, MessageCategory};

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
