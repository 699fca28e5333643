//! Stage 6, write: the node crate's files, written only when they changed,
//! each atomically (temporary file, then rename), never outside the output
//! directory, never over a file without the `@generated` marker, and
//! scaffold files (the user's `src/handler.rs` and `Cargo.toml`) only when
//! they do not exist yet.

use std::{
    io::Write as _,
    path::{Component, Path, PathBuf},
};

use super::{
    NodeFiles, StageError,
    files::{GENERATED_MARKER, NodeFile, Ownership},
};

/// How far into a file the `@generated` marker is looked for.
const MARKER_WINDOW: usize = 512;

/// What stage 6 did, or in check mode would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Files (relative to the node crate) written, or in check mode stale.
    pub changed: Vec<String>,
}

/// Writes (or, with `check`, compares) the files of one node crate.
pub fn write(
    out_dir: &Path,
    node_dir: &Path,
    files: &NodeFiles,
    check: bool,
) -> Result<WriteOutcome, StageError> {
    let output = if check {
        OutputDir::for_check(out_dir)
    } else {
        OutputDir::create(out_dir)?
    };
    output.write(node_dir, files)
}

/// The output directory of a run: created and resolved once, then shared
/// by every node crate written into it.
#[derive(Debug, Clone)]
pub struct OutputDir {
    /// The directory as given.
    dir: PathBuf,
    /// The directory with symbolic links resolved; `None` in check mode,
    /// which creates nothing.
    resolved: Option<PathBuf>,
}

impl OutputDir {
    /// Creates the output directory (if missing) and resolves it, for
    /// writing.
    pub fn create(dir: &Path) -> Result<Self, StageError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StageError::io("cannot create the output directory", dir, e))?;
        let resolved = dir
            .canonicalize()
            .map_err(|e| StageError::io("cannot resolve the output directory", dir, e))?;
        Ok(OutputDir {
            dir: dir.to_path_buf(),
            resolved: Some(resolved),
        })
    }

    /// The output directory for check mode: nothing is created or written.
    pub fn for_check(dir: &Path) -> Self {
        OutputDir {
            dir: dir.to_path_buf(),
            resolved: None,
        }
    }

    /// The directory as given.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes (in check mode, compares) the files of one node crate inside
    /// this directory.
    pub fn write(&self, node_dir: &Path, files: &NodeFiles) -> Result<WriteOutcome, StageError> {
        let plan = self.plan(node_dir, files)?;
        if self.resolved.is_some() {
            for (target, file) in &plan {
                write_atomically(target, file.contents.as_bytes())?;
            }
        }
        Ok(WriteOutcome {
            changed: plan.into_iter().map(|(_, f)| f.path.clone()).collect(),
        })
    }

    /// The files that need writing, after every safety check passed, so
    /// that a refused file leaves the node crate untouched.
    fn plan<'a>(
        &self,
        node_dir: &Path,
        files: &'a NodeFiles,
    ) -> Result<Vec<(PathBuf, &'a NodeFile)>, StageError> {
        // Each folder of the node crate is created and checked once; one
        // this run created is empty, so its files need not be looked for.
        let mut folders = Folders::default();
        let mut plan = Vec::new();
        for file in files {
            let target = checked_target(&self.dir, node_dir, &file.path)?;
            let fresh = match &self.resolved {
                Some(root) => {
                    let parent = target.parent().ok_or_else(|| self.outside(&target))?;
                    let fresh = self.ensure_folder(root, parent, &mut folders)?;
                    if !fresh
                        && std::fs::symlink_metadata(&target)
                            .is_ok_and(|m| m.file_type().is_symlink())
                    {
                        return Err(self.outside(&target));
                    }
                    fresh
                }
                None => false,
            };
            let existing = if fresh {
                None
            } else {
                match std::fs::read(&target) {
                    Ok(bytes) => Some(bytes),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(StageError::io("cannot read", &target, e)),
                }
            };
            let needs_write = match (file.ownership, existing) {
                (_, None) => true,
                (Ownership::Scaffold, Some(_)) => false,
                (Ownership::Generated, Some(bytes)) => {
                    if bytes == file.contents.as_bytes() {
                        false
                    } else if has_marker(&bytes) {
                        true
                    } else {
                        return Err(StageError::UserFile { path: target });
                    }
                }
            };
            if needs_write {
                plan.push((target, file));
            }
        }
        Ok(plan)
    }

    /// Makes sure `folder` (lexically inside the output directory) exists
    /// and, with symbolic links resolved, lies inside it; returns whether
    /// this call created it. A folder created here inside a checked parent
    /// is inside too, so only folders that already existed are resolved.
    fn ensure_folder(
        &self,
        root: &Path,
        folder: &Path,
        folders: &mut Folders,
    ) -> Result<bool, StageError> {
        if let Some(fresh) = folders.get(folder) {
            return Ok(fresh);
        }
        let fresh = if folder == self.dir {
            // Created and resolved in `create`.
            false
        } else {
            let parent = folder
                .parent()
                .filter(|_| folder.starts_with(&self.dir))
                .ok_or_else(|| self.outside(folder))?;
            self.ensure_folder(root, parent, folders)?;
            match std::fs::create_dir(folder) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if !folder.is_dir() {
                        return Err(StageError::io("cannot create", folder, e));
                    }
                    let resolved = folder
                        .canonicalize()
                        .map_err(|e| StageError::io("cannot resolve", folder, e))?;
                    if !resolved.starts_with(root) {
                        return Err(self.outside(folder));
                    }
                    false
                }
                Err(e) => return Err(StageError::io("cannot create", folder, e)),
            }
        };
        folders.0.push((folder.to_path_buf(), fresh));
        Ok(fresh)
    }

    fn outside(&self, path: &Path) -> StageError {
        StageError::OutsideOutput {
            path: path.to_path_buf(),
            out_dir: self.dir.clone(),
        }
    }
}

