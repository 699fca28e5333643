//! Stage 3, build contract: a parsed contract to the [`NodeModel`] the node
//! crate's templates read: the [`NodeSpec`] that every template renders
//! (defaults, derived names, derived events), plus what only a node crate
//! needs: its package name, the contract's text, and the routes from
//! incoming messages to operations.

use std::path::PathBuf;

use serde::Serialize;

use super::{StageError, manifest::file_hash};
use crate::{
    contract::{Category, Contract, Diagnostics, LoadedContract},
    naming::to_pascal_case,
    spec::{self, NodeSpec, SpecOptions},
    validate::references::{self, CONSUMED_CONTRACT},
};

/// The node crate's folder of consumed contracts, which its build script
/// compiles beside `contract.yaml`.
pub const CONSUMED_DIR: &str = "consumed";

/// Everything the node crate's templates read. The [`NodeSpec`]'s fields
/// appear at the top level (`node.node_struct`, `node.operations`, ...).
#[derive(Debug, Clone, Serialize)]
pub struct NodeModel {
    /// The normalized contract.
    #[serde(flatten)]
    pub spec: NodeSpec,
    /// The contract's text, copied into the node crate.
    pub contract_source: String,
    /// The node crate's package name and folder, e.g. `postgres-writer`.
    pub crate_name: String,
    /// The library's name, e.g. `postgres_writer`.
    pub lib_name: String,
    /// The business-logic type that `src/handler.rs` declares and
    /// `src/main.rs` builds, `{Name}Handler`, e.g. `PostgresWriterHandler`.
    pub handler_struct: String,
    /// The contracts this node consumes, copied into the node crate.
    pub consumed: Vec<ConsumedModel>,
    /// Other nodes' events, each with its typed reaction.
    pub reactions: Vec<ReactionRoute>,
    /// Commands of this node that run an operation.
    pub commands: Vec<CommandRoute>,
    /// Other nodes' topics that run an operation.
    pub subscription_routes: Vec<SubscriptionRoute>,
    /// An orchestrator's workflow steps and the operations they run.
    pub steps: Vec<StepRoute>,
    /// Commands of an orchestrator: each starts a workflow run.
    pub workflow_triggers: Vec<String>,
    /// Commands sent to other nodes, each awaiting its answer.
    pub requests: Vec<RequestRoute>,
    /// The node's own custom events, each with its typed publisher.
    pub publishers: Vec<PublisherRoute>,
    /// What the contract routes nowhere: commands and subscriptions that
    /// reach no operation, operations nothing triggers. Not errors (an
    /// operation may be called from code), but said by `check` and
    /// `generate`.
    #[serde(skip)]
    pub routing_warnings: Vec<String>,
}

/// A workflow step: its own handler method, or an operation whose input
/// the handler builds from the run.
#[derive(Debug, Clone, Serialize)]
pub struct StepRoute {
    /// The step's name.
    pub name: String,
    /// Its PascalCase name, the prefix of its event types.
    pub pascal_name: String,
    /// The operation it runs, if the contract names one the node has.
    pub operation: Option<String>,
    /// That operation's input type, as the node crate writes it
    /// ([`crate::spec::OperationSpec::crate_input`]), or the command's
    /// type of a step another node performs.
    pub input: Option<String>,
    /// The exchange of a step another node performs (`send:`).
    pub remote: Option<ExchangeRoute>,
}

/// A command sent to a consumed node and the events that answer it, as the
/// node crate names their types.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeRoute {
    /// The command's type, `crate::consumed::{node}::{Command}`.
    pub command: String,
    /// The completed event's type.
    pub completed: String,
    /// The failed event's type.
    pub failed: String,
    /// The command's event type, for docs.
    pub command_type: String,
    /// The completed event's event type.
    pub completed_type: String,
    /// The failed event's event type.
    pub failed_type: String,
    /// How long to wait for the answer.
    pub timeout_seconds: u64,
}

