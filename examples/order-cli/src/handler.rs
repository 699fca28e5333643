//! The business logic of the `order_cli` node. The node has no operations:
//! it is an adapter that sends the order workflow's `place_order` command
//! and waits for the answer, through its generated `requests()`; the
//! `place-order` program (`src/bin/place-order.rs`) is the command line
//! around it.
//!
//! `cargo onex generate` wrote the first version of this file and never
//! overwrites it; everything else in `src/` follows the contract.

use crate::OperationError;

/// The adapter's business logic: nothing to hold.
#[derive(Debug, Default)]
pub struct OrderCliHandler {}

impl OrderCliHandler {
    /// The handler.
    pub async fn new() -> Result<Self, OperationError> {
        Ok(OrderCliHandler {})
    }
}

impl crate::Handler for OrderCliHandler {}
