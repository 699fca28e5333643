//! `cargo onex generate` output for every contract in `contracts/`: one
//! snapshot per node crate (every file, by relative path), and the rules of
//! stage 6: unchanged input writes nothing, the user's files survive, a
//! file without the `@generated` marker is never overwritten, `--check`
//! lists stale files. `generated_nodes_compile` builds every node crate.

#[path = "support/node_build.rs"]
mod node_build;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use node_build::build_without_warnings;
use onex_build::pipeline::{self, Mode, NodeOutcome, Request, RuntimeDependency, StageError};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies of every contract in `{dir}/contracts/`, so that a node crate
/// generated into `{dir}/generated/` records the contract as
/// `../../contracts/{file}` on every machine.
fn staged_contracts(dir: &Path) -> Vec<PathBuf> {
    let staged = dir.join("contracts");
    std::fs::create_dir_all(&staged).expect("contracts folder");
    contracts()
        .iter()
        .map(|contract| {
            let copy = staged.join(contract.file_name().expect("a file name"));
            std::fs::copy(contract, &copy).expect("copy the contract");
            copy
        })
        .collect()
}

fn contracts() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(workspace().join("contracts"))
        .expect("contracts/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    found.sort();
    found
}

/// The runtime dependency as seen from `generated/<node>/` in this
/// repository, so snapshots hold no machine's paths.
fn repo_runtime() -> RuntimeDependency {
    RuntimeDependency::Path {
        onex: "../../onex".to_owned(),
        onex_build: "../../onex-build".to_owned(),
    }
}

fn request(contracts: Vec<PathBuf>, out_dir: &Path, mode: Mode) -> Request {
    Request {
        contracts,
        out_dir: out_dir.to_path_buf(),
        mode,
        runtime: repo_runtime(),
        compile_check: false,
        target_dir: None,
        contract_path: Vec::new(),
    }
}

