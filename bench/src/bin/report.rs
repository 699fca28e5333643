//! Writes `BENCHMARKS.md` from the JSON results of `bench/run`.
//!
//! ```text
//! onex-bench-report --results DIR --out BENCHMARKS.md [--notes bench/NOTES.md]
//! ```
//!
//! Reads from the results folder (each optional): `pipeline.json`,
//! `codegen.json`, `kafka.json`, `memory_peak.json`, `request_reply.json`,
//! `workflow.json`, `generator.json`, `node_throughput.json`, `criterion/` (the
//! criterion output folder),
//! `settings.json`; and `{part}.skipped` files whose text says why a part
//! was not measured.

use std::{
    error::Error,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

type BoxError = Box<dyn Error + Send + Sync>;

struct Args {
    results: PathBuf,
    out: PathBuf,
    notes: Option<PathBuf>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut results = None;
    let mut out = None;
    let mut notes = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--results" => results = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--notes" => notes = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    Ok(Args {
        results: results.ok_or("--results is required")?,
        out: out.ok_or("--out is required")?,
        notes,
    })
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn skipped(results: &Path, part: &str) -> String {
    std::fs::read_to_string(results.join(format!("{part}.skipped")))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "its results are missing".to_owned())
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

/// `1,234,567`
fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

/// A duration in ms with sensible precision.
fn ms(v: &Value) -> String {
    match num(v) {
        Some(x) if x >= 100.0 => thousands(x),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
        None => "–".to_owned(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        // Two decimals, unless that would show a measured ratio as 0.00×.
        (Some(a), Some(b)) if b > 0.0 && a / b < 0.01 => format!("{:.4}×", a / b),
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_owned(),
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".to_owned(), |x| format!("{:.1}%", x * 100.0))
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn machine() -> Vec<(&'static str, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("PRETTY_NAME="))
                .map(|l| l["PRETTY_NAME=".len()..].trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let kernel = command_output("uname", &["-sr"]).unwrap_or_default();
    let rustc = command_output("rustc", &["--version"]).unwrap_or_default();
    vec![
        ("CPU", cpu),
        ("Cores", cores.to_string()),
        ("Memory", format!("{:.1} GiB", mem_kb / 1024.0 / 1024.0)),
        ("OS", format!("{os}, {kernel}")),
        ("Rust", rustc),
    ]
}

/// A target line: met or missed, with the number.
struct Target {
    what: String,
    verdict: Verdict,
    number: String,
}

/// How a target line ends.
enum Verdict {
    Met,
    Missed,
    NotMeasured,
    /// Measured, against no numeric target: the figure alone.
    Shown,
}

fn target(what: impl Into<String>, met: Option<bool>, number: impl Into<String>) -> Target {
    Target {
        what: what.into(),
        verdict: match met {
            Some(true) => Verdict::Met,
            Some(false) => Verdict::Missed,
            None => Verdict::NotMeasured,
        },
        number: number.into(),
    }
}

/// A line for a figure the issue asks for without a number to reach.
fn figure(what: impl Into<String>, number: Option<String>) -> Target {
    match number {
        Some(number) => Target {
            what: what.into(),
            verdict: Verdict::Shown,
            number,
        },
        None => target(what, None, "not measured yet"),
    }
}

/// A Kafka target: ours at 85% or more of `baseline`, named in the number
/// when given.
fn kafka_target(
    what: &str,
    ours: Option<f64>,
    baseline: Option<f64>,
    baseline_name: Option<&str>,
) -> Target {
    rate_target(what, 0.85, ours, baseline, baseline_name)
}

/// A throughput target: ours at `share` of `baseline` or more.
fn rate_target(
    what: &str,
    share: f64,
    ours: Option<f64>,
    baseline: Option<f64>,
    baseline_name: Option<&str>,
) -> Target {
    target(
        what,
        ours.zip(baseline).map(|(o, b)| o >= share * b),
        format!(
            "{} msg/s against {} msg/s{} ({})",
            ours.map_or("–".to_owned(), thousands),
            baseline.map_or("–".to_owned(), thousands),
            baseline_name.map_or(String::new(), |n| format!(" of {n}")),
            ratio(ours, baseline)
        ),
    )
}

const PUBLISH_SAME_WORK: &str =
    "Kafka bus publish ≥ 85% of raw throughput, raw doing the same per-message work (serializing)";
const PUBLISH_BARE: &str = "Kafka bus publish ≥ 85% of raw throughput, raw sending prebuilt bytes";
const CONSUME_SAME_WORK: &str =
    "Kafka bus consume ≥ 85% of raw throughput, raw doing the same per-message work (parsing)";
const CONSUME_BARE: &str = "Kafka bus consume ≥ 85% of raw throughput, raw not parsing";
const TYPED_PUBLISH: &str =
    "typed Kafka publish (`Publisher::publish`) ≥ 0.9× `KafkaBus::publish` of a built message";
const CLOUDEVENTS_COST: &str =
    "the CloudEvents headers cost under 5% of typed Kafka publish throughput";

fn pipeline_section(r: &Path, md: &mut String, targets: &mut Vec<Target>) {
    md.push_str("## 1. The pipeline (`cargo onex generate`)\n\n");
    let Some(p) = read_json(&r.join("pipeline.json")) else {
        let why = skipped(r, "pipeline");
        let _ = writeln!(md, "Not measured yet: {why}.\n");
        for t in [
            "one contract cold < 25 ms",
            "1,000 contracts cold < 5 s",
            "1,000 contracts unchanged < 0.3 s",
            "stage 4.5 < 5% of the pipeline",
        ] {
            targets.push(target(t, None, "not measured yet"));
        }
        return;
    };
    let runs = &p["settings"]["runs"];
    let examples: Vec<String> = p["settings"]["examples"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(|s| format!("`{s}`")))
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "N synthetic contracts (copies of {} with the node renamed), compile check \
         off, written to an empty folder (cold), then the same run again with nothing \
         changed. The library pipeline runs in the benchmark process and reports each \
         stage's time; the CLI columns time the `cargo-onex` binary as a process \
         (`cargo onex generate --out DIR CONTRACT...`) on the same contracts. Output on \
         the machine's disk (ext4). Medians of {runs} runs ({} for 1,000 contracts; the CLI: \
         {} run), in ms.\n",
        examples.join(", "),
        p["settings"]["large_runs"],
        p["settings"]["cli_runs"],
    );
    let results = p["results"].as_array().cloned().unwrap_or_default();
    md.push_str("| contracts | cold | cold per contract | unchanged | CLI cold | CLI unchanged | output files | output lines |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in &results {
        let n = num(&row["contracts"]).unwrap_or(0.0);
        let per = num(&row["cold_ms"]).map(|c| Value::from(c / n.max(1.0)));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(n),
            ms(&row["cold_ms"]),
            per.as_ref().map_or("–".to_owned(), ms),
            ms(&row["unchanged_ms"]),
            ms(&row["cli_cold_ms"]),
            ms(&row["cli_unchanged_ms"]),
            thousands(num(&row["output_files"]).unwrap_or(0.0)),
            thousands(num(&row["output_lines"]).unwrap_or(0.0)),
        );
    }
    md.push_str("\nEach stage's share of the cold pipeline (sum of stage times), with its median time in ms:\n\n");
    let _ = write!(md, "| stage |");
    for row in &results {
        let _ = write!(
            md,
            " {} contracts |",
            thousands(num(&row["contracts"]).unwrap_or(0.0))
        );
    }
    md.push_str("\n|---|");
    for _ in &results {
        md.push_str("---:|");
    }
    md.push('\n');
    for stage in p["stages"].as_array().cloned().unwrap_or_default() {
        let number = stage["number"].as_str().unwrap_or("");
        if results
            .iter()
            .all(|row| row["cold_stage_ms"].get(number).is_none())
        {
            continue;
        }
        let _ = write!(
            md,
            "| {} {} |",
            number,
            stage["name"].as_str().unwrap_or("")
        );
        for row in &results {
            let share = num(&row["cold_stage_share"][number]);
            let t = &row["cold_stage_ms"][number];
            let _ = write!(md, " {} ({}) |", pct(share), ms(t));
        }
        md.push('\n');
    }
    if let Some(big) = results.last() {
        let ran: Vec<String> = big["unchanged_stage_ms"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(stage, t)| format!("stage {stage} {} ms", ms(t)))
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "\nWith nothing changed ({} contracts), the stages that ran: {}; the others were \
             skipped for every contract.\n",
            thousands(num(&big["contracts"]).unwrap_or(0.0)),
            ran.join(", ")
        );
    }

    let at = |n: f64| results.iter().find(|r| num(&r["contracts"]) == Some(n));
    let after_delete = at(1000.0).and_then(|r| num(&r["cold_after_delete_ms"]));
    if let Some(x) = after_delete {
        let _ = writeln!(
            md,
            "Cold runs write into a folder that did not exist, and no output is deleted \
             between runs. The same 1,000 contracts written right after deleting the \
             previous output (`rm -rf` of its {} files, then `cargo onex generate`) take \
             {:.2} s (median of {} runs): this disk's ext4 has no journal, so every file \
             created within about a minute of mass deletions pays for skipping the deleted \
             inodes (see the findings).\n",
            thousands(
                at(1000.0)
                    .and_then(|r| num(&r["output_files"]))
                    .unwrap_or(0.0)
            ),
            x / 1000.0,
            at(1000.0)
                .and_then(|r| r["cold_after_delete_ms_runs"].as_array().map(Vec::len))
                .unwrap_or(0)
        );
    }
    let one = at(1.0).and_then(|r| num(&r["cold_ms"]));
    targets.push(target(
        "pipeline, one contract cold < 25 ms",
        one.map(|x| x < 25.0),
        one.map_or("not measured".to_owned(), |x| format!("{x:.2} ms")),
    ));
    let k_cold = at(1000.0).and_then(|r| num(&r["cold_ms"]));
    targets.push(target(
        "pipeline, 1,000 contracts cold < 5 s",
        k_cold.map(|x| x < 5000.0),
        k_cold.map_or("not measured".to_owned(), |x| {
            format!("{:.2} s", x / 1000.0)
        }),
    ));
    targets.push(target(
        "pipeline, 1,000 contracts cold < 5 s, right after deleting the previous output",
        after_delete.map(|x| x < 5000.0),
        after_delete.map_or("not measured".to_owned(), |x| {
            format!("{:.2} s", x / 1000.0)
        }),
    ));
    let k_warm = at(1000.0).and_then(|r| num(&r["unchanged_ms"]));
    targets.push(target(
        "pipeline, 1,000 contracts unchanged < 0.3 s",
        k_warm.map(|x| x < 300.0),
        k_warm.map_or("not measured".to_owned(), |x| {
            format!("{:.3} s", x / 1000.0)
        }),
    ));
    let worst = results
        .iter()
        .filter_map(|r| num(&r["cold_stage_share"]["4.5"]).map(|s| (s, num(&r["contracts"]))))
        .fold(None::<(f64, Option<f64>)>, |acc, x| match acc {
            Some(a) if a.0 >= x.0 => Some(a),
            _ => Some(x),
        });
    targets.push(target(
        "stage 4.5 < 5% of the pipeline",
        worst.map(|w| w.0 < 0.05),
        worst.map_or("not measured".to_owned(), |w| {
            format!(
                "at most {} (at {} contracts)",
                pct(Some(w.0)),
                thousands(w.1.unwrap_or(0.0))
            )
        }),
    ));
}

fn codegen_section(r: &Path, md: &mut String, targets: &mut Vec<Target>) {
    md.push_str("## 2–4. onex-build in a build script, against prost-build\n\n");
    let Some(c) = read_json(&r.join("codegen.json")) else {
        let why = skipped(r, "codegen");
        let _ = writeln!(md, "Not measured yet: {why}.\n");
        targets.push(target(
            "onex-build build script ≤ half of prost-build's",
            None,
            "not measured yet",
        ));
        return;
    };
    let s = &c["settings"];
    let n = s["contracts"].clone();
    let _ = writeln!(
        md,
        "Two crates that differ only in their generator, built in one target folder with \
         their dependencies already built: `onex-user`, whose `build.rs` runs \
         `onex_build::Builder` on {n} synthetic contracts, and `prost-user`, whose \
         `build.rs` runs `prost_build::Config::compile_protos` on {n} `.proto` files \
         (`bench/proto/`, written by hand: the same messages and fields as the event \
         structs onex-build generates for each example contract; one package per \
         contract copy). prost-build {}, {}. Build scripts are compiled unoptimized, as \
         cargo's dev profile does. Build-script time: the compiled build script run \
         directly into an empty `OUT_DIR` (median of {} runs). Cargo times: {}, in ms.\n",
        s["prost_build"].as_str().unwrap_or("?"),
        s["protoc"].as_str().unwrap_or("protoc ?"),
        s["runs"],
        match s["cargo_runs"].as_u64() {
            Some(1) => "one run each (the no-op build: median of three)".to_owned(),
            Some(n) => format!("median of {n} runs"),
            None => "?".to_owned(),
        },
    );
    let o = &c["onex"];
    let p = &c["prost"];
    md.push_str("| measure | onex-build | prost-build | onex / prost |\n|---|---:|---:|---:|\n");
    // (label, onex-build's key, prost-build's key): the formatted rows
    // compare with prost-build's one way of running.
    let rows: [(&str, &str, &str); 6] = [
        (
            "build script run, default settings (the generation work, cold; no formatting)",
            "build_script_ms",
            "build_script_ms",
        ),
        (
            "build script run with `Builder::format(true)` (a syn and prettyplease pass)",
            "build_script_formatted_ms",
            "build_script_ms",
        ),
        (
            "`cargo build` after `cargo clean -p` (build script compiled and run, code compiled)",
            "clean_build_ms",
            "clean_build_ms",
        ),
        (
            "`cargo build` after touching one input file (one run)",
            "touched_build_ms",
            "touched_build_ms",
        ),
        (
            "`cargo build` with nothing changed",
            "noop_build_ms",
            "noop_build_ms",
        ),
        (
            "`cargo check` of the generated code (after touching `lib.rs`)",
            "check_ms",
            "check_ms",
        ),
    ];
    for (label, onex_key, prost_key) in rows {
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} |",
            ms(&o[onex_key]),
            ms(&p[prost_key]),
            ratio(num(&o[onex_key]), num(&p[prost_key]))
        );
    }
    for (label, onex_key, prost_key) in [
        ("generated files", "generated_files", "generated_files"),
        ("generated lines", "generated_lines", "generated_lines"),
        (
            "generated lines with `format(true)`",
            "generated_formatted_lines",
            "generated_lines",
        ),
        ("generated bytes", "generated_bytes", "generated_bytes"),
        (
            "generated bytes with `format(true)`",
            "generated_formatted_bytes",
            "generated_bytes",
        ),
    ] {
        let count = |v: &Value| num(v).map_or("–".to_owned(), thousands);
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} |",
            count(&o[onex_key]),
            count(&p[prost_key]),
            ratio(num(&o[onex_key]), num(&p[prost_key]))
        );
    }
    let _ = writeln!(
        md,
        "\nThe same generation inside an optimized process (`Builder::compile`, {n} \
         contracts): {} ms; with `format(true)`: {} ms.\n",
        ms(&c["in_process_ms"]),
        ms(&c["in_process_formatted_ms"])
    );
    let evidence = o["noop_evidence"].as_array().cloned().unwrap_or_default();
    let all = |key: &str, want: bool| {
        !evidence.is_empty() && evidence.iter().all(|e| e[key].as_bool() == Some(want))
    };
    let fresh = all("fresh_line", true)
        && all("build_script_ran", false)
        && all("output_file_untouched", true)
        && all("generated_files_untouched", true);
    let _ = writeln!(
        md,
        "No-op build: in each of {} runs, `cargo build -v` with nothing changed printed \
         `Fresh onex-user` and no `Running …build-script-build`: {}; the build script's \
         `output` file and the generated files kept their modification times: {}.\n",
        evidence.len(),
        if all("fresh_line", true) && all("build_script_ran", false) {
            "yes"
        } else {
            "no"
        },
        if all("output_file_untouched", true) && all("generated_files_untouched", true) {
            "yes"
        } else {
            "no"
        },
    );
    let (a, b) = (num(&o["build_script_ms"]), num(&p["build_script_ms"]));
    targets.push(target(
        "onex-build build script ≤ half of prost-build's",
        a.zip(b).map(|(a, b)| a <= 0.5 * b),
        format!(
            "{} ms against {} ms ({})",
            ms(&o["build_script_ms"]),
            ms(&p["build_script_ms"]),
            ratio(a, b)
        ),
    ));
    targets.push(target(
        "onex-build build script, default settings, ≤ prost-build's",
        a.zip(b).map(|(a, b)| a <= b),
        format!(
            "{} ms against {} ms ({}); with `format(true)`: {} ms ({})",
            ms(&o["build_script_ms"]),
            ms(&p["build_script_ms"]),
            ratio(a, b),
            ms(&o["build_script_formatted_ms"]),
            ratio(num(&o["build_script_formatted_ms"]), b)
        ),
    ));
    // Lean generated code: lines, and what the compiler makes of them.
    for (label, key, bound) in [
        (
            "generated lines ≤ 1.5× prost-build's",
            "generated_formatted_lines",
            1.5,
        ),
        (
            "`cargo check` of the generated code ≤ 1.2× prost-build's",
            "check_ms",
            1.2,
        ),
        (
            "`cargo build` after touching one contract ≤ 1.2× prost-build's",
            "touched_build_ms",
            1.2,
        ),
    ] {
        let prost_key = if key == "generated_formatted_lines" {
            "generated_lines"
        } else {
            key
        };
        let (a, b) = (num(&o[key]), num(&p[prost_key]));
        targets.push(target(
            label,
            a.zip(b).map(|(a, b)| a <= bound * b),
            format!(
                "{} against {} ({})",
                thousands_or_ms(&o[key], key),
                thousands_or_ms(&p[prost_key], key),
                ratio(a, b)
            ),
        ));
    }
    targets.push(target(
        "no-op `cargo build` does not run the build script again",
        (!evidence.is_empty()).then_some(fresh),
        format!(
            "{} of {} runs Fresh",
            if fresh { evidence.len() } else { 0 },
            evidence.len()
        ),
    ));
}

