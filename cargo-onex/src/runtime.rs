//! Where generated node crates find the runtime (`onex`) and `onex-build`.
//!
//! A node crate depends on both. Until they are on crates.io, a node crate
//! written in a user's own project builds only with path dependencies on a
//! checkout of this repository, so `cargo onex generate` looks for one, in
//! this order, and takes the first it finds:
//!
//! 1. the workspace `cargo onex` runs in, when `onex` and `onex-build` are
//!    members of it: relative paths, so the node crates always build against
//!    the runtime being worked on next to them;
//! 2. an explicit setting, the nearest first: `--onex-path DIR`, then the
//!    `ONEX_PATH` environment variable, then `path = "DIR"` in
//!    `[package.metadata.onex]` or `[workspace.metadata.onex]` of the user's
//!    manifest (relative to that manifest). `DIR` is any folder of a
//!    checkout holding the two crates; a path given relative is written
//!    relative, an absolute one absolute. A setting that names no such
//!    checkout is an error, never silently skipped;
//! 3. the source tree `cargo-onex` was built from (`cargo install --path`),
//!    while it still holds both crates at the generator's version: absolute
//!    paths;
//! 4. else the registry, at the generator's version, with a warning that
//!    says how to point at a checkout instead.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use onex_build::pipeline::{GENERATOR_VERSION, RuntimeDependency, paths};

/// The environment variable of rule 2: a checkout holding `onex` and
/// `onex-build`.
pub const ENV_VAR: &str = "ONEX_PATH";

/// `path = "DIR"` in a manifest's `[package.metadata.onex]` or
/// `[workspace.metadata.onex]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSetting {
    /// The `Cargo.toml` that holds the setting; `path` is relative to its
    /// folder.
    pub manifest: PathBuf,
    /// The table, for messages: `package.metadata.onex` or
    /// `workspace.metadata.onex`.
    pub table: &'static str,
    /// `path` as written.
    pub path: PathBuf,
}

impl ManifestSetting {
    /// The setting in `metadata` (the manifest's `package.metadata` or
    /// `workspace.metadata` table, as cargo_metadata gives it), if it has an
    /// `onex` table.
    pub fn read(
        metadata: &serde_json::Value,
        manifest: &Path,
        table: &'static str,
    ) -> anyhow::Result<Option<Self>> {
        let Some(onex) = metadata.get("onex") else {
            return Ok(None);
        };
        match onex.get("path").and_then(serde_json::Value::as_str) {
            Some(path) => Ok(Some(ManifestSetting {
                manifest: manifest.to_path_buf(),
                table,
                path: PathBuf::from(path),
            })),
            None => bail!(
                "[{table}] in {} needs `path = \"DIR\"`, a checkout of cargo-onex holding onex/ and onex-build/",
                manifest.display()
            ),
        }
    }
}

/// Everything the rules read, gathered by the caller so that the rules
/// themselves can be tested without a workspace or an installation.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The current directory: relative `--onex-path` and `ONEX_PATH` start
    /// here.
    pub cwd: PathBuf,
    /// Rule 1: the `onex` and `onex-build` folders, when the workspace holds
    /// both.
    pub workspace: Option<(PathBuf, PathBuf)>,
    /// Rule 2: `--onex-path`.
    pub flag: Option<PathBuf>,
    /// Rule 2: `ONEX_PATH`.
    pub environment: Option<PathBuf>,
    /// Rule 2: the manifest's setting.
    pub manifest: Option<ManifestSetting>,
    /// Rule 3: the source tree `cargo-onex` was built from.
    pub installed_from: Option<PathBuf>,
}

/// Which rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Rule 1: the current workspace.
    Workspace,
    /// Rule 2: `--onex-path`.
    Flag,
    /// Rule 2: `ONEX_PATH`.
    Environment,
    /// Rule 2: `[package.metadata.onex]` or `[workspace.metadata.onex]`.
    Manifest,
    /// Rule 3: the source tree `cargo-onex` was built from.
    InstalledFrom,
    /// Rule 4: the registry.
    Registry,
}

