//! Declarative macros for what every generated events module repeats per
//! event: its identity ([`impl_event!`](crate::impl_event)), the node's
//! event enum's decoding, names, topics and conversions
//! ([`impl_event_set!`](crate::impl_event_set)), and turning a failed event
//! back into its error ([`impl_failure!`](crate::impl_failure)).
//! They live here once, so that a module holds one line per event instead
//! of a dozen, and the compiler sees the same code.

/// Implements, for a node's event enum (one variant per event type, each
/// holding its typed event): [`EventSet`](crate::EventSet), which decodes an
/// envelope into the variant its event type names (its `EVENT_TYPES` is the
/// `EVENT_TYPES` constant in scope, every event type in variant order);
/// `topic()` and `category()`; and `From` for each event type.
///
/// ```
/// # use onex::{Event, EventSet, MessageCategory};
/// # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// # pub struct Pinged { pub n: u32 }
/// # impl Event for Pinged {
/// #     const EVENT_TYPE: &'static str = "effect.pinged";
/// #     const EVENT_VERSION: &'static str = "1.0";
/// #     const CATEGORY: MessageCategory = MessageCategory::Event;
/// #     const TOPIC: &'static str = "ping.effect.pinged.v1";
/// # }
/// /// Every event type of the `ping` node.
/// pub const EVENT_TYPES: &[&str] = &[<Pinged as Event>::EVENT_TYPE];
///
/// /// Every event of the `ping` node.
/// #[derive(Debug, Clone, PartialEq)]
/// pub enum PingEvent {
///     /// A ping.
///     Pinged(Pinged),
/// }
///
/// onex::impl_event_set!(PingEvent { Pinged(Pinged) });
///
/// let event = PingEvent::from(Pinged { n: 1 });
/// assert_eq!(event.topic(), "ping.effect.pinged.v1");
/// assert_eq!(event.event_type(), "effect.pinged");
/// ```
#[macro_export]
macro_rules! impl_event_set {
    ($name:ident { $($variant:ident($event:ty)),* $(,)? }) => {
        impl $crate::EventSet for $name {
            const EVENT_TYPES: &'static [&'static str] = EVENT_TYPES;

            fn decode(
                envelope: &$crate::OnexEnvelopeV1,
            ) -> ::std::result::Result<Self, $crate::DecodeError> {
                $(
                    if envelope.event_type == <$event as $crate::Event>::EVENT_TYPE {
                        return $crate::Event::from_envelope(envelope).map(Self::$variant);
                    }
                )*
                ::std::result::Result::Err($crate::DecodeError::UnknownEventType {
                    event_type: ::std::borrow::ToOwned::to_owned(envelope.event_type.as_str()),
                    expected: EVENT_TYPES.join(", "),
                })
            }

            fn event_type(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => <$event as $crate::Event>::EVENT_TYPE, )*
                }
            }
        }

        impl $name {
            /// The namespace-free topic of this event.
            pub fn topic(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => <$event as $crate::Event>::TOPIC, )*
                }
            }

            /// Whether this is an event, a command or an intent.
            pub fn category(&self) -> $crate::MessageCategory {
                match self {
                    $( Self::$variant(_) => <$event as $crate::Event>::CATEGORY, )*
                }
            }
        }

        $(
            impl ::std::convert::From<$event> for $name {
                fn from(event: $event) -> Self {
                    Self::$variant(event)
                }
            }
        )*
    };
}

/// Implements [`Event`](crate::Event) for a payload type: its event type,
/// schema version, category (`Event`, `Command` or `Intent`) and
/// namespace-free topic.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// pub struct Pinged {
///     pub n: u32,
/// }
/// onex::impl_event!(Pinged, "effect.pinged", "1.0", Event, "ping.effect.pinged.v1");
/// assert_eq!(<Pinged as onex::Event>::TOPIC, "ping.effect.pinged.v1");
/// ```
#[macro_export]
macro_rules! impl_event {
    ($event:ty, $event_type:expr, $version:expr, $category:ident, $topic:expr $(,)?) => {
        impl $crate::Event for $event {
            const EVENT_TYPE: &'static str = $event_type;
            const EVENT_VERSION: &'static str = $version;
            const CATEGORY: $crate::MessageCategory = $crate::MessageCategory::$category;
            const TOPIC: &'static str = $topic;
        }
    };
}

