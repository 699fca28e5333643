//! The documents `cargo onex asyncapi` and `cargo onex schema` print, checked
//! with the official tools, and snapshotted.
//!
//! The tool checks need what `bash scripts/interop.sh install` installs
//! (`@asyncapi/parser` in `target/interop/`, Python's `check-jsonschema`,
//! `jsonschema` and `cloudevents`) and run when `ONEX_TEST_INTEROP` is set,
//! as `scripts/test` does; then a missing or failing tool fails them.
//! Without it they print a note and pass. The snapshot and freshness tests
//! always run.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use onex_build::interop::{self, asyncapi, json_schema};
use serde_json::{Value, json};

/// The workspace's root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The variable that says the interop tools are installed.
const INTEROP_VAR: &str = "ONEX_TEST_INTEROP";

/// The committed JSON Schema of the contract format.
const CONTRACT_SCHEMA: &str = "contracts/schema/onex-contract.schema.json";

/// Bad contracts whose error is structural (an unknown key, a wrong type, a
/// missing required key, a value outside an enum, an unsupported
/// `contract_version`): the contract format's schema rejects them. The
/// other cases of `tests/bad_contracts/` are YAML syntax errors or gates the
/// schema cannot express (names, references, topics).
const STRUCTURAL: [&str; 11] = [
    "unknown_key",                  // PARSE: unknown key
    "misspelt_key",                 // PARSE: unknown key
    "misspelt_nested_key",          // PARSE: unknown key inside `node`
    "missing_required_key",         // PARSE: missing key
    "misspelt_category",            // PARSE: not one of the categories
    "misspelt_node_type",           // PARSE: not one of the node types
    "wrong_type_boolean",           // PARSE: not a boolean
    "wrong_type_contract_version",  // PARSE: not an integer
    "wrong_type_list_for_mapping",  // PARSE: a list for a mapping
    "scalar_document",              // PARSE: not a mapping
    "unsupported_contract_version", // SV-001: contract_version must be 1
];

/// Whether the tools are there; a note when they are not asked for.
fn interop(test: &str) -> bool {
    if std::env::var_os(INTEROP_VAR).is_some() {
        true
    } else {
        println!(
            "{test}: {INTEROP_VAR} is not set; skipping (run `bash scripts/interop.sh install` and set it)"
        );
        false
    }
}

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

/// Runs a command and returns its stdout; fails the test with its output
/// when it fails.
fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Every contract of `contracts/`, sorted.
fn contracts() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root().join("contracts"))
        .expect("contracts/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    found.sort();
    assert!(found.len() >= 5, "the example contracts");
    found
}

/// A scratch folder outside any Cargo project.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("onex-interop-{name}-"))
        .tempdir_in(std::env::temp_dir())
        .expect("a temporary directory")
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn nodes(names: &[&str]) -> Vec<interop::Node> {
    let paths: Vec<PathBuf> = names
        .iter()
        .map(|n| root().join("contracts").join(n))
        .collect();
    interop::load_nodes(&paths, &[]).expect("the example contracts load")
}

fn specs(names: &[&str]) -> Vec<onex_build::spec::NodeSpec> {
    nodes(names).into_iter().map(|n| n.spec).collect()
}

const SNAPSHOT_SET: [&str; 2] = ["postgres_writer.yaml", "order_workflow.yaml"];

#[test]
fn the_asyncapi_document_of_an_example_set_is_snapshotted() {
    let doc = asyncapi::document(&nodes(&SNAPSHOT_SET), &asyncapi::AsyncApiOptions::default());
    let yaml = serde_yaml::to_string(&doc).expect("YAML");
    assert_eq!(
        yaml,
        serde_yaml::to_string(&asyncapi::document(
            &nodes(&SNAPSHOT_SET),
            &asyncapi::AsyncApiOptions::default()
        ))
        .expect("YAML"),
        "the same document on every run"
    );
    insta::with_settings!({
        snapshot_path => "../snapshots/interop",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!("asyncapi_postgres_writer_order_workflow", yaml);
    });
}

