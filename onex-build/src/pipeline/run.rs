//! Runs the stages for each contract, timing each one.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

pub use super::generate::RuntimeDependency;
use super::{
    ContractReport, GateResult, NodeFiles, NodeOutcome, PipelineError, PipelineReport, Stage,
    StageError,
    build_contract::build_contract_with,
    compile_check::compile_check,
    event_bus::event_bus,
    files::{NodeFile, Ownership},
    generate::{TemplateContext, generate},
    manifest::{MANIFEST_FILE, Manifest, file_hash, input_fingerprint},
    parse::parse,
    post_validate::post_validate,
    pre_validate::pre_validate_with,
    queue::{in_order, workers_for},
    refine::refine,
    templates::{NodeTemplates, templates_fingerprint},
    write::OutputDir,
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
    /// Folders where consumed contracts are looked for when they are not
    /// beside the contract that consumes them (`--contract-path`).
    pub contract_path: Vec<PathBuf>,
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
        /// Why it failed; `None` when it succeeded.
        error: Option<&'a StageError>,
    },
    /// Every stage of the contract succeeded: its node crate is written
    /// (or found up to date, or compared), and compile-checked when asked.
    Done {
        /// The contract.
        contract: &'a Path,
        /// What happened to it.
        report: &'a ContractReport,
        /// Stage 7 ran (and passed).
        compile_checked: bool,
    },
}

/// Runs the pipeline and returns what it did; stops at the first failing
/// contract.
pub fn run(request: &Request) -> Result<PipelineReport, PipelineError> {
    run_with_progress(request, &|_| {})
}

/// [`run`], calling `progress` as each stage starts and finishes.
///
/// Stages 1 to 5.5 of different contracts run at the same time on
/// [`std::thread::available_parallelism`] threads; the calling thread
/// writes (stage 6) and compile-checks (stage 7) the node crates one by
/// one, in the order the contracts were given, so `progress` is called from
/// several threads, and events of different contracts interleave. The
/// result is what running the contracts one after another gives: the
/// report lists them in order, and on failure the error is that of the
/// first failing contract and nothing after it is written.
pub fn run_with_progress(
    request: &Request,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<PipelineReport, PipelineError> {
    let started = Instant::now();
    let shared = Shared {
        request,
        templates_fingerprint: templates_fingerprint(),
        runtime_toml: {
            let (onex, onex_build) = request.runtime.toml();
            // The search path decides which contracts a node consumes.
            let search: Vec<String> = request
                .contract_path
                .iter()
                .map(|dir| dir.display().to_string())
                .collect();
            format!("{onex}\n{onex_build}\n{}", search.join("\n"))
        },
        known_nodes: OnceLock::new(),
        progress,
    };
    let count = request.contracts.len();
    let workers = workers_for(count);
    let mut writer = Writer {
        shared: &shared,
        report: PipelineReport::default(),
        output: None,
        touched: HashSet::new(),
    };
    // Nothing after the first failing contract is written.
    in_order(
        count,
        workers,
        |index| shared.prepare(index),
        |outcome| outcome.result.is_err(),
        |index, outcome| writer.write(index, outcome),
    )?;
    let mut report = writer.report;
    report.total = started.elapsed();
    report.threads = workers.max(1);
    Ok(report)
}

/// What every thread of a run reads.
struct Shared<'r> {
    request: &'r Request,
    templates_fingerprint: u64,
    runtime_toml: String,
    /// The node crates in the output directory before this run wrote
    /// anything, by the input fingerprint of their manifest; read once, on
    /// the first contract.
    known_nodes: OnceLock<HashMap<u64, (PathBuf, Manifest)>>,
    progress: &'r (dyn Fn(Progress<'_>) + Sync),
}

/// The time each stage took for one contract.
#[derive(Debug, Default)]
struct Timings(Vec<(Stage, Duration)>);

