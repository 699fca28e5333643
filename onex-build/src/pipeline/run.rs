//! Runs the stages for each contract, timing each one.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

pub use super::generate::RuntimeDependency;
use super::{
    ContractReport, NodeOutcome, PipelineError, PipelineReport, Stage, StageError,
    build_contract::build_contract,
    compile_check::compile_check,
    event_bus::event_bus,
    files::{NodeFile, Ownership},
    generate::{TemplateContext, generate},
    manifest::{MANIFEST_FILE, Manifest, input_fingerprint},
    parse::parse,
    post_validate::post_validate,
    pre_validate::pre_validate,
    refine::refine,
    templates::{NodeTemplates, templates_fingerprint},
    write::write,
};

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Generate and write (`cargo onex generate`).
    Write,
    /// Generate and compare, write nothing; stale files are reported
    /// (`cargo onex generate --check`).
    Check,
    /// Stages 1 to 5 only, write nothing (`cargo onex check`).
    Validate,
}

/// A pipeline run.
#[derive(Debug, Clone)]
pub struct Request {
    /// Contract files.
    pub contracts: Vec<PathBuf>,
    /// Where node crates go: `{out_dir}/{crate-name}/`.
    pub out_dir: PathBuf,
    /// What to do.
    pub mode: Mode,
    /// How node crates depend on the runtime.
    pub runtime: RuntimeDependency,
    /// Run stage 7 (`cargo check`) on each written node crate.
    pub compile_check: bool,
    /// The target directory stage 7 builds in (shared by the node crates).
    pub target_dir: Option<PathBuf>,
}

/// A stage of a contract started or finished, for progress reporting.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// The stage started.
    Started {
        /// The contract.
        contract: &'a Path,
        /// The stage.
        stage: Stage,
    },
    /// The stage finished.
    Finished {
        /// The contract.
        contract: &'a Path,
        /// The stage.
        stage: Stage,
        /// How long it took.
        elapsed: Duration,
    },
}

/// Runs the pipeline and returns what it did; stops at the first failing
/// contract.
pub fn run(request: &Request) -> Result<PipelineReport, PipelineError> {
    run_with_progress(request, &mut |_| {})
}

/// [`run`], calling `progress` as each stage starts and finishes.
pub fn run_with_progress(
    request: &Request,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<PipelineReport, PipelineError> {
    let started = Instant::now();
    let mut runner = Runner {
        request,
        report: PipelineReport::default(),
        templates: None,
        templates_fingerprint: templates_fingerprint(),
        known_nodes: None,
        runtime_toml: {
            let (onex, onex_build) = request.runtime.toml();
            format!("{onex}\n{onex_build}")
        },
        progress,
    };
    for contract in &request.contracts {
        let report = runner.contract(contract)?;
        if request.compile_check && request.mode == Mode::Write {
            runner.stage(contract, Stage::CompileCheck, |_| {
                compile_check(&report.node_dir, request.target_dir.as_deref())
            })?;
        }
        runner.report.contracts.push(report);
    }
    runner.report.total = started.elapsed();
    Ok(runner.report)
}

struct Runner<'r> {
    request: &'r Request,
    report: PipelineReport,
    templates: Option<NodeTemplates>,
    templates_fingerprint: u64,
    runtime_toml: String,
    /// The node crates already in the output directory, by the input
    /// fingerprint of their manifest; read once, on the first contract.
    known_nodes: Option<HashMap<u64, (PathBuf, Manifest)>>,
    progress: &'r mut dyn FnMut(Progress<'_>),
}

