//! Stage 3, build contract: a [`LoadedContract`](crate::contract::LoadedContract)
//! that passed the gates normalized into a [`NodeSpec`], the plain data model
//! every template renders.
//!
//! The spec fills in defaults (`service` defaults to `name`), derives every
//! name the generated code uses (`NodePostgresWriterEffect`,
//! `PostgresWriterEvent`, `WriteRecordStarted`, ...), resolves contract field
//! types to Rust types, and lists every event of the node, custom and derived
//! (seed 002), with its event type, version, category and topic. Its order is
//! the contract's order, so rendering it is deterministic. The derived events
//! are listed once, in `derived`, which the gates read too.

mod build;
pub(crate) mod derived;
pub mod types;

use std::collections::BTreeMap;

use serde::Serialize;

pub use build::{SpecOptions, build};

/// Everything the templates need to know about one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSpec {
    /// The contract's file name (no directories), e.g. `postgres_writer.yaml`.
    pub contract_file: String,
    /// The snake_case node name, e.g. `postgres_writer`; also the name of the
    /// generated file (`postgres_writer.rs`).
    pub name: String,
    /// The PascalCase node name, e.g. `PostgresWriter`.
    pub pascal_name: String,
    /// `effect`, `compute`, `reducer` or `orchestrator`.
    pub node_type: String,
    /// `Effect`, `Compute`, `Reducer` or `Orchestrator`.
    pub node_type_pascal: String,
    /// The node struct name, `Node{Name}{Type}`, e.g. `NodePostgresWriterEffect`.
    pub node_struct: String,
    /// The event enum name, `{Name}Event`, e.g. `PostgresWriterEvent`.
    pub event_enum: String,
    /// The node's semver version.
    pub version: String,
    /// The contract hash ([`crate::contract::contract_hash`]).
    pub contract_hash: String,
    /// The node's domain.
    pub domain: String,
    /// The service name used in topics (defaults to `name`).
    pub service: String,
    /// The node's description (generated when the contract has none).
    pub description: String,
    /// The path of the runtime crate, e.g. `::onex`.
    pub runtime: String,
    /// The named types to generate, in contract order. Types mapped with
    /// `extern_type` are not listed.
    pub types: Vec<TypeSpec>,
    /// The operations, in contract order.
    pub operations: Vec<OperationSpec>,
    /// Every event of the node: custom events, then the derived ones, then
    /// the shared introspection and heartbeat events.
    pub events: Vec<EventSpec>,
    /// Topics of other nodes this node consumes, in contract order.
    pub subscriptions: Vec<SubscriptionSpec>,
    /// The FSM, if the contract has states.
    pub states: Option<StateMachineSpec>,
    /// The workflow of an orchestrator.
    pub workflow: Option<WorkflowSpec>,
    /// The aggregation of a reducer.
    pub aggregation: Option<AggregationSpec>,
    /// What the introspection event announces.
    pub introspection: IntrospectionSpec,
    /// Event-bus settings with defaults applied.
    pub event_bus: EventBusSpec,
}

impl NodeSpec {
    /// The event with this event type, if any.
    pub fn event(&self, event_type: &str) -> Option<&EventSpec> {
        self.events.iter().find(|e| e.event_type == event_type)
    }

    /// Every event type, in the order of [`NodeSpec::events`].
    pub fn event_types(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.event_type.as_str()).collect()
    }
}

/// Whether a named type is a struct or an enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeKind {
    /// A struct with named fields.
    Struct,
    /// An enum of unit variants.
    Enum,
}

/// A named type declared in the contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeSpec {
    /// The type's path for `type_attribute`, `{node}.{Type}`.
    pub path: String,
    /// The Rust (and contract) name, PascalCase.
    pub rust_name: String,
    /// Doc text.
    pub doc: String,
    /// Struct or enum.
    pub kind: TypeKind,
    /// Fields (structs).
    pub fields: Vec<FieldSpec>,
    /// Variants (enums).
    pub variants: Vec<VariantSpec>,
    /// Whether every field allows deriving `Eq` (and `Copy`/`Hash` for enums).
    pub derive_eq: bool,
    /// Extra attributes from `type_attribute`, rendered verbatim.
    pub attributes: Vec<String>,
}

/// A field of a struct or event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldSpec {
    /// The serialized name, snake_case.
    pub name: String,
    /// The Rust identifier (`r#type` for keywords).
    pub ident: String,
    /// The canonical contract type, e.g. `list<string>`.
    pub contract_type: String,
    /// The Rust type.
    pub rust_type: String,
    /// Doc text.
    pub doc: String,
    /// Whether the field is `optional<T>` (skipped when `None`).
    pub optional: bool,
    /// Extra attributes from `field_attribute`, rendered verbatim.
    pub attributes: Vec<String>,
}

/// A variant of an enum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantSpec {
    /// The serialized value, as written in the contract.
    pub name: String,
    /// The Rust variant, PascalCase.
    pub rust_name: String,
    /// Doc text.
    pub doc: String,
    /// An explicit serde rename, when `rename_all = "snake_case"` would not
    /// give back `name`.
    pub rename: Option<String>,
}

/// An operation of the node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationSpec {
    /// snake_case name.
    pub name: String,
    /// PascalCase name.
    pub pascal_name: String,
    /// Doc text.
    pub doc: String,
    /// The input's Rust type.
    pub input: String,
    /// The output's Rust type.
    pub output: String,
    /// The input's Rust type as written in a node crate, outside the
    /// contract's module: its named types as `crate::events::Name`.
    pub crate_input: String,
    /// The output's Rust type as written in a node crate.
    pub crate_output: String,
    /// Whether running it twice has the effect of running it once.
    pub idempotent: bool,
}

