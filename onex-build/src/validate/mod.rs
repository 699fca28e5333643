//! Stage 2, pre-validate: the quality gates a contract must pass before code
//! is generated from it.
//!
//! [`validate`] runs every gate and reports every failure, not just the
//! first. Each [`Diagnostic`] carries the gate's stable id as its `code`,
//! the line and column of the offending value (from the loader's
//! [`SourceMap`](crate::contract::SourceMap)), the field path, what was
//! expected and found, and a `help` text that says how to fix it.
//!
//! | id | gate | checks |
//! |---|---|---|
//! | SV-001 | contract version | `contract_version` is `1` |
//! | SV-002 | versions | `node.version` is a semantic version (`1.0.0`); an event's `version` is `MAJOR.MINOR` or a semantic version |
//! | QC-001 | identifier case | node, service, operation, event, field, variant, state, step and action names are snake_case; type names are PascalCase |
//! | QC-002 | reserved words | no `self`, `Self`, `super`, `crate` as any name (they cannot be raw identifiers; other keywords become `r#type`, see [`naming::rust_ident`](crate::naming::rust_ident)); no Rust keyword, weak ones included, as a type or node name |
//! | QC-003 | unique names | types, operations, events, states, steps, the fields of a struct or event and the variants of an enum are unique, also once turned into Rust names; no type or custom event takes the name of a generated item |
//! | QC-004 | derived events | no custom event takes the name or event type of a derived event, and derived events do not collide with each other |
//! | QC-005 | package names | the node name makes a package, library and binary name cargo accepts: at most 64 characters, not reserved by cargo (`std`, `test`, `build`, `con`, ...), not a dependency of the node crate (`onex`, `onex_build`) |
//! | TY-001 | field type syntax | a field type follows the grammar (`string`, ..., `list<T>`, `map<T>`, `optional<T>`, a type name) |
//! | TY-002 | type references | every named type a field, operation or aggregation refers to is declared under `types` |
//! | TY-003 | struct or enum | a type has exactly one of `fields` and `variants`; an enum has at least one variant |
//! | TY-004 | struct references | operation `input`/`output` and `aggregation.state` name struct types |
//! | TY-005 | finite types | no struct contains itself other than through `list<T>` or `map<T>` |
//! | TY-006 | summary-only fields | a field marked `summary_only` is a field of a type (not of a custom event) and `optional<T>`, so that the published result can leave it out |
//! | ND-001 | orchestrator workflow | an orchestrator has a `workflow` with at least one step |
//! | ND-002 | reducer aggregation | a reducer has an `aggregation` and at least one topic (in `aggregation.topics` or `subscriptions`) |
//! | ND-003 | sections by node type | `workflow` only on orchestrators, `aggregation` only on reducers, no `event_bus.enabled: false` on effects and orchestrators |
//! | ND-004 | operation references | workflow steps and subscriptions name declared operations |
//! | FSM-001 | initial state | `states` lists at least one state and `initial` is one of them |
//! | FSM-002 | transitions | every transition's `from` and `to` are declared states |
//! | FV-002 | topic names | subscription, aggregation and dead-letter topics are `{service}.{event_type}.v{N}`: lower-case snake_case segments, no environment prefix |
//! | FV-003 | event types | an explicit `event_type` is dotted snake_case without a version suffix |
//! | FV-004 | runtime settings | the health endpoint starts with `/`; intervals, windows and timeouts are positive; the consumer group is a valid Kafka group id |
//! | FV-005 | topic length | every topic the node uses fits Kafka's 249 characters behind the longest environment the runtime accepts (64 characters and a dot): at most 184 characters |
//! | XR-001 | consumed contracts | every contract under `consumes` is found (beside the contract, else on the search path), loads, passes its gates, and names a node other than this one, once |
//! | XR-002 | event nodes | an `event:` subscription is `{node}.{event}` and names a consumed node |
//! | XR-003 | consumed events | the consumed node publishes the event (custom or derived) |
//! | XR-004 | event versions | an expected `version` is the published event's major version |
//! | XR-005 | subscription shape | a subscription has `event` or `topic`, not both; `operation` only with `topic`, `version` only with `event`; one reaction per event, named unlike any operation |
//! | XR-006 | exchanges | a workflow step's or a request's `send` names a consumed node's command, `completed_by` an event and `failed_by` a derived failed event, two different events; a step has `send` or `operation`, not both |
//!
//! Loading errors (YAML syntax, wrong types, unknown keys) have the code
//! [`PARSE`](crate::contract::PARSE); `SV-003` is the post-validation gate
//! of generated code (stage 5).

use std::path::{Path, PathBuf};

use crate::contract::{self, Contract, Diagnostic, Diagnostics, LoadedContract};

mod fsm;
mod names;
mod node;
mod package;
pub mod references;
mod topics;
pub mod types;
mod versions;

pub use package::MAX_NODE_NAME_LEN;
pub use topics::{KAFKA_MAX_TOPIC_LEN, MAX_ENVIRONMENT_LEN, MAX_TOPIC_LEN};
pub use types::{FieldType, parse_field_type};

