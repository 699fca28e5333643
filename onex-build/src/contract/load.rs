//! Stage 1, parse: YAML text to a [`Contract`], with precise diagnostics.

use std::path::{Path, PathBuf};

use super::{diagnostic::Diagnostic, model::Contract};

/// A parsed contract and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedContract {
    /// The contract file.
    pub path: PathBuf,
    /// The YAML source text.
    pub source: String,
    /// The parsed contract.
    pub contract: Contract,
}

/// Reads and parses a contract file.
pub fn load_file(path: &Path) -> Result<LoadedContract, Diagnostic> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::new("PARSE", path, format!("cannot read the contract: {e}"))
            .help("check that the file exists and is readable UTF-8 text")
    })?;
    load_str(path, source)
}

/// Parses contract text; `path` is used in diagnostics only.
pub fn load_str(path: &Path, source: String) -> Result<LoadedContract, Diagnostic> {
    match serde_yaml::from_str::<Contract>(&source) {
        Ok(contract) => Ok(LoadedContract {
            path: path.to_owned(),
            source,
            contract,
        }),
        Err(e) => {
            let mut d = Diagnostic::new("PARSE", path, e.to_string());
            if let Some(loc) = e.location() {
                d = d.at(loc.line(), loc.column());
            }
            Err(d)
        }
    }
}
