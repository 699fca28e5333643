//! Escaping contract text for the places it lands in generated code.
//!
//! Nothing a contract says is pasted into Rust source as is: text becomes a
//! Rust string literal ([`string_literal`]), or doc comments
//! ([`doc_comments`]) whose lines hold no line break, control or invisible
//! character, so that nothing can end a comment early. A description full of
//! quotes, `*/`, `"#` or `#[attr]` therefore stays text.
//! Doc text is also defused as Markdown: it cannot open a code block (which
//! rustdoc would run as a doctest), raw HTML or intra-doc links, and it
//! cannot carry characters rustc rejects in comments.

/// A Rust string literal (with the quotes) whose value is `text`.
///
/// Control characters, bidirectional-override and other invisible format
/// characters are written as `\u{..}` escapes, so the literal is plain,
/// printable ASCII punctuation around the text.
pub fn string_literal(text: &str) -> String {
    double_quoted(
        text,
        |c| c.is_control() || is_invisible(c),
        |c| match c {
            '\0' => "\\0".to_owned(),
            c => format!("\\u{{{:x}}}", c as u32),
        },
    )
}

/// `text` between double quotes, as Rust, TOML and YAML write such strings
/// alike: `"`, `\`, line feed, carriage return and tab as backslash escapes,
/// every character `escaped` picks as `unicode` writes it, the rest as is.
fn double_quoted(
    text: &str,
    escaped: impl Fn(char) -> bool,
    unicode: impl Fn(char) -> String,
) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if escaped(c) => out.push_str(&unicode(c)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Characters that change how text around them displays (bidirectional
/// overrides: rustc denies them in comments and literals) or that do not
/// display at all.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// The doc lines for `text`: normalized, trimmed, defused Markdown.
///
/// Returns at least one non-empty line.
pub fn doc_lines(text: &str) -> Vec<String> {
    // Most docs are one line of plain printable ASCII that no rule below
    // changes except the trim; build scripts run this unoptimized, where
    // the character-by-character path costs a tenth of the rendering.
    let plain = text
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'<' && b != b'[');
    let trimmed = text.trim();
    if plain && !trimmed.is_empty() && !trimmed.starts_with("```") && !trimmed.starts_with("~~~") {
        return vec![trimmed.to_owned()];
    }
    doc_lines_general(text)
}

/// [`doc_lines`] for any text.
fn doc_lines_general(text: &str) -> Vec<String> {
    // Normalize line breaks; drop control and invisible characters.
    let mut clean = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                clean.push('\n');
            }
            '\n' | '\u{2028}' | '\u{2029}' => clean.push('\n'),
            '\t' => clean.push(' '),
            c if c.is_control() || is_invisible(c) => {}
            c => clean.push(c),
        }
    }

    let mut lines: Vec<String> = Vec::new();
    // The prefix that keeps a list item's or a quote's continuation lines
    // inside it (clippy's `doc_lazy_continuation`).
    let mut continuation: Option<String> = None;
    for raw in clean.split('\n') {
        let line = defuse_markdown(raw.trim());
        if line.is_empty() {
            continuation = None;
            if lines.last().is_some_and(|l| !l.is_empty()) {
                lines.push(String::new());
            }
            continue;
        }
        if let Some(width) = list_marker_width(&line) {
            continuation = Some(" ".repeat(width));
            lines.push(line);
        } else if line.starts_with('>') {
            continuation = Some("> ".to_owned());
            lines.push(line);
        } else if let Some(prefix) = &continuation {
            lines.push(format!("{prefix}{line}"));
        } else {
            lines.push(line);
        }
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    if lines.is_empty() {
        lines.push("(No description.)".to_owned());
    }
    lines
}

/// `#[doc = " ..."]` attributes, one per line, for `text`.
pub fn doc_attributes(text: &str) -> String {
    let mut out = String::new();
    for line in doc_lines(text) {
        out.push_str("#[doc = ");
        if line.is_empty() {
            out.push_str("\"\"");
        } else {
            out.push_str(&string_literal(&format!(" {line}")));
        }
        out.push_str("]\n");
    }
    out
}