/// A quality gate: a stable id and what it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    /// The stable id, e.g. `QC-001`.
    pub id: &'static str,
    /// A short name.
    pub name: &'static str,
    /// What it checks, in one line.
    pub checks: &'static str,
}

/// Every gate, in the order they run.
pub const GATES: &[Gate] = &[
    Gate {
        id: "SV-001",
        name: "contract version",
        checks: "`contract_version` is `1`",
    },
    Gate {
        id: "SV-002",
        name: "versions",
        checks: "`node.version` is a semantic version; an event's `version` is `MAJOR.MINOR` or a semantic version",
    },
    Gate {
        id: "QC-001",
        name: "identifier case",
        checks: "names are snake_case; type names are PascalCase",
    },
    Gate {
        id: "QC-002",
        name: "reserved words",
        checks: "no `self`, `Self`, `super`, `crate` as a name; no Rust keyword as a type or node name",
    },
    Gate {
        id: "QC-003",
        name: "unique names",
        checks: "types, operations, events, states, steps, fields and variants are unique, also as Rust names",
    },
    Gate {
        id: "QC-004",
        name: "derived events",
        checks: "custom events do not take the name or event type of a derived event",
    },
    Gate {
        id: "QC-005",
        name: "package names",
        checks: "the node name is a package name cargo accepts, at most 64 characters, no dependency's",
    },
    Gate {
        id: "TY-001",
        name: "field type syntax",
        checks: "field types follow the type grammar",
    },
    Gate {
        id: "TY-002",
        name: "type references",
        checks: "every referenced type is declared under `types`",
    },
    Gate {
        id: "TY-003",
        name: "struct or enum",
        checks: "a type has exactly one of `fields` and `variants`; enums have a variant",
    },
    Gate {
        id: "TY-004",
        name: "struct references",
        checks: "operation input/output and aggregation state are struct types",
    },
    Gate {
        id: "TY-005",
        name: "finite types",
        checks: "no struct contains itself except through a list or map",
    },
    Gate {
        id: "TY-006",
        name: "summary-only fields",
        checks: "`summary_only` fields belong to types and are `optional<T>`",
    },
    Gate {
        id: "ND-001",
        name: "orchestrator workflow",
        checks: "an orchestrator has a workflow with at least one step",
    },
    Gate {
        id: "ND-002",
        name: "reducer aggregation",
        checks: "a reducer has an aggregation and at least one topic",
    },
    Gate {
        id: "ND-003",
        name: "sections by node type",
        checks: "`workflow` only on orchestrators, `aggregation` only on reducers",
    },
    Gate {
        id: "ND-004",
        name: "operation references",
        checks: "workflow steps and subscriptions name declared operations",
    },
    Gate {
        id: "FSM-001",
        name: "initial state",
        checks: "`initial` is one of the declared states",
    },
    Gate {
        id: "FSM-002",
        name: "transitions",
        checks: "transitions name declared states",
    },
    Gate {
        id: "FV-002",
        name: "topic names",
        checks: "topics are `{service}.{event_type}.v{N}` without environment prefix",
    },
    Gate {
        id: "FV-003",
        name: "event types",
        checks: "explicit event types are dotted snake_case",
    },
    Gate {
        id: "FV-004",
        name: "runtime settings",
        checks: "health endpoint, intervals, windows, timeouts and consumer group are valid",
    },
    Gate {
        id: "FV-005",
        name: "topic length",
        checks: "every topic fits Kafka's 249 characters behind the longest environment",
    },
    Gate {
        id: "XR-001",
        name: "consumed contracts",
        checks: "every consumed contract is found, loads, passes its gates and is another node",
    },
    Gate {
        id: "XR-002",
        name: "event nodes",
        checks: "an `event:` subscription names a consumed node",
    },
    Gate {
        id: "XR-003",
        name: "consumed events",
        checks: "the consumed node publishes the subscribed event",
    },
    Gate {
        id: "XR-004",
        name: "event versions",
        checks: "an expected version is the published event's major version",
    },
    Gate {
        id: "XR-005",
        name: "subscription shape",
        checks: "a subscription has `event` or `topic`; `operation` only with `topic`",
    },
    Gate {
        id: "XR-006",
        name: "exchanges",
        checks: "a step's or request's `send` is a consumed command, `failed_by` a derived failed event",
    },
];

/// Runs every gate on a loaded contract; `Err` holds every failure, in
/// source order. Consumed contracts are looked for beside the contract
/// only; [`validate_with`] adds a search path.
pub fn validate(loaded: &LoadedContract) -> Result<(), Diagnostics> {
    validate_with(loaded, &[])
}

/// [`validate`], looking for consumed contracts beside the contract, then
/// in each folder of `contract_path`.
pub fn validate_with(
    loaded: &LoadedContract,
    contract_path: &[PathBuf],
) -> Result<(), Diagnostics> {
    let mut out = match validate_own(loaded) {
        Ok(()) => Vec::new(),
        Err(Diagnostics(ds)) => ds,
    };
    if let Err(ds) = references::resolve(loaded, contract_path) {
        out.extend(ds);
        out.sort_by_key(|d| (d.line.is_none(), d.line, d.column));
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(out))
    }
}

