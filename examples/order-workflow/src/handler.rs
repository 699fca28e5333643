//! The business logic of the `order_workflow` node, written by hand: the
//! workflow's first step validates an order against a small catalogue, the
//! second stores the valid order, with its total, in the `records` table of
//! PostgreSQL (the table the postgres-writer node writes).
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

use crate::OperationError;
use crate::WorkflowRun;
use crate::events::{Order, OrderStatus, PersistedOrder, ValidationReport};

/// The default connection string.
pub const DEFAULT_DATABASE_URL: &str = "host=127.0.0.1 user=postgres dbname=test";

/// The SKUs the shop sells.
pub const CATALOGUE: &[&str] = &["A-1", "B-2", "C-3"];

/// The most of one SKU a single order may ask for.
pub const MAX_QUANTITY: u32 = 1_000;

/// Holds the PostgreSQL connection the operations share.
#[derive(Debug)]
pub struct OrderWorkflowHandler {
    client: Client,
}

impl OrderWorkflowHandler {
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
        Ok(OrderWorkflowHandler { client })
    }
}

impl crate::Handler for OrderWorkflowHandler {
    /// Check an order's lines, quantities and prices. An order with
    /// problems fails the step (error kind `invalid_order`, the problems in
    /// the message), which fails the workflow before anything is stored.
    async fn validate_order(&self, input: Order) -> Result<ValidationReport, OperationError> {
        let problems = problems(&input);
        if !problems.is_empty() {
            return Err(OperationError::new("invalid_order", problems.join("; ")));
        }
        Ok(ValidationReport {
            order_id: input.order_id,
            valid: true,
            problems,
        })
    }

    /// Store a valid order, with its total, as the row `order_id` of the
    /// `records` table. Storing the same order twice changes nothing.
    async fn persist_order(&self, input: Order) -> Result<PersistedOrder, OperationError> {
        let total_cents: u64 = input
            .lines
            .iter()
            .map(|line| u64::from(line.quantity) * line.unit_price_cents)
            .sum();
        let payload = onex::serde_json::json!({
            "order": onex::serde_json::to_value(&input)?,
            "total_cents": total_cents,
        });
        let tags = vec!["order_workflow".to_owned()];
        self.client
            .execute(
                "insert into records (record_id, table_name, payload, tags) \
                 values ($1, 'orders', $2, $3) on conflict (record_id) do nothing",
                &[&input.order_id, &payload, &tags],
            )
            .await?;
        Ok(PersistedOrder {
            order_id: input.order_id,
            record_id: input.order_id,
            status: OrderStatus::Accepted,
        })
    }

    /// The PostgreSQL writer announced a stored record: logged, with the
    /// flow it belongs to, so that an order's persistence can be followed
    /// across both nodes.
    async fn on_postgres_writer_record_written(
        &self,
        event: crate::consumed::postgres_writer::RecordWritten,
        context: onex::reaction::ReactionContext,
    ) -> Result<(), OperationError> {
        onex::tracing::info!(
            record_id = %event.record_id,
            table = %event.table,
            correlation_id = %context.correlation_id,
            writer = %context.source_node_id,
            "the PostgreSQL writer stored a record"
        );
        Ok(())
    }
}

impl crate::Steps for OrderWorkflowHandler {
    /// The input of the `validate_order` step: the `order` of the
    /// `PlaceOrder` command that started the run.
    fn validate_order(&self, run: &WorkflowRun) -> Result<Order, OperationError> {
        order_of(run)
    }

    /// The input of the `persist_order` step: the same order, which the
    /// previous step found valid.
    fn persist_order(&self, run: &WorkflowRun) -> Result<Order, OperationError> {
        order_of(run)
    }
}

/// The order of the command that started the run.
fn order_of(run: &WorkflowRun) -> Result<Order, OperationError> {
    let order =
        run.trigger.get("order").cloned().ok_or_else(|| {
            OperationError::new("invalid_input", "the command carries no `order`")
        })?;
    Ok(onex::serde_json::from_value(order)?)
}

/// What is wrong with an order; empty when nothing is.
fn problems(order: &Order) -> Vec<String> {
    let mut problems = Vec::new();
    if order.customer_id.trim().is_empty() {
        problems.push("no customer".to_owned());
    }
    if order.lines.is_empty() {
        problems.push("no lines".to_owned());
    }
    for (index, line) in order.lines.iter().enumerate() {
        if !CATALOGUE.contains(&line.sku.as_str()) {
            problems.push(format!("line {index}: unknown SKU `{}`", line.sku));
        }
        if line.quantity == 0 || line.quantity > MAX_QUANTITY {
            problems.push(format!(
                "line {index}: quantity {} is not between 1 and {MAX_QUANTITY}",
                line.quantity
            ));
        }
        if line.unit_price_cents == 0 {
            problems.push(format!("line {index}: no price"));
        }
    }
    problems
}
