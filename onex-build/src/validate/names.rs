//! QC-001 (identifier case), QC-002 (reserved words), QC-003 (unique
//! names) and QC-004 (derived events).

use std::collections::{BTreeMap, HashMap};

use super::Ctx;
use crate::contract::Contract;
use crate::naming::rust_ident;
use crate::naming::{IdentError, is_keyword, is_pascal_case, is_snake_case, is_weak_keyword};
use crate::naming::{to_pascal_case, to_snake_case};
use crate::spec::derived::{DerivedEvent, SHARED_EVENTS, Source, derived_events};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Node,
    Service,
    Operation,
    Event,
    Field,
    Variant,
    State,
    Step,
    Action,
    Type,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Node => "node name",
            Kind::Service => "service name",
            Kind::Operation => "operation name",
            Kind::Event => "event name",
            Kind::Field => "field name",
            Kind::Variant => "variant name",
            Kind::State => "state name",
            Kind::Step => "step name",
            Kind::Action => "action name",
            Kind::Type => "type name",
        }
    }
}

struct Name<'a> {
    path: String,
    value: &'a str,
    kind: Kind,
}

fn push<'a>(names: &mut Vec<Name<'a>>, path: String, value: &'a str, kind: Kind) {
    names.push(Name { path, value, kind });
}

fn all_names(c: &Contract) -> Vec<Name<'_>> {
    let mut names: Vec<Name<'_>> = Vec::new();
    push(
        &mut names,
        "node.name".into(),
        c.node.name.as_str(),
        Kind::Node,
    );
    if let Some(service) = &c.node.service {
        push(
            &mut names,
            "node.service".into(),
            service.as_str(),
            Kind::Service,
        );
    }
    for (i, a) in c.capabilities.actions.iter().enumerate() {
        push(
            &mut names,
            format!("capabilities.actions[{i}]"),
            a.as_str(),
            Kind::Action,
        );
    }
    for (i, t) in c.types.iter().enumerate() {
        push(
            &mut names,
            format!("types[{i}].name"),
            t.name.as_str(),
            Kind::Type,
        );
        for (j, f) in t.fields.iter().flatten().enumerate() {
            push(
                &mut names,
                format!("types[{i}].fields[{j}].name"),
                f.name.as_str(),
                Kind::Field,
            );
        }
        for (j, v) in t.variants.iter().flatten().enumerate() {
            push(
                &mut names,
                format!("types[{i}].variants[{j}].name"),
                v.name.as_str(),
                Kind::Variant,
            );
        }
    }
    for (i, op) in c.operations.iter().enumerate() {
        push(
            &mut names,
            format!("operations[{i}].name"),
            op.name.as_str(),
            Kind::Operation,
        );
    }
    for (i, e) in c.events.iter().enumerate() {
        push(
            &mut names,
            format!("events[{i}].name"),
            e.name.as_str(),
            Kind::Event,
        );
        for (j, f) in e.fields.iter().enumerate() {
            push(
                &mut names,
                format!("events[{i}].fields[{j}].name"),
                f.name.as_str(),
                Kind::Field,
            );
        }
    }
    if let Some(sm) = &c.states {
        for (i, s) in sm.states.iter().enumerate() {
            push(
                &mut names,
                format!("states.states[{i}]"),
                s.as_str(),
                Kind::State,
            );
        }
    }
    if let Some(w) = &c.workflow {
        for (i, s) in w.steps.iter().enumerate() {
            push(
                &mut names,
                format!("workflow.steps[{i}].name"),
                s.name.as_str(),
                Kind::Step,
            );
        }
    }
    names
}

/// A snake_case spelling of `s`, if one can be made.
pub(crate) fn snake_suggestion(s: &str) -> Option<String> {
    let mut out = String::new();
    for c in to_snake_case(s).chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '_'
        };
        if !(c == '_' && (out.is_empty() || out.ends_with('_'))) {
            out.push(c);
        }
    }
    let out = out.trim_end_matches('_').to_owned();
    (is_snake_case(&out) && out != s).then_some(out)
}

fn pascal_suggestion(s: &str) -> Option<String> {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let out = to_pascal_case(&cleaned);
    (is_pascal_case(&out) && out != s).then_some(out)
}

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let c = ctx.contract;
    let names = all_names(c);
    for n in &names {
        case_and_keywords(ctx, n);
    }
    uniqueness(ctx, c);
    derived_collisions(ctx, c);
}

