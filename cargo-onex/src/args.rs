//! The command line.

use std::{ffi::OsString, path::PathBuf};

/// `cargo onex`: turn ONEX YAML contracts into complete node crates.
#[derive(Debug, clap::Parser)]
#[command(name = "cargo-onex", bin_name = "cargo onex", version)]
pub struct Cli {
    /// The workspace's Cargo.toml (default: the one cargo finds from here).
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Use verbose output: every file written, every gate passed, and the
    /// stage table.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print nothing but errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Colouring: auto, always, never (auto: on a terminal, unless `NO_COLOR`
    /// is set).
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,
    /// Print the time each stage took, their sum and the wall time.
    #[arg(long, global = true)]
    pub timings: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// When to colour the output, as cargo's `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal and `NO_COLOR` is unset or empty
    /// (`CARGO_TERM_COLOR` is followed when set, as cargo passes it on).
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// The commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the whole pipeline and write one node crate per contract.
    Generate(GenerateArgs),
    /// Parse and validate contracts and render their code (stages 1 to 5);
    /// write nothing.
    Check(CheckArgs),
    /// Run the generator as a node on the bus: generate node crates for the
    /// requests `cargo onex generate --via-bus` sends.
    Serve(crate::serve::ServeArgs),
    /// List the nodes on the bus, from their introspection and heartbeat
    /// events.
    Nodes(crate::nodes::NodesArgs),
    /// Print a JSON Schema: of the contract format (`--contract`), or of
    /// the event payloads of contracts (`--events`).
    Schema(crate::interop::SchemaArgs),
    /// Print one AsyncAPI 3.0 document of the topics, messages and
    /// operations of a set of contracts.
    Asyncapi(crate::interop::AsyncapiArgs),
}

/// `cargo onex generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Contract files or node names (default: every contract in the
    /// workspace's `contracts/` folder; inside a node crate, the contract
    /// it was generated from).
    #[arg(value_name = "CONTRACT")]
    pub contracts: Vec<PathBuf>,
    /// Where node crates go (default: `generated/` at the workspace root).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write nothing; fail listing every stale file and the command that
    /// brings them up to date (for CI).
    #[arg(long)]
    pub check: bool,
    /// Run `cargo check` on each generated crate (stage 7).
    #[arg(long)]
    pub compile_check: bool,
    /// A checkout of cargo-onex (any folder of it) whose `onex` and
    /// `onex-build` the node crates depend on by path; also `ONEX_PATH`, or
    /// `path` in `[workspace.metadata.onex]`. Ignored inside the workspace
    /// that holds them.
    #[arg(long, value_name = "DIR")]
    pub onex_path: Option<PathBuf>,
    /// A folder where consumed contracts (`consumes:`) are looked for when
    /// they are not beside the contract that consumes them; repeatable,
    /// searched in order.
    #[arg(long, value_name = "DIR")]
    pub contract_path: Vec<PathBuf>,
    /// The bus the pipeline's progress is published on (nothing is
    /// published when no broker is configured).
    #[command(flatten)]
    pub bus: crate::bus::BusArgs,
    /// Send the contracts to a generator service (`cargo onex serve`) and
    /// show its progress; generate here when none answers in time.
    #[arg(long, conflicts_with = "check")]
    pub via_bus: bool,
    /// With --via-bus: seconds to wait for a generator's first sign of life
    /// before generating here.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10,
        requires = "via_bus"
    )]
    pub answer_timeout: u64,
    /// With --via-bus: seconds to wait for each contract's outcome.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 600,
        requires = "via_bus"
    )]
    pub bus_timeout: u64,
}

/// `cargo onex check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Contract files or node names (default: every contract in the
    /// workspace's `contracts/` folder; inside a node crate, the contract
    /// it was generated from).
    #[arg(value_name = "CONTRACT")]
    pub contracts: Vec<PathBuf>,
    /// A folder where consumed contracts (`consumes:`) are looked for when
    /// they are not beside the contract that consumes them; repeatable,
    /// searched in order.
    #[arg(long, value_name = "DIR")]
    pub contract_path: Vec<PathBuf>,
}

/// Drops the `onex` that cargo passes as the first argument when it runs
/// `cargo-onex` for `cargo onex`.
pub fn without_cargo_subcommand(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    if args.get(1).is_some_and(|a| a == "onex") {
        args.remove(1);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn drops_the_cargo_subcommand_word() {
        assert_eq!(
            without_cargo_subcommand(strings(&["cargo-onex", "onex", "generate"])),
            strings(&["cargo-onex", "generate"])
        );
        assert_eq!(
            without_cargo_subcommand(strings(&["cargo-onex", "generate"])),
            strings(&["cargo-onex", "generate"])
        );
    }
}
