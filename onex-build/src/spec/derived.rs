//! The derived events of a contract (seed 002), listed once: what the
//! build stage generates for them (struct, event type, docs, payload), and
//! what the gates that keep contract names off them (QC-003, QC-004) and
//! the gates that subscribe to them (XR-003) read.
//!
//! Every node has, per operation, `{op}_started`, `{op}_completed` and
//! `{op}_failed`, then `state_changed` and `metric_recorded`; an
//! orchestrator has, per workflow step, `{step}_step_started`,
//! `{step}_step_completed` and `{step}_step_failed`, then
//! `workflow_completed` and `workflow_failed`; a reducer has
//! `state_updated`. Beside them, every node publishes the runtime's shared
//! introspection and heartbeat events ([`SHARED_EVENTS`]).

use super::{EventKind, types::TypeExpr};
use crate::contract::{Contract, NodeType};
use crate::naming::to_pascal_case;

/// What a derived event is generated from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The operation at this index of `operations`.
    Operation(usize),
    /// The step at this index of `workflow.steps`.
    Step(usize),
    /// The node itself.
    Node,
}

/// One derived event of a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DerivedEvent {
    /// Which derived event it is.
    pub kind: EventKind,
    /// Its snake_case name, as a subscription names it:
    /// `write_record_started`, `persist_step_failed`, `state_changed`.
    pub name: String,
    /// Its event type, e.g. `effect.write_record.started`.
    pub event_type: String,
    /// What it is generated from.
    pub source: Source,
    /// What it is, for diagnostics: "the `started` event of operation
    /// `write_record`", "the derived state-changed event".
    pub description: String,
}

impl DerivedEvent {
    /// Its struct (and event enum variant), `WriteRecordStarted`.
    pub fn struct_name(&self) -> String {
        to_pascal_case(&self.name)
    }

    /// The field path of what it is generated from, `operations[0]` or
    /// `workflow.steps[1]`; `None` for the node's own derived events.
    pub fn source_path(&self) -> Option<String> {
        match self.source {
            Source::Operation(i) => Some(format!("operations[{i}]")),
            Source::Step(i) => Some(format!("workflow.steps[{i}]")),
            Source::Node => None,
        }
    }

    /// [`DerivedEvent::description`] with the source's path, when it has
    /// one: "the `started` event of operation `write` (operations[0])".
    pub fn origin(&self) -> String {
        match self.source_path() {
            Some(path) => format!("{} ({path})", self.description),
            None => self.description.clone(),
        }
    }