impl ExchangeRoute {
    fn new(exchange: &references::Exchange, timeout_seconds: u64) -> Self {
        let path =
            |node: &str, struct_name: &str| format!("crate::consumed::{node}::{struct_name}");
        ExchangeRoute {
            command: path(&exchange.node, &exchange.command.struct_name),
            completed: path(&exchange.completed_node, &exchange.completed.struct_name),
            failed: path(&exchange.failed_node, &exchange.failed.struct_name),
            command_type: exchange.command.event_type.clone(),
            completed_type: exchange.completed.event_type.clone(),
            failed_type: exchange.failed.event_type.clone(),
            timeout_seconds,
        }
    }
}

/// A request of the contract: a method of the node's `requests()`.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRoute {
    /// The method's name.
    pub name: String,
    /// Its doc text.
    pub doc: String,
    /// What it sends and awaits.
    pub exchange: ExchangeRoute,
}

/// One of the node's custom events and the method of the handler's
/// context that publishes it.
#[derive(Debug, Clone, Serialize)]
pub struct PublisherRoute {
    /// The method, the event's contract name.
    pub method: String,
    /// The event's struct in `events`.
    pub event: String,
    /// Its event type.
    pub event_type: String,
}

/// How long a request waits for its answer unless the contract says.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u64 = 30;

/// A consumed contract, as the node crate keeps a copy of it.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumedModel {
    /// The consumed node's name, which names its module,
    /// `crate::consumed::{name}`.
    pub name: String,
    /// The copy's path in the node crate, `consumed/{file name}`.
    pub file: String,
    /// The consumed contract's file name.
    pub contract_file: String,
    /// Its text.
    pub source: String,
    /// Where it was found.
    #[serde(skip)]
    pub path: PathBuf,
    /// The hash of the file's bytes, which the manifest records so that a
    /// changed consumed contract regenerates the node crate.
    #[serde(skip)]
    pub source_hash: u64,
}

/// An `event:` subscription: another node's event and the handler method
/// that reacts to it.
#[derive(Debug, Clone, Serialize)]
pub struct ReactionRoute {
    /// The handler method, `on_{node}_{event}`.
    pub method: String,
    /// The consumed node, whose module holds the event's type.
    pub node: String,
    /// The event's name in the consumed contract.
    pub event_name: String,
    /// The event's struct in the consumed node's module.
    pub event: String,
    /// Its event type.
    pub event_type: String,
    /// Its version.
    pub version: String,
    /// Doc text of the reaction.
    pub doc: String,
}

/// A command of this node whose payload carries an operation's input.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRoute {
    /// The command's struct.
    pub event: String,
    /// The payload field that holds the input.
    pub field: String,
    /// The operation.
    pub operation: String,
}

/// A subscription whose payload decodes as an operation's input.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionRoute {
    /// Namespace-free topic.
    pub topic: String,
    /// The operation.
    pub operation: String,
    /// The operation's input type, as the node crate writes it.
    pub input: String,
}

/// The [`NodeSpec`] alone, built with `options`: what a build script's
/// module renders, and what the [`NodeModel`] starts from.
pub fn build_spec(loaded: &LoadedContract, options: &SpecOptions) -> Result<NodeSpec, StageError> {
    spec::build(loaded, options).map_err(StageError::Contract)
}

/// Builds the model of a parsed contract whose consumed contracts lie
/// beside it.
pub fn build_contract(loaded: &LoadedContract) -> Result<NodeModel, StageError> {
    build_contract_with(loaded, &[])
}