/// Where an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Declared under `events`.
    Custom,
    /// `{node_type}.{op}.started`
    OperationStarted,
    /// `{node_type}.{op}.completed`
    OperationCompleted,
    /// `{node_type}.{op}.failed`
    OperationFailed,
    /// `{node_type}.state.changed`
    StateChanged,
    /// `{node_type}.metric.recorded`
    MetricRecorded,
    /// `{node_type}.workflow.{step}.started`
    StepStarted,
    /// `{node_type}.workflow.{step}.completed`
    StepCompleted,
    /// `{node_type}.workflow.{step}.failed`
    StepFailed,
    /// `{node_type}.workflow.completed`
    WorkflowCompleted,
    /// `{node_type}.workflow.failed`
    WorkflowFailed,
    /// `{node_type}.state.updated` (reducers)
    StateUpdated,
    /// The runtime's shared introspection event.
    Introspection,
    /// The runtime's shared heartbeat event.
    Heartbeat,
}

/// One event of the node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventSpec {
    /// Where it comes from.
    pub kind: EventKind,
    /// The Rust type: a struct generated in the module, or a runtime path
    /// for shared events.
    pub rust_path: String,
    /// The struct name (the last segment of `rust_path`).
    pub struct_name: String,
    /// The variant of the event enum.
    pub variant: String,
    /// The topic constant's name in `topics`, SHOUTY_SNAKE_CASE.
    pub const_name: String,
    /// The type's path for `type_attribute`, `{node}.{Struct}`.
    pub path: String,
    /// The event type, e.g. `effect.write_record.started`.
    pub event_type: String,
    /// The payload version, e.g. `1.0`.
    pub version: String,
    /// `Event`, `Command` or `Intent` (the runtime's `MessageCategory`).
    pub category: String,
    /// The namespace-free topic, `{service}.{event_type}.v1`.
    pub topic: String,
    /// Whether this is a runtime type rather than a generated struct.
    pub shared: bool,
    /// Payload fields (empty for shared events).
    pub fields: Vec<FieldSpec>,
    /// Doc text.
    pub doc: String,
    /// Whether every field allows deriving `Eq`.
    pub derive_eq: bool,
    /// Extra attributes from `type_attribute`, rendered verbatim.
    pub attributes: Vec<String>,
    /// The operation (operation events) or workflow step (step events).
    pub operation: Option<String>,
    /// Workflow step events: the step's 0-based index.
    pub step_index: Option<usize>,
    /// Operation started/completed events: field name to contract type name
    /// of the operation's input (started) or output (completed), the privacy
    /// preserving summary of seed 002.
    pub summary: BTreeMap<String, String>,
    /// Operation completed events: the Rust names of the output's
    /// summary-only fields, which the published result leaves `None`.
    pub summary_only: Vec<String>,
}

/// A subscription to another node's topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionSpec {
    /// The namespace-free topic.
    pub topic: String,
    /// The handling operation, if any.
    pub operation: Option<String>,
    /// Doc text.
    pub doc: String,
}

/// The node's finite state machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateMachineSpec {
    /// The initial state's Rust variant.
    pub initial: String,
    /// Every state, in contract order.
    pub states: Vec<VariantSpec>,
    /// Allowed transitions, in contract order.
    pub transitions: Vec<TransitionSpec>,
}

/// An allowed transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionSpec {
    /// From state (Rust variant).
    pub from: String,
    /// To state (Rust variant).
    pub to: String,
    /// From state, as the contract names it.
    pub from_name: String,
    /// To state, as the contract names it.
    pub to_name: String,
    /// What triggers it, if given.
    pub on: Option<String>,
    /// Whether an earlier transition has the same `from` and `to` (with
    /// another trigger): listed in the docs, but not matched twice, which
    /// would be an unreachable pattern.
    pub repeated: bool,
}

/// An orchestrator's workflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowSpec {
    /// The steps, in order.
    pub steps: Vec<StepSpec>,
    /// Timeout of the whole workflow in seconds (default 60).
    pub timeout_seconds: u64,
}

/// A workflow step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepSpec {
    /// snake_case name.
    pub name: String,
    /// PascalCase name.
    pub pascal_name: String,
    /// Doc text.
    pub doc: String,
    /// The operation it runs, if any.
    pub operation: Option<String>,
}

/// A reducer's aggregation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregationSpec {
    /// Namespace-free topics it aggregates.
    pub topics: Vec<String>,
    /// The window in milliseconds (default 5000).
    pub window_ms: u64,
    /// The Rust type of the aggregated state.
    pub state_type: String,
    /// The same type as written in a node crate (see
    /// [`OperationSpec::crate_input`]).
    pub crate_state_type: String,
}

/// What the introspection event announces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntrospectionSpec {
    /// `execute_{node_type}`, `validate_input`, one per operation, then the
    /// contract's extra actions; no duplicates.
    pub actions: Vec<String>,
    /// Protocols.
    pub protocols: Vec<String>,
    /// `node_type`, `domain`, `service_name`.
    pub metadata: BTreeMap<String, String>,
    /// Contract tags, domain, node type, service; no duplicates.
    pub tags: Vec<String>,
    /// The health endpoint.
    pub health_endpoint: String,
}

/// Event-bus settings with defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventBusSpec {
    /// Whether stage 4.5 applies (always for effect and orchestrator).
    pub enabled: bool,
    /// The consumer group (default `{service}_consumers`).
    pub consumer_group: String,
    /// The dead-letter topic (default `{service}.dlq.v1`).
    pub dead_letter_topic: String,
    /// The heartbeat interval in seconds (default 30).
    pub heartbeat_interval_seconds: u64,
    /// Messages one subscription handles at once (default 64).
    pub max_in_flight: u64,
}
