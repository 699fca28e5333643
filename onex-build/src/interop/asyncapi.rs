//! One AsyncAPI 3.0.0 document for a set of nodes.
//!
//! - a server per Kafka bootstrap server (protocol `kafka`);
//! - a channel per topic, addressed `{environment}.{topic}`: the runtime
//!   namespaces every topic with the configured environment
//!   (`KAFKA_ENVIRONMENT`), which is the channel's parameter;
//! - per node, a `send` operation for each topic it publishes on (its
//!   events) and a `receive` operation for each topic it consumes (its
//!   commands and its subscriptions), named `{node}.send.{topic}` and
//!   `{node}.receive.{topic}`, so names never collide across nodes;
//! - a message per event: the Kafka record's value is the runtime's
//!   `OnexEnvelopeV1` whose `payload` is the event (its schema from
//!   [`super::json_schema`], shared through `components.schemas`); the
//!   headers are the ONEX headers plus the CloudEvents 1.0 Kafka
//!   binary-mode headers; the record key is the partition key.
//!
//! A topic a node subscribes to that no node of the set publishes on gets a
//! message whose event payload is any JSON value: its publisher's contract
//! is not in the set.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{
    Node,
    json_schema::{self, event_key},
};
use crate::spec::{EventSpec, NodeSpec};

/// The AsyncAPI version of the document.
pub const ASYNCAPI_VERSION: &str = "3.0.0";
/// The Kafka bindings' version.
pub const KAFKA_BINDING_VERSION: &str = "0.5.0";
/// The bootstrap servers when none are configured (the runtime's default).
pub const DEFAULT_BOOTSTRAP_SERVERS: &str = "localhost:9092";
/// The environment the channel parameter defaults to (the runtime's default
/// `KAFKA_ENVIRONMENT`).
pub const DEFAULT_ENVIRONMENT: &str = "local";

const SCHEMAS: &str = "#/components/schemas/";
const ENVELOPE_KEY: &str = "onex.OnexEnvelopeV1";
const HEADERS_KEY: &str = "onex.KafkaHeaders";
const CORRELATION_KEY: &str = "onex.correlationId";

/// Options of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncApiOptions {
    /// Comma-separated `host:port` list, as `KAFKA_BOOTSTRAP_SERVERS`.
    pub bootstrap_servers: String,
}

impl Default for AsyncApiOptions {
    fn default() -> Self {
        AsyncApiOptions {
            bootstrap_servers: DEFAULT_BOOTSTRAP_SERVERS.to_owned(),
        }
    }
}

