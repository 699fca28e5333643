//! The contract format, version 1, as a serde model.
//!
//! Every struct denies unknown keys, so a misspelt key is an error rather
//! than a silently ignored setting. `docs/contracts.md` is the reference.

use serde::{Deserialize, Serialize};

/// A node contract: one YAML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// The format version; must be `1`.
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 1)))]
    pub contract_version: u32,
    /// Who the node is.
    pub node: NodeIdentity,
    /// What the node offers for discovery.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Named types (structs and enums) the contract's fields may refer to.
    #[serde(default)]
    pub types: Vec<TypeDef>,
    /// The node's operations; each derives started/completed/failed events.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Custom domain events, commands and intents.
    #[serde(default)]
    pub events: Vec<EventDef>,
    /// Contracts of other nodes whose events this node reacts to.
    #[serde(default)]
    pub consumes: Vec<ConsumedContractDef>,
    /// Other nodes' events and topics this node consumes.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionDef>,
    /// Commands this node sends to other nodes, each awaiting its answer.
    #[serde(default)]
    pub requests: Vec<RequestDef>,
    /// FSM states of the node.
    #[serde(default)]
    pub states: Option<StateMachine>,
    /// Orchestrators: the workflow they drive.
    #[serde(default)]
    pub workflow: Option<Workflow>,
    /// Reducers: what they aggregate.
    #[serde(default)]
    pub aggregation: Option<Aggregation>,
    /// Event-bus options.
    #[serde(default)]
    pub event_bus: EventBusOptions,
}

/// The four kinds of ONEX node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeType {
    /// Does I/O.
    Effect,
    /// A pure transformation.
    Compute,
    /// Aggregates events into state.
    Reducer,
    /// Drives a workflow.
    Orchestrator,
}

impl NodeType {
    /// The lower-case name used in event types: `effect`, `compute`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            NodeType::Effect => "effect",
            NodeType::Compute => "compute",
            NodeType::Reducer => "reducer",
            NodeType::Orchestrator => "orchestrator",
        }
    }

    /// Every node type, for "did you mean" suggestions.
    pub const ALL: [NodeType; 4] = [
        NodeType::Effect,
        NodeType::Compute,
        NodeType::Reducer,
        NodeType::Orchestrator,
    ];
}

/// Node identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NodeIdentity {
    /// snake_case node name, e.g. `postgres_writer`.
    pub name: String,
    /// The kind of node.
    pub node_type: NodeType,
    /// Semver version, e.g. `1.0.0`.
    pub version: String,
    /// The domain, e.g. `database`.
    pub domain: String,
    /// The service name used in topics; defaults to `name`.
    #[serde(default)]
    pub service: Option<String>,
    /// What the node does.
    #[serde(default)]
    pub description: Option<String>,
    /// Discovery tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Capabilities announced in the introspection event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Protocols the node speaks; default `[kafka]`.
    #[serde(default = "default_protocols")]
    pub protocols: Vec<String>,
    /// The health endpoint; default `/health`.
    #[serde(default = "default_health_endpoint")]
    pub health_endpoint: String,
    /// Extra actions besides the derived `execute_{node_type}`,
    /// `validate_input` and one per operation.
    #[serde(default)]
    pub actions: Vec<String>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            protocols: default_protocols(),
            health_endpoint: default_health_endpoint(),
            actions: Vec::new(),
        }
    }
}

fn default_protocols() -> Vec<String> {
    vec!["kafka".to_owned()]
}

fn default_health_endpoint() -> String {
    "/health".to_owned()
}

/// A named type: a struct (`fields`) or an enum (`variants`), not both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TypeDef {
    /// PascalCase type name, e.g. `OrderLine`.
    pub name: String,
    /// Doc text.
    #[serde(default)]
    pub description: Option<String>,
    /// Fields of a struct.
    #[serde(default)]
    pub fields: Option<Vec<Field>>,
    /// Variants of an enum (snake_case; serialized as written).
    #[serde(default)]
    pub variants: Option<Vec<Variant>>,
}

/// A field of a struct, an operation's input, or an event payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// snake_case field name.
    pub name: String,
    /// The field type: `string`, `bool`, `i32`, `i64`, `u32`, `u64`, `f32`,
    /// `f64`, `uuid`, `datetime`, `json`, `list<T>`, `map<T>` (string keys),
    /// `optional<T>`, or a type declared under `types`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Doc text.
    #[serde(default)]
    pub description: Option<String>,
    /// In an operation's output: the completed event carries the field's
    /// name and type only, never its value (the field must be
    /// `optional<T>`; it is `None` in the published result).
    #[serde(default)]
    pub summary_only: bool,
}

/// An enum variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// snake_case variant name (the serialized value).
    pub name: String,
    /// Doc text.
    #[serde(default)]
    pub description: Option<String>,
}

