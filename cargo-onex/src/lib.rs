//! The `cargo onex` command line: arguments, workspace discovery and the
//! report. The pipeline itself lives in `onex_build::pipeline`.
#![deny(missing_docs)]

mod args;
mod bus;
pub mod events;
mod interop;
mod nodes;
mod progress;
mod report;
pub mod runtime;
mod serve;
mod via_bus;
mod workspace;

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Parser as _;
use onex_build::pipeline::{
    self, Mode, PipelineReport, Request,
    manifest::{self, MANIFEST_FILE},
    paths::normalize,
};

pub use args::{CheckArgs, Cli, ColorChoice, Command, GenerateArgs};
use report::{Shell, Verbosity};
pub use workspace::Workspace;

/// Parses the arguments (dropping the `onex` cargo passes when run as
/// `cargo onex`) and runs the command. Errors are printed here, in the
/// chosen colours; the exit code says whether the command succeeded.
pub fn run(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<ExitCode> {
    let args = args::without_cargo_subcommand(args);
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version are not errors; clap knows which is which.
            error.print().context("cannot print the usage")?;
            return Ok(if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            });
        }
    };
    let verbosity = match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (false, 0) => Verbosity::Normal,
        (false, _) => Verbosity::Verbose,
    };
    let mut workspace = Workspace::discover(cli.manifest_path.as_deref())?;
    workspace.quiet = verbosity == Verbosity::Quiet;
    let mut shell = Shell::new(verbosity, cli.color, workspace.cwd.clone());
    let options = Options {
        timings: cli.timings,
        manifest_path: cli.manifest_path,
        // The command as typed, for the fix `--check` prints.
        typed: args.iter().skip(1).cloned().collect(),
    };
    let result = match cli.command {
        Command::Generate(args) => generate(&workspace, &mut shell, &options, args),
        Command::Check(args) => check(&workspace, &mut shell, &options, args),
        Command::Serve(args) => serve_command(&workspace, args),
        Command::Nodes(args) => nodes::run(&args),
        Command::Schema(args) => interop::schema(&workspace, &shell, &args),
        Command::Asyncapi(args) => interop::asyncapi(&workspace, &shell, &args),
    };
    match result {
        Ok(code) => Ok(code),
        Err(error) => {
            shell.error(&format!("{error:#}"));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The global settings a command reads besides its own arguments.
struct Options {
    timings: bool,
    manifest_path: Option<PathBuf>,
    typed: Vec<OsString>,
}

/// The contract files of the arguments, each remembered as typed so that
/// reports show it so.
fn contracts(
    workspace: &Workspace,
    shell: &mut Shell,
    args: &[PathBuf],
) -> anyhow::Result<Vec<PathBuf>> {
    let contracts = workspace.contracts(args)?;
    for arg in args {
        let direct = workspace.cwd.join(arg);
        if direct.is_file() {
            shell.remember(normalize(&direct), arg.display().to_string());
        }
    }
    Ok(contracts)
}

/// The node crate the current directory lies in: the nearest folder, here
/// or above, that holds a `.onex-generated` manifest.
fn enclosing_node_crate(cwd: &Path) -> Option<PathBuf> {
    cwd.ancestors()
        .find(|dir| dir.join(MANIFEST_FILE).is_file())
        .map(Path::to_path_buf)
}

fn generate(
    workspace: &Workspace,
    shell: &mut Shell,
    options: &Options,
    args: GenerateArgs,
) -> anyhow::Result<ExitCode> {
    // Inside a node crate, with nothing named, regenerate that crate from
    // the contract its manifest records, into the folder it lies in.
    let inside = if args.contracts.is_empty() && args.out.is_none() {
        enclosing_node_crate(&workspace.cwd)
    } else {
        None
    };
    let project;
    let (contracts, out_dir, workspace) = match inside {
        Some(node_dir) => {
            let (contract, out_dir) = recorded(&node_dir)?;
            // The runtime is found from the project around the node crate,
            // as when it was generated there; the node crate's own
            // `[workspace]` would hide it.
            project = match &options.manifest_path {
                Some(_) => None,
                None => out_dir
                    .ancestors()
                    .map(|dir| dir.join("Cargo.toml"))
                    .find(|manifest| manifest.is_file())
                    .map(|manifest| {
                        Workspace::discover(Some(&manifest)).map(|mut project| {
                            project.quiet = workspace.quiet;
                            project
                        })
                    })
                    .transpose()?,
            };
            shell.verbose_status(
                "Regenerating",
                &format!("{} from {}", shell.path(&node_dir), shell.path(&contract)),
            );
            (
                vec![contract],
                out_dir,
                project.as_ref().unwrap_or(workspace),
            )
        }
        None => (
            contracts(workspace, shell, &args.contracts)?,
            workspace.out_dir(args.out.as_deref())?,
            workspace,
        ),
    };
    let request = Request {
        contracts,
        runtime: workspace.runtime_dependency(&out_dir, args.onex_path.as_deref())?,
        target_dir: if args.compile_check {
            Some(workspace.node_target_dir()?)
        } else {
            None
        },
        out_dir,
        mode: if args.check { Mode::Check } else { Mode::Write },
        compile_check: args.compile_check,
        contract_path: args.contract_path.clone(),
    };
    if args.via_bus {
        let Some(config) = args.bus.configured()? else {
            bail!(
                "--via-bus needs a broker\n\
                 help: set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap-servers HOST:PORT"
            );
        };
        let waits = via_bus::Waits {
            answer: Duration::from_secs(args.answer_timeout),
            outcome: Duration::from_secs(args.bus_timeout),
        };
        let contracts: Vec<PathBuf> = request.contracts.iter().map(|c| absolute(c)).collect();
        match via_bus::generate(
            config,
            &contracts,
            &absolute(&request.out_dir),
            args.compile_check,
            &waits,
        )? {
            Some(outcomes) => return Ok(report_remote(shell, &outcomes)),
            None => shell.warning(&format!(
                "no generator answered on the bus within {} s; generating here instead",
                args.answer_timeout
            )),
        }
    }
    let Some(report) = run_pipeline_published(shell, &request, &args.bus)? else {
        return Ok(ExitCode::FAILURE);
    };
    shell.report(&report, options.timings);
    let stale = report.stale_files();
    if args.check && !stale.is_empty() {
        let n = stale.len();
        let files: Vec<String> = stale
            .iter()
            .map(|f| format!("  {}", shell.path(f)))
            .collect();
        shell.error(&format!(
            "{n} generated file{} stale:\n{}",
            if n == 1 { " is" } else { "s are" },
            files.join("\n")
        ));
        shell.help(&format!(
            "run `{}` and commit the result",
            regenerate_command(&options.typed)
        ));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The contract a node crate records and the folder it lies in.
fn recorded(node_dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let Some(contract) = manifest::recorded_contract(node_dir) else {
        bail!(
            "`{}` holds a node crate whose `{MANIFEST_FILE}` records no contract\n\
             help: name the contract once, from here: `cargo onex generate path/to/contract.yaml --out ..`",
            node_dir.display()
        );
    };
    let contract = normalize(&contract);
    if !contract.is_file() {
        bail!(
            "this node crate was generated from `{}`, which is not there any more\n\
             help: name the contract, from here: `cargo onex generate path/to/contract.yaml --out ..`",
            contract.display()
        );
    }
    let out_dir = node_dir
        .parent()
        .map_or_else(|| node_dir.to_path_buf(), Path::to_path_buf);
    Ok((contract, out_dir))
}

/// The command line typed, without `--check`: what brings the stale files
/// up to date, run where this one ran.
fn regenerate_command(typed: &[OsString]) -> String {
    let mut words = vec!["cargo".to_owned(), "onex".to_owned()];
    words.extend(
        typed
            .iter()
            .filter(|arg| *arg != "--check")
            .map(|arg| pipeline::manifest::shell_word(&arg.to_string_lossy())),
    );
    words.join(" ")
}

/// A path made absolute against the current directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Prints what the generator service did; the exit code says whether every
/// contract was generated.
fn report_remote(shell: &Shell, outcomes: &[(PathBuf, via_bus::Outcome)]) -> ExitCode {
    let mut failed = false;
    for (contract, outcome) in outcomes {
        match outcome {
            via_bus::Outcome::Completed(done) => {
                let result = &done.result;
                shell.status(
                    "Generated",
                    &format!(
                        "{} in {} by the generator service ({} file{} written, {:.0} ms)",
                        result.node_name,
                        shell.path(Path::new(&result.output_path)),
                        result.files_written.len(),
                        if result.files_written.len() == 1 {
                            ""
                        } else {
                            "s"
                        },
                        result.total_duration_ms
                    ),
                );
            }
            via_bus::Outcome::Failed(failure) => {
                failed = true;
                let at = failure
                    .location
                    .as_deref()
                    .map(|l| format!("\n  --> {l}"))
                    .unwrap_or_default();
                shell.error(&format!(
                    "{} failed for {} [{}]: {}{at}",
                    failure.failed_stage,
                    shell.path(contract),
                    failure.error_code,
                    failure.error_message
                ));
                for suggestion in &failure.recovery_suggestions {
                    shell.help(suggestion);
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// From how many contracts progress events are batched longer.
const MANY_CONTRACTS: usize = 20;

/// [`run_pipeline`], publishing its progress when a broker is configured
/// (`KAFKA_BOOTSTRAP_SERVERS` or `--bootstrap-servers`); without one it
/// costs nothing: no runtime, no channel, no events.
fn run_pipeline_published(
    shell: &Shell,
    request: &Request,
    bus_args: &bus::BusArgs,
) -> anyhow::Result<Option<PipelineReport>> {
    let Some(mut config) = bus_args.configured()? else {
        return Ok(run_pipeline(shell, request));
    };
    // Many contracts make many events: batched for a second rather than a
    // millisecond, the broker takes them in a few large requests (Tansu's
    // CPU for 1,000 contracts' 17,000 events fell from about 2.4 s at 1 ms
    // and 100 ms to 0.4 s), and the last batch goes out at once when the
    // run ends. A watcher sees progress a second late, which a run this
    // long does not mind. `KAFKA_LINGER_MS` still decides.
    if request.contracts.len() > MANY_CONTRACTS && std::env::var_os("KAFKA_LINGER_MS").is_none() {
        config.linger_ms = 1000;
    }
    let environment = config.environment.clone();
    let runtime = bus::one_worker_runtime()?;
    let correlation = request
        .contracts
        .iter()
        .map(|c| (c.clone(), onex::uuid::Uuid::new_v4()))
        .collect();
    // The pipeline does not wait for the bus: its progress waits in the
    // channel while the bus is joined.
    let progress = progress::BusProgress::start_joining(
        runtime.handle(),
        bus::join(config, events::pipeline::SERVICE),
        correlation,
    );
    let result = pipeline::run_with_progress(request, &|p| progress.note(p));
    let delivered = runtime.block_on(progress.finish(result.as_ref().map(|_| ())));
    if let Some(error) = &delivered.join_error {
        shell.warning(&format!("progress not published: {error}"));
    } else if delivered.failed > 0 {
        shell.warning(&format!(
            "{} of {} progress events were not delivered: {}",
            delivered.failed,
            delivered.failed + delivered.published,
            delivered.first_error.as_deref().unwrap_or("unknown reason")
        ));
    } else {
        shell.status(
            "Published",
            &format!("{} progress events in `{environment}`", delivered.published),
        );
    }
    Ok(match result {
        Ok(report) => Some(report),
        Err(error) => {
            shell.pipeline_error(&error);
            None
        }
    })
}

/// `cargo onex serve`: the roots default to the current directory.
fn serve_command(workspace: &Workspace, args: serve::ServeArgs) -> anyhow::Result<ExitCode> {
    let roots = serve::Roots::new(
        args.contract_root.as_deref().unwrap_or(&workspace.cwd),
        args.out_root.as_deref().unwrap_or(&workspace.cwd),
    )?;
    // Each request's node crates find the runtime as `generate`'s would.
    let project = std::sync::Mutex::new(workspace.clone());
    let onex_path = args.onex_path.clone();
    let runtime_dependency = Box::new(move |out_dir: &Path| {
        project
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .runtime_dependency(out_dir, onex_path.as_deref())
    });
    serve::serve(&args, roots, runtime_dependency)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the pipeline; on failure prints the error (every diagnostic with
/// its source line) and returns `None`.
fn run_pipeline(shell: &Shell, request: &Request) -> Option<PipelineReport> {
    match pipeline::run(request) {
        Ok(report) => Some(report),
        Err(error) => {
            shell.pipeline_error(&error);
            None
        }
    }
}

fn check(
    workspace: &Workspace,
    shell: &mut Shell,
    options: &Options,
    args: CheckArgs,
) -> anyhow::Result<ExitCode> {
    // Inside a node crate, with nothing named: its recorded contract.
    let inside = if args.contracts.is_empty() {
        enclosing_node_crate(&workspace.cwd)
    } else {
        None
    };
    let (contracts, out_dir) = match inside {
        Some(node_dir) => {
            let (contract, out_dir) = recorded(&node_dir)?;
            (vec![contract], out_dir)
        }
        None => (
            contracts(workspace, shell, &args.contracts)?,
            workspace.check_out_dir()?,
        ),
    };
    let request = |contracts: &[PathBuf]| Request {
        contracts: contracts.to_vec(),
        // Nothing is written, so the runtime's place does not matter.
        runtime: pipeline::RuntimeDependency::this_version(),
        target_dir: None,
        out_dir: out_dir.clone(),
        mode: Mode::Validate,
        compile_check: false,
        contract_path: args.contract_path.clone(),
    };
    // The pipeline stops at the first invalid contract; checking writes
    // nothing, so the rest are checked too, and every invalid contract is
    // reported, as cargo reports every crate that fails.
    let started = std::time::Instant::now();
    let total = contracts.len();
    let mut report = PipelineReport::default();
    let mut failed = 0;
    let mut rest: &[PathBuf] = &contracts;
    while !rest.is_empty() {
        match pipeline::run(&request(rest)) {
            Ok(done) => {
                merge(&mut report, done);
                break;
            }
            Err(error) => {
                shell.pipeline_error(&error);
                failed += 1;
                let Some(at) = rest.iter().position(|c| *c == error.contract) else {
                    break;
                };
                // The contracts before it passed; their report went with
                // the error.
                if at > 0 {
                    match pipeline::run(&request(&rest[..at])) {
                        Ok(done) => merge(&mut report, done),
                        Err(error) => {
                            shell.pipeline_error(&error);
                            failed += 1;
                        }
                    }
                }
                rest = &rest[at + 1..];
            }
        }
    }
    report.total = started.elapsed();
    if failed == 0 {
        shell.report(&report, options.timings);
        return Ok(ExitCode::SUCCESS);
    }
    shell.report_contracts(&report);
    shell.error(&format!(
        "{failed} of {total} contract{} failed the checks",
        if total == 1 { "" } else { "s" }
    ));
    Ok(ExitCode::FAILURE)
}

/// Adds a run's contracts and stage times to `into`.
fn merge(into: &mut PipelineReport, run: PipelineReport) {
    into.contracts.extend(run.contracts);
    for (stage, elapsed) in run.timings {
        into.add_time(stage, elapsed);
    }
    into.threads = into.threads.max(run.threads);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fix_for_stale_files_is_the_command_without_check() {
        let typed: Vec<OsString> = ["generate", "--check", "my contract.yaml", "--out", "nodes"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(
            regenerate_command(&typed),
            "cargo onex generate 'my contract.yaml' --out nodes"
        );
    }
}