/// A count with thousands separators, or a time in ms for a `_ms` key.
fn thousands_or_ms(v: &Value, key: &str) -> String {
    if key.ends_with("_ms") {
        format!("{} ms", ms(v))
    } else {
        num(v).map_or("–".to_owned(), thousands)
    }
}

fn kafka_section(r: &Path, md: &mut String, targets: &mut Vec<Target>) {
    md.push_str("## 5. Publishing and consuming through the Kafka bus, against raw rdkafka\n\n");
    let Some(k) = read_json(&r.join("kafka.json")) else {
        let why = skipped(r, "kafka");
        let _ = writeln!(md, "Not measured yet: {why}.\n");
        for what in [
            PUBLISH_SAME_WORK,
            PUBLISH_BARE,
            TYPED_PUBLISH,
            CLOUDEVENTS_COST,
            CONSUME_SAME_WORK,
            CONSUME_BARE,
        ] {
            targets.push(target(what, None, "not measured yet"));
        }
        return;
    };
    let s = &k["settings"];
    let _ = writeln!(
        md,
        "One Tansu broker on loopback (memory storage), rdkafka 0.39 (librdkafka 2.12), \
         every producer with `acks=all`, idempotence on, `linger.ms={}` and \
         `compression.type={}` (the bus's defaults), the same {}-byte envelope, key and {} headers. Throughput: {} messages \
         with up to {} awaited sends in flight; latency under that load is from the send \
         call to its delivery report. One-at-a-time latency: {} sends, each awaited before \
         the next. Every producer runs in every round, in rotating order; medians of {} \
         rounds.\n",
        s["linger_ms"],
        s["compression"].as_str().unwrap_or("none"),
        s["message_bytes"],
        s["header_count"],
        thousands(num(&s["messages"]).unwrap_or(0.0)),
        thousands(num(&s["in_flight"]).unwrap_or(0.0)),
        thousands(num(&s["latency_messages"]).unwrap_or(0.0)),
        s["runs"],
    );
    let pr = &k["produce"];
    let lone = &k["latency_one_at_a_time"];
    let best_raw = ["raw_future", "raw_threaded"]
        .iter()
        .filter_map(|n| num(&pr[n]["rate"]["median"]).map(|r| (*n, r)))
        .fold(None::<(&str, f64)>, |a, x| match a {
            Some(a) if a.1 >= x.1 => Some(a),
            _ => Some(x),
        });
    let same_work = num(&pr["raw_threaded_serializing"]["rate"]["median"]);
    md.push_str("The raw producers send the bytes of one prebuilt message again and again; the \"serializing\" one serializes that message's envelope and headers for every send, as the bus does and as an application sending these events through rdkafka would.\n\n");
    md.push_str("| producer | messages/s | vs best raw | vs raw serializing | p50 µs (loaded) | p99 µs (loaded) | p50 µs (one at a time) | p99 µs (one at a time) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (name, label) in [
        ("raw_future", "raw rdkafka `FutureProducer`"),
        ("raw_threaded", "raw rdkafka `ThreadedProducer` + oneshot"),
        (
            "raw_threaded_serializing",
            "raw rdkafka `ThreadedProducer` + oneshot, serializing each message",
        ),
        ("bus_prebuilt", "`KafkaBus::publish` of a built message"),
        (
            "bus_publisher",
            "`Publisher::publish` on `KafkaBus` (builds the message from a typed event)",
        ),
        (
            "bus_publisher_plain",
            "the same without the CloudEvents headers (`KAFKA_CLOUDEVENTS=false`)",
        ),
    ] {
        let rate = num(&pr[name]["rate"]["median"]);
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} | {} | {} |",
            rate.map_or("–".to_owned(), thousands),
            ratio(rate, best_raw.map(|b| b.1)),
            ratio(rate, same_work),
            ms(&pr[name]["p50_us"]["median"]),
            ms(&pr[name]["p99_us"]["median"]),
            ms(&lone[name]["p50_us"]["median"]),
            ms(&lone[name]["p99_us"]["median"]),
        );
    }
    let bus = num(&pr["bus_prebuilt"]["rate"]["median"]);
    let typed = num(&pr["bus_publisher"]["rate"]["median"]);
    let plain = num(&pr["bus_publisher_plain"]["rate"]["median"]);
    let _ = writeln!(
        md,
        "\nEvery message carries the CloudEvents headers (`ce_*` and `content-type`: six here, seven when the event has a correlation id) beside the ONEX ones; the raw producers send them too. Without them the typed publish moves {} msg/s, with them {} ({}), from the medians of the rotating runs above, which put minutes between the two rows.",
        plain.map_or("–".to_owned(), thousands),
        typed.map_or("–".to_owned(), thousands),
        ratio(typed, plain),
    );
    let paired = &k["cloudevents_paired"];
    let paired_ratio = num(&paired["ratio"]["median"]);
    match paired_ratio {
        Some(r) => {
            let _ = writeln!(
                md,
                "\nMeasured in pairs as well: two buses connected side by side, one writing the headers and one not, {} rounds of {} typed publishes on each, the order within a round alternating, so that a drift of the machine or of the broker reaches both sides of a round alike. With the headers {} msg/s, without {} (medians); the median of the rounds' ratios is {:.2}× (the rounds ranged from {:.2}× to {:.2}×). The target is judged on this ratio.",
                num(&paired["rounds"]).unwrap_or(0.0),
                thousands(num(&paired["messages_per_round"]).unwrap_or(0.0)),
                num(&paired["with_rate"]["median"]).map_or("–".to_owned(), thousands),
                num(&paired["without_rate"]["median"]).map_or("–".to_owned(), thousands),
                r,
                num(&paired["ratio"]["min"]).unwrap_or(f64::NAN),
                num(&paired["ratio"]["max"]).unwrap_or(f64::NAN),
            );
            let cpu = |key: &str| num(&paired[key]);
            if let (Some(with), Some(without)) = (cpu("with_cpu_us"), cpu("without_cpu_us")) {
                let broker = match (cpu("with_broker_cpu_us"), cpu("without_broker_cpu_us")) {
                    (Some(b), Some(p)) => format!(", and the broker {b:.1} µs against {p:.1} µs"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    md,
                    "\nCPU time per message (user and system, over all rounds): the publishing process {with:.1} µs with the headers against {without:.1} µs without{broker}.",
                );
            }
            targets.push(target(
                CLOUDEVENTS_COST,
                Some(r >= 0.95),
                format!(
                    "{r:.2}× the throughput without them, median of {} paired rounds ({} from the rotating runs' medians)",
                    num(&paired["rounds"]).unwrap_or(0.0),
                    ratio(typed, plain)
                ),
            ));
        }
        None => targets.push(rate_target(
            CLOUDEVENTS_COST,
            0.95,
            typed,
            plain,
            Some("the same without them"),
        )),
    }
    targets.push(rate_target(TYPED_PUBLISH, 0.9, typed, bus, None));
    targets.push(kafka_target(PUBLISH_SAME_WORK, bus, same_work, None));
    targets.push(kafka_target(
        PUBLISH_BARE,
        bus,
        best_raw.map(|b| b.1),
        Some(best_raw.map_or("raw", |b| b.0)),
    ));
    let co = &k["consume"];
    if co.get("raw_stream").is_some() {
        md.push_str("\nConsuming the messages the bus published, from the earliest offset, each consumer in a fresh group, timed from the first message to the last (the group join is not counted); rotating order, medians:\n\n| consumer | messages/s | vs raw | vs raw decoding |\n|---|---:|---:|---:|\n");
        let raw = num(&co["raw_stream"]["rate"]["median"]);
        let decoding = num(&co["raw_stream_decoding"]["rate"]["median"]);
        let bus = num(&co["bus_subscribe"]["rate"]["median"]);
        for (label, rate) in [
            (
                "raw rdkafka `StreamConsumer`, offset stored after each message",
                raw,
            ),
            (
                "the same, parsing each message's envelope and headers (what the bus hands a handler)",
                decoding,
            ),
            ("`KafkaBus::subscribe`, handler counts", bus),
        ] {
            let _ = writeln!(
                md,
                "| {label} | {} | {} | {} |",
                rate.map_or("–".to_owned(), thousands),
                ratio(rate, raw),
                ratio(rate, decoding)
            );
        }
        targets.push(kafka_target(CONSUME_SAME_WORK, bus, decoding, None));
        targets.push(kafka_target(CONSUME_BARE, bus, raw, None));
    }
    md.push('\n');
}

