//! The build-script API: [`Builder`] and [`compile_contracts`].

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
};

use crate::{
    contract::Diagnostics,
    error::Error,
    pipeline::{
        StageError,
        build_contract::build_spec,
        generate::generate_module,
        parse::parse,
        post_validate::post_validate_file,
        pre_validate::{check_own, check_with},
        queue::map_in_order,
        refine::refine_file,
        write::write_if_changed,
    },
    spec::{NodeSpec, SpecOptions},
};

/// One generated module, not yet written.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedFile {
    /// The file name, `{node name}.rs`.
    pub file_name: String,
    /// The contract it was generated from.
    pub contract: PathBuf,
    /// The normalized contract the module was rendered from.
    pub spec: NodeSpec,
    /// The Rust source, starting with its `@generated` line: as the
    /// templates lay it out, or formatted by prettyplease with
    /// [`Builder::format`]`(true)`.
    pub content: String,
}

/// Compiles ONEX contracts into Rust modules, from a build script.
///
/// Every contract becomes one file, `{node name}.rs`, in `OUT_DIR`; include
/// it with `onex::include_contract!("{node name}")`. See the
/// [crate documentation](crate) for a complete example.
///
/// ```no_run
/// fn main() {
///     onex_build::Builder::new()
///         .contracts("contracts")
///         .type_attribute("postgres_writer.WriteRecordInput", "#[derive(Default)]")
///         .compile_or_exit();
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    out_dir: Option<PathBuf>,
    files: Vec<PathBuf>,
    folders: Vec<PathBuf>,
    /// Contracts compiled for their types alone, references unresolved.
    consumed: Vec<PathBuf>,
    /// Folders where consumed contracts are looked for.
    contract_path: Vec<PathBuf>,
    options: SpecOptions,
    emit_rerun_if_changed: bool,
    format: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A builder with no contracts, writing to `OUT_DIR`, referring to the
    /// runtime as `::onex`, printing `cargo:rerun-if-changed` lines, and
    /// writing the modules unformatted ([`Builder::format`]).
    pub fn new() -> Builder {
        Builder {
            out_dir: None,
            files: Vec::new(),
            folders: Vec::new(),
            consumed: Vec::new(),
            contract_path: Vec::new(),
            options: SpecOptions::default(),
            emit_rerun_if_changed: true,
            format: false,
        }
    }

    /// The folder the modules are written to. Default: the `OUT_DIR`
    /// environment variable cargo sets for build scripts.
    ///
    /// ```
    /// let mut builder = onex_build::Builder::new();
    /// builder.out_dir("target/onex-generated");
    /// ```
    pub fn out_dir(&mut self, path: impl AsRef<Path>) -> &mut Self {
        self.out_dir = Some(path.as_ref().to_owned());
        self
    }

    /// Adds one contract file. Relative paths are relative to the crate's
    /// root (where `Cargo.toml` is), as cargo runs build scripts there.
    ///
    /// ```
    /// let mut builder = onex_build::Builder::new();
    /// builder
    ///     .contract("contracts/postgres_writer.yaml")
    ///     .contract("contracts/pricing.yaml");
    /// ```
    pub fn contract(&mut self, path: impl AsRef<Path>) -> &mut Self {
        self.files.push(path.as_ref().to_owned());
        self
    }

    /// Adds every `*.yaml` and `*.yml` file of a folder (not its
    /// subfolders), in file-name order. The folder itself is watched too, so
    /// that a new contract triggers a rebuild.
    ///
    /// ```
    /// let mut builder = onex_build::Builder::new();
    /// builder.contracts("contracts");
    /// ```
    pub fn contracts(&mut self, folder: impl AsRef<Path>) -> &mut Self {
        self.folders.push(folder.as_ref().to_owned());
        self
    }

    /// Adds a folder to the contract search path: a contract's `consumes`
    /// entry that is not found relative to the contract's own folder is
    /// looked for in these folders, in the order given, by its path and
    /// then by its file name.
    ///
    /// ```
    /// let mut builder = onex_build::Builder::new();
    /// builder.contract("contracts/order_workflow.yaml").contract_path("shared-contracts");
    /// ```
    pub fn contract_path(&mut self, folder: impl AsRef<Path>) -> &mut Self {
        self.contract_path.push(folder.as_ref().to_owned());
        self
    }

    /// Adds a contract that another one consumes, compiled for its types and
    /// events only: its own `consumes` are not resolved (the contracts it
    /// consumes need not be at hand). A node crate compiles its copies of
    /// the contracts it consumes this way.
    ///
    /// ```
    /// let mut builder = onex_build::Builder::new();
    /// builder
    ///     .contract("contract.yaml")
    ///     .contract_path("consumed")
    ///     .consumed_contract("consumed/postgres_writer.yaml");
    /// ```
    pub fn consumed_contract(&mut self, path: impl AsRef<Path>) -> &mut Self {
        self.consumed.push(path.as_ref().to_owned());
        self
    }

    /// Adds an attribute to the generated types a path selects: `.` for
    /// every type, `{node}` for every type of one contract, `{node}.{Type}`
    /// for one named type or event struct. The attribute is written as
    /// given, after the generated derives.
    ///
    /// ```
    /// let mut builder = onex_build::Builder::new();
    /// builder
    ///     .type_attribute("postgres_writer.WriteRecordInput", "#[derive(Default)]")
    ///     .type_attribute(".", "#[non_exhaustive]");
    /// ```
    pub fn type_attribute(
        &mut self,
        path: impl AsRef<str>,
        attribute: impl AsRef<str>,
    ) -> &mut Self {
        self.options
            .type_attributes
            .push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Adds an attribute to the generated fields a path selects:
    /// `{node}.{Type}.{field}`, or any prefix of it (`.` for every field).
    ///
    /// ```
    /// let mut builder = onex_build::Builder::new();
    /// builder.field_attribute(
    ///     "postgres_writer.WriteRecordInput.payload",
    ///     "#[serde(default)]",
    /// );
    /// ```
    pub fn field_attribute(
        &mut self,
        path: impl AsRef<str>,
        attribute: impl AsRef<str>,
    ) -> &mut Self {
        self.options
            .field_attributes
            .push((path.as_ref().to_owned(), attribute.as_ref().to_owned()));
        self
    }

    /// Maps a contract type, `{node}.{Type}`, to an existing Rust type: the
    /// type is not generated and every field of that type uses `rust_path`.
    /// The Rust type must serialize like the contract type.
    ///
    /// ```
    /// let mut builder = onex_build::Builder::new();
    /// builder.extern_type("postgres_writer.WriteStatus", "crate::model::WriteStatus");
    /// ```
    pub fn extern_type(
        &mut self,
        contract_type: impl AsRef<str>,
        rust_path: impl AsRef<str>,
    ) -> &mut Self {
        self.options.extern_types.insert(
            contract_type.as_ref().trim_start_matches('.').to_owned(),
            rust_path.as_ref().to_owned(),
        );
        self
    }

    /// The path of the runtime crate in generated code. Default `::onex`;
    /// set it when the crate is renamed in `Cargo.toml` or re-exported.
    ///
    /// ```
    /// let mut builder = onex_build::Builder::new();
    /// builder.runtime_path("::my_platform::onex");
    /// ```
    pub fn runtime_path(&mut self, path: impl AsRef<str>) -> &mut Self {
        self.options.runtime_path = path.as_ref().to_owned();
        self
    }

    /// Whether [`Builder::compile`] prints `cargo:rerun-if-changed` for
    /// every contract file and folder. Default `true`; without these lines
    /// cargo would rerun the build script whenever any file of the package
    /// changes.
    ///
    /// ```
    /// let mut builder = onex_build::Builder::new();
    /// builder.emit_rerun_if_changed(false);
    /// ```
    pub fn emit_rerun_if_changed(&mut self, enabled: bool) -> &mut Self {
        self.emit_rerun_if_changed = enabled;
        self
    }

    /// Whether every module is parsed with syn and printed with prettyplease
    /// before it is written. Default `false`: the build script writes the
    /// text the templates render (indented, long lines unbroken), which the
    /// compiler reads as well as any layout, and nobody reads in `OUT_DIR`.
    /// That keeps the build script at about prost-build's time: cargo
    /// compiles build scripts and their dependencies unoptimized, where
    /// parsing and printing were most of onex-build's time (the figures are
    /// in BENCHMARKS.md).
    ///
    /// `true` parses and prints each module: it then also passes a syntax
    /// check whose error names the template and the contract (without it a
    /// template bug shows up as a compiler error in the included file), and
    /// reads like hand-formatted code. Set it to read or debug the
    /// generated code; `cargo onex generate` always formats what it writes.
    ///
    /// ```
    /// let mut builder = onex_build::Builder::new();
    /// builder.contracts("contracts").format(true);
    /// ```
    pub fn format(&mut self, enabled: bool) -> &mut Self {
        self.format = enabled;
        self
    }

    /// The contract files this builder compiles: the files given with
    /// [`Builder::contract`], then those given with
    /// [`Builder::consumed_contract`], then the files of each folder given
    /// with [`Builder::contracts`] in name order, without duplicates.
    pub fn contract_files(&self) -> Result<Vec<PathBuf>, Error> {
        let mut out: Vec<PathBuf> = Vec::new();
        for file in &self.files {
            if !out.contains(file) {
                out.push(file.clone());
            }
        }
        for file in &self.consumed {
            if !out.contains(file) {
                out.push(file.clone());
            }
        }
        for folder in &self.folders {
            let read = |source| Error::ReadFolder {
                path: folder.clone(),
                source,
            };
            let mut found = Vec::new();
            for entry in std::fs::read_dir(folder).map_err(read)? {
                let path = entry.map_err(read)?.path();
                let is_contract = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
                if is_contract && path.is_file() {
                    found.push(path);
                }
            }
            found.sort();
            for file in found {
                if !out.contains(&file) {
                    out.push(file);
                }
            }
        }
        Ok(out)
    }

    /// Loads, validates and renders every contract, and returns the
    /// modules without writing anything, ordered by node name. Every invalid
    /// contract is reported, not just the first.
    ///
    /// Each contract goes through the stages of `cargo onex generate` with
    /// one file, its module: parse, pre-validate, build contract and
    /// generate, then, with [`Builder::format`], post-validate and refine.
    pub fn generate(&self) -> Result<Vec<GeneratedFile>, Error> {
        self.check_settings()?;
        let files = self.contract_files()?;
        if files.is_empty() {
            return Err(Error::NoContracts {
                folders: self.folders.clone(),
            });
        }
        // Contracts are independent of each other: they are prepared on the
        // pipeline's threads, and their results read in the order of the
        // input.
        let prepared = map_in_order(&files, |file| self.prepare(file));
        let mut diagnostics = Vec::new();
        let mut modules: BTreeMap<String, (PathBuf, NodeSpec, Result<String, Error>)> =
            BTreeMap::new();
        for (file, result) in files.iter().zip(prepared) {
            match result {
                Ok((spec, module)) => {
                    if let Some((first, ..)) = modules.get(&spec.name) {
                        return Err(Error::DuplicateNode {
                            name: spec.name.clone(),
                            first: first.clone(),
                            second: file.clone(),
                        });
                    }
                    modules.insert(spec.name.clone(), (file.clone(), spec, module));
                }
                Err(Error::Contract(Diagnostics(ds))) => diagnostics.extend(ds),
                Err(other) => return Err(other),
            }
        }
        if !diagnostics.is_empty() {
            return Err(Error::Contract(Diagnostics(diagnostics)));
        }
        modules
            .into_values()
            .map(|(contract, spec, content)| {
                Ok(GeneratedFile {
                    file_name: format!("{}.rs", spec.name),
                    contract,
                    spec,
                    content: content?,
                })
            })
            .collect()
    }

    /// Stages 1 to 3 of one contract, then its module: the spec, and the
    /// module's text or why it could not be rendered.
    fn prepare(&self, file: &Path) -> Result<(NodeSpec, Result<String, Error>), Error> {
        let stage = |e| from_stage(e, file, None);
        let loaded = parse(file).map_err(stage)?;
        // A consumed contract's references are its producer's business.
        if self.consumed_only(file) {
            check_own(&loaded).map_err(stage)?;
        } else {
            check_with(&loaded, &self.contract_path).map_err(stage)?;
        }
        let spec = build_spec(&loaded, &self.options).map_err(stage)?;
        let module = self.module(&spec, file);
        Ok((spec, module))
    }

    /// Stage 4 with the module alone; with [`Builder::format`], stages 5
    /// and 5.5 too.
    fn module(&self, spec: &NodeSpec, contract: &Path) -> Result<String, Error> {
        let rendered = generate_module(spec).map_err(|e| from_stage(e, contract, None))?;
        if !self.format {
            return Ok(rendered.text);
        }
        // Kept to quote the line that does not parse.
        let text = rendered.text.clone();
        let parsed =
            post_validate_file(rendered).map_err(|e| from_stage(e, contract, Some(&text)))?;
        Ok(refine_file(parsed).contents)
    }

    /// Whether `file` was given as a consumed contract only.
    fn consumed_only(&self, file: &Path) -> bool {
        self.consumed.iter().any(|c| c == file) && !self.files.iter().any(|f| f == file)
    }

    /// Generates every module and writes it to the output folder, only when
    /// its content changed (so that dependent code is not rebuilt for
    /// nothing). Prints `cargo:rerun-if-changed` for every contract file and
    /// folder first, unless disabled.
    pub fn compile(&self) -> Result<(), Error> {
        if self.emit_rerun_if_changed {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for folder in &self.folders {
                let _ = writeln!(out, "cargo:rerun-if-changed={}", folder.display());
            }
            for file in self.contract_files()? {
                let _ = writeln!(out, "cargo:rerun-if-changed={}", file.display());
            }
            // The gates read the contracts a contract consumes: a change
            // there must run them again.
            for folder in &self.contract_path {
                let _ = writeln!(out, "cargo:rerun-if-changed={}", folder.display());
            }
            for file in self.consumed_beside_contracts()? {
                let _ = writeln!(out, "cargo:rerun-if-changed={}", file.display());
            }
        }
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(Error::OutDir)?,
        };
        let files = self.generate()?;
        std::fs::create_dir_all(&out_dir).map_err(|source| Error::Write {
            path: out_dir.clone(),
            source,
        })?;
        // Stage 6, write: only what changed.
        for file in &files {
            let target = out_dir.join(&file.file_name);
            write_if_changed(&target, file.content.as_bytes())
                .map_err(|e| from_stage(e, &file.contract, None))?;
        }
        Ok(())
    }

    /// [`Builder::compile`] for build scripts: on error, prints one readable
    /// report to stderr and exits with status 1, without a panic backtrace.
    ///
    /// ```no_run
    /// // build.rs
    /// fn main() {
    ///     onex_build::Builder::new().contracts("contracts").compile_or_exit();
    /// }
    /// ```
    ///
    /// The report is plain text (cargo shows a build script's output as it
    /// is, without colours) in rustc's layout: each contract error with its
    /// source line and a caret under the value, then one summary line.
    pub fn compile_or_exit(&self) {
        if let Err(e) = self.compile() {
            eprintln!("{}", exit_report(&e));
            std::process::exit(1);
        }
    }

    /// The contracts that the compiled contracts consume and that lie
    /// beside them (the search path's folders are watched whole).
    fn consumed_beside_contracts(&self) -> Result<Vec<PathBuf>, Error> {
        let mut out = Vec::new();
        for file in self.contract_files()? {
            if self.consumed_only(&file) {
                continue;
            }
            let Ok(loaded) = parse(&file) else {
                continue;
            };
            let base = file.parent().unwrap_or(Path::new(""));
            for consumed in &loaded.contract.consumes {
                let path = base.join(&consumed.contract);
                if path.is_file() && !out.contains(&path) {
                    out.push(path);
                }
            }
        }
        Ok(out)
    }

    fn check_settings(&self) -> Result<(), Error> {
        let setting = |setting, value: &str, message: String| Error::Setting {
            setting,
            value: value.to_owned(),
            message,
        };
        let runtime = &self.options.runtime_path;
        if syn::parse_str::<syn::Path>(runtime).is_err() {
            return Err(setting(
                "runtime_path",
                runtime,
                "not a Rust path; write it like `::onex`".to_owned(),
            ));
        }
        for (contract_type, rust) in &self.options.extern_types {
            if syn::parse_str::<syn::Type>(rust).is_err() {
                return Err(setting(
                    "extern_type",
                    rust,
                    format!("the Rust type for `{contract_type}` is not a Rust type"),
                ));
            }
        }
        for (name, list) in [
            ("type_attribute", &self.options.type_attributes),
            ("field_attribute", &self.options.field_attributes),
        ] {
            for (_, attr) in list {
                let parsed = syn::parse::Parser::parse_str(syn::Attribute::parse_outer, attr);
                if !matches!(parsed, Ok(ref attrs) if !attrs.is_empty()) {
                    return Err(setting(
                        name,
                        attr,
                        "not an outer attribute; write it like `#[derive(Hash)]`".to_owned(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What [`Builder::compile_or_exit`] prints for `e`.
fn exit_report(e: &Error) -> String {
    match e {
        Error::Contract(diagnostics) => {
            let n = diagnostics.len();
            format!(
                "{diagnostics}\n\nerror: onex-build could not compile the contracts due to {n} previous error{}",
                if n == 1 { "" } else { "s" }
            )
        }
        other => format!("error: onex-build could not compile the contracts: {other}"),
    }
}

/// Compiles every contract of `folder` into `OUT_DIR`, with the default
/// settings; the common case of [`Builder`].
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), onex_build::Error> {
///     onex_build::compile_contracts("contracts")
/// }
/// ```
pub fn compile_contracts(folder: impl AsRef<Path>) -> Result<(), Error> {
    Builder::new().contracts(folder).compile()
}

/// The builder's error for a stage's: the same report, naming the
/// contract; `source` is the rendered text, to quote a line that does not
/// parse.
fn from_stage(e: StageError, contract: &Path, source: Option<&str>) -> Error {
    match e {
        StageError::Contract(diagnostics) => Error::Contract(diagnostics),
        StageError::Render(e) => with_contract(e, contract),
        StageError::Template { template, message } => Error::Template {
            template,
            contract: contract.to_owned(),
            message,
        },
        StageError::Syntax {
            template,
            line,
            column,
            message,
            ..
        } => Error::InvalidRust {
            template,
            contract: contract.to_owned(),
            line,
            column,
            message,
            snippet: source
                .and_then(|text| text.lines().nth(line.saturating_sub(1)))
                .unwrap_or("")
                .trim()
                .to_owned(),
        },
        StageError::Io { path, source, .. } => Error::Write { path, source },
        // Stages a build script does not run (the node crate's write and
        // compile check).
        other @ (StageError::UserFile { .. }
        | StageError::OutsideOutput { .. }
        | StageError::Compile { .. }) => Error::Write {
            path: contract.to_owned(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

fn with_contract(e: Error, contract: &Path) -> Error {
    match e {
        Error::InvalidRust {
            template,
            line,
            column,
            message,
            snippet,
            ..
        } => Error::InvalidRust {
            template,
            contract: contract.to_owned(),
            line,
            column,
            message,
            snippet,
        },
        Error::Template {
            template, message, ..
        } => Error::Template {
            template,
            contract: contract.to_owned(),
            message,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::render;

    const CONTRACT: &str = "\
contract_version: 1
node: { name: tiny, node_type: compute, version: 1.0.0, domain: test }
types:
  - name: Input
    fields: [{ name: value, type: u64 }]
  - name: Output
    fields: [{ name: doubled, type: u64 }, { name: kind, type: Kind }]
  - name: Kind
    variants: [{ name: small }, { name: large }]
operations:
  - { name: double, input: Input, output: Output }
";

    fn folder_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    #[test]
    fn writes_only_what_changed() {
        let contracts = folder_with(&[("tiny.yaml", CONTRACT)]);
        let out = tempfile::tempdir().expect("temp dir");
        let mut builder = Builder::new();
        builder
            .contracts(contracts.path())
            .out_dir(out.path())
            .emit_rerun_if_changed(false);
        builder.compile().expect("compiles");
        let file = out.path().join("tiny.rs");
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(old))
            .expect("set mtime");
        builder.compile().expect("compiles again");
        let mtime = std::fs::metadata(&file).and_then(|m| m.modified());
        assert_eq!(
            mtime.expect("mtime"),
            old,
            "an unchanged module was rewritten"
        );
        std::fs::write(&file, "stale").expect("write");
        builder.compile().expect("compiles a third time");
        let content = std::fs::read_to_string(&file).expect("read");
        assert!(content.starts_with("// @generated by onex-build from tiny.yaml."));
    }

    #[test]
    fn stage_errors_keep_the_builders_reports() {
        let text = "// @generated by onex-build from tiny.yaml. Do not edit.\n\npub struct {\n";
        let syntax = StageError::Syntax {
            file: "tiny.rs".to_owned(),
            template: render::MODULE_TEMPLATE.to_owned(),
            line: 3,
            column: 12,
            message: "expected identifier".to_owned(),
        };
        let err = from_stage(syntax, Path::new("contracts/tiny.yaml"), Some(text));
        assert!(
            matches!(&err, Error::InvalidRust { line: 3, snippet, .. } if snippet == "pub struct {"),
            "{err:?}"
        );
        assert!(err.to_string().contains("`contracts/tiny.yaml`"), "{err}");

        let io = StageError::io(
            "cannot write",
            "out/tiny.rs",
            std::io::Error::other("disk full"),
        );
        let err = from_stage(io, Path::new("contracts/tiny.yaml"), None);
        assert_eq!(err.to_string(), "cannot write `out/tiny.rs`: disk full");
    }

    #[test]
    fn folders_are_listed_in_name_order_with_both_extensions() {
        let contracts = folder_with(&[
            ("b.yml", ""),
            ("a.yaml", ""),
            ("notes.txt", ""),
            ("c.YAML.bak", ""),
        ]);
        let mut builder = Builder::new();
        builder.contracts(contracts.path());
        let files = builder.contract_files().expect("lists");
        let names: Vec<_> = files
            .iter()
            .filter_map(|f| f.file_name()?.to_str())
            .collect();
        assert_eq!(names, ["a.yaml", "b.yml"]);
    }

    #[test]
    fn extension_points_reach_the_generated_code() {
        let contracts = folder_with(&[("tiny.yaml", CONTRACT)]);
        let mut builder = Builder::new();
        builder
            .contracts(contracts.path())
            .type_attribute("tiny.Input", "#[derive(Hash)]")
            .type_attribute(".", "#[non_exhaustive]")
            .field_attribute("tiny.Output.doubled", "#[serde(default)]")
            .extern_type("tiny.Kind", "crate::model::Kind")
            .runtime_path("::platform::onex");
        let files = builder.generate().expect("generates");
        let code = &files[0].content;
        assert!(
            code.contains("#[derive(Hash)]\n#[non_exhaustive]\npub struct Input"),
            "{code}"
        );
        assert!(
            code.contains("#[serde(default)]\n    pub doubled: u64"),
            "{code}"
        );
        assert!(code.contains("pub kind: crate::model::Kind"), "{code}");
        assert!(
            !code.contains("pub enum Kind"),
            "an extern type is not generated"
        );
        assert!(
            code.contains("::platform::onex::operation_started!("),
            "{code}"
        );
        assert!(
            code.contains("#[non_exhaustive]\nDoubleStarted(\"compute.double.started\""),
            "{code}"
        );
        assert!(
            !code.replace("::platform::onex::", "").contains("::onex::"),
            "every runtime path uses the setting"
        );
    }

    #[test]
    fn unformatted_modules_hold_the_same_code() {
        let contracts = folder_with(&[("tiny.yaml", CONTRACT)]);
        let mut builder = Builder::new();
        builder
            .contracts(contracts.path())
            .type_attribute(".", "#[non_exhaustive]")
            .field_attribute("tiny.Output.doubled", "#[serde(default)]");
        let formatted = builder.format(true).generate().expect("generates");
        let unformatted = builder.format(false).generate().expect("generates");
        assert_eq!(formatted.len(), 1);
        assert_eq!(unformatted.len(), 1);
        let (formatted, unformatted) = (&formatted[0].content, &unformatted[0].content);
        assert_ne!(formatted, unformatted, "the layout is the templates'");
        let (header, code) = unformatted.split_once("\n\n").expect("a header line");
        assert!(header.starts_with("// @generated by onex-build from tiny.yaml."));
        assert!(code.starts_with("/// ") && code.ends_with("}\n"), "{code}");
        let printed = render::format_rust(code, render::MODULE_TEMPLATE, Path::new("tiny.yaml"))
            .expect("the unformatted module parses");
        assert_eq!(&format!("{header}\n\n{printed}"), formatted);
    }

    #[test]
    fn invalid_settings_are_reported() {
        let contracts = folder_with(&[("tiny.yaml", CONTRACT)]);
        let mut builder = Builder::new();
        builder
            .contracts(contracts.path())
            .type_attribute(".", "derive(Hash)");
        let err = builder.generate().expect_err("rejects the attribute");
        assert!(matches!(
            err,
            Error::Setting {
                setting: "type_attribute",
                ..
            }
        ));
        assert!(err.to_string().contains("#[derive(Hash)]"), "{err}");

        let mut builder = Builder::new();
        builder
            .contracts(contracts.path())
            .runtime_path("not a path");
        assert!(matches!(
            builder.generate(),
            Err(Error::Setting {
                setting: "runtime_path",
                ..
            })
        ));

        let mut builder = Builder::new();
        builder
            .contracts(contracts.path())
            .extern_type("tiny.Nope", "crate::Nope");
        let err = builder.generate().expect_err("unknown type");
        assert!(err.to_string().contains("tiny.Nope"), "{err}");
    }

    #[test]
    fn every_invalid_contract_is_reported_with_its_file() {
        let contracts = folder_with(&[
            ("a.yaml", "contract_version: 1\nnode: { name: a }\n"),
            (
                "b.yaml",
                &CONTRACT.replace(
                    "type: u64 }]\n  - name: Output",
                    "type: u46 }]\n  - name: Output",
                ),
            ),
        ]);
        let err = Builder::new()
            .contracts(contracts.path())
            .generate()
            .expect_err("invalid");
        let Error::Contract(diagnostics) = &err else {
            panic!("expected contract diagnostics, got {err}");
        };
        let files: Vec<_> = diagnostics
            .0
            .iter()
            .filter_map(|d| d.file.file_name()?.to_str())
            .collect();
        assert!(
            files.contains(&"a.yaml") && files.contains(&"b.yaml"),
            "{err}"
        );
        assert!(err.to_string().contains("u46"), "{err}");

        // The build script's report: plain text, each error with its line
        // and a caret, then the count.
        let report = exit_report(&err);
        assert!(
            report.contains(
                "5 |     fields: [{ name: value, type: u46 }]\n  |                                   ^^^ found `u46`"
            ),
            "{report}"
        );
        assert!(!report.contains('\u{1b}'), "{report}");
        assert!(
            report.ends_with(&format!(
                "error: onex-build could not compile the contracts due to {} previous errors",
                diagnostics.len()
            )),
            "{report}"
        );
    }

    #[test]
    fn contracts_rendered_on_several_threads_keep_their_order() {
        // More contracts than threads, invalid ones among them: the
        // diagnostics follow the file order, the modules the node names.
        let mut files = Vec::new();
        for i in 0..12 {
            let text = if i % 3 == 0 {
                format!("contract_version: 1\nnode: {{ name: bad_{i:02} }}\n")
            } else {
                CONTRACT.replace("name: tiny", &format!("name: tiny_{}", 11 - i))
            };
            files.push((format!("{i:02}.yaml"), text));
        }
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let contracts = folder_with(&refs);
        let err = Builder::new()
            .contracts(contracts.path())
            .generate()
            .expect_err("invalid");
        let Error::Contract(diagnostics) = &err else {
            panic!("expected contract diagnostics, got {err}");
        };
        let mut reported: Vec<_> = diagnostics
            .0
            .iter()
            .filter_map(|d| d.file.file_name()?.to_str())
            .collect();
        reported.dedup();
        assert_eq!(reported, ["00.yaml", "03.yaml", "06.yaml", "09.yaml"]);

        let valid: Vec<(&str, &str)> = refs
            .into_iter()
            .filter(|(_, t)| t.contains("tiny"))
            .collect();
        let contracts = folder_with(&valid);
        let generated = Builder::new()
            .contracts(contracts.path())
            .generate()
            .expect("generates");
        let names: Vec<&str> = generated.iter().map(|f| f.spec.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names.len(), 8);
        assert_eq!(names, sorted);
        for file in &generated {
            assert_eq!(
                file.content,
                render::render_module_unformatted(&file.spec).expect("renders")
            );
        }
    }

    #[test]
    fn empty_folders_and_duplicate_nodes_are_errors() {
        let empty = folder_with(&[]);
        let err = Builder::new()
            .contracts(empty.path())
            .generate()
            .expect_err("empty");
        assert!(matches!(err, Error::NoContracts { .. }));
        assert!(
            err.to_string().contains("no *.yaml or *.yml files"),
            "{err}"
        );

        let twice = folder_with(&[("one.yaml", CONTRACT), ("two.yaml", CONTRACT)]);
        let err = Builder::new()
            .contracts(twice.path())
            .generate()
            .expect_err("duplicate");
        assert!(
            matches!(err, Error::DuplicateNode { ref name, .. } if name == "tiny"),
            "{err}"
        );
    }

    #[test]
    fn missing_out_dir_is_an_error_not_a_panic() {
        let contracts = folder_with(&[("tiny.yaml", CONTRACT)]);
        let mut builder = Builder::new();
        builder
            .contracts(contracts.path())
            .emit_rerun_if_changed(false);
        if std::env::var_os("OUT_DIR").is_none() {
            assert!(matches!(builder.compile(), Err(Error::OutDir)));
        }
    }

    #[test]
    fn consumed_contracts_are_found_on_the_search_path_and_compiled_for_their_types() {
        let shared = folder_with(&[(
            "tiny.yaml",
            // A consumed contract whose own `consumes` is nowhere to be found.
            &format!("{CONTRACT}consumes:\n  - contract: elsewhere.yaml\n"),
        )]);
        let consumer = folder_with(&[(
            "watcher.yaml",
            "contract_version: 1\n\
             node: { name: watcher, node_type: compute, version: 1.0.0, domain: test }\n\
             consumes:\n  - contract: tiny.yaml\n\
             subscriptions:\n  - event: tiny.double_completed\n",
        )]);
        let watcher = consumer.path().join("watcher.yaml");
        let tiny = shared.path().join("tiny.yaml");

        let alone = Builder::new().contract(&watcher).generate();
        let Err(Error::Contract(ds)) = alone else {
            panic!("tiny.yaml is not beside watcher.yaml: {alone:?}");
        };
        assert_eq!(ds.iter().map(|d| d.code).collect::<Vec<_>>(), ["XR-001"]);

        let files = Builder::new()
            .contract(&watcher)
            .contract_path(shared.path())
            .consumed_contract(&tiny)
            .generate()
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = files.iter().map(|f| f.file_name.as_str()).collect();
        assert_eq!(names, ["tiny.rs", "watcher.rs"]);
        assert!(
            files[0]
                .content
                .contains("DoubleCompleted(\"compute.double.completed\""),
            "{}",
            files[0].content
        );
    }
}