/// What stages 1 to 5.5 made of a contract.
enum Prepared {
    /// The node crate is intact and was generated from the same input.
    Unchanged { node_dir: PathBuf },
    /// `Mode::Validate`: the gates passed.
    Validated {
        node: (String, &'static str),
        contract_hash: String,
        node_dir: PathBuf,
        gates: Vec<GateResult>,
        warnings: Vec<String>,
    },
    /// The files to write (or compare), manifest included.
    Files {
        node: (String, &'static str),
        contract_hash: String,
        node_dir: PathBuf,
        gates: Vec<GateResult>,
        warnings: Vec<String>,
        files: NodeFiles,
    },
}

/// A contract prepared by a worker, waiting for the writer.
struct Outcome {
    /// The node crate that the fingerprint of the contract's bytes matched
    /// before the run wrote anything (whether or not it was intact then).
    known: Option<PathBuf>,
    result: Result<Prepared, PipelineError>,
    timings: Timings,
}

impl Shared<'_> {
    /// Runs a stage: times it and names it and the contract on failure.
    fn stage<T>(
        &self,
        timings: &mut Timings,
        contract: &Path,
        stage: Stage,
        f: impl FnOnce() -> Result<T, StageError>,
    ) -> Result<T, PipelineError> {
        (self.progress)(Progress::Started { contract, stage });
        let started = Instant::now();
        let result = f();
        let elapsed = started.elapsed();
        timings.0.push((stage, elapsed));
        (self.progress)(Progress::Finished {
            contract,
            stage,
            elapsed,
            error: result.as_ref().err(),
        });
        result.map_err(|error| PipelineError {
            stage,
            contract: contract.to_path_buf(),
            error: Box::new(error),
        })
    }

    /// Stages 1 to 5.5 of the contract at `index`, or nothing when its node
    /// crate is unchanged.
    fn prepare(&self, index: usize) -> Outcome {
        let path = &self.request.contracts[index];
        let mut timings = Timings::default();
        let mut known = None;
        if self.request.mode != Mode::Validate {
            let unchanged = self.stage(&mut timings, path, Stage::Write, || {
                Ok(self.unchanged_node(path))
            });
            if let Ok(Some((node_dir, intact))) = unchanged {
                if intact {
                    return Outcome {
                        known: Some(node_dir.clone()),
                        result: Ok(Prepared::Unchanged { node_dir }),
                        timings,
                    };
                }
                known = Some(node_dir);
            }
        }
        let result = self.render(path, &mut timings);
        Outcome {
            known,
            result,
            timings,
        }
    }

    /// The node crate that a contract's bytes were last generated into, by
    /// the fingerprint of those bytes alone, and whether it is intact:
    /// nothing is parsed or rendered for an unchanged contract.
    fn unchanged_node(&self, path: &Path) -> Option<(PathBuf, bool)> {
        let bytes = std::fs::read(path).ok()?;
        let fingerprint = input_fingerprint(&bytes, &self.runtime_toml, self.templates_fingerprint);
        let (dir, manifest) = self.known_nodes().get(&fingerprint)?;
        // A contract that moved regenerates the README and manifest that
        // record its path.
        let same_place = manifest.contract.as_deref() == Some(&*contract_relative_to(dir, path));
        // A consumed contract that changed changes the node's copy of it.
        let consumed_same = manifest.consumed.iter().all(|(relative, hash)| {
            std::fs::read(dir.join(relative)).is_ok_and(|bytes| file_hash(&bytes) == *hash)
        });
        Some((
            dir.clone(),
            same_place && consumed_same && manifest.is_intact(dir),
        ))
    }

    fn known_nodes(&self) -> &HashMap<u64, (PathBuf, Manifest)> {
        self.known_nodes.get_or_init(|| {
            let Ok(entries) = std::fs::read_dir(&self.request.out_dir) else {
                return HashMap::new();
            };
            entries
                .filter_map(|entry| {
                    let dir = entry.ok()?.path();
                    let manifest = Manifest::read(&dir)?;
                    Some((manifest.input, (dir, manifest)))
                })
                .collect()
        })
    }

    /// Stages 1 to 5.5: the node crate's files, manifest included.
    fn render(&self, path: &Path, timings: &mut Timings) -> Result<Prepared, PipelineError> {
        let request = self.request;
        let loaded = self.stage(timings, path, Stage::Parse, || parse(path))?;
        let name = &loaded.contract.node.name;
        let node_dir = request.out_dir.join(name.replace('_', "-"));
        let fingerprint = input_fingerprint(
            loaded.source.as_bytes(),
            &self.runtime_toml,
            self.templates_fingerprint,
        );

        // The gates read the contract as written, with its positions, so
        // they run before the build stage, which assumes they passed.
        let search = &request.contract_path;
        let mut gates = self.stage(timings, path, Stage::PreValidate, || {
            pre_validate_with(&loaded, search)
        })?;
        let model = self.stage(timings, path, Stage::BuildContract, || {
            build_contract_with(&loaded, search)
        })?;
        let contract_path = contract_relative_to(&node_dir, path);
        let context =
            TemplateContext::new(&model, &request.runtime).contract_path(contract_path.clone());
        let (mut rendered, tera_context) = self.stage(timings, path, Stage::Generate, || {
            let tera_context = context.to_tera()?;
            let files = generate(
                &NodeTemplates::load()?,
                &tera_context,
                path,
                &model.consumed,
            )?;
            Ok((files, tera_context))
        })?;
        rendered.extend(self.stage(timings, path, Stage::EventBus, || {
            event_bus(&NodeTemplates::load()?, &context, &tera_context, path)
        })?);
        let (parsed, post_gates) = self.stage(timings, path, Stage::PostValidate, || {
            post_validate(rendered)
        })?;
        gates.extend(post_gates);
        let warnings = model.routing_warnings.clone();
        if request.mode == Mode::Validate {
            return Ok(Prepared::Validated {
                node: (name.clone(), loaded.contract.node.node_type.as_str()),
                contract_hash: model.spec.contract_hash.clone(),
                node_dir,
                gates,
                warnings,
            });
        }
        let mut files = self.stage(timings, path, Stage::Refine, || Ok(refine(parsed)))?;
        let mut manifest = Manifest::new(fingerprint, &files);
        manifest.contract = Some(contract_path);
        for consumed in &model.consumed {
            manifest.consumed.push((
                contract_relative_to(&node_dir, &consumed.path),
                consumed.source_hash,
            ));
        }
        files.push(NodeFile {
            path: MANIFEST_FILE.to_owned(),
            ownership: Ownership::Generated,
            contents: manifest.render(),
        });
        Ok(Prepared::Files {
            node: (name.clone(), loaded.contract.node.node_type.as_str()),
            contract_hash: model.spec.contract_hash.clone(),
            node_dir,
            gates,
            warnings,
            files,
        })
    }
}

/// The path of `contract` relative to the node crate folder `node_dir`,
/// `/`-separated, as the README and the manifest record it.
fn contract_relative_to(node_dir: &Path, contract: &Path) -> String {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    super::paths::relative(&absolute(node_dir), &absolute(contract))
}

/// The calling thread's part: takes the prepared contracts in order and
/// writes them.
struct Writer<'a, 'r> {
    shared: &'a Shared<'r>,
    report: PipelineReport,
    /// Created on the first write.
    output: Option<OutputDir>,
    /// Node crates this run has changed files in.
    touched: HashSet<PathBuf>,
}

impl Writer<'_, '_> {
    /// Stages 6 and 7 for the contract at `index`, prepared by a worker or
    /// the calling thread.
    fn write(&mut self, index: usize, outcome: Outcome) -> Result<(), PipelineError> {
        let request = self.shared.request;
        let contract = &request.contracts[index];
        self.add_times(outcome.timings);
        let result = self.recheck(contract, outcome.known, outcome.result)?;
        let report = self.finish(contract, result)?;
        let compile_checked = request.compile_check && request.mode == Mode::Write;
        if compile_checked {
            let mut timings = Timings::default();
            let checked = self
                .shared
                .stage(&mut timings, contract, Stage::CompileCheck, || {
                    compile_check(&report.node_dir, request.target_dir.as_deref())
                });
            self.add_times(timings);
            checked?;
        }
        (self.shared.progress)(Progress::Done {
            contract,
            report: &report,
            compile_checked,
        });
        self.report.contracts.push(report);
        Ok(())
    }

