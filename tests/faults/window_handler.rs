//! The business logic of the `fault_window` reducer of the fault suite: a
//! window's state lists the sequence numbers (payload field `seq`) of the
//! samples folded into it, so that a checker can tell which inputs some
//! published state reflects.

use crate::{
    OperationError,
    events::{Recount, WindowState},
};

/// The reducer's handler.
#[derive(Debug)]
pub struct FaultWindowHandler {}

impl FaultWindowHandler {
    /// Nothing to set up.
    pub async fn new() -> Result<Self, OperationError> {
        Ok(FaultWindowHandler {})
    }
}

impl crate::Handler for FaultWindowHandler {
    /// Not used by the suite.
    async fn recount(
        &self,
        input: Recount,
        _context: crate::Context<'_>,
    ) -> Result<WindowState, OperationError> {
        let _ = input;
        Err(OperationError::not_implemented("recount"))
    }
}

impl crate::Reducer for FaultWindowHandler {
    /// The window's state: its samples' seqs, and the running total.
    fn reduce_window(
        &self,
        state: &mut Option<WindowState>,
        envelopes: &[onex::OnexEnvelopeV1],
    ) -> Result<(), OperationError> {
        let window_seqs = envelopes
            .iter()
            .map(|envelope| {
                envelope.payload_value()["seq"].as_u64().ok_or_else(|| {
                    OperationError::new("invalid_input", "a sample without a numeric `seq`")
                })
            })
            .collect::<Result<Vec<u64>, OperationError>>()?;
        let total = state.as_ref().map_or(0, |s| s.total) + window_seqs.len() as u64;
        *state = Some(WindowState { window_seqs, total });
        Ok(())
    }
}