/// An operation of the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// snake_case operation name, e.g. `write_record`.
    pub name: String,
    /// Doc text.
    #[serde(default)]
    pub description: Option<String>,
    /// The input type (declared under `types`).
    pub input: String,
    /// The output type (declared under `types`).
    pub output: String,
    /// Whether running it twice has the effect of running it once.
    #[serde(default)]
    pub idempotent: bool,
}

/// Category of a custom message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A fact that happened.
    #[default]
    Event,
    /// An instruction to act.
    Command,
    /// An intent to interpret.
    Intent,
}

/// A custom domain event, command or intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EventDef {
    /// snake_case name; the event type is `{node_type}.{name}` unless
    /// `event_type` is given.
    pub name: String,
    /// Event, command or intent; default event.
    #[serde(default)]
    pub category: Category,
    /// An explicit dotted event type.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Payload schema version; default `1.0`.
    #[serde(default)]
    pub version: Option<String>,
    /// Doc text.
    #[serde(default)]
    pub description: Option<String>,
    /// Payload fields.
    #[serde(default)]
    pub fields: Vec<Field>,
}

/// Another node's contract, whose events this node's `event:`
/// subscriptions name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsumedContractDef {
    /// The contract file: relative to this contract's folder, else to a
    /// folder of the contract search path.
    pub contract: String,
}

/// A subscription: another node's event (`event`), typed by that node's
/// contract, or a raw topic (`topic`) whose payload is an operation's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SubscriptionDef {
    /// `{consumed node name}.{event name}`: an event a consumed contract
    /// publishes, custom or derived.
    #[serde(default)]
    pub event: Option<String>,
    /// The major version of that event the node expects, e.g. `"1"`.
    #[serde(default)]
    pub version: Option<String>,
    /// The namespace-free topic, `{service}.{event_type}.v1`.
    #[serde(default)]
    pub topic: Option<String>,
    /// The operation that handles it, if any.
    #[serde(default)]
    pub operation: Option<String>,
    /// Doc text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A command this node sends to a consumed node, and the events that
/// answer it: the node's generated `requests()` sends it and awaits the
/// completed event, the failed event (as a typed error) or the timeout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestDef {
    /// snake_case name of the request, which names its method.
    pub name: String,
    /// `{consumed node}.{command}`: the command sent.
    pub send: String,
    /// `{consumed node}.{event}`: the event that completes the request.
    pub completed_by: String,
    /// `{consumed node}.{event}`: the failed event that fails it; one the
    /// generator derives (an operation's, a step's or a workflow's), which
    /// carries the error.
    pub failed_by: String,
    /// How long to wait for the answer, in seconds; default 30.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Doc text.
    #[serde(default)]
    pub description: Option<String>,
}

/// The node's finite state machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StateMachine {
    /// The state the node starts in.
    pub initial: String,
    /// Every state (snake_case).
    pub states: Vec<String>,
    /// Allowed transitions.
    #[serde(default)]
    pub transitions: Vec<Transition>,
}

/// An allowed state transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// From state.
    pub from: String,
    /// To state.
    pub to: String,
    /// Why it happens.
    #[serde(default)]
    pub on: Option<String>,
}

/// An orchestrator's workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    /// The steps, run in order.
    pub steps: Vec<WorkflowStep>,
    /// Timeout of the whole workflow in seconds; default 60.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// One workflow step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkflowStep {
    /// snake_case step name.
    pub name: String,
    /// Doc text.
    #[serde(default)]
    pub description: Option<String>,
    /// The operation the step runs, if any.
    #[serde(default)]
    pub operation: Option<String>,
    /// `{consumed node}.{command}`: the command that has another node
    /// perform the step; excludes `operation`.
    #[serde(default)]
    pub send: Option<String>,
    /// With `send`: the consumed node's event that completes the step.
    #[serde(default)]
    pub completed_by: Option<String>,
    /// With `send`: the consumed node's failed event that fails the step.
    #[serde(default)]
    pub failed_by: Option<String>,
    /// With `send`: how long to wait for the answer, in seconds; default
    /// the workflow's timeout.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// A reducer's aggregation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Aggregation {
    /// Namespace-free topics to aggregate.
    pub topics: Vec<String>,
    /// The aggregation window in milliseconds; default 5000.
    #[serde(default)]
    pub window_ms: Option<u64>,
    /// The type of the aggregated state (declared under `types`).
    #[serde(default)]
    pub state: Option<String>,
}

/// Event-bus options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EventBusOptions {
    /// Stage 4.5 for compute and reducer nodes (always on for effect and
    /// orchestrator nodes).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The consumer group; default `{service}_consumers`.
    #[serde(default)]
    pub consumer_group: Option<String>,
    /// The dead-letter topic (namespace-free).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Heartbeat interval in seconds; default 30.
    #[serde(default)]
    pub heartbeat_interval_seconds: Option<u64>,
    /// Messages one subscription handles at once (in order per key);
    /// default 64, `KAFKA_MAX_IN_FLIGHT` overrides it.
    #[serde(default)]
    pub max_in_flight: Option<u64>,
}
