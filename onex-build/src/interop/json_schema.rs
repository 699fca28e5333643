//! JSON Schema (draft 2020-12) of event payloads, as the generated structs
//! serialize them.
//!
//! What the generated code does, and so what the schemas say:
//!
//! - events and struct types do not deny unknown fields, so objects leave
//!   `additionalProperties` open;
//! - an `optional<T>` field is skipped when `None` (so it is not required)
//!   and deserializes `null` as `None` (so `null` is accepted); every other
//!   field is required;
//! - enums serialize as the variant's contract name;
//! - a type mapped with `extern_type` is the user's: any JSON value.
//!
//! The shared introspection and heartbeat events are runtime types
//! (`onex::discovery`); their schemas are written by hand here, and a test
//! of the workspace validates the runtime's real events against them.
//!
//! Named types and events are definitions keyed by [`type_key`] and
//! [`event_key`], referred to as `{prefix}{key}`, so the same schemas serve
//! a standalone document (`#/$defs/`) and AsyncAPI (`#/components/schemas/`).

use serde_json::{Map, Value, json};

use crate::spec::{EventSpec, FieldSpec, NodeSpec, TypeKind, TypeSpec, types::TypeExpr};

/// The draft every schema follows.
pub const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The definition key of the runtime's introspection event.
pub const INTROSPECTION_KEY: &str = "onex.NodeIntrospectionEvent";
/// The definition key of the runtime's heartbeat event.
pub const HEARTBEAT_KEY: &str = "onex.NodeHeartbeatEvent";

/// The definition key of a named type of a node: `{node}.{Type}`.
pub fn type_key(node: &NodeSpec, rust_name: &str) -> String {
    format!("{}.{}", node.name, rust_name)
}

/// The definition key of an event: its namespace-free topic for the node's
/// own events (unique in a set of nodes, as the topic holds the service),
/// [`INTROSPECTION_KEY`] or [`HEARTBEAT_KEY`] for the shared ones.
pub fn event_key(event: &EventSpec) -> String {
    if event.shared {
        if event.struct_name.contains("Heartbeat") {
            HEARTBEAT_KEY.to_owned()
        } else {
            INTROSPECTION_KEY.to_owned()
        }
    } else {
        event.topic.clone()
    }
}

/// Every definition of a node, keyed as the module documents: its named
/// types, then its events (shared ones included); references start with
/// `prefix`, e.g. `#/$defs/`.
pub fn node_definitions(node: &NodeSpec, prefix: &str) -> Map<String, Value> {
    let mut defs = Map::new();
    for ty in &node.types {
        defs.insert(type_key(node, &ty.rust_name), type_schema(node, ty, prefix));
    }
    for event in &node.events {
        defs.insert(event_key(event), event_schema(node, event, prefix));
    }
    defs
}

/// The schema of one event's payload.
pub fn event_schema(node: &NodeSpec, event: &EventSpec, prefix: &str) -> Value {
    if event.shared {
        return if event_key(event) == HEARTBEAT_KEY {
            heartbeat_schema()
        } else {
            introspection_schema()
        };
    }
    let mut schema = object_schema(node, &event.fields, prefix);
    schema.insert("title".into(), json!(event.struct_name));
    schema.insert(
        "description".into(),
        json!(format!(
            "{} Event type `{}`, version `{}`, category {}, on the topic `{}`.",
            sentence(&event.doc),
            event.event_type,
            event.version,
            event.category,
            event.topic
        )),
    );
    Value::Object(schema)
}

/// The schema of a named type: an object for a struct, a string enum of the
/// serialized variant names for an enum.
pub fn type_schema(node: &NodeSpec, ty: &TypeSpec, prefix: &str) -> Value {
    let mut schema = match ty.kind {
        TypeKind::Struct => object_schema(node, &ty.fields, prefix),
        TypeKind::Enum => {
            let mut m = Map::new();
            m.insert("type".into(), json!("string"));
            let names: Vec<&str> = ty.variants.iter().map(|v| v.name.as_str()).collect();
            m.insert("enum".into(), json!(names));
            m
        }
    };
    schema.insert("title".into(), json!(ty.rust_name));
    if !ty.doc.is_empty() {
        schema.insert("description".into(), json!(ty.doc));
    }
    Value::Object(schema)
}

fn sentence(doc: &str) -> String {
    let doc = doc.trim();
    if doc.is_empty() || doc.ends_with('.') {
        doc.to_owned()
    } else {
        format!("{doc}.")
    }
}

