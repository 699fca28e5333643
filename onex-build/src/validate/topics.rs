//! FV-002 (topic names), FV-003 (event types), FV-004 (runtime
//! settings) and FV-005 (topic length).

use std::collections::BTreeMap;

use super::Ctx;
use crate::naming::is_snake_case;
use crate::spec::derived::{Source, derived_events};

/// The most messages a subscription may have in hand: the runtime's bound
/// (`KAFKA_MAX_IN_FLIGHT`'s range in `onex::config`).
const MAX_IN_FLIGHT: u64 = 10_000;

/// Kafka's limit on a topic name, in characters.
pub const KAFKA_MAX_TOPIC_LEN: usize = 249;

/// The longest environment (topic namespace) the runtime accepts, in
/// characters: `onex`'s `KafkaConfig` refuses a longer `KAFKA_ENVIRONMENT`
/// at start-up. Real environments (`dev`, `staging-eu-west-1`, a branch
/// name) are far shorter; the bound leaves the contract 184 characters.
pub const MAX_ENVIRONMENT_LEN: usize = 64;

/// The longest namespace-free topic a contract may produce: the full topic
/// `{environment}.{topic}` must fit [`KAFKA_MAX_TOPIC_LEN`] with the longest
/// environment.
pub const MAX_TOPIC_LEN: usize = KAFKA_MAX_TOPIC_LEN - MAX_ENVIRONMENT_LEN - 1;

/// First topic segments that look like an environment; the environment is
/// the namespace, added at run time, never written in a contract.
const ENVIRONMENTS: &[&str] = &[
    "dev",
    "development",
    "test",
    "testing",
    "qa",
    "uat",
    "stage",
    "staging",
    "prod",
    "production",
    "local",
];

