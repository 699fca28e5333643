//! Stage 1, parse: a contract file to a [`LoadedContract`].

use std::path::Path;

use super::StageError;
use crate::contract::{self, LoadedContract};

/// Reads and deserializes one contract.
pub fn parse(path: &Path) -> Result<LoadedContract, StageError> {
    contract::load_file(path).map_err(StageError::Contract)
}