/// Implements [`Failure`](crate::operation::Failure) for a failed event
/// that carries `error_type`, `error_message` and `recovery_suggestions`,
/// as every failed event the generator derives does.
#[macro_export]
macro_rules! impl_failure {
    ($($event:ty),* $(,)?) => {
        $(
            impl $crate::operation::Failure for $event {
                fn error(&self) -> $crate::OperationError {
                    let mut error = $crate::OperationError::new(
                        ::std::clone::Clone::clone(&self.error_type),
                        ::std::clone::Clone::clone(&self.error_message),
                    );
                    error.suggestions = ::std::clone::Clone::clone(&self.recovery_suggestions);
                    error
                }
            }
        )*
    };
}

/// Defines the `{Op}Started` event of an operation, as the generator
/// derives it: the struct with its fields, its `new` constructor, its
/// [`Event`](crate::Event) impl and its JSON form (serialized through
/// the shape `onex` defines once, not a serde derive per event). The
/// arguments: the struct's attributes and name, its event type, version
/// and topic, the operation's name and the summary of its input (field
/// name, type name).
#[macro_export]
macro_rules! operation_started {
    ($(#[$attr:meta])* $name:ident($event_type:expr, $version:expr, $topic:expr), $operation:tt, [$(($field:tt, $ty:tt)),* $(,)?] $(,)?) => {
        #[derive(Debug, Clone, PartialEq, Eq)]
        $(#[$attr])*
        pub struct $name {
            /// The operation's name.
            pub operation: ::std::string::String,
            /// Correlates the events of one request.
            pub correlation_id: $crate::uuid::Uuid,
            /// The publishing node's id.
            pub node_id: $crate::uuid::Uuid,
            /// When the operation started (UTC).
            pub started_at: $crate::chrono::DateTime<$crate::chrono::Utc>,
            /// The input's field names and their types (never the values).
            pub input_summary: ::std::collections::BTreeMap<::std::string::String, ::std::string::String>,
            /// Extra observability metadata.
            pub metadata: ::std::option::Option<$crate::serde_json::Value>,
        }

        $crate::__serde_via!($name, operation_started, [operation, correlation_id, node_id, started_at, input_summary, metadata]);

        $crate::impl_event!($name, $event_type, $version, Event, $topic);

        impl $name {
            #[doc = concat!("The event for a `", $operation, "` call starting now, with the summary of its input.")]
            pub fn new(node_id: $crate::uuid::Uuid, correlation_id: $crate::uuid::Uuid) -> Self {
                Self {
                    operation: ::std::borrow::ToOwned::to_owned($operation),
                    correlation_id,
                    node_id,
                    started_at: $crate::chrono::Utc::now(),
                    input_summary: $crate::operation::summary(&[$(($field, $ty)),*]),
                    metadata: ::std::option::Option::None,
                }
            }
        }
    };
}

/// Defines the `{Op}Completed` event of an operation, as the generator
/// derives it (see [`operation_started!`]); beside the summary of the
/// output it takes the output's type and the fields of the output that the
/// published result leaves `None` (its summary-only fields).
#[macro_export]
macro_rules! operation_completed {
    ($(#[$attr:meta])* $name:ident($event_type:expr, $version:expr, $topic:expr), $operation:tt, $output:ty, [$(($field:tt, $ty:tt)),* $(,)?], [$($summary_only:ident),* $(,)?] $(,)?) => {
        #[derive(Debug, Clone, PartialEq)]
        $(#[$attr])*
        pub struct $name {
            /// The operation's name.
            pub operation: ::std::string::String,
            /// Correlates the events of one request.
            pub correlation_id: $crate::uuid::Uuid,
            /// The publishing node's id.
            pub node_id: $crate::uuid::Uuid,
            /// When the operation completed (UTC).
            pub completed_at: $crate::chrono::DateTime<$crate::chrono::Utc>,
            /// How long the operation ran, in milliseconds.
            pub execution_time_ms: f64,
            /// The result's field names and their types.
            pub result_summary: ::std::collections::BTreeMap<::std::string::String, ::std::string::String>,
            /// The operation's result; its summary-only fields are `None` (their types are in `result_summary`).
            pub result: $output,
            /// Always `true` for a completed operation.
            pub success: bool,
            /// Extra observability metadata.
            pub metadata: ::std::option::Option<$crate::serde_json::Value>,
        }

        $crate::__serde_via!($name, operation_completed, [operation, correlation_id, node_id, completed_at, execution_time_ms, result_summary, result, success, metadata]);

        $crate::impl_event!($name, $event_type, $version, Event, $topic);

        impl $name {
            #[doc = concat!("The event for a `", $operation, "` call that succeeded now, with its result (its summary-only fields, if any, left `None`) and the summary of its fields.")]
            pub fn new(node_id: $crate::uuid::Uuid, correlation_id: $crate::uuid::Uuid, execution_time_ms: f64, result: &$output) -> Self {
                #[allow(unused_mut)]
                let mut result = ::std::clone::Clone::clone(result);
                $(result.$summary_only = ::std::option::Option::None;)*
                Self {
                    operation: ::std::borrow::ToOwned::to_owned($operation),
                    correlation_id,
                    node_id,
                    completed_at: $crate::chrono::Utc::now(),
                    execution_time_ms,
                    result_summary: $crate::operation::summary(&[$(($field, $ty)),*]),
                    result,
                    success: true,
                    metadata: ::std::option::Option::None,
                }
            }
        }
    };
}

/// Defines the `{Op}Failed` event of an operation, as the generator
/// derives it (see [`operation_started!`]), with its
/// [`Failure`](crate::operation::Failure) impl.
#[macro_export]
macro_rules! operation_failed {
    ($(#[$attr:meta])* $name:ident($event_type:expr, $version:expr, $topic:expr), $operation:tt $(,)?) => {
        #[derive(Debug, Clone, PartialEq)]
        $(#[$attr])*
        pub struct $name {
            /// The operation's name.
            pub operation: ::std::string::String,
            /// Correlates the events of one request.
            pub correlation_id: $crate::uuid::Uuid,
            /// The publishing node's id.
            pub node_id: $crate::uuid::Uuid,
            /// When the operation failed (UTC).
            pub failed_at: $crate::chrono::DateTime<$crate::chrono::Utc>,
            /// How long the operation ran, in milliseconds.
            pub execution_time_ms: f64,
            /// What went wrong.
            pub error_message: ::std::string::String,
            /// The kind of error, e.g. `timeout`.
            pub error_type: ::std::string::String,
            /// What the caller may do about the error, each a sentence a person can act on.
            pub recovery_suggestions: ::std::vec::Vec<::std::string::String>,
            /// Structured details of the error.
            pub error_details: ::std::option::Option<$crate::serde_json::Value>,
            /// Extra observability metadata.
            pub metadata: ::std::option::Option<$crate::serde_json::Value>,
        }

        $crate::__serde_via!($name, operation_failed, [operation, correlation_id, node_id, failed_at, execution_time_ms, error_message, error_type, recovery_suggestions, error_details, metadata]);

        $crate::impl_event!($name, $event_type, $version, Event, $topic);
        $crate::impl_failure!($name);

        impl $name {
            #[doc = concat!("The event for a `", $operation, "` call that failed now.")]
            pub fn new(node_id: $crate::uuid::Uuid, correlation_id: $crate::uuid::Uuid, execution_time_ms: f64, error: &$crate::OperationError) -> Self {
                Self {
                    operation: ::std::borrow::ToOwned::to_owned($operation),
                    correlation_id,
                    node_id,
                    failed_at: $crate::chrono::Utc::now(),
                    execution_time_ms,
                    error_message: ::std::clone::Clone::clone(&error.message),
                    error_type: ::std::clone::Clone::clone(&error.kind),
                    recovery_suggestions: ::std::clone::Clone::clone(&error.suggestions),
                    error_details: ::std::option::Option::None,
                    metadata: ::std::option::Option::None,
                }
            }
        }
    };
}

/// Defines a node's `StateChanged` event, as the generator derives it: the
/// struct with its fields, its [`Event`](crate::Event) impl and its JSON
/// form (see [`operation_started!`]). The arguments: the struct's
/// attributes and name, its event type, version and topic.
#[macro_export]
macro_rules! state_changed {
    ($(#[$attr:meta])* $name:ident($event_type:expr, $version:expr, $topic:expr) $(,)?) => {
        #[derive(Debug, Clone, PartialEq, Eq)]
        $(#[$attr])*
        pub struct $name {
            /// The publishing node's id.
            pub node_id: $crate::uuid::Uuid,
            /// The node type, e.g. `effect`.
            pub node_type: ::std::string::String,
            /// Correlates the events of one request.
            pub correlation_id: $crate::uuid::Uuid,
            /// When the state changed (UTC).
            pub changed_at: $crate::chrono::DateTime<$crate::chrono::Utc>,
            /// The previous state.
            pub old_state: ::std::string::String,
            /// The new state.
            pub new_state: ::std::string::String,
            /// Why the state changed.
            pub transition_reason: ::std::string::String,
            /// Extra observability metadata.
            pub metadata: ::std::option::Option<$crate::serde_json::Value>,
        }

        $crate::__serde_via!($name, state_changed, [node_id, node_type, correlation_id, changed_at, old_state, new_state, transition_reason, metadata]);

        $crate::impl_event!($name, $event_type, $version, Event, $topic);
    };
}

/// Defines a node's `MetricRecorded` event, as the generator derives it
/// (see [`state_changed!`]).
#[macro_export]
macro_rules! metric_recorded {
    ($(#[$attr:meta])* $name:ident($event_type:expr, $version:expr, $topic:expr) $(,)?) => {
        #[derive(Debug, Clone, PartialEq)]
        $(#[$attr])*
        pub struct $name {
            /// The publishing node's id.
            pub node_id: $crate::uuid::Uuid,
            /// The node type, e.g. `effect`.
            pub node_type: ::std::string::String,
            /// Correlates the events of one request.
            pub correlation_id: $crate::uuid::Uuid,
            /// When the metric was recorded (UTC).
            pub recorded_at: $crate::chrono::DateTime<$crate::chrono::Utc>,
            /// The metric's name, e.g. `rows_written`.
            pub metric_name: ::std::string::String,
            /// The measured value.
            pub value: f64,
            /// The unit, e.g. `ms`.
            pub unit: ::std::option::Option<::std::string::String>,
            /// Dimensions of the measurement.
            pub tags: ::std::collections::BTreeMap<::std::string::String, ::std::string::String>,
        }

        $crate::__serde_via!($name, metric_recorded, [node_id, node_type, correlation_id, recorded_at, metric_name, value, unit, tags]);

        $crate::impl_event!($name, $event_type, $version, Event, $topic);
    };
}

/// Defines a workflow step's `{Step}StepStarted` event, as the generator derives it (see [`state_changed!`]).
#[macro_export]
macro_rules! step_started {
    ($(#[$attr:meta])* $name:ident($event_type:expr, $version:expr, $topic:expr) $(,)?) => {
        #[derive(Debug, Clone, PartialEq, Eq)]
        $(#[$attr])*
        pub struct $name {
            /// The workflow run's id.
            pub workflow_id: $crate::uuid::Uuid,
            /// Correlates the events of one request.
            pub correlation_id: $crate::uuid::Uuid,
            /// The publishing node's id.
            pub node_id: $crate::uuid::Uuid,
            /// The step's name.
            pub step: ::std::string::String,
            /// The step's 0-based position in the workflow.
            pub step_index: u32,
            /// When the step started (UTC).
            pub started_at: $crate::chrono::DateTime<$crate::chrono::Utc>,
        }

        $crate::__serde_via!($name, step_started, [workflow_id, correlation_id, node_id, step, step_index, started_at]);

        $crate::impl_event!($name, $event_type, $version, Event, $topic);
    };
}

/// Defines a workflow step's `{Step}StepCompleted` event, as the generator derives it (see [`state_changed!`]).
#[macro_export]
macro_rules! step_completed {
    ($(#[$attr:meta])* $name:ident($event_type:expr, $version:expr, $topic:expr) $(,)?) => {
        #[derive(Debug, Clone, PartialEq)]
        $(#[$attr])*
        pub struct $name {
            /// The workflow run's id.
            pub workflow_id: $crate::uuid::Uuid,
            /// Correlates the events of one request.
            pub correlation_id: $crate::uuid::Uuid,
            /// The publishing node's id.
            pub node_id: $crate::uuid::Uuid,
            /// The step's name.
            pub step: ::std::string::String,
            /// The step's 0-based position in the workflow.
            pub step_index: u32,
            /// When the step completed (UTC).
            pub completed_at: $crate::chrono::DateTime<$crate::chrono::Utc>,
            /// How long the step ran, in milliseconds.
            pub duration_ms: f64,
            /// The step's result, if any.
            pub result: ::std::option::Option<$crate::serde_json::Value>,
        }

        $crate::__serde_via!($name, step_completed, [workflow_id, correlation_id, node_id, step, step_index, completed_at, duration_ms, result]);

        $crate::impl_event!($name, $event_type, $version, Event, $topic);
    };
}

/// Defines a workflow step's `{Step}StepFailed` event, with its [`Failure`](crate::operation::Failure) impl, as the generator derives it (see [`state_changed!`]).
#[macro_export]
macro_rules! step_failed {
    ($(#[$attr:meta])* $name:ident($event_type:expr, $version:expr, $topic:expr) $(,)?) => {
        #[derive(Debug, Clone, PartialEq)]
        $(#[$attr])*
        pub struct $name {
            /// The workflow run's id.
            pub workflow_id: $crate::uuid::Uuid,
            /// Correlates the events of one request.
            pub correlation_id: $crate::uuid::Uuid,
            /// The publishing node's id.
            pub node_id: $crate::uuid::Uuid,
            /// The step's name.
            pub step: ::std::string::String,
            /// The step's 0-based position in the workflow.
            pub step_index: u32,
            /// When the step failed (UTC).
            pub failed_at: $crate::chrono::DateTime<$crate::chrono::Utc>,
            /// How long the step ran, in milliseconds.
            pub duration_ms: f64,
            /// What went wrong.
            pub error_message: ::std::string::String,
            /// The kind of error, e.g. `timeout`.
            pub error_type: ::std::string::String,
            /// What the caller may do about the error, each a sentence a person can act on.
            pub recovery_suggestions: ::std::vec::Vec<::std::string::String>,
        }

        $crate::__serde_via!($name, step_failed, [workflow_id, correlation_id, node_id, step, step_index, failed_at, duration_ms, error_message, error_type, recovery_suggestions]);

        $crate::impl_event!($name, $event_type, $version, Event, $topic);
        $crate::impl_failure!($name);
    };
}

/// Defines an orchestrator's `WorkflowCompleted` event, as the generator derives it (see [`state_changed!`]).
#[macro_export]
macro_rules! workflow_completed {
    ($(#[$attr:meta])* $name:ident($event_type:expr, $version:expr, $topic:expr) $(,)?) => {
        #[derive(Debug, Clone, PartialEq)]
        $(#[$attr])*
        pub struct $name {
            /// The workflow run's id.
            pub workflow_id: $crate::uuid::Uuid,
            /// Correlates the events of one request.
            pub correlation_id: $crate::uuid::Uuid,
            /// The publishing node's id.
            pub node_id: $crate::uuid::Uuid,
            /// When the workflow completed (UTC).
            pub completed_at: $crate::chrono::DateTime<$crate::chrono::Utc>,
            /// The steps that ran, in order.
            pub steps_completed: ::std::vec::Vec<::std::string::String>,
            /// How long the workflow ran, in milliseconds.
            pub total_duration_ms: f64,
            /// The workflow's result, if any.
            pub result: ::std::option::Option<$crate::serde_json::Value>,
        }

        $crate::__serde_via!($name, workflow_completed, [workflow_id, correlation_id, node_id, completed_at, steps_completed, total_duration_ms, result]);

        $crate::impl_event!($name, $event_type, $version, Event, $topic);
    };
}

/// Defines an orchestrator's `WorkflowFailed` event, with its [`Failure`](crate::operation::Failure) impl, as the generator derives it (see [`state_changed!`]).
#[macro_export]
macro_rules! workflow_failed {
    ($(#[$attr:meta])* $name:ident($event_type:expr, $version:expr, $topic:expr) $(,)?) => {
        #[derive(Debug, Clone, PartialEq)]
        $(#[$attr])*
        pub struct $name {
            /// The workflow run's id.
            pub workflow_id: $crate::uuid::Uuid,
            /// Correlates the events of one request.
            pub correlation_id: $crate::uuid::Uuid,
            /// The publishing node's id.
            pub node_id: $crate::uuid::Uuid,
            /// When the workflow failed (UTC).
            pub failed_at: $crate::chrono::DateTime<$crate::chrono::Utc>,
            /// The step that failed.
            pub failed_step: ::std::string::String,
            /// The steps that succeeded before the failure, in order.
            pub steps_completed: ::std::vec::Vec<::std::string::String>,
            /// How long the workflow ran, in milliseconds.
            pub total_duration_ms: f64,
            /// What went wrong.
            pub error_message: ::std::string::String,
            /// The kind of error, e.g. `timeout`.
            pub error_type: ::std::string::String,
            /// What the caller may do about the error, each a sentence a person can act on.
            pub recovery_suggestions: ::std::vec::Vec<::std::string::String>,
        }

        $crate::__serde_via!($name, workflow_failed, [workflow_id, correlation_id, node_id, failed_at, failed_step, steps_completed, total_duration_ms, error_message, error_type, recovery_suggestions]);

        $crate::impl_event!($name, $event_type, $version, Event, $topic);
        $crate::impl_failure!($name);
    };
}