    /// The name of the operation or step it is generated from.
    fn source_name<'c>(&self, c: &'c Contract) -> &'c str {
        match self.source {
            Source::Operation(i) => &c.operations[i].name,
            Source::Step(i) => c.workflow.as_ref().map_or("", |w| &w.steps[i].name),
            Source::Node => "",
        }
    }

    /// Its doc comment.
    pub fn doc(&self, c: &Contract) -> String {
        let name = self.source_name(c);
        match self.kind {
            EventKind::OperationStarted => {
                format!("Published when the `{name}` operation starts.")
            }
            EventKind::OperationCompleted => {
                format!("Published when the `{name}` operation succeeds.")
            }
            EventKind::OperationFailed => format!("Published when the `{name}` operation fails."),
            EventKind::StepStarted => format!("Published when the workflow step `{name}` starts."),
            EventKind::StepCompleted => {
                format!("Published when the workflow step `{name}` succeeds.")
            }
            EventKind::StepFailed => format!("Published when the workflow step `{name}` fails."),
            EventKind::StateChanged => {
                "Published when the node's state machine moves to another state.".to_owned()
            }
            EventKind::MetricRecorded => {
                "Published when the node records a performance or observability metric.".to_owned()
            }
            EventKind::WorkflowCompleted => {
                "Published when every step of the workflow succeeded.".to_owned()
            }
            EventKind::WorkflowFailed => {
                "Published when a step of the workflow failed and the workflow stopped.".to_owned()
            }
            EventKind::StateUpdated => {
                "Published when an aggregation window closes with a new aggregated state."
                    .to_owned()
            }
            EventKind::Custom | EventKind::Introspection | EventKind::Heartbeat => String::new(),
        }
    }

    /// Its payload: each field's name, type and doc, in order. `state` is
    /// the type of a reducer's aggregated state; a failed event's
    /// `recovery_suggestions` is added by the build stage.
    pub fn fields(
        &self,
        c: &Contract,
        state: &TypeExpr,
    ) -> Vec<(&'static str, TypeExpr, &'static str)> {
        use TypeExpr as T;
        let map = || T::Map(Box::new(T::String));
        let meta = || T::Optional(Box::new(T::Json));
        let optional_json = || T::Optional(Box::new(T::Json));
        let correlation = (
            "correlation_id",
            T::Uuid,
            "Correlates the events of one request.",
        );
        let node_id = ("node_id", T::Uuid, "The publishing node's id.");
        let step_head = || {
            vec![
                ("workflow_id", T::Uuid, "The workflow run's id."),
                correlation.clone(),
                node_id.clone(),
                ("step", T::String, "The step's name."),
                (
                    "step_index",
                    T::U32,
                    "The step's 0-based position in the workflow.",
                ),
            ]
        };
        let workflow_head = || {
            vec![
                ("workflow_id", T::Uuid, "The workflow run's id."),
                correlation.clone(),
                node_id.clone(),
            ]
        };
        let with = |mut head: Vec<(&'static str, TypeExpr, &'static str)>,
                    tail: Vec<(&'static str, TypeExpr, &'static str)>| {
            head.extend(tail);
            head
        };
        match self.kind {
            EventKind::OperationStarted => vec![
                ("operation", T::String, "The operation's name."),
                correlation.clone(),
                node_id.clone(),
                (
                    "started_at",
                    T::DateTime,
                    "When the operation started (UTC).",
                ),
                (
                    "input_summary",
                    map(),
                    "The input's field names and their types (never the values).",
                ),
                ("metadata", meta(), "Extra observability metadata."),
            ],
            EventKind::OperationCompleted => {
                let output = match self.source {
                    Source::Operation(i) => TypeExpr::parse(&c.operations[i].output).ok(),
                    _ => None,
                };
                vec![
                    ("operation", T::String, "The operation's name."),
                    correlation.clone(),
                    node_id.clone(),
                    (
                        "completed_at",
                        T::DateTime,
                        "When the operation completed (UTC).",
                    ),
                    (
                        "execution_time_ms",
                        T::F64,
                        "How long the operation ran, in milliseconds.",
                    ),
                    (
                        "result_summary",
                        map(),
                        "The result's field names and their types.",
                    ),
                    (
                        "result",
                        output.unwrap_or(T::Json),
                        "The operation's result; its summary-only fields are `None` (their types are in `result_summary`).",
                    ),
                    (
                        "success",
                        T::Bool,
                        "Always `true` for a completed operation.",
                    ),
                    ("metadata", meta(), "Extra observability metadata."),
                ]
            }
            EventKind::OperationFailed => vec![
                ("operation", T::String, "The operation's name."),
                correlation.clone(),
                node_id.clone(),
                ("failed_at", T::DateTime, "When the operation failed (UTC)."),
                (
                    "execution_time_ms",
                    T::F64,
                    "How long the operation ran, in milliseconds.",
                ),
                ("error_message", T::String, "What went wrong."),
                (
                    "error_type",
                    T::String,
                    "The kind of error, e.g. `timeout`.",
                ),
                ("error_details", meta(), "Structured details of the error."),
                ("metadata", meta(), "Extra observability metadata."),
            ],
            EventKind::StateChanged => vec![
                node_id.clone(),
                ("node_type", T::String, "The node type, e.g. `effect`."),
                correlation.clone(),
                ("changed_at", T::DateTime, "When the state changed (UTC)."),
                ("old_state", T::String, "The previous state."),
                ("new_state", T::String, "The new state."),
                ("transition_reason", T::String, "Why the state changed."),
                ("metadata", meta(), "Extra observability metadata."),
            ],
            EventKind::MetricRecorded => vec![
                node_id.clone(),
                ("node_type", T::String, "The node type, e.g. `effect`."),
                correlation.clone(),
                (
                    "recorded_at",
                    T::DateTime,
                    "When the metric was recorded (UTC).",
                ),
                (
                    "metric_name",
                    T::String,
                    "The metric's name, e.g. `rows_written`.",
                ),
                ("value", T::F64, "The measured value."),
                (
                    "unit",
                    T::Optional(Box::new(T::String)),
                    "The unit, e.g. `ms`.",
                ),
                (
                    "tags",
                    T::Map(Box::new(T::String)),
                    "Dimensions of the measurement.",
                ),
            ],
            EventKind::StepStarted => with(
                step_head(),
                vec![("started_at", T::DateTime, "When the step started (UTC).")],
            ),
            EventKind::StepCompleted => with(
                step_head(),
                vec![
                    (
                        "completed_at",
                        T::DateTime,
                        "When the step completed (UTC).",
                    ),
                    (
                        "duration_ms",
                        T::F64,
                        "How long the step ran, in milliseconds.",
                    ),
                    ("result", optional_json(), "The step's result, if any."),
                ],
            ),
            EventKind::StepFailed => with(
                step_head(),
                vec![
                    ("failed_at", T::DateTime, "When the step failed (UTC)."),
                    (
                        "duration_ms",
                        T::F64,
                        "How long the step ran, in milliseconds.",
                    ),
                    ("error_message", T::String, "What went wrong."),
                    (
                        "error_type",
                        T::String,
                        "The kind of error, e.g. `timeout`.",
                    ),
                ],
            ),
            EventKind::WorkflowCompleted => with(
                workflow_head(),
                vec![
                    (
                        "completed_at",
                        T::DateTime,
                        "When the workflow completed (UTC).",
                    ),
                    (
                        "steps_completed",
                        T::List(Box::new(T::String)),
                        "The steps that ran, in order.",
                    ),
                    (
                        "total_duration_ms",
                        T::F64,
                        "How long the workflow ran, in milliseconds.",
                    ),
                    ("result", optional_json(), "The workflow's result, if any."),
                ],
            ),
            EventKind::WorkflowFailed => with(
                workflow_head(),
                vec![
                    ("failed_at", T::DateTime, "When the workflow failed (UTC)."),
                    ("failed_step", T::String, "The step that failed."),
                    (
                        "steps_completed",
                        T::List(Box::new(T::String)),
                        "The steps that succeeded before the failure, in order.",
                    ),
                    (
                        "total_duration_ms",
                        T::F64,
                        "How long the workflow ran, in milliseconds.",
                    ),
                    ("error_message", T::String, "What went wrong."),
                    (
                        "error_type",
                        T::String,
                        "The kind of error, e.g. `timeout`.",
                    ),
                ],
            ),
            EventKind::StateUpdated => vec![
                (
                    "aggregate_id",
                    T::String,
                    "The aggregate the state belongs to.",
                ),
                ("state", state.clone(), "The aggregated state."),
                (
                    "event_count",
                    T::U64,
                    "How many events the state aggregates.",
                ),
                (
                    "window_ms",
                    T::U64,
                    "The aggregation window, in milliseconds.",
                ),
                (
                    "updated_at",
                    T::DateTime,
                    "When the state was updated (UTC).",
                ),
            ],
            EventKind::Custom | EventKind::Introspection | EventKind::Heartbeat => Vec::new(),
        }
    }
}