fn object_schema(node: &NodeSpec, fields: &[FieldSpec], prefix: &str) -> Map<String, Value> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in fields {
        let expr = TypeExpr::parse(&f.contract_type).unwrap_or(TypeExpr::Json);
        let mut schema = match (&expr, f.optional) {
            (TypeExpr::Optional(_), _) | (_, false) => type_expr_schema(node, &expr, prefix),
            // A field the spec made optional without an `optional<T>` type.
            (_, true) => nullable(type_expr_schema(node, &expr, prefix)),
        };
        if !f.optional && !matches!(expr, TypeExpr::Optional(_)) {
            required.push(f.name.clone());
        }
        if !f.doc.is_empty()
            && let Value::Object(m) = &mut schema
        {
            m.insert("description".into(), json!(f.doc));
        }
        properties.insert(f.name.clone(), schema);
    }
    let mut m = Map::new();
    m.insert("type".into(), json!("object"));
    m.insert("properties".into(), Value::Object(properties));
    m.insert("required".into(), json!(required));
    m
}

fn nullable(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

/// The schema of a contract type expression.
pub fn type_expr_schema(node: &NodeSpec, expr: &TypeExpr, prefix: &str) -> Value {
    match expr {
        TypeExpr::String => json!({ "type": "string" }),
        TypeExpr::Bool => json!({ "type": "boolean" }),
        TypeExpr::I32 => json!({ "type": "integer", "minimum": i32::MIN, "maximum": i32::MAX }),
        TypeExpr::I64 => json!({ "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX }),
        TypeExpr::U32 => json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX }),
        TypeExpr::U64 => json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX }),
        TypeExpr::F32 | TypeExpr::F64 => json!({ "type": "number" }),
        TypeExpr::Uuid => json!({ "type": "string", "format": "uuid" }),
        TypeExpr::DateTime => json!({ "type": "string", "format": "date-time" }),
        TypeExpr::Json => json!({}),
        TypeExpr::List(item) => {
            json!({ "type": "array", "items": type_expr_schema(node, item, prefix) })
        }
        TypeExpr::Map(value) => json!({
            "type": "object",
            "additionalProperties": type_expr_schema(node, value, prefix),
        }),
        TypeExpr::Optional(inner) => nullable(type_expr_schema(node, inner, prefix)),
        TypeExpr::Named(name) => {
            if node.types.iter().any(|t| &t.rust_name == name) {
                json!({ "$ref": format!("{prefix}{}", type_key(node, name)) })
            } else {
                // Mapped with `extern_type`: the user's own type.
                json!({ "description": format!("`{name}`: a type of the user's code (extern_type); any JSON value.") })
            }
        }
    }
}

/// The runtime's `NodeIntrospectionEvent`, by hand.
pub fn introspection_schema() -> Value {
    json!({
        "title": "NodeIntrospectionEvent",
        "description": "Published once on start-up so that a registry can discover the node. Event type `omninode.discovery.node_introspection`, version `1.0`, on the topic `omninode.discovery.node_introspection.v1`.",
        "type": "object",
        "properties": {
            "node_id": { "type": "string", "format": "uuid" },
            "node_name": { "type": "string" },
            "version": { "type": "string" },
            "capabilities": {
                "type": "object",
                "properties": {
                    "actions": { "type": "array", "items": { "type": "string" } },
                    "protocols": { "type": "array", "items": { "type": "string" } },
                    "metadata": { "type": "object", "additionalProperties": {} },
                },
                "required": ["actions", "protocols", "metadata"],
            },
            "tags": { "type": "array", "items": { "type": "string" } },
            "health_endpoint": { "type": "string" },
            "correlation_id": { "type": "string", "format": "uuid" },
            "contract_hash": { "anyOf": [{ "type": "string", "pattern": "^[0-9a-f]{16}$" }, { "type": "null" }] },
        },
        "required": ["node_id", "node_name", "version", "capabilities", "tags", "health_endpoint", "correlation_id"],
    })
}

/// The runtime's `NodeHeartbeatEvent`, by hand.
pub fn heartbeat_schema() -> Value {
    json!({
        "title": "NodeHeartbeatEvent",
        "description": "Published periodically while the node runs. Event type `omninode.discovery.node_heartbeat`, version `1.0`, on the topic `omninode.discovery.node_heartbeat.v1`.",
        "type": "object",
        "properties": {
            "node_id": { "type": "string", "format": "uuid" },
            "node_name": { "type": "string" },
            "status": { "type": "string" },
            "uptime_seconds": { "type": "integer", "minimum": 0, "maximum": u64::MAX },
            "timestamp": { "type": "string", "format": "date-time" },
            "interval_seconds": { "anyOf": [{ "type": "integer", "minimum": 0, "maximum": u64::MAX }, { "type": "null" }] },
        },
        "required": ["node_id", "node_name", "status", "uptime_seconds", "timestamp"],
    })
}

