//! The three-node order system on the in-memory bus, in one process: the
//! order CLI node places orders, the order workflow validates them and has
//! the PostgreSQL writer store them (a real insert into the `records` table
//! of `DATABASE_URL`, default `host=127.0.0.1 user=postgres dbname=test`).
//! The same system runs in separate processes over Kafka in the
//! repository's `tests/e2e_workflow.rs`.

use std::sync::Arc;

use onex::{
    InMemoryBus, RequestError, SourceInfo, chrono::Utc, lifecycle::NodeRuntime, uuid::Uuid,
};
use order_cli::{
    NodeOrderCliEffect,
    consumed::order_workflow::{Order, OrderLine, PlaceOrder},
    handler::OrderCliHandler,
};
use order_workflow::{NodeOrderWorkflowOrchestrator, handler::OrderWorkflowHandler};
use postgres_writer::{NodePostgresWriterEffect, handler::PostgresWriterHandler};

const ENVIRONMENT: &str = "system";

fn runtime(bus: &Arc<InMemoryBus>, service: &str) -> NodeRuntime {
    NodeRuntime::new(bus.clone(), SourceInfo::new(service, "1.0.0", ENVIRONMENT))
}

/// The nodes on one bus; the writer only when asked.
async fn system(with_writer: bool) -> Arc<NodeOrderCliEffect<OrderCliHandler>> {
    let bus = Arc::new(InMemoryBus::new(ENVIRONMENT));
    if with_writer {
        let handler = PostgresWriterHandler::new().await.expect("PostgreSQL is up");
        let writer = Arc::new(NodePostgresWriterEffect::new(
            runtime(&bus, "postgres_writer"),
            handler,
        ));
        writer
            .initialize(&postgres_writer::Settings::default())
            .await
            .expect("the writer joins");
        std::mem::forget(writer);
    }
    let workflow = Arc::new(NodeOrderWorkflowOrchestrator::new(
        runtime(&bus, "orders"),
        OrderWorkflowHandler::default(),
    ));
    workflow
        .initialize(&order_workflow::Settings::default())
        .await
        .expect("the workflow joins");
    std::mem::forget(workflow);
    let cli = Arc::new(NodeOrderCliEffect::new(
        runtime(&bus, "order_cli"),
        OrderCliHandler::default(),
    ));
    cli.initialize(&order_cli::Settings::default())
        .await
        .expect("the adapter joins");
    cli
}

fn order(sku: &str) -> Order {
    Order {
        order_id: Uuid::new_v4(),
        customer_id: "customer-7".to_owned(),
        lines: vec![OrderLine {
            sku: sku.to_owned(),
            quantity: 2,
            unit_price_cents: 1250,
        }],
        placed_at: Utc::now(),
        notes: None,
    }
}

#[onex::tokio::test(crate = "onex::tokio")]
async fn an_order_is_stored_and_the_adapter_gets_the_completed_workflow() {
    let cli = system(true).await;
    let order = order("A-1");
    let order_id = order.order_id;
    let correlation_id = Uuid::new_v4();
    let completed = cli
        .requests()
        .place_order(&PlaceOrder { order }, correlation_id)
        .await
        .expect("the workflow completes");
    assert_eq!(completed.correlation_id, correlation_id);
    assert_eq!(completed.steps_completed, ["validate_order", "persist_order"]);
    let result = completed.result.expect("the steps' results");
    assert_eq!(result["persist_order"]["result"]["record_id"], order_id.to_string());
    assert_eq!(result["persist_order"]["result"]["status"], "inserted");
}

#[onex::tokio::test(crate = "onex::tokio")]
async fn a_bad_order_fails_with_recovery_suggestions() {
    let cli = system(true).await;
    let correlation_id = Uuid::new_v4();
    let error = cli
        .requests()
        .place_order(&PlaceOrder { order: order("Z-9") }, correlation_id)
        .await
        .expect_err("the workflow fails");
    let RequestError::Failed { failure, .. } = error else {
        panic!("a failed workflow expected: {error}");
    };
    assert_eq!(failure.correlation_id, correlation_id);
    assert_eq!(failure.failed_step, "validate_order");
    assert_eq!(failure.error_type, "invalid_order");
    assert!(failure.error_message.contains("Z-9"), "{failure:?}");
    assert!(
        failure
            .recovery_suggestions
            .iter()
            .any(|s| s.contains("A-1, B-2, C-3")),
        "{failure:?}"
    );
}

#[onex::tokio::test(crate = "onex::tokio")]
async fn without_the_writer_the_step_times_out_and_the_adapter_is_told() {
    let cli = system(false).await;
    let error = cli
        .requests()
        .place_order(&PlaceOrder { order: order("B-2") }, Uuid::new_v4())
        .await
        .expect_err("the workflow fails");
    let failure = error.failure().expect("a failed workflow");
    assert_eq!(failure.failed_step, "persist_order");
    assert_eq!(failure.error_type, "timeout");
    assert!(!failure.recovery_suggestions.is_empty(), "{failure:?}");
}
