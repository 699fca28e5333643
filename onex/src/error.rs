//! Error types of the runtime.

use thiserror::Error;

/// Why an envelope or payload could not be decoded.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The bytes were not a valid envelope.
    #[error("invalid envelope JSON: {0}")]
    Envelope(#[source] serde_json::Error),
    /// The envelope's event type is not one this decoder knows.
    #[error("unknown event type `{event_type}` (expected one of: {expected})")]
    UnknownEventType {
        /// The event type found in the envelope.
        event_type: String,
        /// The event types this decoder accepts, comma-separated.
        expected: String,
    },
    /// The payload did not match the event's schema.
    #[error("payload of `{event_type}` does not match its schema: {source}")]
    Payload {
        /// The event type whose payload failed.
        event_type: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

/// An error from an event bus.
#[derive(Debug, Error)]
pub enum BusError {
    /// The payload could not be serialized.
    #[error("could not serialize event `{event_type}`: {source}")]
    Serialize {
        /// The event type being serialized.
        event_type: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The circuit breaker is open: the call was not attempted.
    #[error("circuit breaker open for {target}; retry after the reset timeout")]
    CircuitOpen {
        /// What the breaker protects (a topic, a subscriber).
        target: String,
    },
    /// The broker did not accept the message after all retries.
    #[error("delivery to `{topic}` failed after {attempts} attempt(s): {reason}")]
    Delivery {
        /// The topic the message was for.
        topic: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        reason: String,
    },
    /// The broker cannot be reached; the node runs degraded.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// The bounded buffer for publishing while degraded is full.
    #[error("publish buffer full ({capacity} messages); the message was not accepted")]
    BufferFull {
        /// The buffer's capacity.
        capacity: usize,
    },
    /// The bus was shut down.
    #[error("event bus is shut down")]
    Shutdown,
    /// Messages the bus accepted could not be delivered (the broker stayed
    /// unreachable past the timeout). The Kafka bus keeps them for
    /// `KafkaBus::take_undelivered`.
    #[error("{count} accepted message(s) could not be delivered within the timeout")]
    Undelivered {
        /// How many messages.
        count: usize,
    },
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] crate::error::ConfigError),
    /// The durable spool could not be opened or written.
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// The full topic is longer than Kafka allows; nothing was sent.
    #[error(transparent)]
    TopicTooLong(#[from] crate::topic::TopicTooLong),
    /// Any other broker or client error.
    #[error("{0}")]
    Other(String),
}

/// A configuration value that is missing or out of range.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{name}={value:?} is invalid: {reason} (allowed: {allowed})")]
pub struct ConfigError {
    /// The setting, e.g. `KAFKA_TIMEOUT_SECONDS`.
    pub name: String,
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
    /// The allowed values or range.
    pub allowed: String,
}

/// Why a configuration file could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key or a value of the wrong
    /// type.
    #[error("{origin}: {message}")]
    Parse {
        /// The file, or a description of the text.
        origin: String,
        /// Line of the problem (1-based), when known.
        line: Option<usize>,
        /// Column of the problem (1-based), when known.
        column: Option<usize>,
        /// What is wrong, with its location.
        message: String,
    },
    /// A value is out of its allowed range.
    #[error("{origin}: {source}")]
    Invalid {
        /// The file, or a description of the text.
        origin: String,
        /// The invalid setting.
        #[source]
        source: ConfigError,
    },
}
