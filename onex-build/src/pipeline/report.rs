//! What a run did: per-contract outcomes, gate results and stage timings.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use super::Stage;

/// The result of one quality gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateResult {
    /// Stable gate id, e.g. `SV-001`.
    pub id: String,
    /// What the gate checks.
    pub description: String,
    /// Whether it passed.
    pub passed: bool,
}

impl GateResult {
    /// A passed gate.
    pub fn passed(id: impl Into<String>, description: impl Into<String>) -> Self {
        GateResult {
            id: id.into(),
            description: description.into(),
            passed: true,
        }
    }
}

/// What happened to one contract's node crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeOutcome {
    /// Same contract, same generator, files intact: nothing rendered.
    Unchanged,
    /// Rendered; these files (relative to the node crate) were written.
    Written {
        /// Files written, sorted.
        files: Vec<String>,
    },
    /// Rendered and nothing differed from what is on disk.
    UpToDate,
    /// `--check`: these files are missing or differ.
    Stale {
        /// Stale files, sorted.
        files: Vec<String>,
    },
    /// `cargo onex check`: validated, nothing written.
    Validated,
}

/// One contract's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractReport {
    /// The contract file.
    pub contract: PathBuf,
    /// The node crate's folder.
    pub node_dir: PathBuf,
    /// What happened.
    pub outcome: NodeOutcome,
    /// The gates that ran (empty when skipped as unchanged).
    pub gates: Vec<GateResult>,
}

/// The result of a run: per-contract reports and the time spent per stage,
/// summed over contracts.
#[derive(Debug, Clone, Default)]
pub struct PipelineReport {
    /// One report per contract, in the order given.
    pub contracts: Vec<ContractReport>,
    /// Time per stage; stages that did not run are absent.
    pub timings: BTreeMap<Stage, Duration>,
    /// The whole run.
    pub total: Duration,
}

impl PipelineReport {
    /// Adds time to a stage.
    pub fn add_time(&mut self, stage: Stage, elapsed: Duration) {
        *self.timings.entry(stage).or_default() += elapsed;
    }

    /// Every stale file as `node_dir/file`, for `--check`.
    pub fn stale_files(&self) -> Vec<PathBuf> {
        self.contracts
            .iter()
            .flat_map(|c| match &c.outcome {
                NodeOutcome::Stale { files } => {
                    files.iter().map(|f| c.node_dir.join(f)).collect::<Vec<_>>()
                }
                _ => Vec::new(),
            })
            .collect()
    }

    /// A table of each stage's time.
    pub fn timing_table(&self) -> TimingTable<'_> {
        TimingTable(self)
    }
}

/// Displays the per-stage timings as a table.
#[derive(Debug)]
pub struct TimingTable<'a>(&'a PipelineReport);

impl fmt::Display for TimingTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<6} {:<24} {:>12}", "stage", "name", "time")?;
        for stage in Stage::ALL {
            match self.0.timings.get(&stage) {
                Some(d) => writeln!(
                    f,
                    "{:<6} {:<24} {:>9.3} ms",
                    stage.number(),
                    stage.name(),
                    d.as_secs_f64() * 1000.0
                )?,
                None => writeln!(
                    f,
                    "{:<6} {:<24} {:>12}",
                    stage.number(),
                    stage.name(),
                    "skipped"
                )?,
            }
        }
        write!(
            f,
            "{:<6} {:<24} {:>9.3} ms",
            "",
            "total",
            self.0.total.as_secs_f64() * 1000.0
        )
    }
}
