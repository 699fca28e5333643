//! Stage 5.5, refine: Rust files printed with prettyplease, so the output
//! is formatted and identical for identical input; files sorted by path.

use super::{NodeFiles, ParsedFiles, files::NodeFile};

/// Formats the parsed files.
pub fn refine(files: ParsedFiles) -> NodeFiles {
    let mut out: NodeFiles = files
        .into_iter()
        .map(|file| {
            let contents = match &file.syntax {
                Some(syntax) => {
                    with_leading_comments(&file.rendered.text, prettyplease::unparse(syntax))
                }
                None => file.rendered.text,
            };
            NodeFile {
                path: file.rendered.path,
                ownership: file.rendered.ownership,
                contents,
            }
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// prettyplease keeps doc comments but drops plain `//` comments; the
/// leading `//` lines (the `@generated` header) are carried over.
fn with_leading_comments(source: &str, formatted: String) -> String {
    let header: String = source
        .lines()
        .take_while(|l| {
            l.trim_start().starts_with("//")
                && !l.trim_start().starts_with("///")
                && !l.trim_start().starts_with("//!")
        })
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    if header.is_empty() {
        formatted
    } else {
        format!("{header}\n{formatted}")
    }
}
