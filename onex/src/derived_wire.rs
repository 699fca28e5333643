//! The JSON form of the events the generator derives for every node
//! (an operation's started, completed and failed events, a workflow's and
//! its steps', state changed, metric recorded), written once.
//!
//! Each node defines its own struct per derived event (see the macros in
//! `event_set`), and there are many: 50 contracts derive about 500. Serde's
//! derives on each would make the compiler check a visitor per event, most
//! of `cargo check` on generated code. Instead each struct serializes
//! through the borrowed [`Ref`](operation_started::Ref) of its shape and
//! deserializes through the owned [`Owned`](operation_started::Owned), both
//! derived here once; [`__serde_via!`](crate::__serde_via) writes the two
//! short impls. The JSON is the same as the derives wrote.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// `skip_serializing_if` for an optional field of a [`Ref`](operation_started::Ref).
pub fn is_none<T>(value: &&Option<T>) -> bool {
    value.is_none()
}

/// Defines the module `$shape` with `Ref` (the fields borrowed, for
/// serializing) and `Owned` (for deserializing): one field list, so the
/// two cannot disagree.
macro_rules! shape {
    ($(#[$doc:meta])* $shape:ident $(<$t:ident>)? { $($(#[$attr:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        pub mod $shape {
            #[allow(unused_imports)]
            use super::*;

            /// The event's fields, borrowed: what it serializes as.
            #[derive(serde::Serialize)]
            pub struct Ref<'a $(, $t)?> {
                $($(#[$attr])* pub $field: &'a $ty,)*
            }

            /// The event's fields, owned: what it deserializes from.
            #[derive(serde::Deserialize)]
            pub struct Owned$(<$t>)? {
                $($(#[$attr])* pub $field: $ty,)*
            }
        }
    };
}

shape!(
    /// `{Op}Started`.
    operation_started {
        operation: String,
        correlation_id: Uuid,
        node_id: Uuid,
        #[serde(with = "crate::time")]
        started_at: DateTime<Utc>,
        input_summary: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "super::is_none")]
        metadata: Option<Value>,
    }
);

shape!(
    /// `{Op}Completed`, whose result is the operation's output `T`.
    operation_completed<T> {
        operation: String,
        correlation_id: Uuid,
        node_id: Uuid,
        #[serde(with = "crate::time")]
        completed_at: DateTime<Utc>,
        execution_time_ms: f64,
        result_summary: BTreeMap<String, String>,
        result: T,
        success: bool,
        #[serde(default, skip_serializing_if = "super::is_none")]
        metadata: Option<Value>,
    }
);

shape!(
    /// `{Op}Failed`.
    operation_failed {
        operation: String,
        correlation_id: Uuid,
        node_id: Uuid,
        #[serde(with = "crate::time")]
        failed_at: DateTime<Utc>,
        execution_time_ms: f64,
        error_message: String,
        error_type: String,
        #[serde(default)]
        recovery_suggestions: Vec<String>,
        #[serde(default, skip_serializing_if = "super::is_none")]
        error_details: Option<Value>,
        #[serde(default, skip_serializing_if = "super::is_none")]
        metadata: Option<Value>,
    }
);

shape!(
    /// `StateChanged`.
    state_changed {
        node_id: Uuid,
        node_type: String,
        correlation_id: Uuid,
        #[serde(with = "crate::time")]
        changed_at: DateTime<Utc>,
        old_state: String,
        new_state: String,
        transition_reason: String,
        #[serde(default, skip_serializing_if = "super::is_none")]
        metadata: Option<Value>,
    }
);

shape!(
    /// `MetricRecorded`.
    metric_recorded {
        node_id: Uuid,
        node_type: String,
        correlation_id: Uuid,
        #[serde(with = "crate::time")]
        recorded_at: DateTime<Utc>,
        metric_name: String,
        value: f64,
        #[serde(default, skip_serializing_if = "super::is_none")]
        unit: Option<String>,
        tags: BTreeMap<String, String>,
    }
);

shape!(
    /// `{Step}StepStarted`.
    step_started {
        workflow_id: Uuid,
        correlation_id: Uuid,
        node_id: Uuid,
        step: String,
        step_index: u32,
        #[serde(with = "crate::time")]
        started_at: DateTime<Utc>,
    }
);

shape!(
    /// `{Step}StepCompleted`.
    step_completed {
        workflow_id: Uuid,
        correlation_id: Uuid,
        node_id: Uuid,
        step: String,
        step_index: u32,
        #[serde(with = "crate::time")]
        completed_at: DateTime<Utc>,
        duration_ms: f64,
        #[serde(default, skip_serializing_if = "super::is_none")]
        result: Option<Value>,
    }
);

shape!(
    /// `{Step}StepFailed`.
    step_failed {
        workflow_id: Uuid,
        correlation_id: Uuid,
        node_id: Uuid,
        step: String,
        step_index: u32,
        #[serde(with = "crate::time")]
        failed_at: DateTime<Utc>,
        duration_ms: f64,
        error_message: String,
        error_type: String,
        #[serde(default)]
        recovery_suggestions: Vec<String>,
    }
);

shape!(
    /// `WorkflowCompleted`.
    workflow_completed {
        workflow_id: Uuid,
        correlation_id: Uuid,
        node_id: Uuid,
        #[serde(with = "crate::time")]
        completed_at: DateTime<Utc>,
        steps_completed: Vec<String>,
        total_duration_ms: f64,
        #[serde(default, skip_serializing_if = "super::is_none")]
        result: Option<Value>,
    }
);

shape!(
    /// `WorkflowFailed`.
    workflow_failed {
        workflow_id: Uuid,
        correlation_id: Uuid,
        node_id: Uuid,
        #[serde(with = "crate::time")]
        failed_at: DateTime<Utc>,
        failed_step: String,
        steps_completed: Vec<String>,
        total_duration_ms: f64,
        error_message: String,
        error_type: String,
        #[serde(default)]
        recovery_suggestions: Vec<String>,
    }
);

/// Implements `Serialize` and `Deserialize` for the derived event `$name`
/// through its shape `$shape` (a module of [`derived_wire`](crate::derived_wire)),
/// given every field of the event in the shape's order.
#[doc(hidden)]
#[macro_export]
macro_rules! __serde_via {
    ($name:ident, $shape:ident, [$($field:ident),* $(,)?]) => {
        impl $crate::serde::Serialize for $name {
            fn serialize<S: $crate::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                $crate::serde::Serialize::serialize(
                    &$crate::derived_wire::$shape::Ref { $($field: &self.$field),* },
                    serializer,
                )
            }
        }

        impl<'de> $crate::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                let $crate::derived_wire::$shape::Owned { $($field),* } =
                    $crate::serde::Deserialize::deserialize(deserializer)?;
                ::std::result::Result::Ok(Self { $($field),* })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone as _, Utc};
    use serde::{Deserialize, Serialize};
    use serde_json::{Value, json};
    use uuid::Uuid;

    const TOPIC: &str = "t.v1";

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Output {
        pub total: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub margin: Option<u64>,
    }

    crate::operation_started!(Started("x.started", "1.0", TOPIC), "op", [("a", "string")]);
    crate::operation_completed!(
        Completed("x.completed", "1.0", TOPIC),
        "op",
        Output,
        [("total", "u64")],
        [margin]
    );
    crate::operation_failed!(Failed("x.failed", "1.0", TOPIC), "op");
    crate::state_changed!(StateChanged("x.state", "1.0", TOPIC));
    crate::metric_recorded!(MetricRecorded("x.metric", "1.0", TOPIC));
    crate::step_started!(StepStarted("x.step.started", "1.0", TOPIC));
    crate::step_completed!(StepCompleted("x.step.completed", "1.0", TOPIC));
    crate::step_failed!(StepFailed("x.step.failed", "1.0", TOPIC));
    crate::workflow_completed!(WorkflowCompleted("x.wf.completed", "1.0", TOPIC));
    crate::workflow_failed!(WorkflowFailed("x.wf.failed", "1.0", TOPIC));

    /// The operation's completed event as serde's derive wrote it before
    /// the shapes: the JSON must not change.
    #[derive(Serialize)]
    struct DerivedCompleted {
        operation: String,
        correlation_id: Uuid,
        node_id: Uuid,
        #[serde(with = "crate::time")]
        completed_at: chrono::DateTime<Utc>,
        execution_time_ms: f64,
        result_summary: BTreeMap<String, String>,
        result: Output,
        success: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<Value>,
    }

    fn at() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, 30, 0).unwrap() + chrono::Duration::microseconds(250)
    }

    /// Serializes, checks the keys and their order, and reads it back.
    fn round_trip<T>(event: &T, keys: &[&str]) -> Value
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        let text = serde_json::to_string(event).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let found: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // serde_json's map keeps insertion order only with a feature; the
        // text shows the order written.
        let mut last = 0;
        for key in keys {
            let at = text
                .find(&format!("\"{key}\":"))
                .unwrap_or_else(|| panic!("{key} missing in {text}"));
            assert!(at >= last, "{key} out of order in {text}");
            last = at;
        }
        assert_eq!(found.len(), keys.len(), "{text}");
        assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), event);
        value
    }

    #[test]
    fn completed_writes_what_the_derive_wrote() {
        let (node, correlation) = (Uuid::new_v4(), Uuid::new_v4());
        let mut event = Completed::new(
            node,
            correlation,
            1.5,
            &Output {
                total: 7,
                margin: Some(2),
            },
        );
        event.completed_at = at();
        assert_eq!(
            event.result.margin, None,
            "summary-only fields are left out"
        );
        let derived = DerivedCompleted {
            operation: event.operation.clone(),
            correlation_id: correlation,
            node_id: node,
            completed_at: at(),
            execution_time_ms: 1.5,
            result_summary: event.result_summary.clone(),
            result: event.result.clone(),
            success: true,
            metadata: None,
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            serde_json::to_string(&derived).unwrap()
        );
        event.metadata = Some(json!({"k": [1, 2]}));
        let derived = DerivedCompleted {
            metadata: event.metadata.clone(),
            ..derived
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            serde_json::to_string(&derived).unwrap()
        );
        let value = round_trip(
            &event,
            &[
                "operation",
                "correlation_id",
                "node_id",
                "completed_at",
                "execution_time_ms",
                "result_summary",
                "result",
                "success",
                "metadata",
            ],
        );
        assert_eq!(value["completed_at"], "2026-12-01T10:30:00.000250Z");
    }

    #[test]
    fn every_shape_reads_back_what_it_writes() {
        let (node, correlation, workflow) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut started = Started::new(node, correlation);
        started.started_at = at();
        round_trip(
            &started,
            &[
                "operation",
                "correlation_id",
                "node_id",
                "started_at",
                "input_summary",
            ],
        );

        let error = crate::OperationError::new("timeout", "too slow").with_suggestion("try again");
        let mut failed = Failed::new(node, correlation, 3.0, &error);
        failed.error_details = Some(json!({"after_ms": 3}));
        round_trip(
            &failed,
            &[
                "operation",
                "correlation_id",
                "node_id",
                "failed_at",
                "execution_time_ms",
                "error_message",
                "error_type",
                "recovery_suggestions",
                "error_details",
            ],
        );
        assert_eq!(
            crate::operation::Failure::error(&failed).suggestions,
            ["try again"]
        );

        let state = StateChanged {
            node_id: node,
            node_type: "effect".into(),
            correlation_id: correlation,
            changed_at: at(),
            old_state: "idle".into(),
            new_state: "busy".into(),
            transition_reason: "work".into(),
            metadata: None,
        };
        round_trip(
            &state,
            &[
                "node_id",
                "node_type",
                "correlation_id",
                "changed_at",
                "old_state",
                "new_state",
                "transition_reason",
            ],
        );

        let metric = MetricRecorded {
            node_id: node,
            node_type: "effect".into(),
            correlation_id: correlation,
            recorded_at: at(),
            metric_name: "rows".into(),
            value: 2.5,
            unit: Some("ms".into()),
            tags: BTreeMap::from([("a".into(), "b".into())]),
        };
        round_trip(
            &metric,
            &[
                "node_id",
                "node_type",
                "correlation_id",
                "recorded_at",
                "metric_name",
                "value",
                "unit",
                "tags",
            ],
        );

        let step = StepStarted {
            workflow_id: workflow,
            correlation_id: correlation,
            node_id: node,
            step: "s".into(),
            step_index: 2,
            started_at: at(),
        };
        round_trip(
            &step,
            &[
                "workflow_id",
                "correlation_id",
                "node_id",
                "step",
                "step_index",
                "started_at",
            ],
        );
        let step = StepCompleted {
            workflow_id: workflow,
            correlation_id: correlation,
            node_id: node,
            step: "s".into(),
            step_index: 2,
            completed_at: at(),
            duration_ms: 1.0,
            result: None,
        };
        round_trip(
            &step,
            &[
                "workflow_id",
                "correlation_id",
                "node_id",
                "step",
                "step_index",
                "completed_at",
                "duration_ms",
            ],
        );
        let step = StepFailed {
            workflow_id: workflow,
            correlation_id: correlation,
            node_id: node,
            step: "s".into(),
            step_index: 2,
            failed_at: at(),
            duration_ms: 1.0,
            error_message: "m".into(),
            error_type: "t".into(),
            recovery_suggestions: vec![],
        };
        round_trip(
            &step,
            &[
                "workflow_id",
                "correlation_id",
                "node_id",
                "step",
                "step_index",
                "failed_at",
                "duration_ms",
                "error_message",
                "error_type",
                "recovery_suggestions",
            ],
        );
        let done = WorkflowCompleted {
            workflow_id: workflow,
            correlation_id: correlation,
            node_id: node,
            completed_at: at(),
            steps_completed: vec!["s".into()],
            total_duration_ms: 4.0,
            result: Some(json!(1)),
        };
        round_trip(
            &done,
            &[
                "workflow_id",
                "correlation_id",
                "node_id",
                "completed_at",
                "steps_completed",
                "total_duration_ms",
                "result",
            ],
        );
        let failed = WorkflowFailed {
            workflow_id: workflow,
            correlation_id: correlation,
            node_id: node,
            failed_at: at(),
            failed_step: "s".into(),
            steps_completed: vec![],
            total_duration_ms: 4.0,
            error_message: "m".into(),
            error_type: "t".into(),
            recovery_suggestions: vec!["r".into()],
        };
        round_trip(
            &failed,
            &[
                "workflow_id",
                "correlation_id",
                "node_id",
                "failed_at",
                "failed_step",
                "steps_completed",
                "total_duration_ms",
                "error_message",
                "error_type",
                "recovery_suggestions",
            ],
        );
    }

    #[test]
    fn defaulted_fields_may_be_missing_and_unknown_ones_are_ignored() {
        let text = r#"{"operation":"op","correlation_id":"00000000-0000-0000-0000-000000000001",
            "node_id":"00000000-0000-0000-0000-000000000002","failed_at":"2026-12-01T10:30:00+01:00",
            "execution_time_ms":1,"error_message":"m","error_type":"t","extra":true}"#;
        let failed: Failed = serde_json::from_str(text).unwrap();
        assert!(failed.recovery_suggestions.is_empty());
        assert_eq!(failed.error_details, None);
        assert_eq!(
            failed.failed_at,
            Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0).unwrap()
        );
        let missing = r#"{"operation":"op"}"#;
        let error = serde_json::from_str::<Failed>(missing)
            .unwrap_err()
            .to_string();
        assert!(error.contains("missing field `correlation_id`"), "{error}");
    }
}
