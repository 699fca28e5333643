//! `cargo onex serve`: the generator as an orchestrator node on the bus.
//!
//! It joins the bus like every node (introspection event, heartbeats),
//! consumes the pipeline's `prompt_submitted` commands, runs the pipeline
//! for each and publishes its progress and outcome with the command's
//! correlation id ([`crate::progress`]). A request names its contract (a
//! file under the contract root, or the contract's text) and its output
//! folder (under the output root); a request for anything outside the roots
//! is refused with the pipeline's failed event, and nothing is read or
//! written for it.

use std::{
    collections::HashMap,
    path::{Component, Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use onex::{
    BusMessage, HandlerError, Publisher,
    bus::{Subscription, handler_fn},
    lifecycle::NodeRuntime,
    tokio,
    uuid::Uuid,
};
use onex_build::pipeline::{self, Mode, Request, RuntimeDependency};

use crate::{
    bus::{self, BusArgs},
    events::pipeline::{self as events, GenerationRequest, PipelineFailed, PromptSubmitted},
    progress::BusProgress,
};

/// `cargo onex serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The bus to serve on.
    #[command(flatten)]
    pub bus: BusArgs,
    /// Requests may read contracts only under this folder (default: the
    /// current directory).
    #[arg(long, value_name = "DIR")]
    pub contract_root: Option<PathBuf>,
    /// Requests may write node crates only under this folder (default: the
    /// current directory).
    #[arg(long, value_name = "DIR")]
    pub out_root: Option<PathBuf>,
    /// A checkout of cargo-onex whose `onex` and `onex-build` the node
    /// crates depend on by path, as for `cargo onex generate`.
    #[arg(long, value_name = "DIR")]
    pub onex_path: Option<PathBuf>,
    /// Seconds between two heartbeats (also `HEARTBEAT_INTERVAL_SECONDS`).
    #[arg(long, value_name = "SECONDS", env = "HEARTBEAT_INTERVAL_SECONDS", default_value_t = events::HEARTBEAT_INTERVAL_SECONDS)]
    pub heartbeat_interval: u64,
}

/// What a request may touch.
#[derive(Debug, Clone)]
pub struct Roots {
    /// Contracts are read only under this folder (canonical).
    pub contracts: PathBuf,
    /// Node crates are written only under this folder (canonical).
    pub output: PathBuf,
}

impl Roots {
    /// The roots, made absolute and canonical; both must exist.
    pub fn new(contracts: &Path, output: &Path) -> anyhow::Result<Self> {
        let canonical = |dir: &Path, what: &str| {
            dir.canonicalize().with_context(|| {
                format!("the {what} root `{}` is not a folder here", dir.display())
            })
        };
        Ok(Roots {
            contracts: canonical(contracts, "contract")?,
            output: canonical(output, "output")?,
        })
    }

    /// The contract file a request names, if it lies under the contract
    /// root (symbolic links followed).
    pub fn contract(&self, requested: &str) -> Result<PathBuf, Refusal> {
        let path = self.contracts.join(requested);
        let canonical = path.canonicalize().map_err(|e| Refusal {
            code: "CONTRACT-NOT-FOUND",
            message: format!("cannot read the contract `{requested}`: {e}"),
            suggestion: format!(
                "give a contract file under the generator's contract root `{}`",
                self.contracts.display()
            ),
        })?;
        if !canonical.starts_with(&self.contracts) || !canonical.is_file() {
            return Err(Refusal {
                code: "OUTSIDE-ROOT",
                message: format!(
                    "the contract `{requested}` is outside the generator's contract root"
                ),
                suggestion: format!(
                    "give a contract file under `{}`, or send the contract's text",
                    self.contracts.display()
                ),
            });
        }
        Ok(canonical)
    }

    /// The output folder a request names, if it lies under the output
    /// root: `..` is resolved first, and the part that exists already is
    /// followed through symbolic links.
    pub fn output(&self, requested: &str) -> Result<PathBuf, Refusal> {
        let refused = || Refusal {
            code: "OUTSIDE-ROOT",
            message: format!(
                "the output folder `{requested}` is outside the generator's output root"
            ),
            suggestion: format!("give an output folder under `{}`", self.output.display()),
        };
        let mut path = PathBuf::new();
        for component in self.output.join(requested).components() {
            match component {
                Component::ParentDir => {
                    if !path.pop() {
                        return Err(refused());
                    }
                }
                Component::CurDir => {}
                other => path.push(other),
            }
        }
        // The longest part that exists, with its links resolved, then the
        // rest, which cannot be a link as it does not exist.
        let mut existing = path.as_path();
        let mut rest = Vec::new();
        while !existing.exists() {
            let Some(parent) = existing.parent() else {
                return Err(refused());
            };
            rest.push(existing.file_name().map(PathBuf::from).unwrap_or_default());
            existing = parent;
        }
        let mut resolved = existing.canonicalize().map_err(|_| refused())?;
        for part in rest.into_iter().rev() {
            resolved.push(part);
        }
        if resolved.starts_with(&self.output) {
            Ok(resolved)
        } else {
            Err(refused())
        }
    }
}

/// Why a request was refused before the pipeline ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `OUTSIDE-ROOT`, `CONTRACT-NOT-FOUND`, `NO-CONTRACT`, ...
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What the requester can do.
    pub suggestion: String,
}