/// The outcome of [`resolve`].
#[derive(Debug, Clone)]
pub struct Resolved {
    /// What the node crates' manifests say.
    pub dependency: RuntimeDependency,
    /// Which rule decided.
    pub source: Source,
    /// What the user should know: a setting that was ignored, a version
    /// that differs, the registry fallback.
    pub warnings: Vec<String>,
}

/// The source tree this `cargo-onex` was compiled from: the parent of its
/// package folder, recorded at compile time. For a build from crates.io it
/// is the registry's source cache, which holds no `onex/` folder, so rule 3
/// does not apply there.
pub fn installed_from() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
}

/// Applies the rules (see the module documentation) for node crates that
/// will live in folders of `out_dir`.
pub fn resolve(settings: &Settings, out_dir: &Path) -> anyhow::Result<Resolved> {
    let mut warnings = Vec::new();
    if let Some((onex, onex_build)) = &settings.workspace {
        if let Some(flag) = &settings.flag {
            warnings.push(format!(
                "`--onex-path {}` is ignored: this workspace holds onex and onex-build, and its node crates use them",
                flag.display()
            ));
        }
        return Ok(Resolved {
            dependency: RuntimeDependency::from_crate_dirs(out_dir, onex, onex_build),
            source: Source::Workspace,
            warnings,
        });
    }

    let explicit = settings
        .flag
        .as_ref()
        .map(|dir| {
            (
                Source::Flag,
                settings.cwd.clone(),
                dir,
                "--onex-path".to_owned(),
            )
        })
        .or_else(|| {
            settings.environment.as_ref().map(|dir| {
                (
                    Source::Environment,
                    settings.cwd.clone(),
                    dir,
                    ENV_VAR.to_owned(),
                )
            })
        })
        .or_else(|| {
            settings.manifest.as_ref().map(|setting| {
                (
                    Source::Manifest,
                    setting
                        .manifest
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_default(),
                    &setting.path,
                    format!("[{}] in {}", setting.table, setting.manifest.display()),
                )
            })
        });
    if let Some((source, base, written, origin)) = explicit {
        let dir = paths::normalize(&base.join(written));
        let checkout = Checkout::find(&dir).with_context(|| {
            format!(
                "{origin} names {}, which is not a checkout of cargo-onex: it must hold the onex and onex-build crates",
                written.display()
            )
        })?;
        if let Some(version) = checkout.other_version() {
            warnings.push(format!(
                "{origin} names onex {version}, but this cargo-onex generates code for {GENERATOR_VERSION}: the node crates may not build"
            ));
        }
        let dependency = if written.is_absolute() {
            RuntimeDependency::absolute(&checkout.onex, &checkout.onex_build)
        } else {
            RuntimeDependency::from_crate_dirs(out_dir, &checkout.onex, &checkout.onex_build)
        };
        return Ok(Resolved {
            dependency,
            source,
            warnings,
        });
    }

    let installed = settings
        .installed_from
        .as_deref()
        .filter(|dir| Checkout::may_be(dir))
        .and_then(|dir| Checkout::find(dir).ok())
        .filter(|checkout| checkout.other_version().is_none());
    if let Some(checkout) = installed {
        return Ok(Resolved {
            dependency: RuntimeDependency::absolute(&checkout.onex, &checkout.onex_build),
            source: Source::InstalledFrom,
            warnings,
        });
    }

    warnings.push(format!(
        "no local copy of the onex runtime found: the node crates depend on onex and onex-build {GENERATOR_VERSION} from crates.io\n\
         help: to build them against a checkout of cargo-onex instead, pass `--onex-path DIR`, set {ENV_VAR}=DIR, \
         or add `[workspace.metadata.onex] path = \"DIR\"` to your Cargo.toml (DIR holds onex/ and onex-build/)"
    ));
    Ok(Resolved {
        dependency: RuntimeDependency::this_version(),
        source: Source::Registry,
        warnings,
    })
}

/// A checkout holding the two crates, as cargo sees it.
#[derive(Debug, Clone)]
struct Checkout {
    /// The `onex` crate's folder.
    onex: PathBuf,
    /// The `onex-build` crate's folder.
    onex_build: PathBuf,
    /// Their versions.
    versions: [String; 2],
}

