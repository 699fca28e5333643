//! The bad-input corpus: every file under `tests/bad_contracts/` must fail
//! to load or validate, without panicking, with diagnostics that name the
//! file, the line and column, and a fix. The exact rendered report of each
//! file is pinned by an insta snapshot under `snapshots/bad_contracts/`.
//!
//! A new corpus file needs no new test code: add it, run
//! `cargo insta test --accept -p onex-workspace-tests --test bad_contracts`
//! and review the new snapshot.
//!
//! `tests/hostile_contracts/` holds valid contracts with hostile text; they
//! must load and validate.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use onex_build::{
    contract::{Diagnostics, MAX_CONTRACT_BYTES, load_file, load_str},
    validate::validate,
};

/// The YAML files of a folder, sorted, as paths relative to the workspace.
fn corpus(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

/// Load and validate; the diagnostics, or `None` when the contract passes.
fn check(path: &Path) -> Option<Diagnostics> {
    match load_file(path) {
        Err(d) => Some(d),
        Ok(loaded) => validate(&loaded).err(),
    }
}

fn snapshot(name: &str, rendered: &str) {
    insta::with_settings!({
        snapshot_path => "../snapshots/bad_contracts",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, rendered);
    });
}

#[test]
fn the_corpus_is_large_enough() {
    assert!(corpus("tests/bad_contracts").len() >= 25);
}

#[test]
fn every_bad_contract_fails_with_a_located_fix() {
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    for path in corpus("tests/bad_contracts") {
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&path)));
        let elapsed = started.elapsed();
        let shown = path.display().to_string();
        let Ok(outcome) = outcome else {
            panic!("{shown}: loading or validating panicked");
        };
        let Some(diagnostics) = outcome else {
            panic!("{shown}: the contract passed, but every corpus file must fail");
        };
        assert!(
            elapsed < Duration::from_secs(2),
            "{shown}: took {elapsed:?}"
        );
        assert!(
            !diagnostics.is_empty(),
            "{shown}: an error without diagnostics"
        );
        for d in &diagnostics {
            assert_eq!(d.file, path, "{shown}: diagnostic names another file:\n{d}");
            assert!(
                d.line.is_some() && d.column.is_some(),
                "{shown}: no line and column:\n{d}"
            );
            assert!(d.help.is_some(), "{shown}: no help:\n{d}");
            assert!(!d.message.is_empty(), "{shown}: no message:\n{d}");
        }
        let rendered = diagnostics.to_string();
        assert!(
            rendered.contains(&format!("--> {shown}:")),
            "{shown}:\n{rendered}"
        );
        assert!(
            cwd.is_empty() || !rendered.contains(&cwd),
            "{shown}: absolute path:\n{rendered}"
        );
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        snapshot(&name, &rendered);
    }
}

#[test]
fn a_ten_megabyte_file_is_refused_quickly() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("huge.yaml");
    let mut text = String::from("contract_version: 1\n");
    let line = "# padding: a contract this large is certainly a mistake ........\n";
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(line);
    }
    std::fs::write(&path, &text).expect("write the huge file");

    let started = Instant::now();
    let result = catch_unwind(|| load_file(&path).map_err(Box::new));
    assert!(started.elapsed() < Duration::from_secs(2));
    let Ok(Err(d)) = result else {
        panic!("the 10 MB file must be refused without a panic");
    };
    assert!(d.iter().any(|d| d.message.contains("too large")), "{d}");
    let rendered = d
        .to_string()
        .replace(&dir.path().display().to_string(), "<tmp>");
    snapshot("huge_file", &rendered);

    // The same text handed over as a string.
    let started = Instant::now();
    let result = catch_unwind(|| load_str(Path::new("huge.yaml"), text.clone()).map_err(Box::new));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(result, Ok(Err(_))));
    assert!(text.len() as u64 > MAX_CONTRACT_BYTES);
}

#[test]
fn hostile_descriptions_load_and_validate() {
    let files = corpus("tests/hostile_contracts");
    assert!(!files.is_empty());
    for path in files {
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&path)));
        match outcome {
            Err(_) => panic!("{}: panicked", path.display()),
            Ok(Some(ds)) => panic!("{}: a valid contract was refused:\n{ds}", path.display()),
            Ok(None) => {}
        }
    }
}

/// What the gates accept must render as a module: a build script's path.
#[test]
fn hostile_contracts_render_modules() {
    for path in corpus("tests/hostile_contracts") {
        let shown = path.display().to_string();
        let loaded = load_file(&path).unwrap_or_else(|d| panic!("{d}"));
        let spec = onex_build::spec::build(&loaded, &Default::default())
            .unwrap_or_else(|ds| panic!("{shown}: build failed:\n{ds}"));
        let module = onex_build::render::render_module(&spec)
            .unwrap_or_else(|e| panic!("{shown}: render failed:\n{e}"));
        // Parsed by syn and printed by prettyplease on the way.
        assert!(module.contains("pub const NODE_NAME"), "{shown}");
    }
}

/// What the gates accept must render: the hostile contracts go through
/// stages 1 to 5.5 of `cargo onex generate` (module and node crate, every
/// Rust file parsed and formatted), writing nothing.
#[test]
fn hostile_contracts_render_node_crates() {
    use onex_build::pipeline::{self, Mode, Request, RuntimeDependency};
    let out = tempfile::tempdir().expect("a temporary directory");
    for path in corpus("tests/hostile_contracts") {
        let request = Request {
            contracts: vec![path.clone()],
            out_dir: out.path().to_path_buf(),
            mode: Mode::Check,
            runtime: RuntimeDependency::this_version(),
            compile_check: false,
            target_dir: None,
            contract_path: Vec::new(),
        };
        let report = pipeline::run(&request)
            .unwrap_or_else(|e| panic!("{}: stages 1 to 5.5 failed:\n{e}", path.display()));
        assert_eq!(report.contracts.len(), 1, "{}", path.display());
    }
}

/// The topic-length gate (FV-005) assumes the longest environment the
/// runtime accepts; the two bounds must stay one.
#[test]
fn the_topic_gate_and_the_runtime_agree_on_the_environment() {
    assert_eq!(
        onex_build::validate::MAX_ENVIRONMENT_LEN,
        onex::topic::MAX_ENVIRONMENT_LEN
    );
    assert_eq!(
        onex_build::validate::KAFKA_MAX_TOPIC_LEN,
        onex::topic::MAX_TOPIC_LEN
    );
}