impl Runner<'_> {
    /// Runs a stage: times it and names it and the contract on failure.
    fn stage<T>(
        &mut self,
        contract: &Path,
        stage: Stage,
        f: impl FnOnce(&mut Self) -> Result<T, StageError>,
    ) -> Result<T, PipelineError> {
        (self.progress)(Progress::Started { contract, stage });
        let started = Instant::now();
        let result = f(self);
        let elapsed = started.elapsed();
        self.report.add_time(stage, elapsed);
        (self.progress)(Progress::Finished {
            contract,
            stage,
            elapsed,
        });
        result.map_err(|error| PipelineError {
            stage,
            contract: contract.to_path_buf(),
            error: Box::new(error),
        })
    }

    /// The node crate of a contract that has not changed since it was
    /// generated, found by the fingerprint of the contract's bytes alone:
    /// nothing is parsed or rendered for it.
    fn unchanged_node(&mut self, path: &Path) -> Option<PathBuf> {
        let bytes = std::fs::read(path).ok()?;
        let fingerprint = input_fingerprint(&bytes, &self.runtime_toml, self.templates_fingerprint);
        let out_dir = &self.request.out_dir;
        let known = self.known_nodes.get_or_insert_with(|| {
            let Ok(entries) = std::fs::read_dir(out_dir) else {
                return HashMap::new();
            };
            entries
                .filter_map(|entry| {
                    let dir = entry.ok()?.path();
                    let manifest = Manifest::read(&dir)?;
                    Some((manifest.input, (dir, manifest)))
                })
                .collect()
        });
        let (dir, manifest) = known.get(&fingerprint)?;
        manifest.is_intact(dir).then(|| dir.clone())
    }

    fn contract(&mut self, path: &Path) -> Result<ContractReport, PipelineError> {
        let request = self.request;
        if request.mode != Mode::Validate {
            let unchanged =
                self.stage(path, Stage::Write, |runner| Ok(runner.unchanged_node(path)))?;
            if let Some(node_dir) = unchanged {
                return Ok(ContractReport {
                    contract: path.to_path_buf(),
                    node_dir,
                    outcome: NodeOutcome::Unchanged,
                    gates: Vec::new(),
                });
            }
        }
        let loaded = self.stage(path, Stage::Parse, |_| parse(path))?;
        let name = &loaded.contract.node.name;
        let node_dir = request.out_dir.join(name.replace('_', "-"));
        let fingerprint = input_fingerprint(
            loaded.source.as_bytes(),
            &self.runtime_toml,
            self.templates_fingerprint,
        );
        let report = |outcome, gates| ContractReport {
            contract: path.to_path_buf(),
            node_dir: node_dir.clone(),
            outcome,
            gates,
        };

        // The gates read the contract as written, with its positions, so
        // they run before the build stage, which assumes they passed.
        let mut gates = self.stage(path, Stage::PreValidate, |_| pre_validate(&loaded))?;
        let model = self.stage(path, Stage::BuildContract, |_| build_contract(&loaded))?;
        let context = TemplateContext::new(&model, &request.runtime);
        let (mut rendered, tera_context) = self.stage(path, Stage::Generate, |runner| {
            let tera_context = context.to_tera()?;
            let files = generate(runner.templates()?, &tera_context, path)?;
            Ok((files, tera_context))
        })?;
        rendered.extend(self.stage(path, Stage::EventBus, |runner| {
            event_bus(runner.templates()?, &context, &tera_context, path)
        })?);
        let (parsed, post_gates) =
            self.stage(path, Stage::PostValidate, |_| post_validate(rendered))?;
        gates.extend(post_gates);
        if request.mode == Mode::Validate {
            return Ok(report(NodeOutcome::Validated, gates));
        }
        let mut files = self.stage(path, Stage::Refine, |_| Ok(refine(parsed)))?;
        let manifest = Manifest::new(fingerprint, &files);
        files.push(NodeFile {
            path: MANIFEST_FILE.to_owned(),
            ownership: Ownership::Generated,
            contents: manifest.render(),
        });
        let check = request.mode == Mode::Check;
        let written = self.stage(path, Stage::Write, |_| {
            write(&request.out_dir, &node_dir, &files, check)
        })?;
        let outcome = match (check, written.changed.is_empty()) {
            (_, true) => NodeOutcome::UpToDate,
            (true, false) => NodeOutcome::Stale {
                files: sorted(written.changed),
            },
            (false, false) => NodeOutcome::Written {
                files: sorted(written.changed),
            },
        };
        Ok(report(outcome, gates))
    }

    fn templates(&mut self) -> Result<&NodeTemplates, StageError> {
        if self.templates.is_none() {
            self.templates = Some(NodeTemplates::load()?);
        }
        // Set just above.
        self.templates.as_ref().ok_or_else(|| StageError::Template {
            template: "node/*".to_owned(),
            message: "templates not loaded".to_owned(),
        })
    }
}

fn sorted(mut files: Vec<String>) -> Vec<String> {
    files.sort();
    files
}