/// Criterion's median time per iteration, in ns.
fn criterion_median(r: &Path, id: &str) -> Option<f64> {
    let v = read_json(&r.join("criterion").join(id).join("new/estimates.json"))?;
    num(&v["median"]["point_estimate"])
}

fn memory_section(r: &Path, md: &mut String, targets: &mut Vec<Target>) {
    md.push_str("## 6. The in-memory bus\n\n");
    let one = criterion_median(r, "memory_bus/publish/1");
    if one.is_none() {
        let why = skipped(r, "memory_bus");
        let _ = writeln!(md, "Not measured yet: {why}.\n");
        targets.push(target(
            "in-memory bus ≥ 1,000,000 events/s, one subscriber",
            None,
            "not measured yet",
        ));
        return;
    }
    md.push_str("Publish-to-delivery throughput: a batch of events published one after another (each `await`ed), until every subscriber's handler has seen every event (`wait_until_idle`). Four subscribers are four consumer groups, each receiving every event. Tokio multi-thread runtime, criterion (median).\n\n| publishing with | 1 subscriber, events/s | 4 subscribers, events/s | 4 subscribers, deliveries/s |\n|---|---:|---:|---:|\n");
    for (mode, label) in [
        (
            "publish",
            "`EventBus::publish` of a built message (shared, as the trait takes `Arc<BusMessage>`)",
        ),
        (
            "publisher",
            "`Publisher::publish` of a typed event (builds envelope, headers and key per event)",
        ),
    ] {
        let rate = |subs: u32| {
            criterion_median(r, &format!("memory_bus/{mode}/{subs}")).map(|ns| 1e9 / ns)
        };
        let (a, b) = (rate(1), rate(4));
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} |",
            a.map_or("–".to_owned(), thousands),
            b.map_or("–".to_owned(), thousands),
            b.map_or("–".to_owned(), |b| thousands(4.0 * b)),
        );
    }
    md.push('\n');
    let bus = one.map(|ns| 1e9 / ns);
    targets.push(target(
        "in-memory bus ≥ 1,000,000 events/s, one subscriber (`EventBus::publish`)",
        bus.map(|x| x >= 1e6),
        bus.map_or("–".to_owned(), |x| format!("{} events/s", thousands(x))),
    ));
    let typed = criterion_median(r, "memory_bus/publisher/1").map(|ns| 1e9 / ns);
    targets.push(target(
        "in-memory bus ≥ 1,000,000 events/s, one subscriber, through `Publisher::publish`",
        typed.map(|x| x >= 1e6),
        typed.map_or("–".to_owned(), |x| format!("{} events/s", thousands(x))),
    ));
}