/// The AsyncAPI document of a set of nodes.
pub fn document(set: &[Node], options: &AsyncApiOptions) -> Value {
    let nodes: Vec<&NodeSpec> = set.iter().map(|n| &n.spec).collect();
    let mut schemas = Map::new();
    let mut messages = Map::new();
    // topic -> message keys on it
    let mut channels: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut operations = Map::new();

    schemas.insert(ENVELOPE_KEY.into(), envelope_schema());
    schemas.insert(HEADERS_KEY.into(), headers_schema());
    let mut add = |node: &NodeSpec, event: &EventSpec| {
        let key = event_key(event);
        let title = if event.shared {
            event.struct_name.clone()
        } else {
            format!("{} {}", node.pascal_name, event.struct_name)
        };
        messages.insert(
            key.clone(),
            message(
                &key,
                &title,
                &event.event_type,
                &event.version,
                &event.category,
                &event.doc,
                Some(&key),
            ),
        );
        channels.entry(event.topic.clone()).or_default().push(key);
    };
    for node in &nodes {
        schemas.extend(json_schema::node_definitions(node, SCHEMAS));
        for event in &node.events {
            add(node, event);
        }
    }
    // The events of consumed nodes that nodes of the set exchange.
    for n in set {
        for (name, event) in n.receives.iter().chain(&n.sends) {
            if let Some(consumed) = n.consumed.iter().find(|c| &c.name == name) {
                schemas.extend(json_schema::node_definitions(consumed, SCHEMAS));
                add(consumed, event);
            }
        }
    }
    // Topics consumed from outside the set.
    for node in &nodes {
        for sub in &node.subscriptions {
            let entry = channels.entry(sub.topic.clone()).or_default();
            if entry.is_empty() {
                let key = format!("external.{}", sub.topic);
                messages.insert(
                    key.clone(),
                    message(
                        &key,
                        &format!("A message on {}", sub.topic),
                        "",
                        "",
                        "",
                        "Published by a node whose contract is not in this document.",
                        None,
                    ),
                );
                entry.push(key);
            }
        }
    }
    for keys in channels.values_mut() {
        keys.sort();
        keys.dedup();
    }

    for n in set {
        let node = &n.spec;
        // (action, topic)
        let mut uses: BTreeMap<(&str, &str), ()> = BTreeMap::new();
        for event in &node.events {
            let action = if event.category == "Command" {
                "receive"
            } else {
                "send"
            };
            uses.insert((action, event.topic.as_str()), ());
        }
        for sub in &node.subscriptions {
            uses.insert(("receive", sub.topic.as_str()), ());
        }
        for (_, event) in &n.receives {
            uses.insert(("receive", event.topic.as_str()), ());
        }
        for (_, event) in &n.sends {
            uses.insert(("send", event.topic.as_str()), ());
        }
        for (action, topic) in uses.keys() {
            let id = format!("{}.{action}.{topic}", node.name);
            let refs: Vec<Value> = channels[*topic]
                .iter()
                .map(|m| json!({ "$ref": format!("#/channels/{topic}/messages/{m}") }))
                .collect();
            let verb = if *action == "send" {
                "publishes on"
            } else {
                "consumes"
            };
            let mut op = json!({
                "action": action,
                "channel": { "$ref": format!("#/channels/{topic}") },
                "messages": refs,
                "summary": format!("{} {verb} `{topic}`.", node.name),
            });
            if *action == "receive" {
                op["bindings"] = json!({ "kafka": {
                    "groupId": { "type": "string", "enum": [node.event_bus.consumer_group] },
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }});
            }
            operations.insert(id, op);
        }
    }

    let mut channel_map = Map::new();
    for (topic, keys) in &channels {
        let msgs: Map<String, Value> = keys
            .iter()
            .map(|k| {
                (
                    k.clone(),
                    json!({ "$ref": format!("#/components/messages/{k}") }),
                )
            })
            .collect();
        channel_map.insert(
            topic.clone(),
            json!({
                "address": format!("{{environment}}.{topic}"),
                "description": format!("The topic `{topic}`, namespaced by the environment."),
                "parameters": { "environment": { "$ref": "#/components/parameters/environment" } },
                "messages": msgs,
                "bindings": { "kafka": {
                    "topic": format!("{{environment}}.{topic}"),
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }},
            }),
        );
    }

    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let version = match nodes.as_slice() {
        [one] => one.version.clone(),
        _ => "1.0.0".to_owned(),
    };
    let description = nodes
        .iter()
        .map(|n| {
            format!(
                "- `{}` ({} {}): {}",
                n.name, n.node_type, n.version, n.description
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut servers = Map::new();
    let hosts: Vec<&str> = options
        .bootstrap_servers
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let hosts = if hosts.is_empty() {
        vec![DEFAULT_BOOTSTRAP_SERVERS]
    } else {
        hosts
    };
    for (i, host) in hosts.iter().enumerate() {
        let name = if hosts.len() == 1 {
            "kafka".to_owned()
        } else {
            format!("kafka-{}", i + 1)
        };
        servers.insert(
            name,
            json!({
                "host": host,
                "protocol": "kafka",
                "description": "A Kafka bootstrap server (KAFKA_BOOTSTRAP_SERVERS).",
            }),
        );
    }

    json!({
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": format!("ONEX nodes: {}", names.join(", ")),
            "version": version,
            "description": format!("The messages of the ONEX nodes {} on Kafka.\n\n{description}", names.join(", ")),
        },
        "defaultContentType": "application/json",
        "servers": servers,
        "channels": channel_map,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "parameters": { "environment": {
                "description": "The environment that namespaces every topic (KAFKA_ENVIRONMENT).",
                "default": DEFAULT_ENVIRONMENT,
            }},
            "correlationIds": { CORRELATION_KEY: {
                "description": "The correlation id every message carries in its `correlation_id` header.",
                "location": "$message.header#/correlation_id",
            }},
        },
    })
}

fn message(
    key: &str,
    title: &str,
    event_type: &str,
    version: &str,
    category: &str,
    doc: &str,
    payload_key: Option<&str>,
) -> Value {
    let inner = match payload_key {
        Some(k) => json!({ "$ref": format!("{SCHEMAS}{k}") }),
        None => json!({}),
    };
    let mut envelope = Map::new();
    envelope.insert("payload".into(), inner);
    if !event_type.is_empty() {
        envelope.insert("event_type".into(), json!({ "const": event_type }));
        envelope.insert("event_version".into(), json!({ "const": version }));
    }
    let mut m = json!({
        "name": key,
        "title": title,
        "contentType": "application/json",
        "headers": { "$ref": format!("{SCHEMAS}{HEADERS_KEY}") },
        "payload": { "allOf": [
            { "$ref": format!("{SCHEMAS}{ENVELOPE_KEY}") },
            { "type": "object", "properties": envelope },
        ]},
        "correlationId": { "$ref": format!("#/components/correlationIds/{CORRELATION_KEY}") },
        "bindings": { "kafka": {
            "key": {
                "type": "string",
                "description": "The partition key: the correlation id, or the publishing node's id when there is none.",
            },
            "bindingVersion": KAFKA_BINDING_VERSION,
        }},
    });
    if !doc.is_empty() {
        m["summary"] = json!(doc);
    }
    if !event_type.is_empty() {
        m["description"] = json!(format!(
            "Event type `{event_type}`, version `{version}`, category {category}."
        ));
    }
    m
}

/// The runtime's `OnexEnvelopeV1`, the value of every Kafka record.
pub fn envelope_schema() -> Value {
    let string = json!({ "type": "string" });
    let uuid = json!({ "type": "string", "format": "uuid" });
    json!({
        "title": "OnexEnvelopeV1",
        "description": "The envelope every event travels in; `payload` is the event.",
        "type": "object",
        "properties": {
            "envelope_version": { "const": "1.0" },
            "event_id": uuid,
            "event_type": string,
            "event_version": string,
            "event_timestamp": { "type": "string", "format": "date-time" },
            "source_node_id": string,
            "source_service": string,
            "source_version": string,
            "correlation_id": { "anyOf": [uuid, { "type": "null" }] },
            "environment": string,
            "payload": {},
            "metadata": { "type": "object", "additionalProperties": {} },
        },
        "required": [
            "envelope_version", "event_id", "event_type", "event_version", "event_timestamp",
            "source_node_id", "source_service", "source_version", "correlation_id",
            "environment", "payload",
        ],
        "additionalProperties": false,
    })
}

/// The Kafka record headers of every message: the ONEX headers
/// (`onex::EventHeaders::to_pairs`) and the CloudEvents 1.0 Kafka
/// binary-mode headers. Header values are strings.
pub fn headers_schema() -> Value {
    let string = json!({ "type": "string" });
    let uuid = json!({ "type": "string", "format": "uuid" });
    let time = json!({ "type": "string", "format": "date-time" });
    let number = json!({ "type": "string", "pattern": "^[0-9]+$" });
    json!({
        "title": "Kafka record headers",
        "type": "object",
        "properties": {
            "correlation_id": uuid,
            "message_id": uuid,
            "timestamp": time,
            "source": string,
            "event_type": string,
            "message_category": { "type": "string", "enum": ["EVENT", "COMMAND", "INTENT"] },
            "content_type": { "const": "application/json" },
            "schema_version": string,
            "retry_count": number,
            "destination": string,
            "trace_id": string,
            "span_id": string,
            "parent_span_id": string,
            "operation_name": string,
            "priority": { "type": "string", "enum": ["low", "normal", "high", "critical"] },
            "routing_key": string,
            "partition_key": string,
            "max_retries": number,
            "ttl_seconds": number,
            "ce_specversion": { "const": "1.0" },
            "ce_id": string,
            "ce_source": string,
            "ce_type": string,
            "ce_time": time,
            "content-type": { "const": "application/json" },
            "ce_correlationid": string,
        },
        "required": [
            "correlation_id", "message_id", "timestamp", "source", "event_type",
            "message_category", "content_type", "schema_version", "retry_count",
            "ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type",
        ],
    })
}