/// The folders of one node crate already made sure of, and whether this
/// run created them (a node crate has two or three).
#[derive(Default)]
struct Folders(Vec<(PathBuf, bool)>);

impl Folders {
    fn get(&self, folder: &Path) -> Option<bool> {
        self.0
            .iter()
            .find(|(known, _)| known == folder)
            .map(|(_, fresh)| *fresh)
    }
}

fn has_marker(bytes: &[u8]) -> bool {
    let window = &bytes[..bytes.len().min(MARKER_WINDOW)];
    window
        .windows(GENERATED_MARKER.len())
        .any(|w| w == GENERATED_MARKER.as_bytes())
}

/// The target of a relative file path: plain components only.
fn checked_target(out_dir: &Path, node_dir: &Path, relative: &str) -> Result<PathBuf, StageError> {
    let path = Path::new(relative);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain || relative.is_empty() || !node_dir.starts_with(out_dir) {
        return Err(StageError::OutsideOutput {
            path: node_dir.join(path),
            out_dir: out_dir.to_path_buf(),
        });
    }
    Ok(node_dir.join(path))
}

/// Writes `bytes` to `target` unless the file holds exactly them already
/// (so that what depends on it is not rebuilt for nothing); returns whether
/// it wrote. The build script's modules are written this way: a module in
/// `OUT_DIR` belongs to the build script, marker or not.
pub fn write_if_changed(target: &Path, bytes: &[u8]) -> Result<bool, StageError> {
    if std::fs::read(target).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    write_atomically(target, bytes)?;
    Ok(true)
}

/// Writes a temporary file next to the target, then renames it over, so a
/// reader never sees half a file. No `fsync`: like cargo and prost-build we
/// leave durability to the OS; a file a crash left torn fails the
/// manifest's hash check and is regenerated on the next run.
fn write_atomically(target: &Path, bytes: &[u8]) -> Result<(), StageError> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = target.with_file_name(format!(".{name}.onex-tmp-{}", std::process::id()));
    let result = std::fs::File::create(&temp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&temp, target));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(StageError::io("cannot write", target, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, ownership: Ownership, contents: &str) -> NodeFile {
        NodeFile {
            path: path.into(),
            ownership,
            contents: contents.into(),
        }
    }

    #[test]
    fn refuses_paths_that_leave_the_node_crate() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("node");
        let files = vec![file(
            "../escape.rs",
            Ownership::Generated,
            "// @generated\n",
        )];
        let err = write(dir.path(), &node, &files, false).unwrap_err();
        assert!(matches!(err, StageError::OutsideOutput { .. }), "{err}");
        assert!(!dir.path().join("escape.rs").exists());
    }

    #[test]
    fn writes_only_what_changed_and_keeps_scaffolds() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("node");
        let mut files = vec![
            file("src/lib.rs", Ownership::Generated, "// @generated\nA\n"),
            file("src/handler.rs", Ownership::Scaffold, "stub\n"),
        ];
        let first = write(dir.path(), &node, &files, false).unwrap();
        assert_eq!(first.changed, vec!["src/lib.rs", "src/handler.rs"]);
        std::fs::write(node.join("src/handler.rs"), "mine\n").unwrap();
        files[0].contents = "// @generated\nB\n".into();
        let second = write(dir.path(), &node, &files, false).unwrap();
        assert_eq!(second.changed, vec!["src/lib.rs"]);
        assert_eq!(
            std::fs::read_to_string(node.join("src/handler.rs")).unwrap(),
            "mine\n"
        );
    }

    #[test]
    fn refuses_to_overwrite_a_file_without_the_marker() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("node");
        std::fs::create_dir_all(node.join("src")).unwrap();
        std::fs::write(node.join("src/lib.rs"), "hand-written\n").unwrap();
        let files = vec![file("src/lib.rs", Ownership::Generated, "// @generated\n")];
        let err = write(dir.path(), &node, &files, false).unwrap_err();
        assert!(err.to_string().contains("src/lib.rs"), "{err}");
        assert!(err.to_string().contains("move or delete"), "{err}");
        assert_eq!(
            std::fs::read_to_string(node.join("src/lib.rs")).unwrap(),
            "hand-written\n"
        );
    }

    #[cfg(unix)]
    #[test]
    fn refuses_folders_and_files_that_link_outside() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("kept/src")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), out.join("linked")).unwrap();
        std::fs::write(elsewhere.path().join("lib.rs"), "// @generated\n").unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("lib.rs"), out.join("kept/src/lib.rs"))
            .unwrap();
        let files = vec![file(
            "src/lib.rs",
            Ownership::Generated,
            "// @generated\nA\n",
        )];
        for node in ["linked", "kept"] {
            let err = write(&out, &out.join(node), &files, false).unwrap_err();
            assert!(matches!(err, StageError::OutsideOutput { .. }), "{err}");
        }
        assert!(!elsewhere.path().join("src").exists());
        assert_eq!(
            std::fs::read_to_string(elsewhere.path().join("lib.rs")).unwrap(),
            "// @generated\n"
        );
    }
}
