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
    /// The contract's node name.
    pub node_name: String,
    /// The node type (`effect`, ...); `None` when the node crate was
    /// unchanged and the contract was not read again.
    pub node_type: Option<String>,
    /// The contract hash ([`crate::contract::contract_hash`]); `None` when
    /// the node crate was unchanged and the contract was not read again.
    pub contract_hash: Option<String>,
    /// The node crate's folder.
    pub node_dir: PathBuf,
    /// What happened.
    pub outcome: NodeOutcome,
    /// The gates that ran (empty when skipped as unchanged).
    pub gates: Vec<GateResult>,
    /// What the contract routes nowhere (commands and subscriptions that
    /// reach no operation, operations nothing triggers); empty when skipped
    /// as unchanged.
    pub warnings: Vec<String>,
}

/// The result of a run: per-contract reports and the time spent per stage,
/// summed over contracts.
///
/// Contracts are prepared on several threads at once, so the stage times
/// add up to more than the wall time of the run when threads overlap: the
/// two are different measures, and the table shows both.
#[derive(Debug, Clone, Default)]
pub struct PipelineReport {
    /// One report per contract, in the order given.
    pub contracts: Vec<ContractReport>,
    /// Time per stage, summed over contracts; stages that did not run are
    /// absent.
    pub timings: BTreeMap<Stage, Duration>,
    /// The wall time of the whole run, from start to the last write.
    pub total: Duration,
    /// How many threads ran stages 1 to 5.5 (the writer included).
    pub threads: usize,
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

/// Displays the per-stage timings as a table: one row per stage, their sum,
/// and the wall time of the run.
///
/// Each time is rounded to the microsecond before it is summed, so the sum
/// row is exactly the sum of the rows above it.
#[derive(Debug)]
pub struct TimingTable<'a>(&'a PipelineReport);

impl TimingTable<'_> {
    /// The sum of the stage times, in whole microseconds.
    pub fn stage_sum_micros(&self) -> u128 {
        self.0.timings.values().map(Duration::as_micros).sum()
    }
}

fn millis(micros: u128) -> String {
    format!("{}.{:03} ms", micros / 1000, micros % 1000)
}

impl fmt::Display for TimingTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<6} {:<26} {:>12}", "stage", "name", "time")?;
        for stage in Stage::ALL {
            let time = match self.0.timings.get(&stage) {
                Some(d) => millis(d.as_micros()),
                None => "skipped".to_owned(),
            };
            writeln!(f, "{:<6} {:<26} {:>12}", stage.number(), stage.name(), time)?;
        }
        let contracts = self.0.contracts.len();
        let threads = self.0.threads.max(1);
        writeln!(
            f,
            "{:<6} {:<26} {:>12}  (all stages of {contracts} contract{} on {threads} thread{})",
            "",
            "sum of stage times",
            millis(self.stage_sum_micros()),
            if contracts == 1 { "" } else { "s" },
            if threads == 1 { "" } else { "s" },
        )?;
        write!(
            f,
            "{:<6} {:<26} {:>12}  (start to finish)",
            "",
            "wall time",
            millis(self.0.total.as_micros())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sum row is the sum of the stage rows as printed, to the
    /// microsecond, whatever the wall time.
    #[test]
    fn the_table_adds_up() {
        let mut report = PipelineReport {
            total: Duration::from_micros(1_500),
            threads: 4,
            ..PipelineReport::default()
        };
        report.add_time(Stage::Parse, Duration::from_nanos(1_234_567));
        report.add_time(Stage::Parse, Duration::from_nanos(1_000_999));
        report.add_time(Stage::Generate, Duration::from_nanos(2_000_400));
        let table = report.timing_table().to_string();
        let ms = |line: &str| -> u128 {
            let field = line
                .split_whitespace()
                .rev()
                .find(|w| w.contains('.'))
                .unwrap_or("0");
            let (whole, frac) = field.split_once('.').unwrap_or((field, "0"));
            whole.parse::<u128>().unwrap_or(0) * 1000 + frac.parse::<u128>().unwrap_or(0)
        };
        let rows: u128 = table
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()) && l.contains(" ms"))
            .map(|l| ms(l.split("  (").next().unwrap_or(l)))
            .sum();
        let sum_line = table.lines().find(|l| l.contains("sum of stage times"));
        let sum = sum_line.map(|l| ms(l.split("  (").next().unwrap_or(l)));
        assert_eq!(Some(rows), sum, "{table}");
        assert_eq!(rows, 4_235, "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.contains("wall time") && l.contains(" 1.500 ms")),
            "{table}"
        );
        assert!(table.contains("on 4 threads"), "{table}");
    }
}