/// The three events of an operation or a workflow step.
const STAGES: [&str; 3] = ["started", "completed", "failed"];

/// Every derived event of `c`, in the order the generated code lists them:
/// the operations' (three each, in contract order), `state_changed`,
/// `metric_recorded`, then an orchestrator's steps' (three each) and
/// `workflow_completed`, `workflow_failed`, then a reducer's
/// `state_updated`.
pub(crate) fn derived_events(c: &Contract) -> Vec<DerivedEvent> {
    let node_type = c.node.node_type.as_str();
    let mut out = Vec::new();
    for (i, op) in c.operations.iter().enumerate() {
        let kinds = [
            EventKind::OperationStarted,
            EventKind::OperationCompleted,
            EventKind::OperationFailed,
        ];
        for (kind, stage) in kinds.into_iter().zip(STAGES) {
            out.push(DerivedEvent {
                kind,
                name: format!("{}_{stage}", op.name),
                event_type: format!("{node_type}.{}.{stage}", op.name),
                source: Source::Operation(i),
                description: format!("the `{stage}` event of operation `{}`", op.name),
            });
        }
    }
    let node = |kind, name: &str, event_type: &str, what: &str| DerivedEvent {
        kind,
        name: name.to_owned(),
        event_type: format!("{node_type}.{event_type}"),
        source: Source::Node,
        description: format!("the derived {what} event"),
    };
    out.push(node(
        EventKind::StateChanged,
        "state_changed",
        "state.changed",
        "state-changed",
    ));
    out.push(node(
        EventKind::MetricRecorded,
        "metric_recorded",
        "metric.recorded",
        "metric-recorded",
    ));
    match c.node.node_type {
        NodeType::Orchestrator => {
            for (i, step) in c.workflow.iter().flat_map(|w| w.steps.iter()).enumerate() {
                let kinds = [
                    EventKind::StepStarted,
                    EventKind::StepCompleted,
                    EventKind::StepFailed,
                ];
                for (kind, stage) in kinds.into_iter().zip(STAGES) {
                    out.push(DerivedEvent {
                        kind,
                        name: format!("{}_step_{stage}", step.name),
                        event_type: format!("{node_type}.workflow.{}.{stage}", step.name),
                        source: Source::Step(i),
                        description: format!(
                            "the `{stage}` event of workflow step `{}`",
                            step.name
                        ),
                    });
                }
            }
            out.push(node(
                EventKind::WorkflowCompleted,
                "workflow_completed",
                "workflow.completed",
                "workflow-completed",
            ));
            out.push(node(
                EventKind::WorkflowFailed,
                "workflow_failed",
                "workflow.failed",
                "workflow-failed",
            ));
        }
        NodeType::Reducer => out.push(node(
            EventKind::StateUpdated,
            "state_updated",
            "state.updated",
            "state-updated",
        )),
        NodeType::Effect | NodeType::Compute => {}
    }
    out
}

