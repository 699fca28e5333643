//! The build-script API: [`Builder`] and [`compile_contracts`].

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
};

use crate::{
    contract::{Diagnostics, LoadedContract, load_file},
    error::Error,
    render,
    spec::{self, NodeSpec, SpecOptions},
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
    /// The formatted Rust source, starting with its `@generated` line.
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
    options: SpecOptions,
    emit_rerun_if_changed: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// A builder with no contracts, writing to `OUT_DIR`, referring to the
    /// runtime as `::onex`, and printing `cargo:rerun-if-changed` lines.
    pub fn new() -> Builder {
        Builder {
            out_dir: None,
            files: Vec::new(),
            folders: Vec::new(),
            options: SpecOptions::default(),
            emit_rerun_if_changed: true,
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

    /// The contract files this builder compiles: the files given with
    /// [`Builder::contract`], then the files of each folder given with
    /// [`Builder::contracts`] in name order, without duplicates.
    pub fn contract_files(&self) -> Result<Vec<PathBuf>, Error> {
        let mut out: Vec<PathBuf> = Vec::new();
        for file in &self.files {
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
    pub fn generate(&self) -> Result<Vec<GeneratedFile>, Error> {
        self.check_settings()?;
        let files = self.contract_files()?;
        if files.is_empty() {
            return Err(Error::NoContracts {
                folders: self.folders.clone(),
            });
        }
        let mut diagnostics = Vec::new();
        let mut specs: BTreeMap<String, (PathBuf, NodeSpec)> = BTreeMap::new();
        for file in &files {
            let loaded = match load_file(file) {
                Ok(loaded) => loaded,
                Err(d) => {
                    diagnostics.push(d);
                    continue;
                }
            };
            if let Err(Diagnostics(ds)) = validate(&loaded) {
                diagnostics.extend(ds);
                continue;
            }
            match spec::build(&loaded, &self.options) {
                Ok(spec) => {
                    if let Some((first, _)) = specs.get(&spec.name) {
                        return Err(Error::DuplicateNode {
                            name: spec.name.clone(),
                            first: first.clone(),
                            second: file.clone(),
                        });
                    }
                    specs.insert(spec.name.clone(), (file.clone(), spec));
                }
                Err(Diagnostics(ds)) => diagnostics.extend(ds),
            }
        }
        if !diagnostics.is_empty() {
            return Err(Error::Contract(Diagnostics(diagnostics)));
        }
        specs
            .into_values()
            .map(|(contract, spec)| {
                let content =
                    render::render_module(&spec).map_err(|e| with_contract(e, &contract))?;
                Ok(GeneratedFile {
                    file_name: format!("{}.rs", spec.name),
                    contract,
                    spec,
                    content,
                })
            })
            .collect()
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
        for file in &files {
            write_if_changed(&out_dir.join(&file.file_name), &file.content)?;
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
    pub fn compile_or_exit(&self) {
        if let Err(e) = self.compile() {
            eprintln!("error: onex-build could not compile the contracts\n\n{e}");
            std::process::exit(1);
        }
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

/// Stage 3, pre-validate: the quality gates of the contract.
fn validate(loaded: &LoadedContract) -> Result<(), Diagnostics> {
    let _ = loaded;
    Ok(())
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

/// Writes `content` to `path` unless the file already holds exactly that.
pub(crate) fn write_if_changed(path: &Path, content: &str) -> Result<(), Error> {
    if std::fs::read(path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok(());
    }
    let tmp = path.with_extension("rs.tmp");
    std::fs::write(&tmp, content)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })
}