    fn add_times(&mut self, timings: Timings) {
        for (stage, elapsed) in timings.0 {
            self.report.add_time(stage, elapsed);
        }
    }

    /// A worker looked at the node crate the contract's bytes match before
    /// earlier contracts of this run were written; if one of them wrote into
    /// it (two contracts naming the same node), looks again now, as running
    /// the contracts one after another would have.
    fn recheck(
        &mut self,
        contract: &Path,
        known: Option<PathBuf>,
        result: Result<Prepared, PipelineError>,
    ) -> Result<Prepared, PipelineError> {
        let Some(node_dir) = known.filter(|dir| self.touched.contains(dir)) else {
            return result;
        };
        let mut timings = Timings::default();
        let intact = self.shared.stage(&mut timings, contract, Stage::Write, || {
            Ok(self
                .shared
                .unchanged_node(contract)
                .is_some_and(|(_, intact)| intact))
        });
        self.add_times(timings);
        if intact? {
            return Ok(Prepared::Unchanged { node_dir });
        }
        match result {
            Ok(Prepared::Unchanged { .. }) => {
                let mut timings = Timings::default();
                let rendered = self.shared.render(contract, &mut timings);
                self.add_times(timings);
                rendered
            }
            other => other,
        }
    }

    /// Stage 6 for a prepared contract.
    fn finish(
        &mut self,
        contract: &Path,
        prepared: Prepared,
    ) -> Result<ContractReport, PipelineError> {
        let request = self.shared.request;
        let report =
            |(node_name, node_type, contract_hash): (String, Option<&str>, Option<String>),
             node_dir,
             outcome,
             gates,
             warnings| ContractReport {
                contract: contract.to_path_buf(),
                node_name,
                node_type: node_type.map(str::to_owned),
                contract_hash,
                node_dir,
                outcome,
                gates,
                warnings,
            };
        let (node, node_dir, gates, warnings, files) = match prepared {
            Prepared::Unchanged { node_dir } => {
                // Not parsed again: the name is the crate folder's.
                let name = node_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().replace('-', "_"))
                    .unwrap_or_default();
                return Ok(report(
                    (name, None, None),
                    node_dir,
                    NodeOutcome::Unchanged,
                    Vec::new(),
                    Vec::new(),
                ));
            }
            Prepared::Validated {
                node: (name, node_type),
                contract_hash,
                node_dir,
                gates,
                warnings,
            } => {
                return Ok(report(
                    (name, Some(node_type), Some(contract_hash)),
                    node_dir,
                    NodeOutcome::Validated,
                    gates,
                    warnings,
                ));
            }
            Prepared::Files {
                node,
                contract_hash,
                node_dir,
                gates,
                warnings,
                files,
            } => (
                (node.0, node.1, contract_hash),
                node_dir,
                gates,
                warnings,
                files,
            ),
        };
        let check = request.mode == Mode::Check;
        let mut timings = Timings::default();
        let written = self.shared.stage(&mut timings, contract, Stage::Write, || {
            let output = match self.output.take() {
                Some(output) => output,
                None if check => OutputDir::for_check(&request.out_dir),
                None => OutputDir::create(&request.out_dir)?,
            };
            let written = output.write(&node_dir, &files);
            self.output = Some(output);
            written
        });
        self.add_times(timings);
        let written = written?;
        if !check && !written.changed.is_empty() {
            self.touched.insert(node_dir.clone());
        }
        let outcome = match (check, written.changed.is_empty()) {
            (_, true) => NodeOutcome::UpToDate,
            (true, false) => NodeOutcome::Stale {
                files: sorted(written.changed),
            },
            (false, false) => NodeOutcome::Written {
                files: sorted(written.changed),
            },
        };
        Ok(report(
            (node.0, Some(node.1), Some(node.2)),
            node_dir,
            outcome,
            gates,
            warnings,
        ))
    }
}

