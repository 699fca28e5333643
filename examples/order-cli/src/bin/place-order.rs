//! `place-order CUSTOMER SKU:QUANTITY:UNIT_PRICE_CENTS...`: places an order
//! through the order workflow and waits for its outcome, as the seed 004
//! CLI adapter does for generation requests.
//!
//! The order CLI node joins the bus the environment names (`KAFKA_*`, as
//! every node; see `.env.template`), sends `place_order` with a fresh
//! correlation id, and waits for the workflow's completed or failed event
//! with that id, up to the contract's timeout. It prints one JSON line on
//! stdout: `{"outcome": "completed" | "failed" | "no_answer", ...}` with
//! the correlation id, the order id and the answer; a failure's recovery
//! suggestions also go to stderr. The exit code is 0 when the order was
//! stored, 1 when the workflow failed, 2 when no answer came (or the bus
//! could not be reached), 64 for a usage error.

use std::{process::ExitCode, sync::Arc};

use onex::{
    KafkaConfig, RequestError, SourceInfo, lifecycle::NodeRuntime, serde_json::json, uuid::Uuid,
};
use order_cli::{
    NodeOrderCliEffect, Settings,
    consumed::order_workflow::{Order, OrderLine, PlaceOrder},
    events,
    handler::OrderCliHandler,
};

const USAGE: &str = "usage: place-order CUSTOMER SKU:QUANTITY:UNIT_PRICE_CENTS...";

fn main() -> ExitCode {
    onex::logging::init();
    let order = match order_from(std::env::args().skip(1)) {
        Ok(order) => order,
        Err(problem) => {
            eprintln!("{problem}\n{USAGE}");
            return ExitCode::from(64);
        }
    };
    let runtime = match onex::tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(place(order)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("place-order: {error}");
            ExitCode::from(2)
        }
    }
}

/// The order the arguments describe.
fn order_from(mut args: impl Iterator<Item = String>) -> Result<Order, String> {
    let customer_id = args.next().ok_or("no customer given")?;
    let lines = args
        .map(|line| {
            let parts: Vec<&str> = line.split(':').collect();
            let [sku, quantity, price] = parts[..] else {
                return Err(format!("`{line}` is not SKU:QUANTITY:UNIT_PRICE_CENTS"));
            };
            Ok(OrderLine {
                sku: sku.to_owned(),
                quantity: quantity
                    .parse()
                    .map_err(|_| format!("`{quantity}` is not a quantity"))?,
                unit_price_cents: price
                    .parse()
                    .map_err(|_| format!("`{price}` is not a price in cents"))?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Order {
        order_id: Uuid::new_v4(),
        customer_id,
        lines,
        placed_at: onex::chrono::Utc::now(),
        notes: None,
    })
}

/// Joins the bus, places the order, prints the outcome, leaves the bus.
async fn place(order: Order) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = KafkaConfig::from_env()?;
    let settings = Settings::from_env()?;
    let source = SourceInfo::new(
        settings.service.clone(),
        events::VERSION,
        &config.environment,
    );
    let bus = onex::connect(config).await?;
    let node = Arc::new(NodeOrderCliEffect::new(
        NodeRuntime::new(bus, source),
        OrderCliHandler::new().await.map_err(|e| e.to_string())?,
    ));
    node.initialize(&settings).await?;
    let correlation_id = Uuid::new_v4();
    let order_id = order.order_id;
    let answer = node
        .requests()
        .place_order(&PlaceOrder { order }, correlation_id)
        .await;
    let (line, code) = match answer {
        Ok(completed) => (
            json!({
                "outcome": "completed",
                "correlation_id": correlation_id,
                "order_id": order_id,
                "workflow": completed,
            }),
            ExitCode::SUCCESS,
        ),
        Err(RequestError::Failed { failure, .. }) => {
            eprintln!(
                "the order failed at `{}`: {}",
                failure.failed_step, failure.error_message
            );
            for suggestion in &failure.recovery_suggestions {
                eprintln!("  try: {suggestion}");
            }
            (
                json!({
                    "outcome": "failed",
                    "correlation_id": correlation_id,
                    "order_id": order_id,
                    "workflow": failure,
                }),
                ExitCode::from(1),
            )
        }
        Err(other) => (
            json!({
                "outcome": "no_answer",
                "correlation_id": correlation_id,
                "order_id": order_id,
                "error": other.to_string(),
            }),
            ExitCode::from(2),
        ),
    };
    println!("{line}");
    node.shutdown().await?;
    Ok(code)
}
