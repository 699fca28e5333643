//! A node's state machine at run time: the states and transitions of its
//! contract (`states`), enforced. A transition the contract's table does
//! not allow is refused; every allowed one is published as the node's
//! `state_changed` event before it takes effect.
//!
//! Generated modules implement [`States`] for their `State` enum; a node
//! holds a [`StateMachine`] of it.

use std::fmt;

use tokio::sync::Mutex;

/// The states of a contract, as its generated `State` enum has them.
pub trait States: Copy + PartialEq + fmt::Debug + Send + Sync + 'static {
    /// The state a node starts in.
    const INITIAL: Self;

    /// Whether the contract allows moving from `self` to `to`.
    fn allows(self, to: Self) -> bool;

    /// The state's name, as the contract spells it.
    fn name(self) -> &'static str;
}

/// Why a transition did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError<E> {
    /// The contract's table has no transition from `from` to `to`.
    #[error("the state machine does not allow moving from `{from}` to `{to}`")]
    NotAllowed {
        /// The current state.
        from: &'static str,
        /// The state asked for.
        to: &'static str,
    },
    /// Announcing the transition failed, so it did not take effect.
    #[error("the transition was not announced: {0}")]
    NotAnnounced(#[source] E),
}

/// The current state of a node, moved only along the contract's
/// transitions.
#[derive(Debug)]
pub struct StateMachine<S> {
    current: Mutex<S>,
}

impl<S: States> Default for StateMachine<S> {
    fn default() -> Self {
        StateMachine::new()
    }
}

impl<S: States> StateMachine<S> {
    /// A machine in the contract's initial state.
    pub fn new() -> Self {
        StateMachine {
            current: Mutex::new(S::INITIAL),
        }
    }

    /// The current state.
    pub async fn current(&self) -> S {
        *self.current.lock().await
    }

    /// Moves to `to` if the contract allows it from the current state:
    /// `announce(from, to)` publishes the change first, and only once it
    /// succeeded does the state change. Transitions are serialized: a
    /// second one waits for the first to be announced.
    pub async fn transition<F, Fut, T, E>(
        &self,
        to: S,
        announce: F,
    ) -> Result<T, TransitionError<E>>
    where
        F: FnOnce(S, S) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut current = self.current.lock().await;
        let from = *current;
        if !from.allows(to) {
            return Err(TransitionError::NotAllowed {
                from: from.name(),
                to: to.name(),
            });
        }
        let announced = announce(from, to)
            .await
            .map_err(TransitionError::NotAnnounced)?;
        *current = to;
        Ok(announced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Light {
        Off,
        On,
        Broken,
    }

    impl States for Light {
        const INITIAL: Self = Light::Off;

        fn allows(self, to: Self) -> bool {
            matches!(
                (self, to),
                (Light::Off, Light::On) | (Light::On, Light::Off) | (_, Light::Broken)
            )
        }

        fn name(self) -> &'static str {
            match self {
                Light::Off => "off",
                Light::On => "on",
                Light::Broken => "broken",
            }
        }
    }

    #[tokio::test]
    async fn allowed_transitions_are_announced_then_taken() {
        let machine = StateMachine::<Light>::new();
        assert_eq!(machine.current().await, Light::Off);
        let announced = machine
            .transition(Light::On, |from, to| async move {
                Ok::<_, String>(format!("{} -> {}", from.name(), to.name()))
            })
            .await
            .expect("allowed");
        assert_eq!(announced, "off -> on");
        assert_eq!(machine.current().await, Light::On);
    }

    #[tokio::test]
    async fn a_transition_outside_the_table_is_refused_and_not_announced() {
        let machine = StateMachine::<Light>::new();
        machine
            .transition(Light::Broken, |_, _| async { Ok::<_, String>(()) })
            .await
            .expect("allowed");
        let refused = machine
            .transition(Light::On, |_, _| async {
                panic!("a refused transition is not announced");
                #[allow(unreachable_code)]
                Ok::<(), String>(())
            })
            .await
            .expect_err("broken stays broken");
        assert_eq!(
            refused.to_string(),
            "the state machine does not allow moving from `broken` to `on`"
        );
        assert_eq!(machine.current().await, Light::Broken);
    }

    #[tokio::test]
    async fn a_transition_that_cannot_be_announced_does_not_happen() {
        let machine = StateMachine::<Light>::new();
        let error = machine
            .transition(Light::On, |_, _| async { Err::<(), _>("bus down") })
            .await
            .expect_err("not announced");
        assert!(matches!(error, TransitionError::NotAnnounced("bus down")));
        assert_eq!(machine.current().await, Light::Off);
    }
}
