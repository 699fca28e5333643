//! The tool as a user outside this repository meets it.
//!
//! `cargo_onex_user_generates_builds_and_runs_a_node` installs cargo-onex
//! into a temporary root, creates a project with `cargo new` in a temporary
//! folder outside this workspace, writes a contract there, runs `cargo onex
//! generate contracts/orders.yaml` with the installed binary on `PATH`,
//! builds the node crate, starts it on the in-memory bus, waits for its
//! start-up line, stops it with SIGTERM and expects exit code 0. The
//! installed binary finds the runtime in the source tree it was built from
//! (this checkout).
//!
//! `build_script_user_compiles_a_contract_and_runs` is the `build.rs` user
//! of the README's quick start, its `Cargo.toml` lines and `build.rs` taken
//! from the README (path dependencies on a checkout, here this one), with `onex::include_contract!` and a typed event sent through
//! the in-memory bus.
//!
//! Every crate builds in the target folder the other node tests use, so
//! the runtime and its dependencies build once for the whole suite.
//! `published_crates_carry_their_metadata` checks, without building, what
//! `cargo package` needs of the four published crates.

#[path = "support/e2e.rs"]
mod e2e;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use e2e::{NodeProcess, root, terminate, wait_for_log};

/// A small effect node: one operation, one command, one event.
const ORDERS: &str = "\
contract_version: 1
node:
  name: orders
  node_type: effect
  version: 0.1.0
  domain: shop
  description: Takes orders and announces each order placed.
types:
  - name: PlaceOrderInput
    description: An order to place.
    fields:
      - name: order_id
        type: uuid
      - name: total_cents
        type: u64
  - name: PlaceOrderOutput
    description: The placed order.
    fields:
      - name: order_id
        type: uuid
operations:
  - name: place_order
    description: Place one order.
    input: PlaceOrderInput
    output: PlaceOrderOutput
events:
  - name: order_requested
    category: command
    description: Asks for an order to be placed.
    fields:
      - name: order
        type: PlaceOrderInput
  - name: order_placed
    category: event
    description: An order was placed.
    fields:
      - name: order_id
        type: uuid
      - name: total_cents
        type: u64
";

/// The target folder every generated crate of the suite builds in.
fn shared_target() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("node-target")
}

/// The workspace's own target folder (`CARGO_TARGET_TMPDIR` is its `tmp`).
fn workspace_target() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder")
        .to_path_buf()
}

/// A temporary folder outside this workspace; the test is skipped (`None`)
/// when the system's temporary folder lies inside it.
fn outside() -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().expect("temp dir");
    if dir.path().starts_with(root()) {
        eprintln!("skipped: the temporary folder lies inside this workspace");
        return None;
    }
    Some(dir)
}

