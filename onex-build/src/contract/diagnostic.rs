//! Diagnostics: what is wrong with a contract, where, and how to fix it.

use std::{fmt, path::PathBuf};

/// One problem found in a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The stable id of the gate that found it (e.g. `SV-001`), or `PARSE`
    /// for YAML and schema errors.
    pub code: &'static str,
    /// The contract file.
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// 1-based column, where known.
    pub column: Option<usize>,
    /// The field path, e.g. `operations[1].input`; empty for the document.
    pub field_path: String,
    /// What is wrong.
    pub message: String,
    /// What was expected, where that helps.
    pub expected: Option<String>,
    /// What was found, where that helps.
    pub found: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with a code, file and message; the rest unset.
    pub fn new(code: &'static str, file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            file: file.into(),
            line: None,
            column: None,
            field_path: String::new(),
            message: message.into(),
            expected: None,
            found: None,
            help: None,
        }
    }

    /// Sets the line and column.
    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    /// Sets the field path.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.field_path = path.into();
        self
    }

    /// Sets what was expected.
    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// Sets what was found.
    pub fn found(mut self, found: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self
    }

    /// Sets how to fix it.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl Diagnostic {
    /// The report as rustc and cargo lay it out: a header with the code,
    /// the file and position, the offending line of `source` with a caret
    /// under the value, then the field path, what was expected and the fix.
    ///
    /// `source` is the contract's text; without it (or when the position is
    /// not in it) the snippet is left out. `shown_path` is the path printed,
    /// so that a command line can show the path as the user wrote it.
    /// `color` adds the ANSI colours of a terminal.
    pub fn render(&self, source: Option<&str>, shown_path: &str, color: bool) -> String {
        use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};

        let snippet = self
            .line
            .zip(source)
            .and_then(|(line, source)| line_span(source, line, self.column.unwrap_or(1)));
        let mut group = Group::with_title(
            Level::ERROR
                .primary_title(self.message.as_str())
                .id(self.code),
        );
        let mut found_shown = false;
        match snippet {
            Some((text, span)) => {
                let mut annotation = AnnotationKind::Primary.span(span);
                if let Some(found) = &self.found {
                    annotation = annotation.label(format!("found {found}"));
                    found_shown = true;
                }
                group = group.element(
                    Snippet::source(text)
                        .line_start(self.line.unwrap_or(1))
                        .path(shown_path)
                        .annotation(annotation),
                );
            }
            None => {
                let mut origin = Origin::path(shown_path);
                if let Some(line) = self.line {
                    origin = origin.line(line).char_column(self.column.unwrap_or(1));
                }
                group = group.element(origin);
            }
        }
        let note = |name: &'static str, text: &str| {
            Level::NOTE.with_name(Some(name)).message(text.to_owned())
        };
        if !self.field_path.is_empty() {
            group = group.element(note("field", &self.field_path));
        }
        if let Some(expected) = &self.expected {
            group = group.element(note("expected", expected));
        }
        if let Some(found) = self.found.as_deref().filter(|_| !found_shown) {
            group = group.element(note("found", found));
        }
        if let Some(help) = &self.help {
            group = group.element(Level::HELP.message(help.as_str()));
        }
        let renderer = if color {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        renderer.render(&[group])
    }

    /// [`Diagnostic::render`] with the contract's text read from
    /// [`Diagnostic::file`] (lossily, so that a file that is not UTF-8 still
    /// shows its line) and the path as stored.
    pub fn render_from_file(&self, color: bool) -> String {
        let source = self
            .line
            .and_then(|_| std::fs::read(&self.file).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        self.render(source.as_deref(), &self.file.display().to_string(), color)
    }
}

