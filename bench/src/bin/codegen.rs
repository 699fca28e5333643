//! onex-build in a build script, against prost-build on equivalent `.proto`
//! files. Writes JSON results.
//!
//! ```text
//! onex-bench-codegen --count 50 --runs 5 --work DIR --out codegen.json [--build-script-only]
//! ```
//!
//! In `--work` it writes two crates that differ only in their generator:
//! `onex-user` (`build.rs` runs `onex_build::Builder` on N synthetic
//! contracts; `lib.rs` includes every module) and `prost-user` (`build.rs`
//! runs `prost_build::Config::compile_protos` on N `.proto` files holding the
//! same messages, from `bench/proto/`; `lib.rs` includes every module). Both
//! build in one target folder inside `--work`, kept between runs so that
//! their dependencies build once.
//!
//! Measured for each crate:
//! - `build_script_ms`: the build script as cargo runs it (compiled
//!   unoptimized, like every build script in the dev profile), executed
//!   directly into an empty `OUT_DIR`: the generation work of a cold build;
//!   with the builder's default settings (no formatting); for `onex-user`
//!   also `build_script_formatted_ms`, the same script with
//!   `ONEX_BENCH_FORMAT=1`, which makes it call `Builder::format(true)`
//!   (the runs alternate between the two);
//! - `clean_build_ms`: `cargo build` after `cargo clean -p` of the crate:
//!   compile and run the build script, compile the generated code;
//! - `touched_build_ms`: `cargo build` after touching one input file (one
//!   run);
//! - `noop_build_ms`: `cargo build` with nothing changed (three runs), with
//!   the evidence
//!   that the build script did not run (`Fresh` in `cargo build -v`, the
//!   build script's output file and the generated files untouched);
//! - `check_ms`: `cargo check` of the crate after touching `lib.rs` (the
//!   generated code is all the crate has);
//! - the generated code's files, lines and bytes (as the default writes
//!   them; formatted as `generated_formatted_*`).
//!
//! `--build-script-only` measures the build scripts and skips the cargo
//! timings.
//!
//! Also `in_process_ms` (and `in_process_formatted_ms`):
//! `onex_build::Builder::compile` in this (optimized) process, for the cost
//! of the generator itself without process start or debug-build slowness.

use std::{
    error::Error,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant, SystemTime},
};

use onex_bench::{stats, synth};
use serde_json::{Value, json};

type BoxError = Box<dyn Error + Send + Sync>;

struct Args {
    count: usize,
    runs: usize,
    cargo_runs: usize,
    work: PathBuf,
    workspace: PathBuf,
    out: Option<PathBuf>,
    build_script_only: bool,
}

fn parse_args() -> Result<Args, BoxError> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = Args {
        count: 50,
        runs: 5,
        cargo_runs: 3,
        work: workspace.join("target-bench/codegen"),
        workspace,
        out: None,
        build_script_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--count" => args.count = value()?.parse()?,
            "--runs" => args.runs = value()?.parse()?,
            "--cargo-runs" => args.cargo_runs = value()?.parse()?,
            "--work" => args.work = value()?.into(),
            "--workspace" => args.workspace = value()?.into(),
            "--out" => args.out = Some(value()?.into()),
            "--build-script-only" => args.build_script_only = true,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    args.workspace = args.workspace.canonicalize()?;
    std::fs::create_dir_all(&args.work)?;
    args.work = args.work.canonicalize()?;
    Ok(args)
}

/// Writes a file only when its content differs, so that re-running the
/// setup does not make cargo rebuild anything.
fn write_if_changed(path: &Path, content: &str) -> Result<(), BoxError> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(content) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, content)?;
    Ok(())
}

/// The `.proto` copy of a contract copy: the package renamed like the node.
fn renamed_proto(source: &str, package: &str, suffix: &str) -> Result<String, BoxError> {
    let line = format!("package {package};");
    if !source.contains(&line) {
        return Err(format!("proto of `{package}` has no `{line}`").into());
    }
    Ok(source.replacen(&line, &format!("package {package}{suffix};"), 1))
}