/// The gates of the contract alone, its references unresolved: what a
/// consumed contract must pass.
pub fn validate_own(loaded: &LoadedContract) -> Result<(), Diagnostics> {
    let mut ctx = Ctx {
        loaded,
        contract: &loaded.contract,
        out: Vec::new(),
    };
    versions::check(&mut ctx);
    names::check(&mut ctx);
    package::check(&mut ctx);
    types::check(&mut ctx);
    node::check(&mut ctx);
    fsm::check(&mut ctx);
    topics::check(&mut ctx);
    let mut out = ctx.out;
    if out.is_empty() {
        return Ok(());
    }
    out.sort_by_key(|d| (d.line.is_none(), d.line, d.column));
    Err(Diagnostics(out))
}

/// Loads and validates a contract file: stages 1 and 3 in one call.
pub fn check_file(path: &Path) -> Result<LoadedContract, Diagnostics> {
    let loaded = contract::load_file(path)?;
    validate(&loaded)?;
    Ok(loaded)
}

/// Loads and validates contract text; `path` is used in diagnostics only.
pub fn check_str(path: &Path, source: String) -> Result<LoadedContract, Diagnostics> {
    let loaded = contract::load_str(path, source)?;
    validate(&loaded)?;
    Ok(loaded)
}

/// What the gates share: the contract and the diagnostics found so far.
pub(crate) struct Ctx<'a> {
    pub(crate) loaded: &'a LoadedContract,
    pub(crate) contract: &'a Contract,
    pub(crate) out: Vec<Diagnostic>,
}

impl Ctx<'_> {
    /// A diagnostic of `gate` about the value at `path`, placed there.
    pub(crate) fn error(
        &self,
        gate: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        self.loaded.diagnostic(gate, path, message)
    }

    pub(crate) fn push(&mut self, d: Diagnostic) {
        self.out.push(d);
    }

    /// Where the value at `path` is, as `line L, column C`, for messages
    /// that point at a second place.
    pub(crate) fn where_is(&self, path: &str) -> String {
        match self.loaded.locations.nearest(path) {
            Some((line, column)) => format!("`{path}` (line {line}, column {column})"),
            None => format!("`{path}`"),
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;

    use crate::contract::{Diagnostics, load_str};

    /// A valid effect contract the gate tests start from.
    pub(crate) const BASE: &str = "\
contract_version: 1
node:
  name: writer
  node_type: effect
  version: 1.0.0
  domain: database
types:
  - name: WriteInput
    fields:
      - { name: id, type: uuid }
      - { name: tags, type: list<string> }
  - name: WriteOutput
    fields:
      - { name: status, type: Status }
  - name: Status
    variants:
      - name: done
operations:
  - { name: write, input: WriteInput, output: WriteOutput }
events:
  - name: written
    fields:
      - { name: id, type: uuid }
states:
  initial: idle
  states: [idle, busy]
  transitions:
    - { from: idle, to: busy }
event_bus:
  dead_letter_topic: writer.dlq.v1
";

    /// Validates `source`; the diagnostics, or none.
    pub(crate) fn run(source: &str) -> Diagnostics {
        match load_str(Path::new("t.yaml"), source.to_owned()) {
            Err(d) => panic!("the test contract does not load:\n{d}"),
            Ok(loaded) => match super::validate(&loaded) {
                Ok(()) => Diagnostics(Vec::new()),
                Err(ds) => ds,
            },
        }
    }

    /// Asserts that `source` fails `gate` (and shows the diagnostics if not).
    pub(crate) fn fails(source: &str, gate: &str) -> Diagnostics {
        let ds = run(source);
        assert!(
            ds.iter().any(|d| d.code == gate),
            "expected {gate} to fail, got:\n{ds}"
        );
        for d in &ds {
            assert!(d.line.is_some(), "no position:\n{d}");
            assert!(d.help.is_some(), "no help:\n{d}");
        }
        ds
    }

    /// Asserts that `source` passes `gate`.
    pub(crate) fn passes(source: &str, gate: &str) {
        let ds = run(source);
        assert!(
            !ds.iter().any(|d| d.code == gate),
            "expected {gate} to pass, got:\n{ds}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;

    #[test]
    fn the_base_contract_passes_every_gate() {
        let ds = run(BASE);
        assert!(ds.is_empty(), "{ds}");
    }

    #[test]
    fn every_failure_is_reported_in_source_order() {
        let src = BASE
            .replace("name: writer", "name: Writer")
            .replace("version: 1.0.0", "version: one")
            .replace(
                "type: uuid }\n      - { name: tags",
                "type: uid }\n      - { name: tags",
            );
        let ds = run(&src);
        let codes: Vec<_> = ds.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["QC-001", "SV-002", "TY-001"], "{ds}");
    }

    #[test]
    fn gate_ids_are_unique() {
        let mut ids: Vec<_> = super::GATES.iter().map(|g| g.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), super::GATES.len());
    }
}
