//! The `cargo onex generate` pipeline on N synthetic contracts (compile
//! check off): cold (empty output folder), then again with nothing changed.
//! Writes JSON results.
//!
//! ```text
//! onex-bench-pipeline bench --counts 1,10,100,1000 --runs 5 --large-runs 3 \
//!     --out pipeline.json [--cli PATH-TO-cargo-onex --cli-runs 3]
//! onex-bench-pipeline synth --count 1000 --dir DIR
//! ```
//!
//! `bench` runs the library's pipeline in this process and reads its
//! per-stage timings. With `--cli`, it also times the `cargo onex generate`
//! binary as a process (what a user waits for at the prompt), cold and
//! unchanged. `synth` only writes synthetic contracts (for measuring the
//! CLI's peak memory from outside).

use std::{
    collections::BTreeMap,
    error::Error,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use onex_bench::{stats, synth};
use onex_build::pipeline::{Mode, NodeOutcome, Request, RuntimeDependency, Stage, run};
use serde_json::{Value, json};

type BoxError = Box<dyn Error + Send + Sync>;

struct Args {
    command: String,
    counts: Vec<usize>,
    runs: usize,
    /// Runs for 1,000 contracts or more (each takes seconds).
    large_runs: usize,
    /// Runs of the CLI process per count.
    cli_runs: usize,
    count: usize,
    dir: Option<PathBuf>,
    cli: Option<PathBuf>,
    out: Option<PathBuf>,
    contracts: PathBuf,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        command: it
            .next()
            .ok_or("usage: onex-bench-pipeline bench|synth [options]")?,
        counts: vec![1, 10, 100, 1000],
        runs: 5,
        large_runs: 3,
        cli_runs: 3,
        count: 1000,
        dir: None,
        cli: None,
        out: None,
        contracts: synth::default_contracts_dir(),
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--counts" => {
                args.counts = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--runs" => args.runs = value()?.parse()?,
            "--large-runs" => args.large_runs = value()?.parse()?,
            "--cli-runs" => args.cli_runs = value()?.parse()?,
            "--count" => args.count = value()?.parse()?,
            "--dir" => args.dir = Some(value()?.into()),
            "--cli" => args.cli = Some(value()?.into()),
            "--out" => args.out = Some(value()?.into()),
            "--contracts" => args.contracts = value()?.into(),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    Ok(args)
}

fn request(contracts: &[PathBuf], out_dir: &Path) -> Request {
    Request {
        contracts: contracts.to_vec(),
        out_dir: out_dir.to_path_buf(),
        mode: Mode::Write,
        runtime: RuntimeDependency::this_version(),
        compile_check: false,
        target_dir: None,
        contract_path: Vec::new(),
    }
}

/// One timed pipeline run: wall time and time per stage (stage number to
/// seconds).
struct Timed {
    wall: Duration,
    stages: BTreeMap<&'static str, f64>,
    unchanged: usize,
}

fn timed_run(contracts: &[PathBuf], out_dir: &Path) -> Result<Timed, BoxError> {
    let started = Instant::now();
    let report = run(&request(contracts, out_dir))?;
    let wall = started.elapsed();
    let stages = report
        .timings
        .iter()
        .map(|(stage, d)| (stage.number(), d.as_secs_f64()))
        .collect();
    let unchanged = report
        .contracts
        .iter()
        .filter(|c| c.outcome == NodeOutcome::Unchanged)
        .count();
    Ok(Timed {
        wall,
        stages,
        unchanged,
    })
}

/// Runs the CLI on the contracts; its wall time.
fn cli_run(cli: &Path, contracts: &[PathBuf], out_dir: &Path) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let output = Command::new(cli)
        .arg("onex")
        .arg("generate")
        .arg("--out")
        .arg(out_dir)
        .args(contracts)
        .output()?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "{} onex generate failed: {}",
            cli.display(),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(elapsed)
}

fn lines_and_bytes(dir: &Path) -> (usize, usize, usize) {
    let (mut files, mut lines, mut bytes) = (0, 0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(text) = std::fs::read_to_string(&p) {
                files += 1;
                lines += text.lines().count();
                bytes += text.len();
            }
        }
    }
    (files, lines, bytes)
}