struct Crates {
    onex: PathBuf,
    prost: PathBuf,
    /// Node names, which are also the generated files' stems for both.
    names: Vec<String>,
}

fn setup(args: &Args) -> Result<Crates, BoxError> {
    let examples = synth::example_contracts(&args.workspace.join("contracts"))?;
    let proto_dir = args.workspace.join("bench/proto");
    let onex = args.work.join("onex-user");
    let prost = args.work.join("prost-user");

    // Contracts, written into a scratch folder and copied only when changed.
    let scratch = tempfile::tempdir()?;
    let contracts = synth::write_contracts(&examples, scratch.path(), args.count)?;
    let mut names = Vec::new();
    let mut wanted = Vec::new();
    for (i, path) in contracts.iter().enumerate() {
        let example = &examples[i % examples.len()];
        let stem = example
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or("contract without a name")?;
        let loaded = onex_build::contract::load_file(path)
            .map_err(|d| format!("{}: {d}", path.display()))?;
        let name = loaded.contract.node.name.clone();
        let suffix = &name[name.len() - 5..];
        let file = path.file_name().ok_or("no file name")?.to_owned();
        write_if_changed(&onex.join("contracts").join(&file), &loaded.source)?;
        let proto_path = proto_dir.join(format!("{stem}.proto"));
        let proto = std::fs::read_to_string(&proto_path).map_err(|e| {
            format!(
                "{}: {e} (every example contract needs its .proto)",
                proto_path.display()
            )
        })?;
        let package = loaded.contract.node.name[..name.len() - 5].to_owned();
        let proto_file = format!("{name}.proto");
        write_if_changed(
            &prost.join("protos").join(&proto_file),
            &renamed_proto(&proto, &package, suffix)?,
        )?;
        wanted.push((file, proto_file));
        names.push(name);
    }
    // Remove copies left by a run with more contracts.
    for (dir, keep) in [
        (
            onex.join("contracts"),
            wanted.iter().map(|w| w.0.clone()).collect::<Vec<_>>(),
        ),
        (
            prost.join("protos"),
            wanted.iter().map(|w| w.1.clone().into()).collect(),
        ),
    ] {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if !keep.contains(&entry.file_name()) {
                std::fs::remove_file(entry.path())?;
            }
        }
    }

    let ws = args.workspace.display();
    write_if_changed(
        &onex.join("Cargo.toml"),
        &format!(
            r#"[package]
name = "onex-user"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
onex = {{ path = "{ws}/onex", default-features = false }}

[build-dependencies]
onex-build = {{ path = "{ws}/onex-build" }}

[workspace]
"#
        ),
    )?;
    write_if_changed(
        &onex.join("build.rs"),
        r#"fn main() {
    // The benchmark sets ONEX_BENCH_FORMAT=1 to measure `format(true)`;
    // otherwise the builder's defaults.
    println!("cargo:rerun-if-env-changed=ONEX_BENCH_FORMAT");
    let mut builder = onex_build::Builder::new();
    builder.contracts("contracts");
    if std::env::var_os("ONEX_BENCH_FORMAT").is_some_and(|v| v == "1") {
        builder.format(true);
    }
    builder.compile_or_exit();
}
"#,
    )?;
    let mut lib = String::from("#![allow(missing_docs, dead_code)]\n");
    for name in &names {
        lib.push_str(&format!(
            "pub mod {name} {{\n    onex::include_contract!(\"{name}\");\n}}\n"
        ));
    }
    write_if_changed(&onex.join("src/lib.rs"), &lib)?;
    // The workspace's lock file pins the versions the workspace tests with.
    let lock = std::fs::read_to_string(args.workspace.join("Cargo.lock"))?;
    if !onex.join("Cargo.lock").exists() {
        write_if_changed(&onex.join("Cargo.lock"), &lock)?;
    }

    write_if_changed(
        &prost.join("Cargo.toml"),
        r#"[package]
name = "prost-user"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
prost = "0.14"
prost-types = "0.14"

[build-dependencies]
prost-build = "0.14"

[workspace]
"#,
    )?;
    write_if_changed(
        &prost.join("build.rs"),
        r#"fn main() {
    println!("cargo:rerun-if-changed=protos");
    let mut files: Vec<_> = std::fs::read_dir("protos")
        .expect("protos/")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "proto"))
        .collect();
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    prost_build::Config::new()
        .compile_protos(&files, &["protos"])
        .expect("compile_protos");
}
"#,
    )?;
    let mut lib = String::from("#![allow(missing_docs, dead_code)]\n");
    for name in &names {
        lib.push_str(&format!(
            "pub mod {name} {{\n    include!(concat!(env!(\"OUT_DIR\"), \"/{name}.rs\"));\n}}\n"
        ));
    }
    write_if_changed(&prost.join("src/lib.rs"), &lib)?;
    Ok(Crates { onex, prost, names })
}

