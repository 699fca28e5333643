//! The field type grammar, and the gates TY-001 (syntax), TY-002
//! (references), TY-003 (struct or enum), TY-004 (struct references) and
//! TY-005 (finite types).
//!
//! ```text
//! type     = builtin | generic | Name
//! builtin  = "string" | "bool" | "i32" | "i64" | "u32" | "u64"
//!          | "f32" | "f64" | "uuid" | "datetime" | "json"
//! generic  = ("list" | "map" | "optional") "<" type ">"
//! Name     = a PascalCase name declared under `types`
//! ```
//!
//! Spaces around `<` and `>` are allowed; `map<T>` has string keys;
//! `optional<optional<T>>` is refused (it could not round-trip through
//! JSON).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::Ctx;
use crate::contract::suggest::closest;
use crate::naming::is_pascal_case;

/// The built-in field types.
pub const BUILTIN_TYPES: &[&str] = &[
    "string", "bool", "i32", "i64", "u32", "u64", "f32", "f64", "uuid", "datetime", "json",
];

/// The generic field types, each with one type argument.
pub const GENERIC_TYPES: &[&str] = &["list", "map", "optional"];

/// How deeply generic types may nest (`list<list<...>>`).
pub const MAX_TYPE_DEPTH: usize = 8;

/// A parsed field type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// One of [`BUILTIN_TYPES`].
    Builtin(&'static str),
    /// `list<T>`
    List(Box<FieldType>),
    /// `map<T>`, string keys
    Map(Box<FieldType>),
    /// `optional<T>`
    Optional(Box<FieldType>),
    /// A type declared under `types`.
    Named(String),
}

impl FieldType {
    /// Every declared type this type mentions, with whether it is reached
    /// without a `list` or `map` in between (so contained by value).
    fn named(&self, by_value: bool, out: &mut Vec<(String, bool)>) {
        match self {
            FieldType::Builtin(_) => {}
            FieldType::List(t) | FieldType::Map(t) => t.named(false, out),
            FieldType::Optional(t) => t.named(by_value, out),
            FieldType::Named(n) => out.push((n.clone(), by_value)),
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::Builtin(b) => f.write_str(b),
            FieldType::List(t) => write!(f, "list<{t}>"),
            FieldType::Map(t) => write!(f, "map<{t}>"),
            FieldType::Optional(t) => write!(f, "optional<{t}>"),
            FieldType::Named(n) => f.write_str(n),
        }
    }
}

/// Why a field type does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TypeSyntaxError {
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

fn err(message: impl Into<String>, help: impl Into<String>) -> TypeSyntaxError {
    TypeSyntaxError {
        message: message.into(),
        help: help.into(),
    }
}

/// Common spellings from other languages, and what to write instead.
const ALIASES: &[(&str, &str)] = &[
    ("str", "string"),
    ("String", "string"),
    ("text", "string"),
    ("boolean", "bool"),
    ("Bool", "bool"),
    ("int", "i64"),
    ("integer", "i64"),
    ("long", "i64"),
    ("isize", "i64"),
    ("uint", "u64"),
    ("usize", "u64"),
    ("float", "f64"),
    ("double", "f64"),
    ("number", "f64"),
    ("Uuid", "uuid"),
    ("UUID", "uuid"),
    ("guid", "uuid"),
    ("timestamp", "datetime"),
    ("date", "datetime"),
    ("DateTime", "datetime"),
    ("time", "datetime"),
    ("object", "json"),
    ("any", "json"),
    ("Value", "json"),
    ("Vec", "list"),
    ("array", "list"),
    ("List", "list"),
    ("seq", "list"),
    ("HashMap", "map"),
    ("BTreeMap", "map"),
    ("dict", "map"),
    ("Map", "map"),
    ("Option", "optional"),
    ("Optional", "optional"),
    ("nullable", "optional"),
];

/// Parses a field type such as `map<list<OrderLine>>`. Declared names are
/// not resolved here (that is TY-002); `declared` only feeds "did you mean".
pub fn parse_field_type(text: &str) -> Result<FieldType, TypeSyntaxError> {
    parse_with(text, &[])
}