fn bench(args: &Args) -> Result<Value, BoxError> {
    let examples = synth::example_contracts(&args.contracts)?;
    let work = tempfile::tempdir()?;
    let mut results = Vec::new();
    for &n in &args.counts {
        let contracts = synth::write_contracts(&examples, &work.path().join(format!("c{n}")), n)?;
        let mut cold_wall = Vec::new();
        let mut warm_wall = Vec::new();
        let mut cold_shares: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut cold_stage_ms: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut warm_stage_ms: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut output = (0, 0, 0);
        let mut cli_cold = Vec::new();
        let mut cli_warm = Vec::new();
        let runs = if n >= 1000 {
            args.large_runs
        } else {
            args.runs
        };
        for r in 0..runs {
            let out_dir = work.path().join(format!("out{n}-{r}"));
            let cold = timed_run(&contracts, &out_dir)?;
            let warm = timed_run(&contracts, &out_dir)?;
            if warm.unchanged != n {
                return Err(format!(
                    "second run: {} of {n} contracts skipped as unchanged",
                    warm.unchanged
                )
                .into());
            }
            if r == 0 {
                output = lines_and_bytes(&out_dir);
            }
            let sum: f64 = cold.stages.values().sum();
            for (stage, secs) in &cold.stages {
                cold_shares.entry(stage).or_default().push(secs / sum);
                cold_stage_ms.entry(stage).or_default().push(secs * 1000.0);
            }
            for (stage, secs) in &warm.stages {
                warm_stage_ms.entry(stage).or_default().push(secs * 1000.0);
            }
            cold_wall.push(stats::ms(cold.wall));
            warm_wall.push(stats::ms(warm.wall));
            eprintln!(
                "{n:>5} contracts, run {r}: cold {:>9.2} ms, unchanged {:>8.2} ms",
                stats::ms(cold.wall),
                stats::ms(warm.wall)
            );
            // Outputs stay until the end: on an ext4 without a journal (as
            // here) every file created within about a minute of mass
            // deletions pays for skipping the deleted inodes, which would
            // make each cold run pay for the previous run's cleanup. That
            // case is measured on its own below.
            if let Some(cli) = args.cli.as_ref().filter(|_| r < args.cli_runs) {
                let out_dir = work.path().join(format!("cli{n}-{r}"));
                cli_cold.push(stats::ms(cli_run(cli, &contracts, &out_dir)?));
                cli_warm.push(stats::ms(cli_run(cli, &contracts, &out_dir)?));
            }
        }
        // The largest count again, each time right after deleting the
        // previous output (`rm -rf generated && cargo onex generate`).
        let mut after_delete = Vec::new();
        if n >= 1000 {
            for r in 0..runs {
                let out_dir = work.path().join(format!("out{n}-{r}"));
                std::fs::remove_dir_all(&out_dir)?;
                let cold = timed_run(&contracts, &out_dir)?;
                eprintln!(
                    "{n:>5} contracts, run {r}: cold right after deleting the output {:>9.2} ms",
                    stats::ms(cold.wall)
                );
                after_delete.push(stats::ms(cold.wall));
            }
        }
        let medians = |m: &BTreeMap<&str, Vec<f64>>| -> BTreeMap<String, f64> {
            m.iter()
                .map(|(k, v)| ((*k).to_owned(), stats::median(v)))
                .collect()
        };
        results.push(json!({
            "contracts": n,
            "runs": runs,
            "cli_runs": cli_cold.len(),
            "cold_ms": stats::median(&cold_wall),
            "cold_ms_runs": cold_wall,
            "cold_after_delete_ms": stats::median(&after_delete),
            "cold_after_delete_ms_runs": after_delete,
            "unchanged_ms": stats::median(&warm_wall),
            "unchanged_ms_runs": warm_wall,
            "cold_stage_ms": medians(&cold_stage_ms),
            "cold_stage_share": medians(&cold_shares),
            "unchanged_stage_ms": medians(&warm_stage_ms),
            "cli_cold_ms": stats::median(&cli_cold),
            "cli_unchanged_ms": stats::median(&cli_warm),
            "output_files": output.0,
            "output_lines": output.1,
            "output_bytes": output.2,
        }));
    }
    let stages: Vec<Value> = Stage::ALL
        .iter()
        .map(|s| json!({ "number": s.number(), "name": s.name() }))
        .collect();
    Ok(json!({
        "settings": {
            "runs": args.runs,
            "large_runs": args.large_runs,
            "cli_runs": args.cli_runs,
            "compile_check": false,
            "examples": examples
                .iter()
                .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                .collect::<Vec<_>>(),
            "cli": args.cli.is_some(),
        },
        "stages": stages,
        "results": results,
    }))
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    match args.command.as_str() {
        "bench" => {
            let result = bench(&args)?;
            let text = serde_json::to_string_pretty(&result)?;
            match &args.out {
                Some(path) => std::fs::write(path, text)?,
                None => println!("{text}"),
            }
        }
        "synth" => {
            let dir = args.dir.as_deref().ok_or("synth needs --dir")?;
            let examples = synth::example_contracts(&args.contracts)?;
            for path in synth::write_contracts(&examples, dir, args.count)? {
                println!("{}", path.display());
            }
        }
        other => return Err(format!("unknown command `{other}`: bench or synth").into()),
    }
    Ok(())
}
