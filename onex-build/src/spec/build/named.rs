//! The contract's named types: structs and enums, their fields and
//! variants, and which of them can derive `Eq`.

use super::{SpecBuilder, attributes_for, doc_or, serde_snake_case};
use crate::naming::to_pascal_case;
use crate::spec::types::TypeExpr;
use crate::spec::{TypeKind, TypeSpec, VariantSpec};

impl SpecBuilder<'_> {
    pub(super) fn types(&mut self) -> Vec<TypeSpec> {
        let c = &self.loaded.contract;
        let node = c.node.name.clone();
        // Declare every name first, so that types may refer to each other in
        // any order.
        for t in &c.types {
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
                for (j, f) in fields.iter().enumerate() {
                    let dp = format!("types[{i}].fields[{j}]");
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
            } else if let Some(listed) = &t.variants {
                let specs = variants(
                    listed
                        .iter()
                        .map(|v| (v.name.as_str(), v.description.as_ref())),
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
}

/// The variants of an enum or a state machine.
pub(super) fn variants<'v>(
    variants: impl Iterator<Item = (&'v str, Option<&'v String>)>,
) -> Vec<VariantSpec> {
    variants
        .map(|(name, description)| {
            let rust_name = to_pascal_case(name);
            let rename = (serde_snake_case(&rust_name) != name).then(|| name.to_owned());
            VariantSpec {
                name: name.to_owned(),
                rust_name,
                doc: doc_or(&description.cloned(), || format!("`{name}`.")),
                rename,
            }
        })
        .collect()
}
