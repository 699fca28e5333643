//! The workspace `cargo onex` runs in, found with cargo_metadata when
//! something needs it: its root (for the default `contracts/` and
//! `generated/` folders), its target folder, and where the runtime crates
//! are (see [`runtime`](crate::runtime) for the rules). Outside any Cargo
//! project, with contract files and `--out` given, cargo is not asked at
//! all.

use std::{
    cell::OnceCell,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use onex_build::pipeline::RuntimeDependency;

use crate::runtime::{self, ManifestSetting, Settings};

/// The contracts folder, relative to the workspace root.
pub const CONTRACTS_DIR: &str = "contracts";
/// The default output folder, relative to the workspace root.
pub const OUT_DIR: &str = "generated";

/// A Cargo workspace as `cargo onex` sees it; cargo is asked on first use.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The directory `cargo onex` runs in.
    pub cwd: PathBuf,
    /// `--manifest-path`, if given.
    manifest_path: Option<PathBuf>,
    /// What cargo said, once asked.
    found: OnceCell<Found>,
    /// `-q`: print no warnings.
    pub quiet: bool,
}

/// What cargo_metadata tells about the workspace.
#[derive(Debug, Clone)]
struct Found {
    /// The workspace root.
    root: PathBuf,
    /// The workspace's target directory.
    target_dir: PathBuf,
    /// The `onex` crate's folder, when it is a member.
    onex_dir: Option<PathBuf>,
    /// The `onex-build` crate's folder, when it is a member.
    onex_build_dir: Option<PathBuf>,
    /// `[package.metadata.onex]` of the package `cargo onex` runs in, else
    /// `[workspace.metadata.onex]`.
    setting: Option<ManifestSetting>,
}

impl Workspace {
    /// The workspace of `manifest_path`, or of the current directory; cargo
    /// is asked about it only when something needs it.
    pub fn discover(manifest_path: Option<&Path>) -> anyhow::Result<Self> {
        Ok(Workspace {
            cwd: std::env::current_dir().context("cannot read the current directory")?,
            manifest_path: manifest_path.map(Path::to_path_buf),
            found: OnceCell::new(),
            quiet: false,
        })
    }

    /// Asks cargo (once).
    fn found(&self) -> anyhow::Result<&Found> {
        if let Some(found) = self.found.get() {
            return Ok(found);
        }
        let mut command = cargo_metadata::MetadataCommand::new();
        command.no_deps();
        if let Some(path) = &self.manifest_path {
            command.manifest_path(path);
        }
        let metadata = command.exec().context(
            "cannot read the Cargo workspace: run inside a workspace or pass --manifest-path",
        )?;
        let member_dir = |name: &str| {
            metadata
                .workspace_packages()
                .into_iter()
                .find(|p| p.name.as_str() == name)
                .and_then(|p| p.manifest_path.parent())
                .map(|dir| dir.as_std_path().to_path_buf())
        };
        let root = metadata.workspace_root.as_std_path().to_path_buf();
        let setting = self.manifest_setting(&metadata, &root)?;
        let found = Found {
            target_dir: metadata.target_directory.as_std_path().to_path_buf(),
            onex_dir: member_dir("onex"),
            onex_build_dir: member_dir("onex-build"),
            setting,
            root,
        };
        Ok(self.found.get_or_init(|| found))
    }

    /// The runtime setting in the manifests: `[package.metadata.onex]` of
    /// the member `cargo onex` runs in (the one `--manifest-path` names, or
    /// the innermost one around the current directory) wins over
    /// `[workspace.metadata.onex]`, as the nearer setting does in cargo.
    fn manifest_setting(
        &self,
        metadata: &cargo_metadata::Metadata,
        root: &Path,
    ) -> anyhow::Result<Option<ManifestSetting>> {
        let here = match &self.manifest_path {
            Some(path) => normalize(&self.cwd.join(path))
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            None => self.cwd.clone(),
        };
        let package = metadata
            .workspace_packages()
            .into_iter()
            .filter_map(|p| {
                let dir = p.manifest_path.parent()?.as_std_path();
                here.starts_with(dir)
                    .then_some((dir.components().count(), p))
            })
            .max_by_key(|(depth, _)| *depth)
            .map(|(_, p)| p);
        if let Some(package) = package {
            let setting = ManifestSetting::read(
                &package.metadata,
                package.manifest_path.as_std_path(),
                "package.metadata.onex",
            )?;
            if setting.is_some() {
                return Ok(setting);
            }
        }
        ManifestSetting::read(
            &metadata.workspace_metadata,
            &root.join("Cargo.toml"),
            "workspace.metadata.onex",
        )
    }

