//! The generator on its own events, over the Tansu broker, each checked with
//! a client we did not write (Python confluent-kafka):
//!
//! - `cargo onex generate` with a broker configured publishes, per contract
//!   and with one correlation id, every stage's started and completed (or
//!   failed) event, then the pipeline's completed or failed event, in
//!   causal order, the failure with its stage, gate code, location and
//!   recovery suggestions;
//! - `cargo onex serve` answers two `generate --via-bus` clients at once,
//!   each with its own outcome, and refuses a request for an output folder
//!   outside its root with a failed event, writing nothing;
//! - `generate --via-bus` with no generator running falls back to a local
//!   run and says so;
//! - `cargo onex nodes` sees two nodes start, one killed (gone once its
//!   heartbeats stop), and one restarted (its entry replaced).
//!
//! The cargo-onex binary is this workspace's, built into its target folder
//! (a no-op after `cargo test` built it); the example node binary builds in
//! the target folder the other node tests share.

#[path = "support/e2e.rs"]
mod e2e;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use e2e::{NodeProcess, bootstrap, build_node, fresh_environment, root, start_node, terminate};
use serde_json::Value;

/// The stages a run without the compile check goes through, in order.
const STAGES: [&str; 8] = [
    "parse",
    "pre_validate",
    "build_contract",
    "generate",
    "event_bus_integration",
    "post_validate",
    "refine",
    "write",
];

/// The workspace's cargo-onex binary, built once.
fn cargo_onex() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("the target folder")
                .to_path_buf();
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "cargo-onex", "--target-dir"])
                .arg(&target)
                .current_dir(root())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo-onex does not build");
            target.join("debug/cargo-onex")
        })
        .clone()
}

/// A folder of this test's own, with copies of example contracts.
fn project(name: &str, contracts: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("generator-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    for contract in contracts {
        std::fs::copy(root().join("contracts").join(contract), dir.join(contract))
            .expect("copy a contract");
    }
    dir
}

/// `cargo onex` in `dir`, on the broker, in `environment`.
fn onex(dir: &Path, bootstrap: &str, environment: &str) -> Command {
    let mut command = Command::new(cargo_onex());
    command
        .arg("onex")
        .current_dir(dir)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("KAFKA_ENVIRONMENT", environment)
        .env("ONEX_PATH", root())
        .env("NO_COLOR", "1");
    command
}

fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every step topic and the pipeline's outcome topics of `environment`.
fn generator_topics(environment: &str) -> Vec<String> {
    let mut topics = Vec::new();
    for stage in STAGES.iter().chain(["compile_check"].iter()) {
        for kind in ["started", "completed", "failed"] {
            topics.push(format!(
                "{environment}.generation.orchestrator.workflow.{stage}.{kind}.v1"
            ));
        }
    }
    for outcome in ["completed", "failed"] {
        topics.push(format!("{environment}.generation.pipeline.{outcome}.v1"));
    }
    topics
}

/// The envelopes of whole topics, read with confluent-kafka.
fn read_envelopes(bootstrap: &str, topics: &[String]) -> Vec<Value> {
    let mut command = Command::new("python3");
    command
        .arg(root().join("tests/faults/read_topics.py"))
        .args(["--bootstrap", bootstrap, "--timeout", "60"]);
    for topic in topics {
        command.args(["--topic", topic]);
    }
    let output = command.output().expect("python3 runs");
    assert!(
        output.status.success(),
        "reading {topics:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).expect("a JSON line");
            serde_json::from_str(record["value"].as_str().expect("a value")).expect("an envelope")
        })
        .collect()
}