fn cargo() -> Command {
    let mut command = Command::new(env!("CARGO"));
    // Nothing of this workspace's settings reaches the user's project.
    command
        .env_remove("ONEX_PATH")
        .env_remove("CARGO_TARGET_DIR");
    command
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `cargo new` in `parent`.
fn cargo_new(parent: &Path, name: &str) -> PathBuf {
    run(cargo()
        .args(["new", "--quiet", "--vcs", "none", name])
        .current_dir(parent));
    let project = parent.join(name);
    std::fs::create_dir_all(project.join("contracts")).expect("contracts/");
    std::fs::write(project.join("contracts/orders.yaml"), ORDERS).expect("contract");
    project
}

/// Builds a crate in the shared target folder and returns the path of its
/// binary `name`.
fn build(manifest: &Path, name: &str) -> PathBuf {
    run(cargo()
        .args(["build", "--quiet", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(shared_target()));
    shared_target().join("debug").join(name)
}

/// Starts a binary on the in-memory bus (no `KAFKA_BOOTSTRAP_SERVERS`),
/// logging to `log`.
fn start(binary: &Path, log: &Path) -> NodeProcess {
    let child = Command::new(binary)
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("the binary starts");
    NodeProcess(child)
}

#[test]
fn cargo_onex_user_generates_builds_and_runs_a_node() {
    let Some(home) = outside() else { return };
    let install_root = home.path().join("cargo-root");
    // `--target-dir` is this workspace's: the test build's artifacts are
    // reused, so installing costs a link at most.
    run(cargo()
        .args(["install", "--quiet", "--locked", "--debug", "--path"])
        .arg(root().join("cargo-onex"))
        .arg("--root")
        .arg(&install_root)
        .arg("--target-dir")
        .arg(workspace_target()));
    let bin = install_root.join("bin");
    assert!(
        bin.join("cargo-onex").is_file(),
        "cargo install wrote no binary"
    );

    let project = cargo_new(home.path(), "shop");
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let output = run(cargo()
        .args(["onex", "generate", "contracts/orders.yaml"])
        .env("PATH", path)
        .current_dir(&project));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("orders"), "{said}");

    let node = project.join("generated/orders");
    let manifest = std::fs::read_to_string(node.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains(&format!(
            "onex = {{ path = \"{}\" }}",
            root().join("onex").display()
        )),
        "the installed cargo-onex did not find its source tree:\n{manifest}"
    );

    let binary = build(&node.join("Cargo.toml"), "orders");
    let log = home.path().join("orders.log");
    let mut child = start(&binary, &log);
    wait_for_log(&log, "started", &mut child);
    let text = terminate(child, &log);
    assert!(text.contains("started"), "{text}");
}

/// The `build.rs` user's program.
const MAIN_RS: &str = r#"//! Sends a typed `order_placed` event through the in-memory bus and reads
//! it back through the node's event enum, then runs until SIGTERM.

mod orders {
    onex::include_contract!("orders");
}

use std::process::ExitCode;

use onex::{EventSet as _, HandlerError, KafkaConfig, Publisher, SourceInfo, bus::Subscription};

fn main() -> ExitCode {
    let runtime = match onex::tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = KafkaConfig::from_env()?;
    let environment = config.environment.clone();
    let bus = onex::connect(config).await?;
    let publisher = Publisher::new(
        bus.clone(),
        SourceInfo::new(orders::SERVICE, orders::VERSION, environment),
    );
    let (sender, mut received) = onex::tokio::sync::mpsc::unbounded_channel();
    let handler = onex::bus::handler_fn(move |message| {
        let sender = sender.clone();
        async move {
            let event = orders::OrdersEvent::decode(&message.envelope)
                .map_err(|e| HandlerError::new("decode", e.to_string()))?;
            let _ = sender.send(event);
            Ok(())
        }
    });
    let subscription = bus
        .subscribe(
            Subscription {
                topics: vec![publisher.topic_of::<orders::OrderPlaced>()],
                group: "shop".to_owned(),
            },
            handler,
        )
        .await?;
    let placed = orders::OrderPlaced {
        order_id: onex::uuid::Uuid::new_v4(),
        total_cents: 4200,
    };
    publisher.publish(&placed, None).await?;
    let event = received.recv().await.ok_or("the bus delivered nothing")?;
    if event != orders::OrdersEvent::from(placed) {
        return Err("the event came back changed".into());
    }
    eprintln!("received {}; started, waiting for SIGTERM", event.event_type());
    let signal = onex::lifecycle::wait_for_shutdown_signal().await?;
    subscription.stop().await;
    eprintln!("stopped on {signal}");
    Ok(())
}
"#;

/// The text of the README's quick start block that starts with `first`.
fn quick_start_block(first: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let quick_start = readme
        .split("## Quick start for `build.rs`")
        .nth(1)
        .expect("the README has a build.rs quick start");
    let block = quick_start
        .split("```")
        .find(|block| block.contains(first))
        .unwrap_or_else(|| panic!("no `{first}` block in the quick start"));
    block[block.find(first).expect("found") + first.len()..].to_owned()
}

#[test]
fn build_script_user_compiles_a_contract_and_runs() {
    let Some(home) = outside() else { return };
    // The quick start's lines, with this checkout for the `cargo-onex`
    // checkout they assume beside the project: so the runtime is the same
    // package, at the same path, as for every other crate built in the
    // shared target folder, and builds once.
    let project = cargo_new(home.path(), "shop");
    let manifest = project.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("Cargo.toml");
    let text = text
        .trim_end()
        .strip_suffix("[dependencies]")
        .expect("cargo new ends with [dependencies]");
    let lines = quick_start_block("# Cargo.toml\n");
    assert!(lines.contains("\"../cargo-onex/onex\""), "{lines}");
    let lines = lines.replace("\"../cargo-onex/", &format!("\"{}/", root().display()));
    std::fs::write(&manifest, format!("{text}{lines}")).expect("Cargo.toml");
    let build_rs = quick_start_block("// build.rs\n");
    let build_rs = build_rs.split("\n// src/").next().expect("build.rs");
    std::fs::write(project.join("build.rs"), build_rs).expect("build.rs");
    std::fs::write(project.join("src/main.rs"), MAIN_RS).expect("main.rs");

    let binary = build(&manifest, "shop");
    let log = home.path().join("shop.log");
    let mut child = start(&binary, &log);
    wait_for_log(&log, "started", &mut child);
    let text = terminate(child, &log);
    assert!(text.contains("received effect.order_placed"), "{text}");
}

/// What `cargo package` needs of the published crates, read from `cargo
/// metadata` (no build): the fields crates.io shows, no dependency on
/// another member that only resolves by path, `publish = false` on every
/// other member, and the templates inside `onex-templates`' package.
#[test]
fn published_crates_carry_their_metadata() {
    const PUBLISHED: [&str; 4] = ["onex-templates", "onex-build", "onex", "cargo-onex"];
    let output = run(cargo()
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(root().join("Cargo.toml")));
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    for package in packages {
        let name = package["name"].as_str().expect("name");
        if !PUBLISHED.contains(&name) {
            assert_eq!(
                package["publish"],
                serde_json::json!([]),
                "{name} is not published: it needs `publish = false`"
            );
            continue;
        }
        for field in ["description", "license", "repository", "readme"] {
            assert!(
                package[field].as_str().is_some_and(|s| !s.is_empty()),
                "{name} has no {field}"
            );
        }
        for field in ["keywords", "categories"] {
            assert!(
                package[field].as_array().is_some_and(|a| !a.is_empty()),
                "{name} has no {field}"
            );
        }
        for dependency in package["dependencies"].as_array().expect("dependencies") {
            if dependency["kind"] != "dev" && dependency["path"].is_string() {
                assert_ne!(
                    dependency["req"], "*",
                    "{name} depends on {} by path only",
                    dependency["name"]
                );
            }
        }
    }
    for name in PUBLISHED {
        assert!(
            packages.iter().any(|p| p["name"] == name),
            "{name} is no member"
        );
    }

    let listed = run(cargo()
        .args([
            "package",
            "--list",
            "--allow-dirty",
            "--quiet",
            "-p",
            "onex-templates",
        ])
        .current_dir(root()));
    let listed = String::from_utf8_lossy(&listed.stdout);
    for folder in ["module", "node"] {
        for entry in std::fs::read_dir(root().join("templates").join(folder)).expect("templates") {
            let file = format!(
                "{folder}/{}",
                entry.expect("entry").file_name().to_string_lossy()
            );
            assert!(
                listed.lines().any(|line| line == file),
                "{file} is not in onex-templates' package:\n{listed}"
            );
        }
    }

    // cargo-onex's build script compiles the generator's own contracts.
    let listed = run(cargo()
        .args([
            "package",
            "--list",
            "--allow-dirty",
            "--quiet",
            "-p",
            "cargo-onex",
        ])
        .current_dir(root()));
    let listed = String::from_utf8_lossy(&listed.stdout);
    for file in [
        "build.rs",
        "contracts/generation_pipeline.yaml",
        "contracts/node_registry.yaml",
    ] {
        assert!(
            listed.lines().any(|line| line == file),
            "{file} is not in cargo-onex's package:\n{listed}"
        );
    }
}