/// The `cargo onex schema --events` document for a set of nodes: a JSON
/// Schema whose `$defs` hold every named type (`{node}.{Type}`) and every
/// event payload (keyed by its namespace-free topic; the shared events as
/// [`INTROSPECTION_KEY`] and [`HEARTBEAT_KEY`]). The document itself
/// accepts the payload of any of the events (`anyOf`).
pub fn events_document(nodes: &[NodeSpec]) -> Value {
    let prefix = "#/$defs/";
    let mut defs = Map::new();
    for node in nodes {
        defs.extend(node_definitions(node, prefix));
    }
    let mut events: Vec<String> = nodes
        .iter()
        .flat_map(|n| n.events.iter().map(event_key))
        .collect();
    events.sort();
    events.dedup();
    let any: Vec<Value> = events
        .iter()
        .map(|k| json!({ "$ref": format!("{prefix}{k}") }))
        .collect();
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    json!({
        "$schema": DRAFT,
        "title": format!("Event payloads of {}", names.join(", ")),
        "$defs": defs,
        "anyOf": any,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{contract::load_str, spec::SpecOptions};

    fn node(yaml: &str) -> NodeSpec {
        let loaded = load_str(Path::new("t.yaml"), yaml.to_owned()).expect("loads");
        crate::spec::build(&loaded, &SpecOptions::default()).expect("builds")
    }

    const CONTRACT: &str = "
contract_version: 1
node: { name: shop, node_type: effect, version: 1.0.0, domain: shop }
types:
  - name: Colour
    variants:
      - name: red
      - name: dark_blue
  - name: Item
    fields:
      - { name: ids, type: list<optional<uuid>> }
      - { name: counts, type: map<u32> }
      - { name: colour, type: Colour }
      - { name: note, type: optional<string> }
      - { name: delta, type: i32 }
      - { name: at, type: datetime }
      - { name: extra, type: json }
      - { name: ratio, type: f64 }
      - { name: done, type: bool }
events:
  - name: item_added
    fields:
      - { name: item, type: Item }
      - { name: size, type: u64 }
";

    #[test]
    fn contract_types_map_to_json_schema() {
        let node = node(CONTRACT);
        let defs = node_definitions(&node, "#/$defs/");
        let item = &defs["shop.Item"];
        let p = &item["properties"];
        assert_eq!(p["ids"]["type"], json!("array"));
        assert_eq!(
            p["ids"]["items"],
            json!({ "anyOf": [{ "type": "string", "format": "uuid" }, { "type": "null" }] })
        );
        assert_eq!(p["counts"]["additionalProperties"]["minimum"], json!(0));
        assert_eq!(
            p["counts"]["additionalProperties"]["maximum"],
            json!(u32::MAX)
        );
        assert_eq!(p["colour"]["$ref"], json!("#/$defs/shop.Colour"));
        assert_eq!(p["note"]["anyOf"][1], json!({ "type": "null" }));
        assert_eq!(p["delta"]["minimum"], json!(i32::MIN));
        assert_eq!(p["at"]["format"], json!("date-time"));
        assert_eq!(p["extra"].get("type"), None);
        assert_eq!(p["ratio"]["type"], json!("number"));
        assert_eq!(p["done"]["type"], json!("boolean"));
        let required: Vec<&str> = item["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(!required.contains(&"note") && required.contains(&"ids"));
        assert_eq!(
            item.get("additionalProperties"),
            None,
            "structs accept unknown fields"
        );
        assert_eq!(defs["shop.Colour"]["enum"], json!(["red", "dark_blue"]));
        let added = defs
            .iter()
            .find(|(_, v)| v["title"] == json!("ItemAdded"))
            .map(|(_, v)| v)
            .expect("the custom event");
        assert_eq!(
            added["properties"]["item"]["$ref"],
            json!("#/$defs/shop.Item")
        );
        assert!(defs.contains_key(INTROSPECTION_KEY) && defs.contains_key(HEARTBEAT_KEY));
    }

    #[test]
    fn the_events_document_is_the_same_on_every_run() {
        let nodes = [node(CONTRACT)];
        assert_eq!(events_document(&nodes), events_document(&nodes));
        assert_eq!(events_document(&nodes)["$schema"], json!(DRAFT));
    }
}
