//! A node's exchanges with other nodes: it sends one of their commands and
//! waits for the completed or failed event that answers it, matched by
//! correlation id. An orchestrator's workflow step performed by another
//! node is one (`send:` in the contract's step); a request of the contract
//! (`requests:`) is another.
//!
//! An [`Exchange<R, F>`] starts its [`Requester`] on first use (or when the
//! node initializes), under a subscription name of its own made of the
//! node's service and the exchange, and gives up when the node shuts down
//! ([`NodeRuntime::stopping`]).

use std::time::Duration;

use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::{
    BusError, Event,
    lifecycle::NodeRuntime,
    operation::{Failure, OperationError},
    request::{RequestError, Requester},
};

/// The kind of the error of an exchange that got no answer in time.
pub const TIMEOUT: &str = "timeout";

/// One exchange of a node: its requester, started once.
pub struct Exchange<R, F> {
    name: &'static str,
    requester: OnceCell<Requester<R, F>>,
}

impl<R, F> std::fmt::Debug for Exchange<R, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("name", &self.name)
            .field("started", &self.requester.initialized())
            .finish_non_exhaustive()
    }
}

impl<R: Event, F: Event> Exchange<R, F> {
    /// An exchange, not started yet; `name` names its subscription.
    pub const fn new(name: &'static str) -> Self {
        Exchange {
            name,
            requester: OnceCell::const_new(),
        }
    }

    /// Starts the requester unless it runs already: subscribed to `R` and
    /// `F` as `{service}.{name}.replies.{uuid}`
    /// ([`Requester::start`]).
    pub async fn start(&self, runtime: &NodeRuntime) -> Result<&Requester<R, F>, BusError> {
        self.requester
            .get_or_try_init(|| {
                let group = format!("{}.{}", runtime.source().service, self.name);
                Requester::start(runtime.publisher().clone(), group)
            })
            .await
    }

    /// Sends `command` with `correlation_id` and waits up to `timeout` for
    /// its answer; gives up with [`RequestError::Stopped`] when the node
    /// begins to shut down.
    pub async fn request<C: Event>(
        &self,
        runtime: &NodeRuntime,
        command: &C,
        correlation_id: Uuid,
        timeout: Duration,
    ) -> Result<R, RequestError<F>> {
        let requester = self
            .start(runtime)
            .await
            .map_err(|source| RequestError::Bus {
                source,
                correlation_id,
            })?;
        let pending = requester.send(command, correlation_id).await?;
        tokio::select! {
            outcome = pending.wait(timeout) => outcome,
            () = runtime.stopping() => Err(RequestError::Stopped { correlation_id }),
        }
    }

    /// [`Exchange::request`] as a step of a run: the failed event becomes
    /// the error it reports, and every other ending an [`OperationError`]
    /// that says what to check ([`step_error`]).
    pub async fn perform<C: Event>(
        &self,
        runtime: &NodeRuntime,
        command: &C,
        correlation_id: Uuid,
        timeout: Duration,
    ) -> Result<R, OperationError>
    where
        F: Failure,
    {
        self.request(runtime, command, correlation_id, timeout)
            .await
            .map_err(|error| step_error::<C, R, F>(runtime, error))
    }

    /// Ends the subscription; waiting requests end with
    /// [`RequestError::Stopped`].
    pub async fn stop(&self) {
        if let Some(requester) = self.requester.get() {
            requester.stop().await;
        }
    }
}

/// What a run makes of an exchange that did not end with `R`:
/// - the failed event `F`: the error it reports ([`Failure::error`]);
/// - no answer in time: a [`TIMEOUT`] error that names the command and its
///   topic, suggesting to check the node that handles it;
/// - the command not sent: [`OperationError::OUTCOME_NOT_DELIVERED`], and
///   the node shutting down: [`OperationError::INTERRUPTED`], so that the
///   run's own command is delivered again;
/// - an answer that does not decode: `undecodable_reply`.
pub fn step_error<C: Event, R: Event, F: Event + Failure>(
    runtime: &NodeRuntime,
    error: RequestError<F>,
) -> OperationError {
    match error {
        RequestError::Failed { failure, .. } => failure.error(),
        RequestError::Timeout { after, .. } => {
            let topic = runtime.publisher().topic_of::<C>();
            OperationError::new(
                TIMEOUT,
                format!(
                    "no `{}` or `{}` answered `{}` within {} s",
                    R::EVENT_TYPE,
                    F::EVENT_TYPE,
                    C::EVENT_TYPE,
                    after.as_secs_f64()
                ),
            )
            .with_suggestion(format!(
                "check that the node that handles `{}` is running and consumes `{topic}`",
                C::EVENT_TYPE
            ))
            .with_suggestion("send the request again once it runs: the steps are idempotent")
        }
        RequestError::Bus { source, .. } => OperationError::new(
            OperationError::OUTCOME_NOT_DELIVERED,
            format!("`{}` was not sent: {source}", C::EVENT_TYPE),
        ),
        RequestError::Stopped { .. } => OperationError::new(
            OperationError::INTERRUPTED,
            format!(
                "the node is shutting down while waiting for the answer to `{}`",
                C::EVENT_TYPE
            ),
        ),
        RequestError::Undecodable { source, .. } => {
            OperationError::new("undecodable_reply", source.to_string())
        }
        RequestError::AlreadyWaiting { correlation_id } => OperationError::new(
            "already_running",
            format!(
                "a run with correlation id {correlation_id} is already waiting for `{}`",
                R::EVENT_TYPE
            ),
        ),
    }
}
