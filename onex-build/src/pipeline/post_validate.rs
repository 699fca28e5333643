//! Stage 5, post-validate: every generated Rust file parses with syn, and
//! every generated file carries the `@generated` marker.

use super::{
    ParsedFiles, RenderedFile, RenderedFiles, StageError,
    files::{FileKind, GENERATED_MARKER, Ownership, ParsedFile},
    report::GateResult,
};

/// The gate: every generated `.rs` file parses.
pub const SYNTAX_GATE: &str = "SV-003";
/// The gate: every generated file carries the marker.
pub const MARKER_GATE: &str = "OUT-002";

/// Parses the Rust files; returns them with their syntax trees and the gate
/// results.
pub fn post_validate(files: RenderedFiles) -> Result<(ParsedFiles, Vec<GateResult>), StageError> {
    let parsed = files
        .into_iter()
        .map(post_validate_file)
        .collect::<Result<ParsedFiles, StageError>>()?;
    let gates = vec![
        GateResult::passed(SYNTAX_GATE, "every generated Rust file parses"),
        GateResult::passed(
            MARKER_GATE,
            "every generated file carries the @generated marker",
        ),
    ];
    Ok((parsed, gates))
}

/// Checks one rendered file: the marker when it is generated, the syntax
/// when it is Rust.
pub fn post_validate_file(rendered: RenderedFile) -> Result<ParsedFile, StageError> {
    if rendered.ownership == Ownership::Generated && !rendered.text.contains(GENERATED_MARKER) {
        return Err(StageError::Template {
            template: rendered.template,
            message: format!("`{}` lacks the `{GENERATED_MARKER}` marker", rendered.path),
        });
    }
    let syntax = match rendered.kind {
        FileKind::Rust => Some(syn::parse_file(&rendered.text).map_err(|e| {
            let start = e.span().start();
            StageError::Syntax {
                file: rendered.path.clone(),
                template: rendered.template.clone(),
                line: start.line,
                column: start.column + 1,
                message: e.to_string(),
            }
        })?),
        FileKind::Text => None,
    };
    Ok(ParsedFile { rendered, syntax })
}
