//! Contracts that refer to other contracts: `consumes`, `event:`
//! subscriptions, workflow steps another node performs (`send:`) and
//! requests, gates XR-001 to XR-006.
//!
//! A contract lists the contracts of the nodes whose events it reacts to
//! under `consumes`; an `event:` subscription names one of their events as
//! `{node name}.{event name}`. [`resolve`] finds each consumed contract
//! (relative to the consuming contract's folder, else on the contract
//! search path), loads it, runs its own gates, builds its spec, and pairs
//! every `event:` subscription with the event that spec publishes: the same
//! list of events, custom and derived, that the producer's generated code
//! has, so that the consumer's typed reaction takes the producer's type.

use std::path::{Path, PathBuf};

use crate::{
    contract::{
        Diagnostic, LoadedContract, load_file,
        suggest::{closest, did_you_mean},
    },
    naming::{is_snake_case, to_pascal_case, to_snake_case},
    spec::{self, EventKind, EventSpec, NodeSpec, SpecOptions, derived::derived_events},
};

/// XR-001: a consumed contract is found, loads and passes its gates.
pub const CONSUMED_CONTRACT: &str = "XR-001";
/// XR-002: an `event:` subscription names a consumed node.
pub const EVENT_NODE: &str = "XR-002";
/// XR-003: the consumed node publishes the event.
pub const EVENT_NAME: &str = "XR-003";
/// XR-004: the expected major version is the published event's.
pub const EVENT_VERSION: &str = "XR-004";
/// XR-005: a subscription has either `event` or `topic`, and its reaction
/// has a name of its own.
pub const SUBSCRIPTION_SHAPE: &str = "XR-005";
/// XR-006: a workflow step's or a request's `send`, `completed_by` and
/// `failed_by` name a consumed node's command, the event that completes it
/// and a derived failed event; a step has `send` or `operation`, not both.
pub const EXCHANGE: &str = "XR-006";

/// A consumed contract, found, loaded and built.
#[derive(Debug, Clone)]
pub struct ConsumedContract {
    /// Its index under `consumes`.
    pub index: usize,
    /// Where it was found.
    pub path: PathBuf,
    /// The contract as loaded.
    pub loaded: LoadedContract,
    /// Its spec: the events its node publishes.
    pub spec: NodeSpec,
}

/// An `event:` subscription paired with the event it names.
#[derive(Debug, Clone)]
pub struct Reaction {
    /// Its index under `subscriptions`.
    pub subscription: usize,
    /// The consumed node's name.
    pub node: String,
    /// The event's name in the consumed contract, e.g. `record_written`.
    pub event_name: String,
    /// The event as the consumed contract's spec has it.
    pub event: EventSpec,
    /// The handler method that reacts to it,
    /// `on_{node}_{event name}`.
    pub method: String,
    /// The subscription's description, if any.
    pub description: Option<String>,
}

/// A command sent to a consumed node and the events that answer it: a
/// workflow step another node performs, or a request.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The consumed node's name, whose module holds the three types.
    pub node: String,
    /// The command sent.
    pub command: EventSpec,
    /// The event that completes the exchange.
    pub completed: EventSpec,
    /// The consumed node whose module holds the failed event (it may
    /// differ from `node`).
    pub failed_node: String,
    /// The failed event that fails it.
    pub failed: EventSpec,
    /// The completed event's node, likewise.
    pub completed_node: String,
}

/// What a contract's references resolve to.
#[derive(Debug, Clone, Default)]
pub struct References {
    /// The consumed contracts, in `consumes` order.
    pub consumed: Vec<ConsumedContract>,
    /// The `event:` subscriptions, in `subscriptions` order.
    pub reactions: Vec<Reaction>,
    /// The workflow steps that another node performs, by step index.
    pub steps: Vec<(usize, Exchange)>,
    /// The requests, in `requests` order.
    pub requests: Vec<Exchange>,
}

/// The name of the handler method that reacts to `event` of `node`.
pub fn reaction_method(node: &str, event: &str) -> String {
    format!("on_{node}_{event}")
}

/// Resolves and checks a contract's references; `contract_path` lists the
/// folders searched after the contract's own. Every problem is returned,
/// placed in `loaded`'s file.
pub fn resolve(
    loaded: &LoadedContract,
    contract_path: &[PathBuf],
) -> Result<References, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let consumed = consumed_contracts(loaded, contract_path, &mut out);
    let reactions = reactions(loaded, &consumed, &mut out);
    let (steps, requests) = exchanges(loaded, &consumed, &mut out);
    if out.is_empty() {
        Ok(References {
            consumed,
            reactions,
            steps,
            requests,
        })
    } else {
        Err(out)
    }
}