fn cargo(args: &Args, krate: &Path, sub: &[&str]) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    c.args(sub)
        .current_dir(krate)
        .env("CARGO_TARGET_DIR", args.work.join("target"))
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_JOBS");
    c
}

/// Runs a cargo command; its wall time and stdout/stderr.
fn timed(mut command: Command) -> Result<(Duration, String, String), BoxError> {
    let started = Instant::now();
    let output = command.output()?;
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(format!("{command:?} failed:\n{stderr}").into());
    }
    Ok((elapsed, stdout, stderr))
}

/// The build script's executable and its last run's `OUT_DIR`, from
/// `cargo build --message-format=json`.
struct BuildScript {
    executable: PathBuf,
    out_dir: PathBuf,
}

fn build_script(args: &Args, krate: &Path, package: &str) -> Result<BuildScript, BoxError> {
    let (_, stdout, _) = timed(cargo(
        args,
        krate,
        &["build", "--message-format=json-render-diagnostics"],
    ))?;
    let mut executable = None;
    let mut out_dir = None;
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        // `path+file:///.../onex-user#0.1.0` (or `onex-user 0.1.0 (...)`
        // before cargo 1.77).
        let ours = v["package_id"].as_str().is_some_and(|id| {
            id.contains(&format!("/{package}#")) || id.starts_with(&format!("{package} "))
        });
        if !ours {
            continue;
        }
        match v["reason"].as_str() {
            Some("compiler-artifact")
                if v["target"]["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "custom-build")) =>
            {
                executable = v["filenames"][0].as_str().map(PathBuf::from);
            }
            Some("build-script-executed") => {
                out_dir = v["out_dir"].as_str().map(PathBuf::from);
            }
            _ => {}
        }
    }
    Ok(BuildScript {
        executable: executable.ok_or(format!("{package}: no build script in cargo's output"))?,
        out_dir: out_dir.ok_or(format!("{package}: the build script did not report"))?,
    })
}

/// Runs the build script as cargo would, into a fresh `OUT_DIR`, with the
/// extra environment `env`; its time and the files, lines and bytes it
/// wrote.
fn run_build_script(
    krate: &Path,
    script: &BuildScript,
    env: &[(&str, &str)],
) -> Result<(Duration, (usize, usize, usize)), BoxError> {
    let out = tempfile::tempdir()?;
    let mut c = Command::new(&script.executable);
    c.envs(env.iter().copied())
        .current_dir(krate)
        .env("OUT_DIR", out.path())
        .env("CARGO_MANIFEST_DIR", krate)
        .env("TARGET", "x86_64-unknown-linux-gnu")
        .env("HOST", "x86_64-unknown-linux-gnu")
        .env("PROFILE", "debug")
        .env("OPT_LEVEL", "0")
        .env("DEBUG", "true");
    let (elapsed, _, _) = timed(c)?;
    Ok((elapsed, code_size(out.path())))
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn touch(path: &Path) -> Result<(), BoxError> {
    let f = std::fs::File::options().write(true).open(path)?;
    f.set_modified(SystemTime::now())?;
    Ok(())
}

fn code_size(dir: &Path) -> (usize, usize, usize) {
    let (mut files, mut lines, mut bytes) = (0, 0, 0);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "rs")
                && let Ok(text) = std::fs::read_to_string(&p)
            {
                files += 1;
                lines += text.lines().count();
                bytes += text.len();
            }
        }
    }
    (files, lines, bytes)
}

