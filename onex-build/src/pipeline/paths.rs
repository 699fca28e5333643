//! Path arithmetic without touching the file system: the relative path from
//! a node crate to the runtime crates it depends on.

use std::path::{Component, Path, PathBuf};

/// Removes `.` components and folds `..` into the component before it.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The relative path from the folder `from` to `to` (both absolute),
/// `/`-separated, e.g. `../../onex`.
pub fn relative(from: &Path, to: &Path) -> String {
    let from = normalize(from);
    let to = normalize(to);
    let from: Vec<Component<'_>> = from.components().collect();
    let to: Vec<Component<'_>> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/w/generated/x"), Path::new("/w/onex")),
            "../../onex"
        );
        assert_eq!(
            relative(Path::new("/w/a/./b/../c"), Path::new("/w/a/c/d")),
            "d"
        );
        assert_eq!(relative(Path::new("/w"), Path::new("/w")), ".");
    }
}
