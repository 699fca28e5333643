//! The no-op PostgreSQL writer of the node throughput benchmark: `bench/run`
//! generates a node crate from `contracts/postgres_writer.yaml` and puts this
//! file in place of its `src/handler.rs` (the file `cargo onex generate`
//! leaves to the user). Every command succeeds at once, without a database
//! and without `record_written`, so that the node's figure is what the
//! generated code and the runtime cost: decoding, the started and completed
//! events, the offset committed once they are delivered.

use crate::events::{WriteRecordInput, WriteRecordOutput, WriteStatus};
use crate::{Context, OperationError};

/// Holds nothing.
#[derive(Debug)]
pub struct PostgresWriterHandler {}

impl PostgresWriterHandler {
    /// Builds the handler when the node starts.
    pub async fn new() -> Result<Self, OperationError> {
        Ok(PostgresWriterHandler {})
    }
}

impl crate::Handler for PostgresWriterHandler {
    /// Reports the record inserted, doing nothing.
    async fn write_record(
        &self,
        input: WriteRecordInput,
        _context: Context<'_>,
    ) -> Result<WriteRecordOutput, OperationError> {
        Ok(WriteRecordOutput {
            record_id: input.record_id,
            rows_affected: 1,
            status: WriteStatus::Inserted,
        })
    }
}