fn measure(args: &Args, krate: &Path, package: &str, input: &Path) -> Result<Value, BoxError> {
    eprintln!("{package}: building dependencies (first time only)");
    let (first_build, _, _) = timed(cargo(args, krate, &["build"]))?;
    timed(cargo(args, krate, &["check"]))?;
    let script = build_script(args, krate, package)?;
    let (files, lines, bytes) = code_size(&script.out_dir);

    // onex-user's build script also runs with `format(true)`, alternating
    // with the default so that both see the same machine.
    let formatted = package == "onex-user";
    let mut script_ms = Vec::new();
    let mut formatted_ms = Vec::new();
    let mut formatted_size = (0, 0, 0);
    for _ in 0..args.runs {
        script_ms.push(stats::ms(run_build_script(krate, &script, &[])?.0));
        if formatted {
            let (elapsed, size) = run_build_script(krate, &script, &[("ONEX_BENCH_FORMAT", "1")])?;
            formatted_ms.push(stats::ms(elapsed));
            formatted_size = size;
        }
    }
    eprintln!(
        "{package}: build script {:.0} ms",
        stats::median(&script_ms)
    );
    let mut result = json!({
        "build_script_ms": stats::median(&script_ms),
        "build_script_ms_runs": script_ms,
        "generated_files": files,
        "generated_lines": lines,
        "generated_bytes": bytes,
    });
    if formatted {
        eprintln!(
            "{package}: build script with format(true) {:.0} ms",
            stats::median(&formatted_ms)
        );
        let (files, lines, bytes) = formatted_size;
        result["build_script_formatted_ms"] = json!(stats::median(&formatted_ms));
        result["build_script_formatted_ms_runs"] = json!(formatted_ms);
        result["generated_formatted_files"] = json!(files);
        result["generated_formatted_lines"] = json!(lines);
        result["generated_formatted_bytes"] = json!(bytes);
    }
    if args.build_script_only {
        return Ok(result);
    }

    let mut clean = Vec::new();
    let mut check = Vec::new();
    for _ in 0..args.cargo_runs {
        timed(cargo(args, krate, &["clean", "-p", package]))?;
        clean.push(stats::ms(timed(cargo(args, krate, &["build"]))?.0));
        touch(&krate.join("src/lib.rs"))?;
        check.push(stats::ms(timed(cargo(args, krate, &["check"]))?.0));
    }

    // An input changed: the build script runs again (and, as the
    // generated files did not change, they are not rewritten).
    touch(input)?;
    let (elapsed, _, stderr) = timed(cargo(args, krate, &["build", "-v"]))?;
    let touched = stats::ms(elapsed);
    let rerun_on_input_change = stderr
        .lines()
        .any(|l| l.contains("build-script-build") && l.contains("Running"));

    // Nothing changed: the build script must not run again.
    let mut noop = Vec::new();
    let mut fresh_evidence = Vec::new();
    for _ in 0..3 {
        let script = build_script(args, krate, package)?;
        let output_file = script.out_dir.parent().map(|p| p.join("output"));
        let before_output = output_file.as_deref().and_then(mtime);
        let before_code: Vec<_> = std::fs::read_dir(&script.out_dir)?
            .flatten()
            .map(|e| (e.path(), mtime(&e.path())))
            .collect();
        let (elapsed, _, stderr) = timed({
            let mut c = cargo(args, krate, &["build", "-v"]);
            c.env("CARGO_TERM_COLOR", "never");
            c
        })?;
        noop.push(stats::ms(elapsed));
        let fresh = stderr
            .lines()
            .any(|l| l.trim_start().starts_with("Fresh") && l.contains(package));
        let ran = stderr
            .lines()
            .any(|l| l.contains("build-script-build") && l.contains("Running"));
        let output_same = output_file.as_deref().and_then(mtime) == before_output;
        let code_same = before_code.iter().all(|(p, t)| mtime(p) == *t);
        fresh_evidence.push(json!({
            "fresh_line": fresh,
            "build_script_ran": ran,
            "output_file_untouched": output_same,
            "generated_files_untouched": code_same,
        }));
    }
    eprintln!(
        "{package}: clean build {:.0} ms, touched {:.0} ms, no-op {:.0} ms, check {:.0} ms",
        stats::median(&clean),
        touched,
        stats::median(&noop),
        stats::median(&check)
    );
    let cargo_timings = json!({
        "first_build_ms": stats::ms(first_build),
        "clean_build_ms": stats::median(&clean),
        "clean_build_ms_runs": clean,
        "touched_build_ms": touched,
        "touched_reran_build_script": rerun_on_input_change,
        "noop_build_ms": stats::median(&noop),
        "noop_evidence": fresh_evidence,
        "check_ms": stats::median(&check),
        "check_ms_runs": check,
    });
    if let (Some(all), Some(timings)) = (result.as_object_mut(), cargo_timings.as_object()) {
        all.extend(timings.clone());
    }
    Ok(result)
}

