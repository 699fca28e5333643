//! The generator on the bus: what publishing the pipeline's progress costs
//! `cargo onex generate`, and the round trip of `generate --via-bus` to a
//! generator service (`cargo onex serve`). Writes JSON results.
//!
//! ```text
//! onex-bench-generator-bus --cli target/release/cargo-onex \
//!     --brokers 127.0.0.1:19092 --counts 1,1000 --runs 5 --large-runs 3 \
//!     --round-trips 10 --broker-pid-file tansu.pid --scratch /dev/shm \
//!     --out generator_bus.json
//! ```
//!
//! Progress: the CLI generates N synthetic contracts into a fresh folder
//! (cold), once without a broker (nothing published) and once with
//! `KAFKA_BOOTSTRAP_SERVERS` set (every stage's started and completed event
//! and each contract's outcome published, and delivered before the command
//! ends): a first pair not counted, then `--runs` pairs (`--large-runs`
//! from 1,000 contracts), the order within a pair alternating, each run
//! after `sync`; medians of the wall times, and of the CPU times of the
//! command and (`--broker-pid-file`) of the broker. The broker runs on the
//! same cores, so its work on the events counts too. `--scratch` puts the
//! node crates in another folder: on a file system in memory, the disk's
//! swings stay out of the comparison, and each run's output is deleted
//! after it. Round trip: a `cargo onex serve` process
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

use onex_bench::{cpu, stats, synth};
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
    /// The broker's process, whose CPU time is read around each run.
    broker_pid: Option<u32>,
    /// A second place for the progress runs' node crates (a file system
    /// in memory, say), measured beside the benchmark's temporary folder.
    scratch: Option<PathBuf>,
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
        broker_pid: None,
        scratch: None,
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
            "--broker-pid-file" => args.broker_pid = cpu::pid_from_file(&value()?)?,
            "--scratch" => args.scratch = Some(value()?.into()),
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

/// CPU time of the broker's process (user and system), ms.
fn broker_cpu_ms(args: &Args) -> Option<f64> {
    cpu::process_ms(args.broker_pid?)
}

/// What one run took.
struct Timing {
    wall_ms: f64,
    /// CPU of the command (with its own children), ms.
    cli_cpu_ms: Option<f64>,
    /// CPU of the broker during the run, ms.
    broker_cpu_ms: Option<f64>,
}

/// Runs a command to its end; its wall time and CPU. The page cache is
/// written back first: a run that writes 1,000 node crates leaves seconds
/// of writeback behind, which would otherwise land on the next run.
fn timed(args: &Args, command: &mut Command) -> Result<Timing, BoxError> {
    let _ = Command::new("sync").status();
    let (cli_before, broker_before) = (cpu::children_ms(), broker_cpu_ms(args));
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
    let delta = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
    Ok(Timing {
        wall_ms: stats::ms(wall),
        cli_cpu_ms: delta(cli_before, cpu::children_ms()),
        broker_cpu_ms: delta(broker_before, broker_cpu_ms(args)),
    })
}

/// Whether `path` is on a file system in memory (tmpfs), by the longest
/// mount point of /proc/mounts that holds it.
fn on_memory(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point)
                .then_some((point.len(), kind == "tmpfs"))
        })
        .max()
        .is_some_and(|(_, tmpfs)| tmpfs)
}

fn progress(args: &Args, work: &Path, environment: &str) -> Result<Vec<Value>, BoxError> {
    let examples = synth::example_contracts(&args.onex_path.join("contracts"))?;
    let mut rows = Vec::new();
    let places: Vec<&Path> = std::iter::once(work)
        .chain(args.scratch.as_deref())
        .collect();
    for &n in &args.counts {
        let contracts = synth::write_contracts(&examples, &work.join(format!("c{n}")), n)?;
        for place in &places {
            rows.push(progress_in(args, work, place, environment, n, &contracts)?);
        }
    }
    Ok(rows)
}

/// The progress runs for `n` contracts, writing their node crates under
/// `place`.
fn progress_in(
    args: &Args,
    work: &Path,
    place: &Path,
    environment: &str,
    n: usize,
    contracts: &[PathBuf],
) -> Result<Value, BoxError> {
    let runs = if n >= 1000 {
        args.large_runs
    } else {
        args.runs
    };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let (mut cli_cpu_without, mut cli_cpu_with, mut broker_cpu) =
        (Vec::new(), Vec::new(), Vec::new());
    let scratch = tempfile::tempdir_in(place)?;
    let in_memory = on_memory(scratch.path());
    // A first pair that is not counted (the binary and the contracts
    // into the page cache, the broker's topics created), then the
    // pairs, the order of each alternating so that neither side always
    // runs after the other.
    for run in 0..=runs {
        let order = if run % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for broker in order {
            let out = scratch.path().join(format!("out-{n}-{run}-{broker}"));
            let timing = timed(
                args,
                onex(args, work, environment, broker)
                    .args(["generate", "-q", "--out"])
                    .arg(&out)
                    .args(contracts),
            )?;
            // On a disk the node crates stay until the benchmark ends:
            // deleting thousands of files there keeps the disk busy
            // (discards) during the next run.
            if in_memory {
                std::fs::remove_dir_all(&out)?;
            }
            eprintln!(
                "{n:>5} contracts {}, run {run}: {:>9.2} ms, CPU {:>6.0} ms, broker's {:>5.0} ms, {}{}",
                if in_memory { "in memory" } else { "on disk" },
                timing.wall_ms,
                timing.cli_cpu_ms.unwrap_or(f64::NAN),
                timing.broker_cpu_ms.unwrap_or(f64::NAN),
                if broker {
                    "publishing progress"
                } else {
                    "without a bus"
                },
                if run == 0 { " (warm-up)" } else { "" }
            );
            if run == 0 {
                continue;
            }
            let (list, cpu) = if broker {
                (&mut with, &mut cli_cpu_with)
            } else {
                (&mut without, &mut cli_cpu_without)
            };
            list.push(timing.wall_ms);
            cpu.extend(timing.cli_cpu_ms);
            if broker {
                broker_cpu.extend(timing.broker_cpu_ms);
            }
        }
    }
    let (a, b) = (stats::median(&without), stats::median(&with));
    let median_or_null = |values: &[f64]| (!values.is_empty()).then(|| stats::median(values));
    let row = json!({
        "contracts": n,
        "runs": runs,
        "without_bus_ms": a,
        "with_bus_ms": b,
        "overhead_pct": (b - a) / a * 100.0,
        "without_bus_ms_runs": without,
        "with_bus_ms_runs": with,
        // CPU time (user and system) of the command, and of the broker
        // during the runs that published.
        "without_bus_cpu_ms": median_or_null(&cli_cpu_without),
        "with_bus_cpu_ms": median_or_null(&cli_cpu_with),
        "broker_cpu_ms": median_or_null(&broker_cpu),
        "output_in_memory": in_memory,
        // Per contract: 8 stages started and completed, and the outcome.
        "events": n * 17,
    });
    if !in_memory {
        // On the disk, deleted with the benchmark's folder at its end.
        let _ = scratch.keep();
    }
    Ok(row)
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
            args,
            onex(args, work, environment, true)
                .args(["generate", "-q", "--via-bus", "--out", &out])
                .arg(&relative),
        )?;
        via_bus.push(wall.wall_ms);
        let out = format!("rt-local-{run}");
        let wall = timed(
            args,
            onex(args, work, environment, false)
                .args(["generate", "-q", "--out", &out])
                .arg(&relative),
        )?;
        local.push(wall.wall_ms);
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
