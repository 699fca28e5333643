//! Building a [`NodeSpec`] from a loaded contract that passed the gates.
//!
//! The build stage runs after pre-validation and assumes what the gates
//! checked: names are identifiers in their case, unique, and take no
//! generated name (QC-001 to QC-004). It reports only what it meets while
//! building: a type it cannot resolve, an `extern_type` that names no type
//! of the contract, a state a transition does not declare.

mod events;
mod named;

use std::collections::BTreeMap;

use super::types::TypeExpr;
use super::*;
use crate::contract::{Diagnostic, Diagnostics, LoadedContract, NodeType};
use crate::naming::{field_ident, to_pascal_case};

/// Settings of the build-contract stage that do not come from the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecOptions {
    /// The runtime crate's path, e.g. `::onex`.
    pub runtime_path: String,
    /// Contract types (`{node}.{Type}`) mapped to existing Rust types.
    pub extern_types: BTreeMap<String, String>,
    /// `(path, attribute)`: extra attributes on generated types.
    pub type_attributes: Vec<(String, String)>,
    /// `(path, attribute)`: extra attributes on generated fields.
    pub field_attributes: Vec<(String, String)>,
}

impl Default for SpecOptions {
    fn default() -> Self {
        SpecOptions {
            runtime_path: "::onex".to_owned(),
            extern_types: BTreeMap::new(),
            type_attributes: Vec::new(),
            field_attributes: Vec::new(),
        }
    }
}

/// Whether an attribute `pattern` (`.`, `node`, `node.Type`,
/// `node.Type.field`) selects `path`.
pub(crate) fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern = pattern.trim_start_matches('.');
    pattern.is_empty()
        || path == pattern
        || (path.starts_with(pattern) && path[pattern.len()..].starts_with('.'))
}

fn attributes_for(list: &[(String, String)], path: &str) -> Vec<String> {
    list.iter()
        .filter(|(pattern, _)| path_matches(pattern, path))
        .map(|(_, attr)| attr.clone())
        .collect()
}

/// The version of every derived event's payload.
const DERIVED_VERSION: &str = "1.0";

/// The field of every derived failed event that lists what the caller may
/// do about the error.
pub(crate) const RECOVERY_SUGGESTIONS: &str = "recovery_suggestions";

/// Stage 3: normalizes a contract into a [`NodeSpec`].
///
/// The contract is one that passed the gates of stage 2
/// ([`crate::validate`]); names are taken as they are. Returns every
/// problem found (unknown types, an `extern_type` naming no type of the
/// contract, states a transition does not declare) as diagnostics of the
/// contract.
pub fn build(loaded: &LoadedContract, options: &SpecOptions) -> Result<NodeSpec, Diagnostics> {
    let mut b = SpecBuilder {
        loaded,
        options,
        diagnostics: Vec::new(),
        named_rust: BTreeMap::new(),
        named_eq: BTreeMap::new(),
        struct_fields: BTreeMap::new(),
    };
    let spec = b.node();
    if b.diagnostics.is_empty() {
        Ok(spec)
    } else {
        Err(Diagnostics(b.diagnostics))
    }
}

struct SpecBuilder<'a> {
    loaded: &'a LoadedContract,
    options: &'a SpecOptions,
    diagnostics: Vec<Diagnostic>,
    /// Contract type name to Rust type (local name or extern path).
    named_rust: BTreeMap<String, String>,
    /// Contract type name to whether it implements `Eq`.
    named_eq: BTreeMap<String, bool>,
    /// Local struct name to its fields (name, canonical contract type).
    struct_fields: BTreeMap<String, Vec<(String, String)>>,
}