    /// The workspace root.
    pub fn root(&self) -> anyhow::Result<&Path> {
        Ok(&self.found()?.root)
    }

    /// Whether there can be a workspace: `--manifest-path` was given, or a
    /// `Cargo.toml` lies in the current directory or above it.
    fn may_exist(&self) -> bool {
        self.manifest_path.is_some()
            || self
                .cwd
                .ancestors()
                .any(|dir| dir.join("Cargo.toml").is_file())
    }

    /// The output folder: `--out` (relative to the current directory) or
    /// `generated/` at the workspace root.
    pub fn out_dir(&self, out: Option<&Path>) -> anyhow::Result<PathBuf> {
        Ok(match out {
            Some(dir) => normalize(&self.cwd.join(dir)),
            None => self.root()?.join(OUT_DIR),
        })
    }

    /// The contract files: each argument is a file, or the name of a
    /// contract in `contracts/`; no arguments means every contract there.
    pub fn contracts(&self, args: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
        if args.is_empty() {
            let folder = self.root()?.join(CONTRACTS_DIR);
            let mut found: Vec<PathBuf> = std::fs::read_dir(&folder)
                .with_context(|| format!("cannot list the contracts in {}", folder.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            if found.is_empty() {
                bail!(
                    "no contracts (*.yaml) in {}: add one, or name contract files on the command line",
                    folder.display()
                );
            }
            return Ok(found);
        }
        args.iter()
            .map(|arg| {
                let direct = self.cwd.join(arg);
                if direct.is_file() {
                    return Ok(normalize(&direct));
                }
                let by_name = self
                    .root()?
                    .join(CONTRACTS_DIR)
                    .join(arg)
                    .with_extension("yaml");
                if by_name.is_file() {
                    Ok(by_name)
                } else {
                    bail!(
                        "contract `{}` not found: no such file, and no {}",
                        arg.display(),
                        self.display(&by_name).display()
                    )
                }
            })
            .collect()
    }

    /// The output folder of `check`, which writes nothing: that of
    /// `generate`, or `generated/` here when there is no workspace to put it
    /// in, so that checking named contract files needs no Cargo project.
    pub fn check_out_dir(&self) -> anyhow::Result<PathBuf> {
        if self.may_exist() {
            self.out_dir(None)
        } else {
            Ok(self.cwd.join(OUT_DIR))
        }
    }

    /// How node crates under `out_dir` depend on the runtime, by the rules
    /// of [`runtime::resolve`]; `onex_path` is `--onex-path`. Prints a
    /// warning when a setting is ignored or when the node crates fall back
    /// to the registry.
    pub fn runtime_dependency(
        &self,
        out_dir: &Path,
        onex_path: Option<&Path>,
    ) -> anyhow::Result<RuntimeDependency> {
        let found = if self.may_exist() {
            Some(self.found()?)
        } else {
            None
        };
        let settings = Settings {
            cwd: self.cwd.clone(),
            workspace: found.and_then(|f| match (&f.onex_dir, &f.onex_build_dir) {
                (Some(onex), Some(onex_build)) => Some((onex.clone(), onex_build.clone())),
                _ => None,
            }),
            flag: onex_path.map(Path::to_path_buf),
            environment: std::env::var_os(runtime::ENV_VAR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            manifest: found.and_then(|f| f.setting.clone()),
            installed_from: runtime::installed_from(),
        };
        let resolved = runtime::resolve(&settings, out_dir)?;
        for warning in resolved.warnings.iter().filter(|_| !self.quiet) {
            eprintln!("warning: {warning}");
        }
        Ok(resolved.dependency)
    }

    /// Where `--compile-check` builds: one folder shared by every node crate.
    pub fn node_target_dir(&self) -> anyhow::Result<PathBuf> {
        Ok(self.found()?.target_dir.join("onex-nodes"))
    }

    /// A path as the user would write it: relative to the current directory
    /// when inside it.
    pub fn display<'a>(&self, path: &'a Path) -> &'a Path {
        path.strip_prefix(&self.cwd).unwrap_or(path)
    }
}

/// Removes `.` and folds `..` without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    onex_build::pipeline::paths::normalize(path)
}
