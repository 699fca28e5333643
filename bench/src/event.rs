//! The events the benchmarks publish: the shapes of `record_written` and
//! `write_requested` of `contracts/postgres_writer.yaml`, written by hand so
//! that the benchmarks do not depend on code generation.

use onex::{
    Event, MessageCategory,
    chrono::{DateTime, Utc},
    serde::{Deserialize, Serialize},
    uuid::Uuid,
};

/// A record to insert: `WriteRecordInput` of the contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(crate = "onex::serde")]
pub struct WriteRecordInput {
    /// Primary key of the new row.
    pub record_id: Uuid,
    /// Target table.
    pub table: String,
    /// The row's JSON document.
    pub payload: serde_json::Value,
    /// Tags of the row.
    pub tags: Vec<String>,
}

/// Asks the PostgreSQL writer to insert a record: the command its node
/// consumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(crate = "onex::serde")]
pub struct WriteRequested {
    /// The record.
    pub record: WriteRecordInput,
}

impl Event for WriteRequested {
    const EVENT_TYPE: &'static str = "effect.write_requested";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Command;
    const TOPIC: &'static str = "postgres_writer.effect.write_requested.v1";
}

/// A record was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(crate = "onex::serde")]
pub struct RecordWritten {
    /// The row's key.
    pub record_id: Uuid,
    /// The table written to.
    pub table: String,
    /// When it was written.
    #[serde(with = "onex::time")]
    pub written_at: DateTime<Utc>,
}

impl Event for RecordWritten {
    const EVENT_TYPE: &'static str = "effect.record_written";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Event;
    const TOPIC: &'static str = "postgres_writer.effect.record_written.v1";
}

impl RecordWritten {
    /// A sample event.
    pub fn sample() -> Self {
        RecordWritten {
            record_id: Uuid::new_v4(),
            table: "orders".to_owned(),
            written_at: Utc::now(),
        }
    }
}
