//! The node's events: the contract's own, the derived ones of
//! [`crate::spec::derived`], and the runtime's shared ones.

use std::collections::BTreeMap;

use super::{DERIVED_VERSION, RECOVERY_SUGGESTIONS, SpecBuilder, attributes_for, doc_or};
use crate::contract::Category;
use crate::naming::{field_ident, to_pascal_case, to_shouty_snake_case};
use crate::spec::derived::{DerivedEvent, SHARED_EVENTS, SharedEvent, Source, derived_events};
use crate::spec::types::TypeExpr;
use crate::spec::{EventKind, EventSpec, FieldSpec};

impl SpecBuilder<'_> {
    /// Every event of the node, in the order the generated code lists
    /// them: the contract's own, the derived ones, then the shared ones.
    /// `state` is a reducer's aggregated state.
    pub(super) fn events(&mut self, service: &str, state: &TypeExpr) -> Vec<EventSpec> {
        let c = &self.loaded.contract;
        let mut out = self.custom_events(service);
        for derived in derived_events(c) {
            // A step's and the workflow's events need the workflow, the
            // state's event the aggregation; the gates make them agree with
            // the node type.
            let present = match derived.kind {
                EventKind::StepStarted
                | EventKind::StepCompleted
                | EventKind::StepFailed
                | EventKind::WorkflowCompleted
                | EventKind::WorkflowFailed => c.workflow.is_some(),
                EventKind::StateUpdated => c.aggregation.is_some(),
                _ => true,
            };
            if present {
                out.push(self.derived_event(&derived, service, state));
            }
        }
        out.extend(SHARED_EVENTS.iter().map(|e| self.shared_event(e)));
        out
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

    fn derived_event(&self, derived: &DerivedEvent, service: &str, state: &TypeExpr) -> EventSpec {
        let c = &self.loaded.contract;
        let kind = derived.kind;
        let struct_name = derived.struct_name();
        let path = format!("{}.{struct_name}", c.node.name);
        let mut fields: Vec<FieldSpec> = derived
            .fields(c, state)
            .into_iter()
            .map(|(name, ty, doc)| self.derived_field(&path, name, ty, doc))
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
        let (operation, step_index) = match derived.source {
            Source::Operation(i) => (Some(c.operations[i].name.clone()), None),
            Source::Step(i) => (
                c.workflow.as_ref().map(|w| w.steps[i].name.clone()),
                Some(i),
            ),
            Source::Node => (None, None),
        };
        let derive_eq = if kind == EventKind::StateUpdated {
            self.type_eq(state)
        } else {
            fields.iter().all(|f| !has_float(&f.contract_type))
        };
        let (summary, summary_only) = match (kind, derived.source) {
            (EventKind::OperationStarted, Source::Operation(i)) => {
                (self.summary_of(&c.operations[i].input), Vec::new())
            }
            (EventKind::OperationCompleted, Source::Operation(i)) => {
                let output = &c.operations[i].output;
                let summary_only = c
                    .types
                    .iter()
                    .filter(|t| &t.name == output)
                    .flat_map(|t| t.fields.iter().flatten())
                    .filter(|f| f.summary_only)
                    .map(|f| field_ident(&f.name))
                    .collect();
                (self.summary_of(output), summary_only)
            }
            _ => (BTreeMap::new(), Vec::new()),
        };
        EventSpec {
            kind,
            rust_path: struct_name.clone(),
            variant: struct_name.clone(),
            const_name: to_shouty_snake_case(&struct_name),
            attributes: attributes_for(&self.options.type_attributes, &path),
            path,
            topic: format!("{service}.{}.v1", derived.event_type),
            event_type: derived.event_type.clone(),
            version: DERIVED_VERSION.to_owned(),
            category: "Event".to_owned(),
            shared: false,
            derive_eq,
            fields,
            doc: derived.doc(c),
            operation,
            step_index,
            summary,
            summary_only,
            struct_name,
        }
    }

    fn shared_event(&self, e: &SharedEvent) -> EventSpec {
        EventSpec {
            kind: e.kind,
            rust_path: format!("{}::discovery::{}", self.rt(), e.struct_name),
            struct_name: e.struct_name.to_owned(),
            variant: e.variant.to_owned(),
            const_name: to_shouty_snake_case(e.variant),
            path: format!("{}.{}", self.loaded.contract.node.name, e.struct_name),
            event_type: e.event_type.to_owned(),
            version: DERIVED_VERSION.to_owned(),
            category: "Event".to_owned(),
            topic: e.topic.to_owned(),
            shared: true,
            fields: Vec::new(),
            doc: e.doc.to_owned(),
            derive_eq: false,
            attributes: Vec::new(),
            operation: None,
            step_index: None,
            summary: BTreeMap::new(),
            summary_only: Vec::new(),
        }
    }

    fn custom_events(&mut self, service: &str) -> Vec<EventSpec> {
        let c = &self.loaded.contract;
        let node = &c.node.name;
        let node_type = c.node.node_type.as_str();
        let mut out = Vec::new();
        for (i, e) in c.events.iter().enumerate() {
            let struct_name = to_pascal_case(&e.name);
            let path = format!("{node}.{struct_name}");
            let event_type = e
                .event_type
                .clone()
                .unwrap_or_else(|| format!("{node_type}.{}", e.name));
            let mut fields = Vec::new();
            let mut eq = true;
            for (j, f) in e.fields.iter().enumerate() {
                let dp = format!("events[{i}].fields[{j}]");
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
}

fn has_float(contract_type: &str) -> bool {
    contract_type.contains("f32") || contract_type.contains("f64")
}
