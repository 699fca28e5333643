//! What every generated node needs to run an operation, once: the error an
//! operation fails with, and the run that publishes its started event, calls
//! the business logic, then publishes its completed or failed event.
//!
//! Generated node crates re-export [`OperationError`] at their root and call
//! [`run_operation`] from each operation method; only the events differ per
//! operation.

use std::{fmt, future::Future, time::Instant};

use uuid::Uuid;

use crate::{BusError, Event, Publisher};

/// Why an operation failed: published as the failed event's `error_type`
/// and `error_message`. `?` turns any error into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationError {
    /// A short classification, e.g. `timeout` or `invalid_input`.
    pub kind: String,
    /// What went wrong.
    pub message: String,
}

impl OperationError {
    /// An error of a kind with a message.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        OperationError {
            kind: kind.into(),
            message: message.into(),
        }
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
        OperationError { kind, message }
    }
}

/// Runs one operation: publishes `started`, runs `work`, then publishes
/// what `completed` (given the execution time in milliseconds) or `failed`
/// (given the time and the error) makes of the outcome. Publishing never
/// fails the operation: a bus error is logged ([`log_publish`]).
pub async fn run_operation<O, Work, Started, Completed, Failed>(
    publisher: &Publisher,
    correlation_id: Uuid,
    started: Started,
    work: impl FnOnce() -> Work,
    completed: impl FnOnce(f64) -> Completed,
    failed: impl FnOnce(f64, &OperationError) -> Failed,
) -> Result<O, OperationError>
where
    Work: Future<Output = Result<O, OperationError>>,
    Started: Event,
    Completed: Event,
    Failed: Event,
{
    let clock = Instant::now();
    let correlation = Some(correlation_id);
    log_publish(publisher.publish(&started, correlation).await);
    match work().await {
        Ok(output) => {
            log_publish(
                publisher
                    .publish(&completed(elapsed_ms(clock)), correlation)
                    .await,
            );
            Ok(output)
        }
        Err(error) => {
            log_publish(
                publisher
                    .publish(&failed(elapsed_ms(clock), &error), correlation)
                    .await,
            );
            Err(error)
        }
    }
}

/// Milliseconds since `clock`, as the lifecycle events carry them.
pub fn elapsed_ms(clock: Instant) -> f64 {
    clock.elapsed().as_secs_f64() * 1000.0
}

/// Logs a failed publish at warn level; the operation goes on (graceful
/// degradation: the node keeps working while the bus is down).
pub fn log_publish(result: Result<Uuid, BusError>) {
    if let Err(error) = result {
        tracing::warn!(%error, "could not publish an event");
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
    fn not_implemented_names_the_operation() {
        let error = OperationError::not_implemented("persist");
        assert_eq!(error.kind, "not_implemented");
        assert!(error.message.contains("`persist`"), "{}", error.message);
    }
}