#[test]
fn the_events_schema_of_an_example_set_is_snapshotted() {
    let text = interop::json_text(&json_schema::events_document(&specs(&SNAPSHOT_SET)));
    insta::with_settings!({
        snapshot_path => "../snapshots/interop",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!("events_schema_postgres_writer_order_workflow", text);
    });
}

#[test]
fn the_committed_contract_schema_is_current() {
    let expected = interop::json_text(&interop::contract_schema());
    let committed = std::fs::read_to_string(root().join(CONTRACT_SCHEMA)).unwrap_or_default();
    assert!(
        committed == expected,
        "{CONTRACT_SCHEMA} differs from what `cargo onex schema --contract` prints; refresh it with\n\n    cargo run -q -p cargo-onex -- onex schema --contract --out {CONTRACT_SCHEMA}\n"
    );
}

/// The contract schema keeps what the loader enforces: unknown keys are
/// refused, `contract_version` is 1, and `node` is required.
#[test]
fn the_contract_schema_says_what_the_loader_enforces() {
    let schema = interop::contract_schema();
    assert_eq!(schema["additionalProperties"], json!(false));
    assert_eq!(
        schema["properties"]["contract_version"]["minimum"],
        json!(1)
    );
    assert_eq!(
        schema["properties"]["contract_version"]["maximum"],
        json!(1)
    );
    let required = schema["required"].as_array().expect("required");
    assert!(required.contains(&json!("node")) && required.contains(&json!("contract_version")));
    for (name, def) in schema["$defs"].as_object().expect("$defs") {
        if def["type"] == json!("object") {
            assert_eq!(
                def["additionalProperties"],
                json!(false),
                "{name} denies unknown keys"
            );
        }
    }
}

/// Every contract in one AsyncAPI document (YAML and JSON), made from a
/// folder outside any Cargo project, passes the official parser with no
/// error and no warning.
#[test]
fn the_asyncapi_document_of_every_contract_passes_the_official_parser() {
    if !interop("asyncapi") {
        return;
    }
    let dir = scratch("asyncapi");
    let yaml = dir.path().join("onex.asyncapi.yaml");
    let json = dir.path().join("onex.asyncapi.json");
    for (out, format) in [(&yaml, "yaml"), (&json, "json")] {
        run(Command::new(cargo_onex())
            .args(["asyncapi", "--format", format, "--out"])
            .arg(out)
            .args(contracts())
            .env_remove("KAFKA_BOOTSTRAP_SERVERS")
            .current_dir(dir.path()));
    }
    let printed = run(Command::new(cargo_onex())
        .arg("asyncapi")
        .args(contracts())
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .current_dir(dir.path()));
    assert_eq!(printed, std::fs::read_to_string(&yaml).expect("written"));
    let report = run(Command::new("node")
        .arg(root().join("tests/interop/validate-asyncapi.mjs"))
        .arg(&yaml)
        .arg(&json)
        .current_dir(root()));
    println!("{report}");
    assert!(report.contains("parsed, AsyncAPI 3.0.0"), "{report}");
}