fn peak_section(r: &Path, md: &mut String) {
    md.push_str("## 7. Peak memory of the pipeline on 1,000 contracts\n\n");
    let Some(m) = read_json(&r.join("memory_peak.json")) else {
        let why = skipped(r, "memory_peak");
        let _ = writeln!(md, "Not measured yet: {why}.\n");
        return;
    };
    let kb = |k: &str| num(&m[k]).map_or("–".to_owned(), |x| format!("{:.1} MiB", x / 1024.0));
    let _ = writeln!(
        md,
        "`/usr/bin/time -v` on {} with 1,000 contracts, compile check off: maximum \
         resident set size {} cold, {} with nothing changed.\n",
        m["program"].as_str().unwrap_or("the pipeline"),
        kb("cold_max_rss_kb"),
        kb("unchanged_max_rss_kb"),
    );
}

/// A latency in µs with sensible precision, or in ms from 10 ms up.
fn micros(v: &Value) -> String {
    match num(v) {
        Some(x) if x >= 10_000.0 => format!("{} ms", ms(&Value::from(x / 1000.0))),
        Some(x) if x >= 100.0 => format!("{} µs", thousands(x)),
        Some(x) => format!("{x:.1} µs"),
        None => "–".to_owned(),
    }
}

const RR_KAFKA: &str = "request and reply over loopback Tansu, p50 < 5 ms";
const RR_MEMORY: &str = "request and reply on the in-memory bus, p50 < 50 µs";

