//! Building a [`NodeSpec`] from a loaded contract.

use std::collections::{BTreeMap, BTreeSet};

use super::types::TypeExpr;
use super::*;
use crate::contract::{Category, Diagnostic, Diagnostics, LoadedContract, NodeType};
use crate::naming::{NON_RAW_KEYWORDS, field_ident, is_pascal_case, is_snake_case};
use crate::naming::{to_pascal_case, to_shouty_snake_case};

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

/// Stage 2: normalizes a contract into a [`NodeSpec`].
///
/// Returns every problem found (names that are not identifiers, unknown
/// types, generated names that collide) as diagnostics of the contract.
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

    fn check_snake(&mut self, name: &str, path: &str, what: &str) -> bool {
        if !is_snake_case(name) || NON_RAW_KEYWORDS.contains(&name) {
            self.error_help(
                "BUILD-001",
                path,
                format!("{what} `{name}` is not a snake_case identifier"),
                "use lower-case letters, digits and single underscores, starting with a letter",
            );
            return false;
        }
        true
    }

    fn check_pascal(&mut self, name: &str, path: &str, what: &str) -> bool {
        if !is_pascal_case(name) || name == "Self" {
            self.error_help(
                "BUILD-001",
                path,
                format!("{what} `{name}` is not a PascalCase identifier"),
                "use letters and digits, starting with an upper-case letter, e.g. `OrderLine`",
            );
            return false;
        }
        true
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
        let ok = self.check_snake(&field.name, &format!("{diag_path}.name"), "field name");
        let ty = self.resolve(&field.ty, &format!("{diag_path}.type"))?;
        if !ok {
            return None;
        }
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

    /// A field of a derived event.
    fn derived_field(&self, owner_path: &str, name: &str, ty: TypeExpr, doc: &str) -> FieldSpec {
        FieldSpec {
            name: name.to_owned(),
            ident: field_ident(name),
            contract_type: ty.contract_name(),
            rust_type: ty.rust(self.rt(), &self.named_rust),
            doc: doc.to_owned(),
            optional: ty.is_optional(),
            attributes: attributes_for(
                &self.options.field_attributes,
                &format!("{owner_path}.{name}"),
            ),
        }
    }

    fn node(&mut self) -> NodeSpec {
        let c = &self.loaded.contract;
        let id = &c.node;
        self.check_snake(&id.name, "node.name", "node name");
        let service = id.service.clone().unwrap_or_else(|| id.name.clone());
        let node_type = id.node_type.as_str().to_owned();
        let node_type_pascal = to_pascal_case(&node_type);
        let pascal_name = to_pascal_case(&id.name);
        let node_struct = format!("Node{pascal_name}{node_type_pascal}");
        let event_enum = format!("{pascal_name}Event");

        let types = self.types();
        let operations = self.operations();
        let mut events = self.custom_events(&node_type, &service);
        self.operation_events(&node_type, &service, &mut events);
        self.node_events(&node_type, &service, &mut events);
        let workflow = self.workflow(&node_type, &service, &mut events);
        let aggregation = self.aggregation(&node_type, &service, &mut events);
        events.push(self.shared_event(
            EventKind::Introspection,
            "NodeIntrospectionEvent",
            "NodeIntrospection",
            "omninode.discovery.node_introspection",
            "omninode.discovery.node_introspection.v1",
            "The introspection event the node publishes on start-up so that a registry \
             can discover it; build it with `introspection()`.",
        ));
        events.push(self.shared_event(
            EventKind::Heartbeat,
            "NodeHeartbeatEvent",
            "NodeHeartbeat",
            "omninode.discovery.node_heartbeat",
            "omninode.discovery.node_heartbeat.v1",
            "The heartbeat the node publishes periodically; build it with `heartbeat()`.",
        ));
        let states = self.states();
        self.check_collisions(&types, &events, &event_enum, states.is_some());

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

    fn types(&mut self) -> Vec<TypeSpec> {
        let c = &self.loaded.contract;
        let node = c.node.name.clone();
        // Declare every name first, so that types may refer to each other in
        // any order.
        for (i, t) in c.types.iter().enumerate() {
            let path = format!("types[{i}].name");
            if !self.check_pascal(&t.name, &path, "type name") {
                continue;
            }
            if self.named_rust.contains_key(&t.name) {
                self.error(
                    "BUILD-003",
                    path,
                    format!("type `{}` is declared twice", t.name),
                );
                continue;
            }
            let key = format!("{node}.{}", t.name);
            let rust = self
                .options
                .extern_types
                .get(&key)
                .cloned()
                .unwrap_or_else(|| t.name.clone());
            self.named_rust.insert(t.name.clone(), rust);
            self.named_eq.insert(t.name.clone(), true);
        }
        for key in self.options.extern_types.keys() {
            if let Some(name) = key.strip_prefix(&format!("{node}."))
                && !self.named_rust.contains_key(name)
            {
                self.error_help(
                    "BUILD-002",
                    "types",
                    format!(
                        "`extern_type(\"{key}\", ...)` names a type the contract does not declare"
                    ),
                    "the path is `{node name}.{TypeName}` of a type under `types`",
                );
            }
        }

        // Resolve field types once, then settle `Eq` by fixpoint (types may
        // be recursive through lists).
        let mut resolved: Vec<Option<Vec<Option<TypeExpr>>>> = Vec::new();
        for (i, t) in c.types.iter().enumerate() {
            match (&t.fields, &t.variants) {
                (Some(fields), None) => {
                    let tys = fields
                        .iter()
                        .enumerate()
                        .map(|(j, f)| self.resolve(&f.ty, &format!("types[{i}].fields[{j}].type")))
                        .collect();
                    resolved.push(Some(tys));
                }
                (None, Some(_)) => resolved.push(None),
                _ => {
                    self.error_help(
                        "BUILD-002",
                        format!("types[{i}]"),
                        format!("type `{}` must have either `fields` or `variants`", t.name),
                        "a struct lists `fields`, an enum lists `variants`",
                    );
                    resolved.push(None);
                }
            }
        }
        for (name, rust) in &self.named_rust {
            if rust != name {
                self.named_eq.insert(name.clone(), false);
            }
        }
        loop {
            let mut changed = false;
            for (t, tys) in c.types.iter().zip(&resolved) {
                let Some(tys) = tys else { continue };
                if self.named_eq.get(&t.name) != Some(&true) {
                    continue;
                }
                let eq = tys
                    .iter()
                    .all(|ty| ty.as_ref().is_some_and(|ty| self.type_eq(ty)));
                if !eq {
                    self.named_eq.insert(t.name.clone(), false);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }

        let mut out = Vec::new();
        for (i, t) in c.types.iter().enumerate() {
            if self.named_rust.get(&t.name) != Some(&t.name) {
                continue; // invalid, duplicate or extern
            }
            let path = format!("{node}.{}", t.name);
            let doc = doc_or(&t.description, || {
                format!("The `{}` type of the `{node}` contract.", t.name)
            });
            let attributes = attributes_for(&self.options.type_attributes, &path);
            if let Some(fields) = &t.fields {
                let mut specs = Vec::new();
                let mut seen = BTreeSet::new();
                for (j, f) in fields.iter().enumerate() {
                    let dp = format!("types[{i}].fields[{j}]");
                    if !seen.insert(f.name.clone()) {
                        self.error(
                            "BUILD-003",
                            format!("{dp}.name"),
                            format!("field `{}` appears twice in `{}`", f.name, t.name),
                        );
                        continue;
                    }
                    if let Some((spec, _)) = self.contract_field(f, &dp, &path) {
                        specs.push(spec);
                    }
                }
                self.struct_fields.insert(
                    t.name.clone(),
                    specs
                        .iter()
                        .map(|f| (f.name.clone(), f.contract_type.clone()))
                        .collect(),
                );
                out.push(TypeSpec {
                    path,
                    rust_name: t.name.clone(),
                    doc,
                    kind: TypeKind::Struct,
                    fields: specs,
                    variants: Vec::new(),
                    derive_eq: self.named_eq.get(&t.name) == Some(&true),
                    attributes,
                });
            } else if let Some(variants) = &t.variants {
                let specs = self.variants(
                    variants
                        .iter()
                        .map(|v| (v.name.as_str(), v.description.as_ref())),
                    &format!("types[{i}].variants"),
                    &t.name,
                );
                if specs.is_empty() {
                    self.error(
                        "BUILD-002",
                        format!("types[{i}].variants"),
                        format!("enum `{}` has no variants", t.name),
                    );
                }
                out.push(TypeSpec {
                    path,
                    rust_name: t.name.clone(),
                    doc,
                    kind: TypeKind::Enum,
                    fields: Vec::new(),
                    variants: specs,
                    derive_eq: true,
                    attributes,
                });
            }
        }
        out
    }

    fn variants<'v>(
        &mut self,
        variants: impl Iterator<Item = (&'v str, Option<&'v String>)>,
        diag_path: &str,
        owner: &str,
    ) -> Vec<VariantSpec> {
        let mut out: Vec<VariantSpec> = Vec::new();
        for (j, (name, description)) in variants.enumerate() {
            let dp = format!("{diag_path}[{j}]");
            if !self.check_snake(name, &dp, "variant") {
                continue;
            }
            let rust_name = to_pascal_case(name);
            if out.iter().any(|v| v.rust_name == rust_name) {
                self.error(
                    "BUILD-003",
                    dp,
                    format!("`{name}` appears twice in `{owner}` (as `{rust_name}`)"),
                );
                continue;
            }
            let rename = (serde_snake_case(&rust_name) != name).then(|| name.to_owned());
            out.push(VariantSpec {
                name: name.to_owned(),
                rust_name,
                doc: doc_or(&description.cloned(), || format!("`{name}`.")),
                rename,
            });
        }
        out
    }

    fn operations(&mut self) -> Vec<OperationSpec> {
        let c = &self.loaded.contract;
        let mut out = Vec::new();
        for (i, op) in c.operations.iter().enumerate() {
            let ok = self.check_snake(&op.name, &format!("operations[{i}].name"), "operation");
            let input = self.resolve(&op.input, &format!("operations[{i}].input"));
            let output = self.resolve(&op.output, &format!("operations[{i}].output"));
            let (Some(input), Some(output), true) = (input, output, ok) else {
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

    #[allow(clippy::too_many_arguments)]
    fn derived_event(
        &self,
        kind: EventKind,
        struct_name: String,
        event_type: String,
        service: &str,
        doc: String,
        fields: &[(&str, TypeExpr, &str)],
        operation: Option<String>,
    ) -> EventSpec {
        let path = format!("{}.{struct_name}", self.loaded.contract.node.name);
        let mut fields: Vec<FieldSpec> = fields
            .iter()
            .map(|(name, ty, doc)| self.derived_field(&path, name, ty.clone(), doc))
            .collect();
        if matches!(
            kind,
            EventKind::OperationFailed | EventKind::StepFailed | EventKind::WorkflowFailed
        ) {
            // What the caller may do about the error (seed 004); absent
            // from what producers of an earlier generator sent, hence the
            // default.
            let mut suggestions = self.derived_field(
                &path,
                RECOVERY_SUGGESTIONS,
                TypeExpr::List(Box::new(TypeExpr::String)),
                "What the caller may do about the error, each a sentence a person can act on.",
            );
            suggestions
                .attributes
                .insert(0, "#[serde(default)]".to_owned());
            let at = fields
                .iter()
                .position(|f| f.name == "error_type")
                .map_or(fields.len(), |i| i + 1);
            fields.insert(at, suggestions);
        }
        EventSpec {
            kind,
            rust_path: struct_name.clone(),
            variant: struct_name.clone(),
            const_name: to_shouty_snake_case(&struct_name),
            attributes: attributes_for(&self.options.type_attributes, &path),
            path,
            topic: format!("{service}.{event_type}.v1"),
            event_type,
            version: DERIVED_VERSION.to_owned(),
            category: "Event".to_owned(),
            shared: false,
            derive_eq: fields.iter().all(|f| !has_float(&f.contract_type)),
            fields,
            doc,
            operation,
            step_index: None,
            summary: BTreeMap::new(),
            summary_only: Vec::new(),
            struct_name,
        }
    }

    fn shared_event(
        &self,
        kind: EventKind,
        struct_name: &str,
        variant: &str,
        event_type: &str,
        topic: &str,
        doc: &str,
    ) -> EventSpec {
        EventSpec {
            kind,
            rust_path: format!("{}::discovery::{struct_name}", self.rt()),
            struct_name: struct_name.to_owned(),
            variant: variant.to_owned(),
            const_name: to_shouty_snake_case(variant),
            path: format!("{}.{struct_name}", self.loaded.contract.node.name),
            event_type: event_type.to_owned(),
            version: DERIVED_VERSION.to_owned(),
            category: "Event".to_owned(),
            topic: topic.to_owned(),
            shared: true,
            fields: Vec::new(),
            doc: doc.to_owned(),
            derive_eq: false,
            attributes: Vec::new(),
            operation: None,
            step_index: None,
            summary: BTreeMap::new(),
            summary_only: Vec::new(),
        }
    }

    fn custom_events(&mut self, node_type: &str, service: &str) -> Vec<EventSpec> {
        let c = &self.loaded.contract;
        let node = c.node.name.clone();
        let mut out = Vec::new();
        for (i, e) in c.events.iter().enumerate() {
            if !self.check_snake(&e.name, &format!("events[{i}].name"), "event name") {
                continue;
            }
            let struct_name = to_pascal_case(&e.name);
            let path = format!("{node}.{struct_name}");
            let event_type = e
                .event_type
                .clone()
                .unwrap_or_else(|| format!("{node_type}.{}", e.name));
            let mut fields = Vec::new();
            let mut eq = true;
            let mut seen = BTreeSet::new();
            for (j, f) in e.fields.iter().enumerate() {
                let dp = format!("events[{i}].fields[{j}]");
                if !seen.insert(f.name.clone()) {
                    self.error(
                        "BUILD-003",
                        format!("{dp}.name"),
                        format!("field `{}` appears twice in event `{}`", f.name, e.name),
                    );
                    continue;
                }
                if let Some((spec, field_eq)) = self.contract_field(f, &dp, &path) {
                    eq &= field_eq;
                    fields.push(spec);
                }
            }
            let category = match e.category {
                Category::Event => "Event",
                Category::Command => "Command",
                Category::Intent => "Intent",
            };
            out.push(EventSpec {
                kind: EventKind::Custom,
                rust_path: struct_name.clone(),
                variant: struct_name.clone(),
                const_name: to_shouty_snake_case(&struct_name),
                attributes: attributes_for(&self.options.type_attributes, &path),
                path,
                topic: format!("{service}.{event_type}.v1"),
                doc: doc_or(&e.description, || {
                    format!("The `{event_type}` {}.", category.to_ascii_lowercase())
                }),
                event_type,
                version: e
                    .version
                    .clone()
                    .unwrap_or_else(|| DERIVED_VERSION.to_owned()),
                category: category.to_owned(),
                shared: false,
                fields,
                derive_eq: eq,
                operation: None,
                step_index: None,
                summary: BTreeMap::new(),
                summary_only: Vec::new(),
                struct_name,
            });
        }
        out
    }

    fn summary_of(&self, type_text: &str) -> BTreeMap<String, String> {
        match TypeExpr::parse(type_text) {
            Ok(TypeExpr::Named(n)) => self
                .struct_fields
                .get(&n)
                .map(|fields| fields.iter().cloned().collect())
                .unwrap_or_default(),
            _ => BTreeMap::new(),
        }
    }

    fn operation_events(&mut self, node_type: &str, service: &str, out: &mut Vec<EventSpec>) {
        use TypeExpr as T;
        let c = &self.loaded.contract;
        let map = || T::Map(Box::new(T::String));
        let meta = || T::Optional(Box::new(T::Json));
        for op in &c.operations {
            if !is_snake_case(&op.name) {
                continue; // reported by `operations`
            }
            let pascal = to_pascal_case(&op.name);
            let name = &op.name;
            let mut started = self.derived_event(
                EventKind::OperationStarted,
                format!("{pascal}Started"),
                format!("{node_type}.{name}.started"),
                service,
                format!("Published when the `{name}` operation starts."),
                &[
                    ("operation", T::String, "The operation's name."),
                    (
                        "correlation_id",
                        T::Uuid,
                        "Correlates the events of one request.",
                    ),
                    ("node_id", T::Uuid, "The publishing node's id."),
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
                Some(name.clone()),
            );
            started.summary = self.summary_of(&op.input);
            out.push(started);
            let mut completed = self.derived_event(
                EventKind::OperationCompleted,
                format!("{pascal}Completed"),
                format!("{node_type}.{name}.completed"),
                service,
                format!("Published when the `{name}` operation succeeds."),
                &[
                    ("operation", T::String, "The operation's name."),
                    (
                        "correlation_id",
                        T::Uuid,
                        "Correlates the events of one request.",
                    ),
                    ("node_id", T::Uuid, "The publishing node's id."),
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
                        TypeExpr::parse(&op.output).unwrap_or(T::Json),
                        "The operation's result; its summary-only fields are `None` (their types are in `result_summary`).",
                    ),
                    (
                        "success",
                        T::Bool,
                        "Always `true` for a completed operation.",
                    ),
                    ("metadata", meta(), "Extra observability metadata."),
                ],
                Some(name.clone()),
            );
            completed.summary = self.summary_of(&op.output);
            completed.summary_only = c
                .types
                .iter()
                .filter(|t| t.name == op.output)
                .flat_map(|t| t.fields.iter().flatten())
                .filter(|f| f.summary_only)
                .map(|f| field_ident(&f.name))
                .collect();
            out.push(completed);
            out.push(self.derived_event(
                EventKind::OperationFailed,
                format!("{pascal}Failed"),
                format!("{node_type}.{name}.failed"),
                service,
                format!("Published when the `{name}` operation fails."),
                &[
                    ("operation", T::String, "The operation's name."),
                    (
                        "correlation_id",
                        T::Uuid,
                        "Correlates the events of one request.",
                    ),
                    ("node_id", T::Uuid, "The publishing node's id."),
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
                Some(name.clone()),
            ));
        }
    }

    fn node_events(&mut self, node_type: &str, service: &str, out: &mut Vec<EventSpec>) {
        use TypeExpr as T;
        out.push(self.derived_event(
            EventKind::StateChanged,
            "StateChanged".to_owned(),
            format!("{node_type}.state.changed"),
            service,
            "Published when the node's state machine moves to another state.".to_owned(),
            &[
                ("node_id", T::Uuid, "The publishing node's id."),
                ("node_type", T::String, "The node type, e.g. `effect`."),
                (
                    "correlation_id",
                    T::Uuid,
                    "Correlates the events of one request.",
                ),
                ("changed_at", T::DateTime, "When the state changed (UTC)."),
                ("old_state", T::String, "The previous state."),
                ("new_state", T::String, "The new state."),
                ("transition_reason", T::String, "Why the state changed."),
                (
                    "metadata",
                    T::Optional(Box::new(T::Json)),
                    "Extra observability metadata.",
                ),
            ],
            None,
        ));
        out.push(self.derived_event(
            EventKind::MetricRecorded,
            "MetricRecorded".to_owned(),
            format!("{node_type}.metric.recorded"),
            service,
            "Published when the node records a performance or observability metric.".to_owned(),
            &[
                ("node_id", T::Uuid, "The publishing node's id."),
                ("node_type", T::String, "The node type, e.g. `effect`."),
                (
                    "correlation_id",
                    T::Uuid,
                    "Correlates the events of one request.",
                ),
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
            None,
        ));
    }

    fn workflow(
        &mut self,
        node_type: &str,
        service: &str,
        out: &mut Vec<EventSpec>,
    ) -> Option<WorkflowSpec> {
        use TypeExpr as T;
        let w = self.loaded.contract.workflow.as_ref()?;
        let mut steps = Vec::new();
        for (i, s) in w.steps.iter().enumerate() {
            if !self.check_snake(
                &s.name,
                &format!("workflow.steps[{i}].name"),
                "workflow step",
            ) {
                continue;
            }
            let pascal = to_pascal_case(&s.name);
            let name = &s.name;
            let et = |stage: &str| format!("{node_type}.workflow.{name}.{stage}");
            let common: [(&str, TypeExpr, &str); 5] = [
                ("workflow_id", T::Uuid, "The workflow run's id."),
                (
                    "correlation_id",
                    T::Uuid,
                    "Correlates the events of one request.",
                ),
                ("node_id", T::Uuid, "The publishing node's id."),
                ("step", T::String, "The step's name."),
                (
                    "step_index",
                    T::U32,
                    "The step's 0-based position in the workflow.",
                ),
            ];
            let with = |extra: &[(&'static str, TypeExpr, &'static str)]| {
                let mut v = common.to_vec();
                v.extend_from_slice(extra);
                v
            };
            let events = [
                (
                    EventKind::StepStarted,
                    "Started",
                    "started",
                    format!("Published when the workflow step `{name}` starts."),
                    with(&[("started_at", T::DateTime, "When the step started (UTC).")]),
                ),
                (
                    EventKind::StepCompleted,
                    "Completed",
                    "completed",
                    format!("Published when the workflow step `{name}` succeeds."),
                    with(&[
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
                        (
                            "result",
                            T::Optional(Box::new(T::Json)),
                            "The step's result, if any.",
                        ),
                    ]),
                ),
                (
                    EventKind::StepFailed,
                    "Failed",
                    "failed",
                    format!("Published when the workflow step `{name}` fails."),
                    with(&[
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
                    ]),
                ),
            ];
            for (kind, suffix, stage, doc, fields) in events {
                let mut e = self.derived_event(
                    kind,
                    format!("{pascal}Step{suffix}"),
                    et(stage),
                    service,
                    doc,
                    &fields,
                    Some(name.clone()),
                );
                e.step_index = Some(i);
                out.push(e);
            }
            steps.push(StepSpec {
                name: name.clone(),
                pascal_name: pascal,
                doc: doc_or(&s.description, || format!("The `{name}` step.")),
                operation: s.operation.clone(),
            });
        }
        let head: [(&str, TypeExpr, &str); 3] = [
            ("workflow_id", T::Uuid, "The workflow run's id."),
            (
                "correlation_id",
                T::Uuid,
                "Correlates the events of one request.",
            ),
            ("node_id", T::Uuid, "The publishing node's id."),
        ];
        let mut completed = head.to_vec();
        completed.extend([
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
            (
                "result",
                T::Optional(Box::new(T::Json)),
                "The workflow's result, if any.",
            ),
        ]);
        out.push(self.derived_event(
            EventKind::WorkflowCompleted,
            "WorkflowCompleted".to_owned(),
            format!("{node_type}.workflow.completed"),
            service,
            "Published when every step of the workflow succeeded.".to_owned(),
            &completed,
            None,
        ));
        let mut failed = head.to_vec();
        failed.extend([
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
        ]);
        out.push(self.derived_event(
            EventKind::WorkflowFailed,
            "WorkflowFailed".to_owned(),
            format!("{node_type}.workflow.failed"),
            service,
            "Published when a step of the workflow failed and the workflow stopped.".to_owned(),
            &failed,
            None,
        ));
        Some(WorkflowSpec {
            steps,
            timeout_seconds: w.timeout_seconds.unwrap_or(60),
        })
    }

    fn aggregation(
        &mut self,
        node_type: &str,
        service: &str,
        out: &mut Vec<EventSpec>,
    ) -> Option<AggregationSpec> {
        use TypeExpr as T;
        let a = self.loaded.contract.aggregation.as_ref()?;
        let state = match &a.state {
            Some(text) => self.resolve(text, "aggregation.state").unwrap_or(T::Json),
            None => T::Json,
        };
        let eq = self.type_eq(&state);
        let mut e = self.derived_event(
            EventKind::StateUpdated,
            "StateUpdated".to_owned(),
            format!("{node_type}.state.updated"),
            service,
            "Published when an aggregation window closes with a new aggregated state.".to_owned(),
            &[
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
            None,
        );
        e.derive_eq = eq;
        out.push(e);
        Some(AggregationSpec {
            topics: a.topics.clone(),
            window_ms: a.window_ms.unwrap_or(5000),
            state_type: state.rust(self.rt(), &self.named_rust),
            crate_state_type: state.rust(self.rt(), &self.named_in_crate()),
        })
    }

    fn states(&mut self) -> Option<StateMachineSpec> {
        let sm = self.loaded.contract.states.as_ref()?;
        let states = self.variants(
            sm.states.iter().map(|s| (s.as_str(), None)),
            "states.states",
            "states",
        );
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

    fn check_collisions(
        &mut self,
        types: &[TypeSpec],
        events: &[EventSpec],
        event_enum: &str,
        has_states: bool,
    ) {
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut claim = |b: &mut Self, name: &str, what: String| {
            if let Some(prev) = names.get(name) {
                b.error_help(
                    "BUILD-003",
                    "",
                    format!("the generated name `{name}` is used twice: by {prev} and by {what}"),
                    "rename one of them in the contract",
                );
            } else {
                names.insert(name.to_owned(), what);
            }
        };
        for t in types {
            claim(self, &t.rust_name, format!("type `{}`", t.rust_name));
        }
        claim(self, event_enum, "the event enum".to_owned());
        if has_states {
            claim(self, "State", "the state machine's `State` enum".to_owned());
        }
        for e in events {
            if !e.shared {
                claim(self, &e.struct_name, format!("event `{}`", e.event_type));
            }
        }
        let mut variants: BTreeMap<&str, &str> = BTreeMap::new();
        let mut consts: BTreeMap<&str, &str> = BTreeMap::new();
        let mut types_seen: BTreeMap<&str, &str> = BTreeMap::new();
        let mut dups = Vec::new();
        for e in events {
            for (map, key, what) in [
                (&mut variants, e.variant.as_str(), "event enum variant"),
                (&mut consts, e.const_name.as_str(), "topic constant"),
                (&mut types_seen, e.event_type.as_str(), "event type"),
            ] {
                if let Some(prev) = map.insert(key, &e.event_type)
                    && (prev != e.event_type || what == "event type")
                {
                    dups.push(format!(
                        "the {what} `{key}` is used by both `{prev}` and `{}`",
                        e.event_type
                    ));
                }
            }
        }
        for d in dups {
            self.error_help(
                "BUILD-003",
                "events",
                d,
                "rename one of the events or operations",
            );
        }
    }
}

fn has_float(contract_type: &str) -> bool {
    contract_type.contains("f32") || contract_type.contains("f64")
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

    #[test]
    fn generated_name_collisions_are_diagnosed() {
        let yaml =
            format!("{REDUCER}events:\n  - name: aggregation_started\n  - name: state_changed\n");
        let err = spec_of(&yaml).expect_err("collides");
        let text = err.to_string();
        assert!(
            text.contains("`AggregationStarted` is used twice"),
            "{text}"
        );
        assert!(text.contains("`StateChanged` is used twice"), "{text}");
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
