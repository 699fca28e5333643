//! The property behind every gate: whatever the gates accept renders, and
//! what renders compiles.
//!
//! proptest builds random contracts inside the format (docs/contracts.md):
//! all four node types with types, fields, enums, operations, events,
//! subscriptions, states, workflow steps and aggregation; names that are
//! Rust keywords (strict, reserved, weak), prelude and std items, the
//! runtime's and the generated code's own items, names that collide after
//! case conversion; nested generics; descriptions with arbitrary Unicode and
//! with Rust, YAML and tera syntax. Each contract is valid YAML (built as a
//! `serde_yaml::Value`) and goes through both entry points:
//!
//! - `cargo onex`'s pipeline in `Mode::Validate` (stages 1 to 5.5 of the
//!   node crate): it either stops in the parse or pre-validate stage with a
//!   diagnostic, or succeeds. A later stage failing (the build stage, a
//!   template, a generated file that does not parse) means a gate let
//!   through what the generator cannot handle;
//! - onex-build's module path (load, gates, spec, `render_module`): the
//!   same verdict, and a module that parses, formatted or not, to the same
//!   code.
//!
//! A sample of the accepted contracts, and every case of the corpus
//! (`tests/property_corpus/`, the contracts this test found, re-run every
//! time), is then compiled: their modules in one crate under
//! `#![deny(warnings)]`, and their node crates with `cargo build` in the
//! target folder that `generated_nodes.rs` uses, so the runtime is built
//! once for both.
//!
//! The suite runs 2000 cases (`PROPTEST_CASES` changes it; a failing seed is
//! replayed from `contract_properties.proptest-regressions`, and
//! `PROPTEST_RNG_SEED` fixes the seed). docs/testing.md has the long run.

#[path = "support/node_build.rs"]
mod node_build;

use std::{
    cell::Cell,
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, MutexGuard, PoisonError},
};

use node_build::build_without_warnings;
use onex_build::{
    contract::load_str,
    pipeline::{self, Mode, Request, RuntimeDependency, Stage, StageError},
    render, spec, validate,
};
use proptest::{
    prelude::*,
    sample::select,
    test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner},
};
use serde_yaml::{Mapping, Value};

// ---------------------------------------------------------------------------
// Name and text pools
// ---------------------------------------------------------------------------

/// snake_case-looking names that stress code generation: keywords of every
/// kind, prelude and std items, crates generated code names, the
/// runtime's and the generated code's own items, names that collide after
/// case conversion, and a few that the gates must refuse.
const SNAKE_POOL: &[&str] = &[
    // strict keywords
    "as",
    "break",
    "const",
    "continue",
    "crate",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "async",
    "await",
    "dyn",
    // reserved keywords
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "macro",
    "override",
    "priv",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "try",
    "gen",
    // weak keywords
    "union",
    "macro_rules",
    "raw",
    "safe",
    "default",
    "auto",
    // prelude, std and crate names
    "string",
    "option",
    "result",
    "vec",
    "some",
    "none",
    "ok",
    "err",
    "std",
    "core",
    "alloc",
    "drop",
    "clone",
    "copy",
    "send",
    "sync",
    "sized",
    "into",
    "from",
    "iter",
    "fmt",
    "debug",
    "hash",
    "eq",
    "to_owned",
    "try_into",
    "try_from",
    "borrow",
    "borrow_mut",
    "type_id",
    "into_iter",
    "as_ref",
    "deref",
    "to_string",
    "as_str",
    "all",
    "new",
    "main",
    "test",
    "cfg",
    "derive",
    "doc",
    "allow",
    "onex",
    "onex_build",
    "serde",
    "serde_json",
    "uuid",
    "chrono",
    "tokio",
    "tracing",
    "proc_macro",
    "build",
    "lib",
    "bin",
    "src",
    "target",
    // the runtime's and the generated code's own items
    "events",
    "handler",
    "lifecycle",
    "topics",
    "summary",
    "strings",
    "introspection",
    "heartbeat",
    "settings",
    "node_id",
    "publisher",
    "runtime",
    "uptime",
    "run_workflow",
    "run_steps",
    "close_window",
    "publish_metric",
    "publish_state_changed",
    "elapsed_ms",
    "log_publish",
    "validate_input",
    "initialize",
    "shutdown",
    "workflow_run",
    "operation_error",
    "event_set",
    "state_changed",
    "metric_recorded",
    "state_updated",
    "workflow_completed",
    "workflow_failed",
    "node_name",
    "node_type",
    "version",
    "domain",
    "service",
    "state",
    "decode",
    "event_type",
    "topic",
    "category",
    "correlation_id",
    "started_at",
    "input_summary",
    "metadata",
    "operation",
    "error_message",
    "error_type",
    "execution_time_ms",
    "envelope",
    "bus",
    "kafka",
    "memory",
    "execute_effect",
    "execute_orchestrator",
    "validate",
    "persist",
    "complete_workflow",
    "complete",
    "dispatch",
    "run",
    "step",
    // names that collide after case conversion
    "foo_bar",
    "foo_bar1",
    "foo_bar_1",
    "a_1",
    "a1",
    "a",
    "x",
    "started",
    "completed",
    "failed",
    "ok_2",
    "http_2",
    "http2",
];