/// Where a consumed contract may lie: beside the consuming contract, then
/// in each folder of the search path, by its path and then by its file
/// name (a node crate keeps its consumed contracts in one folder).
fn candidates(loaded: &LoadedContract, given: &str, contract_path: &[PathBuf]) -> Vec<PathBuf> {
    let given = Path::new(given);
    let base = loaded.path.parent().unwrap_or(Path::new(""));
    let mut out = vec![base.join(given)];
    for dir in contract_path {
        out.push(dir.join(given));
        if let Some(name) = given.file_name() {
            out.push(dir.join(name));
        }
    }
    out.dedup();
    out
}

fn consumed_contracts(
    loaded: &LoadedContract,
    contract_path: &[PathBuf],
    out: &mut Vec<Diagnostic>,
) -> Vec<ConsumedContract> {
    let own = &loaded.contract.node.name;
    let mut found: Vec<ConsumedContract> = Vec::new();
    for (index, consumed) in loaded.contract.consumes.iter().enumerate() {
        let field = format!("consumes[{index}].contract");
        let tried = candidates(loaded, &consumed.contract, contract_path);
        let Some(path) = tried.iter().find(|p| p.is_file()).cloned() else {
            let list = tried
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(
                loaded
                    .diagnostic(
                        CONSUMED_CONTRACT,
                        &field,
                        format!("the consumed contract `{}` is not found", consumed.contract),
                    )
                    .expected("a contract file, relative to this contract's folder or to a folder of the contract search path")
                    .found(format!("no file at {list}"))
                    .help("correct the path, or add the folder that holds the contract to the search path (`cargo onex generate --contract-path DIR`, `Builder::contract_path`)"),
            );
            continue;
        };
        let other = match load_file(&path) {
            Ok(other) => other,
            Err(ds) => {
                out.push(not_usable(loaded, &field, &path, "does not load", &ds.0));
                continue;
            }
        };
        if let Err(ds) = super::validate_own(&other) {
            out.push(not_usable(
                loaded,
                &field,
                &path,
                "does not pass its gates",
                &ds.0,
            ));
            continue;
        }
        let spec = match spec::build(&other, &SpecOptions::default()) {
            Ok(spec) => spec,
            Err(ds) => {
                out.push(not_usable(loaded, &field, &path, "does not build", &ds.0));
                continue;
            }
        };
        let name = &other.contract.node.name;
        let clash = if name == own {
            Some("is this contract's own node".to_owned())
        } else {
            found.iter().find(|c| &c.spec.name == name).map(|first| {
                format!(
                    "is consumed already, from `{}` (consumes[{}])",
                    first.path.display(),
                    first.index
                )
            })
        };
        if let Some(clash) = clash {
            out.push(
                loaded
                    .diagnostic(
                        CONSUMED_CONTRACT,
                        &field,
                        format!("the node `{name}` of `{}` {clash}", path.display()),
                    )
                    .expected("each consumed node once, and never this node")
                    .found(format!("`{}`", consumed.contract))
                    .help("remove this entry"),
            );
            continue;
        }
        found.push(ConsumedContract {
            index,
            path,
            loaded: other,
            spec,
        });
    }
    found
}

/// XR-001 for a consumed contract that is there but cannot be used.
fn not_usable(
    loaded: &LoadedContract,
    field: &str,
    path: &Path,
    what: &str,
    problems: &[Diagnostic],
) -> Diagnostic {
    let first = problems
        .first()
        .map(|d| match (d.line, d.column) {
            (Some(line), Some(column)) => format!(
                "{}:{line}:{column}: {} [{}]",
                d.file.display(),
                d.message,
                d.code
            ),
            _ => format!("{}: {} [{}]", d.file.display(), d.message, d.code),
        })
        .unwrap_or_else(|| "an error".to_owned());
    let more = match problems.len() {
        0 | 1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    loaded
        .diagnostic(
            CONSUMED_CONTRACT,
            field,
            format!("the consumed contract `{}` {what}", path.display()),
        )
        .expected("a valid contract")
        .found(format!("{first}{more}"))
        .help(format!(
            "fix the consumed contract first: `cargo onex check {}`",
            path.display()
        ))
}

/// An event a consumed contract publishes: its name, and the event.
struct Published<'s> {
    name: String,
    event: &'s EventSpec,
}