fn case_and_keywords(ctx: &mut Ctx<'_>, n: &Name<'_>) {
    let what = n.kind.what();
    let v = n.value;
    let not_rawable = matches!(rust_ident(v), Err(IdentError::NotRawable(_)));
    let keyword = is_keyword(v) || is_weak_keyword(v);
    if not_rawable || (keyword && matches!(n.kind, Kind::Type | Kind::Node)) {
        let why = match n.kind {
            Kind::Type => "a Rust keyword cannot name a type".to_owned(),
            Kind::Node => {
                "the node name becomes a Rust module name, which cannot be a keyword".to_owned()
            }
            _ => format!(
                "`{v}` is a Rust keyword that cannot be written as a raw identifier (`r#{v}`)"
            ),
        };
        let fixed = match n.kind {
            Kind::Type => format!("{v}Type"),
            Kind::Node => format!("{v}_node"),
            _ => format!("{v}_ref"),
        };
        let d = ctx
            .error(
                "QC-002",
                &n.path,
                format!("the {what} `{v}` is a reserved word"),
            )
            .expected(format!(
                "{} {what} that is not a reserved Rust keyword",
                article(what)
            ))
            .found(format!("`{v}`: {why}"))
            .help(format!("rename it, e.g. to `{fixed}`"));
        ctx.push(d);
        return;
    }
    let (ok, expected, suggestion) = if n.kind == Kind::Type {
        (
            is_pascal_case(v),
            "PascalCase: an upper-case letter, then letters and digits (e.g. `OrderLine`)",
            pascal_suggestion(v),
        )
    } else {
        (
            is_snake_case(v),
            "snake_case: a lower-case letter, then lower-case letters, digits and single underscores (e.g. `order_line`)",
            snake_suggestion(v),
        )
    };
    if !ok {
        let help = match suggestion {
            Some(s) => format!("rename it to `{s}`"),
            None => format!(
                "rename it; the {what} must be {}",
                expected.split(':').next().unwrap_or(expected)
            ),
        };
        let d = ctx
            .error(
                "QC-001",
                &n.path,
                format!(
                    "the {what} `{v}` is not {}",
                    expected.split(':').next().unwrap_or(expected)
                ),
            )
            .expected(expected)
            .found(format!("`{v}`"))
            .help(help);
        ctx.push(d);
    }
}

/// `a` or `an`, for the names of [`Kind::what`].
fn article(what: &str) -> &'static str {
    if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Reports the second of two items with the same key.