fn parse_with(text: &str, declared: &[&str]) -> Result<FieldType, TypeSyntaxError> {
    let mut p = TypeParser {
        text,
        pos: 0,
        declared,
    };
    let ty = p.ty(0)?;
    p.skip_spaces();
    if p.pos < text.len() {
        let rest = &text[p.pos..];
        return Err(if rest.starts_with(',') {
            err(
                format!("`{text}` gives a generic type more than one type argument"),
                "`list<T>`, `map<T>` and `optional<T>` take one type; map keys are always strings, so write `map<V>` with the value type",
            )
        } else {
            err(
                format!("unexpected `{rest}` after the type in `{text}`"),
                "write one type, e.g. `list<string>`",
            )
        });
    }
    Ok(ty)
}

struct TypeParser<'a> {
    text: &'a str,
    pos: usize,
    declared: &'a [&'a str],
}

impl TypeParser<'_> {
    fn skip_spaces(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start_matches(' ').len();
    }

    fn word(&mut self) -> &str {
        self.skip_spaces();
        let rest = &self.text[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_spaces();
        self.text[self.pos..].chars().next()
    }

    fn ty(&mut self, depth: usize) -> Result<FieldType, TypeSyntaxError> {
        let text = self.text;
        if depth > MAX_TYPE_DEPTH {
            return Err(err(
                format!("`{text}` nests more than {MAX_TYPE_DEPTH} generic types"),
                "declare a named type under `types` for the inner part",
            ));
        }
        let word = self.word().to_owned();
        if word.is_empty() {
            return Err(match self.peek() {
                None if text.trim().is_empty() => {
                    err("the type is empty", "write a type, e.g. `string`")
                }
                None => err(
                    format!("`{text}` ends where a type is expected"),
                    "complete the type, e.g. `list<string>`",
                ),
                Some(c) => err(
                    format!("unexpected `{c}` in `{text}` where a type name is expected"),
                    "write a type such as `string`, `list<string>` or a declared type name",
                ),
            });
        }
        if self.peek() == Some('<') {
            self.pos += 1;
            let generic = match word.as_str() {
                g @ ("list" | "map" | "optional") => g,
                other => {
                    let fix = ALIASES
                        .iter()
                        .find(|(a, _)| *a == other)
                        .map(|(_, b)| *b)
                        .filter(|b| GENERIC_TYPES.contains(b))
                        .or_else(|| closest(other, GENERIC_TYPES.iter().copied()));
                    return Err(err(
                        format!("`{other}<...>` is not a generic type"),
                        match fix {
                            Some(g) => format!(
                                "did you mean `{g}<...>`? The generic types are `list<T>`, `map<T>` and `optional<T>`"
                            ),
                            None => "the generic types are `list<T>`, `map<T>` and `optional<T>`"
                                .to_owned(),
                        },
                    ));
                }
            };
            let inner = self.ty(depth + 1)?;
            match self.peek() {
                Some('>') => self.pos += 1,
                Some(',') => {
                    return Err(err(
                        format!("`{text}`: `{generic}<T>` takes one type argument"),
                        if generic == "map" {
                            "map keys are always strings: write `map<V>` with the value type only"
                                .to_owned()
                        } else {
                            format!("write `{generic}<T>` with one type")
                        },
                    ));
                }
                _ => {
                    return Err(err(
                        format!("`{text}` opens `<` without a matching `>`"),
                        "close every `<` with a `>`",
                    ));
                }
            }
            return Ok(match generic {
                "list" => FieldType::List(Box::new(inner)),
                "map" => FieldType::Map(Box::new(inner)),
                _ => {
                    if matches!(inner, FieldType::Optional(_)) {
                        return Err(err(
                            format!("`{text}` nests `optional` in `optional`"),
                            "write a single `optional<T>`: an absent value and a null are the same in JSON",
                        ));
                    }
                    FieldType::Optional(Box::new(inner))
                }
            });
        }
        if let Some(b) = BUILTIN_TYPES.iter().find(|b| **b == word) {
            return Ok(FieldType::Builtin(b));
        }
        if GENERIC_TYPES.contains(&word.as_str()) {
            return Err(err(
                format!("`{word}` needs a type argument"),
                format!("write `{word}<T>`, e.g. `{word}<string>`"),
            ));
        }
        if is_pascal_case(&word) {
            // Resolved by TY-002, which also knows the aliases.
            return Ok(FieldType::Named(word));
        }
        let alias = ALIASES.iter().find(|(a, _)| *a == word).map(|(_, b)| *b);
        let candidates = BUILTIN_TYPES.iter().chain(self.declared.iter()).copied();
        let help = match alias.or_else(|| closest(&word, candidates)) {
            Some(fix) => format!("did you mean `{fix}`?"),
            None => "use a built-in type (`string`, `bool`, `i32`, `i64`, `u32`, `u64`, `f32`, `f64`, `uuid`, `datetime`, `json`) or a PascalCase type declared under `types`".to_owned(),
        };
        Err(err(
            format!("`{word}` is neither a built-in type nor a PascalCase type name"),
            help,
        ))
    }
}

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let c = ctx.contract;
    let declared: Vec<&str> = c.types.iter().map(|t| t.name.as_str()).collect();
    // name -> is a struct
    let kinds: BTreeMap<&str, bool> = c
        .types
        .iter()
        .map(|t| (t.name.as_str(), t.fields.is_some()))
        .collect();

    // TY-003: struct or enum.
    for (i, t) in c.types.iter().enumerate() {
        let path = format!("types[{i}]");
        match (&t.fields, &t.variants) {
            (Some(_), Some(_)) => {
                let d = ctx
                    .error("TY-003", format!("{path}.variants"), format!("the type `{}` has both `fields` and `variants`", t.name))
                    .expected("`fields` (a struct) or `variants` (an enum)")
                    .found("both")
                    .help("keep `fields` for a struct or `variants` for an enum; declare a second type for the other");
                ctx.push(d);
            }
            (None, None) => {
                let d = ctx
                    .error("TY-003", format!("{path}.name"), format!("the type `{}` has neither `fields` nor `variants`", t.name))
                    .expected("`fields` (a struct) or `variants` (an enum)")
                    .found("neither")
                    .help("add `fields: [...]` for a struct (it may be empty: `fields: []`) or `variants: [...]` for an enum");
                ctx.push(d);
            }
            (None, Some(v)) if v.is_empty() => {
                let d = ctx
                    .error("TY-003", format!("{path}.variants"), format!("the enum `{}` has no variants", t.name))
                    .expected("at least one variant")
                    .found("`variants: []`")
                    .help("add a variant, e.g. `variants: [{name: done}]`, or make it a struct with `fields`");
                ctx.push(d);
            }
            _ => {}
        }
    }

    // TY-006: a summary-only field is left out of a published result by
    // setting it to `None`, so it must be optional; custom events travel
    // whole.
    for (i, t) in c.types.iter().enumerate() {
        for (j, f) in t.fields.iter().flatten().enumerate() {
            if f.summary_only && !f.ty.trim_start().starts_with("optional<") {
                let d = ctx
                    .error(
                        "TY-006",
                        format!("types[{i}].fields[{j}].summary_only"),
                        format!(
                            "the summary-only field `{}` of `{}` is not optional",
                            f.name, t.name
                        ),
                    )
                    .expected("`optional<T>`, which the published result sets to `None`")
                    .found(format!("`{}`", f.ty))
                    .help(format!(
                        "make it `type: optional<{}>`, or drop `summary_only`",
                        f.ty.trim()
                    ));
                ctx.push(d);
            }
        }
    }
    for (i, e) in c.events.iter().enumerate() {
        for (j, f) in e.fields.iter().enumerate() {
            if f.summary_only {
                let d = ctx
                    .error(
                        "TY-006",
                        format!("events[{i}].fields[{j}].summary_only"),
                        format!("`summary_only` on the field `{}` of the event `{}`", f.name, e.name),
                    )
                    .expected("`summary_only` only on fields of types, for operation results")
                    .found("`summary_only: true` on an event's field")
                    .help("a custom event travels as it is: leave the field out of the event, or drop `summary_only`");
                ctx.push(d);
            }
        }
    }

    // TY-001 and TY-002: every field type parses and resolves.
    let mut fields: Vec<(String, &str)> = Vec::new();
    for (i, t) in c.types.iter().enumerate() {
        for (j, f) in t.fields.iter().flatten().enumerate() {
            fields.push((format!("types[{i}].fields[{j}].type"), f.ty.as_str()));
        }
    }
    for (i, e) in c.events.iter().enumerate() {
        for (j, f) in e.fields.iter().enumerate() {
            fields.push((format!("events[{i}].fields[{j}].type"), f.ty.as_str()));
        }
    }
    // struct name -> (field path, named type, by value)
    let mut contains: BTreeMap<String, Vec<(String, String, bool)>> = BTreeMap::new();
    for (path, text) in &fields {
        match parse_with(text, &declared) {
            Err(e) => {
                let d = ctx
                    .error("TY-001", path, e.message)
                    .expected("a field type: `string`, `bool`, `i32`, `i64`, `u32`, `u64`, `f32`, `f64`, `uuid`, `datetime`, `json`, `list<T>`, `map<T>`, `optional<T>` or a declared type")
                    .found(format!("`{text}`"))
                    .help(e.help);
                ctx.push(d);
            }
            Ok(ty) => {
                let mut named = Vec::new();
                ty.named(true, &mut named);
                for (name, by_value) in named {
                    if !kinds.contains_key(name.as_str()) {
                        unresolved(ctx, path, &name, &declared);
                    } else if let Some(owner) = struct_owner(path, c) {
                        contains
                            .entry(owner)
                            .or_default()
                            .push((path.clone(), name, by_value));
                    }
                }
            }
        }
    }

    // TY-002 and TY-004: operation input/output and aggregation state.
    let mut refs: Vec<(String, &str)> = Vec::new();
    for (i, op) in c.operations.iter().enumerate() {
        refs.push((format!("operations[{i}].input"), op.input.as_str()));
        refs.push((format!("operations[{i}].output"), op.output.as_str()));
    }
    if let Some(state) = c.aggregation.as_ref().and_then(|a| a.state.as_deref()) {
        refs.push(("aggregation.state".to_owned(), state));
    }
    for (path, name) in refs {
        match kinds.get(name) {
            Some(true) => {}
            Some(false) => {
                let d = ctx
                    .error("TY-004", &path, format!("`{name}` is an enum, not a struct"))
                    .expected("the name of a struct type (a type with `fields`)")
                    .found(format!("the enum `{name}`"))
                    .help(format!("declare a struct that holds the enum as a field, e.g. `fields: [{{name: value, type: {name}}}]`, and name it here"));
                ctx.push(d);
            }
            None if BUILTIN_TYPES.contains(&name) || name.contains('<') => {
                let d = ctx
                    .error("TY-004", &path, format!("`{name}` is not a struct type"))
                    .expected("the name of a struct type declared under `types`")
                    .found(format!("the field type `{name}`"))
                    .help(format!("declare a struct under `types` with a field of type `{name}`, and name the struct here"));
                ctx.push(d);
            }
            None => unresolved(ctx, &path, name, &declared),
        }
    }

    // TY-005: no struct contains itself by value.
    let mut reported = BTreeSet::new();
    for start in contains.keys() {
        if let Some(cycle) = find_cycle(start, &contains) {
            let mut members: Vec<&String> = cycle.iter().map(|(_, n)| n).collect();
            members.sort();
            if !reported.insert(
                members
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ) {
                continue;
            }
            let (path, _) = &cycle[0];
            let chain: Vec<String> = std::iter::once(start.clone())
                .chain(cycle.iter().map(|(_, n)| n.clone()))
                .collect();
            let d = ctx
                .error("TY-005", path, format!("the type `{start}` contains itself"))
                .expected("types of finite size")
                .found(format!("the chain {}", chain.join(" -> ")))
                .help("hold the recursive value in a `list<T>` or `map<T>` (which may be empty), or break the cycle");
            ctx.push(d);
        }
    }
}