fn request_reply_section(r: &Path, md: &mut String, targets: &mut Vec<Target>) {
    md.push_str(
        "## 8. Request and reply

",
    );
    let Some(rr) = read_json(&r.join("request_reply.json")) else {
        let why = skipped(r, "request_reply");
        let _ = writeln!(md, "Not measured yet: {why}.\n");
        for what in [RR_KAFKA, RR_MEMORY] {
            targets.push(target(what, None, "not measured yet"));
        }
        return;
    };
    let s = &rr["settings"];
    let _ = writeln!(
        md,
        "`onex::request::Requester` sends a command and awaits its completed event, which \
         a responder subscribed to the command topic publishes under the command's \
         correlation id. {} round trips one after another (after {} not counted), each \
         timed from the call of `request` to its result. Kafka: one Tansu broker on \
         loopback, the bus's defaults (`acks={}`, idempotence, `linger.ms={}`, \
         `auto_offset_reset=latest`, `fetch.wait.max.ms={}`), so a round trip is two \
         acknowledged publishes and two consumer fetches; the requester started with \
         `Requester::start`. Tansu answers a fetch only when its wait runs out (Kafka \
         answers as soon as a record arrives), so the round trip is measured again with \
         `KAFKA_FETCH_WAIT_MAX_MS={}`, which a node that needs low latency sets, at the \
         cost of more fetch requests while idle.\n",
        thousands(num(&s["requests"]).unwrap_or(0.0)),
        thousands(num(&s["warmup"]).unwrap_or(0.0)),
        s["acks"].as_str().unwrap_or("all"),
        s["linger_ms"],
        s["fetch_wait_max_ms"],
        s["low_latency_fetch_wait_max_ms"],
    );
    md.push_str("| bus | p50 | p90 | p99 | min | max |\n|---|---:|---:|---:|---:|---:|\n");
    let low_latency = format!(
        "Kafka bus, loopback Tansu, `KAFKA_FETCH_WAIT_MAX_MS={}`",
        s["low_latency_fetch_wait_max_ms"]
    );
    for (key, label) in [
        ("memory", "in-memory bus"),
        ("kafka", "Kafka bus, loopback Tansu, defaults"),
        ("kafka_low_latency", low_latency.as_str()),
    ] {
        let row = &rr[key];
        if row.is_null() {
            let _ = writeln!(md, "| {label} | not measured | | | | |");
            continue;
        }
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} |",
            micros(&row["p50_us"]),
            micros(&row["p90_us"]),
            micros(&row["p99_us"]),
            micros(&row["min_us"]),
            micros(&row["max_us"]),
        );
    }
    md.push('\n');
    for (key, what, limit_us) in [("kafka", RR_KAFKA, 5_000.0), ("memory", RR_MEMORY, 50.0)] {
        let p50 = num(&rr[key]["p50_us"]);
        let verdict = p50.map(|x| x < limit_us);
        let mut text = p50.map_or("not measured".to_owned(), |_| {
            format!(
                "p50 {}, p99 {}",
                micros(&rr[key]["p50_us"]),
                micros(&rr[key]["p99_us"])
            )
        });
        // Over Tansu the target depends on the fetch wait: both figures,
        // the verdict the default's.
        if key == "kafka" && !rr["kafka_low_latency"].is_null() {
            let _ = write!(
                text,
                " with the defaults; p50 {}, p99 {} with `KAFKA_FETCH_WAIT_MAX_MS={}`",
                micros(&rr["kafka_low_latency"]["p50_us"]),
                micros(&rr["kafka_low_latency"]["p99_us"]),
                s["low_latency_fetch_wait_max_ms"]
            );
        }
        targets.push(target(what, verdict, text));
    }
}

