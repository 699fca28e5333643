//! What every generated node needs to run an operation, once: the error an
//! operation fails with, and the run that publishes its started event, calls
//! the business logic, then publishes its completed or failed event.
//!
//! A run succeeds only when its events are durable ([`Delivery::is_durable`]):
//! when one is not, the run fails with [`OperationError::OUTCOME_NOT_DELIVERED`],
//! and a node then leaves the command that asked for it uncommitted, so that
//! it is delivered again rather than lost.
//!
//! Generated node crates re-export [`OperationError`] at their root and call
//! [`run_operation`] from each operation method; only the events differ per
//! operation.

use std::{fmt, future::Future, time::Instant};

use futures_util::FutureExt as _;
use uuid::Uuid;

use crate::{BusError, Event, Publisher, publisher::Published};

/// Why an operation failed: published as the failed event's `error_type`
/// and `error_message`. `?` turns any error into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationError {
    /// A short classification, e.g. `timeout` or `invalid_input`.
    pub kind: String,
    /// What went wrong.
    pub message: String,
    /// What the caller may do about it, each a sentence a person can act
    /// on; published as the failed event's `recovery_suggestions`.
    pub suggestions: Vec<String>,
}

impl OperationError {
    /// The kind of the error of a run whose started, completed or failed
    /// event did not become durable (the bus refused it, or kept it in
    /// memory only). Not the business logic's failure: the node does not
    /// commit the command, which is delivered again.
    pub const OUTCOME_NOT_DELIVERED: &'static str = "outcome_not_delivered";

    /// The kind of the error of a run cut short because its node is
    /// shutting down (a workflow step waiting for another node, say). Like
    /// [`OperationError::OUTCOME_NOT_DELIVERED`], not the business logic's
    /// failure: the command stays uncommitted and the run starts again on
    /// the next start of the node (or another replica).
    pub const INTERRUPTED: &'static str = "interrupted";

    /// Whether this is the error of a run whose events were not delivered
    /// ([`OperationError::OUTCOME_NOT_DELIVERED`]).
    pub fn is_outcome_not_delivered(&self) -> bool {
        self.kind == Self::OUTCOME_NOT_DELIVERED
    }

    /// Whether the run must be done again rather than reported as failed:
    /// its events were not delivered, or its node interrupted it
    /// ([`OperationError::INTERRUPTED`]).
    pub fn is_retried(&self) -> bool {
        self.kind == Self::OUTCOME_NOT_DELIVERED || self.kind == Self::INTERRUPTED
    }

    /// An error of a kind with a message.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        OperationError {
            kind: kind.into(),
            message: message.into(),
            suggestions: Vec::new(),
        }
    }

    /// The error with one more recovery suggestion.
    #[must_use]
    pub fn with_suggestion(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestions.push(suggestion.into());
        self
    }

    /// The error of an operation whose business logic is not written yet.
    pub fn not_implemented(operation: &str) -> Self {
        OperationError::new(
            "not_implemented",
            format!(
                "the `{operation}` operation has no business logic yet: write it in src/handler.rs"
            ),
        )
    }
}

impl fmt::Display for OperationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// Any error, with its chain of sources in the message and the last segment
/// of its type name as the kind. `OperationError` itself is not an
/// `std::error::Error`, which keeps this blanket conversion coherent.
impl<E: std::error::Error> From<E> for OperationError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        let kind = std::any::type_name::<E>()
            .rsplit("::")
            .next()
            .unwrap_or("error")
            .to_owned();
        OperationError {
            kind,
            message,
            suggestions: Vec::new(),
        }
    }
}

/// A failed event that reports an [`OperationError`]: every failed event
/// the generator derives (an operation's, a workflow step's, a workflow's)
/// carries `error_type`, `error_message` and `recovery_suggestions`. A node
/// that waits for another node's failed event turns it back into the error
/// it reports.
pub trait Failure {
    /// The error the event reports.
    fn error(&self) -> OperationError;
}

/// Runs one operation: publishes `started`, runs `work`, then publishes
/// what `completed` (given the execution time in milliseconds and the
/// output) or `failed` (given the time and the error) makes of the outcome.
///
/// `started` is handed to the bus before the business logic runs, and the
/// logic runs while the broker acknowledges it: waiting for that
/// acknowledgement first would add a round trip to the broker to every
/// command. The run returns the logic's result only once `started` and
/// `completed` (or `failed`) are both durable; otherwise it fails with
/// [`OperationError::OUTCOME_NOT_DELIVERED`], naming the event and why, and
/// the command stays uncommitted and comes again. So the logic may run for
/// a command whose started event never became durable: the same as a run
/// cut short by a crash, which at-least-once delivery repeats anyway.
///
/// A run started through [`handing_back_key`] (a node's dispatch of a
/// command to its operation) hands the command's key back to its consumer
/// once the outcome event is handed to the bus: the key's next command may
/// start while this run awaits the acknowledgements. Its events go out
/// behind this run's, in order; the command is committed only once this
/// run returns.
pub async fn run_operation<O, Work, Started, Completed, Failed>(
    publisher: &Publisher,
    correlation_id: Uuid,
    started: Started,
    work: impl FnOnce() -> Work,
    completed: impl FnOnce(f64, &O) -> Completed,
    failed: impl FnOnce(f64, &OperationError) -> Failed,
) -> Result<O, OperationError>
where
    Work: Future<Output = Result<O, OperationError>>,
    Started: Event,
    Completed: Event,
    Failed: Event,
{
    let clock = Instant::now();
    let hands_back_key = crate::consume::take_key_release();
    let mut started_delivery = std::pin::pin!(publisher.publish(&started, Some(correlation_id)));
    // Polled once, which hands the event to the bus (librdkafka's queue, or
    // the in-memory bus's subscribers), so that it goes out before the
    // outcome event; its acknowledgement is awaited after the logic.
    let started_early = started_delivery.as_mut().now_or_never();
    let outcome = work().await;
    let ended = {
        let mut ended = std::pin::pin!(async {
            match &outcome {
                Ok(output) => {
                    let event = completed(elapsed_ms(clock), output);
                    publish_durable(publisher, &event, correlation_id).await
                }
                Err(error) => {
                    let event = failed(elapsed_ms(clock), error);
                    publish_durable(publisher, &event, correlation_id).await
                }
            }
        });
        // Polled once, which hands the outcome event to the bus behind the
        // started event; the command's key is then free for its next
        // command, whose events go out behind these, while this run awaits
        // their acknowledgements.
        let ended_early = ended.as_mut().now_or_never();
        if hands_back_key {
            crate::consume::release_key();
        }
        match ended_early {
            Some(result) => result,
            None => ended.await,
        }
    };
    let started_result = match started_early {
        Some(result) => result,
        None => started_delivery.await,
    };
    // The started event's fate first: it was sent first.
    require_durable::<Started>(started_result)?;
    ended?;
    outcome
}