fn unique<'a>(
    ctx: &mut Ctx<'_>,
    what: &str,
    items: impl IntoIterator<Item = (String, &'a str)>,
    rust_name: fn(&str) -> String,
) {
    let mut seen: HashMap<String, (String, &'a str)> = HashMap::new();
    for (path, name) in items {
        let key = rust_name(name);
        if let Some((first_path, first)) = seen.get(&key) {
            let found = if *first == name {
                format!(
                    "`{name}` again; first declared at {}",
                    ctx.where_is(first_path)
                )
            } else {
                format!(
                    "`{name}` and `{first}` (at {}) both become `{key}` in Rust",
                    ctx.where_is(first_path)
                )
            };
            let d = ctx
                .error("QC-003", &path, format!("duplicate {what} `{name}`"))
                .expected(format!("each {what} once"))
                .found(found)
                .help(format!("rename or remove one of the two {what}s"));
            ctx.push(d);
        } else {
            seen.insert(key, (path, name));
        }
    }
}

fn same(s: &str) -> String {
    s.to_owned()
}

fn uniqueness(ctx: &mut Ctx<'_>, c: &Contract) {
    unique(
        ctx,
        "type",
        c.types
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("types[{i}].name"), t.name.as_str())),
        same,
    );
    unique(
        ctx,
        "operation",
        c.operations
            .iter()
            .enumerate()
            .map(|(i, o)| (format!("operations[{i}].name"), o.name.as_str())),
        to_pascal_case,
    );
    unique(
        ctx,
        "event",
        c.events
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("events[{i}].name"), e.name.as_str())),
        to_pascal_case,
    );
    for (i, t) in c.types.iter().enumerate() {
        if let Some(fields) = &t.fields {
            unique(
                ctx,
                "field",
                fields
                    .iter()
                    .enumerate()
                    .map(|(j, f)| (format!("types[{i}].fields[{j}].name"), f.name.as_str())),
                same,
            );
        }
        if let Some(variants) = &t.variants {
            unique(
                ctx,
                "variant",
                variants
                    .iter()
                    .enumerate()
                    .map(|(j, v)| (format!("types[{i}].variants[{j}].name"), v.name.as_str())),
                to_pascal_case,
            );
        }
    }
    for (i, e) in c.events.iter().enumerate() {
        unique(
            ctx,
            "field",
            e.fields
                .iter()
                .enumerate()
                .map(|(j, f)| (format!("events[{i}].fields[{j}].name"), f.name.as_str())),
            same,
        );
    }
    if let Some(sm) = &c.states {
        unique(
            ctx,
            "state",
            sm.states
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("states.states[{i}]"), s.as_str())),
            to_pascal_case,
        );
    }
    if let Some(w) = &c.workflow {
        // A step names the structs of its events (`{Step}StepStarted`).
        unique(
            ctx,
            "step",
            w.steps
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("workflow.steps[{i}].name"), s.name.as_str())),
            to_pascal_case,
        );
    }
    unique(
        ctx,
        "action",
        c.capabilities
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("capabilities.actions[{i}]"), a.as_str())),
        same,
    );

    // A declared type may not take the name of a generated item.
    let generated = generated_item_names(c);
    for (i, t) in c.types.iter().enumerate() {
        if let Some(origin) = generated.get(&t.name) {
            let d = ctx
                .error(
                    "QC-003",
                    format!("types[{i}].name"),
                    format!("the type name `{}` is taken by generated code", t.name),
                )
                .expected("a type name that no generated item uses")
                .found(format!("`{}`, the name of {origin}", t.name))
                .help(format!("rename the type, e.g. to `{}Data`", t.name));
            ctx.push(d);
        }
    }

    // A custom event is a struct and a variant of the event enum: it may not
    // take the name of the enum, of the state machine's enum, or of the
    // shared events' variants.
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    taken.insert(
        format!("{}Event", to_pascal_case(&c.node.name)),
        "the generated enum of the node's events".to_owned(),
    );
    if c.states.is_some() {
        taken.insert(
            "State".to_owned(),
            "the generated state machine enum".to_owned(),
        );
    }
    for shared in &SHARED_EVENTS {
        taken.insert(
            shared.variant.to_owned(),
            format!("the event enum's variant of {}", shared.description),
        );
    }
    for (i, e) in c.events.iter().enumerate() {
        let rust = to_pascal_case(&e.name);
        if let Some(origin) = taken.get(&rust) {
            let d = ctx
                .error(
                    "QC-003",
                    format!("events[{i}].name"),
                    format!("the event name `{}` is taken by generated code", e.name),
                )
                .expected("an event name that no generated item uses")
                .found(format!(
                    "`{}` becomes `{rust}`, the name of {origin}",
                    e.name
                ))
                .help(format!("rename the event, e.g. to `{}_notice`", e.name));
            ctx.push(d);
        }
    }
}

/// Rust names of generated items a declared type must not take.
fn generated_item_names(c: &Contract) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for derived in derived_events(c) {
        out.insert(
            derived.struct_name(),
            format!("the struct of {}", derived.origin()),
        );
    }
    for e in &c.events {
        out.insert(
            to_pascal_case(&e.name),
            format!("the struct of event `{}`", e.name),
        );
    }
    if c.states.is_some() {
        out.insert(
            "State".to_owned(),
            "the generated state machine enum".to_owned(),
        );
    }
    out.insert(
        format!("{}Event", to_pascal_case(&c.node.name)),
        "the generated enum of the node's events".to_owned(),
    );
    out
}

