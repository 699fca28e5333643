//! The business logic of the `order_workflow` node, written by hand: the
//! workflow's first step validates an order against a small catalogue (an
//! invalid order is announced with `order_rejected` and fails the step, with
//! suggestions for the customer); the second step has the PostgreSQL writer
//! store the valid order, with its total, in its `records` table: the step
//! builds the writer's `write_requested` command, and the workflow waits for
//! the writer's answer. When the writer announces the stored row
//! (`record_written`), the node announces the order as accepted.
//!
//! `cargo onex generate` wrote the first version of this file and never
//! overwrites it; everything else in `src/` follows the contract.

use crate::consumed::postgres_writer::{RecordWritten, WriteRecordInput, WriteRequested};
use crate::events::{Order, OrderAccepted, OrderRejected, ValidationReport};
use crate::{Context, OperationError, WorkflowRun};

/// The writer's table of orders.
pub const ORDERS_TABLE: &str = "orders";

/// The SKUs the shop sells.
pub const CATALOGUE: &[&str] = &["A-1", "B-2", "C-3"];

/// The most of one SKU a single order may ask for.
pub const MAX_QUANTITY: u32 = 1_000;

/// The workflow's logic; it holds nothing, as the writer does the storing.
#[derive(Debug, Default)]
pub struct OrderWorkflowHandler {}

impl OrderWorkflowHandler {
    /// The handler.
    pub async fn new() -> Result<Self, OperationError> {
        Ok(OrderWorkflowHandler {})
    }
}

impl crate::Handler for OrderWorkflowHandler {
    /// Check an order's lines, quantities and prices. An order with
    /// problems is announced with `order_rejected`, then fails the step
    /// (error kind `invalid_order`, the problems in the message, what to do
    /// in the suggestions), which fails the workflow before anything is
    /// stored.
    async fn validate_order(
        &self,
        input: Order,
        context: Context<'_>,
    ) -> Result<ValidationReport, OperationError> {
        let problems = problems(&input);
        if !problems.is_empty() {
            let rejected = OrderRejected {
                order_id: input.order_id,
                problems: problems.clone(),
            };
            context.publish().order_rejected(&rejected).await?;
            return Err(OperationError::new("invalid_order", problems.join("; "))
                .with_suggestion(format!(
                    "order only SKUs of the catalogue: {}",
                    CATALOGUE.join(", ")
                ))
                .with_suggestion(format!(
                    "order between 1 and {MAX_QUANTITY} of each SKU, at a price above zero"
                )));
        }
        Ok(ValidationReport {
            order_id: input.order_id,
            valid: true,
            problems,
        })
    }

    /// The PostgreSQL writer stored a record. An order's row announces the
    /// order as accepted, in the flow of the run that placed it.
    async fn on_postgres_writer_record_written(
        &self,
        event: RecordWritten,
        origin: onex::reaction::ReactionContext,
        context: Context<'_>,
    ) -> Result<(), OperationError> {
        onex::tracing::info!(
            record_id = %event.record_id,
            table = %event.table,
            correlation_id = %context.correlation_id(),
            writer = %origin.source_node_id,
            "the PostgreSQL writer stored a record"
        );
        if event.table == ORDERS_TABLE {
            let accepted = OrderAccepted {
                order_id: event.record_id,
                record_id: event.record_id,
            };
            context.publish().order_accepted(&accepted).await?;
        }
        Ok(())
    }
}

impl crate::Steps for OrderWorkflowHandler {
    /// The input of the `validate_order` step: the `order` of the
    /// `PlaceOrder` command that started the run.
    fn validate_order(&self, run: &WorkflowRun) -> Result<Order, OperationError> {
        order_of(run)
    }

    /// The writer's command for the `persist_order` step: the order, with
    /// its total, as the row `order_id` of the `orders` table (storing the
    /// same order twice changes nothing).
    fn persist_order(&self, run: &WorkflowRun) -> Result<WriteRequested, OperationError> {
        let order = order_of(run)?;
        let total_cents: u64 = order
            .lines
            .iter()
            .map(|line| u64::from(line.quantity) * line.unit_price_cents)
            .sum();
        let payload = onex::serde_json::json!({
            "order": onex::serde_json::to_value(&order)?,
            "total_cents": total_cents,
        });
        Ok(WriteRequested {
            record: WriteRecordInput {
                record_id: order.order_id,
                table: ORDERS_TABLE.to_owned(),
                payload,
                tags: vec!["order_workflow".to_owned()],
            },
        })
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
