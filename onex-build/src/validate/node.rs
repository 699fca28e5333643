//! ND-001 (orchestrator workflow), ND-002 (reducer aggregation), ND-003
//! (sections by node type) and ND-004 (operation references).

use super::Ctx;
use crate::contract::{NodeType, suggest::did_you_mean};

/// `an effect`, `a compute`, ...
fn article(t: NodeType) -> String {
    match t {
        NodeType::Effect | NodeType::Orchestrator => format!("an {}", t.as_str()),
        NodeType::Compute | NodeType::Reducer => format!("a {}", t.as_str()),
    }
}

/// `An effect`, `A compute`, ...
fn capital(t: NodeType) -> String {
    let a = article(t);
    let mut chars = a.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or(a)
}

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let c = ctx.contract;
    let node_type = c.node.node_type;

    // ND-001
    if node_type == NodeType::Orchestrator {
        match &c.workflow {
            None => {
                let d = ctx
                    .error("ND-001", "node.node_type", "an orchestrator needs a `workflow`")
                    .expected("a top-level `workflow:` with at least one step")
                    .found("no `workflow`")
                    .help("add `workflow: {steps: [{name: first_step, operation: <operation>}]}`, or change `node_type` if the node drives no workflow");
                ctx.push(d);
            }
            Some(w) if w.steps.is_empty() => {
                let d = ctx
                    .error("ND-001", "workflow.steps", "the workflow has no steps")
                    .expected("at least one step")
                    .found("`steps: []`")
                    .help("add a step, e.g. `- {name: first_step, operation: <operation>}`");
                ctx.push(d);
            }
            Some(_) => {}
        }
    }

    // ND-002
    if node_type == NodeType::Reducer {
        match &c.aggregation {
            None => {
                let d = ctx
                    .error("ND-002", "node.node_type", "a reducer needs an `aggregation`")
                    .expected("a top-level `aggregation:` with the topics to aggregate")
                    .found("no `aggregation`")
                    .help("add `aggregation: {topics: [<service>.<event_type>.v1], window_ms: 5000}`, or change `node_type` if the node aggregates nothing");
                ctx.push(d);
            }
            Some(a) if a.topics.is_empty() && c.subscriptions.is_empty() => {
                let d = ctx
                    .error("ND-002", "aggregation.topics", "the reducer aggregates no topic")
                    .expected("at least one topic in `aggregation.topics` or `subscriptions`")
                    .found("no topics")
                    .help("list the topics to aggregate, e.g. `topics: [orders.effect.order.placed.v1]`");
                ctx.push(d);
            }
            Some(_) => {}
        }
    }

    // ND-003
    if c.workflow.is_some() && node_type != NodeType::Orchestrator {
        let d = ctx
            .error(
                "ND-003",
                "workflow",
                format!("{} node cannot have a `workflow`", capital(node_type)),
            )
            .expected("`workflow` only on orchestrator nodes")
            .found(format!("`workflow` on {} node", article(node_type)))
            .help("remove `workflow`, or set `node_type: orchestrator`");
        ctx.push(d);
    }
    if c.aggregation.is_some() && node_type != NodeType::Reducer {
        let d = ctx
            .error(
                "ND-003",
                "aggregation",
                format!("{} node cannot have an `aggregation`", capital(node_type)),
            )
            .expected("`aggregation` only on reducer nodes")
            .found(format!("`aggregation` on {} node", article(node_type)))
            .help("remove `aggregation`, or set `node_type: reducer`");
        ctx.push(d);
    }
    if c.event_bus.enabled == Some(false)
        && matches!(node_type, NodeType::Effect | NodeType::Orchestrator)
    {
        let d = ctx
            .error("ND-003", "event_bus.enabled", format!("the event bus cannot be disabled on {} node", article(node_type)))
            .expected("`enabled: true` or no `enabled` (effect and orchestrator nodes always use the event bus)")
            .found("`enabled: false`")
            .help("remove `enabled: false`; only compute and reducer nodes can run without the event bus");
        ctx.push(d);
    }

    // ND-004
    let ops: Vec<&str> = c.operations.iter().map(|o| o.name.as_str()).collect();
    let mut refs: Vec<(String, &str)> = Vec::new();
    for (i, s) in c.workflow.iter().flat_map(|w| w.steps.iter()).enumerate() {
        if let Some(op) = &s.operation {
            refs.push((format!("workflow.steps[{i}].operation"), op.as_str()));
        }
    }
    for (i, s) in c.subscriptions.iter().enumerate() {
        if let Some(op) = &s.operation {
            refs.push((format!("subscriptions[{i}].operation"), op.as_str()));
        }
    }
    for (path, op) in refs {
        if ops.contains(&op) {
            continue;
        }
        let help = did_you_mean(op, ops.iter().copied()).unwrap_or_else(|| {
            if ops.is_empty() {
                format!("declare the operation under `operations` (`- {{name: {op}, input: <Type>, output: <Type>}}`)")
            } else {
                format!(
                    "name one of the declared operations ({}), or declare `{op}` under `operations`",
                    ops.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
                )
            }
        });
        let d = ctx
            .error("ND-004", &path, format!("unknown operation `{op}`"))
            .expected("the name of an operation declared under `operations`")
            .found(format!("`{op}`"))
            .help(help);
        ctx.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    const ORCH: &str = "\
contract_version: 1
node: {name: flow, node_type: orchestrator, version: 1.0.0, domain: d}
types:
  - {name: In, fields: []}
operations:
  - {name: run, input: In, output: In}
workflow:
  steps:
    - {name: first, operation: run}
";

    const REDUCER: &str = "\
contract_version: 1
node: {name: totals, node_type: reducer, version: 1.0.0, domain: d}
aggregation:
  topics: [orders.effect.order_placed.v1]
";

    #[test]
    fn nd_001_orchestrator_workflow() {
        passes(ORCH, "ND-001");
        let ds = fails(
            &ORCH.replace(
                "workflow:\n  steps:\n    - {name: first, operation: run}\n",
                "",
            ),
            "ND-001",
        );
        assert_eq!(ds.0[0].field_path, "node.node_type");
        fails(
            &ORCH.replace(
                "  steps:\n    - {name: first, operation: run}\n",
                "  steps: []\n",
            ),
            "ND-001",
        );
    }

    #[test]
    fn nd_002_reducer_aggregation() {
        passes(REDUCER, "ND-002");
        fails(
            &REDUCER.replace(
                "aggregation:\n  topics: [orders.effect.order_placed.v1]\n",
                "",
            ),
            "ND-002",
        );
        fails(
            &REDUCER.replace("[orders.effect.order_placed.v1]", "[]"),
            "ND-002",
        );
        passes(
            &REDUCER.replace(
                "[orders.effect.order_placed.v1]",
                "[]\nsubscriptions:\n  - topic: orders.effect.order_placed.v1\n",
            ),
            "ND-002",
        );
    }

    #[test]
    fn nd_003_sections_by_node_type() {
        passes(ORCH, "ND-003");
        passes(REDUCER, "ND-003");
        fails(&ORCH.replace("orchestrator", "compute"), "ND-003");
        fails(
            &REDUCER.replace("node_type: reducer", "node_type: effect"),
            "ND-003",
        );
        fails(&format!("{ORCH}event_bus: {{enabled: false}}\n"), "ND-003");
        passes(
            &format!("{REDUCER}event_bus: {{enabled: false}}\n"),
            "ND-003",
        );
    }

    #[test]
    fn nd_004_operation_references() {
        passes(ORCH, "ND-004");
        let ds = fails(&ORCH.replace("operation: run", "operation: rnu"), "ND-004");
        assert_eq!(ds.0[0].help.as_deref(), Some("did you mean `run`?"));
        fails(
            &format!("{REDUCER}subscriptions:\n  - {{topic: a.b.v1, operation: nothing}}\n"),
            "ND-004",
        );
    }
}