/// The envelopes by correlation id, each run's in the order they happened
/// (by their timestamps: they come from different topics).
fn runs(envelopes: Vec<Value>) -> BTreeMap<String, Vec<Value>> {
    let mut runs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for envelope in envelopes {
        let id = envelope["correlation_id"]
            .as_str()
            .expect("every progress event is correlated")
            .to_owned();
        runs.entry(id).or_default().push(envelope);
    }
    for events in runs.values_mut() {
        events.sort_by(|a, b| {
            let at = |e: &Value| e["event_timestamp"].as_str().unwrap_or_default().to_owned();
            at(a).cmp(&at(b))
        });
    }
    runs
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The event types of a run that passed `stages` and ended with `last`.
fn expected(stages: &[&str], failed_at: Option<&str>, last: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stage in stages {
        out.push(format!("orchestrator.workflow.{stage}.started"));
        let kind = if Some(*stage) == failed_at {
            "failed"
        } else {
            "completed"
        };
        out.push(format!("orchestrator.workflow.{stage}.{kind}"));
    }
    out.push(last.to_owned());
    out
}

#[test]
fn generate_publishes_each_stage_and_the_outcome() {
    let Some(bootstrap) = bootstrap() else {
        println!("ONEX_TEST_BOOTSTRAP_SERVERS is not set: skipping the progress test");
        return;
    };
    let environment = fresh_environment();
    let dir = project("progress", &["postgres_writer.yaml"]);
    std::fs::copy(
        root().join("tests/bad_contracts/misspelt_type_reference.yaml"),
        dir.join("bad.yaml"),
    )
    .expect("copy the bad contract");

    let good = onex(&dir, &bootstrap, &environment)
        .args(["generate", "postgres_writer.yaml", "--out", "nodes"])
        .output()
        .expect("cargo-onex runs");
    assert!(good.status.success(), "{}", said(&good));
    assert!(said(&good).contains("progress events"), "{}", said(&good));
    let bad = onex(&dir, &bootstrap, &environment)
        .args(["generate", "bad.yaml", "--out", "nodes"])
        .output()
        .expect("cargo-onex runs");
    assert!(!bad.status.success(), "{}", said(&bad));
    assert!(said(&bad).contains("TY-002"), "{}", said(&bad));

    let runs = runs(read_envelopes(&bootstrap, &generator_topics(&environment)));
    assert_eq!(runs.len(), 2, "one correlation id per run: {runs:#?}");
    let (ok, failed): (Vec<_>, Vec<_>) = runs.values().partition(|events| {
        events
            .last()
            .is_some_and(|e| e["event_type"] == "pipeline.completed")
    });
    assert_eq!((ok.len(), failed.len()), (1, 1), "{runs:#?}");

    let ok = ok[0];
    assert_eq!(
        types(ok),
        expected(&STAGES, None, "pipeline.completed"),
        "{ok:#?}"
    );
    let result = &ok.last().expect("an outcome")["payload"]["result"];
    assert_eq!(result["node_name"], "postgres_writer");
    assert_eq!(result["node_type"], "effect");
    assert!(
        result["output_path"]
            .as_str()
            .is_some_and(|p| p.ends_with("postgres-writer")),
        "{result}"
    );
    assert!(
        result["files_written"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "src/lib.rs")),
        "{result}"
    );
    assert_eq!(result["validation_passed"], true);
    assert!(result["compilation_passed"].is_null(), "{result}");
    assert!(
        result["stage_durations_ms"]["parse"].as_f64().is_some(),
        "{result}"
    );
    // Every event names the generator as its source and the same step ids.
    for event in ok {
        assert_eq!(event["source_service"], "generation", "{event}");
    }

    let failed = failed[0];
    assert_eq!(
        types(failed),
        expected(
            &["parse", "pre_validate"],
            Some("pre_validate"),
            "pipeline.failed"
        ),
        "{failed:#?}"
    );
    let step = &failed[failed.len() - 2]["payload"];
    assert_eq!(step["error_type"], "TY-002");
    assert!(
        step["recovery_suggestions"][0]
            .as_str()
            .is_some_and(|s| s.contains("OrderLine")),
        "{step}"
    );
    let outcome = &failed.last().expect("an outcome")["payload"];
    assert_eq!(outcome["failed_stage"], "pre_validate");
    assert_eq!(outcome["error_code"], "TY-002");
    assert!(
        outcome["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("OrderLien")),
        "{outcome}"
    );
    assert!(
        outcome["location"]
            .as_str()
            .is_some_and(|l| l.contains("bad.yaml:15:15")),
        "{outcome}"
    );
    assert!(
        outcome["recovery_suggestions"][0]
            .as_str()
            .is_some_and(|s| s.contains("did you mean `OrderLine`")),
        "{outcome}"
    );
}

/// `cargo onex serve` on the broker, with `dir` as both roots.
fn serve(dir: &Path, bootstrap: &str, environment: &str, log: &Path) -> NodeProcess {
    let child = onex(dir, bootstrap, environment)
        .args(["serve", "--contract-root", ".", "--out-root", "."])
        .env("KAFKA_GROUP", format!("{environment}-generator"))
        .env("HEARTBEAT_INTERVAL_SECONDS", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("cargo onex serve starts");
    let mut child = NodeProcess(child);
    e2e::wait_for_log(log, "Serving generation requests", &mut child);
    child
}

#[test]
fn serve_answers_clients_on_the_bus_and_keeps_to_its_roots() {
    let Some(bootstrap) = bootstrap() else {
        println!("ONEX_TEST_BOOTSTRAP_SERVERS is not set: skipping the generator service test");
        return;
    };
    let environment = fresh_environment();
    let dir = project("serve", &["postgres_writer.yaml", "pricing.yaml"]);
    let log = e2e::log_path(&format!("{environment}-serve"));
    let service = serve(&dir, &bootstrap, &environment, &log);

    // Two clients at once, each waiting for its own outcome.
    let clients: Vec<_> = ["postgres_writer.yaml", "pricing.yaml"]
        .iter()
        .map(|contract| {
            onex(&dir, &bootstrap, &environment)
                .args(["generate", contract, "--out", "nodes", "--via-bus"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("a client starts")
        })
        .collect();
    for (client, node) in clients.into_iter().zip(["postgres_writer", "pricing"]) {
        let output = client.wait_with_output().expect("the client ends");
        let text = said(&output);
        assert!(output.status.success(), "{text}");
        assert!(
            text.contains(&format!("Generated {node} in")) && text.contains("generator service"),
            "{text}"
        );
        assert!(!text.contains("generating here instead"), "{text}");
    }
    assert!(dir.join("nodes/postgres-writer/src/lib.rs").is_file());
    assert!(dir.join("nodes/pricing/src/lib.rs").is_file());

    // A request for an output folder outside the root is refused.
    let outside = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{environment}-outside"));
    let refused = onex(&dir, &bootstrap, &environment)
        .args(["generate", "pricing.yaml", "--via-bus", "--out"])
        .arg(&outside)
        .output()
        .expect("a client runs");
    let text = said(&refused);
    assert!(!refused.status.success(), "{text}");
    assert!(text.contains("OUTSIDE-ROOT"), "{text}");
    assert!(!outside.exists(), "something was written outside the root");

    let failed = read_envelopes(
        &bootstrap,
        &[format!("{environment}.generation.pipeline.failed.v1")],
    );
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let payload = &failed[0]["payload"];
    assert_eq!(payload["failed_stage"], "request");
    assert_eq!(payload["error_code"], "OUTSIDE-ROOT");
    assert!(
        payload["recovery_suggestions"][0]
            .as_str()
            .is_some_and(|s| s.contains("output folder under")),
        "{payload}"
    );
    let completed = read_envelopes(
        &bootstrap,
        &[format!("{environment}.generation.pipeline.completed.v1")],
    );
    assert_eq!(completed.len(), 2, "{completed:#?}");

    let text = terminate(service, &log);
    assert!(text.contains("Refused OUTSIDE-ROOT"), "{text}");
}

#[test]
fn via_bus_falls_back_to_a_local_run_when_no_generator_answers() {
    let Some(bootstrap) = bootstrap() else {
        println!("ONEX_TEST_BOOTSTRAP_SERVERS is not set: skipping the fallback test");
        return;
    };
    let environment = fresh_environment();
    let dir = project("fallback", &["pricing.yaml"]);
    let output = onex(&dir, &bootstrap, &environment)
        .args([
            "generate",
            "pricing.yaml",
            "--out",
            "nodes",
            "--via-bus",
            "--answer-timeout",
            "3",
        ])
        .output()
        .expect("cargo-onex runs");
    let text = said(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("no generator answered on the bus within 3 s; generating here instead"),
        "{text}"
    );
    assert!(dir.join("nodes/pricing/src/lib.rs").is_file(), "{text}");
}

/// `cargo onex nodes --format json`: the registry's entries by node name.
fn nodes(bootstrap: &str, environment: &str) -> BTreeMap<String, Value> {
    let output = Command::new(cargo_onex())
        .args(["onex", "nodes", "--format", "json", "--missed", "3"])
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("KAFKA_ENVIRONMENT", environment)
        .output()
        .expect("cargo onex nodes runs");
    assert!(output.status.success(), "{}", said(&output));
    let registry: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    registry["nodes"]
        .as_object()
        .expect("a map of nodes")
        .iter()
        .map(|(name, entry)| (name.clone(), entry.clone()))
        .collect()
}

/// Asks the registry until `check` holds (30 s at most).
fn nodes_until(
    bootstrap: &str,
    environment: &str,
    what: &str,
    check: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = nodes(bootstrap, environment);
        if check(&nodes) {
            return nodes;
        }
        assert!(Instant::now() < deadline, "{what}: {nodes:#?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

const GENERATOR: &str = "NodeGenerationPipelineOrchestrator";
const WORKFLOW: &str = "NodeOrderWorkflowOrchestrator";

fn status(nodes: &BTreeMap<String, Value>, name: &str) -> String {
    nodes
        .get(name)
        .and_then(|n| n["status"].as_str())
        .unwrap_or("absent")
        .to_owned()
}

#[test]
fn the_registry_sees_nodes_start_stop_and_restart() {
    let Some(bootstrap) = bootstrap() else {
        println!("ONEX_TEST_BOOTSTRAP_SERVERS is not set: skipping the registry test");
        return;
    };
    let environment = fresh_environment();
    let workflow_binary = build_node(&root().join("examples/order-workflow"), "order-workflow");
    let dir = project("registry", &[]);
    let serve_log = e2e::log_path(&format!("{environment}-registry-serve"));
    let workflow_log = e2e::log_path(&format!("{environment}-registry-workflow"));

    // A registry that watches from the start, printing one JSON line per
    // change.
    let watch_out = e2e::log_path(&format!("{environment}-registry-watch"));
    let watcher = NodeProcess(
        Command::new(cargo_onex())
            .args([
                "onex", "nodes", "--watch", "--format", "json", "--missed", "3",
            ])
            .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
            .env("KAFKA_ENVIRONMENT", &environment)
            .stdout(std::fs::File::create(&watch_out).expect("watch output"))
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo onex nodes --watch starts"),
    );

    // Two nodes start; the registry, started after them, finds both.
    let generator = serve(&dir, &bootstrap, &environment, &serve_log);
    let workflow = start_node(&workflow_binary, &bootstrap, &environment, &workflow_log);
    let seen = nodes_until(&bootstrap, &environment, "both nodes live", |n| {
        status(n, GENERATOR) == "live" && status(n, WORKFLOW) == "live"
    });
    let first_id = seen[GENERATOR]["node_id"].clone();
    assert_eq!(seen[GENERATOR]["node_type"], "orchestrator");
    assert_eq!(seen[GENERATOR]["domain"], "codegen");
    assert_eq!(seen[GENERATOR]["heartbeat_interval_seconds"], 1);
    assert!(seen[WORKFLOW]["last_heartbeat"].is_string(), "{seen:#?}");
    assert!(
        seen[GENERATOR]["actions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a == "generate_node")),
        "{seen:#?}"
    );

    // One is killed: no last word, so it is gone once its heartbeats stop.
    let mut workflow = workflow;
    let _ = workflow.kill();
    let _ = workflow.wait();
    nodes_until(&bootstrap, &environment, "the killed node gone", |n| {
        status(n, WORKFLOW) == "gone" && status(n, GENERATOR) == "live"
    });

    // The other restarts with a new id: its entry is replaced.
    terminate(generator, &serve_log);
    let restarted = serve(&dir, &bootstrap, &environment, &serve_log);
    let seen = nodes_until(&bootstrap, &environment, "the restarted node live", |n| {
        status(n, GENERATOR) == "live" && n[GENERATOR]["node_id"] != first_id
    });
    assert_eq!(status(&seen, WORKFLOW), "gone");
    assert_eq!(
        seen.keys().filter(|k| *k == GENERATOR).count(),
        1,
        "{seen:#?}"
    );
    terminate(restarted, &serve_log);
    // A node that stops says so: gone at once.
    nodes_until(&bootstrap, &environment, "the stopped node gone", |n| {
        status(n, GENERATOR) == "gone"
    });

    // The watching registry saw the same story, change by change, and
    // announced itself.
    let watched = std::fs::read_to_string(&watch_out).expect("watch output");
    terminate(watcher, &watch_out);
    let tables: Vec<BTreeMap<String, Value>> = watched
        .lines()
        .map(|line| {
            let registry: Value = serde_json::from_str(line).expect("a JSON line");
            serde_json::from_value(registry["nodes"].clone()).expect("a map of nodes")
        })
        .collect();
    let first = |what: &str, check: &dyn Fn(&BTreeMap<String, Value>) -> bool| {
        tables
            .iter()
            .position(check)
            .unwrap_or_else(|| panic!("--watch never showed {what}:\n{watched}"))
    };
    let both_live = first("both nodes live", &|t| {
        status(t, GENERATOR) == "live" && status(t, WORKFLOW) == "live"
    });
    let killed_gone = first("the killed node gone", &|t| status(t, WORKFLOW) == "gone");
    assert!(both_live < killed_gone, "{watched}");
    first("itself", &|t| t.contains_key("NodeNodeRegistryReducer"));
}