impl Checkout {
    /// Whether `dir` looks like the root of a checkout; cheap, so that rule
    /// 3 does not ask cargo about a folder that cannot be one.
    fn may_be(dir: &Path) -> bool {
        dir.join("onex/Cargo.toml").is_file() && dir.join("onex-build/Cargo.toml").is_file()
    }

    /// Asks cargo about the workspace around `dir` (any folder of a
    /// checkout) and finds both crates among its members.
    fn find(dir: &Path) -> anyhow::Result<Checkout> {
        if !dir.is_dir() {
            bail!("{} is not a folder", dir.display());
        }
        let manifest = if Checkout::may_be(dir) || !dir.join("Cargo.toml").is_file() {
            dir.join("onex/Cargo.toml")
        } else {
            dir.join("Cargo.toml")
        };
        let metadata = cargo_metadata::MetadataCommand::new()
            .no_deps()
            .manifest_path(&manifest)
            .exec()
            .with_context(|| format!("cannot read the Cargo workspace of {}", dir.display()))?;
        let member = |name: &str| {
            metadata
                .workspace_packages()
                .into_iter()
                .find(|p| p.name.as_str() == name)
                .and_then(|p| {
                    let dir = p.manifest_path.parent()?.as_std_path().to_path_buf();
                    Some((dir, p.version.to_string()))
                })
        };
        match (member("onex"), member("onex-build")) {
            (Some((onex, onex_version)), Some((onex_build, build_version))) => Ok(Checkout {
                onex,
                onex_build,
                versions: [onex_version, build_version],
            }),
            _ => bail!(
                "the workspace at {} has no onex and onex-build members",
                metadata.workspace_root
            ),
        }
    }

