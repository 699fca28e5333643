//! The generator on the bus: what publishing the pipeline's progress costs
//! `cargo onex generate`, and the round trip of `generate --via-bus` to a
//! generator service (`cargo onex serve`). Writes JSON results.
//!
//! ```text
//! onex-bench-generator-bus --cli target/release/cargo-onex \
//!     --brokers 127.0.0.1:19092 --counts 1,1000 --runs 5 --large-runs 3 \
//!     --round-trips 10 --out generator_bus.json
//! ```
//!
//! Progress: the CLI generates N synthetic contracts into a fresh folder
//! (cold), once without a broker (nothing published) and once with
//! `KAFKA_BOOTSTRAP_SERVERS` set (every stage's started and completed event
//! and each contract's outcome published, and delivered before the command
//! ends), alternately, `--runs` times (`--large-runs` from 1,000 contracts),
//! each after `sync`; medians of the wall times. The broker runs on the
//! same cores, so its work on the events counts too. Round trip: a `cargo onex serve` process
//! runs; `cargo onex generate --via-bus` for one contract into a fresh
//! folder is timed from start to exit (joining the bus, sending the
//! request, the service's run and its progress, the outcome), beside the
//! same command run locally without a broker.

use std::{
    error::Error,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use onex_bench::{stats, synth};
use serde_json::{Value, json};

type BoxError = Box<dyn Error + Send + Sync>;

struct Args {
    cli: PathBuf,
    brokers: String,
    counts: Vec<usize>,
    runs: usize,
    large_runs: usize,
    round_trips: usize,
    onex_path: PathBuf,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        cli: PathBuf::new(),
        brokers: String::new(),
        counts: vec![1, 1000],
        runs: 5,
        large_runs: 3,
        round_trips: 10,
        onex_path: Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--cli" => args.cli = value()?.into(),
            "--brokers" => args.brokers = value()?,
            "--counts" => {
                args.counts = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--runs" => args.runs = value()?.parse()?,
            "--large-runs" => args.large_runs = value()?.parse()?,
            "--round-trips" => args.round_trips = value()?.parse()?,
            "--out" => args.out = Some(value()?.into()),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    if args.cli.as_os_str().is_empty() || args.brokers.is_empty() {
        return Err("--cli and --brokers are required".into());
    }
    Ok(args)
}

/// `cargo onex` with a fresh environment's settings; the broker only when
/// asked.
fn onex(args: &Args, dir: &Path, environment: &str, broker: bool) -> Command {
    let mut command = Command::new(&args.cli);
    command
        .arg("onex")
        .current_dir(dir)
        .env("ONEX_PATH", &args.onex_path)
        .env("KAFKA_ENVIRONMENT", environment)
        .env("NO_COLOR", "1")
        .env_remove("KAFKA_BOOTSTRAP_SERVERS");
    if broker {
        command.env("KAFKA_BOOTSTRAP_SERVERS", &args.brokers);
    }
    command
}

/// Runs a command to its end; its wall time. The page cache is written
/// back first: a run that writes 1,000 node crates leaves seconds of
/// writeback behind, which would otherwise land on the next run.
fn timed(command: &mut Command) -> Result<Duration, BoxError> {
    let _ = Command::new("sync").status();
    let started = Instant::now();
    let output = command.output()?;
    let wall = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(wall)
}

fn progress(args: &Args, work: &Path, environment: &str) -> Result<Vec<Value>, BoxError> {
    let examples = synth::example_contracts(&args.onex_path.join("contracts"))?;
    let mut rows = Vec::new();
    for &n in &args.counts {
        let contracts = synth::write_contracts(&examples, &work.join(format!("c{n}")), n)?;
        let runs = if n >= 1000 {
            args.large_runs
        } else {
            args.runs
        };
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for run in 0..runs {
            for broker in [false, true] {
                let out = work.join(format!("out-{n}-{run}-{broker}"));
                let wall = timed(
                    onex(args, work, environment, broker)
                        .args(["generate", "-q", "--out"])
                        .arg(&out)
                        .args(&contracts),
                )?;
                // Kept until the end: deleting 1,000 node crates makes the
                // disk busy (discards) during the next run.
                let list = if broker { &mut with } else { &mut without };
                list.push(stats::ms(wall));
                eprintln!(
                    "{n:>5} contracts, run {run}: {:>9.2} ms {}",
                    stats::ms(wall),
                    if broker {
                        "publishing progress"
                    } else {
                        "without a bus"
                    }
                );
            }
        }
        let (a, b) = (stats::median(&without), stats::median(&with));
        rows.push(json!({
            "contracts": n,
            "runs": runs,
            "without_bus_ms": a,
            "with_bus_ms": b,
            "overhead_pct": (b - a) / a * 100.0,
            "without_bus_ms_runs": without,
            "with_bus_ms_runs": with,
            // Per contract: 8 stages started and completed, and the outcome.
            "events": n * 17,
        }));
    }
    Ok(rows)
}

/// The generator service, until dropped.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(args: &Args, work: &Path, environment: &str) -> Result<Service, BoxError> {
    let log = work.join("serve.log");
    let child = onex(args, work, environment, true)
        .args(["serve", "--contract-root", ".", "--out-root", "."])
        .env("KAFKA_GROUP", format!("{environment}-generator"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let service = Service(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Serving generation requests") {
            return Ok(service);
        }
        if Instant::now() > deadline {
            return Err(format!("cargo onex serve did not start:\n{text}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn round_trip(args: &Args, work: &Path, environment: &str) -> Result<Value, BoxError> {
    let examples = synth::example_contracts(&args.onex_path.join("contracts"))?;
    let contract = synth::write_contracts(&examples, &work.join("rt"), 1)?
        .pop()
        .ok_or("no contract")?;
    let relative = contract.strip_prefix(work)?.to_path_buf();
    let _service = serve(args, work, environment)?;
    let (mut via_bus, mut local) = (Vec::new(), Vec::new());
    for run in 0..args.round_trips {
        let out = format!("rt-out-{run}");
        let wall = timed(
            onex(args, work, environment, true)
                .args(["generate", "-q", "--via-bus", "--out", &out])
                .arg(&relative),
        )?;
        via_bus.push(stats::ms(wall));
        let out = format!("rt-local-{run}");
        let wall = timed(
            onex(args, work, environment, false)
                .args(["generate", "-q", "--out", &out])
                .arg(&relative),
        )?;
        local.push(stats::ms(wall));
        eprintln!(
            "round trip {run}: --via-bus {:>8.2} ms, local {:>8.2} ms",
            via_bus[run], local[run]
        );
    }
    Ok(json!({
        "runs": args.round_trips,
        "via_bus_ms": stats::median(&via_bus),
        "via_bus_p90_ms": stats::percentile(&via_bus, 90.0),
        "local_ms": stats::median(&local),
        "via_bus_ms_runs": via_bus,
        "local_ms_runs": local,
    }))
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let work = tempfile::tempdir()?;
    let environment = format!("benchgen{}", std::process::id());
    let progress = progress(&args, work.path(), &environment)?;
    let round_trip = round_trip(&args, work.path(), &environment)?;
    let result = json!({ "progress": progress, "round_trip": round_trip });
    let text = serde_json::to_string_pretty(&result)?;
    match &args.out {
        Some(path) => std::fs::write(path, text)?,
        None => println!("{text}"),
    }
    Ok(())
}
