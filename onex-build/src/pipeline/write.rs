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
    let plan = plan(out_dir, node_dir, files, check)?;
    if !check {
        for (target, file) in &plan {
            write_atomically(target, file.contents.as_bytes())?;
        }
    }
    Ok(WriteOutcome {
        changed: plan.into_iter().map(|(_, f)| f.path.clone()).collect(),
    })
}

/// The files that need writing, after every safety check passed, so that a
/// refused file leaves the node crate untouched.
fn plan<'a>(
    out_dir: &Path,
    node_dir: &Path,
    files: &'a NodeFiles,
    check: bool,
) -> Result<Vec<(PathBuf, &'a NodeFile)>, StageError> {
    let out_root = if check {
        out_dir.to_path_buf()
    } else {
        std::fs::create_dir_all(out_dir)
            .map_err(|e| StageError::io("cannot create the output directory", out_dir, e))?;
        out_dir
            .canonicalize()
            .map_err(|e| StageError::io("cannot resolve the output directory", out_dir, e))?
    };
    let mut plan = Vec::new();
    for file in files {
        let target = checked_target(out_dir, node_dir, &file.path)?;
        if !check {
            ensure_inside(&out_root, out_dir, &target)?;
        }
        let existing = match std::fs::read(&target) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StageError::io("cannot read", &target, e)),
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

/// Creates the target's folder and checks that, with symbolic links
/// resolved, it lies inside the output directory and the target itself is
/// not a link.
fn ensure_inside(out_root: &Path, out_dir: &Path, target: &Path) -> Result<(), StageError> {
    let outside = || StageError::OutsideOutput {
        path: target.to_path_buf(),
        out_dir: out_dir.to_path_buf(),
    };
    let parent = target.parent().ok_or_else(outside)?;
    std::fs::create_dir_all(parent).map_err(|e| StageError::io("cannot create", parent, e))?;
    let resolved = parent
        .canonicalize()
        .map_err(|e| StageError::io("cannot resolve", parent, e))?;
    if !resolved.starts_with(out_root) {
        return Err(outside());
    }
    if std::fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(outside());
    }
    Ok(())
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
}
