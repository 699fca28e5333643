//! `cargo onex generate` output for every contract in `contracts/`: one
//! snapshot per node crate (every file, by relative path), and the rules of
//! stage 6: unchanged input writes nothing, the user's files survive, a
//! file without the `@generated` marker is never overwritten, `--check`
//! lists stale files. `generated_nodes_compile` builds every node crate.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

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
            snapshot.contains(&format!("cargo onex generate ../../contracts/{name}.yaml --out ..")),
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
    let target_dir = base.join("node-target");
    let root = workspace();
    let runtime =
        RuntimeDependency::from_crate_dirs(&out_dir, &root.join("onex"), &root.join("onex-build"));
    let report = pipeline::run(&Request {
        runtime,
        ..request(contracts(), &out_dir, Mode::Write)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    for node in &report.contracts {
        let output = Command::new(env!("CARGO"))
            .args(["build", "--all-targets", "--message-format=json"])
            .arg("--manifest-path")
            .arg(node.node_dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .output()
            .expect("cargo runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let package = node.node_dir.display().to_string();
        let warnings: Vec<String> = stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-message")
            .filter(|m| {
                m["target"]["src_path"]
                    .as_str()
                    .is_some_and(|src| src.starts_with(&package))
            })
            .filter(|m| m["message"]["level"] == "warning")
            .map(|m| m["message"]["rendered"].as_str().unwrap_or("").to_owned())
            .collect();
        assert!(
            output.status.success(),
            "{package} does not build:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            warnings.is_empty(),
            "{package} has warnings:\n{}",
            warnings.join("\n")
        );
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