impl SpecBuilder<'_> {
    fn error(&mut self, code: &'static str, path: impl Into<String>, message: impl Into<String>) {
        let d = Diagnostic::new(code, &self.loaded.path, message).path(path);
        self.diagnostics.push(d);
    }

    fn error_help(
        &mut self,
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let d = Diagnostic::new(code, &self.loaded.path, message)
            .path(path)
            .help(help);
        self.diagnostics.push(d);
    }

    fn rt(&self) -> &str {
        &self.options.runtime_path
    }

    /// Parses and resolves a contract type; records a diagnostic on failure.
    fn resolve(&mut self, text: &str, path: &str) -> Option<TypeExpr> {
        match TypeExpr::parse(text) {
            Ok(t) => {
                let unknown: Vec<String> = t
                    .named()
                    .into_iter()
                    .filter(|n| !self.named_rust.contains_key(*n))
                    .map(str::to_owned)
                    .collect();
                if unknown.is_empty() {
                    return Some(t);
                }
                for name in unknown {
                    let declared: Vec<&str> = self.named_rust.keys().map(String::as_str).collect();
                    let help = match closest(&name, &declared) {
                        Some(s) => format!("did you mean `{s}`? Declare the type under `types`"),
                        None => "declare the type under `types`, or use a built-in type \
                                 (string, bool, i32, i64, u32, u64, f32, f64, uuid, datetime, \
                                 json, list<T>, map<T>, optional<T>)"
                            .to_owned(),
                    };
                    self.error_help("BUILD-002", path, format!("unknown type `{name}`"), help);
                }
                None
            }
            Err(e) => {
                self.error_help(
                    "BUILD-002",
                    path,
                    format!("invalid type `{text}`: {}", e.message),
                    "built-in types are string, bool, i32, i64, u32, u64, f32, f64, uuid, \
                     datetime, json, list<T>, map<T>, optional<T>",
                );
                None
            }
        }
    }

    /// Contract type names to Rust types as a node crate writes them:
    /// the contract's own types live in its `events` module, so that no
    /// contract name meets the crate root's generated names; extern paths
    /// stay as they are.
    fn named_in_crate(&self) -> BTreeMap<String, String> {
        self.named_rust
            .iter()
            .map(|(name, rust)| {
                let local = !rust.contains("::");
                let path = if local {
                    format!("crate::events::{rust}")
                } else {
                    rust.clone()
                };
                (name.clone(), path)
            })
            .collect()
    }

    fn type_eq(&self, t: &TypeExpr) -> bool {
        t.is_eq(&|n| self.named_eq.get(n).copied().unwrap_or(false))
    }

    /// A field declared in the contract.
    fn contract_field(
        &mut self,
        field: &crate::contract::Field,
        diag_path: &str,
        owner_path: &str,
    ) -> Option<(FieldSpec, bool)> {
        let ty = self.resolve(&field.ty, &format!("{diag_path}.type"))?;
        let rust_type = ty.rust(self.rt(), &self.named_rust);
        let eq = self.type_eq(&ty);
        let field_path = format!("{owner_path}.{}", field.name);
        Some((
            FieldSpec {
                name: field.name.clone(),
                ident: field_ident(&field.name),
                contract_type: ty.contract_name(),
                rust_type,
                doc: doc_or(&field.description, || {
                    format!("The `{}` field (`{}`).", field.name, ty.contract_name())
                }),
                optional: ty.is_optional(),
                attributes: attributes_for(&self.options.field_attributes, &field_path),
            },
            eq,
        ))
    }

    fn node(&mut self) -> NodeSpec {
        let c = &self.loaded.contract;
        let id = &c.node;
        let service = id.service.clone().unwrap_or_else(|| id.name.clone());
        let node_type = id.node_type.as_str().to_owned();
        let node_type_pascal = to_pascal_case(&node_type);
        let pascal_name = to_pascal_case(&id.name);
        let node_struct = format!("Node{pascal_name}{node_type_pascal}");
        let event_enum = format!("{pascal_name}Event");

        let types = self.types();
        let operations = self.operations();
        let state = self.aggregation_state();
        let events = self.events(&service, &state);
        let workflow = self.workflow();
        let aggregation = self.aggregation(&state);
        let states = self.states();

        // Raw topics only: an `event:` subscription's topic is its
        // producer's, which a node crate reads from the consumed contract.
        let subscriptions = c
            .subscriptions
            .iter()
            .filter_map(|s| {
                let topic = s.topic.as_ref()?;
                Some(SubscriptionSpec {
                    topic: topic.clone(),
                    operation: s.operation.clone(),
                    doc: doc_or(&s.description, || format!("Consumes `{topic}`.")),
                })
            })
            .collect();

        let mut actions = Vec::new();
        push_unique(&mut actions, format!("execute_{node_type}"));
        push_unique(&mut actions, "validate_input".to_owned());
        for op in &c.operations {
            push_unique(&mut actions, op.name.clone());
        }
        for a in &c.capabilities.actions {
            push_unique(&mut actions, a.clone());
        }
        let mut tags = Vec::new();
        for t in &id.tags {
            push_unique(&mut tags, t.clone());
        }
        push_unique(&mut tags, id.domain.clone());
        push_unique(&mut tags, node_type.clone());
        push_unique(&mut tags, service.clone());
        let mut protocols = Vec::new();
        for p in &c.capabilities.protocols {
            push_unique(&mut protocols, p.clone());
        }
        let metadata = BTreeMap::from([
            ("node_type".to_owned(), node_type.clone()),
            ("domain".to_owned(), id.domain.clone()),
            ("service_name".to_owned(), service.clone()),
        ]);

        let bus = &c.event_bus;
        let event_bus = EventBusSpec {
            enabled: matches!(id.node_type, NodeType::Effect | NodeType::Orchestrator)
                || bus.enabled.unwrap_or(false),
            consumer_group: bus
                .consumer_group
                .clone()
                .unwrap_or_else(|| format!("{service}_consumers")),
            dead_letter_topic: bus
                .dead_letter_topic
                .clone()
                .unwrap_or_else(|| format!("{service}.dlq.v1")),
            heartbeat_interval_seconds: bus.heartbeat_interval_seconds.unwrap_or(30),
            max_in_flight: bus.max_in_flight.unwrap_or(64),
        };

        NodeSpec {
            contract_file: self
                .loaded
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("{}.yaml", id.name)),
            name: id.name.clone(),
            pascal_name,
            node_type_pascal,
            node_struct,
            event_enum,
            version: id.version.clone(),
            contract_hash: crate::contract::contract_hash(c),
            domain: id.domain.clone(),
            description: doc_or(&id.description, || {
                format!("The `{}` {} node.", id.name, node_type)
            }),
            service,
            node_type,
            runtime: self.options.runtime_path.clone(),
            types,
            operations,
            events,
            subscriptions,
            states,
            workflow,
            aggregation,
            introspection: IntrospectionSpec {
                actions,
                protocols,
                metadata,
                tags,
                health_endpoint: c.capabilities.health_endpoint.clone(),
            },
            event_bus,
        }
    }

    fn operations(&mut self) -> Vec<OperationSpec> {
        let c = &self.loaded.contract;
        let mut out = Vec::new();
        for (i, op) in c.operations.iter().enumerate() {
            let input = self.resolve(&op.input, &format!("operations[{i}].input"));
            let output = self.resolve(&op.output, &format!("operations[{i}].output"));
            let (Some(input), Some(output)) = (input, output) else {
                continue;
            };
            out.push(OperationSpec {
                name: op.name.clone(),
                pascal_name: to_pascal_case(&op.name),
                doc: doc_or(&op.description, || format!("The `{}` operation.", op.name)),
                input: input.rust(self.rt(), &self.named_rust),
                output: output.rust(self.rt(), &self.named_rust),
                crate_input: input.rust(self.rt(), &self.named_in_crate()),
                crate_output: output.rust(self.rt(), &self.named_in_crate()),
                idempotent: op.idempotent,
            });
        }
        out
    }

    /// A reducer's aggregated state: the contract's type, else JSON.
    fn aggregation_state(&mut self) -> TypeExpr {
        let state = self
            .loaded
            .contract
            .aggregation
            .as_ref()
            .and_then(|a| a.state.as_ref());
        match state {
            Some(text) => self
                .resolve(text, "aggregation.state")
                .unwrap_or(TypeExpr::Json),
            None => TypeExpr::Json,
        }
    }

    fn aggregation(&self, state: &TypeExpr) -> Option<AggregationSpec> {
        let a = self.loaded.contract.aggregation.as_ref()?;
        Some(AggregationSpec {
            topics: a.topics.clone(),
            window_ms: a.window_ms.unwrap_or(5000),
            state_type: state.rust(self.rt(), &self.named_rust),
            crate_state_type: state.rust(self.rt(), &self.named_in_crate()),
        })
    }

    fn workflow(&self) -> Option<WorkflowSpec> {
        let w = self.loaded.contract.workflow.as_ref()?;
        let steps = w
            .steps
            .iter()
            .map(|s| StepSpec {
                name: s.name.clone(),
                pascal_name: to_pascal_case(&s.name),
                doc: doc_or(&s.description, || format!("The `{}` step.", s.name)),
                operation: s.operation.clone(),
            })
            .collect();
        Some(WorkflowSpec {
            steps,
            timeout_seconds: w.timeout_seconds.unwrap_or(60),
        })
    }

    fn states(&mut self) -> Option<StateMachineSpec> {
        let sm = self.loaded.contract.states.as_ref()?;
        let states = named::variants(sm.states.iter().map(|s| (s.as_str(), None)));
        let variant_of = |name: &str| {
            states
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.rust_name.clone())
        };
        let initial = variant_of(&sm.initial);
        if initial.is_none() {
            self.error_help(
                "BUILD-004",
                "states.initial",
                format!(
                    "the initial state `{}` is not listed in `states`",
                    sm.initial
                ),
                "add it to `states.states` or pick one of the listed states",
            );
        }
        let mut transitions = Vec::new();
        for (i, t) in sm.transitions.iter().enumerate() {
            match (variant_of(&t.from), variant_of(&t.to)) {
                (Some(from), Some(to)) => transitions.push(TransitionSpec {
                    repeated: transitions
                        .iter()
                        .any(|earlier: &TransitionSpec| earlier.from == from && earlier.to == to),
                    from,
                    to,
                    from_name: t.from.clone(),
                    to_name: t.to.clone(),
                    on: t.on.clone(),
                }),
                (from, _) => {
                    let unknown = if from.is_none() { &t.from } else { &t.to };
                    self.error_help(
                        "BUILD-004",
                        format!("states.transitions[{i}]"),
                        format!("the transition names the unknown state `{unknown}`"),
                        "transitions may only name states listed in `states.states`",
                    );
                }
            }
        }
        Some(StateMachineSpec {
            initial: initial.unwrap_or_default(),
            states,
            transitions,
        })
    }
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The contract's doc text, or a generated one when it has none.
fn doc_or(text: &Option<String>, default: impl FnOnce() -> String) -> String {
    match text {
        Some(t) if !t.trim().is_empty() => t.trim().to_owned(),
        _ => default(),
    }
}