/// The text of 1-based `line` of `source` and the byte range, within it, of
/// the value that starts at 1-based character `column`: a quoted string up
/// to its closing quote, else the plain word up to the next `,`, `]`, `}`,
/// `: `, ` #` or the end of the line. A space or YAML indicator at the
/// position gets one caret, and so does an empty value.
fn line_span(source: &str, line: usize, column: usize) -> Option<(String, std::ops::Range<usize>)> {
    let text = source.split('\n').nth(line.checked_sub(1)?)?;
    // Tabs would shift the caret in a terminal; show them as spaces, as
    // rustc does.
    // A byte-order mark is no part of the first line as an editor shows it.
    let text = text.trim_start_matches('\u{feff}');
    let text = text.trim_end_matches('\r').replace('\t', " ");
    let start = text
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(text.len(), |(i, _)| i);
    let rest = &text[start..];
    let len = match rest.chars().next() {
        Some(quote @ ('"' | '\'')) => rest[1..].find(quote).map_or(rest.len(), |end| end + 2),
        // An empty list or mapping.
        Some('[' | '{') if rest.starts_with("[]") || rest.starts_with("{}") => 2,
        // A tab, a control or undecodable character, a stray `:` or
        // bracket: the one character.
        Some(c)
            if c.is_whitespace()
                || c.is_control()
                || c == char::REPLACEMENT_CHARACTER
                || ":,[]{}-#|>&*!%@`".contains(c) =>
        {
            c.len_utf8()
        }
        Some(_) => {
            let mut end = rest.len();
            // `map<string, T>`: a comma inside angle brackets is part of
            // the type.
            let mut angle = 0usize;
            for (i, c) in rest.char_indices() {
                match c {
                    '<' => angle += 1,
                    '>' => angle = angle.saturating_sub(1),
                    _ => {}
                }
                let next = rest[i + c.len_utf8()..].chars().next();
                let stops = matches!(c, ',' | ']' | '}') && angle == 0
                    || c == ':' && next.is_none_or(char::is_whitespace)
                    || c == '#' && rest[..i].ends_with(' ');
                if stops && i > 0 {
                    end = i;
                    break;
                }
            }
            rest[..end].trim_end().len().max(1).min(rest.len())
        }
        None => 0,
    };
    Some((text.clone(), start..start + len))
}

impl fmt::Display for Diagnostic {
    /// The plain report, with the offending line read from the contract
    /// file when it is there (see [`Diagnostic::render_from_file`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render_from_file(false))
    }
}

impl std::error::Error for Diagnostic {}

/// Several diagnostics, shown one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl Diagnostics {
    /// How many diagnostics there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The diagnostics, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caret(line: &str, column: usize) -> String {
        let (text, span) = line_span(line, 1, column).unwrap_or_default();
        text[span].to_owned()
    }

    #[test]
    fn the_caret_spans_the_value() {
        assert_eq!(caret("  version: latest", 12), "latest");
        assert_eq!(caret("  domian: orders", 3), "domian");
        assert_eq!(
            caret("  - {name: x, type: map<string, Order>}", 21),
            "map<string, Order>"
        );
        assert_eq!(caret("  name: \"a, b\" # note", 9), "\"a, b\"");
        assert_eq!(caret("  topics: []", 11), "[]");
        assert_eq!(caret("\tname: x", 1), " ");
        assert_eq!(caret("\u{feff}contract_version: 2", 19), "2");
    }

    #[test]
    fn the_report_has_one_header_the_line_and_the_fix() {
        let d = Diagnostic::new(
            "SV-002",
            "c.yaml",
            "the node version is not a semantic version",
        )
        .at(2, 12)
        .path("node.version")
        .expected("MAJOR.MINOR.PATCH")
        .found("`latest`")
        .help("write `version: 1.0.0`");
        let plain = d.render(Some("node:\n  version: latest\n"), "c.yaml", false);
        assert_eq!(
            plain,
            "error[SV-002]: the node version is not a semantic version
 --> c.yaml:2:12
  |
2 |   version: latest
  |            ^^^^^^ found `latest`
  |
  = field: node.version
  = expected: MAJOR.MINOR.PATCH
  = help: write `version: 1.0.0`"
        );
        let coloured = d.render(Some("node:\n  version: latest\n"), "c.yaml", true);
        assert!(coloured.contains('\u{1b}'), "{coloured}");
        // Without the text, the position and every note remain.
        let bare = d.render(None, "c.yaml", false);
        assert!(bare.contains("--> c.yaml:2:12"), "{bare}");
        assert!(bare.contains("= found: `latest`"), "{bare}");
    }
}
