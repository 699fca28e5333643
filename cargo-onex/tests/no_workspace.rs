//! `cargo onex` outside any Cargo project, and in a user's project that
//! says where the runtime is: `check` and `generate` need no workspace when
//! the contracts (and `--out`) are on the command line, and the runtime
//! settings (`--onex-path`, `ONEX_PATH`, `[workspace.metadata.onex]`) end up
//! in the node crate's manifest.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const POSTGRES_WRITER: &str = include_str!("../../contracts/postgres_writer.yaml");

/// This repository: the checkout the settings point at.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf()
}

/// A temporary folder that no `Cargo.toml` encloses, with one contract;
/// `None` (the test is skipped) when the system's temporary folder lies
/// inside a Cargo project.
fn bare_folder() -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().expect("temp dir");
    if dir
        .path()
        .ancestors()
        .any(|d| d.join("Cargo.toml").is_file())
    {
        eprintln!("skipped: the temporary folder lies inside a Cargo project");
        return None;
    }
    std::fs::write(dir.path().join("postgres_writer.yaml"), POSTGRES_WRITER).expect("contract");
    Some(dir)
}

fn cargo_onex(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cargo-onex"));
    command.arg("onex").args(args).current_dir(dir);
    command.env_remove("ONEX_PATH");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("cargo-onex runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn manifest(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("nodes/postgres-writer/Cargo.toml")).expect("Cargo.toml")
}

#[test]
fn check_needs_no_workspace_and_writes_nothing() {
    let Some(dir) = bare_folder() else { return };
    let output = cargo_onex(dir.path(), &["check", "postgres_writer.yaml"], &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("postgres"), "{}", text(&output));
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .expect("folder")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(entries, ["postgres_writer.yaml"], "check wrote something");

    // A contract by name still needs the workspace's contracts/ folder.
    let by_name = cargo_onex(dir.path(), &["check", "pricing"], &[]);
    assert!(!by_name.status.success(), "{}", text(&by_name));
}

#[test]
fn check_reports_a_bad_contract_without_a_workspace() {
    let Some(dir) = bare_folder() else { return };
    std::fs::write(
        dir.path().join("bad.yaml"),
        POSTGRES_WRITER.replace("node_type: effect", "node_type: effecter"),
    )
    .expect("contract");
    let output = cargo_onex(dir.path(), &["check", "bad.yaml"], &[]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("bad.yaml"), "{}", text(&output));
}

/// An absolute `--onex-path` is written as it was given.
#[test]
fn onex_path_flag_names_the_checkout() {
    let Some(dir) = bare_folder() else { return };
    let repo = repo();
    let output = cargo_onex(
        dir.path(),
        &[
            "generate",
            "postgres_writer.yaml",
            "--out",
            "nodes",
            "--onex-path",
            &repo.display().to_string(),
        ],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    let manifest = manifest(dir.path());
    assert!(
        manifest.contains(&format!(
            "onex-build = {{ path = \"{}\" }}",
            repo.join("onex-build").display()
        )),
        "{manifest}"
    );
}

/// A setting that names no checkout stops the run and says which setting.
#[test]
fn a_wrong_onex_path_is_an_error() {
    let Some(dir) = bare_folder() else { return };
    let output = cargo_onex(
        dir.path(),
        &["generate", "postgres_writer.yaml", "--out", "nodes"],
        &[("ONEX_PATH", "no-such-checkout")],
    );
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("ONEX_PATH"), "{}", text(&output));
    assert!(!dir.path().join("nodes").exists());
}

/// `[workspace.metadata.onex] path` is relative to the manifest, and the
/// node crate's dependency is relative to the node crate.
#[test]
fn workspace_metadata_names_the_checkout_relatively() {
    let dir = tempfile::tempdir().expect("temp dir");
    let relative = onex_build::pipeline::paths::relative(dir.path(), &repo());
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [workspace]\n\n[workspace.metadata.onex]\npath = \"{relative}\"\n"
        ),
    )
    .expect("Cargo.toml");
    std::fs::create_dir_all(dir.path().join("src")).expect("src");
    std::fs::write(dir.path().join("src/lib.rs"), "").expect("lib.rs");
    std::fs::write(dir.path().join("postgres_writer.yaml"), POSTGRES_WRITER).expect("contract");

    let output = cargo_onex(
        dir.path(),
        &["generate", "postgres_writer.yaml", "--out", "nodes"],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        manifest(dir.path()).contains(&format!("onex = {{ path = \"../../{relative}/onex\" }}")),
        "{}",
        manifest(dir.path())
    );
}
