//! The `cargo onex` command line: arguments, workspace discovery and the
//! report. The pipeline itself lives in `onex_build::pipeline`.
#![deny(missing_docs)]

mod args;
mod report;
pub mod runtime;
mod workspace;

use std::{ffi::OsString, process::ExitCode};

use anyhow::Context as _;
use clap::Parser as _;
use onex_build::pipeline::{self, Mode, Request};

pub use args::{CheckArgs, Cli, Command, GenerateArgs};
pub use workspace::Workspace;

/// Parses the arguments (dropping the `onex` cargo passes when run as
/// `cargo onex`) and runs the command.
pub fn run(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse_from(args::without_cargo_subcommand(args)) {
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
    let workspace = Workspace::discover(cli.manifest_path.as_deref())?;
    match cli.command {
        Command::Generate(args) => generate(&workspace, args),
        Command::Check(args) => check(&workspace, args),
    }
}

fn generate(workspace: &Workspace, args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let out_dir = workspace.out_dir(args.out.as_deref())?;
    let request = Request {
        contracts: workspace.contracts(&args.contracts)?,
        runtime: workspace.runtime_dependency(&out_dir, args.onex_path.as_deref())?,
        target_dir: if args.compile_check {
            Some(workspace.node_target_dir()?)
        } else {
            None
        },
        out_dir,
        mode: if args.check { Mode::Check } else { Mode::Write },
        compile_check: args.compile_check,
    };
    let result = pipeline::run(&request);
    let report = result.context("cargo onex generate stopped")?;
    print!("{}", report::summary(workspace, &report));
    println!("\n{}", report.timing_table());
    let stale = report.stale_files();
    if args.check && !stale.is_empty() {
        eprintln!("\nerror: {} generated file(s) are stale:", stale.len());
        for file in &stale {
            eprintln!("  {}", workspace.display(file).display());
        }
        eprintln!("help: run `cargo onex generate` and commit the result");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn check(workspace: &Workspace, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let out_dir = workspace.check_out_dir()?;
    let request = Request {
        contracts: workspace.contracts(&args.contracts)?,
        // Nothing is written, so the runtime's place does not matter.
        runtime: pipeline::RuntimeDependency::this_version(),
        target_dir: None,
        out_dir,
        mode: Mode::Validate,
        compile_check: false,
    };
    let report = pipeline::run(&request).context("cargo onex check stopped")?;
    print!("{}", report::summary(workspace, &report));
    println!("\n{}", report.timing_table());
    Ok(ExitCode::SUCCESS)
}
