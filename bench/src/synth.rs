//! Synthetic contracts: copies of the example contracts with the node
//! renamed, so that a benchmark can run the pipeline on any number of valid,
//! distinct contracts.
//!
//! The examples form a system: `order_cli` consumes `order_workflow`, which
//! consumes `postgres_writer`. Copies are made in rounds, one copy of every
//! example per round, all renamed with the round's suffix, and every mention
//! of an example (`order_workflow.yaml`, `order_workflow.place_order`) is
//! renamed with them, so a copy consumes the copies of its own round. The
//! examples are ordered dependencies first, so that a round cut short still
//! holds every contract its copies consume.

use std::{
    collections::BTreeSet,
    fs, io,
    path::{Path, PathBuf},
};

/// The example contracts of the repository (`contracts/*.yaml`), each after
/// the examples it consumes, else by file name.
pub fn example_contracts(contracts_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(contracts_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    Ok(dependencies_first(paths))
}

/// `paths` reordered so that each contract comes after the contracts of
/// `paths` it consumes; otherwise in the order given. A cycle (which the
/// gates refuse anyway) keeps its contracts in the order given.
fn dependencies_first(mut pending: Vec<PathBuf>) -> Vec<PathBuf> {
    let consumed = |path: &Path| -> BTreeSet<PathBuf> {
        let Ok(loaded) = onex_build::contract::load_file(path) else {
            return BTreeSet::new();
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        loaded
            .contract
            .consumes
            .iter()
            .map(|c| dir.join(&c.contract))
            .collect()
    };
    let mut ordered: Vec<PathBuf> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|p| {
                consumed(p)
                    .iter()
                    .all(|c| ordered.contains(c) || !pending.contains(c))
            })
            .unwrap_or(0);
        ordered.push(pending.remove(ready));
    }
    ordered
}

/// The folder of the example contracts: `contracts/` at the workspace root.
pub fn default_contracts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts")
}

/// A contract's text with its node renamed: `node.name` (and `node.service`,
/// when the contract sets it) get `suffix` appended, and so does every
/// mention of a name of `family` followed by a dot (a contract file
/// `name.yaml`, an event `name.event`, a topic `name.dlq.v1`). Everything
/// else, comments included, stays as written. `None` when the text has no
/// `node:` block with a `name:`.
pub fn rename_node(source: &str, suffix: &str, family: &[&str]) -> Option<String> {
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
        out.push_str(&rename_mentions(line, suffix, family));
    }
    renamed.then_some(out)
}

/// `line` with every `name.` of `family` that starts a word as
/// `name{suffix}.`.
fn rename_mentions(line: &str, suffix: &str, family: &[&str]) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    'scan: while !rest.is_empty() {
        let starts_word = !out.chars().next_back().is_some_and(is_word);
        if starts_word {
            for name in family {
                if let Some(after) = rest.strip_prefix(name)
                    && after.starts_with('.')
                {
                    out.push_str(name);
                    out.push_str(suffix);
                    rest = after;
                    continue 'scan;
                }
            }
        }
        let c = rest.chars().next().expect("rest is not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
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

/// Writes `n` synthetic contracts into `dir`, cycling through the examples
/// in rounds: copy `i` is example `i % examples.len()` of round
/// `r = i / examples.len()`, written as `{stem}_{r:04}.yaml` with node
/// `{name}_{r:04}`. The examples' node names must be their file stems, as
/// they are in `contracts/`. Returns the paths in order.
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
    let stem = |p: &Path| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("contract")
            .to_owned()
    };
    let stems: Vec<String> = examples.iter().map(|p| stem(p)).collect();
    let family: Vec<&str> = stems.iter().map(String::as_str).collect();
    fs::create_dir_all(dir)?;
    (0..n)
        .map(|i| {
            let (example, source) = &sources[i % sources.len()];
            let suffix = format!("_{:04}", i / sources.len());
            let renamed = rename_node(source, &suffix, &family).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: no node.name to rename", example.display()),
                )
            })?;
            let path = dir.join(format!("{}{suffix}.yaml", stem(example)));
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
        let out = rename_node(SOURCE, "_0007", &[]).unwrap();
        assert_eq!(
            out,
            "# c\ncontract_version: 1\nnode:\n  name: postgres_writer_0007 # the name\n  node_type: effect\n  service: pg_0007\ntypes:\n  - name: WriteRecordInput\n"
        );
    }

    #[test]
    fn no_node_block_is_none() {
        assert_eq!(rename_node("types: []\n", "_1", &[]), None);
    }

    #[test]
    fn mentions_of_the_family_are_renamed() {
        let line = "send: order_workflow.place_order  # see xorder_workflow.yaml, order_workflow\n";
        assert_eq!(
            rename_mentions(line, "_0003", &["order_workflow", "order_cli"]),
            "send: order_workflow_0003.place_order  # see xorder_workflow.yaml, order_workflow\n"
        );
    }

    #[test]
    fn examples_come_after_what_they_consume() {
        let examples = example_contracts(&default_contracts_dir()).unwrap();
        let position = |stem: &str| {
            examples
                .iter()
                .position(|p| p.file_stem().unwrap() == stem)
                .unwrap()
        };
        assert!(position("postgres_writer") < position("order_workflow"));
        assert!(position("order_workflow") < position("order_cli"));
    }

    /// Every count of copies passes the gates, a round cut short included:
    /// each copy finds the copies it consumes.
    #[test]
    fn copies_pass_the_gates() {
        let examples = example_contracts(&default_contracts_dir()).unwrap();
        assert!(!examples.is_empty());
        for n in [1, examples.len() - 1, 2 * examples.len() + 2] {
            let dir = tempfile::tempdir().unwrap();
            let paths = write_contracts(&examples, dir.path(), n).unwrap();
            assert_eq!(paths.len(), n);
            for (i, path) in paths.iter().enumerate() {
                let loaded = onex_build::validate::check_file(path)
                    .unwrap_or_else(|d| panic!("{} of {n}: {d}", path.display()));
                let round = i / examples.len();
                assert!(loaded.contract.node.name.ends_with(&format!("_{round:04}")));
            }
        }
    }
}
