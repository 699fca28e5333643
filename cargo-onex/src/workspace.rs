//! The workspace `cargo onex` runs in, found with cargo_metadata when
//! something needs it: its root (for the default `contracts/` and
//! `generated/` folders), its target folder, and where the runtime crates
//! are. Outside any Cargo project, with contract files and `--out` given,
//! cargo is not asked at all.

use std::{
    cell::OnceCell,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use onex_build::pipeline::RuntimeDependency;

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
}

impl Workspace {
    /// The workspace of `manifest_path`, or of the current directory; cargo
    /// is asked about it only when something needs it.
    pub fn discover(manifest_path: Option<&Path>) -> anyhow::Result<Self> {
        Ok(Workspace {
            cwd: std::env::current_dir().context("cannot read the current directory")?,
            manifest_path: manifest_path.map(Path::to_path_buf),
            found: OnceCell::new(),
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
        let found = Found {
            root: metadata.workspace_root.as_std_path().to_path_buf(),
            target_dir: metadata.target_directory.as_std_path().to_path_buf(),
            onex_dir: member_dir("onex"),
            onex_build_dir: member_dir("onex-build"),
        };
        Ok(self.found.get_or_init(|| found))
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

    /// How node crates under `out_dir` depend on the runtime: by relative
    /// path when this workspace holds `onex` and `onex-build`, else (and
    /// outside any Cargo project) by version.
    pub fn runtime_dependency(&self, out_dir: &Path) -> anyhow::Result<RuntimeDependency> {
        if !self.may_exist() {
            return Ok(RuntimeDependency::this_version());
        }
        let found = self.found()?;
        Ok(match (&found.onex_dir, &found.onex_build_dir) {
            (Some(onex), Some(onex_build)) => {
                RuntimeDependency::from_crate_dirs(out_dir, onex, onex_build)
            }
            _ => RuntimeDependency::this_version(),
        })
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