/// Every event `consumed` publishes, custom and derived, by the name a
/// subscription gives it: the spec's list, named as the contract names its
/// events (`record_written`) and as the gates name derived ones
/// (`write_record_completed`).
fn published(consumed: &ConsumedContract) -> Vec<Published<'_>> {
    let contract = &consumed.loaded.contract;
    let mut names: Vec<String> = contract.events.iter().map(|e| e.name.clone()).collect();
    names.extend(derived_events(contract).into_iter().map(|e| e.name));
    consumed
        .spec
        .events
        .iter()
        .filter(|e| !e.shared)
        .map(|event| {
            let custom = event.kind == EventKind::Custom;
            let name = names
                .iter()
                .find(|n| {
                    custom == contract.events.iter().any(|e| &e.name == *n)
                        && to_pascal_case(n) == event.struct_name
                })
                .cloned()
                .unwrap_or_else(|| to_snake_case(&event.struct_name));
            Published { name, event }
        })
        .collect()
}

/// Where a path of a consumed contract is, as `file:line:column`.
fn place(consumed: &ConsumedContract, path: &str) -> String {
    match consumed.loaded.locations.nearest(path) {
        Some((line, column)) => format!("{}:{line}:{column}", consumed.path.display()),
        None => consumed.path.display().to_string(),
    }
}

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