fn sorted(mut files: Vec<String>) -> Vec<String> {
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A minimal contract for node `name`; `version` changes its output.
    fn contract(dir: &Path, file: &str, name: &str, version: &str) -> PathBuf {
        let path = dir.join(file);
        let text = format!(
            "contract_version: 1\nnode: {{name: {name}, node_type: compute, version: {version}, domain: shop}}\n"
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn request(contracts: Vec<PathBuf>, out_dir: &Path, mode: Mode) -> Request {
        Request {
            contracts,
            out_dir: out_dir.to_path_buf(),
            mode,
            runtime: RuntimeDependency::Version("0.1.0".to_owned()),
            compile_check: false,
            target_dir: None,
            contract_path: Vec::new(),
        }
    }

    fn written(outcome: &NodeOutcome) -> &[String] {
        match outcome {
            NodeOutcome::Written { files } => files,
            other => panic!("expected written files, got {other:?}"),
        }
    }

    #[test]
    fn reports_every_contract_in_the_order_given() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // Reverse alphabetical, so that no sort can pass for the input order.
        let contracts: Vec<PathBuf> = (0..40)
            .rev()
            .map(|i| {
                contract(
                    dir.path(),
                    &format!("c{i}.yaml"),
                    &format!("node_{i}"),
                    "1.0.0",
                )
            })
            .collect();
        let started = AtomicUsize::new(0);
        let finished = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let first = run_with_progress(&request(contracts.clone(), &out, Mode::Write), &|event| {
            match event {
                Progress::Started { .. } => started.fetch_add(1, Ordering::Relaxed),
                Progress::Finished { error, .. } => {
                    assert!(error.is_none());
                    finished.fetch_add(1, Ordering::Relaxed)
                }
                Progress::Done { .. } => done.fetch_add(1, Ordering::Relaxed),
            };
        })
        .unwrap();
        let reported: Vec<&PathBuf> = first.contracts.iter().map(|c| &c.contract).collect();
        assert_eq!(reported, contracts.iter().collect::<Vec<_>>());
        for (report, i) in first.contracts.iter().zip((0..40).rev()) {
            assert_eq!(report.node_dir, out.join(format!("node-{i}")));
            assert!(written(&report.outcome).contains(&"src/lib.rs".to_owned()));
        }
        // Per contract: the unchanged check, stages 1 to 5.5 and the write.
        assert_eq!(started.load(Ordering::Relaxed), 40 * 9);
        assert_eq!(finished.load(Ordering::Relaxed), 40 * 9);
        assert_eq!(done.load(Ordering::Relaxed), 40);
        for stage in [
            Stage::Parse,
            Stage::PostValidate,
            Stage::Refine,
            Stage::Write,
        ] {
            assert!(first.timings.contains_key(&stage), "{stage}");
        }

        let second = run(&request(contracts, &out, Mode::Write)).unwrap();
        assert!(
            second
                .contracts
                .iter()
                .all(|c| c.outcome == NodeOutcome::Unchanged)
        );
        assert_eq!(second.timings.keys().collect::<Vec<_>>(), [&Stage::Write]);
    }

    #[test]
    fn stops_at_the_first_failing_contract_and_writes_nothing_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut contracts: Vec<PathBuf> = (0..30)
            .map(|i| {
                contract(
                    dir.path(),
                    &format!("c{i}.yaml"),
                    &format!("node_{i}"),
                    "1.0.0",
                )
            })
            .collect();
        for bad in [12, 20] {
            let path = dir.path().join(format!("bad{bad}.yaml"));
            std::fs::write(&path, "contract_version: 1\nnode: [\n").unwrap();
            contracts[bad] = path;
        }
        let error = run(&request(contracts.clone(), &out, Mode::Write)).unwrap_err();
        assert_eq!(error.contract, contracts[12]);
        assert_eq!(error.stage, Stage::Parse);
        for i in 0..30 {
            let exists = out.join(format!("node-{i}")).exists();
            assert_eq!(exists, i < 12, "node-{i}");
        }
        // The same in check and validate mode: the first failure in order.
        for mode in [Mode::Check, Mode::Validate] {
            let error = run(&request(contracts.clone(), &out, mode)).unwrap_err();
            assert_eq!(error.contract, contracts[12], "{mode:?}");
        }
    }

    #[test]
    fn contracts_naming_the_same_node_are_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let a = contract(dir.path(), "a.yaml", "shared", "1.0.0");
        let b = contract(dir.path(), "b.yaml", "shared", "2.0.0");
        let node = out.join("shared");

        let report = run(&request(vec![a.clone(), b.clone()], &out, Mode::Write)).unwrap();
        assert!(written(&report.contracts[0].outcome).contains(&"Cargo.toml".to_owned()));
        let second = written(&report.contracts[1].outcome);
        assert!(second.contains(&"contract.yaml".to_owned()), "{second:?}");
        assert!(!second.contains(&"Cargo.toml".to_owned()), "{second:?}");
        let copy = |node: &Path| std::fs::read_to_string(node.join("contract.yaml")).unwrap();
        assert!(copy(&node).contains("2.0.0"));

        // B's bytes match the node crate on disk, but A is written into it
        // first: B is generated again rather than skipped as unchanged.
        let report = run(&request(vec![a, b.clone()], &out, Mode::Write)).unwrap();
        assert!(matches!(
            report.contracts[0].outcome,
            NodeOutcome::Written { .. }
        ));
        assert!(matches!(
            report.contracts[1].outcome,
            NodeOutcome::Written { .. }
        ));
        assert!(copy(&node).contains("2.0.0"));

        // Two identical contracts in different folders: the second
        // rewrites only the files that record the contract's path.
        std::fs::create_dir(dir.path().join("copy")).unwrap();
        let c = dir.path().join("copy/b.yaml");
        std::fs::copy(&b, &c).unwrap();
        let fresh = dir.path().join("fresh");
        let report = run(&request(vec![b, c], &fresh, Mode::Write)).unwrap();
        assert!(matches!(
            report.contracts[0].outcome,
            NodeOutcome::Written { .. }
        ));
        assert_eq!(
            report.contracts[1].outcome,
            NodeOutcome::Written {
                files: vec![
                    MANIFEST_FILE.to_owned(),
                    "README.md".to_owned(),
                    "contract.yaml".to_owned()
                ]
            }
        );
    }
}