/// Builds the model of a parsed contract, looking for consumed contracts
/// beside it, then in each folder of `contract_path`.
pub fn build_contract_with(
    loaded: &LoadedContract,
    contract_path: &[PathBuf],
) -> Result<NodeModel, StageError> {
    let spec = build_spec(loaded, &SpecOptions::default())?;
    let resolved = references::resolve(loaded, contract_path)
        .map_err(|ds| StageError::Contract(Diagnostics(ds)))?;
    let mut consumed: Vec<ConsumedModel> = Vec::new();
    for c in &resolved.consumed {
        let contract_file = c
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{}.yaml", c.spec.name));
        let file = format!("{CONSUMED_DIR}/{contract_file}");
        if let Some(first) = consumed.iter().find(|m| m.file == file) {
            let d = loaded
                .diagnostic(
                    CONSUMED_CONTRACT,
                    format!("consumes[{}].contract", c.index),
                    format!(
                        "`{}` and `{}` would both be copied to `{file}` in the node crate",
                        first.path.display(),
                        c.path.display()
                    ),
                )
                .expected("consumed contracts with different file names")
                .found(format!("`{contract_file}` twice"))
                .help("rename one of the contract files");
            return Err(StageError::Contract(d.into()));
        }
        consumed.push(ConsumedModel {
            name: c.spec.name.clone(),
            file,
            contract_file,
            source: c.loaded.source.clone(),
            // The file was read a moment ago; should it be gone now, the
            // text read then stands in for it.
            source_hash: std::fs::read(&c.path)
                .map_or_else(|_| file_hash(c.loaded.source.as_bytes()), |b| file_hash(&b)),
            path: c.path.clone(),
        });
    }
    let reactions = resolved
        .reactions
        .iter()
        .map(|r| ReactionRoute {
            method: r.method.clone(),
            node: r.node.clone(),
            event_name: r.event_name.clone(),
            event: r.event.struct_name.clone(),
            event_type: r.event.event_type.clone(),
            version: r.event.version.clone(),
            doc: r.description.clone().unwrap_or_else(|| {
                format!(
                    "Reacts to `{}.{}` (`{}`, version {}), which the `{}` node publishes.",
                    r.node, r.event_name, r.event.event_type, r.event.version, r.node
                )
            }),
        })
        .collect();
    let contract = &loaded.contract;
    // A command runs the first operation whose input type is the type of
    // one of its payload fields; an orchestrator's commands start its
    // workflow instead.
    let orchestrates = spec.workflow.is_some();
    let commands: Vec<CommandRoute> = contract
        .events
        .iter()
        .filter(|e| e.category == Category::Command && !orchestrates)
        .filter_map(|event| {
            event.fields.iter().find_map(|field| {
                contract
                    .operations
                    .iter()
                    .find(|op| op.input == field.ty)
                    .map(|op| CommandRoute {
                        event: to_pascal_case(&event.name),
                        field: field.name.clone(),
                        operation: op.name.clone(),
                    })
            })
        })
        .collect();
    let workflow_triggers = if spec.workflow.is_some() {
        contract
            .events
            .iter()
            .filter(|e| e.category == Category::Command)
            .map(|e| to_pascal_case(&e.name))
            .filter(|name| !commands.iter().any(|c| &c.event == name))
            .collect()
    } else {
        Vec::new()
    };
    let subscription_routes: Vec<SubscriptionRoute> = spec
        .subscriptions
        .iter()
        .filter_map(|sub| {
            let name = sub.operation.as_deref()?;
            let op = spec.operations.iter().find(|op| op.name == name)?;
            Some(SubscriptionRoute {
                topic: sub.topic.clone(),
                operation: op.name.clone(),
                input: op.crate_input.clone(),
            })
        })
        .collect();
    let workflow_timeout = spec.workflow.as_ref().map_or(0, |w| w.timeout_seconds);
    let steps: Vec<StepRoute> = spec
        .workflow
        .iter()
        .flat_map(|w| &w.steps)
        .enumerate()
        .map(|(i, step)| {
            let op = step
                .operation
                .as_ref()
                .and_then(|name| spec.operations.iter().find(|op| &op.name == name));
            let remote = resolved.steps.iter().find(|(j, _)| *j == i).map(|(_, x)| {
                let timeout = contract
                    .workflow
                    .as_ref()
                    .and_then(|w| w.steps[i].timeout_seconds);
                ExchangeRoute::new(x, timeout.unwrap_or(workflow_timeout))
            });
            StepRoute {
                name: step.name.clone(),
                pascal_name: step.pascal_name.clone(),
                operation: op.map(|op| op.name.clone()),
                input: op
                    .map(|op| op.crate_input.clone())
                    .or_else(|| remote.as_ref().map(|r| r.command.clone())),
                remote,
            }
        })
        .collect();
    let requests: Vec<RequestRoute> = contract
        .requests
        .iter()
        .zip(&resolved.requests)
        .map(|(request, exchange)| RequestRoute {
            name: request.name.clone(),
            doc: request.description.clone().unwrap_or_else(|| {
                format!(
                    "Sends `{}` and waits for `{}` or `{}`.",
                    request.send, request.completed_by, request.failed_by
                )
            }),
            exchange: ExchangeRoute::new(
                exchange,
                request
                    .timeout_seconds
                    .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECONDS),
            ),
        })
        .collect();
    let publishers: Vec<PublisherRoute> = contract
        .events
        .iter()
        .filter_map(|event| {
            let struct_name = to_pascal_case(&event.name);
            let spec = spec.events.iter().find(|e| {
                e.kind == crate::spec::EventKind::Custom && e.struct_name == struct_name
            })?;
            Some(PublisherRoute {
                method: event.name.clone(),
                event: struct_name,
                event_type: spec.event_type.clone(),
            })
        })
        .collect();
    let routing_warnings = routing_warnings(
        contract,
        &commands,
        &workflow_triggers,
        &subscription_routes,
        &steps,
    );
    Ok(NodeModel {
        routing_warnings,
        contract_source: loaded.source.clone(),
        crate_name: spec.name.replace('_', "-"),
        lib_name: spec.name.clone(),
        handler_struct: format!("{}Handler", spec.pascal_name),
        consumed,
        reactions,
        commands,
        subscription_routes,
        steps,
        workflow_triggers,
        requests,
        publishers,
        spec,
    })
}

