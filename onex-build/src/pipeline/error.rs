//! Pipeline errors: which stage, which contract, where, and how to fix it.

use std::path::PathBuf;

use crate::contract::Diagnostics;

/// A stage failed for a contract.
#[derive(Debug, thiserror::Error)]
#[error("{stage} failed for {}:\n{error}", contract.display())]
pub struct PipelineError {
    /// The stage that failed.
    pub stage: super::Stage,
    /// The contract being generated.
    pub contract: PathBuf,
    /// What went wrong, where, and the fix (shown in this error's message,
    /// so not chained as its source).
    pub error: Box<StageError>,
}

/// What went wrong inside a stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The contract is invalid (stages 1 to 3).
    #[error("{0}")]
    Contract(Diagnostics),

    /// The shared renderer failed (stages 4 and 4.5).
    #[error(
        "{0}\n   = help: this is a bug in cargo-onex's templates; please report it with the contract"
    )]
    Render(crate::Error),

    /// A template failed to render (stages 4 and 4.5).
    #[error(
        "template `{template}` failed to render: {message}\n   = help: this is a bug in cargo-onex's templates; please report it with the contract"
    )]
    Template {
        /// The template name.
        template: String,
        /// Tera's message, with its causes.
        message: String,
    },

    /// A generated Rust file does not parse (stage 5).
    #[error(
        "generated file `{file}` (from template `{template}`) does not parse at line {line}, column {column}: {message}\n   = help: this is a bug in cargo-onex's templates; check the contract's names, then report it"
    )]
    Syntax {
        /// The file inside the node crate.
        file: String,
        /// The template it came from.
        template: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// syn's message.
        message: String,
    },

    /// A file of the node crate is the user's and would be overwritten.
    #[error(
        "refusing to overwrite `{}`: it has no `@generated` marker, so it is yours\n   = help: move or delete the file to let cargo onex regenerate it, or choose another output directory with --out",
        path.display()
    )]
    UserFile {
        /// The file.
        path: PathBuf,
    },

    /// A path would leave the output directory.
    #[error(
        "refusing to write `{}`: it is outside the output directory `{}`\n   = help: the node name must be a plain snake_case name, and the output directory must not contain symbolic links into other places",
        path.display(),
        out_dir.display()
    )]
    OutsideOutput {
        /// The rejected path.
        path: PathBuf,
        /// The output directory.
        out_dir: PathBuf,
    },

    /// Reading or writing a file failed.
    #[error("{action} `{}`: {source}\n   = help: check that the directory exists and is writable", path.display())]
    Io {
        /// What was being done, e.g. `cannot write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// `cargo check` of the generated crate failed (stage 7).
    #[error(
        "`cargo check` of `{}` failed:\n{output}\n   = help: fix the errors in src/handler.rs (yours) or report a generator bug if they are in a generated file",
        manifest.display()
    )]
    Compile {
        /// The node crate's `Cargo.toml`.
        manifest: PathBuf,
        /// cargo's output.
        output: String,
    },
}

impl StageError {
    /// An I/O error with the action and file.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StageError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A stable code for what went wrong: the first diagnostic's gate id
    /// (`SV-003`, `PARSE`, ...) for an invalid contract, else the kind of
    /// error (`RENDER`, `SYNTAX`, `USER-FILE`, `OUTSIDE-OUTPUT`, `IO`,
    /// `COMPILE`).
    pub fn code(&self) -> &'static str {
        match self {
            StageError::Contract(diagnostics) => {
                diagnostics.0.first().map_or("CONTRACT", |d| d.code)
            }
            StageError::Render(_) | StageError::Template { .. } => "RENDER",
            StageError::Syntax { .. } => "SYNTAX",
            StageError::UserFile { .. } => "USER-FILE",
            StageError::OutsideOutput { .. } => "OUTSIDE-OUTPUT",
            StageError::Io { .. } => "IO",
            StageError::Compile { .. } => "COMPILE",
        }
    }

    /// The first problem's message alone, without the help.
    pub fn summary(&self) -> String {
        match self {
            StageError::Contract(diagnostics) => diagnostics
                .0
                .first()
                .map_or_else(|| diagnostics.to_string(), |d| d.message.clone()),
            other => other
                .to_string()
                .split("\n   = help: ")
                .next()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// Where the first problem is: `file:line:column` (and the field path),
    /// when known.
    pub fn location(&self) -> Option<String> {
        let StageError::Contract(diagnostics) = self else {
            return None;
        };
        let d = diagnostics.0.first()?;
        let mut at = d.file.display().to_string();
        if let Some(line) = d.line {
            at.push_str(&format!(":{line}"));
            if let Some(column) = d.column {
                at.push_str(&format!(":{column}"));
            }
        }
        if !d.field_path.is_empty() {
            at.push_str(&format!(" ({})", d.field_path));
        }
        Some(at)
    }

    /// What the user can do about it, most likely fix first: the help of
    /// every diagnostic for an invalid contract, else the error's own help.
    pub fn suggestions(&self) -> Vec<String> {
        match self {
            StageError::Contract(diagnostics) => {
                let mut out: Vec<String> = Vec::new();
                for help in diagnostics.0.iter().filter_map(|d| d.help.clone()) {
                    if !out.contains(&help) {
                        out.push(help);
                    }
                }
                if out.is_empty() {
                    out.push(
                        "fix the contract where the message points, then run again".to_owned(),
                    );
                }
                out
            }
            other => other
                .to_string()
                .split("\n   = help: ")
                .skip(1)
                .map(|help| help.trim().to_owned())
                .collect(),
        }
    }
}