const WORKFLOW_THROUGHPUT: &str =
    "workflow throughput (workflows per second with a step on another node)";

/// Workflows per second of a measurement, or `–`.
fn per_second(v: &Value) -> String {
    num(v).map_or("–".to_owned(), |x| {
        if x >= 100.0 {
            thousands(x)
        } else {
            format!("{x:.1}")
        }
    })
}

fn workflow_section(r: &Path, md: &mut String, targets: &mut Vec<Target>) {
    md.push_str("## 9. Workflows through generated nodes\n\n");
    let Some(wf) = read_json(&r.join("workflow.json")) else {
        let why = skipped(r, "workflow");
        let _ = writeln!(md, "Not measured yet: {why}.\n");
        targets.push(figure(WORKFLOW_THROUGHPUT, None));
        return;
    };
    let s = &wf["settings"];
    let in_flight = thousands(num(&s["in_flight"]).unwrap_or(0.0));
    let _ = writeln!(
        md,
        "The nodes of `examples/`, each on its own `NodeRuntime`: `order_cli` places an \
         order with its generated `requests().place_order(..)`; `order_workflow` (its own \
         handler) runs the step `validate_order` in process, then `persist_order`, which \
         sends the PostgreSQL writer's `write_requested` and waits for \
         `write_record_completed`, then publishes `workflow_completed`, which answers the \
         request. The writer runs {}, so the figures measure the messaging and the \
         nodes' generated code, not PostgreSQL. A workflow is timed from the call of \
         `place_order` to its `WorkflowCompleted`, which must carry the writer's answer \
         for the order. One at a time: {} workflows (after {} not counted); in flight: \
         {in_flight} tasks share the adapter node, each placing one order after another, \
         {} workflows in all; workflows per second are the workflows over their wall \
         time. Each node's subscriptions handle up to {} messages at once \
         (`KAFKA_MAX_IN_FLIGHT`; one key at a time, in order). In memory the three nodes share one bus; over Kafka each node has its own \
         connection to one Tansu broker on loopback, with `acks={}`, idempotence, \
         `linger.ms={}` and `fetch.wait.max.ms={}` (`bench/run` keeps the bus's \
         defaults), on topics new to the run (read from the earliest offset).\n",
        s["writer"]
            .as_str()
            .unwrap_or("a handler that does no database work"),
        thousands(num(&s["workflows"]).unwrap_or(0.0)),
        thousands(num(&s["warmup"]).unwrap_or(0.0)),
        thousands(num(&s["workflows"]).unwrap_or(0.0)),
        thousands(num(&s["node_max_in_flight"]).unwrap_or(1.0)),
        s["acks"].as_str().unwrap_or("all"),
        s["linger_ms"],
        s["fetch_wait_max_ms"],
    );
    md.push_str(
        "| bus | workflows | workflows/s | p50 | p90 | p99 | mean |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for (key, label) in [
        ("memory", "in-memory bus"),
        ("kafka", "Kafka bus, loopback Tansu"),
    ] {
        for (how, what) in [
            ("sequential", "one at a time".to_owned()),
            ("concurrent", format!("{in_flight} in flight")),
        ] {
            let row = &wf[key][how];
            if row.is_null() {
                let _ = writeln!(md, "| {label} | {what} | not measured | | | | |");
                continue;
            }
            let _ = writeln!(
                md,
                "| {label} | {what} | {} | {} | {} | {} | {} |",
                per_second(&row["workflows_per_s"]),
                micros(&row["p50_us"]),
                micros(&row["p90_us"]),
                micros(&row["p99_us"]),
                micros(&row["mean_us"]),
            );
        }
    }
    md.push('\n');
    if let Some(types) = wf["memory"]["message_types"].as_array() {
        let names: Vec<String> = types
            .iter()
            .filter_map(Value::as_str)
            .map(|t| format!("`{t}`"))
            .collect();
        let _ = writeln!(
            md,
            "One workflow publishes {} messages with its correlation id, in this order on \
             the in-memory bus: {}.\n",
            names.len(),
            names.join(", "),
        );
    }
    let bus_figures = |key: &str, label: &str| {
        let row = &wf[key];
        (!row.is_null()).then(|| {
            format!(
                "{label} {} workflows/s one at a time (p50 {}), {} with {in_flight} in flight",
                per_second(&row["sequential"]["workflows_per_s"]),
                micros(&row["sequential"]["p50_us"]),
                per_second(&row["concurrent"]["workflows_per_s"]),
            )
        })
    };
    let figures: Vec<String> = [("memory", "in memory"), ("kafka", "over Kafka")]
        .into_iter()
        .filter_map(|(key, label)| bus_figures(key, label))
        .collect();
    targets.push(figure(
        WORKFLOW_THROUGHPUT,
        (!figures.is_empty()).then(|| figures.join("; ")),
    ));
}