fn in_process(args: &Args, crates: &Crates, format: bool) -> Result<Vec<f64>, BoxError> {
    let mut times = Vec::new();
    for _ in 0..args.runs {
        let out = tempfile::tempdir()?;
        let started = Instant::now();
        let mut builder = onex_build::Builder::new();
        builder
            .contracts(crates.onex.join("contracts"))
            .out_dir(out.path())
            .emit_rerun_if_changed(false)
            .format(format);
        builder.compile()?;
        times.push(stats::ms(started.elapsed()));
    }
    Ok(times)
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let crates = setup(&args)?;
    let first_contract = crates.onex.join("contracts").join(
        std::fs::read_dir(crates.onex.join("contracts"))?
            .flatten()
            .map(|e| e.file_name())
            .min()
            .ok_or("no contracts")?,
    );
    let first_proto = crates
        .prost
        .join("protos")
        .join(format!("{}.proto", crates.names[0]));
    let in_process_ms = in_process(&args, &crates, false)?;
    let in_process_formatted_ms = in_process(&args, &crates, true)?;
    eprintln!(
        "onex-build in process: {:.1} ms, with format(true) {:.1} ms",
        stats::median(&in_process_ms),
        stats::median(&in_process_formatted_ms)
    );
    let onex = measure(&args, &crates.onex, "onex-user", &first_contract)?;
    let prost = measure(&args, &crates.prost, "prost-user", &first_proto)?;
    let protoc = Command::new("protoc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let prost_build_version = std::fs::read_to_string(crates.prost.join("Cargo.lock"))
        .ok()
        .and_then(|lock| {
            let i = lock.find("name = \"prost-build\"")?;
            let rest = &lock[i..];
            let v = rest.find("version = \"")? + "version = \"".len();
            rest[v..].split('"').next().map(str::to_owned)
        });
    let result = json!({
        "settings": {
            "contracts": args.count,
            "runs": args.runs,
            "cargo_runs": args.cargo_runs,
            "build_script_only": args.build_script_only,
            "profile": "dev (build scripts unoptimized, as cargo builds them)",
            "protoc": protoc,
            "prost_build": prost_build_version,
        },
        "in_process_ms": stats::median(&in_process_ms),
        "in_process_ms_runs": in_process_ms,
        "in_process_formatted_ms": stats::median(&in_process_formatted_ms),
        "in_process_formatted_ms_runs": in_process_formatted_ms,
        "onex": onex,
        "prost": prost,
    });
    let text = serde_json::to_string_pretty(&result)?;
    match &args.out {
        Some(path) => std::fs::write(path, text)?,
        None => println!("{text}"),
    }
    Ok(())
}