/// One of the runtime's events that every node publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SharedEvent {
    /// Which one.
    pub kind: EventKind,
    /// Its struct in the runtime's `discovery` module.
    pub struct_name: &'static str,
    /// Its variant of the node's event enum.
    pub variant: &'static str,
    /// Its event type.
    pub event_type: &'static str,
    /// Its topic, the same for every node.
    pub topic: &'static str,
    /// Its doc comment.
    pub doc: &'static str,
    /// What it is, for diagnostics.
    pub description: &'static str,
}

/// The introspection and heartbeat events, in the order the generated code
/// lists them, after the node's own.
pub(crate) const SHARED_EVENTS: [SharedEvent; 2] = [
    SharedEvent {
        kind: EventKind::Introspection,
        struct_name: "NodeIntrospectionEvent",
        variant: "NodeIntrospection",
        event_type: "omninode.discovery.node_introspection",
        topic: "omninode.discovery.node_introspection.v1",
        doc: "The introspection event the node publishes on start-up so that a registry \
              can discover it; build it with `introspection()`.",
        description: "the introspection event",
    },
    SharedEvent {
        kind: EventKind::Heartbeat,
        struct_name: "NodeHeartbeatEvent",
        variant: "NodeHeartbeat",
        event_type: "omninode.discovery.node_heartbeat",
        topic: "omninode.discovery.node_heartbeat.v1",
        doc: "The heartbeat the node publishes periodically; build it with `heartbeat()`.",
        description: "the heartbeat event",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The build stage generates exactly the listed derived events, in
    /// their order, with their names and event types, then the shared ones.
    #[test]
    fn the_spec_generates_the_listed_events() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts");
        let mut kinds = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&folder).expect("the example contracts") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let loaded = crate::contract::load_file(&path).unwrap_or_else(|ds| panic!("{ds}"));
            let spec = crate::spec::build(&loaded, &Default::default())
                .unwrap_or_else(|ds| panic!("{ds}"));
            let generated: Vec<(EventKind, String, String)> = spec
                .events
                .iter()
                .filter(|e| e.kind != EventKind::Custom)
                .map(|e| (e.kind, e.struct_name.clone(), e.event_type.clone()))
                .collect();
            let listed: Vec<(EventKind, String, String)> = derived_events(&loaded.contract)
                .into_iter()
                .map(|d| (d.kind, d.struct_name(), d.event_type))
                .chain(
                    SHARED_EVENTS
                        .iter()
                        .map(|s| (s.kind, s.struct_name.to_owned(), s.event_type.to_owned())),
                )
                .collect();
            assert_eq!(generated, listed, "{}", path.display());
            kinds.extend(listed.iter().map(|(kind, ..)| format!("{kind:?}")));
        }
        // The example contracts cover every derived event.
        assert_eq!(kinds.len(), 13, "{kinds:?}");
    }
}
