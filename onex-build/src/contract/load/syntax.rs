//! YAML syntax errors told as what the user did: a key indented deeper or
//! less than its siblings, a list item without its `-`, a tab, a bracket
//! left open; with the field path the line belongs to and the fix.
//!
//! The YAML parser stops at the first syntax error and knows nothing of the
//! contract's fields, so the path is read back from the lines above the
//! error by their indentation, the way a reader of the file sees it.

use std::path::Path;

use super::{Diagnostic, PARSE};
use crate::contract::locate::Position;

/// One level of nesting above a line: a key, or an item of a list.
#[derive(Debug, Clone)]
struct Frame {
    /// 0-based column of the key or of the item's `-`.
    column: usize,
    segment: Segment,
    /// The key's line holds its value (`key: value`): nothing can nest
    /// under it.
    inline_value: bool,
    /// 1-based line.
    line: usize,
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Item(usize),
}

/// What the lines above a position say about it.
#[derive(Debug, Default)]
struct Context {
    /// The nesting at the start of the line, before its own key.
    frames: Vec<Frame>,
}

fn path_of(frames: &[Frame]) -> String {
    let mut path = String::new();
    for frame in frames {
        match &frame.segment {
            Segment::Key(key) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Segment::Item(index) => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// The column of the first character that is not a space.
fn indent_of(line: &str) -> usize {
    line.chars().take_while(|&c| c == ' ').count()
}

/// The key a line's content starts with (`name: x` → `name`), if any.
fn key_of(content: &str) -> Option<(String, bool)> {
    let bytes = content.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ') {
            let key = content[..i].trim();
            let key = key.trim_matches(|c| c == '"' || c == '\'');
            if key.is_empty() || key.starts_with(['[', '{', '#', '-']) || key.contains(' ') {
                return None;
            }
            let value = content[i + 1..].trim();
            let value = value.split(" #").next().unwrap_or("").trim();
            return Some((key.to_owned(), !value.is_empty()));
        }
        if matches!(bytes[i], b'"' | b'\'' | b'[' | b'{' | b'#') {
            return None;
        }
        i += 1;
    }
    None
}

/// Reads lines `1..line` (1-based, exclusive) and returns the nesting at
/// the start of `line`.
fn context(source: &str, line: usize) -> Context {
    let mut frames: Vec<Frame> = Vec::new();
    // The column of a key whose value is a `|` or `>` block: the more
    // indented lines below it are text.
    let mut block_scalar: Option<usize> = None;
    for (i, text) in source.lines().enumerate().take(line.saturating_sub(1)) {
        let text = text.trim_end_matches('\r');
        let trimmed = text.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let indent = indent_of(text);
        if let Some(column) = block_scalar {
            if indent > column {
                continue;
            }
            block_scalar = None;
        }
        let mut column = indent;
        let mut rest = trimmed;
        let is_item = |rest: &str| rest == "-" || rest.starts_with("- ");
        if is_item(rest) {
            // A list may sit in the column of its key (`types:` then
            // `- name: A`): that key stays.
            frames.retain(|f| {
                f.column < column
                    || f.column == column && matches!(f.segment, Segment::Item(_))
                    || f.column == column && !f.inline_value
            });
        } else {
            frames.retain(|f| f.column < column);
        }
        // `- - key: v`: one item per dash.
        while is_item(rest) {
            let index = match frames.last() {
                Some(Frame {
                    segment: Segment::Item(n),
                    column: c,
                    ..
                }) if *c == column => n + 1,
                _ => 0,
            };
            frames.retain(|f| {
                f.column < column || f.column == column && matches!(f.segment, Segment::Key(_))
            });
            frames.push(Frame {
                column,
                segment: Segment::Item(index),
                inline_value: false,
                line: i + 1,
            });
            let after = rest[1..].trim_start_matches(' ');
            column += rest.len() - after.len();
            rest = after;
        }
        if let Some((key, inline_value)) = key_of(rest) {
            frames.retain(|f| f.column < column);
            let value = rest.split_once(':').map(|(_, v)| v.trim()).unwrap_or("");
            if value.starts_with(['|', '>']) {
                block_scalar = Some(column);
            }
            frames.push(Frame {
                column,
                segment: Segment::Key(key),
                inline_value,
                line: i + 1,
            });
        }
    }
    Context { frames }
}

/// The nesting a line at `indent` belongs to: the frames left of it, less
/// a last `key: value`, which cannot hold anything.
fn parents_at(mut frames: Vec<Frame>, indent: usize) -> Vec<Frame> {
    frames.retain(|f| f.column < indent);
    while frames.last().is_some_and(|f| f.inline_value) {
        frames.pop();
    }
    frames
}

/// The line's text (1-based), without its line break.
fn line_text(source: &str, line: usize) -> &str {
    source
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .trim_end_matches('\r')
}

fn spaces(n: usize) -> String {
    if n == 1 {
        "1 space".to_owned()
    } else {
        format!("{n} spaces")
    }
}

/// The diagnostic of a YAML syntax error at `at` with the parser's
/// `message`.
pub(super) fn diagnostic(path: &Path, source: &str, message: &str, at: Position) -> Diagnostic {
    if message.contains("tab") {
        return tab(path, source, at);
    }
    if let Some(d) = unclosed_bracket(path, source, message, at) {
        return d;
    }
    let line = at.0;
    let text = line_text(source, line);
    let indent = indent_of(text);
    let content = text.trim_start_matches(' ');
    let key = key_of(content).map(|(k, _)| k);
    let frames = context(source, line).frames;
    let parents = parents_at(frames.clone(), indent);
    let located = |d: Diagnostic| d.at(line, indent + 1);

    if message.contains("did not find expected '-' indicator") {
        // A line among list items without its `-`: the items sit at the
        // column of the last item above.
        let item = frames
            .iter()
            .rposition(|f| matches!(f.segment, Segment::Item(_)) && f.column <= indent);
        if let Some(i) = item {
            let Segment::Item(index) = frames[i].segment else {
                unreachable!("rposition found an item")
            };
            let column = frames[i].column;
            let field = format!("{}[{}]", path_of(&frames[..i]), index + 1);
            let fixed = format!("{}- {content}", " ".repeat(column));
            return located(
                Diagnostic::new(PARSE, path, "a list item has no `-`")
                    .path(field)
                    .expected(format!("a new item starting with `- ` at column {}", column + 1))
                    .found(format!("`{}` without a `-`", content.trim_end()))
                    .help(format!(
                        "start the item with a dash, in the column of the items above: `{fixed}`; if it belongs to the item above, indent it like that item's keys"
                    )),
            );
        }
    }

    if message.contains("mapping values are not allowed") {
        // A key nested under a `key: value` line, which cannot hold one:
        // the key is indented deeper than its sibling.
        if let (Some(key), Some(sibling)) = (&key, frames.last().filter(|f| f.inline_value))
            && indent > sibling.column
            && content.starts_with(key.as_str())
        {
            let Segment::Key(sibling_key) = &sibling.segment else {
                unreachable!("inline values belong to keys")
            };
            let parents: Vec<Frame> = frames[..frames.len() - 1].to_vec();
            let field = join(&path_of(&parents), key);
            return located(
                Diagnostic::new(
                    PARSE,
                    path,
                    format!("`{key}` is indented deeper than `{sibling_key}` above it"),
                )
                .path(field)
                .expected(format!(
                    "{} before `{key}`, as before `{sibling_key}` (line {})",
                    spaces(sibling.column),
                    sibling.line
                ))
                .found(spaces(indent))
                .help(format!(
                    "indent `{key}` with {}, like `{sibling_key}`; a key indented deeper than the line above is read as part of that line's value",
                    spaces(sibling.column)
                )),
            );
        }
        let field = match &key {
            Some(key) => join(&path_of(&parents), key),
            None => path_of(&parents),
        };
        return Diagnostic::new(PARSE, path, "a value holds `: ` without quotes")
            .at(at.0, at.1)
            .path(field)
            .expected("a plain value, or a quoted one when it holds `: `")
            .found("a second `: ` on the line, which YAML reads as a nested key")
            .help(format!(
                "quote the value (`{}\"...\"`), or, if this line is a key of its own, put it on a line of its own",
                key.map(|k| format!("{k}: ")).unwrap_or_default()
            ));
    }

    if message.contains("did not find expected key") {
        // A key indented less than its siblings but more than its parent.
        let siblings = frames.iter().rev().find(|f| f.column > indent);
        if let (Some(key), Some(sibling)) = (&key, siblings) {
            let parents: Vec<Frame> = frames
                .iter()
                .filter(|f| f.column < indent)
                .cloned()
                .collect();
            let sibling_name = match &sibling.segment {
                Segment::Key(k) => format!("`{k}`"),
                Segment::Item(_) => "the list item".to_owned(),
            };
            return located(
                Diagnostic::new(
                    PARSE,
                    path,
                    format!("`{key}` is indented less than {sibling_name} above it"),
                )
                .path(join(&path_of(&parents), key))
                .expected(format!(
                    "{} before `{key}`, as before {sibling_name} (line {}), or {} for a key of the level above",
                    spaces(sibling.column),
                    sibling.line,
                    spaces(parents.last().map_or(0, |p| p.column)),
                ))
                .found(spaces(indent))
                .help(format!(
                    "indent `{key}` with {}, like {sibling_name}: the keys of one mapping start in the same column",
                    spaces(sibling.column)
                )),
            );
        }
    }

    if message.contains("block sequence entries are not allowed") {
        let field = path_of(&parents);
        return Diagnostic::new(PARSE, path, "a `- item` list starts on the line of its key")
            .at(at.0, at.1)
            .path(field)
            .expected("the items on the lines below the key, or a `[a, b]` list")
            .found("`- ` after a key on the same line")
            .help("put each `- item` on a line of its own, indented under the key, or write `key: [a, b]`");
    }

    if message.contains("quoted scalar") {
        return Diagnostic::new(PARSE, path, "a quoted string is not closed")
            .at(at.0, at.1)
            .path(path_of(&parents))
            .expected("a closing quote on the same line")
            .found("the end of the line or file inside the string")
            .help("close the string with the quote it opened with (`\"` or `'`)");
    }

    if message.contains("unknown anchor") {
        return Diagnostic::new(PARSE, path, "an alias names an anchor that is not defined")
            .at(at.0, at.1)
            .path(path_of(&parents))
            .expected("`*name` after a `&name` above it")
            .found("`*` and a name no `&` defines")
            .help("define `&name` before using `*name`, or write the value out; a contract needs no anchors");
    }

    let field = match &key {
        Some(key) => join(&path_of(&parents), key),
        None => path_of(&parents),
    };
    Diagnostic::new(PARSE, path, "the contract is not valid YAML here")
        .at(at.0, at.1)
        .path(field)
        .expected("a `key: value` line, a `- item` line or a comment")
        .found(format!("text YAML cannot read ({})", plain_reason(message)))
        .help("compare the line with the ones above it: the indentation, a missing `-` or `:`, a quote or bracket left open")
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The parser's message without its `while parsing ...,` preamble.
fn plain_reason(message: &str) -> &str {
    message.rsplit(", ").next().unwrap_or(message).trim()
}

fn tab(path: &Path, source: &str, at: Position) -> Diagnostic {
    let tab = source.lines().enumerate().find_map(|(i, line)| {
        let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
        indent
            .chars()
            .position(|c| c == '\t')
            .map(|col| (i + 1, col + 1))
    });
    let (line, column) = tab.unwrap_or(at);
    let text = line_text(source, line);
    let content = text.trim_start_matches([' ', '\t']);
    // How wide a tab is meant to be is anyone's guess: the line is taken
    // for a sibling of the line above, as it most often is.
    let mut frames = context(source, line).frames;
    while frames.last().is_some_and(|f| f.inline_value) {
        frames.pop();
    }
    let field = match key_of(content) {
        Some((key, _)) => join(&path_of(&frames), &key),
        None => path_of(&frames),
    };
    Diagnostic::new(PARSE, path, "a tab character is used for indentation")
        .at(line, column)
        .path(field)
        .expected("spaces")
        .found("a tab")
        .help("YAML does not allow tabs in indentation: replace the tab with spaces, two per level, in the column of the line's siblings")
}

/// A `[` or `{` that is still open at the end of its line, when the parser
/// stopped on a later line: the error is the bracket, not where the parser
/// noticed it.
fn unclosed_bracket(path: &Path, source: &str, message: &str, at: Position) -> Option<Diagnostic> {
    let flow_error = message.contains("did not find expected ',' or")
        || message.contains("illegal placement of ':'")
        || message.contains("while parsing a flow");
    if !flow_error {
        return None;
    }
    let mut open: Option<(usize, usize, char)> = None;
    for (i, text) in source.lines().enumerate().take(at.0) {
        let mut depth: Vec<(usize, char)> = Vec::new();
        let mut quote: Option<char> = None;
        for (j, c) in text.chars().enumerate() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') if j == 0 || text.chars().nth(j - 1) == Some(' ') => break,
                (None, '[' | '{') => depth.push((j, c)),
                (None, ']' | '}') => {
                    depth.pop();
                }
                _ => {}
            }
        }
        if let Some(&(column, bracket)) = depth.first() {
            open = Some((i + 1, column + 1, bracket));
            break;
        }
    }
    let (line, column, bracket) = open?;
    let close = if bracket == '[' { ']' } else { '}' };
    let text = line_text(source, line);
    let frames = parents_at(context(source, line).frames, indent_of(text));
    let field = match key_of(text.trim_start_matches(' ')) {
        Some((key, _)) => join(&path_of(&frames), &key),
        None => path_of(&frames),
    };
    Some(
        Diagnostic::new(PARSE, path, format!("a `{bracket}` is not closed"))
            .at(line, column)
            .path(field)
            .expected(format!("a `{close}` that closes it on line {line}"))
            .found(format!(
                "the end of line {line} with the `{bracket}` still open"
            ))
            .help(format!(
                "close it with `{close}` at the end of the line{}",
                if bracket == '[' {
                    ", or write the list one `- item` per line"
                } else {
                    ""
                }
            )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "contract_version: 1\nnode:\n  name: n\n  node_type: compute\n  version: 1.0.0\n  domain: d\ntypes:\n  - name: A\n    fields:\n      - name: x\n        type: u32\n      - name: y\n        type: u32\n";

    fn syntax_error(source: &str) -> Diagnostic {
        match super::super::load_str(Path::new("c.yaml"), source.to_owned()) {
            Ok(_) => panic!("must fail:\n{source}"),
            Err(ds) => {
                ds.0.into_iter()
                    .next()
                    .unwrap_or_else(|| panic!("no diagnostic"))
            }
        }
    }

    #[test]
    fn a_key_indented_deeper_names_its_field_and_its_sibling() {
        let d = syntax_error(&BASE.replace("  version: 1.0.0", "   version: 1.0.0"));
        assert_eq!(
            d.message,
            "`version` is indented deeper than `node_type` above it"
        );
        assert_eq!(d.field_path, "node.version");
        assert_eq!((d.line, d.column), (Some(5), Some(4)));
        assert!(
            d.help
                .as_deref()
                .is_some_and(|h| h.contains("with 2 spaces")),
            "{d:?}"
        );
    }

    #[test]
    fn a_key_indented_less_names_its_field() {
        let d = syntax_error(&BASE.replace("  version: 1.0.0", " version: 1.0.0"));
        assert_eq!(
            d.message,
            "`version` is indented less than `node_type` above it"
        );
        assert_eq!(d.field_path, "node.version");
        assert!(
            d.help
                .as_deref()
                .is_some_and(|h| h.contains("with 2 spaces")),
            "{d:?}"
        );
    }

    #[test]
    fn a_missing_dash_gets_the_item_path_and_the_fixed_line() {
        let d = syntax_error(&BASE.replace("      - name: y", "      name: y"));
        assert_eq!(d.message, "a list item has no `-`");
        assert_eq!(d.field_path, "types[0].fields[1]");
        assert!(
            d.help
                .as_deref()
                .is_some_and(|h| h.contains("`      - name: y`")),
            "{d:?}"
        );
    }

    #[test]
    fn a_tab_names_its_field() {
        let d = syntax_error(&BASE.replace("  version: 1.0.0", "\tversion: 1.0.0"));
        assert_eq!(d.message, "a tab character is used for indentation");
        assert_eq!(d.field_path, "node.version");
        assert_eq!((d.line, d.column), (Some(5), Some(1)));
    }

    #[test]
    fn a_tab_deep_in_a_list_names_its_field() {
        let d = syntax_error(&BASE.replace(
            "        type: u32\n      - name: y",
            "\t\ttype: u32\n      - name: y",
        ));
        assert_eq!(d.field_path, "types[0].fields[0].type");
    }

    #[test]
    fn an_open_bracket_is_found_where_it_opens() {
        let d = syntax_error(&BASE.replace("  domain: d", "  domain: d\n  tags: [a, b\n"));
        assert_eq!(d.message, "a `[` is not closed");
        assert_eq!(d.field_path, "node.tags");
        assert_eq!((d.line, d.column), (Some(7), Some(9)));
    }

    #[test]
    fn no_message_is_the_parsers_raw_text() {
        for source in [
            BASE.replace("  version: 1.0.0", "   version: 1.0.0"),
            BASE.replace("  version: 1.0.0", " version: 1.0.0"),
            BASE.replace("      - name: y", "      name: y"),
            BASE.replace("  domain: d", "  domain: a: b"),
        ] {
            let d = syntax_error(&source);
            let all = format!("{d:?}");
            assert!(!all.contains("while parsing"), "{all}");
            assert!(!all.contains("mapping values are not allowed"), "{all}");
            assert!(!d.field_path.is_empty(), "{all}");
        }
    }
}
