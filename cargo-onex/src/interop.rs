//! `cargo onex schema` and `cargo onex asyncapi`: descriptions of contracts
//! and their messages for other tools (`onex_build::interop`).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use onex_build::interop::{
    Node,
    asyncapi::{self, AsyncApiOptions},
    json_schema, load_nodes,
};

use crate::{Workspace, report::Shell};

/// `cargo onex schema`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("what").required(true))]
pub struct SchemaArgs {
    /// The JSON Schema of the contract format, for editors and
    /// `check-jsonschema` (the one in `contracts/schema/`).
    #[arg(long, group = "what", conflicts_with = "contracts")]
    pub contract: bool,
    /// The JSON Schema of the event payloads of the contracts: every named
    /// type and event under `$defs`, events keyed by their topic.
    #[arg(long, group = "what")]
    pub events: bool,
    /// With --events: contract files or node names (default: every contract
    /// in the workspace's `contracts/` folder).
    #[arg(value_name = "CONTRACT")]
    pub contracts: Vec<PathBuf>,
    /// Folders where consumed contracts are looked for; repeatable.
    #[arg(long, value_name = "DIR")]
    pub contract_path: Vec<PathBuf>,
    /// Write the document to this file instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The format of the AsyncAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// `cargo onex asyncapi`.
#[derive(Debug, clap::Args)]
pub struct AsyncapiArgs {
    /// Contract files or node names (default: every contract in the
    /// workspace's `contracts/` folder).
    #[arg(value_name = "CONTRACT")]
    pub contracts: Vec<PathBuf>,
    /// Folders where consumed contracts are looked for; repeatable.
    #[arg(long, value_name = "DIR")]
    pub contract_path: Vec<PathBuf>,
    /// The document's format.
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: Format,
    /// Write the document to this file instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The Kafka bootstrap servers the document names (default: localhost:9092).
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        value_name = "HOST:PORT,...",
        default_value = asyncapi::DEFAULT_BOOTSTRAP_SERVERS
    )]
    pub bootstrap_servers: String,
}

/// The JSON Schema of the contract format, as `cargo onex schema
/// --contract` prints it.
pub fn contract_schema_text() -> anyhow::Result<String> {
    Ok(onex_build::interop::json_text(
        &onex_build::interop::contract_schema(),
    ))
}

pub(crate) fn schema(
    workspace: &Workspace,
    shell: &Shell,
    args: &SchemaArgs,
) -> anyhow::Result<ExitCode> {
    let text = if args.contract {
        contract_schema_text()?
    } else {
        let Some(nodes) = nodes(workspace, shell, &args.contracts, &args.contract_path)? else {
            return Ok(ExitCode::FAILURE);
        };
        let specs: Vec<_> = nodes.into_iter().map(|n| n.spec).collect();
        onex_build::interop::json_text(&json_schema::events_document(&specs))
    };
    emit(&text, args.out.as_deref())
}

pub(crate) fn asyncapi(
    workspace: &Workspace,
    shell: &Shell,
    args: &AsyncapiArgs,
) -> anyhow::Result<ExitCode> {
    let Some(nodes) = nodes(workspace, shell, &args.contracts, &args.contract_path)? else {
        return Ok(ExitCode::FAILURE);
    };
    let options = AsyncApiOptions {
        bootstrap_servers: args.bootstrap_servers.clone(),
    };
    let doc = asyncapi::document(&nodes, &options);
    let text = match args.format {
        Format::Yaml => {
            serde_yaml::to_string(&doc).context("cannot render the document as YAML")?
        }
        Format::Json => onex_build::interop::json_text(&doc),
    };
    emit(&text, args.out.as_deref())
}

/// The nodes of the named contracts; `None` when one is invalid (its
/// diagnostics printed).
fn nodes(
    workspace: &Workspace,
    shell: &Shell,
    contracts: &[PathBuf],
    contract_path: &[PathBuf],
) -> anyhow::Result<Option<Vec<Node>>> {
    // Contract files need no Cargo project; a missing one is said as such
    // rather than as a missing workspace.
    for arg in contracts {
        let looks_like_file = arg.components().count() > 1
            || arg.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if looks_like_file && !workspace.cwd.join(arg).is_file() {
            anyhow::bail!("cannot read the contract {}: no such file", arg.display());
        }
    }
    let contracts = workspace.contracts(contracts)?;
    match load_nodes(&contracts, contract_path) {
        Ok(nodes) => Ok(Some(nodes)),
        Err(error) => {
            shell.pipeline_error(&error);
            Ok(None)
        }
    }
}

fn emit(text: &str, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    match out {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .context("cannot write to stdout")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