/// PascalCase-looking type names: prelude and std types, traits that
/// derives implement, the runtime's items, generated items, and names that
/// collide after case conversion.
const PASCAL_POOL: &[&str] = &[
    "String",
    "Option",
    "Result",
    "Vec",
    "Box",
    "Default",
    "Some",
    "None",
    "Ok",
    "Err",
    "Self",
    "Copy",
    "Clone",
    "Debug",
    "PartialEq",
    "Eq",
    "Hash",
    "Send",
    "Sync",
    "Sized",
    "From",
    "Into",
    "Iterator",
    "Drop",
    "Fn",
    "ToOwned",
    "ToString",
    "Event",
    "EventSet",
    "Uuid",
    "OnexEnvelopeV1",
    "Handler",
    "OperationError",
    "Settings",
    "WorkflowRun",
    "StateChanged",
    "MetricRecorded",
    "State",
    "BTreeMap",
    "HashMap",
    "Value",
    "DateTime",
    "Utc",
    "Serialize",
    "Deserialize",
    "Publisher",
    "BusError",
    "NodeRuntime",
    "Duration",
    "Instant",
    "MessageCategory",
    "DecodeError",
    "NodeIntrospectionEvent",
    "NodeHeartbeatEvent",
    "SourceInfo",
    "Topics",
    "Summary",
    "Input",
    "Output",
    "Request",
    "Response",
    "FooBar",
    "Foobar",
    "FooBar1",
    "A1",
    "Order",
    "OrderLine",
    "Money",
    "Onex",
    "Std",
    "Core",
];

/// Pieces of text that are syntax somewhere the text may land: Rust
/// comments, strings and attributes; Markdown; TOML; YAML; tera; shells.
const TEXT_POOL: &[&str] = &[
    "*/",
    "/*",
    "\"#",
    "\"##",
    "r#\"raw\"#",
    "{}",
    "{0}",
    "{{ name }}",
    "{% if true %}x{% endif %}",
    "{# comment #}",
    "{#",
    "{%",
    "{{",
    "}}",
    "#}",
    "%}",
    "#[test]",
    "#![allow(warnings)]",
    "//! inner",
    "/// outer",
    "// line",
    "`code`",
    "```rust\nfn main() {}\n```",
    "~~~",
    "<script>alert(1)</script>",
    "[link](http://x)",
    "[`Event`]",
    "- item",
    "1. first",
    "> quote",
    "# heading",
    "key: value",
    "- a\n- b",
    "&anchor",
    "*alias",
    "!!str",
    "---",
    "...",
    "%YAML 1.2",
    "'single'",
    "\"double\"",
    "\\",
    "\\n",
    "\\u{0}",
    "trailing backslash \\",
    "$(whoami) ${HOME} `id`",
    "a = \"b\"\n[section]",
    "\"\"\"",
    "'''",
    "café ☃ 😀",
    "\u{202e}rtl override",
    "zero\u{200b}width",
    "line\u{2028}separator",
    "carriage\r\nreturn",
    "\ttab",
    "   indented code",
    "",
    " ",
    "Plain words.",
];

const BUILTIN_TYPES: &[&str] = &[
    "string", "bool", "i32", "i64", "u32", "u64", "f32", "f64", "uuid", "datetime", "json",
];

/// Type spellings the gates must refuse with a suggestion.
const WRONG_TYPES: &[&str] = &[
    "String",
    "int",
    "Vec<string>",
    "map<string, i64>",
    "list<string",
    "optional<optional<string>>",
    "set<string>",
];

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// A name where the format wants snake_case; one in sixty is not, and the
/// gates must say so.
fn snake() -> BoxedStrategy<String> {
    prop_oneof![
        59 => valid_snake(),
        1 => select(NOT_SNAKE).prop_map(str::to_owned),
    ]
    .boxed()
}

/// Names that are not snake_case.
const NOT_SNAKE: &[&str] = &[
    "caf\u{e9}",
    "x\u{301}",
    "fooBar",
    "Foo",
    "a__b",
    "b_",
    "_c",
    "1x",
    "a-b",
    "a.b",
    "",
];

fn valid_snake() -> BoxedStrategy<String> {
    prop_oneof![
        30 => select(SNAKE_POOL).prop_map(str::to_owned),
        20 => "[a-z][a-z0-9]{0,5}(_[a-z0-9]{1,3}){0,2}",
        // Long names: crate names, paths and topics derived from them.
        3 => "[a-z][a-z0-9]{8,20}(_[a-z0-9]{4,12}){1,5}",
    ]
    .boxed()
}

fn pascal() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(PASCAL_POOL).prop_map(str::to_owned),
        2 => "[A-Z][a-z0-9]{0,5}([A-Z][a-z0-9]{0,4}){0,2}",
    ]
    .boxed()
}

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(TEXT_POOL).prop_map(str::to_owned),
        2 => "\\PC{0,30}",
        1 => any::<String>(),
        2 => prop::collection::vec(select(TEXT_POOL), 1..5).prop_map(|v| v.join("\n")),
        2 => (select(TEXT_POOL), "\\PC{0,10}", select(TEXT_POOL))
            .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
    ]
    .boxed()
}

fn maybe_text() -> BoxedStrategy<Option<String>> {
    prop::option::weighted(0.6, text()).boxed()
}

/// A field type; `@N` stands for the N-th declared type.
fn field_type() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        30 => select(BUILTIN_TYPES).prop_map(str::to_owned),
        20 => (0..8usize).prop_map(|i| format!("@{i}")),
        1 => select(WRONG_TYPES).prop_map(str::to_owned),
    ];
    leaf.prop_recursive(5, 24, 1, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| format!("list<{t}>")),
            inner.clone().prop_map(|t| format!("map<{t}>")),
            // `optional<optional<T>>` is refused; WRONG_TYPES has it.
            inner.clone().prop_map(|t| if t.starts_with("optional") {
                format!("list<{t}>")
            } else {
                format!("optional<{t}>")
            }),
            inner.prop_map(|t| format!("list< {t} >")),
        ]
    })
    .boxed()
}

/// A namespace-free topic, `{service}.{event_type}.v{N}`.
fn topic() -> BoxedStrategy<String> {
    (prop::collection::vec(valid_snake(), 2..4), 1..4u32)
        .prop_map(|(segments, v)| format!("{}.v{v}", segments.join(".")))
        .boxed()
}

