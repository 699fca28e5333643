//! The error type of onex-build.

use std::path::PathBuf;

use crate::contract::Diagnostics;

/// Everything that can go wrong while compiling contracts.
///
/// `Display` is the readable report a build script prints: which contract,
/// where, what, and how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One or more contracts are invalid (parse, validation or build-contract
    /// problems), each with its file, location and a fix.
    #[error("{0}")]
    Contract(Diagnostics),

    /// A contract folder could not be listed.
    #[error("cannot read the contract folder `{}`: {source}\n   = help: check the path given to `contracts(...)`; relative paths are relative to the crate's root", path.display())]
    ReadFolder {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// No contract was given, or the folders hold no `*.yaml` / `*.yml`.
    #[error("no contracts to compile{}\n   = help: call `contract(\"path/to/node.yaml\")` or `contracts(\"folder\")` on the builder", folders_note(.folders))]
    NoContracts {
        /// The folders that were searched.
        folders: Vec<PathBuf>,
    },

    /// Two contracts declare the same node name, so they would write the
    /// same file.
    #[error("the contracts `{}` and `{}` both declare the node `{name}`\n   = help: node names must be unique: each names its generated file `{name}.rs`", first.display(), second.display())]
    DuplicateNode {
        /// The node name.
        name: String,
        /// The first contract.
        first: PathBuf,
        /// The second contract.
        second: PathBuf,
    },

    /// A builder setting is invalid (e.g. an `extern_type` that is not a
    /// Rust type).
    #[error("invalid `{setting}` setting `{value}`: {message}")]
    Setting {
        /// The builder method.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        message: String,
    },

    /// A template failed to render. This is a bug in a template.
    #[error("template `{template}` failed to render for the contract `{}`: {message}", contract.display())]
    Template {
        /// The template's name.
        template: String,
        /// The contract being rendered.
        contract: PathBuf,
        /// Tera's error, with its causes.
        message: String,
    },

    /// A template rendered text that is not valid Rust. Nothing was written.
    #[error("template `{template}` produced invalid Rust for the contract `{}` at line {line}, column {column}: {message}\n   = note: nothing was written\n   = help: check the builder's `type_attribute`, `field_attribute` and `extern_type` values; otherwise this is a bug in onex-build\n   = rendered line: {snippet}", contract.display())]
    InvalidRust {
        /// The template's name.
        template: String,
        /// The contract being rendered.
        contract: PathBuf,
        /// 1-based line in the rendered text.
        line: usize,
        /// 1-based column in the rendered text.
        column: usize,
        /// syn's message.
        message: String,
        /// The offending rendered line.
        snippet: String,
    },

    /// `OUT_DIR` is not set and no `out_dir` was given.
    #[error(
        "the OUT_DIR environment variable is not set\n   = help: call onex-build from a build script (build.rs), or set the output folder with `out_dir(...)`"
    )]
    OutDir,

    /// A generated file could not be written.
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn folders_note(folders: &[PathBuf]) -> String {
    if folders.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = folders
            .iter()
            .map(|f| format!("`{}`", f.display()))
            .collect();
        format!(": no *.yaml or *.yml files in {}", list.join(", "))
    }
}

impl From<Diagnostics> for Error {
    fn from(d: Diagnostics) -> Self {
        Error::Contract(d)
    }
}

impl From<crate::contract::Diagnostic> for Error {
    fn from(d: crate::contract::Diagnostic) -> Self {
        Error::Contract(d.into())
    }
}
