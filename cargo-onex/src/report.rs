//! What `cargo onex` prints, and how: cargo's layout (right-aligned status
//! words on stderr, `error[CODE]:` reports with the source line), cargo's
//! verbosity levels and cargo's colour rules.

use std::{
    io::{IsTerminal as _, Write as _},
    path::{Component, Path, PathBuf},
    time::Duration,
};

use onex_build::{
    contract::Diagnostic,
    pipeline::{NodeOutcome, PipelineError, PipelineReport, StageError},
};

use crate::args::ColorChoice;

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Errors only (`-q`).
    Quiet,
    /// One line per node crate and a summary.
    Normal,
    /// Also every file, every gate and the stage table (`-v`).
    Verbose,
}

const BOLD: &str = "\x1b[1m";
const GREEN: &str = "\x1b[1m\x1b[32m";
const YELLOW: &str = "\x1b[1m\x1b[33m";
const RED: &str = "\x1b[1m\x1b[31m";
const CYAN: &str = "\x1b[1m\x1b[36m";
const RESET: &str = "\x1b[0m";

/// Where messages go: stderr, as cargo prints its status there, so that
/// stdout stays free for what a script would read.
#[derive(Debug, Clone)]
pub struct Shell {
    /// How much to print.
    pub verbosity: Verbosity,
    /// Whether to print ANSI colours.
    pub color: bool,
    /// The directory paths are shown relative to.
    cwd: PathBuf,
    /// Contract paths as the user typed them, by the path they resolve to.
    written: Vec<(PathBuf, String)>,
}

impl Shell {
    /// A shell printing at `verbosity`, coloured by `choice` and the
    /// environment.
    pub fn new(verbosity: Verbosity, choice: ColorChoice, cwd: PathBuf) -> Self {
        Shell {
            verbosity,
            color: use_color(
                choice,
                |name| std::env::var_os(name),
                || std::io::stderr().is_terminal(),
            ),
            cwd,
            written: Vec::new(),
        }
    }

    /// Remembers that `resolved` was given on the command line as `typed`,
    /// so that reports show it as typed.
    pub fn remember(&mut self, resolved: PathBuf, typed: String) {
        self.written.push((resolved, typed));
    }

    /// A path as the user would write it: as typed on the command line,
    /// else relative to the current directory.
    pub fn path(&self, path: &Path) -> String {
        if let Some((_, typed)) = self.written.iter().find(|(p, _)| p == path) {
            return typed.clone();
        }
        relative(&self.cwd, path).display().to_string()
    }

    fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }

    fn eprint(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
    }

    /// A status line: the word right-aligned in twelve columns, as cargo's
    /// `   Compiling` and `    Finished`.
    pub fn status(&self, word: &str, message: &str) {
        self.status_in(GREEN, word, message, Verbosity::Normal);
    }

    /// A status line printed only with `-v`.
    pub fn verbose_status(&self, word: &str, message: &str) {
        self.status_in(CYAN, word, message, Verbosity::Verbose);
    }

    fn status_in(&self, style: &str, word: &str, message: &str, at_least: Verbosity) {
        if self.verbosity >= at_least {
            let word = format!("{word:>12}");
            self.eprint(&format!("{} {message}", self.paint(style, &word)));
        }
    }

    /// Text printed at `-v` (or when `forced`), as it is.
    pub fn verbose_text(&self, text: &str, forced: bool) {
        if self.verbosity == Verbosity::Verbose || forced && self.verbosity != Verbosity::Quiet {
            self.eprint(text);
        }
    }

    /// `error: ...`, always.
    pub fn error(&self, message: &str) {
        self.eprint(&format!(
            "{}{}",
            self.paint(RED, "error"),
            self.bold(&format!(": {message}"))
        ));
    }

    /// `warning: ...`, unless `-q`.
    pub fn warning(&self, message: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.eprint(&format!(
                "{}{}",
                self.paint(YELLOW, "warning"),
                self.bold(&format!(": {message}"))
            ));
        }
    }

    /// `help: ...` under an error, always.
    pub fn help(&self, message: &str) {
        self.eprint(&format!("{}: {message}", self.paint(CYAN, "help")));
    }

    fn bold(&self, text: &str) -> String {
        self.paint(BOLD, text)
    }

    /// One contract diagnostic: the header, the source line with a caret,
    /// the field path and the fix; the contract's path as the user wrote it.
    pub fn diagnostic(&self, d: &Diagnostic) {
        let source = d
            .line
            .and_then(|_| std::fs::read(&d.file).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        let rendered = d.render(source.as_deref(), &self.path(&d.file), self.color);
        self.eprint(&format!("{rendered}\n"));
    }

    /// A failed stage: its diagnostics, one report each, then one line that
    /// names the stage and the contract.
    pub fn pipeline_error(&self, error: &PipelineError) {
        let contract = self.path(&error.contract);
        match error.error.as_ref() {
            StageError::Contract(diagnostics) => {
                for d in diagnostics {
                    self.diagnostic(d);
                }
                let n = diagnostics.len();
                self.error(&format!(
                    "{} failed for `{contract}` ({n} error{})",
                    error.stage,
                    if n == 1 { "" } else { "s" }
                ));
            }
            other => {
                let text = other.to_string();
                let text = text.replace(&format!("{}/", self.cwd.display()), "");
                self.error(&format!("{} failed for `{contract}`: {text}", error.stage));
            }
        }
    }

    /// One line per contract (and, with `-v`, its files or gates), then the
    /// summary; the stage table with `--timings` or `-v`.
    pub fn report(&self, report: &PipelineReport, timings: bool) {
        let summary = self.report_contracts(report);
        self.status("Finished", &summary);
        self.verbose_text(&format!("\n{}", report.timing_table()), timings);
    }

    /// The per-contract lines of [`Shell::report`]; returns the summary.
    pub fn report_contracts(&self, report: &PipelineReport) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        let mut count = |what: &'static str| match counts.iter_mut().find(|(w, _)| *w == what) {
            Some((_, n)) => *n += 1,
            None => counts.push((what, 1)),
        };
        let mut checked = false;
        for contract in &report.contracts {
            let node = contract
                .node_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dir = self.path(&contract.node_dir);
            let source = self.path(&contract.contract);
            match &contract.outcome {
                NodeOutcome::Written { files } => {
                    count("generated");
                    self.status("Generated", &format!("{node} ({dir}) from {source}"));
                    for file in files {
                        self.verbose_status("Wrote", &format!("{dir}/{file}"));
                    }
                }
                NodeOutcome::UpToDate => {
                    count("fresh");
                    self.status("Fresh", &format!("{node} ({dir})"));
                }
                NodeOutcome::Unchanged => {
                    count("unchanged");
                    self.status("Unchanged", &format!("{node} ({dir})"));
                }
                NodeOutcome::Stale { files } => {
                    count("stale");
                    let n = files.len();
                    self.status_in(
                        YELLOW,
                        "Stale",
                        &format!("{node} ({dir}): {n} file{}", if n == 1 { "" } else { "s" }),
                        Verbosity::Normal,
                    );
                }
                NodeOutcome::Validated => {
                    checked = true;
                    count("valid");
                    let hash = contract.contract_hash.as_deref().unwrap_or("-");
                    self.status(
                        "Checked",
                        &format!("{source} ({node}, contract hash {hash})"),
                    );
                    for gate in &contract.gates {
                        self.verbose_status("Passed", &format!("{} {}", gate.id, gate.description));
                    }
                }
            }
            for warning in &contract.warnings {
                self.warning(&format!("{source}: {warning}"));
            }
        }
        let n = report.contracts.len();
        let what = if checked {
            format!("checking {n} contract{}", if n == 1 { "" } else { "s" })
        } else {
            format!("{n} node crate{}", if n == 1 { "" } else { "s" })
        };
        let detail = if checked {
            String::new()
        } else {
            let parts: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
            format!(" ({})", parts.join(", "))
        };
        format!("{what} in {}{detail}", seconds(report.total))
    }
}