#[derive(Debug, Clone)]
struct FieldShape {
    name: String,
    ty: String,
    description: Option<String>,
}

fn field() -> BoxedStrategy<FieldShape> {
    (snake(), field_type(), maybe_text())
        .prop_map(|(name, ty, description)| FieldShape {
            name,
            ty,
            description,
        })
        .boxed()
}

#[derive(Debug, Clone)]
enum Body {
    Struct(Vec<FieldShape>),
    Enum(Vec<(String, Option<String>)>),
}

#[derive(Debug, Clone)]
struct TypeShape {
    name: String,
    description: Option<String>,
    body: Body,
}

fn struct_type() -> BoxedStrategy<TypeShape> {
    (pascal(), maybe_text(), prop::collection::vec(field(), 0..4))
        .prop_map(|(name, description, fields)| TypeShape {
            name,
            description,
            body: Body::Struct(fields),
        })
        .boxed()
}

fn any_type() -> BoxedStrategy<TypeShape> {
    let enum_type = (
        pascal(),
        maybe_text(),
        prop::collection::vec((snake(), maybe_text()), 1..4),
    )
        .prop_map(|(name, description, variants)| TypeShape {
            name,
            description,
            body: Body::Enum(variants),
        });
    prop_oneof![2 => struct_type(), 1 => enum_type].boxed()
}

#[derive(Debug, Clone)]
struct OperationShape {
    name: String,
    description: Option<String>,
    input: usize,
    output: usize,
    idempotent: bool,
}

#[derive(Debug, Clone)]
struct EventShape {
    name: String,
    category: Option<&'static str>,
    event_type: Option<String>,
    version: Option<&'static str>,
    description: Option<String>,
    fields: Vec<FieldShape>,
}

#[derive(Debug, Clone)]
struct SubscriptionShape {
    topic: String,
    operation: Option<usize>,
    description: Option<String>,
}

#[derive(Debug, Clone)]
struct StatesShape {
    states: Vec<String>,
    initial: usize,
    transitions: Vec<(usize, usize, Option<String>)>,
}

#[derive(Debug, Clone)]
struct StepShape {
    name: String,
    description: Option<String>,
    operation: Option<usize>,
}

#[derive(Debug, Clone)]
struct NodeShape {
    name: String,
    node_type: &'static str,
    version: String,
    domain: String,
    service: Option<String>,
    description: Option<String>,
    tags: Vec<String>,
}

#[derive(Debug, Clone)]
struct BusShape {
    enabled: Option<bool>,
    consumer_group: Option<String>,
    dead_letter_topic: Option<String>,
    heartbeat: Option<u64>,
    max_in_flight: Option<u64>,
    actions: Vec<String>,
    protocols: Option<Vec<String>>,
    health_endpoint: Option<String>,
}

#[derive(Debug, Clone)]
struct ContractShape {
    node: NodeShape,
    bus: BusShape,
    types: Vec<TypeShape>,
    operations: Vec<OperationShape>,
    events: Vec<EventShape>,
    subscriptions: Vec<SubscriptionShape>,
    states: Option<StatesShape>,
    steps: Vec<StepShape>,
    timeout: Option<u64>,
    aggregation_topics: Vec<String>,
    aggregation_state: Option<usize>,
    window: Option<u64>,
    /// Saved with a UTF-8 byte-order mark, as some Windows editors do.
    bom: bool,
}

fn node() -> BoxedStrategy<NodeShape> {
    (
        snake(),
        select(&["effect", "compute", "reducer", "orchestrator"][..]),
        prop_oneof![
            Just("1.0.0".to_owned()),
            Just("0.1.0-alpha.1+build.5".to_owned()),
            "[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}",
            "[0-9]\\.[0-9]\\.[0-9]-[a-z0-9]{1,6}(\\.[0-9]{1,2})?",
        ],
        prop_oneof![3 => snake(), 1 => text()],
        prop::option::weighted(0.3, snake()),
        maybe_text(),
        prop::collection::vec(text(), 0..3),
    )
        .prop_map(
            |(name, node_type, version, domain, service, description, tags)| NodeShape {
                name,
                node_type,
                version,
                domain,
                service,
                description,
                tags,
            },
        )
        .boxed()
}

fn bus() -> BoxedStrategy<BusShape> {
    (
        prop::option::weighted(0.5, any::<bool>()),
        prop::option::weighted(0.2, "[a-z][a-z0-9._-]{0,20}"),
        prop::option::weighted(0.2, topic()),
        (
            prop::option::weighted(0.2, 1..120u64),
            prop::option::weighted(0.2, 1..=10_000u64),
        ),
        prop::collection::vec(snake(), 0..3),
        prop::option::weighted(0.2, prop::collection::vec(text(), 1..3)),
        prop::option::weighted(0.2, prop_oneof![Just("/health".to_owned()), "/\\PC{0,12}"]),
    )
        .prop_map(
            |(
                enabled,
                consumer_group,
                dead_letter_topic,
                (heartbeat, max_in_flight),
                actions,
                protocols,
                health_endpoint,
            )| BusShape {
                enabled,
                consumer_group,
                dead_letter_topic,
                heartbeat,
                max_in_flight,
                actions,
                protocols,
                health_endpoint,
            },
        )
        .boxed()
}

fn operation() -> BoxedStrategy<OperationShape> {
    (snake(), maybe_text(), 0..8usize, 0..8usize, any::<bool>())
        .prop_map(
            |(name, description, input, output, idempotent)| OperationShape {
                name,
                description,
                input,
                output,
                idempotent,
            },
        )
        .boxed()
}

