//! The business logic of the `postgres_writer` node, written by hand: it
//! inserts each record into the `records` table of PostgreSQL and announces
//! each new row with the node's own `record_written` event.
//!
//! `cargo onex generate` wrote the first version of this file and never
//! overwrites it; everything else in `src/` follows the contract.
//!
//! Connection: `DATABASE_URL` (a libpq key/value string or URL), default
//! `host=127.0.0.1 user=postgres dbname=test`. The table (see
//! `scripts/postgres.sh` at the repository root):
//!
//! ```sql
//! create table records (
//!     record_id uuid primary key, table_name text not null,
//!     payload jsonb not null, tags text[] not null default '{}',
//!     written_at timestamptz not null default now());
//! ```

use tokio_postgres::{Client, NoTls};

use crate::events::{RecordWritten, WriteRecordInput, WriteRecordOutput, WriteStatus};
use crate::{Context, OperationError};

/// The default connection string.
pub const DEFAULT_DATABASE_URL: &str = "host=127.0.0.1 user=postgres dbname=test";

/// Holds the PostgreSQL connection the operations share.
#[derive(Debug)]
pub struct PostgresWriterHandler {
    client: Client,
}

impl PostgresWriterHandler {
    /// Connects to PostgreSQL; an error stops the node before it joins the
    /// bus.
    pub async fn new() -> Result<Self, OperationError> {
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
        onex::tokio::spawn(async move {
            if let Err(error) = connection.await {
                onex::tracing::error!(%error, "the PostgreSQL connection ended");
            }
        });
        Ok(PostgresWriterHandler { client })
    }
}

impl crate::Handler for PostgresWriterHandler {
    /// Insert one record. Writing the same `record_id` twice changes
    /// nothing the second time and reports `duplicate`; a new row is
    /// announced with `record_written`, in the run's flow. A record with no
    /// table, or whose payload is not a JSON object, fails with
    /// `invalid_record` and says how to fix it.
    async fn write_record(
        &self,
        input: WriteRecordInput,
        context: Context<'_>,
    ) -> Result<WriteRecordOutput, OperationError> {
        check(&input)?;
        let rows_affected = self
            .client
            .execute(
                "insert into records (record_id, table_name, payload, tags) \
                 values ($1, $2, $3, $4) on conflict (record_id) do nothing",
                &[&input.record_id, &input.table, &input.payload, &input.tags],
            )
            .await?;
        if rows_affected == 1 {
            let written = RecordWritten {
                record_id: input.record_id,
                table: input.table.clone(),
                written_at: onex::chrono::Utc::now(),
            };
            context.publish().record_written(&written).await?;
        }
        Ok(WriteRecordOutput {
            record_id: input.record_id,
            rows_affected,
            status: if rows_affected == 1 {
                WriteStatus::Inserted
            } else {
                WriteStatus::Duplicate
            },
        })
    }
}

/// Refuses a record the `records` table cannot hold, saying how to fix it.
fn check(input: &WriteRecordInput) -> Result<(), OperationError> {
    if input.table.trim().is_empty() {
        return Err(
            OperationError::new("invalid_record", "the record names no table")
                .with_suggestion("set `table` to the table the record belongs to, e.g. `orders`"),
        );
    }
    if !input.payload.is_object() {
        return Err(OperationError::new(
            "invalid_record",
            format!(
                "the payload of a `{}` record is not a JSON object",
                input.table
            ),
        )
        .with_suggestion("send the row as a JSON object, its columns as keys"));
    }
    Ok(())
}