/// The struct a `types[i].fields[j].type` path belongs to.
fn struct_owner(path: &str, c: &crate::contract::Contract) -> Option<String> {
    let rest = path.strip_prefix("types[")?;
    let i: usize = rest.split(']').next()?.parse().ok()?;
    c.types.get(i).map(|t| t.name.clone())
}

/// A by-value path from `start` back to `start`: (field path, type) steps.
fn find_cycle(
    start: &str,
    contains: &BTreeMap<String, Vec<(String, String, bool)>>,
) -> Option<Vec<(String, String)>> {
    let mut stack: Vec<(String, Vec<(String, String)>)> = vec![(start.to_owned(), Vec::new())];
    let mut visited = BTreeSet::new();
    while let Some((ty, trail)) = stack.pop() {
        for (path, next, by_value) in contains.get(&ty).into_iter().flatten() {
            if !by_value {
                continue;
            }
            let mut trail = trail.clone();
            trail.push((path.clone(), next.clone()));
            if next == start {
                return Some(trail);
            }
            if visited.insert(next.clone()) {
                stack.push((next.clone(), trail));
            }
        }
    }
    None
}

fn unresolved(ctx: &mut Ctx<'_>, path: &str, name: &str, declared: &[&str]) {
    let alias = ALIASES.iter().find(|(a, _)| *a == name).map(|(_, b)| *b);
    let candidates = declared.iter().chain(BUILTIN_TYPES.iter()).copied();
    let help = match closest(name, candidates).or(alias) {
        Some(fix) => format!("did you mean `{fix}`?"),
        None if declared.is_empty() => format!("declare `{name}` under `types`"),
        None => format!(
            "declare `{name}` under `types`, or use one of the declared types: {}",
            declared
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let d = ctx
        .error("TY-002", path, format!("unknown type `{name}`"))
        .expected("a built-in type or a type declared under `types`")
        .found(format!("`{name}`"))
        .help(help);
    ctx.push(d);
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(
            parse_field_type("map<list< optional<Order> >>").map(|t| t.to_string()),
            Ok("map<list<optional<Order>>>".to_owned())
        );
        assert_eq!(parse_field_type("u64"), Ok(FieldType::Builtin("u64")));
        let e = |s: &str| {
            parse_field_type(s)
                .err()
                .map(|e| e.help)
                .unwrap_or_default()
        };
        assert_eq!(e("int"), "did you mean `i64`?");
        assert_eq!(e("strng"), "did you mean `string`?");
        assert!(e("Vec<string>").starts_with("did you mean `list<...>`?"));
        assert!(e("map<string, i64>").contains("map keys are always strings"));
        assert!(e("list<string").contains("close every `<`"));
        assert!(e("optional<optional<u32>>").contains("single `optional<T>`"));
        assert!(e("list").contains("list<string>"));
        assert!(e("").contains("write a type"));
        let deep = format!("{}u32{}", "list<".repeat(100_000), ">".repeat(100_000));
        assert!(e(&deep).contains("declare a named type"));
    }

    #[test]
    fn ty_001_field_type_syntax() {
        passes(BASE, "TY-001");
        let ds = fails(
            &BASE.replace("type: list<string>", "type: list<strng>"),
            "TY-001",
        );
        assert_eq!(ds.0[0].help.as_deref(), Some("did you mean `string`?"));
        assert_eq!(ds.0[0].field_path, "types[0].fields[1].type");
    }

    #[test]
    fn ty_002_type_references() {
        passes(BASE, "TY-002");
        let ds = fails(&BASE.replace("type: Status", "type: Stauts"), "TY-002");
        assert_eq!(ds.0[0].help.as_deref(), Some("did you mean `Status`?"));
        let ds = fails(
            &BASE.replace(
                "type: uuid }\n      - { name: tags",
                "type: Uuid }\n      - { name: tags",
            ),
            "TY-002",
        );
        assert_eq!(ds.0[0].help.as_deref(), Some("did you mean `uuid`?"));
        fails(
            &BASE.replace("input: WriteInput", "input: WriteInptu"),
            "TY-002",
        );
    }

    #[test]
    fn ty_003_struct_or_enum() {
        passes(BASE, "TY-003");
        fails(
            &BASE.replace("    variants:\n      - name: done\n", "    variants: []\n"),
            "TY-003",
        );
        fails(
            &BASE.replace(
                "    variants:\n      - name: done\n",
                "    description: nothing\n",
            ),
            "TY-003",
        );
        fails(
            &BASE.replace(
                "    variants:\n      - name: done\n",
                "    variants: [{name: done}]\n    fields: []\n",
            ),
            "TY-003",
        );
    }

    #[test]
    fn ty_004_struct_references() {
        passes(BASE, "TY-004");
        fails(
            &BASE.replace("output: WriteOutput", "output: Status"),
            "TY-004",
        );
        fails(
            &BASE.replace("output: WriteOutput", "output: string"),
            "TY-004",
        );
    }

    #[test]
    fn ty_005_finite_types() {
        passes(
            &BASE.replace("type: list<string>", "type: list<WriteInput>"),
            "TY-005",
        );
        let ds = fails(
            &BASE.replace("type: list<string>", "type: optional<WriteInput>"),
            "TY-005",
        );
        assert!(
            ds.0[0]
                .found
                .as_deref()
                .is_some_and(|f| f.contains("WriteInput -> WriteInput")),
            "{ds}"
        );
        let mutual = BASE
            .replace("type: list<string>", "type: WriteOutput")
            .replace(
                "{ name: status, type: Status }",
                "{ name: input, type: WriteInput }",
            );
        fails(&mutual, "TY-005");
    }
}