fn event() -> BoxedStrategy<EventShape> {
    (
        snake(),
        prop::option::of(select(&["event", "command", "intent"][..])),
        prop::option::weighted(
            0.3,
            prop::collection::vec(snake(), 2..4).prop_map(|s| s.join(".")),
        ),
        prop::option::weighted(0.3, select(&["1.0", "2.1", "1.0.0", "0.3.1-beta"][..])),
        maybe_text(),
        prop::collection::vec(field(), 0..3),
    )
        .prop_map(
            |(name, category, event_type, version, description, fields)| EventShape {
                name,
                category,
                event_type,
                version,
                description,
                fields,
            },
        )
        .boxed()
}

fn states() -> BoxedStrategy<StatesShape> {
    (
        prop::collection::vec(snake(), 1..4),
        0..4usize,
        prop::collection::vec(
            (0..4usize, 0..4usize, prop::option::weighted(0.5, text())),
            0..4,
        ),
    )
        .prop_map(|(states, initial, transitions)| StatesShape {
            states,
            initial,
            transitions,
        })
        .boxed()
}

fn step() -> BoxedStrategy<StepShape> {
    (
        snake(),
        maybe_text(),
        prop::option::weighted(0.7, 0..4usize),
    )
        .prop_map(|(name, description, operation)| StepShape {
            name,
            description,
            operation,
        })
        .boxed()
}

