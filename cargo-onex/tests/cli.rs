//! The `cargo onex` command line, run as cargo runs it (`cargo-onex onex
//! ...`) against a small workspace of its own.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const POSTGRES_WRITER: &str = include_str!("../../contracts/postgres_writer.yaml");

/// A workspace with one contract, outside this repository (so node crates
/// depend on the runtime of the source tree cargo-onex was built from;
/// nothing here builds them).
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace]\n",
    )
    .expect("Cargo.toml");
    std::fs::create_dir_all(dir.path().join("src")).expect("src");
    std::fs::write(dir.path().join("src/lib.rs"), "").expect("lib.rs");
    std::fs::create_dir_all(dir.path().join("contracts")).expect("contracts");
    std::fs::write(
        dir.path().join("contracts/postgres_writer.yaml"),
        POSTGRES_WRITER,
    )
    .expect("contract");
    dir
}

fn cargo_onex(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cargo-onex"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cargo-onex runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The dependency line of a node crate generated outside this repository
/// by the cargo-onex built from it: this checkout's runtime, by absolute
/// path.
fn source_tree_onex() -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository");
    format!("onex = {{ path = \"{}\" }}", repo.join("onex").display())
}

fn node_dir(ws: &tempfile::TempDir) -> PathBuf {
    ws.path().join("generated/postgres-writer")
}

#[test]
fn runs_as_a_cargo_subcommand_and_on_its_own() {
    let ws = workspace();
    let as_cargo = cargo_onex(ws.path(), &["onex", "check"]);
    assert!(as_cargo.status.success(), "{}", text(&as_cargo));
    assert!(text(&as_cargo).contains("valid"), "{}", text(&as_cargo));
    let direct = cargo_onex(ws.path(), &["check"]);
    assert!(direct.status.success(), "{}", text(&direct));
    assert!(!node_dir(&ws).exists(), "check writes nothing");
}

#[test]
fn generate_writes_the_node_crate_and_a_timing_table() {
    let ws = workspace();
    let output = cargo_onex(ws.path(), &["onex", "generate"]);
    assert!(output.status.success(), "{}", text(&output));
    let out = text(&output);
    assert!(out.contains("4.5    event bus integration"), "{out}");
    assert!(out.contains("total"), "{out}");
    for file in [
        "Cargo.toml",
        "build.rs",
        "src/lib.rs",
        "src/handler.rs",
        "src/main.rs",
        ".env.template",
        "compose.yaml",
    ] {
        assert!(node_dir(&ws).join(file).is_file(), "{file} missing");
    }
    let manifest = std::fs::read_to_string(node_dir(&ws).join("Cargo.toml")).expect("Cargo.toml");
    assert!(manifest.contains(&source_tree_onex()), "{manifest}");

    let again = cargo_onex(ws.path(), &["onex", "generate"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("unchanged"), "{}", text(&again));
}

#[test]
fn check_flag_fails_listing_stale_files() {
    let ws = workspace();
    assert!(
        cargo_onex(ws.path(), &["onex", "generate"])
            .status
            .success()
    );
    std::fs::write(node_dir(&ws).join("src/main.rs"), "// @generated\n").expect("edit");

    let output = cargo_onex(ws.path(), &["onex", "generate", "--check"]);
    assert!(!output.status.success(), "{}", text(&output));
    let out = text(&output);
    assert!(out.contains("stale"), "{out}");
    assert!(
        out.contains("generated/postgres-writer/src/main.rs"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(node_dir(&ws).join("src/main.rs")).expect("main.rs"),
        "// @generated\n"
    );
}

#[test]
fn a_bad_contract_fails_with_its_diagnostic() {
    let ws = workspace();
    let bad = POSTGRES_WRITER.replace("node_type: effect", "node_type: efect");
    std::fs::write(ws.path().join("contracts/postgres_writer.yaml"), bad).expect("contract");

    let output = cargo_onex(ws.path(), &["onex", "generate"]);
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("stage 1 (parse) failed"), "{err}");
    assert!(err.contains("postgres_writer.yaml"), "{err}");
    assert!(err.contains("efect"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!node_dir(&ws).exists());
}

#[test]
fn a_users_file_is_never_overwritten() {
    let ws = workspace();
    assert!(
        cargo_onex(ws.path(), &["onex", "generate"])
            .status
            .success()
    );
    let lib = node_dir(&ws).join("src/lib.rs");
    std::fs::write(&lib, "// mine\n").expect("replace lib.rs");
    std::fs::remove_file(node_dir(&ws).join(".onex-generated")).expect("manifest");

    let output = cargo_onex(ws.path(), &["onex", "generate"]);
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("src/lib.rs"), "{err}");
    assert!(err.contains("move or delete the file"), "{err}");
    assert_eq!(std::fs::read_to_string(&lib).expect("lib.rs"), "// mine\n");
}

#[test]
fn an_unknown_contract_name_is_an_error() {
    let ws = workspace();
    let output = cargo_onex(ws.path(), &["onex", "generate", "nope"]);
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("contract `nope` not found"), "{err}");
    let by_name = cargo_onex(ws.path(), &["onex", "check", "postgres_writer"]);
    assert!(by_name.status.success(), "{}", text(&by_name));
}

/// With contract files and `--out` given, generate needs no workspace:
/// outside any Cargo project, the node crates depend on the runtime of the
/// source tree cargo-onex was built from; a default folder still needs one.
#[test]
fn generate_needs_no_workspace_when_contracts_and_out_are_given() {
    let dir = tempfile::tempdir().expect("temp dir");
    if dir
        .path()
        .ancestors()
        .any(|d| d.join("Cargo.toml").is_file())
    {
        eprintln!("skipped: the temporary folder lies inside a Cargo project");
        return;
    }
    std::fs::write(dir.path().join("postgres_writer.yaml"), POSTGRES_WRITER).expect("contract");

    let output = cargo_onex(
        dir.path(),
        &["onex", "generate", "postgres_writer.yaml", "--out", "nodes"],
    );
    assert!(output.status.success(), "{}", text(&output));
    let manifest = std::fs::read_to_string(dir.path().join("nodes/postgres-writer/Cargo.toml"))
        .expect("Cargo.toml");
    assert!(manifest.contains(&source_tree_onex()), "{manifest}");

    let without_out = cargo_onex(dir.path(), &["onex", "generate", "postgres_writer.yaml"]);
    assert!(!without_out.status.success());
    assert!(
        text(&without_out).contains("cannot read the Cargo workspace"),
        "{}",
        text(&without_out)
    );
}
