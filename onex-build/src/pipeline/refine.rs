//! Stage 5.5, refine: Rust files printed with prettyplease, so the output
//! is formatted and identical for identical input; files sorted by path.

use super::{NodeFiles, ParsedFile, ParsedFiles, files::NodeFile};
use crate::render;

/// Formats the parsed files.
pub fn refine(files: ParsedFiles) -> NodeFiles {
    let mut out: NodeFiles = files.into_iter().map(refine_file).collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Formats one parsed file with [`render::print_rust`]; a text file is
/// passed through.
pub fn refine_file(file: ParsedFile) -> NodeFile {
    let contents = match &file.syntax {
        Some(syntax) => render::print_rust(&file.rendered.text, syntax),
        None => file.rendered.text,
    };
    NodeFile {
        path: file.rendered.path,
        ownership: file.rendered.ownership,
        contents,
    }
}