const PROGRESS_TARGET: &str =
    "publishing the pipeline's progress adds < 5% to `cargo onex generate` on 1,000 contracts";

fn generator_section(r: &Path, md: &mut String, targets: &mut Vec<Target>) {
    md.push_str(
        "## 10. The generator on the bus

",
    );
    let Some(g) = read_json(&r.join("generator.json")) else {
        let why = skipped(r, "generator");
        let _ = writeln!(md, "Not measured yet: {why}.\n");
        targets.push(target(PROGRESS_TARGET, None, "not measured yet"));
        targets.push(figure(
            "`generate --via-bus` round trip for one contract",
            None,
        ));
        return;
    };
    let rows = g["progress"].as_array().cloned().unwrap_or_default();
    let in_memory = |row: &Value| row["output_in_memory"].as_bool() == Some(true);
    md.push_str(
        "With a broker configured, `cargo onex generate` publishes every stage's started and \
         completed event and each contract's outcome (17 events per contract) on Tansu, and \
         waits until the broker acknowledged them before it exits. The CLI generates synthetic \
         contracts into a fresh folder, without a broker and with one: a first pair of runs \
         not counted, then pairs whose order alternates; medians of the wall times, and of \
         the CPU time (user and system) of the command and of the broker during the runs that \
         publish. The node crates go to the disk, as a user's do, and again to a file system \
         in memory (tmpfs), deleted after each run: there the disk's swings stay out of the \
         comparison, and the runs are shorter, so the same cost is a larger share of them. \
         The target is judged on the disk.\n\n\
         | contracts | output | events | pairs | without a bus | publishing progress | overhead | CPU without | CPU with | broker's CPU |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(num(&row["contracts"]).unwrap_or(0.0)),
            if in_memory(row) { "memory" } else { "disk" },
            thousands(num(&row["events"]).unwrap_or(0.0)),
            num(&row["runs"]).unwrap_or(0.0),
            ms(&row["without_bus_ms"]),
            ms(&row["with_bus_ms"]),
            pct(num(&row["overhead_pct"]).map(|p| p / 100.0)),
            ms(&row["without_bus_cpu_ms"]),
            ms(&row["with_bus_cpu_ms"]),
            ms(&row["broker_cpu_ms"]),
        );
    }
    let large = |memory: bool| {
        rows.iter()
            .find(|row| num(&row["contracts"]) == Some(1000.0) && in_memory(row) == memory)
            .and_then(|row| num(&row["overhead_pct"]))
    };
    let overhead = large(false);
    targets.push(target(
        PROGRESS_TARGET,
        overhead.map(|p| p < 5.0),
        overhead.map_or("not measured".to_owned(), |p| {
            let memory = large(true).map_or(String::new(), |m| format!("; {m:+.1}% in memory"));
            format!("{p:+.1}% on the disk{memory}")
        }),
    ));
    let rt = &g["round_trip"];
    let _ = writeln!(
        md,
        "\n`cargo onex generate --via-bus` for one contract, with `cargo onex serve` running, \
         from start to exit: joining the bus, sending the request, the service's run with its \
         progress, the outcome. Beside it, the same command run locally without a broker. {} \
         runs each.\n\n\
         | | p50 | p90 |\n|---|---:|---:|\n\
         | `generate --via-bus` | {} | {} |\n\
         | `generate`, local | {} | |\n",
        num(&rt["runs"]).unwrap_or(0.0),
        ms(&rt["via_bus_ms"]),
        ms(&rt["via_bus_p90_ms"]),
        ms(&rt["local_ms"]),
    );
    targets.push(figure(
        "`generate --via-bus` round trip for one contract",
        num(&rt["via_bus_ms"]).map(|_| {
            format!(
                "{} (local run {})",
                ms(&rt["via_bus_ms"]),
                ms(&rt["local_ms"])
            )
        }),
    ));
}

const NODE_POSTGRES: &str = "a generated node processes commands at ≥ 0.8× the rate of a \
                             hand-written rdkafka consumer, with the PostgreSQL writer's insert";
const NODE_NOOP: &str = "a generated node processes commands at ≥ 0.8× the rate of a hand-written \
                         rdkafka consumer, with a no-op handler";