/// Where a request's node crates find the runtime, given their output
/// folder (as `cargo onex generate` decides it).
pub type RuntimeFinder = Box<dyn Fn(&Path) -> anyhow::Result<RuntimeDependency> + Send + Sync>;

/// The generator node: what each request needs.
struct Generator {
    roots: Roots,
    runtime_dependency: RuntimeFinder,
    publisher: Publisher,
}

impl Generator {
    /// Handles one request: refuses it, or runs the pipeline and publishes
    /// its progress and outcome. Errs only when the outcome could not be
    /// published (the message is then retried, then dead-lettered).
    async fn handle(self: Arc<Self>, message: BusMessage) -> Result<(), HandlerError> {
        let correlation_id = message.correlation_id();
        let command: PromptSubmitted = message
            .envelope
            .decode()
            .map_err(|e| HandlerError::new("decode", e.to_string()))?;
        let request = command.request;
        eprintln!(
            "  Requested {} by {} ({correlation_id})",
            request
                .contract_path
                .as_deref()
                .unwrap_or("a contract's text"),
            request.requested_by
        );
        let prepared = match self.prepare(&request, correlation_id) {
            Ok(prepared) => prepared,
            Err(refusal) => {
                eprintln!("    Refused {}: {}", refusal.code, refusal.message);
                return self.refuse(refusal, correlation_id).await;
            }
        };
        let Prepared { request, scratch } = prepared;
        let progress = BusProgress::start(
            &tokio::runtime::Handle::current(),
            self.publisher.clone(),
            HashMap::from([(request.contracts[0].clone(), correlation_id)]),
        );
        // The pipeline runs on a blocking thread, which needs its own handle
        // on the publisher; it comes back once the pipeline is done.
        let progress = Arc::new(progress);
        let notes = Arc::clone(&progress);
        let result = tokio::task::spawn_blocking(move || {
            pipeline::run_with_progress(&request, &|p| notes.note(p)).map(|_| ())
        })
        .await;
        if let Some(dir) = scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
        let result = result.map_err(|e| HandlerError::new("pipeline", e.to_string()))?;
        let progress = Arc::into_inner(progress).ok_or_else(|| {
            HandlerError::new("pipeline", "the progress publisher is still in use")
        })?;
        let delivered = progress.finish(result.as_ref().map(|_| ())).await;
        match &result {
            Ok(()) => eprintln!("    Finished {correlation_id}"),
            Err(e) => eprintln!(
                "    Failed {correlation_id}: {} ({})",
                e.error.summary(),
                e.error.code()
            ),
        }
        if delivered.failed > 0 {
            return Err(HandlerError::new(
                "publish",
                format!(
                    "{} progress events not delivered: {}",
                    delivered.failed,
                    delivered.first_error.unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }

    /// The pipeline request for a generation request, within the roots.
    fn prepare(&self, request: &GenerationRequest, id: Uuid) -> Result<Prepared, Refusal> {
        let out_dir = self.roots.output(&request.output_directory)?;
        let (contract, scratch) = match (&request.contract_path, &request.contract_text) {
            (Some(path), _) => (self.roots.contract(path)?, None),
            (None, Some(text)) => {
                // The text becomes a file of its own, consumed contracts
                // being looked for under the contract root.
                let dir = std::env::temp_dir().join(format!("onex-request-{id}"));
                let file = dir.join("contract.yaml");
                std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(&file, text))
                    .map_err(|e| Refusal {
                        code: "IO",
                        message: format!("cannot keep the contract's text: {e}"),
                        suggestion: "check the generator's temporary folder".to_owned(),
                    })?;
                (file, Some(dir))
            }
            (None, None) => {
                return Err(Refusal {
                    code: "NO-CONTRACT",
                    message: "the request names no contract".to_owned(),
                    suggestion: "set `contract_path` or `contract_text`".to_owned(),
                });
            }
        };
        let runtime = (self.runtime_dependency)(&out_dir).map_err(|e| Refusal {
            code: "RUNTIME",
            message: format!("{e:#}"),
            suggestion: "start `cargo onex serve` with `--onex-path` or `ONEX_PATH`".to_owned(),
        })?;
        Ok(Prepared {
            request: Request {
                contracts: vec![contract],
                out_dir,
                mode: Mode::Write,
                runtime,
                compile_check: request.compile_check,
                target_dir: None,
                contract_path: vec![self.roots.contracts.clone()],
            },
            scratch,
        })
    }

    async fn refuse(&self, refusal: Refusal, correlation_id: Uuid) -> Result<(), HandlerError> {
        let failed = PipelineFailed {
            failed_stage: "request".to_owned(),
            error_code: refusal.code.to_owned(),
            error_message: refusal.message,
            location: None,
            recovery_suggestions: vec![refusal.suggestion],
            total_duration_ms: 0.0,
        };
        self.publisher
            .publish(&failed, Some(correlation_id))
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::new("publish", e.to_string()))
    }
}

/// A request ready for the pipeline.
struct Prepared {
    request: Request,
    /// The folder holding a contract sent as text, removed afterwards.
    scratch: Option<PathBuf>,
}

/// Runs the generator node until SIGINT or SIGTERM.
pub fn serve(
    args: &ServeArgs,
    roots: Roots,
    runtime_dependency: RuntimeFinder,
) -> anyhow::Result<()> {
    let Some(config) = args.bus.configured()? else {
        bail!(
            "`cargo onex serve` needs a broker\n\
             help: set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap-servers HOST:PORT"
        );
    };
    if args.heartbeat_interval == 0 {
        bail!("the heartbeat interval must be at least 1 second");
    }
    // As in every node: the contract's group unless `KAFKA_GROUP` is set.
    let group = std::env::var("KAFKA_GROUP")
        .ok()
        .filter(|g| !g.trim().is_empty())
        .unwrap_or_else(|| events::CONSUMER_GROUP.to_owned());
    let runtime = bus::runtime()?;
    runtime.block_on(async {
        let publisher = bus::join(config, events::SERVICE).await?;
        let node = NodeRuntime::new(publisher.bus().clone(), publisher.source().clone());
        let introspection = events::introspection(node.node_id(), Uuid::new_v4());
        node.publish_introspection(&introspection)
            .await
            .context("cannot announce the generator on the bus")?;
        node.spawn_heartbeat(
            Duration::from_secs(args.heartbeat_interval),
            events::NODE_STRUCT_NAME,
        );
        let generator = Arc::new(Generator {
            roots: roots.clone(),
            runtime_dependency,
            publisher: node.publisher().clone(),
        });
        let topic = node.publisher().topic_of::<PromptSubmitted>();
        let handler = handler_fn(move |message: BusMessage| Arc::clone(&generator).handle(message));
        node.subscribe(
            Subscription {
                topics: vec![topic.clone()],
                group: group.clone(),
            },
            handler,
        )
        .await
        .context("cannot subscribe to the generation requests")?;
        eprintln!(
            "     Serving generation requests on `{topic}` (group `{group}`), node {}\n\
             \x20     Roots contracts under {}, node crates under {}",
            node.node_id(),
            roots.contracts.display(),
            roots.output.display()
        );
        let signal = node
            .run_until_shutdown_signal()
            .await
            .context("shutting down")?;
        eprintln!("     Stopped on {signal}");
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_stay_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("nodes")).unwrap();
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        let roots = Roots::new(&root, &root).unwrap();
        let canonical_root = root.canonicalize().unwrap();
        assert_eq!(roots.output("nodes").unwrap(), canonical_root.join("nodes"));
        assert_eq!(
            roots.output("new/deeper").unwrap(),
            canonical_root.join("new/deeper")
        );
        assert_eq!(
            roots.output("nodes/../other").unwrap(),
            canonical_root.join("other")
        );
        for outside in ["..", "../elsewhere", "nodes/../../elsewhere", "/tmp"] {
            assert_eq!(
                roots.output(outside).unwrap_err().code,
                "OUTSIDE-ROOT",
                "{outside}"
            );
        }
        // A link inside the root that leads out of it.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("elsewhere"), root.join("link")).unwrap();
            assert_eq!(roots.output("link/x").unwrap_err().code, "OUTSIDE-ROOT");
        }
    }

    #[test]
    fn contracts_stay_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a.yaml"), "x").unwrap();
        std::fs::write(dir.path().join("secret.yaml"), "x").unwrap();
        let roots = Roots::new(&root, &root).unwrap();
        assert!(roots.contract("a.yaml").is_ok());
        assert_eq!(
            roots.contract("../secret.yaml").unwrap_err().code,
            "OUTSIDE-ROOT"
        );
        let outside = dir.path().join("secret.yaml").display().to_string();
        assert_eq!(roots.contract(&outside).unwrap_err().code, "OUTSIDE-ROOT");
        assert_eq!(
            roots.contract("missing.yaml").unwrap_err().code,
            "CONTRACT-NOT-FOUND"
        );
    }
}