/// The consumed node's event that `reference` (`{node}.{event}`, at
/// `field`) names; `None` after reporting why there is none (XR-002,
/// XR-003).
fn lookup<'c>(
    loaded: &LoadedContract,
    consumed: &'c [ConsumedContract],
    field: &str,
    reference: &str,
    out: &mut Vec<Diagnostic>,
) -> Option<(&'c ConsumedContract, Published<'c>)> {
    let Some((node, event)) = reference
        .split_once('.')
        .filter(|(n, e)| is_snake_case(n) && is_snake_case(e))
    else {
        out.push(
            loaded
                .diagnostic(EVENT_NODE, field, format!("`{reference}` does not name a node's event"))
                .expected("`{consumed node name}.{event name}`, both snake_case, e.g. `postgres_writer.record_written`")
                .found(format!("`{reference}`"))
                .help("write the consumed node's name, a dot, and the event's name as its contract lists it"),
        );
        return None;
    };
    let Some(other) = consumed.iter().find(|c| c.spec.name == node) else {
        let names: Vec<&str> = consumed.iter().map(|c| c.spec.name.as_str()).collect();
        let help = match closest(node, names.iter().copied()) {
            Some(n) => format!("did you mean `{n}.{event}`?"),
            None if names.is_empty() => "list the producer's contract under `consumes` (`consumes: [{contract: <file>.yaml}]`)".to_owned(),
            None => format!(
                "name one of the consumed nodes ({}), or add the producer's contract under `consumes`",
                names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            ),
        };
        // A consumed contract that is missing was reported already.
        if loaded.contract.consumes.len() == consumed.len() {
            out.push(
                loaded
                    .diagnostic(
                        EVENT_NODE,
                        field,
                        format!("no consumed contract is node `{node}`"),
                    )
                    .expected("the node name of a contract listed under `consumes`")
                    .found(format!("`{node}`"))
                    .help(help),
            );
        }
        return None;
    };
    let published = published(other);
    let Some(found) = published.into_iter().find(|p| p.name == event) else {
        let published = self::published(other);
        let names: Vec<&str> = published.iter().map(|p| p.name.as_str()).collect();
        let events_at = if other.loaded.contract.events.is_empty() {
            format!("its node at {}", place(other, "node"))
        } else {
            format!("its `events` at {}", place(other, "events"))
        };
        let help = match did_you_mean(event, names.iter().copied()) {
            Some(d) => d,
            None => format!(
                "name one of the events `{node}` publishes: {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        out.push(
            loaded
                .diagnostic(
                    EVENT_NAME,
                    field,
                    format!("node `{node}` publishes no event `{event}`"),
                )
                .expected(format!(
                    "an event of `{}` ({events_at}), custom or derived",
                    other.path.display()
                ))
                .found(format!("`{event}`"))
                .help(help),
        );
        return None;
    };
    Some((other, found))
}

fn reactions(
    loaded: &LoadedContract,
    consumed: &[ConsumedContract],
    out: &mut Vec<Diagnostic>,
) -> Vec<Reaction> {
    let contract = &loaded.contract;
    let operations: Vec<&str> = contract
        .operations
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    let mut reactions: Vec<Reaction> = Vec::new();
    for (i, sub) in contract.subscriptions.iter().enumerate() {
        let base = format!("subscriptions[{i}]");
        let Some(reference) = &sub.event else {
            if sub.topic.is_none() {
                out.push(
                    loaded
                        .diagnostic(SUBSCRIPTION_SHAPE, &base, "the subscription names no event and no topic")
                        .expected("`event: {node}.{event}` (another node's event) or `topic: {service}.{event_type}.v1`")
                        .found("neither")
                        .help("add `event:` naming an event of a consumed contract, or `topic:` with `operation:`"),
                );
            } else if sub.version.is_some() {
                out.push(
                    loaded
                        .diagnostic(
                            SUBSCRIPTION_SHAPE,
                            format!("{base}.version"),
                            "`version` belongs to an `event:` subscription",
                        )
                        .expected("`version` only beside `event`")
                        .found("`version` beside `topic`")
                        .help(
                            "remove `version`: a raw topic carries its version in its name (`.v1`)",
                        ),
                );
            }
            continue;
        };
        let field = format!("{base}.event");
        let mut shape_ok = true;
        if sub.topic.is_some() {
            shape_ok = false;
            out.push(
                loaded
                    .diagnostic(
                        SUBSCRIPTION_SHAPE,
                        format!("{base}.topic"),
                        "a subscription has either `event` or `topic`, not both",
                    )
                    .expected("`event` alone: the producer's contract gives its topic")
                    .found("both")
                    .help("remove `topic`; the event's topic is the one its producer publishes on"),
            );
        }
        if let Some(op) = &sub.operation {
            shape_ok = false;
            out.push(
                loaded
                    .diagnostic(SUBSCRIPTION_SHAPE, format!("{base}.operation"), "an `event:` subscription runs a reaction, not an operation")
                    .expected("no `operation` beside `event`")
                    .found(format!("`operation: {op}`"))
                    .help(format!(
                        "remove `operation`; the handler's reaction `{}` receives the typed event and may do what `{op}` does",
                        reference.split_once('.').map_or_else(
                            || reaction_method("node", "event"),
                            |(n, e)| reaction_method(n, e)
                        )
                    )),
            );
        }
        let Some((other, found)) = lookup(loaded, consumed, &field, reference, out) else {
            continue;
        };
        let (node, event) = (other.spec.name.as_str(), found.name.as_str());
        if let Some(version) = &sub.version {
            let published_major = major(&found.event.version);
            let at = if found.event.kind == EventKind::Custom {
                other
                    .loaded
                    .contract
                    .events
                    .iter()
                    .position(|e| e.name == found.name)
                    .map(|j| place(other, &format!("events[{j}]")))
                    .unwrap_or_else(|| place(other, "events"))
            } else {
                place(other, "node")
            };
            if !version.chars().all(|c| c.is_ascii_digit()) || version.is_empty() {
                out.push(
                    loaded
                        .diagnostic(
                            EVENT_VERSION,
                            format!("{base}.version"),
                            format!("`{version}` is not a major version"),
                        )
                        .expected("the major version alone, a whole number in quotes, e.g. `\"1\"`")
                        .found(format!("`{version}`"))
                        .help(format!("write `version: \"{published_major}\"`")),
                );
            } else if version.trim_start_matches('0') != published_major.trim_start_matches('0') {
                out.push(
                    loaded
                        .diagnostic(EVENT_VERSION, format!("{base}.version"), format!("`{node}.{event}` is published at version {}, not {version}", found.event.version))
                        .expected(format!("major version {published_major}, as `{}` publishes it ({at})", other.path.display()))
                        .found(format!("`{version}`"))
                        .help(format!("react to version {published_major} (`version: \"{published_major}\"`) and adapt the reaction, or subscribe to the producer's event of your version")),
                );
            }
        }
        if !shape_ok {
            continue;
        }
        let method = reaction_method(node, event);
        let clash = if operations.contains(&method.as_str()) {
            Some(format!("the operation `{method}`"))
        } else {
            reactions
                .iter()
                .find(|r| r.method == method)
                .map(|r| format!("subscriptions[{}]", r.subscription))
        };
        if let Some(clash) = clash {
            out.push(
                loaded
                    .diagnostic(
                        SUBSCRIPTION_SHAPE,
                        &field,
                        format!("the reaction `{method}` has the name of {clash}"),
                    )
                    .expected("one subscription per event, and no operation named like a reaction")
                    .found(format!("`{reference}`"))
                    .help("remove the second subscription, or rename the operation"),
            );
            continue;
        }
        reactions.push(Reaction {
            subscription: i,
            node: node.to_owned(),
            event_name: event.to_owned(),
            event: found.event.clone(),
            method,
            description: sub.description.clone(),
        });
    }
    reactions
}

/// The workflow steps another node performs and the requests, each
/// paired with the consumed node's command and events (XR-006).
fn exchanges(
    loaded: &LoadedContract,
    consumed: &[ConsumedContract],
    out: &mut Vec<Diagnostic>,
) -> (Vec<(usize, Exchange)>, Vec<Exchange>) {
    let contract = &loaded.contract;
    let mut steps = Vec::new();
    for (i, step) in contract
        .workflow
        .iter()
        .flat_map(|w| w.steps.iter())
        .enumerate()
    {
        let base = format!("workflow.steps[{i}]");
        let Some(send) = &step.send else {
            let stray = [
                ("completed_by", step.completed_by.is_some()),
                ("failed_by", step.failed_by.is_some()),
                ("timeout_seconds", step.timeout_seconds.is_some()),
            ];
            for (key, _) in stray.iter().filter(|(_, set)| *set) {
                out.push(
                    loaded
                        .diagnostic(EXCHANGE, format!("{base}.{key}"), format!("`{key}` belongs to a step another node performs"))
                        .expected(format!("`{key}` only beside `send`"))
                        .found(format!("`{key}` without `send`"))
                        .help(format!("add `send: {{node}}.{{command}}` to have another node perform the step, or remove `{key}`")),
                );
            }
            continue;
        };
        if let Some(op) = &step.operation {
            out.push(
                loaded
                    .diagnostic(
                        EXCHANGE,
                        format!("{base}.operation"),
                        "a step runs an operation or has another node perform it, not both",
                    )
                    .expected("`operation` (done here) or `send` (done by another node)")
                    .found(format!("`operation: {op}` and `send: {send}`"))
                    .help("remove one of the two"),
            );
            continue;
        }
        let (Some(completed_by), Some(failed_by)) = (&step.completed_by, &step.failed_by) else {
            let missing = if step.completed_by.is_none() {
                "completed_by"
            } else {
                "failed_by"
            };
            out.push(
                loaded
                    .diagnostic(EXCHANGE, &base, format!("the step sends `{send}` but names no `{missing}`"))
                    .expected("`completed_by` and `failed_by`: the events that end the step")
                    .found(format!("no `{missing}`"))
                    .help(format!("add `{missing}: {{node}}.{{event}}`, e.g. the `_completed` and `_failed` events of the operation the command runs")),
            );
            continue;
        };
        if let Some(exchange) = exchange(
            loaded,
            consumed,
            &base,
            send,
            completed_by,
            failed_by,
            step.timeout_seconds,
            out,
        ) {
            steps.push((i, exchange));
        }
    }
    let mut requests = Vec::new();
    for (i, request) in contract.requests.iter().enumerate() {
        let base = format!("requests[{i}]");
        if !is_snake_case(&request.name) {
            out.push(
                loaded
                    .diagnostic(
                        EXCHANGE,
                        format!("{base}.name"),
                        format!("the request name `{}` is not snake_case", request.name),
                    )
                    .expected("a snake_case name, which names the request's method")
                    .found(format!("`{}`", request.name))
                    .help(format!("write `{}`", to_snake_case(&request.name))),
            );
        } else if contract.requests[..i]
            .iter()
            .any(|r| r.name == request.name)
        {
            out.push(
                loaded
                    .diagnostic(
                        EXCHANGE,
                        format!("{base}.name"),
                        format!("two requests are named `{}`", request.name),
                    )
                    .expected("one request per name")
                    .found(format!("`{}` again", request.name))
                    .help("rename one of them"),
            );
        }
        if let Some(exchange) = exchange(
            loaded,
            consumed,
            &base,
            &request.send,
            &request.completed_by,
            &request.failed_by,
            request.timeout_seconds,
            out,
        ) {
            requests.push(exchange);
        }
    }
    (steps, requests)
}

/// Pairs `send`, `completed_by` and `failed_by` (under `base`) with the
/// consumed nodes' command and events, checking what each must be.
#[allow(clippy::too_many_arguments)]
fn exchange(
    loaded: &LoadedContract,
    consumed: &[ConsumedContract],
    base: &str,
    send: &str,
    completed_by: &str,
    failed_by: &str,
    timeout_seconds: Option<u64>,
    out: &mut Vec<Diagnostic>,
) -> Option<Exchange> {
    let before = out.len();
    if timeout_seconds == Some(0) {
        out.push(
            loaded
                .diagnostic(
                    EXCHANGE,
                    format!("{base}.timeout_seconds"),
                    "the timeout is zero",
                )
                .expected("whole seconds, at least 1")
                .found("`0`")
                .help("wait at least one second, or leave `timeout_seconds` out for the default"),
        );
    }
    let command = lookup(loaded, consumed, &format!("{base}.send"), send, out);
    let completed = lookup(
        loaded,
        consumed,
        &format!("{base}.completed_by"),
        completed_by,
        out,
    );
    let failed = lookup(
        loaded,
        consumed,
        &format!("{base}.failed_by"),
        failed_by,
        out,
    );
    let (
        Some((command_node, command)),
        Some((completed_node, completed)),
        Some((failed_node, failed)),
    ) = (command, completed, failed)
    else {
        return None;
    };
    if command.event.category == "Event" {
        let commands: Vec<String> = published(command_node)
            .iter()
            .filter(|p| p.event.category != "Event")
            .map(|p| format!("`{}.{}`", command_node.spec.name, p.name))
            .collect();
        out.push(
            loaded
                .diagnostic(
                    EXCHANGE,
                    format!("{base}.send"),
                    format!("`{send}` is an event, not a command"),
                )
                .expected("a command or intent of the consumed node, which asks it to act")
                .found(format!("`{send}`, category event"))
                .help(if commands.is_empty() {
                    format!(
                        "`{}` declares no command: add one to its contract (`category: command`)",
                        command_node.spec.name
                    )
                } else {
                    format!("send one of its commands: {}", commands.join(", "))
                }),
        );
    }
    let is_failed = matches!(
        failed.event.kind,
        EventKind::OperationFailed | EventKind::StepFailed | EventKind::WorkflowFailed
    );
    if !is_failed {
        let candidates: Vec<String> = published(failed_node)
            .iter()
            .filter(|p| {
                matches!(
                    p.event.kind,
                    EventKind::OperationFailed | EventKind::StepFailed | EventKind::WorkflowFailed
                )
            })
            .map(|p| format!("`{}.{}`", failed_node.spec.name, p.name))
            .collect();
        out.push(
            loaded
                .diagnostic(EXCHANGE, format!("{base}.failed_by"), format!("`{failed_by}` is not a failed event"))
                .expected("a failed event the generator derives (an operation's, a workflow step's or the workflow's): it carries the error")
                .found(format!("`{failed_by}`"))
                .help(if candidates.is_empty() {
                    "the consumed node has no operation or workflow, so nothing derives a failed event".to_owned()
                } else {
                    format!("name one of: {}", candidates.join(", "))
                }),
        );
    }
    if completed.event.event_type == failed.event.event_type {
        out.push(
            loaded
                .diagnostic(
                    EXCHANGE,
                    format!("{base}.completed_by"),
                    "the completed and the failed event are the same",
                )
                .expected("two different events, so that the answers can be told apart")
                .found(format!("`{completed_by}` twice"))
                .help("name the event that says the work succeeded"),
        );
    }
    (out.len() == before).then(|| Exchange {
        node: command_node.spec.name.clone(),
        command: command.event.clone(),
        completed_node: completed_node.spec.name.clone(),
        completed: completed.event.clone(),
        failed_node: failed_node.spec.name.clone(),
        failed: failed.event.clone(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::contract::load_str;

    const PRODUCER: &str = "\
contract_version: 1
node: {name: writer, node_type: effect, version: 1.0.0, domain: db}
types:
  - name: Row
    fields:
      - { name: id, type: uuid }
operations:
  - { name: write_record, input: Row, output: Row }
events:
  - name: record_written
    version: \"3.1\"
    fields:
      - { name: id, type: uuid }
";

    fn consumer(subscriptions: &str) -> String {
        format!(
            "contract_version: 1\nnode: {{name: reader, node_type: effect, version: 1.0.0, domain: db}}\n\
             consumes:\n  - contract: writer.yaml\nsubscriptions:\n{subscriptions}"
        )
    }

    /// Resolves `source` as `{dir}/contracts/reader.yaml`, the producer
    /// lying in `{dir}/shared/writer.yaml`.
    fn resolve_in(dir: &Path, source: &str, search: bool) -> Result<References, Vec<Diagnostic>> {
        std::fs::create_dir_all(dir.join("shared")).unwrap();
        std::fs::create_dir_all(dir.join("contracts")).unwrap();
        std::fs::write(dir.join("shared/writer.yaml"), PRODUCER).unwrap();
        let loaded = load_str(&dir.join("contracts/reader.yaml"), source.to_owned()).unwrap();
        let path = if search {
            vec![dir.join("shared")]
        } else {
            Vec::new()
        };
        resolve(&loaded, &path)
    }

    fn codes(ds: &[Diagnostic]) -> Vec<&'static str> {
        ds.iter().map(|d| d.code).collect()
    }

    #[test]
    fn custom_and_derived_events_pair_with_the_producers_types() {
        let dir = tempfile::tempdir().unwrap();
        let source = consumer(
            "  - event: writer.record_written\n    version: \"3\"\n  - event: writer.write_record_completed\n",
        );
        let refs = resolve_in(dir.path(), &source, true).unwrap();
        assert_eq!(refs.consumed.len(), 1);
        assert_eq!(refs.consumed[0].path, dir.path().join("shared/writer.yaml"));
        let pairs: Vec<(&str, &str, &str)> = refs
            .reactions
            .iter()
            .map(|r| {
                (
                    r.method.as_str(),
                    r.event.struct_name.as_str(),
                    r.event.event_type.as_str(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [
                (
                    "on_writer_record_written",
                    "RecordWritten",
                    "effect.record_written"
                ),
                (
                    "on_writer_write_record_completed",
                    "WriteRecordCompleted",
                    "effect.write_record.completed"
                ),
            ]
        );
    }

    #[test]
    fn a_contract_off_the_search_path_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let source = consumer("  - event: writer.record_written\n");
        let ds = resolve_in(dir.path(), &source, false).unwrap_err();
        assert_eq!(codes(&ds), [CONSUMED_CONTRACT], "{ds:#?}");
        assert!(ds[0].found.as_deref().unwrap().contains("writer.yaml"));
    }

    #[test]
    fn unknown_events_name_both_files_and_suggest() {
        let dir = tempfile::tempdir().unwrap();
        let source = consumer("  - event: writer.record_writen\n  - event: writr.record_written\n");
        let ds = resolve_in(dir.path(), &source, true).unwrap_err();
        assert_eq!(codes(&ds), [EVENT_NAME, EVENT_NODE], "{ds:#?}");
        assert_eq!(
            ds[0].help.as_deref(),
            Some("did you mean `record_written`?")
        );
        let expected = ds[0].expected.as_deref().unwrap();
        assert!(expected.contains("writer.yaml:10:3"), "{expected}");
        assert_eq!(
            ds[1].help.as_deref(),
            Some("did you mean `writer.record_written`?")
        );
    }

    #[test]
    fn versions_and_shapes_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let source = consumer(
            "  - event: writer.record_written\n    version: \"2\"\n  - event: writer.record_written\n    topic: a.b.v1\n  - {}\n  - event: writer.record_written\n",
        );
        let ds = resolve_in(dir.path(), &source, true).unwrap_err();
        assert_eq!(
            codes(&ds),
            [
                EVENT_VERSION,
                SUBSCRIPTION_SHAPE,
                SUBSCRIPTION_SHAPE,
                SUBSCRIPTION_SHAPE
            ],
            "{ds:#?}"
        );
        assert!(
            ds[0].message.contains("version 3.1, not 2"),
            "{}",
            ds[0].message
        );
    }

    #[test]
    fn a_node_does_not_consume_itself() {
        let dir = tempfile::tempdir().unwrap();
        let source = consumer("").replace("name: reader", "name: writer");
        let ds = resolve_in(dir.path(), &source, true).unwrap_err();
        assert_eq!(codes(&ds), [CONSUMED_CONTRACT], "{ds:#?}");
    }
}