/// `0.12s`, as cargo's `Finished` line.
fn seconds(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// Whether to colour, by cargo's rules: `--color always|never` decides;
/// `auto` follows `CARGO_TERM_COLOR` when set (cargo sets it for a
/// subcommand's children only when the user did), then colours a terminal
/// unless `NO_COLOR` is set to something (<https://no-color.org>) or `TERM`
/// is `dumb`.
pub fn use_color(
    choice: ColorChoice,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
    is_terminal: impl FnOnce() -> bool,
) -> bool {
    match choice {
        ColorChoice::Always => return true,
        ColorChoice::Never => return false,
        ColorChoice::Auto => {}
    }
    match env("CARGO_TERM_COLOR").as_deref().and_then(|v| v.to_str()) {
        Some("always") => return true,
        Some("never") => return false,
        _ => {}
    }
    if env("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if env("TERM").is_some_and(|v| v == "dumb") {
        return false;
    }
    is_terminal()
}

/// `path` relative to `base` when both are absolute (with `..` where
/// needed, as a user would type it), else `path` as it is.
pub fn relative(base: &Path, path: &Path) -> PathBuf {
    if let Ok(inside) = path.strip_prefix(base) {
        return if inside.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            inside.to_path_buf()
        };
    }
    if !base.is_absolute() || !path.is_absolute() {
        return path.to_path_buf();
    }
    let base: Vec<Component<'_>> = base.components().collect();
    let target: Vec<Component<'_>> = path.components().collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    // Only the root in common: the absolute path is the clearer one.
    if common <= 1 {
        return path.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..base.len() {
        out.push("..");
    }
    for part in &target[common..] {
        out.push(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<std::ffi::OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| std::ffi::OsString::from(v))
        }
    }

    #[test]
    fn colour_follows_the_flag_then_the_environment_then_the_terminal() {
        assert!(use_color(
            ColorChoice::Always,
            env(&[("NO_COLOR", "1")]),
            || false
        ));
        assert!(!use_color(ColorChoice::Never, env(&[]), || true));
        assert!(use_color(ColorChoice::Auto, env(&[]), || true));
        assert!(!use_color(ColorChoice::Auto, env(&[]), || false));
        assert!(!use_color(
            ColorChoice::Auto,
            env(&[("NO_COLOR", "1")]),
            || true
        ));
        // An empty NO_COLOR does not count, as no-color.org says.
        assert!(use_color(
            ColorChoice::Auto,
            env(&[("NO_COLOR", "")]),
            || true
        ));
        assert!(!use_color(
            ColorChoice::Auto,
            env(&[("TERM", "dumb")]),
            || true
        ));
        assert!(use_color(
            ColorChoice::Auto,
            env(&[("CARGO_TERM_COLOR", "always")]),
            || false
        ));
    }

    #[test]
    fn paths_are_shown_relative_to_the_current_directory() {
        let cwd = Path::new("/home/me/project");
        assert_eq!(
            relative(cwd, Path::new("/home/me/project/contracts/a.yaml")),
            Path::new("contracts/a.yaml")
        );
        assert_eq!(
            relative(cwd, Path::new("/home/me/other/a.yaml")),
            Path::new("../other/a.yaml")
        );
        assert_eq!(
            relative(cwd, Path::new("/etc/a.yaml")),
            Path::new("/etc/a.yaml")
        );
    }
}
