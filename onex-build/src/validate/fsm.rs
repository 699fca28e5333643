//! FSM-001 (initial state) and FSM-002 (transitions).

use super::Ctx;
use crate::contract::suggest::did_you_mean;

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let Some(sm) = &ctx.contract.states else {
        return;
    };
    let states: Vec<&str> = sm.states.iter().map(String::as_str).collect();
    let listed = || {
        states
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };

    if states.is_empty() {
        let d = ctx
            .error(
                "FSM-001",
                "states.states",
                "the state machine has no states",
            )
            .expected("at least one state")
            .found("`states: []`")
            .help(format!(
                "list the states, starting with the initial one: `states: [{}]`",
                sm.initial
            ));
        ctx.push(d);
    } else if !states.contains(&sm.initial.as_str()) {
        let help = did_you_mean(&sm.initial, states.iter().copied()).unwrap_or_else(|| {
            format!(
                "name one of the states ({}), or add `{}` to `states`",
                listed(),
                sm.initial
            )
        });
        let d = ctx
            .error(
                "FSM-001",
                "states.initial",
                format!("the initial state `{}` is not a declared state", sm.initial),
            )
            .expected(format!("one of {}", listed()))
            .found(format!("`{}`", sm.initial))
            .help(help);
        ctx.push(d);
    }

    for (i, t) in sm.transitions.iter().enumerate() {
        for (end, state) in [("from", &t.from), ("to", &t.to)] {
            if states.is_empty() || states.contains(&state.as_str()) {
                continue;
            }
            let help = did_you_mean(state, states.iter().copied()).unwrap_or_else(|| {
                format!(
                    "name one of the states ({}), or add `{state}` to `states`",
                    listed()
                )
            });
            let d = ctx
                .error(
                    "FSM-002",
                    format!("states.transitions[{i}].{end}"),
                    format!("the transition names an unknown state `{state}`"),
                )
                .expected(format!("one of {}", listed()))
                .found(format!("`{state}`"))
                .help(help);
            ctx.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn fsm_001_initial_state() {
        passes(BASE, "FSM-001");
        let ds = fails(&BASE.replace("initial: idle", "initial: idel"), "FSM-001");
        assert_eq!(ds.0[0].help.as_deref(), Some("did you mean `idle`?"));
        fails(
            &BASE
                .replace("[idle, busy]", "[]")
                .replace("    - { from: idle, to: busy }\n", ""),
            "FSM-001",
        );
    }

    #[test]
    fn fsm_002_transitions() {
        passes(BASE, "FSM-002");
        let ds = fails(&BASE.replace("to: busy }", "to: bussy }"), "FSM-002");
        assert_eq!(ds.0[0].field_path, "states.transitions[0].to");
        assert_eq!(ds.0[0].help.as_deref(), Some("did you mean `busy`?"));
    }
}
