//! Stage 7, compile check: `cargo check` of a generated node crate.

use std::{path::Path, process::Command};

use super::StageError;

/// Runs `cargo check` on the node crate; `target_dir` lets several node
/// crates share one build of their dependencies.
pub fn compile_check(node_dir: &Path, target_dir: Option<&Path>) -> Result<(), StageError> {
    let manifest = node_dir.join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .arg("check")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(&manifest);
    if let Some(dir) = target_dir {
        command.arg("--target-dir").arg(dir);
    }
    let output = command
        .output()
        .map_err(|e| StageError::io("cannot run cargo for", &manifest, e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(StageError::Compile {
            manifest,
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}