/// The contract format's schema accepts every contract of `contracts/` and
/// every example of docs/contracts.md, and rejects the structural bad
/// contracts.
#[test]
fn check_jsonschema_accepts_the_contracts_and_rejects_the_structural_bad_ones() {
    if !interop("contract schema") {
        return;
    }
    let dir = scratch("contract-schema");
    let schema = dir.path().join("onex-contract.schema.json");
    run(Command::new(cargo_onex())
        .args(["schema", "--contract", "--out"])
        .arg(&schema)
        .current_dir(dir.path()));
    let doc = std::fs::read_to_string(root().join("docs/contracts.md")).expect("docs");
    let mut files = contracts();
    for (i, block) in yaml_blocks(&doc).into_iter().enumerate() {
        let file = dir.path().join(format!("doc_example_{i}.yaml"));
        std::fs::write(&file, block).expect("write an example");
        files.push(file);
    }
    run(Command::new(python())
        .args(["-m", "check_jsonschema", "--schemafile"])
        .arg(&schema)
        .args(&files));
    for name in STRUCTURAL {
        let file = root().join(format!("tests/bad_contracts/{name}.yaml"));
        let output = Command::new(python())
            .args(["-m", "check_jsonschema", "--schemafile"])
            .arg(&schema)
            .arg(&file)
            .output()
            .expect("check-jsonschema runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !output.status.success() && stdout.contains("Schema validation errors"),
            "{name}: the schema should reject it:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The ```yaml blocks of a Markdown text.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```yaml") => current = Some(String::new()),
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Real payloads (the runtime's introspection and heartbeat events, a
/// generated module's events) validate with Python's `jsonschema` against
/// `cargo onex schema --events`; wrong ones do not.
#[test]
fn real_event_payloads_validate_against_the_events_schema() {
    use onex::{
        Event as _,
        discovery::{NodeCapabilities, NodeHeartbeatEvent, NodeIntrospectionEvent},
    };
    use onex_compile_generated::contracts::pricing::{Currency, PriceQuoteCompleted, PricedQuote};

    if !interop("events schema") {
        return;
    }
    let dir = scratch("events");
    let schema = run(Command::new(cargo_onex())
        .args(["schema", "--events"])
        .arg(root().join("contracts/pricing.yaml"))
        .current_dir(dir.path()));
    let schema: Value = serde_json::from_str(&schema).expect("JSON");

    let id = onex::uuid::Uuid::new_v4();
    let introspection = NodeIntrospectionEvent {
        node_id: id,
        node_name: "NodePricingCompute".to_owned(),
        version: "1.0.0".to_owned(),
        capabilities: NodeCapabilities {
            actions: vec!["price_quote".to_owned()],
            protocols: vec!["kafka".to_owned()],
            metadata: [("domain".to_owned(), json!("commerce"))].into(),
        },
        tags: vec!["pricing".to_owned()],
        health_endpoint: "/health".to_owned(),
        correlation_id: onex::uuid::Uuid::new_v4(),
        contract_hash: Some("0123456789abcdef".to_owned()),
    };
    let heartbeat = |interval| NodeHeartbeatEvent {
        node_id: id,
        node_name: "NodePricingCompute".to_owned(),
        status: "healthy".to_owned(),
        uptime_seconds: 42,
        timestamp: onex::chrono::Utc::now(),
        interval_seconds: interval,
    };
    let quote = PricedQuote {
        quote_id: onex::uuid::Uuid::new_v4(),
        subtotal_cents: 1_000,
        discount_cents: 100,
        tax_cents: 180,
        total_cents: 1_080,
        tax_rate: 0.2,
        currency: Currency::Eur,
        margin_cents: Some(250),
    };
    let completed = PriceQuoteCompleted::new(id, onex::uuid::Uuid::new_v4(), 1.5, &quote);
    let completed_key = PriceQuoteCompleted::TOPIC;
    let completed = serde_json::to_value(&completed).expect("serializes");

    let mut missing = completed.clone();
    missing.as_object_mut().expect("object").remove("result");
    let mut wrong_type = completed.clone();
    wrong_type["result"]["total_cents"] = json!("1080");
    let mut wrong_enum = completed.clone();
    wrong_enum["result"]["currency"] = json!("DOUBLOON");
    let mut negative = completed.clone();
    negative["result"]["total_cents"] = json!(-1);
    let mut with_null = completed.clone();
    with_null["result"]["margin_cents"] = Value::Null;
    let mut bad_heartbeat = serde_json::to_value(heartbeat(None)).expect("serializes");
    bad_heartbeat["node_id"] = json!("not a uuid");

    let cases = json!([
        [
            json_schema::INTROSPECTION_KEY,
            serde_json::to_value(&introspection).expect("serializes"),
            true
        ],
        [
            json_schema::HEARTBEAT_KEY,
            serde_json::to_value(heartbeat(Some(30))).expect("serializes"),
            true
        ],
        [
            json_schema::HEARTBEAT_KEY,
            serde_json::to_value(heartbeat(None)).expect("serializes"),
            true
        ],
        [json_schema::HEARTBEAT_KEY, bad_heartbeat, false],
        [completed_key, completed, true],
        [completed_key, with_null, true],
        [completed_key, missing, false],
        [completed_key, wrong_type, false],
        [completed_key, wrong_enum, false],
        [completed_key, negative, false],
    ]);
    let script = r##"
import json, sys
from jsonschema import Draft202012Validator, FormatChecker
data = json.load(sys.stdin)
schema = data["schema"]
Draft202012Validator.check_schema(schema)
failed = False
for key, instance, valid in data["cases"]:
    validator = Draft202012Validator({"$ref": "#/$defs/" + key, "$defs": schema["$defs"]}, format_checker=FormatChecker())
    errors = [e.message for e in validator.iter_errors(instance)]
    if bool(errors) == valid:
        failed = True
        print(f"{key}: expected {'valid' if valid else 'invalid'}, got {errors or 'valid'}: {json.dumps(instance)}")
    # The document as a whole accepts the payload of any of its events.
    if valid and list(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(instance)):
        failed = True
        print(f"{key}: the whole document refuses {json.dumps(instance)}")
sys.exit(1 if failed else 0)
"##;
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let input = json!({ "schema": schema, "cases": cases }).to_string();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write the cases");
    let output = child.wait_with_output().expect("python ends");
    assert!(
        output.status.success(),
        "jsonschema:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The hand-written schemas of the shared events name exactly the fields
/// the runtime's structs serialize, the optional one only as optional (the
/// full validation runs with the tools, in
/// `real_event_payloads_validate_against_the_events_schema`).
#[test]
fn the_shared_event_schemas_name_the_runtime_fields() {
    use onex::discovery::{NodeCapabilities, NodeHeartbeatEvent, NodeIntrospectionEvent};
    let id = onex::uuid::Uuid::new_v4();
    let introspection = |hash: Option<&str>| {
        serde_json::to_value(NodeIntrospectionEvent {
            node_id: id,
            node_name: "n".to_owned(),
            version: "1.0.0".to_owned(),
            capabilities: NodeCapabilities {
                actions: Vec::new(),
                protocols: Vec::new(),
                metadata: Default::default(),
            },
            tags: Vec::new(),
            health_endpoint: "/health".to_owned(),
            correlation_id: id,
            contract_hash: hash.map(str::to_owned),
        })
        .expect("serializes")
    };
    let heartbeat = |interval| {
        serde_json::to_value(NodeHeartbeatEvent {
            node_id: id,
            node_name: "n".to_owned(),
            status: "healthy".to_owned(),
            uptime_seconds: 1,
            timestamp: onex::chrono::Utc::now(),
            interval_seconds: interval,
        })
        .expect("serializes")
    };
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    for (schema, full, minimal) in [
        (
            json_schema::introspection_schema(),
            introspection(Some("0123456789abcdef")),
            introspection(None),
        ),
        (
            json_schema::heartbeat_schema(),
            heartbeat(Some(30)),
            heartbeat(None),
        ),
    ] {
        assert_eq!(
            keys(&schema["properties"]),
            keys(&full),
            "{}",
            schema["title"]
        );
        let mut required: Vec<String> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .map(|v| v.as_str().expect("a name").to_owned())
            .collect();
        required.sort();
        assert_eq!(required, keys(&minimal), "{}", schema["title"]);
    }
    assert_eq!(
        keys(&json_schema::introspection_schema()["properties"]["capabilities"]["properties"]),
        ["actions", "metadata", "protocols"]
    );
}

/// Outside any Cargo project: a missing or invalid contract is a clear
/// error with a non-zero exit, never a panic; `schema` asks for what.
#[test]
fn bad_input_is_a_clear_error() {
    let dir = scratch("errors");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "contract_version: 1\nnode: { name: x }\n").expect("write");
    let cases: [(Vec<&std::ffi::OsStr>, &str); 4] = [
        (
            vec!["asyncapi".as_ref(), "missing.yaml".as_ref()],
            "cannot read the contract missing.yaml: no such file",
        ),
        (
            vec![
                "schema".as_ref(),
                "--events".as_ref(),
                "missing.yaml".as_ref(),
            ],
            "cannot read the contract missing.yaml: no such file",
        ),
        (vec!["asyncapi".as_ref(), bad.as_os_str()], "missing key"),
        (vec!["schema".as_ref()], "--contract"),
    ];
    for (args, expected) in cases {
        let output = Command::new(cargo_onex())
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("cargo-onex runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(expected) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?} printed a document");
    }
}