/// serde's `rename_all = "snake_case"` applied to a PascalCase variant.
fn serde_snake_case(variant: &str) -> String {
    let mut out = String::new();
    for (i, c) in variant.char_indices() {
        if i > 0 && c.is_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The closest candidate by edit distance, for "did you mean".
fn closest<'c>(name: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(name, c), *c))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_paths() {
        assert!(path_matches(".", "pw.A"));
        assert!(path_matches("pw", "pw.A.x"));
        assert!(path_matches(".pw.A", "pw.A"));
        assert!(!path_matches("pw.A", "pw.AB"));
        assert!(!path_matches("p", "pw.A"));
    }

    fn spec_of(yaml: &str) -> Result<NodeSpec, Diagnostics> {
        let loaded = crate::contract::load_str(std::path::Path::new("c.yaml"), yaml.to_owned())
            .expect("loads");
        build(&loaded, &SpecOptions::default())
    }

    const REDUCER: &str = "\
contract_version: 1
node: { name: event_counter, node_type: reducer, version: 1.0.0, domain: metrics }
types:
  - name: Counts
    fields: [{ name: total, type: u64 }]
operations:
  - { name: aggregation, input: Counts, output: Counts }
  - { name: state_snapshot, input: Counts, output: Counts }
aggregation: { topics: [a.effect.x.v1], state: Counts }
";

    #[test]
    fn derives_names_and_the_seed_event_catalog() {
        let spec = spec_of(REDUCER).expect("builds");
        assert_eq!(spec.service, "event_counter");
        assert_eq!(spec.node_struct, "NodeEventCounterReducer");
        assert_eq!(spec.event_enum, "EventCounterEvent");
        // Seed 002: 2 operations x 3 stages + state + metric = 8, then the
        // reducer's state.updated and the two discovery events.
        assert_eq!(
            spec.event_types(),
            [
                "reducer.aggregation.started",
                "reducer.aggregation.completed",
                "reducer.aggregation.failed",
                "reducer.state_snapshot.started",
                "reducer.state_snapshot.completed",
                "reducer.state_snapshot.failed",
                "reducer.state.changed",
                "reducer.metric.recorded",
                "reducer.state.updated",
                "omninode.discovery.node_introspection",
                "omninode.discovery.node_heartbeat",
            ]
        );
        let updated = spec.event("reducer.state.updated").expect("state.updated");
        assert_eq!(updated.topic, "event_counter.reducer.state.updated.v1");
        assert_eq!(updated.fields[1].rust_type, "Counts");
        assert!(updated.derive_eq);
        let started = spec.event("reducer.aggregation.started").expect("started");
        assert_eq!(started.struct_name, "AggregationStarted");
        assert_eq!(started.summary["total"], "u64");
        assert!(
            !spec
                .event("reducer.aggregation.failed")
                .expect("failed")
                .derive_eq
        );
    }

    /// Generated names that collide are the gates' to report (QC-004),
    /// before the build stage runs.
    #[test]
    fn generated_name_collisions_are_diagnosed_by_the_gates() {
        let yaml =
            format!("{REDUCER}events:\n  - name: aggregation_started\n  - name: state_changed\n");
        let loaded =
            crate::contract::load_str(std::path::Path::new("c.yaml"), yaml).expect("loads");
        let err = crate::validate::validate(&loaded).expect_err("collides");
        let derived = err.iter().filter(|d| d.code == "QC-004").count();
        assert_eq!(derived, 2, "{err}");
        let text = err.to_string();
        assert!(text.contains("operation `aggregation`"), "{text}");
        assert!(text.contains("state-changed"), "{text}");
    }

    #[test]
    fn unknown_types_get_a_suggestion() {
        let err = spec_of(&REDUCER.replace("state: Counts", "state: Count")).expect_err("unknown");
        assert!(err.to_string().contains("did you mean `Counts`?"), "{err}");
    }

    #[test]
    fn serde_snake_case_round_trip() {
        assert_eq!(serde_snake_case("WriteRecord"), "write_record");
        assert_ne!(serde_snake_case(&to_pascal_case("http_2")), "http_2");
    }

    /// Two transitions between the same states (other triggers) are both
    /// documented, and `can_transition_to` matches the pair once: a second
    /// arm would be an unreachable pattern.
    #[test]
    fn a_repeated_transition_is_matched_once() {
        let yaml = format!(
            "{REDUCER}states:\n  initial: a\n  states: [a, b]\n  transitions:\n    \
             - {{ from: a, to: b, on: x }}\n    - {{ from: a, to: b, on: y }}\n"
        );
        let spec = spec_of(&yaml).expect("builds");
        let repeated: Vec<bool> = spec
            .states
            .as_ref()
            .expect("states")
            .transitions
            .iter()
            .map(|t| t.repeated)
            .collect();
        assert_eq!(repeated, [false, true]);
        let code = crate::render::render_module(&spec).expect("renders");
        assert_eq!(code.matches("(Self::A, Self::B)").count(), 1, "{code}");
        assert!(code.contains("on `x`") && code.contains("on `y`"), "{code}");
    }
}
