//! FV-002 (topic names), FV-003 (event types) and FV-004 (runtime
//! settings).

use super::Ctx;
use crate::naming::is_snake_case;

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
        check_topic(ctx, format!("subscriptions[{i}].topic"), &s.topic);
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

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
