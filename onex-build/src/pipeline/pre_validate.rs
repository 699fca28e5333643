//! Stage 3, pre-validate: the quality gates run on the parsed contract;
//! any error stops the pipeline for that contract.

use super::{StageError, report::GateResult};
use crate::{
    contract::{Diagnostic, Diagnostics, LoadedContract},
    naming::is_snake_case,
};

/// The gate that keeps the node crate inside the output directory.
pub const OUTPUT_PATH_GATE: &str = "OUT-001";

/// Runs the gates; returns the gates that passed, or every error.
pub fn pre_validate(loaded: &LoadedContract) -> Result<Vec<GateResult>, StageError> {
    let name = &loaded.contract.node.name;
    if !is_snake_case(name) {
        return Err(StageError::Contract(Diagnostics::from(
            Diagnostic::new(
                OUTPUT_PATH_GATE,
                &loaded.path,
                "the node name is not a snake_case name, so it cannot name the node crate's folder",
            )
            .path("node.name")
            .expected("snake_case: lower-case letters, digits and single underscores")
            .found(name.clone())
            .help("rename the node, e.g. `postgres_writer`"),
        )));
    }
    Ok(vec![GateResult::passed(
        OUTPUT_PATH_GATE,
        "node crate stays inside the output directory",
    )])
}