/// `/// ...` doc comments, one per line, for `text`, each indented by
/// `indent` spaces, joined by line breaks, with no line break after the last
/// one: a template puts the documented item on the next line.
///
/// A line comment ends at the first line break; [`doc_lines`] leaves none
/// (nor a carriage return, a control or an invisible character) in a line,
/// so the text cannot escape the comment. Each line starts with a space
/// after `///`, so `////` (a plain comment) cannot happen. Parsed, these are
/// the same `#[doc]` attributes as [`doc_attributes`] writes.
pub fn doc_comments(text: &str, indent: usize) -> String {
    let mut out = String::new();
    for line in doc_lines(text) {
        if !out.is_empty() {
            out.push('\n');
        }
        out.extend(std::iter::repeat_n(' ', indent));
        out.push_str("///");
        if !line.is_empty() {
            out.push(' ');
            out.push_str(&line);
        }
    }
    out
}

/// Escapes what would make Markdown more than text: code fences (rustdoc
/// runs fenced and indented code as doctests; lines are already trimmed, so
/// nothing is indented), raw HTML `<` and link brackets `[` outside inline
/// code spans.
fn defuse_markdown(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 4);
    let line_start = line.starts_with("```") || line.starts_with("~~~");
    if line_start {
        out.push('\\');
    }
    let mut in_code = false;
    for (i, c) in line.char_indices() {
        match c {
            '`' if !(line_start && i == 0) => {
                in_code = !in_code;
                out.push(c);
            }
            '<' | '[' if !in_code => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The width of a list marker (`- `, `* `, `+ `, `1. `, `1) `) that opens
/// `line`, if any.
fn list_marker_width(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    match bytes {
        [b'-' | b'*' | b'+', b' ', ..] => Some(2),
        _ => {
            let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            let is_marker = (1..=9).contains(&digits)
                && matches!(bytes.get(digits), Some(b'.' | b')'))
                && bytes.get(digits + 1) == Some(&b' ');
            is_marker.then_some(digits + 2)
        }
    }
}

/// Whether `text` is a Rust identifier as it stands, one the `ident` filter
/// writes unchanged: a raw identifier (`r#type`) is, a keyword (`type`,
/// which the filter writes as `r#type`) is not. The rule is
/// [`naming::rust_ident`](crate::naming::rust_ident), the one the gates
/// apply too.
pub fn is_identifier(text: &str) -> bool {
    crate::naming::rust_ident(text).is_ok_and(|ident| ident == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_controls() {
        assert_eq!(string_literal(r#"a "b" \ c"#), r#""a \"b\" \\ c""#);
        assert_eq!(string_literal("x\n\u{202e}y"), r#""x\n\u{202e}y""#);
        let lit: syn::LitStr = syn::parse_str(&string_literal("\"#]; fn evil() {} //")).unwrap();
        assert_eq!(lit.value(), "\"#]; fn evil() {} //");
    }

    #[test]
    fn docs_are_defused() {
        assert_eq!(
            doc_lines("```rust\nfn main() {}\n```"),
            vec!["\\```rust", "fn main() {}", "\\```"]
        );
        assert_eq!(doc_lines("    indented code"), vec!["indented code"]);
        assert_eq!(
            doc_lines("<script>x</script> `<ok>`"),
            vec!["\\<script>x\\</script> `<ok>`"]
        );
        assert_eq!(
            doc_lines("- item\nmore\n\nnext"),
            vec!["- item", "  more", "", "next"]
        );
        assert_eq!(doc_lines("a\r\nb\rc"), vec!["a", "b", "c"]);
        assert_eq!(doc_lines(" \n\u{202e}\n "), vec!["(No description.)"]);
        assert_eq!(doc_lines("*/ \"# #[x]"), vec!["*/ \"# #\\[x]"]);
    }

    /// Like syn, except for `gen`: syn parses it as an identifier of
    /// edition 2021, but it is a keyword of 2024, so generated code writes
    /// `r#gen`, which compiles in every edition.
    fn syn_accepts(text: &str) -> bool {
        syn::parse_str::<syn::Ident>(text).is_ok() && text != "gen"
    }

    #[test]
    fn identifiers_are_checked_like_syn() {
        for text in [
            "price_quote",
            "PriceQuoteCompleted",
            "_private",
            "x1",
            "r#type",
            "r#match",
            "caf\u{e9}",
            "",
            "_",
            "1x",
            "a-b",
            "a b",
            "r#",
            "type",
            "Self",
            "self",
            "async",
            "gen",
            "union",
            "\u{202e}x",
        ] {
            assert_eq!(is_identifier(text), syn_accepts(text), "{text:?}");
        }
        let keywords = crate::naming::STRICT_KEYWORDS
            .iter()
            .chain(crate::naming::RESERVED_KEYWORDS)
            .chain(crate::naming::WEAK_KEYWORDS);
        for keyword in keywords {
            assert_eq!(is_identifier(keyword), syn_accepts(keyword), "{keyword}");
        }
    }

    #[test]
    fn doc_attributes_parse_as_docs_only() {
        let attrs = doc_attributes("end */ \"#\n#[derive(Evil)]\nfn x() {}");
        let file: syn::File = syn::parse_str(&format!("{attrs} pub struct S;")).unwrap();
        assert_eq!(file.items.len(), 1);
        let syn::Item::Struct(s) = &file.items[0] else {
            panic!("not a struct")
        };
        assert_eq!(s.attrs.len(), 3);
        assert!(s.attrs.iter().all(|a| a.path().is_ident("doc")));
    }

    #[test]
    fn plain_one_line_docs_take_the_short_path_to_the_same_lines() {
        for text in [
            "The event for a `write_record` call starting now.",
            "  padded text with spaces  ",
            "1. a numbered start",
            "- a list item",
            "> a quote",
            "ends with a backtick `",
            "x",
            "```",
            "~~~ fence",
            "a <b> tag",
            "a [link]",
            "",
            "   ",
        ] {
            assert_eq!(doc_lines(text), doc_lines_general(text), "{text:?}");
        }
    }

    #[test]
    fn doc_comments_parse_as_the_doc_attributes() {
        let hostile = "end */ \"#\n#[derive(Evil)]\r\nfn x() {}\r\u{2028}*/ fn y() {}\n\n\
                       /x\n- item\n  more\u{202e}\\";
        let docs = |code: &str| -> Vec<String> {
            let file: syn::File = syn::parse_str(code).unwrap();
            assert_eq!(file.items.len(), 1, "{code}");
            let syn::Item::Struct(s) = &file.items[0] else {
                panic!("not a struct")
            };
            s.attrs
                .iter()
                .map(|a| match &a.meta {
                    syn::Meta::NameValue(nv) => match &nv.value {
                        syn::Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Str(s),
                            ..
                        }) => s.value(),
                        _ => panic!("not a doc string"),
                    },
                    _ => panic!("not a doc attribute"),
                })
                .collect()
        };
        let comments = doc_comments(hostile, 4);
        assert!(
            comments
                .lines()
                .all(|l| l.starts_with("    /// ") || l == "    ///")
        );
        assert!(!comments.ends_with('\n'));
        let attributes = doc_attributes(hostile);
        assert_eq!(
            docs(&format!("{comments}\npub struct S;")),
            docs(&format!("{attributes}pub struct S;"))
        );
    }
}

// Text for the node crate's other formats. Each function returns text that
// the format reads back as `text` (strings) or as inert text (comments,
// Markdown), whatever the contract says: a multi-line YAML description must
// not end a TOML string, open a YAML mapping or a Markdown heading.

/// A TOML basic string (with the quotes) whose value is `text`.
///
/// TOML forbids control characters other than tab in basic strings: they
/// are written as escapes, so a description of several lines stays one
/// string.
pub fn toml_string(text: &str) -> String {
    double_quoted(
        text,
        |c| c.is_control() || is_invisible(c),
        |c| format!("\\u{:04X}", c as u32),
    )
}

/// A YAML double-quoted scalar (with the quotes) whose value is `text`.
///
/// Line breaks (YAML also breaks lines at U+0085, U+2028 and U+2029),
/// controls, the byte-order mark and the noncharacters U+FFFE and U+FFFF
/// are escaped, so the scalar is one line
/// and never a key, an anchor, a tag or a comment.
pub fn yaml_string(text: &str) -> String {
    double_quoted(
        text,
        // YAML reads no raw control character, nor the noncharacters
        // U+FFFE and U+FFFF (outside its printable set): escaped.
        |c| c.is_control() || is_invisible(c) || matches!(c, '\u{85}' | '\u{fffe}' | '\u{ffff}'),
        |c| format!("\\u{:04X}", c as u32),
    )
}

/// A value for a `NAME=value` line of an `.env` file.
///
/// Plain values (letters, digits and `_ . - / : , @ +`) are written as
/// they are; anything else is double-quoted with `\`, `"`, `$` and `` ` ``
/// escaped and line breaks written as `\n`, which dotenv readers and
/// compose's `env_file` read back (and which a shell that sources the file
/// does not expand).
pub fn env_value(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/:,@+".contains(c));
    if plain {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' | '$' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c if c.is_control() || is_invisible(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text on one line, for a line comment (`#` in TOML, YAML and `.env`,
/// `//` in Rust): line breaks, controls and invisible characters become
/// spaces, so nothing after them leaves the comment.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || is_invisible(c) || c == '\u{85}' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Markdown text that renders as `text`: the characters Markdown gives a
/// meaning to anywhere (`` \ ` * _ [ ] < > | ~ # ``) are backslash-escaped,
/// and so is what would open a block at the start (`-`, `+`, `=`, `1.`,
/// `1)`); `&` becomes `&amp;`, and line breaks become spaces, so the text
/// stays inside the paragraph, list item or table cell it is written in and
/// no heading, list, emphasis, link, table cell or raw HTML can start.
pub fn markdown_text(text: &str) -> String {
    let line = one_line(text);
    let mut out = String::with_capacity(line.len() + 8);
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    for (i, c) in line.chars().enumerate() {
        let opens_block = (i == 0 && matches!(c, '-' | '+' | '='))
            || (i == digits && digits > 0 && matches!(c, '.' | ')'));
        match c {
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c if opens_block => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A Markdown code span (with its backticks) that shows `text` on one
/// line: the fence is one backtick longer than the longest run inside, and
/// padded with spaces when the text starts or ends with a backtick. `|`
/// is escaped, which GitHub's tables require even inside code spans and
/// which is why the span is meant for table cells and prose alike.
pub fn markdown_code(text: &str) -> String {
    let text = one_line(text).replace('|', "\\|");
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') || text.is_empty() {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn toml_strings_survive_multi_line_hostile_text() {
        let hostile = "Line one \"quoted\" \\ back\nline two\r\n[dependencies]\u{0}\u{7f}\u{202e}";
        let doc = format!("description = {}\n", toml_string(hostile));
        let table: toml::Table = toml::from_str(&doc).expect("valid TOML");
        assert_eq!(table["description"].as_str(), Some(hostile));
        assert!(!toml_string(hostile).contains('\n'));
    }

    #[test]
    fn yaml_strings_are_one_scalar() {
        for hostile in [
            "a: b\n- c\n# d",
            "\"quoted\" \\ \t&anchor *alias !tag",
            "line\u{2028}sep\u{85}next\u{feff}",
            "",
        ] {
            let doc = format!("key: {}\nother: 1\n", yaml_string(hostile));
            let value: serde_yaml::Value = serde_yaml::from_str(&doc).expect("valid YAML");
            assert_eq!(value["key"].as_str(), Some(hostile), "{doc}");
            assert_eq!(value["other"].as_u64(), Some(1), "{doc}");
        }
    }

    #[test]
    fn env_values_are_one_line() {
        assert_eq!(env_value("orders.dlq.v1"), "orders.dlq.v1");
        assert_eq!(env_value(""), "\"\"");
        let quoted = env_value("a b\n$HOME \"x\" `y`\\");
        assert_eq!(quoted, r#""a b\n\$HOME \"x\" \`y\`\\""#);
        assert!(!quoted.contains('\n'));
    }

    #[test]
    fn one_line_keeps_text_in_its_comment() {
        assert_eq!(one_line("a\nb\r\u{2028}c\u{202e}"), "a b  c ");
    }

    #[test]
    fn markdown_text_starts_no_structure() {
        let text = markdown_text("# Title\n- item\n<script>x</script> [l](u) *e* | a & b");
        assert!(!text.contains('\n'));
        assert!(text.starts_with("\\# Title"), "{text}");
        assert!(text.contains("\\<script\\>"), "{text}");
        assert!(text.contains("\\[l\\](u)"), "{text}");
        assert!(text.contains("\\| a &amp; b"), "{text}");
        assert_eq!(
            markdown_text("Plain words, (with) punctuation: 1. 2; a-b."),
            "Plain words, (with) punctuation: 1. 2; a-b."
        );
        assert_eq!(markdown_text("- a"), "\\- a");
        assert_eq!(markdown_text("12. a"), "12\\. a");
        assert_eq!(markdown_text("=== a"), "\\=== a");
    }

    #[test]
    fn markdown_code_spans_hold_backticks() {
        assert_eq!(markdown_code("effect.x.v1"), "`effect.x.v1`");
        assert_eq!(markdown_code("a``b"), "```a``b```");
        assert_eq!(markdown_code("`x"), "`` `x ``");
        assert_eq!(markdown_code("a|b\nc"), "`a\\|b c`");
    }
}

/// Every escaping function over arbitrary text (any Unicode, and the
/// characters each format gives a meaning to): what a template writes reads
/// back as the text, or as one inert line, and never as more than text.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[\"'#*/\\\\{}%$`<>\\[\\]|&=:.,!?@\r\n\t \u{85}\u{a0}\u{202e}\u{2028}\u{feff}\u{fffe}a-z0-9-]{0,40}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn string_literals_read_back_as_the_text(s in text()) {
            let lit: syn::LitStr = syn::parse_str(&string_literal(&s))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(lit.value(), s);
        }

        #[test]
        fn doc_comments_document_one_item_and_nothing_else(s in text(), indent in 0usize..8) {
            for code in [
                format!("{}\npub struct S;", doc_comments(&s, indent)),
                format!("{}pub struct S;", doc_attributes(&s)),
            ] {
                let file: syn::File = syn::parse_str(&code)
                    .map_err(|e| TestCaseError::fail(format!("{e}\n{code}")))?;
                prop_assert_eq!(file.items.len(), 1, "{}", code);
                let syn::Item::Struct(item) = &file.items[0] else {
                    return Err(TestCaseError::fail(code));
                };
                prop_assert!(item.attrs.iter().all(|a| a.path().is_ident("doc")), "{}", code);
                prop_assert!(file.attrs.is_empty(), "{}", code);
            }
        }

        #[test]
        fn toml_strings_read_back_as_the_text(s in text()) {
            let line = format!("x = {}", toml_string(&s));
            let table: toml::Table = toml::from_str(&line)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{line}")))?;
            prop_assert_eq!(table.get("x").and_then(|v| v.as_str()), Some(s.as_str()));
        }

        #[test]
        fn yaml_strings_read_back_as_the_text(s in text()) {
            let line = format!("x: {}\ny: 1\n", yaml_string(&s));
            let value: serde_yaml::Value = serde_yaml::from_str(&line)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{line}")))?;
            prop_assert_eq!(value.get("x").and_then(|v| v.as_str()), Some(s.as_str()));
            prop_assert_eq!(value.get("y").and_then(serde_yaml::Value::as_u64), Some(1));
        }

        #[test]
        fn one_line_text_is_one_line(s in text()) {
            let line = one_line(&s);
            prop_assert!(!line.chars().any(|c| c.is_control() || is_invisible(c)));
            prop_assert_eq!(line.lines().count().max(1), 1);
            let markdown = markdown_text(&s);
            prop_assert_eq!(markdown.lines().count().max(1), 1);
            let code = markdown_code(&s);
            prop_assert_eq!(code.lines().count().max(1), 1);
        }

        #[test]
        fn env_values_stay_on_their_line(s in text()) {
            let value = env_value(&s);
            prop_assert_eq!(value.lines().count().max(1), 1);
            prop_assert!(!value.contains('\r'));
        }
    }
}
