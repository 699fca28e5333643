//! The workspace `cargo onex` runs in, found with cargo_metadata: its root,
//! its contracts, and where the runtime crates are.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use onex_build::pipeline::RuntimeDependency;

/// The contracts folder, relative to the workspace root.
pub const CONTRACTS_DIR: &str = "contracts";
/// The default output folder, relative to the workspace root.
pub const OUT_DIR: &str = "generated";

/// A Cargo workspace as `cargo onex` sees it.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The workspace root.
    pub root: PathBuf,
    /// The directory `cargo onex` runs in.
    pub cwd: PathBuf,
    /// The workspace's target directory.
    pub target_dir: PathBuf,
    /// The `onex` crate's folder, when it is a member.
    pub onex_dir: Option<PathBuf>,
    /// The `onex-build` crate's folder, when it is a member.
    pub onex_build_dir: Option<PathBuf>,
}

impl Workspace {
    /// Finds the workspace of `manifest_path`, or of the current directory.
    pub fn discover(manifest_path: Option<&Path>) -> anyhow::Result<Self> {
        let mut command = cargo_metadata::MetadataCommand::new();
        command.no_deps();
        if let Some(path) = manifest_path {
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
        Ok(Workspace {
            root: metadata.workspace_root.as_std_path().to_path_buf(),
            cwd: std::env::current_dir().context("cannot read the current directory")?,
            target_dir: metadata.target_directory.as_std_path().to_path_buf(),
            onex_dir: member_dir("onex"),
            onex_build_dir: member_dir("onex-build"),
        })
    }

    /// The output folder: `--out` (relative to the current directory) or
    /// `generated/` at the workspace root.
    pub fn out_dir(&self, out: Option<&Path>) -> anyhow::Result<PathBuf> {
        Ok(match out {
            Some(dir) => normalize(&self.cwd.join(dir)),
            None => self.root.join(OUT_DIR),
        })
    }

    /// The contract files: each argument is a file, or the name of a
    /// contract in `contracts/`; no arguments means every contract there.
    pub fn contracts(&self, args: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
        let folder = self.root.join(CONTRACTS_DIR);
        if args.is_empty() {
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
                let by_name = folder.join(arg).with_extension("yaml");
                if direct.is_file() {
                    Ok(normalize(&direct))
                } else if by_name.is_file() {
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
    /// path when this workspace holds `onex` and `onex-build`, else by
    /// version.
    pub fn runtime_dependency(&self, out_dir: &Path) -> RuntimeDependency {
        match (&self.onex_dir, &self.onex_build_dir) {
            (Some(onex), Some(onex_build)) => {
                RuntimeDependency::from_crate_dirs(out_dir, onex, onex_build)
            }
            _ => RuntimeDependency::this_version(),
        }
    }

    /// Where `--compile-check` builds: one folder shared by every node crate.
    pub fn node_target_dir(&self) -> PathBuf {
        self.target_dir.join("onex-nodes")
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
