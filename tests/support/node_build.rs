//! Building a generated node crate the way the tests demand: it builds,
//! and rustc warns about nothing in the crate's own files (warnings from
//! dependencies, the runtime included, are not the node's).

use std::{path::Path, process::Command};

/// `cargo build --all-targets` of a node crate: it builds, and rustc warns
/// about nothing in its own files.
pub fn build_without_warnings(node_dir: &Path, target_dir: &Path) -> Result<(), String> {
    let output = Command::new(env!("CARGO"))
        .args(["build", "--all-targets", "--message-format=json"])
        .arg("--manifest-path")
        .arg(node_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let package = node_dir.display().to_string();
    let messages: Vec<String> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-message")
        .filter(|m| {
            m["target"]["src_path"]
                .as_str()
                .is_some_and(|src| src.starts_with(&package))
        })
        .filter(|m| m["message"]["level"] == "warning" || m["message"]["level"] == "error")
        .map(|m| m["message"]["rendered"].as_str().unwrap_or("").to_owned())
        .collect();
    if !output.status.success() {
        return Err(format!(
            "does not build:\n{}\n{}",
            messages.join("\n"),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    if !messages.is_empty() {
        return Err(format!("has warnings:\n{}", messages.join("\n")));
    }
    Ok(())
}
