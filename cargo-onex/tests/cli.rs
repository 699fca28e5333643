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
    cargo_onex_with(dir, args, &[])
}

/// `cargo_onex` with environment variables set; the colour settings of the
/// calling environment are cleared so that every run starts alike.
fn cargo_onex_with(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cargo-onex"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("CARGO_TERM_COLOR")
        .env_remove("NO_COLOR");
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("cargo-onex runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The workspace's contract with `from` replaced by `to`.
fn break_contract(ws: &tempfile::TempDir, from: &str, to: &str) {
    assert!(POSTGRES_WRITER.contains(from), "{from}");
    let bad = POSTGRES_WRITER.replace(from, to);
    std::fs::write(ws.path().join("contracts/postgres_writer.yaml"), bad).expect("contract");
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
    assert!(text(&as_cargo).contains("Checked"), "{}", text(&as_cargo));
    let direct = cargo_onex(ws.path(), &["check"]);
    assert!(direct.status.success(), "{}", text(&direct));
    assert!(!node_dir(&ws).exists(), "check writes nothing");
}

#[test]
fn generate_writes_the_node_crate_quietly() {
    let ws = workspace();
    let output = cargo_onex(ws.path(), &["onex", "generate"]);
    assert!(output.status.success(), "{}", text(&output));
    // Status goes to stderr, as cargo's does; one line per node crate and a
    // summary, no stage table unless asked.
    assert!(output.stdout.is_empty(), "{}", text(&output));
    let err = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = err
        .lines()
        // A warning about the runtime's place may come first.
        .filter(|l| !l.starts_with("warning") && !l.starts_with("  = ") && !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(
        lines[0],
        "   Generated postgres-writer (generated/postgres-writer) from contracts/postgres_writer.yaml",
        "{err}"
    );
    assert!(
        lines[1].starts_with("    Finished 1 node crate in "),
        "{err}"
    );
    assert!(lines[1].ends_with("s (1 generated)"), "{err}");
    assert!(!err.contains("event bus integration"), "{err}");
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

    let again = cargo_onex(ws.path(), &["onex", "generate"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("   Unchanged postgres-writer (generated/postgres-writer)"),
        "{}",
        text(&again)
    );
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
    assert!(out.contains("1 generated file is stale"), "{out}");
    // The fix is the exact command, without `--check`.
    assert!(
        out.contains("help: run `cargo onex generate` and commit the result"),
        "{out}"
    );
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
    assert!(
        err.contains("error: stage 1 (parse) failed for `contracts/postgres_writer.yaml`"),
        "{err}"
    );
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

#[test]
fn quiet_prints_nothing_on_success() {
    let ws = workspace();
    let output = cargo_onex(ws.path(), &["onex", "generate", "-q"]);
    assert!(output.status.success(), "{}", text(&output));
    // Nothing at all: no status, no summary, no warning.
    assert!(output.stderr.is_empty(), "{}", text(&output));
    assert!(output.stdout.is_empty(), "{}", text(&output));
    assert!(node_dir(&ws).join("src/lib.rs").is_file());
    // Errors still show.
    break_contract(&ws, "node_type: effect", "node_type: efect");
    let failed = cargo_onex(ws.path(), &["onex", "-q", "check"]);
    assert!(!failed.status.success());
    assert!(
        stderr(&failed).contains("error[PARSE]"),
        "{}",
        stderr(&failed)
    );
}

/// Sums the `N.NNN ms` of the stage rows and reads the sum row.
fn stage_rows_and_sum(table: &str) -> (u128, Option<u128>) {
    let micros = |line: &str| -> Option<u128> {
        let before = line.split("  (").next()?;
        let field = before.split_whitespace().rev().nth(1)?;
        let (whole, frac) = field.split_once('.')?;
        Some(whole.parse::<u128>().ok()? * 1000 + frac.parse::<u128>().ok()?)
    };
    let rows = table
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .filter_map(micros)
        .sum();
    let sum = table
        .lines()
        .find(|l| l.contains("sum of stage times"))
        .and_then(micros);
    (rows, sum)
}

#[test]
fn timings_print_a_stage_table_that_adds_up() {
    let ws = workspace();
    // A second contract, so that two threads may prepare them at once.
    std::fs::write(
        ws.path().join("contracts/other_writer.yaml"),
        POSTGRES_WRITER.replace("name: postgres_writer", "name: other_writer"),
    )
    .expect("second contract");
    let plain = cargo_onex(ws.path(), &["onex", "check"]);
    assert!(plain.status.success(), "{}", text(&plain));
    assert!(
        !stderr(&plain).contains("sum of stage times"),
        "{}",
        text(&plain)
    );
    assert!(
        !stderr(&plain).contains("SV-001"),
        "check lists no gates unless asked"
    );

    for args in [
        &["onex", "generate", "--timings"][..],
        &["onex", "check", "-v"][..],
    ] {
        let output = cargo_onex(ws.path(), args);
        assert!(output.status.success(), "{}", text(&output));
        let err = stderr(&output);
        assert!(err.contains("4.5    event bus integration"), "{err}");
        assert!(err.contains("wall time"), "{err}");
        let (rows, sum) = stage_rows_and_sum(&err);
        assert!(rows > 0, "{err}");
        assert_eq!(
            Some(rows),
            sum,
            "the sum row is the sum of the rows:\n{err}"
        );
    }
    let verbose = cargo_onex(ws.path(), &["onex", "check", "-v"]);
    assert!(
        stderr(&verbose).contains("Passed SV-001"),
        "{}",
        stderr(&verbose)
    );
}

#[test]
fn diagnostics_show_the_line_with_a_caret_and_the_path_as_typed() {
    let ws = workspace();
    break_contract(&ws, "node_type: effect", "node_type: efect");
    let output = cargo_onex(
        ws.path(),
        &["onex", "check", "./contracts/postgres_writer.yaml"],
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    let expected = "error[PARSE]: `efect` is not a valid `node_type`
 --> ./contracts/postgres_writer.yaml:7:14
  |
7 |   node_type: efect
  |              ^^^^^ found `efect`
  |
  = field: node.node_type
  = expected: one of `effect`, `compute`, `reducer`, `orchestrator`
  = help: did you mean `effect`?
";
    assert!(err.starts_with(expected), "{err}");
    assert_eq!(
        err.matches("error[").count(),
        1,
        "one header per error:\n{err}"
    );
    assert!(!err.contains('\u{1b}'), "no colour off a terminal:\n{err}");
    assert!(!err.contains(&ws.path().display().to_string()), "{err}");
}

#[test]
fn colour_follows_the_flag_and_no_color() {
    let ws = workspace();
    break_contract(&ws, "node_type: effect", "node_type: efect");
    let has_colour = |output: &Output| stderr(output).contains("\u{1b}[");

    let always = cargo_onex(ws.path(), &["onex", "check", "--color", "always"]);
    assert!(has_colour(&always), "{}", stderr(&always));
    assert!(stderr(&always).contains("^^^^^"), "{}", stderr(&always));
    let never = cargo_onex(ws.path(), &["onex", "check", "--color=never"]);
    assert!(!has_colour(&never), "{}", stderr(&never));
    // NO_COLOR turns `auto` off, even where cargo asks for colour; an
    // explicit flag still wins.
    let no_color = cargo_onex_with(
        ws.path(),
        &["onex", "check"],
        &[("NO_COLOR", "1"), ("CARGO_TERM_COLOR", "auto")],
    );
    assert!(!has_colour(&no_color), "{}", stderr(&no_color));
    let cargo_says = cargo_onex_with(
        ws.path(),
        &["onex", "check"],
        &[("CARGO_TERM_COLOR", "always")],
    );
    assert!(has_colour(&cargo_says), "{}", stderr(&cargo_says));
    let flag_wins = cargo_onex_with(
        ws.path(),
        &["onex", "check", "--color", "always"],
        &[("NO_COLOR", "1")],
    );
    assert!(has_colour(&flag_wins), "{}", stderr(&flag_wins));
}

#[test]
fn generate_inside_a_node_crate_regenerates_it_from_its_contract() {
    let ws = workspace();
    let first = cargo_onex(ws.path(), &["onex", "generate"]);
    assert!(first.status.success(), "{}", text(&first));
    let src = node_dir(&ws).join("src");

    let checked = cargo_onex(&src, &["onex", "check"]);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(
        stderr(&checked).contains("     Checked ../../../contracts/postgres_writer.yaml"),
        "{}",
        text(&checked)
    );

    let again = cargo_onex(&src, &["onex", "generate"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        stderr(&again).contains("   Unchanged postgres-writer"),
        "{}",
        text(&again)
    );

    // The contract changes: `--check` inside the node crate fails with the
    // exact command to run there, and that command brings it up to date.
    break_contract(&ws, "domain: database", "domain: storage");
    let check = cargo_onex(&src, &["onex", "generate", "--check"]);
    assert!(!check.status.success(), "{}", text(&check));
    assert!(
        stderr(&check).contains("help: run `cargo onex generate` and commit the result"),
        "{}",
        text(&check)
    );
    let regenerated = cargo_onex(&src, &["onex", "generate"]);
    assert!(regenerated.status.success(), "{}", text(&regenerated));
    assert!(
        stderr(&regenerated).contains("   Generated postgres-writer"),
        "{}",
        text(&regenerated)
    );
    let copy = std::fs::read_to_string(node_dir(&ws).join("contract.yaml")).expect("contract copy");
    assert!(copy.contains("domain: storage"), "{copy}");
    assert!(
        !ws.path()
            .join("generated/postgres-writer/generated")
            .exists()
    );
}

#[test]
fn a_yaml_syntax_error_names_the_field_and_the_fix() {
    let ws = workspace();
    break_contract(&ws, "  version: 1.0.0\n", "   version: 1.0.0\n");
    let output = cargo_onex(ws.path(), &["onex", "check"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("error[PARSE]: `version` is indented deeper than `node_type` above it"),
        "{err}"
    );
    assert!(err.contains("  = field: node.version"), "{err}");
    assert!(
        err.contains("= help: indent `version` with 2 spaces, like `node_type`"),
        "{err}"
    );
    assert!(!err.contains("mapping values are not allowed"), "{err}");

    break_contract(&ws, "      - name: table\n", "      name: table\n");
    let err = stderr(&cargo_onex(ws.path(), &["onex", "check"]));
    assert!(
        err.contains("error[PARSE]: a list item has no `-`"),
        "{err}"
    );
    assert!(err.contains("= field: types[0].fields[1]"), "{err}");
    assert!(err.contains("`      - name: table`"), "{err}");
    assert!(!err.contains("did not find expected"), "{err}");
}

#[test]
fn several_loading_errors_are_reported_in_one_run() {
    let ws = workspace();
    let bad = POSTGRES_WRITER
        .replace("  domain: database", "  domian: database")
        .replace("  node_type: effect", "  node_type: efect")
        .replace(
            "        type: uuid\n        description: Primary",
            "        typ: uuid\n        description: Primary",
        );
    std::fs::write(ws.path().join("contracts/postgres_writer.yaml"), bad).expect("contract");
    let output = cargo_onex(ws.path(), &["onex", "check"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert_eq!(err.matches("error[PARSE]").count(), 3, "{err}");
    for part in [
        "unknown key `domian` in `node`",
        "`efect` is not a valid `node_type`",
        "unknown key `typ` in `types[0].fields[0]`",
        "(3 errors)",
    ] {
        assert!(err.contains(part), "{part}:\n{err}");
    }
    // The carets sit under each offending word.
    assert!(err.contains("  domian: database\n  |   ^^^^^^"), "{err}");
}

#[test]
fn check_reports_every_invalid_contract() {
    let ws = workspace();
    let contracts = ws.path().join("contracts");
    std::fs::write(
        contracts.join("a_first.yaml"),
        POSTGRES_WRITER
            .replace("name: postgres_writer", "name: a_first")
            .replace("node_type: effect", "node_type: efect"),
    )
    .expect("first");
    std::fs::write(
        contracts.join("z_last.yaml"),
        POSTGRES_WRITER
            .replace("name: postgres_writer", "name: z_last")
            .replace("  domain: database", "  domian: database"),
    )
    .expect("last");
    let output = cargo_onex(ws.path(), &["onex", "check"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("--> contracts/a_first.yaml:7:14"), "{err}");
    assert!(err.contains("--> contracts/z_last.yaml:9:3"), "{err}");
    assert!(
        err.contains(
            "     Checked contracts/postgres_writer.yaml (postgres-writer, contract hash "
        ),
        "{err}"
    );
    assert!(
        err.ends_with("error: 2 of 3 contracts failed the checks\n"),
        "{err}"
    );
    assert!(!err.contains("Finished"), "{err}");
}

/// `check` (and `generate`) warn about what the contract routes nowhere: a
/// command whose fields carry no operation's input, an operation nothing
/// triggers. Warnings do not fail the run; `-q` hides them.
#[test]
fn check_warns_about_commands_and_operations_that_reach_nothing() {
    let ws = workspace();
    let clean = cargo_onex(ws.path(), &["onex", "check"]);
    assert!(clean.status.success(), "{}", text(&clean));
    assert!(!stderr(&clean).contains("warning"), "{}", stderr(&clean));

    // The command now carries a plain string, no operation's input.
    break_contract(
        &ws,
        "      - name: record\n        type: WriteRecordInput",
        "      - name: record\n        type: string",
    );
    let warned = cargo_onex(ws.path(), &["onex", "check"]);
    assert!(warned.status.success(), "{}", text(&warned));
    let err = stderr(&warned);
    assert!(
        err.contains("warning: contracts/postgres_writer.yaml: the command `write_requested` reaches no operation"),
        "{err}"
    );
    assert!(
        err.contains(
            "the operation `write_record` is triggered by no command, subscription or workflow step"
        ),
        "{err}"
    );
    let quiet = cargo_onex(ws.path(), &["onex", "-q", "check"]);
    assert!(quiet.status.success());
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet));
}

/// The contract hash `check` prints for a contract.
fn printed_hash(output: &Output, contract: &str) -> String {
    let err = stderr(output);
    let line = err
        .lines()
        .find(|l| l.contains(&format!("Checked {contract} ")))
        .unwrap_or_else(|| panic!("no Checked line for {contract}:\n{err}"));
    let hash = line
        .rsplit("contract hash ")
        .next()
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no hash in {line}"));
    assert_eq!(hash.len(), 16, "{line}");
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
    hash.to_owned()
}

#[test]
fn check_prints_a_contract_hash_that_ignores_comments_and_key_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The same contract with a comment and its first two keys swapped.
    let mut lines: Vec<&str> = POSTGRES_WRITER.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("contract_version:"))
        .expect("contract_version");
    let moved = lines.remove(first);
    lines.push(moved);
    let reordered = format!(
        "# The same node, written differently.\n{}\n",
        lines.join("\n")
    );
    let changed = POSTGRES_WRITER.replace("version: 1.0.0", "version: 1.0.1");
    assert_ne!(
        changed, POSTGRES_WRITER,
        "the fixture has a version to change"
    );
    std::fs::write(dir.path().join("a.yaml"), POSTGRES_WRITER).expect("write");
    std::fs::write(dir.path().join("b.yaml"), reordered).expect("write");
    std::fs::write(dir.path().join("c.yaml"), changed).expect("write");
    let output = cargo_onex(dir.path(), &["onex", "check", "a.yaml", "b.yaml", "c.yaml"]);
    assert!(output.status.success(), "{}", text(&output));
    let (a, b, c) = (
        printed_hash(&output, "a.yaml"),
        printed_hash(&output, "b.yaml"),
        printed_hash(&output, "c.yaml"),
    );
    assert_eq!(a, b, "comments and key order change nothing");
    assert_ne!(a, c, "a new version is another contract");
}