/// Runs `run`, an operation that is the whole handling of a consumed
/// message, so that the operation hands the message's key back to its
/// consumer once its outcome event is handed to the bus
/// ([`run_operation`]). An operation run from within another (a handler
/// calling another operation, a workflow's step) keeps the key until the
/// outer handling is done.
pub async fn handing_back_key<F: Future>(run: F) -> F::Output {
    crate::consume::arm_key_release();
    run.await
}

/// Publishes an event a run depends on: `Ok` once it is durable, else the
/// [`OperationError::OUTCOME_NOT_DELIVERED`] error ([`require_durable`]).
pub async fn publish_durable<E: Event>(
    publisher: &Publisher,
    event: &E,
    correlation_id: Uuid,
) -> Result<Published, OperationError> {
    require_durable::<E>(publisher.publish(event, Some(correlation_id)).await)
}

/// What a node's dispatch makes of a run that a consumed message asked
/// for: a run that completed or failed in its business logic was reported
/// by its events, so the message is done (`Ok`; a failure is logged); a run
/// whose events were not delivered leaves the message uncommitted (`Err`),
/// so that the bus delivers it again.
pub fn settle<O>(what: &str, result: Result<O, OperationError>) -> Result<(), crate::HandlerError> {
    match result {
        Ok(_) => Ok(()),
        Err(error) if error.is_retried() => {
            tracing::warn!(%error, what, "not finished; the message stays uncommitted");
            Err(crate::HandlerError::new(error.kind, error.message))
        }
        Err(error) => {
            tracing::warn!(%error, what, "failed");
            Ok(())
        }
    }
}

/// The outcome of publishing an event `E` a run depends on: `Ok` when it is
/// durable, else the [`OperationError::OUTCOME_NOT_DELIVERED`] error that
/// says which event and why.
pub fn require_durable<E: Event>(
    result: Result<Published, BusError>,
) -> Result<Published, OperationError> {
    let reason = match result {
        Ok(published) if published.delivery.is_durable() => return Ok(published),
        Ok(published) => format!(
            "it was only {} (the broker is unreachable and there is no spool: \
             KAFKA_SPOOL_DIR=off)",
            published.delivery
        ),
        Err(error) => error.to_string(),
    };
    Err(OperationError::new(
        OperationError::OUTCOME_NOT_DELIVERED,
        format!("`{}` was not delivered: {reason}", E::EVENT_TYPE),
    ))
}

/// A field-name to type-name summary, as the `input_summary` and
/// `result_summary` of the operation events carry it.
pub fn summary(entries: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    entries
        .iter()
        .map(|(field, ty)| ((*field).to_owned(), (*ty).to_owned()))
        .collect()
}

/// Milliseconds since `clock`, as the lifecycle events carry them.
pub fn elapsed_ms(clock: Instant) -> f64 {
    clock.elapsed().as_secs_f64() * 1000.0
}

/// Logs a publish that failed or was only buffered in memory, at warn
/// level, for events nothing waits on (a node's state updates, say); the
/// node goes on.
pub fn log_publish(result: Result<Published, BusError>) {
    match result {
        Ok(published) if published.delivery.is_durable() => {}
        Ok(published) => {
            tracing::warn!(event_id = %published.event_id, "event only {}", published.delivery)
        }
        Err(error) => tracing::warn!(%error, "could not publish an event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("writing the record")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn any_error_converts_with_its_sources_and_type_name() {
        let error: OperationError = Outer(std::io::Error::other("disk full")).into();
        assert_eq!(error.kind, "Outer");
        assert_eq!(error.message, "writing the record: disk full");
        assert_eq!(error.to_string(), "Outer: writing the record: disk full");
    }

    #[test]
    fn settle_keeps_only_undelivered_runs_uncommitted() {
        assert!(settle("op", Ok::<_, OperationError>(1)).is_ok());
        assert!(settle::<()>("op", Err(OperationError::new("invalid_input", "no"))).is_ok());
        let undelivered = OperationError::new(OperationError::OUTCOME_NOT_DELIVERED, "spool full");
        let error = settle::<()>("op", Err(undelivered)).expect_err("stays uncommitted");
        assert_eq!(error.kind, OperationError::OUTCOME_NOT_DELIVERED);
    }

    #[test]
    fn not_implemented_names_the_operation() {
        let error = OperationError::not_implemented("persist");
        assert_eq!(error.kind, "not_implemented");
        assert!(error.message.contains("`persist`"), "{}", error.message);
    }
}
