//! docs/contracts.md cannot rot: every YAML block in it is a complete
//! contract that loads and passes every gate, and its gate table lists
//! every gate. The example contracts under `contracts/` pass too.

use std::path::{Path, PathBuf};

use onex_build::{
    contract::load_str,
    validate::{GATES, check_file, validate_with},
};

const DOC: &str = "docs/contracts.md";

/// The ```yaml blocks of a Markdown text, with the line each starts on.
fn yaml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```yaml") => {
                current = Some((i + 2, String::new()))
            }
            Some((_, text)) if line.trim_start().starts_with("```") => {
                let text = std::mem::take(text);
                if let Some((start, _)) = current.take() {
                    blocks.push((start, text));
                }
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_yaml_block_of_the_reference_is_a_valid_contract() {
    let doc = std::fs::read_to_string(DOC).expect("docs/contracts.md");
    let blocks = yaml_blocks(&doc);
    assert!(blocks.len() >= 4, "one example per node type at least");
    // The examples consume each other by node name: each is saved as
    // `{node}.yaml` in one folder, the search path of every example.
    let saved = tempfile::tempdir().expect("a temporary directory");
    for (line, text) in &blocks {
        if let Ok(loaded) = load_str(Path::new(DOC), text.clone()) {
            let file = saved
                .path()
                .join(format!("{}.yaml", loaded.contract.node.name));
            std::fs::write(&file, text).unwrap_or_else(|e| panic!("line {line}: {e}"));
        }
    }
    let search = [saved.path().to_path_buf()];
    let mut node_types = Vec::new();
    for (line, text) in blocks {
        let name = PathBuf::from(format!("{DOC}:{line}"));
        let checked = load_str(&name, text).and_then(|loaded| {
            validate_with(&loaded, &search)?;
            Ok(loaded)
        });
        match checked {
            Ok(loaded) => node_types.push(loaded.contract.node.node_type.as_str()),
            Err(ds) => panic!("the example at {DOC} line {line} is not valid:\n{ds}"),
        }
    }
    for t in ["effect", "compute", "reducer", "orchestrator"] {
        assert!(node_types.contains(&t), "no {t} example in {DOC}");
    }
}

#[test]
fn the_reference_lists_every_gate() {
    let doc = std::fs::read_to_string(DOC).expect("docs/contracts.md");
    for gate in GATES {
        assert!(
            doc.contains(&format!("| {} | {} |", gate.id, gate.name)),
            "{DOC} lacks the row of gate {} ({})",
            gate.id,
            gate.name
        );
    }
}

#[test]
fn the_example_contracts_are_valid() {
    let mut files: Vec<PathBuf> = std::fs::read_dir("contracts")
        .expect("contracts/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for path in files {
        if let Err(ds) = check_file(Path::new(&path)) {
            panic!("{} is not valid:\n{ds}", path.display());
        }
    }
}