/// Commands and subscriptions that reach no operation, and operations that
/// nothing in the contract triggers.
fn routing_warnings(
    contract: &Contract,
    commands: &[CommandRoute],
    workflow_triggers: &[String],
    subscriptions: &[SubscriptionRoute],
    steps: &[StepRoute],
) -> Vec<String> {
    let mut warnings = Vec::new();
    for event in contract
        .events
        .iter()
        .filter(|e| e.category == Category::Command)
    {
        let name = to_pascal_case(&event.name);
        if !commands.iter().any(|c| c.event == name) && !workflow_triggers.contains(&name) {
            warnings.push(format!(
                "the command `{}` reaches no operation: none of its fields has an operation's \
                 input type, so the node refuses it (retried, then dead-lettered); give it a \
                 field of an operation's input type, or make it an `event`",
                event.name
            ));
        }
    }
    // A reducer folds the messages of its operation-less subscriptions.
    let folded = contract.aggregation.is_some();
    for sub in contract
        .subscriptions
        .iter()
        .filter(|s| s.event.is_none() && s.operation.is_none() && !folded)
    {
        warnings.push(format!(
            "the subscription to `{}` names no operation: the node refuses its messages \
             (retried, then dead-lettered); add `operation:`, or subscribe to a consumed \
             contract's `event:`",
            sub.topic.as_deref().unwrap_or_default()
        ));
    }
    for op in &contract.operations {
        let triggered = commands.iter().any(|c| c.operation == op.name)
            || subscriptions.iter().any(|s| s.operation == op.name)
            || steps
                .iter()
                .any(|s| s.operation.as_deref() == Some(op.name.as_str()));
        if !triggered {
            warnings.push(format!(
                "the operation `{}` is triggered by no command, subscription or workflow step: \
                 only code that calls `node.operations().{}(..)` runs it",
                op.name, op.name
            ));
        }
    }
    warnings
}