/// Every file of a node crate, sorted by relative path.
fn tree(node_dir: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("readable dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .expect("inside")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((
                    relative,
                    std::fs::read_to_string(&path).expect("utf-8 file"),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(node_dir, node_dir, &mut out);
    out.sort();
    out
}

fn render_tree(files: &[(String, String)]) -> String {
    files
        .iter()
        .map(|(path, contents)| format!("===== {path} =====\n{contents}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn generate_one(contract: &Path, out_dir: &Path) -> PathBuf {
    let report = pipeline::run(&request(vec![contract.to_path_buf()], out_dir, Mode::Write))
        .unwrap_or_else(|e| panic!("{e}"));
    report.contracts[0].node_dir.clone()
}

#[test]
fn generated_node_trees() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("generated");
    for contract in staged_contracts(dir.path()) {
        let node_dir = generate_one(&contract, &out);
        let name = contract
            .file_stem()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let snapshot = render_tree(&tree(&node_dir));
        assert!(
            !snapshot.contains(env!("CARGO_MANIFEST_DIR"))
                && !snapshot.contains(&*dir.path().to_string_lossy()),
            "absolute paths leak into {name}"
        );
        assert!(
            snapshot.contains(&format!(
                "cargo onex generate ../../contracts/{name}.yaml --out .."
            )),
            "the README of {name} says how to regenerate it"
        );
        assert_eq!(
            pipeline::manifest::recorded_contract(&node_dir)
                .map(|path| pipeline::paths::normalize(&path)),
            Some(pipeline::paths::normalize(&contract)),
            "the manifest of {name} records its contract"
        );
        insta::with_settings!({
            snapshot_path => "../snapshots/nodes",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, snapshot);
        });
    }
}

#[test]
fn regenerating_an_unchanged_tree_is_byte_identical() {
    let out = tempfile::tempdir().expect("temp dir");
    let all = contracts();
    let first = pipeline::run(&request(all.clone(), out.path(), Mode::Write)).expect("first run");
    let before: Vec<_> = first.contracts.iter().map(|c| tree(&c.node_dir)).collect();

    // Same input: nothing is rendered.
    let second = pipeline::run(&request(all.clone(), out.path(), Mode::Write)).expect("second run");
    for c in &second.contracts {
        assert_eq!(
            c.outcome,
            NodeOutcome::Unchanged,
            "{}",
            c.contract.display()
        );
    }
    assert!(!second.timings.contains_key(&pipeline::Stage::Generate));

    // Without the manifest everything is rendered again, to the same bytes.
    for c in &second.contracts {
        std::fs::remove_file(c.node_dir.join(pipeline::manifest::MANIFEST_FILE)).expect("manifest");
    }
    let third = pipeline::run(&request(all, out.path(), Mode::Write)).expect("third run");
    let after: Vec<_> = third.contracts.iter().map(|c| tree(&c.node_dir)).collect();
    assert_eq!(before, after);
    for c in &third.contracts {
        assert_eq!(
            c.outcome,
            NodeOutcome::Written {
                files: vec![pipeline::manifest::MANIFEST_FILE.to_owned()]
            }
        );
    }
}

#[test]
fn a_users_handler_survives_regeneration() {
    let out = tempfile::tempdir().expect("temp dir");
    let contract = workspace().join("contracts/postgres_writer.yaml");
    let node_dir = generate_one(&contract, out.path());
    let handler = node_dir.join("src/handler.rs");
    let mine = "//! My business logic.\n";
    std::fs::write(&handler, mine).expect("edit handler");
    // A damaged generated file forces a full regeneration.
    std::fs::write(node_dir.join("src/lib.rs"), "// @generated\n").expect("damage lib.rs");

    let report = pipeline::run(&request(vec![contract], out.path(), Mode::Write)).expect("rerun");
    assert_eq!(
        report.contracts[0].outcome,
        NodeOutcome::Written {
            files: vec!["src/lib.rs".to_owned()]
        }
    );
    assert_eq!(std::fs::read_to_string(&handler).expect("handler"), mine);
}

#[test]
fn a_file_without_the_marker_is_never_overwritten() {
    let out = tempfile::tempdir().expect("temp dir");
    let contract = workspace().join("contracts/postgres_writer.yaml");
    let node_dir = generate_one(&contract, out.path());
    let lib = node_dir.join("src/lib.rs");
    std::fs::write(&lib, "// hand-written\n").expect("replace lib.rs");

    let error =
        pipeline::run(&request(vec![contract], out.path(), Mode::Write)).expect_err("must refuse");
    assert_eq!(error.stage, pipeline::Stage::Write);
    assert!(matches!(*error.error, StageError::UserFile { .. }));
    let message = error.to_string();
    assert!(message.contains("src/lib.rs"), "{message}");
    assert!(message.contains("@generated"), "{message}");
    assert!(message.contains("move or delete the file"), "{message}");
    assert_eq!(
        std::fs::read_to_string(&lib).expect("lib.rs"),
        "// hand-written\n"
    );
}

#[test]
fn check_mode_lists_stale_files_and_writes_nothing() {
    let out = tempfile::tempdir().expect("temp dir");
    let contract = workspace().join("contracts/postgres_writer.yaml");
    let node_dir = generate_one(&contract, out.path());
    let main = node_dir.join("src/main.rs");
    std::fs::write(&main, "// @generated\n// stale\n").expect("edit main.rs");
    std::fs::remove_file(node_dir.join("README.md")).expect("remove README");

    let report = pipeline::run(&request(vec![contract], out.path(), Mode::Check)).expect("check");
    assert_eq!(
        report.contracts[0].outcome,
        NodeOutcome::Stale {
            files: vec!["README.md".to_owned(), "src/main.rs".to_owned()]
        }
    );
    assert_eq!(report.stale_files().len(), 2);
    assert_eq!(
        std::fs::read_to_string(&main).expect("main.rs"),
        "// @generated\n// stale\n"
    );
    assert!(!node_dir.join("README.md").exists());
}

/// Builds every generated node crate (with the `kafka` feature, as the
/// binaries run) and fails on any warning in generated code.
#[test]
fn generated_nodes_compile_without_warnings() {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out_dir = base.join("generated-nodes");
    // A `Cargo.toml` is written once: one left by another checkout sharing
    // this target directory would build against that checkout's runtime.
    let _ = std::fs::remove_dir_all(&out_dir);
    let target_dir = base.join("node-target");
    let root = workspace();
    let runtime =
        RuntimeDependency::from_crate_dirs(&out_dir, &root.join("onex"), &root.join("onex-build"));
    // Beside the repository's contracts, a node named like the module its
    // `main.rs` imports, which once shadowed the node's own crate.
    let mut contracts = contracts();
    contracts.push(root.join("tests/hostile_contracts/node_named_events.yaml"));
    let report = pipeline::run(&Request {
        runtime,
        ..request(contracts, &out_dir, Mode::Write)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    for node in &report.contracts {
        if let Err(why) = build_without_warnings(&node.node_dir, &target_dir) {
            panic!("{} {why}", node.node_dir.display());
        }
    }
}

/// The node crates committed under `examples/` are what `cargo onex
/// generate --out examples` writes today: `--check` finds nothing stale.
#[test]
fn committed_example_nodes_are_up_to_date() {
    let examples = workspace().join("examples");
    let mut checked = 0;
    for contract in contracts() {
        let stem = contract
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 contract name");
        let node_dir = examples.join(stem.replace('_', "-"));
        if !node_dir.join(".onex-generated").exists() {
            continue;
        }
        let report =
            pipeline::run(&request(vec![contract.clone()], &examples, Mode::Check)).expect("check");
        assert!(
            matches!(
                report.contracts[0].outcome,
                NodeOutcome::Unchanged | NodeOutcome::UpToDate
            ),
            "{} is stale: run `cargo run -p cargo-onex -- onex generate {} --out examples` ({:?})",
            node_dir.display(),
            contract.display(),
            report.contracts[0].outcome
        );
        checked += 1;
    }
    assert!(checked >= 1, "examples/postgres-writer is a generated node");
}

/// The seed's bridge orchestrator: operations named like its steps
/// (`persist`), like the step-input methods of old (`validate_input`) and
/// like the node's own methods (`shutdown`, `initialize`, `runtime`,
/// `dispatch`, `operations`, `new`); a description written as a YAML block
/// of several lines full of TOML, YAML and Markdown syntax.
const BRIDGE: &str = r#"contract_version: 1
node:
  name: bridge
  node_type: orchestrator
  version: 1.0.0
  domain: testing
  description: |
    Bridges a request through validation, persistence and completion.
    A description of "several" lines, as YAML blocks write them:
    [not a link] & <b>not html</b> # not a heading
    description = "not TOML"
    key: not YAML
types:
  - name: Payload
    fields:
      - { name: id, type: string }
operations:
  - { name: validate_input, input: Payload, output: Payload }
  - { name: persist, input: Payload, output: Payload }
  - { name: complete_workflow, input: Payload, output: Payload }
  - { name: shutdown, input: Payload, output: Payload }
  - { name: initialize, input: Payload, output: Payload }
  - { name: runtime, input: Payload, output: Payload }
  - { name: dispatch, input: Payload, output: Payload }
  - { name: operations, input: Payload, output: Payload }
  - { name: new, input: Payload, output: Payload }
events:
  - name: start_bridge
    category: command
    fields:
      - { name: payload, type: Payload }
subscriptions:
  - topic: upstream.effect.thing.completed.v1
    operation: persist
workflow:
  steps:
    - { name: validate, operation: validate_input }
    - { name: persist, operation: persist }
    - { name: complete }
"#;

/// A test of the generated bridge node with its handler mocked, on the
/// in-memory bus: the workflow runs, operations named like the node's
/// methods run, and a subscribed message that is not the operation's input
/// (or that no operation handles) is retried, dead-lettered with its reason
/// and counted.
const BRIDGE_MOCK_TEST: &str = r#"
use std::{sync::{Arc, Mutex}, time::Duration};

use bridge::{NodeBridgeOrchestrator, OperationError, Settings, WorkflowRun, events};
use onex::{EventBus, InMemoryBus, SourceInfo, lifecycle::NodeRuntime, serde_json::json, uuid::Uuid};

#[derive(Default)]
struct Mock {
    calls: Mutex<Vec<String>>,
}

impl Mock {
    fn called(&self, name: &str, input: events::Payload) -> Result<events::Payload, OperationError> {
        self.calls.lock().unwrap().push(format!("{name}:{}", input.id));
        Ok(input)
    }
}

impl bridge::Handler for Mock {
    async fn validate_input(&self, input: events::Payload, _context: bridge::Context<'_>) -> Result<events::Payload, OperationError> {
        self.called("validate_input", input)
    }
    async fn persist(&self, input: events::Payload, _context: bridge::Context<'_>) -> Result<events::Payload, OperationError> {
        self.called("persist", input)
    }
    async fn complete_workflow(&self, input: events::Payload, _context: bridge::Context<'_>) -> Result<events::Payload, OperationError> {
        self.called("complete_workflow", input)
    }
    async fn shutdown(&self, input: events::Payload, _context: bridge::Context<'_>) -> Result<events::Payload, OperationError> {
        self.called("shutdown", input)
    }
    async fn initialize(&self, input: events::Payload, _context: bridge::Context<'_>) -> Result<events::Payload, OperationError> {
        self.called("initialize", input)
    }
    async fn runtime(&self, input: events::Payload, _context: bridge::Context<'_>) -> Result<events::Payload, OperationError> {
        self.called("runtime", input)
    }
    async fn dispatch(&self, input: events::Payload, _context: bridge::Context<'_>) -> Result<events::Payload, OperationError> {
        self.called("dispatch", input)
    }
    async fn operations(&self, input: events::Payload, _context: bridge::Context<'_>) -> Result<events::Payload, OperationError> {
        self.called("operations", input)
    }
    async fn new(&self, input: events::Payload, _context: bridge::Context<'_>) -> Result<events::Payload, OperationError> {
        self.called("new", input)
    }
}

impl bridge::Steps for Mock {
    fn validate(&self, run: &WorkflowRun) -> Result<events::Payload, OperationError> {
        Ok(onex::serde_json::from_value(run.trigger["payload"].clone())?)
    }
    fn persist(&self, run: &WorkflowRun) -> Result<events::Payload, OperationError> {
        Ok(onex::serde_json::from_value(run.results["validate"].clone())?)
    }
    async fn complete(&self, run: &mut WorkflowRun) -> Result<Option<onex::serde_json::Value>, OperationError> {
        Ok(Some(json!(run.steps_completed.len())))
    }
}

#[test]
fn a_mocked_handler_runs_the_node_and_refused_messages_are_dead_lettered() {
    let tokio = onex::tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let bus = Arc::new(
            InMemoryBus::builder("test")
                .retry_policy(onex::retry::RetryPolicy::new(2, Duration::from_millis(1)))
                .build(),
        );
        let runtime = NodeRuntime::new(bus.clone(), SourceInfo::new("bridge", "1.0.0", "test"));
        let node = Arc::new(NodeBridgeOrchestrator::new(runtime, Mock::default()));
        node.initialize(&Settings::default()).await.expect("initialize");

        let run = node
            .run_workflow(json!({"payload": {"id": "w"}}), Uuid::new_v4())
            .await
            .expect("the workflow runs");
        assert_eq!(run.steps_completed, ["validate", "persist", "complete"]);
        assert_eq!(run.results["complete"], json!(2));
        for name in ["shutdown", "initialize", "runtime", "dispatch", "operations", "new"] {
            let input = events::Payload { id: name.to_owned() };
            let output = match name {
                "shutdown" => node.operations().shutdown(input, Uuid::new_v4()).await,
                "initialize" => node.operations().initialize(input, Uuid::new_v4()).await,
                "runtime" => node.operations().runtime(input, Uuid::new_v4()).await,
                "dispatch" => node.operations().dispatch(input, Uuid::new_v4()).await,
                "operations" => node.operations().operations(input, Uuid::new_v4()).await,
                _ => node.operations().new(input, Uuid::new_v4()).await,
            };
            assert_eq!(output.expect("the operation runs").id, name);
        }
        bus.wait_until_idle().await;
        let completed = bus.history_for("test.bridge.orchestrator.shutdown.completed.v1");
        assert_eq!(completed.len(), 1, "the operation published its completed event");

        // Another node's event on the subscribed topic: its input runs
        // `persist`; anything else is refused.
        let template = bus.history().pop().expect("a published message");
        let message = |event_type: &str, topic: &str, payload| {
            let mut message = template.clone();
            message.topic = topic.to_owned();
            message.envelope.event_type = event_type.to_owned().into();
            message.envelope.set_payload(&payload).expect("a payload");
            Arc::new(message)
        };
        let upstream = "test.upstream.effect.thing.completed.v1";
        bus.publish(message("effect.thing.completed", upstream, json!({"id": "sub"})))
            .await
            .expect("publish");
        bus.publish(message("effect.thing.completed", upstream, json!({"nope": 1})))
            .await
            .expect("publish");
        let commands = node.publisher().topic_of::<events::StartBridge>();
        bus.publish(message("orchestrator.something_else", &commands, json!({})))
            .await
            .expect("publish");
        bus.wait_until_idle().await;

        assert!(node.handler().calls.lock().unwrap().contains(&"persist:sub".to_owned()));
        let dead = bus.dead_letters();
        assert_eq!(dead.len(), 2, "{dead:#?}");
        assert_eq!(dead[0].error_type, "undecodable");
        assert!(dead[0].failure_reason.contains("`persist`"), "{}", dead[0].failure_reason);
        assert_eq!(dead[0].retry_count, 2);
        assert_eq!(dead[1].error_type, "unroutable");
        assert!(dead[1].failure_reason.contains("orchestrator.something_else"), "{}", dead[1].failure_reason);
        // Each refused delivery counts: the first attempt and two retries.
        assert_eq!(node.runtime().rejected_messages(), 6);
        assert_eq!(node.runtime().dead_lettered(), Some(2));
        node.shutdown().await.expect("shutdown");
    });
}
"#;

/// Runs cargo on a node crate in the shared node target directory.
fn cargo_on(node_dir: &Path, command: &str) -> std::process::Output {
    Command::new(env!("CARGO"))
        .args([command, "--quiet", "--manifest-path"])
        .arg(node_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("node-target"))
        .env("NO_COLOR", "1")
        .env("CARGO_TERM_COLOR", "never")
        .output()
        .expect("cargo runs")
}

/// The bridge orchestrator, whose names collide unless the node crate keeps
/// them apart, builds; its handler can be mocked; refused messages are
/// dead-lettered and counted; an operation added to the contract shows up
/// as rustc's missing trait item in the user's `src/handler.rs`, with the
/// method's signature in the error and in the README.
#[test]
fn the_bridge_node_builds_mocks_and_names_a_new_operation() {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bridge-node");
    let _ = std::fs::remove_dir_all(&base);
    let out_dir = base.join("generated");
    std::fs::create_dir_all(&out_dir).expect("out dir");
    let contract = base.join("bridge.yaml");
    std::fs::write(&contract, BRIDGE).expect("contract");
    let root = workspace();
    let runtime =
        RuntimeDependency::from_crate_dirs(&out_dir, &root.join("onex"), &root.join("onex-build"));
    let generate = || {
        pipeline::run(&Request {
            runtime: runtime.clone(),
            ..request(vec![contract.clone()], &out_dir, Mode::Write)
        })
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let node_dir = generate().contracts[0].node_dir.clone();

    let manifest = std::fs::read_to_string(node_dir.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains(r#"description = "Bridges a request"#)
            && manifest.contains(r#"\"several\""#),
        "{manifest}"
    );
    std::fs::create_dir_all(node_dir.join("tests")).expect("tests folder");
    std::fs::write(node_dir.join("tests/mock.rs"), BRIDGE_MOCK_TEST).expect("mock test");
    let tested = cargo_on(&node_dir, "test");
    assert!(
        tested.status.success(),
        "the bridge node's mock test fails:\n{}\n{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );

    // The binary says which bus it runs on, and that alone on the
    // in-memory bus no one hears it.
    let built = cargo_on(&node_dir, "build");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let log = base.join("bridge.log");
    let mut child =
        Command::new(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("node-target/debug/bridge"))
            .env_remove("KAFKA_BOOTSTRAP_SERVERS")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("the node starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("waiting for SIGINT or SIGTERM") {
            break text;
        }
        if child.try_wait().expect("wait").is_some() || std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node did not start:\n{text}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("the node stops");
    assert!(status.success(), "{status}");
    assert!(
        text.contains("WARN") && text.contains("running on the in-memory bus: this node is alone"),
        "{text}"
    );

    // The contract gains an operation; the user's handler lacks it.
    std::fs::write(
        &contract,
        BRIDGE.replace(
            "events:\n",
            "  - { name: archive, input: Payload, output: Payload }\nevents:\n",
        ),
    )
    .expect("contract");
    generate();
    let built = cargo_on(&node_dir, "build");
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(!built.status.success(), "the handler lacks `archive`");
    assert!(
        stderr.contains("not all trait items implemented, missing: `archive`"),
        "{stderr}"
    );
    assert!(stderr.contains("src/handler.rs"), "{stderr}");
    assert!(stderr.contains("fn archive("), "{stderr}");
    let readme = std::fs::read_to_string(node_dir.join("README.md")).expect("README");
    assert!(
        readme.contains(
            "async fn archive(&self, input: crate::events::Payload, \
             context: crate::Context<'_>) -> Result<crate::events::Payload, crate::OperationError>;"
        ),
        "{readme}"
    );
}

/// A producer, whose events another contract consumes: a custom event and
/// the derived events of its operation.
const SENSOR: &str = r#"contract_version: 1
node:
  name: sensor
  node_type: effect
  version: 2.0.0
  domain: testing
types:
  - name: Sample
    fields:
      - { name: celsius, type: f64 }
operations:
  - { name: sample, input: Sample, output: Sample }
events:
  - name: reading_taken
    version: "2.1"
    fields:
      - { name: celsius, type: f64 }
      - { name: station, type: string }
"#;

/// A consumer of the sensor's events: typed reactions, beside a raw topic.
const MONITOR: &str = r#"contract_version: 1
node:
  name: monitor
  node_type: effect
  version: 1.0.0
  domain: testing
types:
  - name: Alert
    fields:
      - { name: station, type: string }
operations:
  - { name: raise_alert, input: Alert, output: Alert }
consumes:
  - contract: sensor.yaml
subscriptions:
  - event: sensor.reading_taken
    version: "2"
  - event: sensor.sample_started
  - topic: alerts.effect.manual.v1
    operation: raise_alert
"#;

/// The monitor's reactions, mocked, on the in-memory bus: a reading the
/// sensor publishes reaches `on_sensor_reading_taken` typed, with its
/// correlation id and source; an event of another type on the sensor's
/// topic is dead-lettered as unroutable, and a reaction's error is retried,
/// then dead-lettered.
const MONITOR_REACTION_TEST: &str = r#"
use std::{sync::{Arc, Mutex}, time::Duration};

use monitor::{NodeMonitorEffect, OperationError, Settings, consumed::sensor, events};
use onex::{EventBus, InMemoryBus, SourceInfo, lifecycle::NodeRuntime, reaction::ReactionContext, serde_json::json, uuid::Uuid};

#[derive(Default)]
struct Mock {
    readings: Mutex<Vec<(f64, String, ReactionContext)>>,
}

impl monitor::Handler for Mock {
    async fn raise_alert(&self, input: events::Alert, _context: monitor::Context<'_>) -> Result<events::Alert, OperationError> {
        Ok(input)
    }
    async fn on_sensor_reading_taken(
        &self,
        event: sensor::ReadingTaken,
        context: ReactionContext,
        _run: monitor::Context<'_>,
    ) -> Result<(), OperationError> {
        self.readings.lock().unwrap().push((event.celsius, event.station, context));
        Ok(())
    }
    async fn on_sensor_sample_started(
        &self,
        event: sensor::SampleStarted,
        context: ReactionContext,
        _run: monitor::Context<'_>,
    ) -> Result<(), OperationError> {
        let _ = (event, context);
        Err(OperationError::new("busy", "cannot take samples now"))
    }
}

#[test]
fn a_foreign_event_reaches_its_typed_reaction() {
    let tokio = onex::tokio::runtime::Runtime::new().expect("tokio");
    tokio.block_on(async {
        let bus = Arc::new(
            InMemoryBus::builder("test")
                .retry_policy(onex::retry::RetryPolicy::new(1, Duration::from_millis(1)))
                .build(),
        );
        let runtime = NodeRuntime::new(bus.clone(), SourceInfo::new("monitor", "1.0.0", "test"));
        let node = Arc::new(NodeMonitorEffect::new(runtime, Mock::default()));
        node.initialize(&Settings::default()).await.expect("initialize");

        let producer = NodeRuntime::new(bus.clone(), SourceInfo::new("sensor", "2.0.0", "test"));
        let correlation_id = Uuid::new_v4();
        let reading = sensor::ReadingTaken { celsius: 21.5, station: "roof".to_owned() };
        producer.publisher().publish(&reading, Some(correlation_id)).await.expect("publish");
        bus.wait_until_idle().await;
        {
            let readings = node.handler().readings.lock().unwrap();
            assert_eq!(readings.len(), 1, "the reaction ran once");
            let (celsius, station, context) = &readings[0];
            assert_eq!((*celsius, station.as_str()), (21.5, "roof"));
            assert_eq!(context.correlation_id, correlation_id);
            assert!(context.correlated);
            assert_eq!(context.source_service, "sensor");
            assert_eq!(context.source_node_id, producer.node_id().to_string());
            assert_eq!(context.topic, "test.sensor.effect.reading_taken.v1");
        }
        assert!(bus.dead_letters().is_empty(), "{:#?}", bus.dead_letters());

        // Another event type on the sensor's topic: unroutable.
        let mut stray = bus.history_for("test.sensor.effect.reading_taken.v1").pop().expect("the reading");
        stray.envelope.event_type = "effect.reading_lost".to_owned().into();
        bus.publish(Arc::new(stray)).await.expect("publish");
        // The right event type with a payload that is not a reading.
        let mut garbled = bus.history_for("test.sensor.effect.reading_taken.v1").remove(0);
        garbled.envelope.set_payload(&json!({"celsius": "warm"})).expect("a payload");
        bus.publish(Arc::new(garbled)).await.expect("publish");
        // A reaction that fails is retried, then dead-lettered.
        let done = sensor::SampleStarted::new(producer.node_id(), correlation_id);
        producer.publisher().publish(&done, Some(correlation_id)).await.expect("publish");
        bus.wait_until_idle().await;

        assert_eq!(node.handler().readings.lock().unwrap().len(), 1);
        let dead = bus.dead_letters();
        assert_eq!(dead.len(), 3, "{dead:#?}");
        assert_eq!(dead[0].error_type, "unroutable");
        assert!(dead[0].failure_reason.contains("effect.reading_lost"), "{}", dead[0].failure_reason);
        assert_eq!(dead[0].retry_count, 1);
        assert_eq!(dead[1].error_type, "undecodable");
        assert_eq!(dead[2].error_type, "busy");
        assert_eq!(dead[2].retry_count, 1);
        assert_eq!(node.runtime().rejected_messages(), 4);
        node.shutdown().await.expect("shutdown");
    });
}
"#;

/// A node that consumes another contract's events: its node crate carries
/// a copy of the producer's contract, compiles the producer's types from
/// it, and its typed reactions run on the in-memory bus.
#[test]
fn a_consumer_reacts_to_the_producers_typed_events() {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("monitor-node");
    let _ = std::fs::remove_dir_all(&base);
    let out_dir = base.join("generated");
    std::fs::create_dir_all(&out_dir).expect("out dir");
    let producers = base.join("producers");
    std::fs::create_dir_all(&producers).expect("producers folder");
    std::fs::write(producers.join("sensor.yaml"), SENSOR).expect("producer contract");
    let contract = base.join("monitor.yaml");
    std::fs::write(&contract, MONITOR).expect("contract");
    let root = workspace();
    let runtime =
        RuntimeDependency::from_crate_dirs(&out_dir, &root.join("onex"), &root.join("onex-build"));
    let generate = |contract_path: Vec<PathBuf>| {
        pipeline::run(&Request {
            runtime: runtime.clone(),
            contract_path,
            ..request(vec![contract.clone()], &out_dir, Mode::Write)
        })
    };
    // Not beside the contract: found on the search path only.
    let missing = generate(Vec::new()).expect_err("sensor.yaml is not beside monitor.yaml");
    assert!(missing.to_string().contains("XR-001"), "{missing}");
    let report = generate(vec![producers.clone()]).unwrap_or_else(|e| panic!("{e}"));
    let node_dir = report.contracts[0].node_dir.clone();
    let copy = std::fs::read_to_string(node_dir.join("consumed/sensor.yaml")).expect("the copy");
    assert!(
        copy.starts_with("# @generated") && copy.contains(SENSOR),
        "{copy}"
    );
    let manifest = std::fs::read_to_string(node_dir.join(".onex-generated")).expect("manifest");
    assert!(
        manifest.contains("generated consumed/sensor.yaml "),
        "{manifest}"
    );
    assert!(
        manifest.contains("consumed ../../producers/sensor.yaml "),
        "{manifest}"
    );

    std::fs::create_dir_all(node_dir.join("tests")).expect("tests folder");
    std::fs::write(node_dir.join("tests/reaction.rs"), MONITOR_REACTION_TEST).expect("test");
    let tested = cargo_on(&node_dir, "test");
    assert!(
        tested.status.success(),
        "the monitor node's reaction test fails:\n{}\n{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );

    // The producer's contract changes: the consumer is regenerated, not
    // skipped as unchanged.
    std::fs::write(
        producers.join("sensor.yaml"),
        SENSOR.replace("domain: testing", "domain: weather"),
    )
    .expect("producer contract");
    let again = generate(vec![producers]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&again.contracts[0].outcome, NodeOutcome::Written { files } if files.contains(&"consumed/sensor.yaml".to_owned())),
        "{:?}",
        again.contracts[0].outcome
    );
}

/// What a node crate's TOML, YAML, `.env` and Markdown files say, read
/// back by parsers of those formats, for contracts whose descriptions are
/// full of their syntax: every text stays the text it was.
#[test]
fn non_rust_files_read_back_in_their_formats() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bridge = dir.path().join("bridge.yaml");
    std::fs::write(&bridge, BRIDGE).expect("contract");
    let hostile = workspace().join("tests/hostile_contracts/hostile_descriptions.yaml");
    for contract in [bridge, hostile] {
        let node_dir = generate_one(&contract, &dir.path().join("generated"));
        let source: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&contract).expect("contract"))
                .expect("YAML contract");
        let description = source["node"]["description"]
            .as_str()
            .expect("a description")
            .trim();
        let read = |file: &str| std::fs::read_to_string(node_dir.join(file)).expect(file);

        let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).expect("valid TOML");
        assert_eq!(
            manifest["package"]["description"].as_str().map(str::trim),
            Some(description)
        );

        let compose: serde_yaml::Value =
            serde_yaml::from_str(&read("compose.yaml")).expect("valid YAML");
        let services = compose["services"].as_mapping().expect("services");
        assert_eq!(services.len(), 1, "{compose:?}");
        let (_, service) = services.iter().next().expect("a service");
        assert!(
            service["environment"]["SERVICE_NAME"].as_str().is_some(),
            "{compose:?}"
        );

        for line in read(".env.template").lines() {
            let setting = line
                .split_once('=')
                .is_some_and(|(name, _)| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
            assert!(
                line.is_empty() || line.starts_with('#') || setting,
                "not a comment nor a setting: {line:?}"
            );
        }

        let readme = read("README.md");
        let paragraph = readme.lines().nth(3).expect("the description's line");
        assert_eq!(
            paragraph,
            onex_build::render::escape::markdown_text(description)
        );
        assert!(!paragraph.contains("<b>"), "{paragraph}");
        let headings: Vec<&str> = readme.lines().filter(|l| l.starts_with('#')).collect();
        assert!(
            headings
                .iter()
                .all(|h| h.starts_with("# Node") || h.starts_with("## ")),
            "{headings:?}"
        );
    }
}
