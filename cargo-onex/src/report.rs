//! The per-contract lines printed after a run.

use std::fmt::Write as _;

use onex_build::pipeline::{NodeOutcome, PipelineReport};

use crate::Workspace;

/// One line per contract: what happened to its node crate.
pub fn summary(workspace: &Workspace, report: &PipelineReport) -> String {
    let mut out = String::new();
    for contract in &report.contracts {
        let source = workspace.display(&contract.contract).display();
        let node = workspace.display(&contract.node_dir).display();
        let what = match &contract.outcome {
            NodeOutcome::Unchanged => "unchanged (contract and generator as before)".to_owned(),
            NodeOutcome::UpToDate => "up to date".to_owned(),
            NodeOutcome::Written { files } => format!("wrote {}", files.join(", ")),
            NodeOutcome::Stale { files } => format!("stale: {}", files.join(", ")),
            NodeOutcome::Validated => {
                let gates: Vec<&str> = contract.gates.iter().map(|g| g.id.as_str()).collect();
                format!("valid (gates passed: {})", gates.join(", "))
            }
        };
        let _ = writeln!(out, "{source} -> {node}: {what}");
    }
    out
}
