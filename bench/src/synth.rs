//! Synthetic contracts: copies of the example contracts with the node
//! renamed, so that a benchmark can run the pipeline on any number of valid,
//! distinct contracts.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

/// The example contracts of the repository (`contracts/*.yaml`), sorted by
/// file name.
pub fn example_contracts(contracts_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(contracts_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// The folder of the example contracts: `contracts/` at the workspace root.
pub fn default_contracts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts")
}

/// A contract's text with its node renamed: `node.name` (and `node.service`,
/// when the contract sets it) get `suffix` appended. Everything else, comments
/// included, stays as written. `None` when the text has no `node:` block
/// with a `name:`.
pub fn rename_node(source: &str, suffix: &str) -> Option<String> {
    let mut out = String::with_capacity(source.len() + 2 * suffix.len());
    let mut in_node = false;
    let mut renamed = false;
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            in_node = trimmed.trim_end() == "node:";
        }
        if in_node
            && indent > 0
            && let Some(renamed_line) = rename_line(line, indent, suffix)
        {
            renamed |= trimmed.starts_with("name:");
            out.push_str(&renamed_line);
            continue;
        }
        out.push_str(line);
    }
    renamed.then_some(out)
}

/// `  name: x  # c` as `  name: x{suffix} # c`, for the keys `name` and
/// `service`; `None` for any other line.
fn rename_line(line: &str, indent: usize, suffix: &str) -> Option<String> {
    let trimmed = &line[indent..];
    let key = ["name:", "service:"]
        .into_iter()
        .find(|k| trimmed.starts_with(k))?;
    let value = trimmed[key.len()..].trim();
    let (value, comment) = match value.find(" #") {
        Some(i) => (value[..i].trim_end(), &value[i..]),
        None => (value, ""),
    };
    let unquoted = value.trim_matches(|c| c == '"' || c == '\'');
    let newline = if line.ends_with('\n') { "\n" } else { "" };
    Some(format!(
        "{}{key} {unquoted}{suffix}{comment}{newline}",
        &line[..indent]
    ))
}

/// Writes `n` synthetic contracts into `dir`, cycling through the examples:
/// `{stem}_{i:04}.yaml` with node `{name}_{i:04}`. Returns their paths in
/// order.
pub fn write_contracts(examples: &[PathBuf], dir: &Path, n: usize) -> io::Result<Vec<PathBuf>> {
    if examples.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no example contracts",
        ));
    }
    let sources = examples
        .iter()
        .map(|p| Ok((p, fs::read_to_string(p)?)))
        .collect::<io::Result<Vec<_>>>()?;
    fs::create_dir_all(dir)?;
    (0..n)
        .map(|i| {
            let (example, source) = &sources[i % sources.len()];
            let suffix = format!("_{i:04}");
            let renamed = rename_node(source, &suffix).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: no node.name to rename", example.display()),
                )
            })?;
            let stem = example
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("contract");
            let path = dir.join(format!("{stem}{suffix}.yaml"));
            fs::write(&path, renamed)?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "# c\ncontract_version: 1\nnode:\n  name: postgres_writer  # the name\n  node_type: effect\n  service: \"pg\"\ntypes:\n  - name: WriteRecordInput\n";

    #[test]
    fn renames_name_and_service_only() {
        let out = rename_node(SOURCE, "_0007").unwrap();
        assert_eq!(
            out,
            "# c\ncontract_version: 1\nnode:\n  name: postgres_writer_0007 # the name\n  node_type: effect\n  service: pg_0007\ntypes:\n  - name: WriteRecordInput\n"
        );
    }

    #[test]
    fn no_node_block_is_none() {
        assert_eq!(rename_node("types: []\n", "_1"), None);
    }

    #[test]
    fn example_contracts_rename_and_load() {
        let examples = example_contracts(&default_contracts_dir()).unwrap();
        assert!(!examples.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let paths = write_contracts(&examples, dir.path(), examples.len() + 1).unwrap();
        for (i, path) in paths.iter().enumerate() {
            let loaded = onex_build::contract::load_file(path).unwrap();
            assert!(loaded.contract.node.name.ends_with(&format!("_{i:04}")));
        }
    }
}