fn is_version(s: &str) -> bool {
    s.strip_prefix('v').is_some_and(|n| {
        !n.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// What is wrong with a namespace-free topic name, if anything.
pub(crate) fn topic_problem(topic: &str) -> Option<String> {
    let segments: Vec<&str> = topic.split('.').collect();
    let Some((last, body)) = segments.split_last() else {
        return Some("the topic is empty".to_owned());
    };
    if !is_version(last) {
        return Some(format!(
            "`{topic}` does not end with a version segment such as `.v1`"
        ));
    }
    if body.len() >= 3 && ENVIRONMENTS.contains(&body[0]) {
        return Some(format!(
            "`{topic}` starts with the environment `{}`",
            body[0]
        ));
    }
    if body.len() < 2 {
        return Some(format!(
            "`{topic}` has no event type between the service and the version"
        ));
    }
    if let Some(bad) = body.iter().find(|s| !is_snake_case(s)) {
        return Some(format!(
            "the segment `{bad}` of `{topic}` is not snake_case"
        ));
    }
    None
}

/// A corrected topic name, if one can be made.
fn topic_fix(topic: &str) -> Option<String> {
    let lowered: String = topic
        .trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' | '/' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let mut segments: Vec<String> = lowered
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_matches('_').to_owned())
        .collect();
    if segments.len() >= 4 && ENVIRONMENTS.contains(&segments[0].as_str()) {
        segments.remove(0);
    }
    if !segments.last().is_some_and(|s| is_version(s)) {
        segments.push("v1".to_owned());
    }
    let fixed = segments.join(".");
    (fixed != topic && topic_problem(&fixed).is_none()).then_some(fixed)
}

fn check_topic(ctx: &mut Ctx<'_>, path: String, topic: &str) {
    let Some(problem) = topic_problem(topic) else {
        return;
    };
    let help = match topic_fix(topic) {
        Some(fixed) => format!("write `{fixed}`; the environment is added at run time"),
        None => "write `{service}.{event_type}.v1` in lower-case snake_case segments, e.g. `orders.effect.order_placed.v1`; the environment is added at run time".to_owned(),
    };
    let d = ctx
        .error("FV-002", path, problem)
        .expected("`{service}.{event_type}.v{N}`: lower-case snake_case segments joined by dots, without an environment prefix")
        .found(format!("`{topic}`"))
        .help(help);
    ctx.push(d);
}

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let c = ctx.contract;

    // FV-002
    for (i, s) in c.subscriptions.iter().enumerate() {
        if let Some(topic) = &s.topic {
            check_topic(ctx, format!("subscriptions[{i}].topic"), topic);
        }
    }
    for (i, t) in c
        .aggregation
        .iter()
        .flat_map(|a| a.topics.iter())
        .enumerate()
    {
        check_topic(ctx, format!("aggregation.topics[{i}]"), t);
    }
    if let Some(t) = &c.event_bus.dead_letter_topic {
        check_topic(ctx, "event_bus.dead_letter_topic".to_owned(), t);
    }

    // FV-003
    for (i, e) in c.events.iter().enumerate() {
        let Some(t) = &e.event_type else { continue };
        let segments: Vec<&str> = t.split('.').collect();
        let problem = if segments.last().is_some_and(|s| is_version(s)) {
            Some(format!(
                "`{t}` ends with a version; the version belongs to the topic"
            ))
        } else if segments.len() < 2 {
            Some(format!("`{t}` has one segment"))
        } else {
            segments
                .iter()
                .find(|s| !is_snake_case(s))
                .map(|bad| format!("the segment `{bad}` of `{t}` is not snake_case"))
        };
        if let Some(problem) = problem {
            let d = ctx
                .error("FV-003", format!("events[{i}].event_type"), problem)
                .expected("dotted snake_case: at least two snake_case segments joined by dots, e.g. `orders.order_placed`")
                .found(format!("`{t}`"))
                .help(format!(
                    "write e.g. `{}.{}`, or remove `event_type` to use `{}.{}`",
                    c.node.domain.to_ascii_lowercase().replace(['-', ' '], "_"),
                    e.name,
                    c.node.node_type.as_str(),
                    e.name
                ));
            ctx.push(d);
        }
    }

    topic_length(ctx);

    // FV-004
    let endpoint = &c.capabilities.health_endpoint;
    if !endpoint.starts_with('/') || endpoint.contains(char::is_whitespace) {
        let d = ctx
            .error(
                "FV-004",
                "capabilities.health_endpoint",
                "the health endpoint is not an absolute URL path",
            )
            .expected("a path starting with `/`, without spaces, e.g. `/health`")
            .found(format!("`{endpoint}`"))
            .help(format!(
                "write `/{}`",
                endpoint.trim().trim_start_matches('/').replace(' ', "_")
            ));
        ctx.push(d);
    }
    if c.capabilities.protocols.is_empty() {
        let d = ctx
            .error(
                "FV-004",
                "capabilities.protocols",
                "the node announces no protocol",
            )
            .expected("at least one protocol, e.g. `kafka`")
            .found("`protocols: []`")
            .help("write `protocols: [kafka]`, or remove the key for that default");
        ctx.push(d);
    }
    let positives = [
        (
            "event_bus.heartbeat_interval_seconds",
            c.event_bus.heartbeat_interval_seconds,
            "30",
        ),
        ("event_bus.max_in_flight", c.event_bus.max_in_flight, "64"),
        (
            "aggregation.window_ms",
            c.aggregation.as_ref().and_then(|a| a.window_ms),
            "5000",
        ),
        (
            "workflow.timeout_seconds",
            c.workflow.as_ref().and_then(|w| w.timeout_seconds),
            "60",
        ),
    ];
    for (path, value, default) in positives {
        if value == Some(0) {
            let key = path.rsplit('.').next().unwrap_or(path);
            let d = ctx
                .error("FV-004", path, format!("`{key}` is zero"))
                .expected("a number greater than 0")
                .found("`0`")
                .help(format!(
                    "write a positive number, or remove the key for the default of {default}"
                ));
            ctx.push(d);
        }
    }
    if let Some(n) = c.event_bus.max_in_flight.filter(|n| *n > MAX_IN_FLIGHT) {
        let d = ctx
            .error(
                "FV-004",
                "event_bus.max_in_flight",
                "`max_in_flight` is more than the runtime allows",
            )
            .expected(format!("1 to {MAX_IN_FLIGHT}"))
            .found(format!("`{n}`"))
            .help("write a smaller bound, or remove the key for the default of 64");
        ctx.push(d);
    }
    if let Some(group) = &c.event_bus.consumer_group {
        let valid = !group.is_empty()
            && group.len() <= 249
            && group
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'));
        if !valid {
            let d = ctx
                .error(
                    "FV-004",
                    "event_bus.consumer_group",
                    "the consumer group is not a valid Kafka group id",
                )
                .expected("1 to 249 characters among letters, digits, `.`, `_` and `-`")
                .found(format!("`{group}`"))
                .help(format!(
                    "write e.g. `{}_consumers`, or remove the key for that default",
                    c.node.service.as_deref().unwrap_or(&c.node.name)
                ));
            ctx.push(d);
        }
    }
}

/// One topic of the node and the contract value that makes it long.
struct TopicUse {
    topic: String,
    /// The field path to blame.
    path: String,
    /// How to shorten it.
    fix: String,
    /// Whether the topic starts with the node's service name.
    has_service: bool,
}

/// Every topic the node publishes to or consumes, each with the contract
/// value that shapes it: the derived events' topics are those of the list
/// the build stage generates from ([`derived_events`]).
fn topic_uses(ctx: &Ctx<'_>) -> (Vec<TopicUse>, Vec<TopicUse>) {
    let c = ctx.contract;
    let (service, service_path) = match &c.node.service {
        Some(s) => (s.as_str(), "node.service"),
        None => (c.node.name.as_str(), "node.name"),
    };
    let node_type = c.node.node_type.as_str();
    let topic = |event_type: &str| format!("{service}.{event_type}.v1");
    // The node's own derived events are long only through the service name.
    let mut fixed = Vec::new();
    let mut named = Vec::new();
    for derived in derived_events(c) {
        let (path, fix) = match derived.source {
            Source::Node => {
                fixed.push(topic(&derived.event_type));
                continue;
            }
            Source::Operation(i) => (
                format!("operations[{i}].name"),
                "shorten the operation name",
            ),
            Source::Step(i) => (format!("workflow.steps[{i}].name"), "shorten the step name"),
        };
        named.push(TopicUse {
            topic: topic(&derived.event_type),
            path,
            fix: fix.to_owned(),
            has_service: true,
        });
    }
    for (i, e) in c.events.iter().enumerate() {
        let (event_type, path, fix) = match &e.event_type {
            Some(t) => (
                t.clone(),
                format!("events[{i}].event_type"),
                "shorten the `event_type`".to_owned(),
            ),
            None => (
                format!("{node_type}.{}", e.name),
                format!("events[{i}].name"),
                "shorten the event name".to_owned(),
            ),
        };
        named.push(TopicUse {
            topic: topic(&event_type),
            path,
            fix,
            has_service: true,
        });
    }
    let service_fix =
        "set a shorter `node.service`, the name that starts every topic of the node".to_owned();
    let mut own: Vec<TopicUse> = fixed
        .into_iter()
        .map(|topic| TopicUse {
            topic,
            path: service_path.to_owned(),
            fix: service_fix.clone(),
            has_service: true,
        })
        .collect();
    match &c.event_bus.dead_letter_topic {
        Some(t) => named.push(TopicUse {
            topic: t.clone(),
            path: "event_bus.dead_letter_topic".to_owned(),
            fix: "shorten the dead-letter topic".to_owned(),
            has_service: false,
        }),
        None => own.push(TopicUse {
            topic: format!("{service}.dlq.v1"),
            path: service_path.to_owned(),
            fix: service_fix,
            has_service: true,
        }),
    }
    own.extend(named);
    let mut foreign = Vec::new();
    for (i, s) in c.subscriptions.iter().enumerate() {
        // An event's topic is its producer's, checked in that contract.
        let Some(topic) = &s.topic else { continue };
        foreign.push(TopicUse {
            topic: topic.clone(),
            path: format!("subscriptions[{i}].topic"),
            fix: "subscribe to a shorter topic, which the publishing node can have in every environment".to_owned(),
            has_service: false,
        });
    }
    for (i, t) in c
        .aggregation
        .iter()
        .flat_map(|a| a.topics.iter())
        .enumerate()
    {
        foreign.push(TopicUse {
            topic: t.clone(),
            path: format!("aggregation.topics[{i}]"),
            fix:
                "aggregate a shorter topic, which the publishing node can have in every environment"
                    .to_owned(),
            has_service: false,
        });
    }
    (own, foreign)
}

/// FV-005: every topic fits Kafka's limit behind the longest environment.
/// One diagnostic per contract value, at its longest topic; when the
/// service name alone is too long, only that.
fn topic_length(ctx: &mut Ctx<'_>) {
    let (own, foreign) = topic_uses(ctx);
    let service_path = if ctx.contract.node.service.is_some() {
        "node.service"
    } else {
        "node.name"
    };
    let service_too_long = own
        .iter()
        .any(|u| u.path == service_path && u.topic.chars().count() > MAX_TOPIC_LEN);
    let mut longest: BTreeMap<&str, &TopicUse> = BTreeMap::new();
    for u in own.iter().chain(&foreign) {
        if service_too_long && u.has_service && u.path != service_path {
            // Too long already through the service name: blamed there.
            continue;
        }
        let entry = longest.entry(u.path.as_str()).or_insert(u);
        if u.topic.chars().count() > entry.topic.chars().count() {
            *entry = u;
        }
    }
    for u in longest.values() {
        let len = u.topic.chars().count();
        if len <= MAX_TOPIC_LEN {
            continue;
        }
        let d = ctx
            .error(
                "FV-005",
                &u.path,
                format!(
                    "a topic of the node is {len} characters, longer than Kafka allows once the environment is added"
                ),
            )
            .expected(format!(
                "at most {MAX_TOPIC_LEN} characters, so that `{{environment}}.{{topic}}` fits Kafka's {KAFKA_MAX_TOPIC_LEN} with an environment of up to {MAX_ENVIRONMENT_LEN}"
            ))
            .found(format!("`{}` ({len} characters)", u.topic))
            .help(format!("{} (by at least {} characters)", u.fix, len - MAX_TOPIC_LEN));
        ctx.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn fv_005_topic_length() {
        passes(BASE, "FV-005");
        // `writer.effect.{op}.completed.v1` is 27 characters besides the
        // operation name.
        let at_limit = "w".repeat(MAX_TOPIC_LEN - 27);
        passes(
            &BASE.replace("name: write,", &format!("name: {at_limit},")),
            "FV-005",
        );
        // The gate mirrors the topics the build stage derives: at the limit,
        // the longest of them is exactly the limit.
        let source = BASE.replace("name: write,", &format!("name: {at_limit},"));
        let loaded = crate::contract::load_str(std::path::Path::new("t.yaml"), source)
            .unwrap_or_else(|d| panic!("{d}"));
        let spec =
            crate::spec::build(&loaded, &Default::default()).unwrap_or_else(|ds| panic!("{ds}"));
        let longest = spec.events.iter().map(|e| e.topic.len()).max();
        assert_eq!(longest, Some(MAX_TOPIC_LEN));
        let over = format!("{at_limit}w");
        let ds = fails(
            &BASE.replace("name: write,", &format!("name: {over},")),
            "FV-005",
        );
        assert_eq!(ds.iter().filter(|d| d.code == "FV-005").count(), 1, "{ds}");
        assert_eq!(
            ds.0.iter()
                .find(|d| d.code == "FV-005")
                .map(|d| d.field_path.as_str()),
            Some("operations[0].name")
        );
        // A long service name is blamed once, not once per topic.
        let service = "s".repeat(MAX_TOPIC_LEN);
        let ds = fails(
            &BASE.replace(
                "  domain: database\n",
                &format!("  domain: database\n  service: {service}\n"),
            ),
            "FV-005",
        );
        let fv: Vec<_> = ds.iter().filter(|d| d.code == "FV-005").collect();
        assert_eq!(fv.len(), 1, "{ds}");
        assert_eq!(fv[0].field_path, "node.service", "{ds}");
        // Topics of other nodes count too.
        let long_topic = format!("orders.{}.v1", "x".repeat(MAX_TOPIC_LEN));
        fails(
            &format!("{BASE}subscriptions:\n  - topic: {long_topic}\n"),
            "FV-005",
        );
        assert_eq!(MAX_TOPIC_LEN, 184);
    }

    #[test]
    fn topic_names() {
        assert_eq!(topic_problem("orders.effect.order_placed.v1"), None);
        assert_eq!(topic_problem("writer.dlq.v2"), None);
        assert!(topic_problem("dev.orders.effect.placed.v1").is_some());
        assert!(topic_problem("orders.v1").is_some());
        assert!(topic_problem("orders.placed").is_some());
        assert!(topic_problem("Orders.placed.v1").is_some());
        assert!(topic_problem("orders..placed.v1").is_some());
        assert!(topic_problem("orders.placed.v01").is_some());
        assert_eq!(
            topic_fix("dev.Orders.order-placed.v1").as_deref(),
            Some("orders.order_placed.v1")
        );
        assert_eq!(
            topic_fix("orders.placed").as_deref(),
            Some("orders.placed.v1")
        );
    }

    #[test]
    fn fv_002_topic_names() {
        passes(BASE, "FV-002");
        let ds = fails(
            &BASE.replace("writer.dlq.v1", "dev.writer.dead-letters.v1"),
            "FV-002",
        );
        assert_eq!(
            ds.0[0].help.as_deref(),
            Some("write `writer.dead_letters.v1`; the environment is added at run time")
        );
        fails(
            &format!("{BASE}subscriptions:\n  - topic: orders.placed\n"),
            "FV-002",
        );
    }

    #[test]
    fn fv_003_event_types() {
        passes(
            &BASE.replace(
                "  - name: written\n",
                "  - name: written\n    event_type: database.row_written\n",
            ),
            "FV-003",
        );
        fails(
            &BASE.replace(
                "  - name: written\n",
                "  - name: written\n    event_type: database.RowWritten\n",
            ),
            "FV-003",
        );
        fails(
            &BASE.replace(
                "  - name: written\n",
                "  - name: written\n    event_type: database.written.v1\n",
            ),
            "FV-003",
        );
        fails(
            &BASE.replace(
                "  - name: written\n",
                "  - name: written\n    event_type: written\n",
            ),
            "FV-003",
        );
    }

    #[test]
    fn fv_004_runtime_settings() {
        passes(BASE, "FV-004");
        fails(
            &BASE.replace(
                "event_bus:\n",
                "event_bus:\n  heartbeat_interval_seconds: 0\n",
            ),
            "FV-004",
        );
        fails(
            &BASE.replace("event_bus:\n", "event_bus:\n  consumer_group: my group\n"),
            "FV-004",
        );
        fails(
            &BASE.replace(
                "types:\n",
                "capabilities: {health_endpoint: health}\ntypes:\n",
            ),
            "FV-004",
        );
        fails(
            &BASE.replace("types:\n", "capabilities: {protocols: []}\ntypes:\n"),
            "FV-004",
        );
    }
}