fn node_throughput_section(r: &Path, md: &mut String, targets: &mut Vec<Target>) {
    md.push_str(
        "## 11. Generated nodes against a hand-written consumer

",
    );
    let Some(n) = read_json(&r.join("node_throughput.json")) else {
        let why = skipped(r, "node_throughput");
        let _ = writeln!(md, "Not measured yet: {why}.\n");
        targets.push(target(NODE_POSTGRES, None, "not measured yet"));
        targets.push(target(NODE_NOOP, None, "not measured yet"));
        return;
    };
    let s = &n["settings"];
    let _ = writeln!(
        md,
        "{} `write_requested` commands, keyed by {} correlation ids, wait in a topic new to \
         the measurement ({} partitions, the broker's default) before the consumer starts; \
         one Tansu broker and PostgreSQL on loopback. The generated node is a release binary \
         run with its defaults (`KAFKA_MAX_IN_FLIGHT` unset: its contract's \
         `event_bus.max_in_flight`, {}), which publishes started and completed for every command, \
         starts a key's next command once they are handed to its producer, and commits a \
         command's offset only once they are delivered. The hand-written consumer is an \
         rdkafka `StreamConsumer` with `enable.auto.offset.store=false` and auto-commit: it \
         decodes each envelope with `onex` as the node does, does the work, then stores the \
         offset, one message after the other.\n\n\
         - PostgreSQL insert: `examples/postgres-writer` (its handler inserts the row, then \
         publishes `record_written`) against the same insert with the same client \
         (tokio-postgres); both timed by the rows' `written_at`.\n\
         - No-op: a node generated from the same contract whose handler returns at once \
         (`bench/node_throughput/handler.rs`), timed by its completed events' timestamps, \
         against decoding and storing the offset, timed in the consumer.\n\n\
         Commands per second from the first command done to the last, so start-up and the \
         group join are not counted (the node's start-up, process start to its first \
         command done, is beside); node and hand-written alternate who goes first; medians \
         of {} runs, the slowest and fastest run in brackets. The machine runs other work \
         too, and PostgreSQL syncs every insert's commit, so the rates with PostgreSQL vary \
         from run to run.\n",
        thousands(num(&s["commands"]).unwrap_or(0.0)),
        s["keys"],
        s["partitions"],
        s["node_max_in_flight_default"],
        s["runs"],
    );
    md.push_str(
        "| handler | generated node, commands/s | hand-written, commands/s | ratio | node start-up |\n\
         |---|---:|---:|---:|---:|\n",
    );
    // The median, then the slowest and fastest run.
    let spread = |v: &Value| {
        format!(
            "{} ({}–{})",
            per_second(&v["median"]),
            per_second(&v["min"]),
            per_second(&v["max"])
        )
    };
    for (key, label, what) in [
        ("postgres", "PostgreSQL insert", NODE_POSTGRES),
        ("noop", "no-op", NODE_NOOP),
    ] {
        let node = num(&n[key]["node"]["median"]);
        let hand = num(&n[key]["hand_written"]["median"]);
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} ms |",
            spread(&n[key]["node"]),
            spread(&n[key]["hand_written"]),
            ratio(node, hand),
            ms(&n[key]["node_startup_ms"]["median"]),
        );
        targets.push(target(
            what,
            node.zip(hand).map(|(a, b)| a >= 0.8 * b),
            format!(
                "{} against {} commands/s ({})",
                per_second(&n[key]["node"]["median"]),
                per_second(&n[key]["hand_written"]["median"]),
                ratio(node, hand)
            ),
        ));
    }
    md.push('\n');
}

fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let r = &args.results;
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str("What users of cargo-onex wait for: the generation pipeline, onex-build in a build script against prost-build, the code it generates, the Kafka bus against raw rdkafka, the in-memory bus, request/reply round trips, workflows through generated nodes, the generator's own events on the bus, and generated nodes against a hand-written consumer. `bench/run` measures everything in one go and rewrites this file; every number below comes from its last run on the machine described here.\n\n");
    if let Some(s) = read_json(&r.join("settings.json")) {
        let _ = writeln!(
            md,
            "Last run: {}, commit `{}`, {} for {}.\n",
            s["date"].as_str().unwrap_or("?"),
            s["commit"].as_str().unwrap_or("?"),
            s["duration"].as_str().unwrap_or("?"),
            s["scope"].as_str().unwrap_or("every part"),
        );
    }
    md.push_str("## Machine\n\n| | |\n|---|---|\n");
    for (k, v) in machine() {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    md.push_str("\nEverything is built in release, except build scripts (cargo compiles them unoptimized, as users get them). The machine also runs other work, so small differences are noise; each figure is a median of several runs.\n\n");

    let mut targets = Vec::new();
    let mut body = String::new();
    pipeline_section(r, &mut body, &mut targets);
    codegen_section(r, &mut body, &mut targets);
    kafka_section(r, &mut body, &mut targets);
    memory_section(r, &mut body, &mut targets);
    peak_section(r, &mut body);
    request_reply_section(r, &mut body, &mut targets);
    workflow_section(r, &mut body, &mut targets);
    generator_section(r, &mut body, &mut targets);
    node_throughput_section(r, &mut body, &mut targets);

    md.push_str("## Targets\n\n");
    for t in &targets {
        let verdict = match t.verdict {
            Verdict::Met => "**met**",
            Verdict::Missed => "**missed**",
            Verdict::NotMeasured => "not measured yet",
            Verdict::Shown => "measured, no numeric target",
        };
        let _ = writeln!(md, "- {}: {verdict} ({})", t.what, t.number);
    }
    md.push('\n');
    md.push_str(&body);
    if let Some(notes) = args
        .notes
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        md.push_str(notes.trim_end());
        md.push('\n');
    }
    md.push_str("\n## Reproducing\n\n`bench/run` (bash) builds the benchmarks in release, installs what is missing (`protobuf-compiler`, `time`, the Tansu broker), starts its own broker on loopback, runs every part and rewrites this file. `BENCH_QUICK=1 bench/run` does fewer runs for a quick look. The criterion benches also run alone: `cargo bench -p onex-bench`.\n");
    std::fs::write(&args.out, md)?;
    Ok(())
}
