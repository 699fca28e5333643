//! Stage 2, pre-validate: the quality gates of [`crate::validate`] run on
//! the contract as written, plus the gate that keeps the node crate inside
//! the output directory; any error stops the pipeline for that contract.

use std::path::PathBuf;

use super::{StageError, report::GateResult};
use crate::{
    contract::{Diagnostic, Diagnostics, LoadedContract},
    naming::is_snake_case,
    validate::{self, GATES},
};

/// The gate that keeps the node crate inside the output directory.
pub const OUTPUT_PATH_GATE: &str = "OUT-001";

/// Runs the gates; returns every gate's result, or every error. Consumed
/// contracts are looked for beside the contract.
pub fn pre_validate(loaded: &LoadedContract) -> Result<Vec<GateResult>, StageError> {
    pre_validate_with(loaded, &[])
}

/// [`pre_validate`], looking for consumed contracts beside the contract,
/// then in each folder of `contract_path`.
pub fn pre_validate_with(
    loaded: &LoadedContract,
    contract_path: &[PathBuf],
) -> Result<Vec<GateResult>, StageError> {
    check_with(loaded, contract_path)?;
    Ok(passed_gates())
}

/// The gates of [`pre_validate_with`], without the list of passed gates
/// (what a build script runs).
pub fn check_with(loaded: &LoadedContract, contract_path: &[PathBuf]) -> Result<(), StageError> {
    check(loaded, validate::validate_with(loaded, contract_path))
}

/// The gates for a contract compiled for its own types and events (a build
/// script's consumed contract): the contracts it consumes are not looked
/// for (see [`validate::validate_own`]).
pub fn check_own(loaded: &LoadedContract) -> Result<(), StageError> {
    check(loaded, validate::validate_own(loaded))
}

/// The output path gate after the contract's gates.
fn check(loaded: &LoadedContract, validated: Result<(), Diagnostics>) -> Result<(), StageError> {
    let mut errors = match validated {
        Ok(()) => Vec::new(),
        Err(diagnostics) => diagnostics.0,
    };
    let name = &loaded.contract.node.name;
    if !is_snake_case(name) && !errors.iter().any(|d| d.field_path == "node.name") {
        errors.push(
            Diagnostic::new(
                OUTPUT_PATH_GATE,
                &loaded.path,
                "the node name is not a snake_case name, so it cannot name the node crate's folder",
            )
            .path("node.name")
            .expected("snake_case: lower-case letters, digits and single underscores")
            .found(name.clone())
            .help("rename the node, e.g. `postgres_writer`"),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StageError::Contract(Diagnostics(errors)))
    }
}

/// Every gate of this stage, passed.
fn passed_gates() -> Vec<GateResult> {
    let mut gates: Vec<GateResult> = GATES
        .iter()
        .map(|gate| GateResult::passed(gate.id, gate.name))
        .collect();
    gates.push(GateResult::passed(
        OUTPUT_PATH_GATE,
        "node crate stays inside the output directory",
    ));
    gates
}