fn derived_collisions(ctx: &mut Ctx<'_>, c: &Contract) {
    let derived = derived_events(c);
    // Keyed by the struct name: `write_1` and `write1` derive the same
    // `Write1Started`.
    let mut by_name: HashMap<String, &DerivedEvent> = HashMap::new();
    let mut reported: Vec<String> = Vec::new();
    for event in &derived {
        let struct_name = event.struct_name();
        if let Some(first) = by_name.get(&struct_name) {
            // An operation and a step, e.g. operation `fetch_step` and step
            // `fetch`: both derive `fetch_step_started`. Two operations or
            // two steps of one Rust name are QC-003's to report.
            // Point at the operation or step, whichever of the two has one.
            let path = event
                .source_path()
                .or_else(|| first.source_path())
                .map(|p| format!("{p}.name"))
                .unwrap_or_else(|| {
                    if c.workflow.is_some() {
                        "workflow".into()
                    } else {
                        "operations".into()
                    }
                });
            let is_operation = |e: &DerivedEvent| matches!(e.source, Source::Operation(_));
            let same_kind = is_operation(first) == is_operation(event);
            if same_kind || reported.contains(&path) {
                continue;
            }
            reported.push(path.clone());
            let d = ctx
                .error(
                    "QC-004",
                    path,
                    format!("two derived events are both named `{}`", event.name),
                )
                .expected("derived event names that differ")
                .found(format!("{}, and {}", event.origin(), first.origin()))
                .help("rename the operation or the workflow step");
            ctx.push(d);
        } else {
            by_name.insert(struct_name, event);
        }
    }
    let node_type = c.node.node_type.as_str();
    let mut derived_types: HashMap<String, String> = derived
        .iter()
        .map(|e| (e.event_type.clone(), e.description.clone()))
        .collect();
    for shared in &SHARED_EVENTS {
        derived_types.insert(shared.event_type.to_owned(), shared.description.to_owned());
    }

    let mut custom_types: HashMap<String, (String, bool)> = HashMap::new();
    for (i, e) in c.events.iter().enumerate() {
        if let Some(first) = by_name.get(&to_pascal_case(&e.name)) {
            let origin = first.origin();
            let d = ctx
                .error("QC-004", format!("events[{i}].name"), format!("the event `{}` has the name of a derived event", e.name))
                .expected("a custom event name that no derived event uses")
                .found(format!("`{}`, the name of {origin}", e.name))
                .help(format!(
                    "rename the event (e.g. `{}_notice`); derived events are generated for you, see docs/contracts.md",
                    e.name
                ));
            ctx.push(d);
        }
        let (event_type, path) = match &e.event_type {
            Some(t) => (t.clone(), format!("events[{i}].event_type")),
            None => (
                format!("{node_type}.{}", e.name),
                format!("events[{i}].name"),
            ),
        };
        if let Some(origin) = derived_types.get(&event_type) {
            let d = ctx
                .error(
                    "QC-004",
                    &path,
                    format!("the event type `{event_type}` is the type of a derived event"),
                )
                .expected("an event type that no derived event uses")
                .found(format!("`{event_type}`, the event type of {origin}"))
                .help("choose another `event_type`, e.g. with your domain as its first segment");
            ctx.push(d);
        } else if let Some((first, explicit)) = custom_types.get(&event_type) {
            if !explicit && e.event_type.is_none() {
                // Two events of one name: QC-003 reports it already.
                continue;
            }
            let d = ctx
                .error(
                    "QC-004",
                    &path,
                    format!("two events have the event type `{event_type}`"),
                )
                .expected("one event per event type")
                .found(format!(
                    "`{event_type}` again; first used by {}",
                    ctx.where_is(first)
                ))
                .help("give one of the events another `event_type`");
            ctx.push(d);
        } else {
            custom_types.insert(event_type, (path, e.event_type.is_some()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::snake_suggestion;

    #[test]
    fn qc_001_identifier_case() {
        passes(BASE, "QC-001");
        let ds = fails(&BASE.replace("name: writer", "name: WriterNode"), "QC-001");
        assert_eq!(ds.0[0].help.as_deref(), Some("rename it to `writer_node`"));
        let ds = fails(
            &BASE
                .replace("name: WriteInput", "name: write_input")
                .replace("input: WriteInput", "input: write_input"),
            "QC-001",
        );
        assert!(
            ds.iter()
                .any(|d| d.help.as_deref() == Some("rename it to `WriteInput`")),
            "{ds}"
        );
        fails(&BASE.replace("[idle, busy]", "[idle, Busy]"), "QC-001");
        fails(
            &BASE.replace(
                "{ name: id, type: uuid }\n      - { name: tags",
                "{ name: record-id, type: uuid }\n      - { name: tags",
            ),
            "QC-001",
        );
        assert_eq!(
            snake_suggestion("Write-Record"),
            Some("write_record".to_owned())
        );
    }

    #[test]
    fn qc_002_reserved_words() {
        // A keyword as a field name is fine: it becomes `r#type`.
        passes(
            &BASE.replace(
                "{ name: id, type: uuid }\n      - { name: tags",
                "{ name: type, type: uuid }\n      - { name: tags",
            ),
            "QC-002",
        );
        fails(
            &BASE.replace(
                "{ name: id, type: uuid }\n      - { name: tags",
                "{ name: self, type: uuid }\n      - { name: tags",
            ),
            "QC-002",
        );
        fails(&BASE.replace("name: writer", "name: match"), "QC-002");
        fails(
            &BASE
                .replace("  - name: Status", "  - name: Self")
                .replace("type: Status", "type: Self"),
            "QC-002",
        );
        fails(&BASE.replace("[idle, busy]", "[idle, super]"), "QC-002");
    }

    #[test]
    fn qc_003_unique_names() {
        passes(BASE, "QC-003");
        fails(
            &BASE.replace("[idle, busy]", "[idle, busy, idle]"),
            "QC-003",
        );
        let dup_field = BASE.replace(
            "{ name: tags, type: list<string> }",
            "{ name: id, type: list<string> }",
        );
        let ds = fails(&dup_field, "QC-003");
        assert!(
            ds.0[0]
                .found
                .as_deref()
                .is_some_and(|f| f.contains("line 10")),
            "{ds}"
        );
        let dup_event = BASE.replace("events:\n", "events:\n  - name: written\n");
        fails(&dup_event, "QC-003");
        // Different spellings, same Rust name.
        let rust_dup = BASE.replace(
            "events:\n",
            "events:\n  - name: written_1\n  - name: written1\n",
        );
        fails(&rust_dup, "QC-003");
        // A type named like a generated event struct.
        let taken = BASE.replace(
            "  - name: Status\n",
            "  - name: WriteStarted\n  - name: Status\n",
        );
        let taken = taken.replacen(
            "    variants:\n",
            "    variants:\n      - name: x\n  - name: StatusX\n    variants:\n",
            1,
        );
        fails(&taken, "QC-003");
        // Steps that derive the same event structs.
        let steps = "contract_version: 1
node: { name: flow, node_type: orchestrator, version: 1.0.0, domain: d }
workflow:
  steps:
    - name: a_1
    - name: a1
";
        let ds = fails(steps, "QC-003");
        assert!(
            ds.iter().any(|d| d.field_path == "workflow.steps[1].name"),
            "{ds}"
        );
        // Events named like the event enum, the state enum or a shared
        // event's variant.
        for name in [
            "writer_event",
            "state",
            "node_introspection",
            "node_heartbeat",
        ] {
            let src = BASE.replace("  - name: written\n", &format!("  - name: {name}\n"));
            let ds = fails(&src, "QC-003");
            assert!(
                ds.iter().any(|d| d.field_path == "events[0].name"),
                "{name}: {ds}"
            );
        }
    }

    #[test]
    fn qc_004_derived_events() {
        passes(BASE, "QC-004");
        let ds = fails(
            &BASE.replace("  - name: written\n", "  - name: write_completed\n"),
            "QC-004",
        );
        assert!(
            ds.0[0]
                .found
                .as_deref()
                .is_some_and(|f| f.contains("operation `write`")),
            "{ds}"
        );
        fails(
            &BASE.replace("  - name: written\n", "  - name: state_changed\n"),
            "QC-004",
        );
        fails(
            &BASE.replace(
                "  - name: written\n",
                "  - name: written\n    event_type: effect.write.started\n",
            ),
            "QC-004",
        );
        let two_types = BASE.replace(
            "events:\n",
            "events:\n  - { name: a_happened, event_type: orders.thing }\n  - { name: b_happened, event_type: orders.thing }\n",
        );
        fails(&two_types, "QC-004");
        // The same struct name through another spelling.
        let digits = BASE
            .replace("{ name: write,", "{ name: write1,")
            .replace("  - name: written\n", "  - name: write_1_started\n");
        fails(&digits, "QC-004");
        // An operation and a step deriving the same events: one report.
        let cross = "contract_version: 1
node: { name: flow, node_type: orchestrator, version: 1.0.0, domain: d }
types:
  - { name: A, fields: [{ name: x, type: u32 }] }
operations:
  - { name: fetch_step, input: A, output: A }
workflow:
  steps:
    - name: fetch
";
        let ds = fails(cross, "QC-004");
        assert_eq!(ds.iter().filter(|d| d.code == "QC-004").count(), 1, "{ds}");
        // An operation named `workflow` derives the workflow's own
        // `workflow_completed`: the operation is blamed.
        let ds = fails(&cross.replace("fetch_step", "workflow"), "QC-004");
        assert!(
            ds.iter()
                .any(|d| d.code == "QC-004" && d.field_path == "operations[0].name"),
            "{ds}"
        );
    }
}