    /// The version of the two crates when it is not the generator's.
    fn other_version(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.as_str() != GENERATOR_VERSION)
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkout with the two crates at `version`, in a new folder.
    fn checkout(version: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("folder");
            std::fs::write(path, text).expect("file");
        };
        write(
            "Cargo.toml",
            "[workspace]\nmembers = [\"onex\", \"onex-build\"]\nresolver = \"3\"\n",
        );
        for name in ["onex", "onex-build"] {
            write(
                &format!("{name}/Cargo.toml"),
                &format!(
                    "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2024\"\n"
                ),
            );
            write(&format!("{name}/src/lib.rs"), "");
        }
        dir
    }

    fn onex_path(resolved: &Resolved) -> String {
        match &resolved.dependency {
            RuntimeDependency::Path { onex, .. } => onex.clone(),
            other => panic!("expected a path dependency, got {other:?}"),
        }
    }

    /// Every setting present; each rule is removed in turn and the next one
    /// decides.
    #[test]
    fn the_rules_apply_in_order() {
        let flag = checkout(GENERATOR_VERSION);
        let environment = checkout(GENERATOR_VERSION);
        let manifest = checkout(GENERATOR_VERSION);
        let installed = checkout(GENERATOR_VERSION);
        let user = tempfile::tempdir().expect("user project");
        let out_dir = user.path().join("generated");
        let mut settings = Settings {
            cwd: user.path().to_path_buf(),
            workspace: Some((user.path().join("onex"), user.path().join("onex-build"))),
            flag: Some(flag.path().to_path_buf()),
            environment: Some(environment.path().to_path_buf()),
            manifest: Some(ManifestSetting {
                manifest: user.path().join("Cargo.toml"),
                table: "workspace.metadata.onex",
                path: manifest.path().to_path_buf(),
            }),
            installed_from: Some(installed.path().to_path_buf()),
        };

        let resolved = resolve(&settings, &out_dir).expect("rule 1");
        assert_eq!(resolved.source, Source::Workspace);
        assert_eq!(onex_path(&resolved), "../../onex");
        assert!(resolved.warnings[0].contains("--onex-path"), "{resolved:?}");

        settings.workspace = None;
        let resolved = resolve(&settings, &out_dir).expect("rule 2, flag");
        assert_eq!(resolved.source, Source::Flag);
        assert!(onex_path(&resolved).starts_with(&*flag.path().to_string_lossy()));
        assert!(resolved.warnings.is_empty(), "{resolved:?}");

        settings.flag = None;
        let resolved = resolve(&settings, &out_dir).expect("rule 2, environment");
        assert_eq!(resolved.source, Source::Environment);
        assert!(onex_path(&resolved).starts_with(&*environment.path().to_string_lossy()));

        settings.environment = None;
        let resolved = resolve(&settings, &out_dir).expect("rule 2, manifest");
        assert_eq!(resolved.source, Source::Manifest);
        assert!(onex_path(&resolved).starts_with(&*manifest.path().to_string_lossy()));

        settings.manifest = None;
        let resolved = resolve(&settings, &out_dir).expect("rule 3");
        assert_eq!(resolved.source, Source::InstalledFrom);
        assert!(onex_path(&resolved).starts_with(&*installed.path().to_string_lossy()));
        assert!(resolved.warnings.is_empty(), "{resolved:?}");

        settings.installed_from = None;
        let resolved = resolve(&settings, &out_dir).expect("rule 4");
        assert_eq!(resolved.source, Source::Registry);
        assert_eq!(resolved.dependency, RuntimeDependency::this_version());
        assert!(
            resolved.warnings[0].contains("--onex-path DIR"),
            "{resolved:?}"
        );
    }

    /// A relative setting is written relative to the node crate, so that a
    /// project and the checkout beside it can move together.
    #[test]
    fn a_relative_setting_stays_relative() {
        let parent = tempfile::tempdir().expect("parent");
        let checkout = checkout(GENERATOR_VERSION);
        let moved = parent.path().join("cargo-onex");
        std::fs::rename(checkout.path(), &moved).expect("move the checkout");
        let user = parent.path().join("app");
        std::fs::create_dir_all(&user).expect("user project");
        let settings = Settings {
            cwd: user.clone(),
            manifest: Some(ManifestSetting {
                manifest: user.join("Cargo.toml"),
                table: "package.metadata.onex",
                path: PathBuf::from("../cargo-onex"),
            }),
            ..Settings::default()
        };
        let resolved = resolve(&settings, &user.join("generated")).expect("resolves");
        assert_eq!(
            resolved.dependency,
            RuntimeDependency::Path {
                onex: "../../../cargo-onex/onex".to_owned(),
                onex_build: "../../../cargo-onex/onex-build".to_owned(),
            }
        );
    }

    /// A source tree of another version is skipped; an explicit setting
    /// that names no checkout is an error that says which setting.
    #[test]
    fn a_stale_source_tree_is_skipped_and_a_wrong_setting_is_an_error() {
        let old = checkout("0.0.1");
        let user = tempfile::tempdir().expect("user project");
        let settings = Settings {
            cwd: user.path().to_path_buf(),
            installed_from: Some(old.path().to_path_buf()),
            ..Settings::default()
        };
        let resolved = resolve(&settings, &user.path().join("generated")).expect("resolves");
        assert_eq!(resolved.source, Source::Registry);

        let settings = Settings {
            environment: Some(user.path().join("nowhere")),
            ..settings
        };
        let error = resolve(&settings, &user.path().join("generated")).expect_err("no checkout");
        assert!(format!("{error:#}").contains(ENV_VAR), "{error:#}");
    }

    #[test]
    fn a_manifest_setting_needs_a_path() {
        let manifest = Path::new("/project/Cargo.toml");
        let table = "workspace.metadata.onex";
        assert_eq!(
            ManifestSetting::read(&serde_json::json!({"other": 1}), manifest, table)
                .expect("no onex table"),
            None
        );
        let setting = ManifestSetting::read(
            &serde_json::json!({"onex": {"path": "../cargo-onex"}}),
            manifest,
            table,
        )
        .expect("valid")
        .expect("present");
        assert_eq!(setting.path, PathBuf::from("../cargo-onex"));
        let error =
            ManifestSetting::read(&serde_json::json!({"onex": {"git": "x"}}), manifest, table)
                .expect_err("no path");
        assert!(error.to_string().contains("path = \"DIR\""), "{error}");
    }
}