fn contract() -> BoxedStrategy<ContractShape> {
    (
        (node(), bus()),
        (struct_type(), prop::collection::vec(any_type(), 0..4)),
        prop::collection::vec(operation(), 0..4),
        prop::collection::vec(event(), 0..3),
        prop::collection::vec(
            (
                topic(),
                prop::option::weighted(0.6, 0..4usize),
                maybe_text(),
            ),
            0..3,
        ),
        (
            prop::option::weighted(0.4, states()),
            prop::bool::weighted(0.05),
        ),
        (
            prop::collection::vec(step(), 1..4),
            prop::option::weighted(0.3, 1..1000u64),
        ),
        (
            prop::collection::vec(topic(), 0..3),
            prop::option::weighted(0.5, 0..8usize),
            prop::option::weighted(0.3, 1..100_000u64),
        ),
    )
        .prop_map(
            |(
                (node, bus),
                (first, more),
                operations,
                events,
                subscriptions,
                (states, bom),
                (steps, timeout),
                (aggregation_topics, aggregation_state, window),
            )| {
                let mut types = vec![first];
                types.extend(more);
                ContractShape {
                    node,
                    bus,
                    types,
                    operations,
                    events,
                    subscriptions: subscriptions
                        .into_iter()
                        .map(|(topic, operation, description)| SubscriptionShape {
                            topic,
                            operation,
                            description,
                        })
                        .collect(),
                    states,
                    steps,
                    timeout,
                    aggregation_topics,
                    aggregation_state,
                    window,
                    bom,
                }
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------
// The contract as YAML
// ---------------------------------------------------------------------------

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in entries {
        m.insert(s(k), v);
    }
    Value::Mapping(m)
}

fn push_opt(entries: &mut Vec<(&'static str, Value)>, key: &'static str, value: &Option<String>) {
    if let Some(v) = value {
        entries.push((key, s(v)));
    }
}

/// Replaces `@N` in a field type by the N-th declared type's name.
fn resolve_type(ty: &str, names: &[&str]) -> String {
    let mut out = String::with_capacity(ty.len());
    let mut rest = ty;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let digits: String = rest[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let index: usize = digits.parse().unwrap_or(0);
        out.push_str(
            names
                .get(index % names.len().max(1))
                .copied()
                .unwrap_or("string"),
        );
        rest = &rest[at + 1 + digits.len()..];
    }
    out.push_str(rest);
    out
}

fn fields_value(fields: &[FieldShape], names: &[&str]) -> Value {
    Value::Sequence(
        fields
            .iter()
            .map(|f| {
                let mut e = vec![
                    ("name", s(&f.name)),
                    ("type", s(&resolve_type(&f.ty, names))),
                ];
                push_opt(&mut e, "description", &f.description);
                map(e)
            })
            .collect(),
    )
}

/// The contract, mostly inside the format: references point at declared
/// items, sections match the node type. Names and text are what they are.
fn to_yaml(c: &ContractShape) -> String {
    let names: Vec<&str> = c.types.iter().map(|t| t.name.as_str()).collect();
    let structs: Vec<&str> = c
        .types
        .iter()
        .filter(|t| matches!(t.body, Body::Struct(_)))
        .map(|t| t.name.as_str())
        .collect();
    let pick = |list: &[&str], i: usize| list[i % list.len()].to_owned();
    let n = &c.node;
    let mut top: Vec<(&str, Value)> = vec![("contract_version", Value::Number(1.into()))];

    let mut node = vec![
        ("name", s(&n.name)),
        ("node_type", s(n.node_type)),
        ("version", s(&n.version)),
        ("domain", s(&n.domain)),
    ];
    push_opt(&mut node, "service", &n.service);
    push_opt(&mut node, "description", &n.description);
    if !n.tags.is_empty() {
        node.push((
            "tags",
            Value::Sequence(n.tags.iter().map(|t| s(t)).collect()),
        ));
    }
    top.push(("node", map(node)));

    let b = &c.bus;
    let mut capabilities = Vec::new();
    if let Some(p) = &b.protocols {
        capabilities.push((
            "protocols",
            Value::Sequence(p.iter().map(|t| s(t)).collect()),
        ));
    }
    push_opt(&mut capabilities, "health_endpoint", &b.health_endpoint);
    if !b.actions.is_empty() {
        capabilities.push((
            "actions",
            Value::Sequence(b.actions.iter().map(|t| s(t)).collect()),
        ));
    }
    if !capabilities.is_empty() {
        top.push(("capabilities", map(capabilities)));
    }

    let types = c
        .types
        .iter()
        .map(|t| {
            let mut e = vec![("name", s(&t.name))];
            push_opt(&mut e, "description", &t.description);
            match &t.body {
                Body::Struct(fields) => e.push(("fields", fields_value(fields, &names))),
                Body::Enum(variants) => e.push((
                    "variants",
                    Value::Sequence(
                        variants
                            .iter()
                            .map(|(name, description)| {
                                let mut v = vec![("name", s(name))];
                                push_opt(&mut v, "description", description);
                                map(v)
                            })
                            .collect(),
                    ),
                )),
            }
            map(e)
        })
        .collect();
    top.push(("types", Value::Sequence(types)));

    let operations: Vec<&str> = c.operations.iter().map(|o| o.name.as_str()).collect();
    if !c.operations.is_empty() {
        let ops = c
            .operations
            .iter()
            .map(|o| {
                let mut e = vec![
                    ("name", s(&o.name)),
                    ("input", s(&pick(&structs, o.input))),
                    ("output", s(&pick(&structs, o.output))),
                ];
                push_opt(&mut e, "description", &o.description);
                if o.idempotent {
                    e.push(("idempotent", Value::Bool(true)));
                }
                map(e)
            })
            .collect();
        top.push(("operations", Value::Sequence(ops)));
    }

    if !c.events.is_empty() {
        let events = c
            .events
            .iter()
            .map(|ev| {
                let mut e = vec![("name", s(&ev.name))];
                if let Some(cat) = ev.category {
                    e.push(("category", s(cat)));
                }
                push_opt(&mut e, "event_type", &ev.event_type);
                if let Some(v) = ev.version {
                    e.push(("version", s(v)));
                }
                push_opt(&mut e, "description", &ev.description);
                if !ev.fields.is_empty() {
                    e.push(("fields", fields_value(&ev.fields, &names)));
                }
                map(e)
            })
            .collect();
        top.push(("events", Value::Sequence(events)));
    }

    if !c.subscriptions.is_empty() {
        let subs = c
            .subscriptions
            .iter()
            .map(|sub| {
                let mut e = vec![("topic", s(&sub.topic))];
                if let (Some(i), false) = (sub.operation, operations.is_empty()) {
                    e.push(("operation", s(&pick(&operations, i))));
                }
                push_opt(&mut e, "description", &sub.description);
                map(e)
            })
            .collect();
        top.push(("subscriptions", Value::Sequence(subs)));
    }

    if let Some(st) = &c.states {
        let names: Vec<&str> = st.states.iter().map(String::as_str).collect();
        let transitions = st
            .transitions
            .iter()
            .map(|(from, to, on)| {
                let mut e = vec![
                    ("from", s(&pick(&names, *from))),
                    ("to", s(&pick(&names, *to))),
                ];
                push_opt(&mut e, "on", on);
                map(e)
            })
            .collect();
        top.push((
            "states",
            map(vec![
                ("initial", s(&pick(&names, st.initial))),
                (
                    "states",
                    Value::Sequence(names.iter().map(|n| s(n)).collect()),
                ),
                ("transitions", Value::Sequence(transitions)),
            ]),
        ));
    }

    if n.node_type == "orchestrator" {
        let steps = c
            .steps
            .iter()
            .map(|st| {
                let mut e = vec![("name", s(&st.name))];
                push_opt(&mut e, "description", &st.description);
                if let (Some(i), false) = (st.operation, operations.is_empty()) {
                    e.push(("operation", s(&pick(&operations, i))));
                }
                map(e)
            })
            .collect();
        let mut w = vec![("steps", Value::Sequence(steps))];
        if let Some(t) = c.timeout {
            w.push(("timeout_seconds", Value::Number(t.into())));
        }
        top.push(("workflow", map(w)));
    }

    if n.node_type == "reducer" {
        let mut topics = c.aggregation_topics.clone();
        if topics.is_empty() && c.subscriptions.is_empty() {
            topics.push("orders.effect.placed.v1".to_owned());
        }
        let mut a = vec![(
            "topics",
            Value::Sequence(topics.iter().map(|t| s(t)).collect()),
        )];
        if let Some(i) = c.aggregation_state {
            a.push(("state", s(&pick(&structs, i))));
        }
        if let Some(w) = c.window {
            a.push(("window_ms", Value::Number(w.into())));
        }
        top.push(("aggregation", map(a)));
    }

    let mut bus = Vec::new();
    if let (Some(enabled), "compute" | "reducer") = (b.enabled, n.node_type) {
        bus.push(("enabled", Value::Bool(enabled)));
    }
    push_opt(&mut bus, "consumer_group", &b.consumer_group);
    push_opt(&mut bus, "dead_letter_topic", &b.dead_letter_topic);
    if let Some(h) = b.heartbeat {
        bus.push(("heartbeat_interval_seconds", Value::Number(h.into())));
    }
    if let Some(n) = b.max_in_flight {
        bus.push(("max_in_flight", Value::Number(n.into())));
    }
    if !bus.is_empty() {
        top.push(("event_bus", map(bus)));
    }

    let value = map(top);
    let yaml =
        serde_yaml::to_string(&value).unwrap_or_else(|e| panic!("a Value always serializes: {e}"));
    if c.bom {
        format!("\u{feff}{yaml}")
    } else {
        yaml
    }
}

// ---------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------

/// What a contract came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// A gate refused it with a diagnostic; the diagnostics' codes.
    Refused(Vec<&'static str>),
    /// Stages 1 to 5.5 succeeded on both paths.
    Accepted,
}

/// Where each case's contract is written.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn contract_path(&self) -> PathBuf {
        self.dir.path().join("contract.yaml")
    }
}

/// Checks one contract on both paths; `Err` says what broke.
fn check(yaml: &str, scratch: &Scratch, full: bool) -> Result<Verdict, String> {
    let path = scratch.contract_path();
    std::fs::write(&path, yaml).map_err(|e| format!("cannot write the contract: {e}"))?;

    // cargo onex: stages 1 to 5.5 of the node crate.
    let request = Request {
        contracts: vec![path.clone()],
        out_dir: scratch.dir.path().join("out"),
        mode: Mode::Validate,
        runtime: RuntimeDependency::Path {
            onex: "../../onex".to_owned(),
            onex_build: "../../onex-build".to_owned(),
        },
        compile_check: false,
        target_dir: None,
        contract_path: Vec::new(),
    };
    let pipeline_verdict = match pipeline::run(&request) {
        Ok(_) => Verdict::Accepted,
        Err(e) => match (e.stage, &*e.error) {
            (Stage::Parse | Stage::PreValidate, StageError::Contract(d)) if !d.is_empty() => {
                Verdict::Refused(d.iter().map(|d| d.code).collect())
            }
            _ => {
                return Err(format!(
                    "the gates accepted the contract, then the pipeline failed:\n{e}"
                ));
            }
        },
    };

    // onex-build: load, gates, spec, module.
    let module_verdict = match load_str(Path::new("contract.yaml"), yaml.to_owned()) {
        Err(d) => Verdict::Refused(d.iter().map(|d| d.code).collect()),
        Ok(loaded) => {
            match validate::validate(&loaded) {
                Err(d) if !d.is_empty() => Verdict::Refused(d.iter().map(|d| d.code).collect()),
                Err(_) => return Err("validate failed with no diagnostic".to_owned()),
                Ok(()) => {
                    let spec = spec::build(&loaded, &spec::SpecOptions::default()).map_err(|d| {
                    format!("the gates accepted the contract, then the build stage refused it:\n{d}")
                })?;
                    // What `Builder::format(false)` writes: tera's text, which
                    // must parse. syn alone is a third of the formatted path.
                    let unformatted = render::render_module_unformatted(&spec)
                        .map_err(|e| format!("the module does not render:\n{e}"))?;
                    if let Err(e) = syn::parse_file(&unformatted) {
                        let at = e.span().start();
                        let line = unformatted
                            .lines()
                            .nth(at.line.saturating_sub(1))
                            .unwrap_or("");
                        return Err(format!(
                            "the module does not parse at {}:{}: {e}\n{line}",
                            at.line, at.column
                        ));
                    }
                    if full {
                        node_text_files(&path)?;
                        // `render_module`: the same code, parsed and printed.
                        let formatted = render::render_module(&spec)
                            .map_err(|e| format!("the module does not render:\n{e}"))?;
                        let header = render::generated_header(&spec.contract_file);
                        let body = unformatted.strip_prefix(&header).unwrap_or(&unformatted);
                        let printed = render::format_rust(
                            body,
                            render::MODULE_TEMPLATE,
                            Path::new("contract.yaml"),
                        )
                        .map_err(|e| format!("the unformatted module does not print:\n{e}"))?;
                        if formatted != format!("{header}\n{printed}") {
                            return Err(
                                "the unformatted module is not the formatted one's code".to_owned()
                            );
                        }
                    }
                    Verdict::Accepted
                }
            }
        }
    };
    // The node crate's gates (OUT-*) come on top of the module's.
    let same = match (&pipeline_verdict, &module_verdict) {
        (Verdict::Accepted, Verdict::Accepted) => true,
        (Verdict::Refused(_), Verdict::Refused(_)) => true,
        (Verdict::Refused(codes), Verdict::Accepted) => codes.iter().all(|c| c.starts_with("OUT-")),
        (Verdict::Accepted, Verdict::Refused(_)) => false,
    };
    if !same {
        return Err(format!(
            "cargo onex says {pipeline_verdict:?}, onex-build says {module_verdict:?}"
        ));
    }
    Ok(pipeline_verdict)
}

/// The node crate's files that are not Rust, rendered as the pipeline
/// renders them, must be what their format reads back: `Cargo.toml` is TOML
/// with the contract's version, `compose.yaml` is YAML, `.env.template`
/// holds only comments and `KEY=value` lines, and `contract.yaml` loads as
/// the same contract.
fn node_text_files(path: &Path) -> Result<(), String> {
    use onex_build::pipeline::{
        build_contract::build_contract,
        event_bus::event_bus,
        generate::{TemplateContext, generate},
        parse::parse,
        templates::NodeTemplates,
    };
    let loaded = parse(path).map_err(|e| e.to_string())?;
    let model = build_contract(&loaded).map_err(|e| e.to_string())?;
    let runtime = RuntimeDependency::Path {
        onex: "../../onex".to_owned(),
        onex_build: "../../onex-build".to_owned(),
    };
    let context = TemplateContext::new(&model, &runtime);
    let tera = context.to_tera().map_err(|e| e.to_string())?;
    let templates = NodeTemplates::load().map_err(|e| e.to_string())?;
    let mut files =
        generate(&templates, &tera, path, &model.consumed).map_err(|e| e.to_string())?;
    files.extend(event_bus(&templates, &context, &tera, path).map_err(|e| e.to_string())?);
    for file in &files {
        let text = &file.text;
        let bad = |why: String| Err(format!("the node crate's `{}` {why}:\n{text}", file.path));
        match file.path.as_str() {
            "Cargo.toml" => match toml::from_str::<toml::Table>(text) {
                Err(e) => return bad(format!("is not TOML: {e}")),
                Ok(table) => {
                    let version = table
                        .get("package")
                        .and_then(|p| p.get("version"))
                        .and_then(|v| v.as_str());
                    if version != Some(loaded.contract.node.version.as_str()) {
                        return bad(format!("has the version {version:?}"));
                    }
                }
            },
            "compose.yaml" => {
                if let Err(e) = serde_yaml::from_str::<Value>(text) {
                    return bad(format!("is not YAML: {e}"));
                }
            }
            ".env.template" => {
                let is_key = |key: &str| {
                    !key.is_empty()
                        && key
                            .bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                };
                let line = text.lines().find(|line| {
                    let line = line.trim();
                    !(line.is_empty()
                        || line.starts_with('#')
                        || line.split_once('=').is_some_and(|(key, _)| is_key(key)))
                });
                if let Some(line) = line {
                    return bad(format!(
                        "has a line that is neither a comment nor a variable: {line:?}"
                    ));
                }
            }
            "contract.yaml" => match load_str(Path::new("contract.yaml"), text.clone()) {
                Err(e) => return bad(format!("does not load: {e}")),
                Ok(copy) if copy.contract != loaded.contract => {
                    return bad("is another contract".to_owned());
                }
                Ok(_) => {}
            },
            _ => {}
        }
    }
    Ok(())
}

/// How interesting an accepted contract is to compile: the more generated
/// items and hostile names, the better.
fn richness(shape: &ContractShape) -> usize {
    let pooled =
        |name: &str| usize::from(SNAKE_POOL.contains(&name) || PASCAL_POOL.contains(&name));
    let fields: usize = shape
        .types
        .iter()
        .map(|t| match &t.body {
            Body::Struct(f) => f.iter().map(|f| 1 + pooled(&f.name)).sum::<usize>(),
            Body::Enum(v) => v.iter().map(|(n, _)| 1 + pooled(n)).sum(),
        })
        .sum();
    let names = shape
        .types
        .iter()
        .map(|t| 2 * pooled(&t.name))
        .sum::<usize>()
        + shape
            .operations
            .iter()
            .map(|o| 3 + 2 * pooled(&o.name))
            .sum::<usize>()
        + shape
            .events
            .iter()
            .map(|e| 2 + 2 * pooled(&e.name))
            .sum::<usize>()
        + 3 * pooled(&shape.node.name);
    fields + names + shape.states.as_ref().map_or(0, |s| s.states.len())
}

/// The lock, also after another runner panicked holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// How many accepted random contracts are compiled per run (node crate and
/// module), besides the corpus: `ONEX_PROPERTY_SAMPLE`, default 3.
fn sample_size() -> usize {
    std::env::var("ONEX_PROPERTY_SAMPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The corpus: contracts this test found, each checked every run.
fn corpus() -> Vec<(String, String)> {
    let dir = workspace().join("tests/property_corpus");
    let mut found: Vec<(String, String)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .map(|p| {
                    let name = p
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let text = std::fs::read_to_string(&p)
                        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    (name, text)
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[test]
fn the_corpus_holds_to_the_property() {
    let scratch = Scratch::new();
    let corpus = corpus();
    assert!(
        !corpus.is_empty(),
        "tests/property_corpus/ holds the found cases"
    );
    for (name, yaml) in &corpus {
        if let Err(message) = check(yaml, &scratch, true) {
            panic!("corpus case `{name}`: {message}\n--- contract ---\n{yaml}");
        }
    }
}

#[test]
fn whatever_the_gates_accept_renders_and_compiles() {
    let config = Config {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/contract_properties.proptest-regressions"
        )))),
        // Shrinking replays the pipeline; this many steps find a small
        // contract without taking many minutes.
        max_shrink_iters: 2000,
        ..Config::default()
    };
    // The cases are independent: one runner per core (CI has two) takes a
    // share, each with a generator forked from the first runner's, so a
    // fixed PROPTEST_RNG_SEED still replays the same run.
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 4);
    let share = config.cases.div_ceil(threads as u32);
    let mut first = TestRunner::new(Config {
        cases: share,
        ..config.clone()
    });
    let mut runners: Vec<TestRunner> = (1..threads)
        .map(|_| {
            TestRunner::new_with_rng(
                Config {
                    cases: share,
                    ..config.clone()
                },
                first.new_rng(),
            )
        })
        .collect();
    runners.insert(0, first);
    let accepted: Mutex<Vec<(usize, String, String)>> = Mutex::new(Vec::new());
    let refused: Mutex<BTreeMap<&'static str, usize>> = Mutex::new(BTreeMap::new());
    let started = std::time::Instant::now();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = runners
            .into_iter()
            .map(|mut runner| {
                let (accepted, refused) = (&accepted, &refused);
                scope.spawn(move || {
                    let scratch = Scratch::new();
                    let counter = Cell::new(0usize);
                    let result = runner.run(&contract(), |shape| {
                        let yaml = to_yaml(&shape);
                        // Every eighth case also takes the formatted module
                        // path (syn and prettyplease, slow unoptimized).
                        let case = counter.get();
                        counter.set(case + 1);
                        match check(&yaml, &scratch, case.is_multiple_of(8)) {
                            Ok(Verdict::Accepted) => {
                                let entry =
                                    (richness(&shape), shape.node.node_type.to_owned(), yaml);
                                lock(accepted).push(entry);
                                Ok(())
                            }
                            Ok(Verdict::Refused(codes)) => {
                                let mut refused = lock(refused);
                                for code in codes {
                                    *refused.entry(code).or_default() += 1;
                                }
                                *refused.entry("(contracts)").or_default() += 1;
                                Ok(())
                            }
                            Err(message) => Err(TestCaseError::fail(format!(
                                "{message}\n--- contract ---\n{yaml}"
                            ))),
                        }
                    });
                    result.err().map(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| {
                h.join()
                    .unwrap_or_else(|_| Some("a runner panicked".to_owned()))
            })
            .collect()
    });
    if let Some(failure) = failures.first() {
        panic!("{failure}");
    }
    let accepted = accepted
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let by_code = refused.into_inner().unwrap_or_else(PoisonError::into_inner);
    let refused = by_code.get("(contracts)").copied().unwrap_or(0);
    eprintln!(
        "{} accepted, {refused} refused in {:.1?} on {threads} threads; diagnostics by code: {by_code:?}",
        accepted.len(),
        started.elapsed()
    );
    let scratch = Scratch::new();
    // The generator stays inside the format often enough that rendering,
    // not only the gates, is exercised.
    assert!(
        accepted.len() * 5 >= accepted.len() + refused,
        "only {} of {} contracts were accepted: the generator drifted out of the format",
        accepted.len(),
        accepted.len() + refused
    );

    // The richest accepted contracts, taking the node types in turn, then
    // the corpus.
    let mut by_type: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (score, node_type, yaml) in accepted {
        by_type.entry(node_type).or_default().push((score, yaml));
    }
    for list in by_type.values_mut() {
        // Ascending: `pop` takes the richest.
        list.sort_by_key(|entry| entry.0);
    }
    let mut sample: Vec<(usize, String, String)> = Vec::new();
    while sample.len() < sample_size() && by_type.values().any(|l| !l.is_empty()) {
        for (node_type, list) in &mut by_type {
            if sample.len() < sample_size()
                && let Some((score, yaml)) = list.pop()
            {
                sample.push((score, node_type.clone(), yaml));
            }
        }
    }
    let mut to_compile: Vec<(String, String)> = sample
        .into_iter()
        .enumerate()
        .map(|(i, (_, _, yaml))| (format!("sample_{i}"), yaml))
        .collect();
    for (name, yaml) in corpus() {
        if check(&yaml, &scratch, false) == Ok(Verdict::Accepted) {
            to_compile.push((name, yaml));
        }
    }
    let started = std::time::Instant::now();
    compile_modules(&to_compile);
    eprintln!("modules compiled in {:.1?}", started.elapsed());
    let started = std::time::Instant::now();
    compile_node_crates(&to_compile);
    eprintln!("node crates compiled in {:.1?}", started.elapsed());
}

// ---------------------------------------------------------------------------
// Compiling the sample
// ---------------------------------------------------------------------------

fn cargo_build(manifest: &Path, target_dir: &Path) {
    let output = Command::new(env!("CARGO"))
        .args(["build", "--all-targets", "--quiet"])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "{} does not build:\n{}",
        manifest.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One crate with the module of every contract, as `build.rs` users
/// include them, under `#![deny(warnings, missing_docs)]`.
fn compile_modules(contracts: &[(String, String)]) {
    // A folder of this run's own: another run of this test may be building
    // at the same time.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let scratch = tempfile::Builder::new()
        .prefix("property-modules-")
        .tempdir_in(&tmp)
        .expect("module crate folder");
    let base = scratch.path();
    let src = base.join("src");
    std::fs::create_dir_all(&src).expect("module crate folder");
    let onex = workspace().join("onex");
    let manifest = format!(
        "[package]\nname = \"onex-property-modules\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\nonex = {{ path = {:?}, default-features = false }}\n\n[workspace]\n",
        onex.display().to_string()
    );
    write_if_changed(&base.join("Cargo.toml"), &manifest);
    let mut lib = String::from(
        "//! The modules of contracts the property test generated.\n#![deny(warnings, missing_docs)]\n",
    );
    let mut all = String::new();
    for (name, yaml) in contracts {
        let loaded = load_str(Path::new("contract.yaml"), yaml.clone()).expect("accepted");
        let spec = spec::build(&loaded, &spec::SpecOptions::default()).expect("accepted");
        let module = render::render_module(&spec).expect("renders");
        let file = format!("{name}.rs");
        write_if_changed(&src.join(&file), &module);
        lib.push_str(&format!(
            "/// The module of `{name}`.\npub mod {name} {{ include!({file:?}); }}\n"
        ));
        all.push_str(&format!("// {name}\n{yaml}\n"));
    }
    write_if_changed(&src.join("lib.rs"), &lib);
    write_if_changed(&base.join("contracts.txt"), &all);
    // The node crates' target folder: the runtime's dependencies are built
    // once for both.
    let target_dir = tmp.join("node-target");
    cargo_build(&base.join("Cargo.toml"), &target_dir);
}

/// The node crate of every contract, built like `generated_nodes.rs` builds
/// them, in the same target folder.
fn compile_node_crates(contracts: &[(String, String)]) {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let target_dir = base.join("node-target");
    // A folder of this run's own: another run of this test may be building
    // at the same time.
    let scratch = tempfile::Builder::new()
        .prefix("property-nodes-")
        .tempdir_in(&base)
        .expect("node crates folder");
    let out_dir = scratch.path().join("nodes");
    let contracts_dir = scratch.path().join("contracts");
    std::fs::create_dir_all(&contracts_dir).expect("contracts folder");
    let root = workspace();
    let mut failures = Vec::new();
    for (name, yaml) in contracts {
        // Each in its own folder: two contracts may name the same node.
        let out = out_dir.join(name);
        let path = contracts_dir.join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).expect("write contract");
        let runtime =
            RuntimeDependency::from_crate_dirs(&out, &root.join("onex"), &root.join("onex-build"));
        let report = pipeline::run(&Request {
            contracts: vec![path],
            out_dir: out,
            mode: Mode::Write,
            runtime,
            compile_check: false,
            target_dir: None,
            contract_path: Vec::new(),
        })
        .unwrap_or_else(|e| panic!("{name}: {e}\n--- contract ---\n{yaml}"));
        for node in &report.contracts {
            if let Err(why) = build_without_warnings(&node.node_dir, &target_dir) {
                failures.push(format!(
                    "the node crate of `{name}` {why}\n--- contract ---\n{yaml}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn write_if_changed(path: &Path, contents: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(contents) {
        std::fs::write(path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
