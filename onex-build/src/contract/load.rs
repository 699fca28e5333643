//! Stage 1, parse: YAML text to a [`Contract`], with precise diagnostics.
//!
//! Every failure is one [`Diagnostic`] with the code [`PARSE`], the file,
//! the line and column, the field path, what was expected and found, and
//! how to fix it ("did you mean `domain`?" for a misspelt key). Whatever the
//! input, loading returns: it never panics and never takes long (see
//! [`MAX_CONTRACT_BYTES`], [`MAX_DEPTH`](super::locate::MAX_DEPTH) and
//! [`MAX_ALIAS_EXPANSION`](super::locate::MAX_ALIAS_EXPANSION)).

use std::{
    io::Read,
    path::{Path, PathBuf},
};

mod syntax;

use super::{
    diagnostic::{Diagnostic, Diagnostics},
    locate::{self, MAX_ALIAS_EXPANSION, MAX_DEPTH, Position, Problem, SourceMap},
    model::Contract,
    suggest::{backticked, did_you_mean},
};

/// The code of every loading diagnostic (YAML and schema errors).
pub const PARSE: &str = "PARSE";

/// The largest contract accepted, in bytes (1 MiB). Real contracts are a
/// few kilobytes; the limit keeps a stray large file from stalling a build.
pub const MAX_CONTRACT_BYTES: u64 = 1024 * 1024;

/// The UTF-8 byte-order mark a contract file may start with.
const BOM: char = '\u{feff}';

/// The smallest valid contract, shown when a file is empty.
pub const MINIMAL_CONTRACT: &str = "contract_version: 1\nnode: {name: my_node, node_type: compute, version: 1.0.0, domain: my_domain}\n";

/// A parsed contract and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedContract {
    /// The contract file.
    pub path: PathBuf,
    /// The YAML source text.
    pub source: String,
    /// The parsed contract.
    pub contract: Contract,
    /// Where each value is in `source`, by field path.
    pub locations: SourceMap,
}

impl LoadedContract {
    /// A diagnostic about the value at `path`, placed at that value (or at
    /// its closest ancestor present in the file).
    pub fn diagnostic(
        &self,
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let path = path.into();
        let mut d = Diagnostic::new(code, &self.path, message);
        if let Some((line, column)) = self.locations.nearest(&path) {
            d = d.at(line, column);
        }
        d.path(path)
    }
}

/// Reads and parses a contract file; on failure, every problem found (see
/// [`load_str`]).
pub fn load_file(path: &Path) -> Result<LoadedContract, Diagnostics> {
    let cannot_read = |e: std::io::Error| {
        Diagnostic::new(PARSE, path, format!("cannot read the contract: {e}"))
            .help("check that the file exists and is readable")
    };
    let file = std::fs::File::open(path).map_err(|e| Diagnostics::from(cannot_read(e)))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONTRACT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Diagnostics::from(cannot_read(e)))?;
    if bytes.len() as u64 > MAX_CONTRACT_BYTES {
        let size = std::fs::metadata(path).map(|m| m.len()).ok();
        return Err(too_large(path, size).into());
    }
    let source = String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        Diagnostics::from(not_utf8(path, bytes, e.utf8_error().valid_up_to()))
    })?;
    load_str(path, source)
}

/// Parses contract text; `path` is used in diagnostics only.
///
/// A YAML syntax error stops the parser, so it is the one diagnostic; past
/// the syntax, every unknown key, wrong type and misspelt word is reported
/// (up to [`MAX_LOAD_ERRORS`]), as the gates report all they find.
pub fn load_str(path: &Path, mut source: String) -> Result<LoadedContract, Diagnostics> {
    // Some Windows editors save UTF-8 with a byte-order mark. It is no part
    // of the YAML: left in, it would glue itself to the first key
    // (`\u{feff}contract_version`) and the contract would miss a key.
    if source.starts_with(BOM) {
        source.drain(..BOM.len_utf8());
    }
    if source.len() as u64 > MAX_CONTRACT_BYTES {
        return Err(too_large(path, Some(source.len() as u64)).into());
    }
    if let Some(d) = control_character(path, &source) {
        return Err(d.into());
    }
    let locations = match locate::scan(&source) {
        Ok(map) => map,
        Err((_, problem)) => return Err(problem_diagnostic(path, &source, problem).into()),
    };
    let de = serde_yaml::Deserializer::from_str(&source);
    match serde_path_to_error::deserialize::<_, Contract>(de) {
        Ok(contract) => Ok(LoadedContract {
            path: path.to_owned(),
            source,
            contract,
            locations,
        }),
        Err(e) => {
            let first = schema_diagnostic(path, &locations, error_path(&e), e.inner(), true);
            let mut all = vec![first];
            further_schema_errors(path, &source, &locations, &e, &mut all);
            Err(Diagnostics(all))
        }
    }
}

/// The most loading diagnostics reported for one contract.
pub const MAX_LOAD_ERRORS: usize = 50;

fn error_path(e: &serde_path_to_error::Error<serde_yaml::Error>) -> String {
    match e.path().to_string() {
        p if p == "." => String::new(),
        p => p,
    }
}

/// serde stops at the first error. To find the next, the contract is read
/// as plain YAML, the offending value is set right (an unknown key
/// removed, a wrong value replaced by one of the expected kind, a missing
/// key added), and the result is deserialized again, until it passes, an
/// error cannot be set right, or [`MAX_LOAD_ERRORS`] are found. Positions
/// come from the source map of the text as written.
fn further_schema_errors(
    path: &Path,
    source: &str,
    locations: &SourceMap,
    first: &serde_path_to_error::Error<serde_yaml::Error>,
    all: &mut Vec<Diagnostic>,
) {
    let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(source) else {
        return;
    };
    let mut repair = Repair {
        value,
        removed: Vec::new(),
        made_up: Vec::new(),
    };
    let mut seen = vec![(error_path(first), bare_message(first.inner()))];
    if !repair.fix(&error_path(first), &bare_message(first.inner())) {
        return;
    }
    // Made-up values may take a few rounds each to be set right.
    let mut rounds = 0;
    while all.len() < MAX_LOAD_ERRORS && rounds < 8 * MAX_LOAD_ERRORS {
        rounds += 1;
        // Re-read as text, so that scalars are read as the text
        // deserializer reads them (`1.0` into a string field stays `1.0`).
        let Ok(text) = serde_yaml::to_string(&repair.value) else {
            return;
        };
        let de = serde_yaml::Deserializer::from_str(&text);
        let Err(e) = serde_path_to_error::deserialize::<_, Contract>(de) else {
            return;
        };
        let field_path = error_path(&e);
        let message = bare_message(e.inner());
        // An error in a value made up here, or the key a misspelt one
        // left missing (already reported as unknown): set right, silently.
        if repair.is_made_up(&field_path) || repair.misspelt_in(&field_path, &message) {
            if !repair.fix(&field_path, &message) {
                return;
            }
            continue;
        }
        let key = (field_path.clone(), message);
        if seen.contains(&key) {
            return;
        }
        // The re-read text has other positions: place the diagnostic by
        // its field path in the text as written.
        let mut d = schema_diagnostic(path, locations, field_path.clone(), e.inner(), false);
        if let Some((line, column)) = placed(locations, &field_path, e.inner()) {
            d = d.at(line, column);
        }
        all.push(d);
        if !repair.fix(&field_path, &key.1) {
            return;
        }
        seen.push(key);
    }
}

/// The contract as plain YAML, being set right error by error.
struct Repair {
    value: serde_yaml::Value,
    /// The unknown keys removed and their values, by the path of their
    /// mapping: a key missing from one of them is most likely the one
    /// misspelt, and gets its value.
    removed: Vec<(String, serde_yaml::Value)>,
    /// The paths of values made up here: errors at or under them are not
    /// the user's.
    made_up: Vec<String>,
}

impl Repair {
    fn is_made_up(&self, field_path: &str) -> bool {
        self.made_up.iter().any(|p| {
            field_path
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }

    /// Whether `message` is a key missing from a mapping a misspelt key
    /// was removed from.
    fn misspelt_in(&self, field_path: &str, message: &str) -> bool {
        message.starts_with("missing field ") && self.removed.iter().any(|(p, _)| p == field_path)
    }

    /// Sets right the value the error is about, so that the next
    /// deserialization gets past it; `false` when it cannot be.
    fn fix(&mut self, field_path: &str, message: &str) -> bool {
        use serde_yaml::Value;
        let Some(path) = segments(field_path) else {
            return false;
        };
        if let Some(rest) = message.strip_prefix("missing field ") {
            let Some(key) = backticked(rest).first().map(|k| (*k).to_owned()) else {
                return false;
            };
            let given = self
                .removed
                .iter()
                .rposition(|(p, _)| p == field_path)
                .map(|i| self.removed.remove(i).1);
            let made_up = given.is_none();
            let Some(mapping) = lookup(&mut self.value, &path).and_then(Value::as_mapping_mut)
            else {
                return false;
            };
            mapping.insert(Value::String(key.clone()), given.unwrap_or(Value::Null));
            if made_up {
                self.made_up.push(if field_path.is_empty() {
                    key
                } else {
                    format!("{field_path}.{key}")
                });
            }
            return true;
        }
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        if message.starts_with("unknown field ") {
            let Segment::Key(key) = last else {
                return false;
            };
            let removed = lookup(&mut self.value, parents)
                .and_then(Value::as_mapping_mut)
                .and_then(|m| m.remove(*key));
            return match removed {
                Some(removed) => {
                    self.removed
                        .push((locate::parent(field_path).to_owned(), removed));
                    true
                }
                None => false,
            };
        }
        let replacement = if let Some(rest) = message.strip_prefix("unknown variant ") {
            match backticked(rest).get(1) {
                Some(valid) => Value::String((*valid).to_owned()),
                None => return false,
            }
        } else if let Some((_, expected)) = message
            .strip_prefix("invalid type: ")
            .or_else(|| message.strip_prefix("invalid value: "))
            .and_then(|r| r.split_once(", expected "))
        {
            match placeholder(expected) {
                Some(value) => value,
                None => return false,
            }
        } else {
            return false;
        };
        match lookup(&mut self.value, &path) {
            Some(slot) => {
                // What is nested in a made-up mapping is made up too.
                if replacement.is_mapping() {
                    self.made_up.push(field_path.to_owned());
                }
                *slot = replacement;
                true
            }
            None => false,
        }
    }
}

/// A value of the kind serde's `expected ...` names, if one can be made up.
fn placeholder(expected: &str) -> Option<serde_yaml::Value> {
    use serde_yaml::Value;
    Some(match expected {
        "a boolean" => Value::Bool(false),
        "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" | "usize" | "f32" | "f64" => {
            Value::Number(0.into())
        }
        "a string" => Value::String("x".to_owned()),
        "a sequence" => Value::Sequence(Vec::new()),
        // An enum's words are named by the error that follows.
        s if s.starts_with("enum ") => Value::String("x".to_owned()),
        s if s.starts_with("struct ") || s == "a map" => Value::Mapping(Default::default()),
        _ => return None,
    })
}

/// Where a diagnostic found on re-read text goes in the text as written.
fn placed(locations: &SourceMap, field_path: &str, e: &serde_yaml::Error) -> Option<Position> {
    let message = e.to_string();
    if message.contains("unknown field") {
        locations
            .key_position(field_path)
            .or_else(|| locations.nearest(field_path))
    } else if message.contains("missing field") {
        // The missing key's mapping, as the first error places it.
        None
    } else {
        locations.nearest(field_path)
    }
}

/// One segment of a field path: a key or a list index.
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Option<Vec<Segment<'_>>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let end = stripped.find(']')?;
            out.push(Segment::Index(stripped[..end].parse().ok()?));
            rest = &stripped[end + 1..];
        }
    }
    Some(out)
}

fn lookup<'v>(
    value: &'v mut serde_yaml::Value,
    path: &[Segment<'_>],
) -> Option<&'v mut serde_yaml::Value> {
    let mut here = value;
    for segment in path {
        here = match segment {
            Segment::Key(key) => here.as_mapping_mut()?.get_mut(*key)?,
            Segment::Index(i) => here.as_sequence_mut()?.get_mut(*i)?,
        };
    }
    Some(here)
}

fn too_large(path: &Path, size: Option<u64>) -> Diagnostic {
    let found = match size {
        Some(size) => format!("{size} bytes"),
        None => format!("more than {MAX_CONTRACT_BYTES} bytes"),
    };
    Diagnostic::new(PARSE, path, "the contract file is too large")
        .expected(format!("at most {MAX_CONTRACT_BYTES} bytes (1 MiB)"))
        .found(found)
        .help("a contract describes one node in a few kilobytes: check that this is the right file, and split very large contracts into one per node")
}

fn not_utf8(path: &Path, bytes: &[u8], valid_up_to: usize) -> Diagnostic {
    let valid = bytes.get(..valid_up_to).unwrap_or_default();
    let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&valid[line_start..])
        .chars()
        .count()
        + 1;
    let found = match bytes.get(valid_up_to) {
        Some(b) => format!("the byte 0x{b:02X}, which is not UTF-8"),
        None => "an incomplete UTF-8 sequence at the end of the file".to_owned(),
    };
    Diagnostic::new(PARSE, path, "the contract is not valid UTF-8 text")
        .at(line, column)
        .expected("UTF-8 text")
        .found(found)
        .help("save the file as UTF-8 (text from Latin-1 or Windows-1252 can be converted with `iconv -f latin1 -t utf-8`)")
}

fn control_character(path: &Path, source: &str) -> Option<Diagnostic> {
    for (i, line) in source.split('\n').enumerate() {
        for (j, c) in line.chars().enumerate() {
            let allowed = matches!(c, '\t' | '\r' | '\u{85}' | '\u{feff}');
            if c.is_control() && !allowed || matches!(c, '\u{fffe}' | '\u{ffff}') {
                return Some(
                    Diagnostic::new(PARSE, path, "the contract holds a control character")
                        .at(i + 1, j + 1)
                        .expected("printable text")
                        .found(format!("the character U+{:04X}", c as u32))
                        .help("delete the character; YAML does not allow control characters, not even in quoted strings (write `\\x01`-style escapes in a double-quoted string instead)"),
                );
            }
        }
    }
    None
}

fn problem_diagnostic(path: &Path, source: &str, problem: Problem) -> Diagnostic {
    match problem {
        Problem::Empty => Diagnostic::new(PARSE, path, "the contract is empty")
            .at(1, 1)
            .expected("a YAML mapping with `contract_version` and `node`")
            .found("no YAML content")
            .help("start from the minimal contract, two lines: `contract_version: 1` and `node: {name: my_node, node_type: compute, version: 1.0.0, domain: my_domain}`"),
        Problem::TooDeep { at } => {
            Diagnostic::new(PARSE, path, "the contract nests too deeply")
                .at(at.0, at.1)
                .expected(format!("at most {MAX_DEPTH} levels of nested lists and mappings"))
                .found(format!("more than {MAX_DEPTH} levels"))
                .help("the contract format needs six levels at most: check for unbalanced `[` or `{`, or a value that should be a plain string")
        }
        Problem::AliasBomb { at } => Diagnostic::new(
            PARSE,
            path,
            "the contract's aliases expand to too much data",
        )
        .at(at.0, at.1)
        .expected(format!(
            "aliases (`*name`) that add at most {MAX_ALIAS_EXPANSION} values in total"
        ))
        .found("aliases that refer to anchors full of further aliases")
        .help("write the values out instead of nesting `&anchor`/`*alias` references; a contract needs no anchors"),
        Problem::DuplicateKey {
            path: key_path,
            key,
            at,
            first,
        } => Diagnostic::new(PARSE, path, format!("the key `{key}` appears twice"))
            .at(at.0, at.1)
            .path(key_path)
            .expected("each key once per mapping")
            .found(format!(
                "`{key}` again; it was first given at line {}, column {}",
                first.0, first.1
            ))
            .help("delete one of the two entries, or merge them"),
        Problem::SecondDocument { at } => Diagnostic::new(
            PARSE,
            path,
            "the file holds more than one YAML document",
        )
        .at(at.0, at.1)
        .expected("one contract per file")
        .found("a `---` document separator followed by a second document")
        .help("move the second document to a file of its own, or delete the `---` line"),
        Problem::Syntax { message, at } => syntax::diagnostic(path, source, &message, at),
    }
}

/// The serde message without serde_yaml's `path: ` prefix and
/// ` at line L column C` suffix.
fn bare_message(e: &serde_yaml::Error) -> String {
    let mut text = e.to_string();
    if let Some(loc) = e.location() {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(i) = text.find(&suffix) {
            text.replace_range(i..i + suffix.len(), "");
        }
    }
    // serde_yaml prefixes the path it tracked itself; drop it.
    if let Some((head, rest)) = text.split_once(": ") {
        let looks_like_path = !head.contains(' ') && !head.is_empty() && !head.contains('`');
        if looks_like_path {
            text = rest.to_owned();
        }
    }
    text
}

fn last_segment(path: &str) -> &str {
    let parent = locate::parent(path);
    path[parent.len()..].trim_start_matches('.')
}

/// The diagnostic of a serde error at `field_path`. `e`'s own location is
/// used only when `e` comes from the text as written (`as_written`);
/// otherwise the position is looked up by the field path.
fn schema_diagnostic(
    path: &Path,
    locations: &SourceMap,
    field_path: String,
    e: &serde_yaml::Error,
    as_written: bool,
) -> Diagnostic {
    let message = bare_message(e);
    let position = e
        .location()
        .filter(|_| as_written)
        .map(|l| (l.line(), l.column()))
        .or_else(|| locations.nearest(&field_path));
    let within = |p: &str| {
        if p.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in `{p}`")
        }
    };
    let mut d;
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let names = backticked(rest);
        let (key, valid) = names.split_first().map_or(("", &[][..]), |(k, v)| (*k, v));
        d = Diagnostic::new(
            PARSE,
            path,
            format!(
                "unknown key `{key}` {}",
                within(locate::parent(&field_path))
            ),
        )
        .expected(if valid.is_empty() {
            "no keys here".to_owned()
        } else {
            format!("one of {}", quote_list(valid))
        })
        .found(format!("`{key}`"))
        .help(
            did_you_mean(key, valid.iter().copied())
                .unwrap_or_else(|| "remove the key, or move it where it belongs".to_owned()),
        );
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        let names = backticked(rest);
        let (value, valid) = names.split_first().map_or(("", &[][..]), |(k, v)| (*k, v));
        d = Diagnostic::new(
            PARSE,
            path,
            format!("`{value}` is not a valid `{}`", last_segment(&field_path)),
        )
        .expected(format!("one of {}", quote_list(valid)))
        .found(format!("`{value}`"))
        .help(
            did_you_mean(value, valid.iter().copied())
                .unwrap_or_else(|| format!("use one of {}", quote_list(valid))),
        );
    } else if let Some(rest) = message.strip_prefix("missing field ") {
        let key = backticked(rest).first().copied().unwrap_or_default();
        let parent_path = field_path.clone();
        let missing = if parent_path.is_empty() {
            key.to_owned()
        } else {
            format!("{parent_path}.{key}")
        };
        d = Diagnostic::new(
            PARSE,
            path,
            format!("missing key `{key}` {}", within(&parent_path)),
        )
        .expected(format!("a `{key}` key"))
        .found(format!("no `{key}`"))
        .help(missing_key_help(key));
        let at = locations
            .key_position(&parent_path)
            .or_else(|| locations.position(&parent_path))
            .or(position);
        if let Some((line, column)) = at {
            d = d.at(line, column);
        }
        return d.path(missing);
    } else if let Some(rest) = message.strip_prefix("duplicate field ") {
        let key = backticked(rest).first().copied().unwrap_or_default();
        d = Diagnostic::new(PARSE, path, format!("the key `{key}` appears twice"))
            .expected("each key once per mapping")
            .help("delete one of the two entries");
    } else if let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|r| r.split_once(", expected "))
    {
        let key = last_segment(&field_path);
        let what = if key.is_empty() {
            "the contract".to_owned()
        } else {
            format!("`{key}`")
        };
        d = Diagnostic::new(PARSE, path, format!("wrong type of value for {what}"))
            .expected(humanize_expected(expected))
            .found(humanize_found(found))
            .help(type_help(expected, found, key));
    } else if message.contains("recursion limit") {
        d = Diagnostic::new(PARSE, path, "the contract nests too deeply")
            .help("check for unbalanced `[` or `{`");
    } else if message.contains("repetition limit") {
        d = Diagnostic::new(
            PARSE,
            path,
            "the contract's aliases expand to too much data",
        )
        .help("write the values out instead of using `&anchor`/`*alias` references");
    } else {
        d = Diagnostic::new(PARSE, path, message)
            .help("compare this part of the contract with docs/contracts.md");
    }
    if let Some((line, column)) = position {
        d = d.at(line, column);
    }
    d.path(field_path)
}

fn quote_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn humanize_expected(expected: &str) -> String {
    match expected {
        "a boolean" => "`true` or `false`".to_owned(),
        "u32" => "a whole number from 0 to 4294967295".to_owned(),
        "u64" => "a whole number from 0 to 18446744073709551615".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a string" => "a string".to_owned(),
        s if s.starts_with("struct ") => "a mapping of keys to values".to_owned(),
        s if s.starts_with("enum ") => "one of the allowed words".to_owned(),
        s => s.to_owned(),
    }
}

fn humanize_found(found: &str) -> String {
    match found {
        "sequence" => "a list".to_owned(),
        "map" => "a mapping".to_owned(),
        "unit value" => "nothing (an empty value)".to_owned(),
        s => s.to_owned(),
    }
}

fn type_help(expected: &str, found: &str, key: &str) -> String {
    let key = if key.is_empty() || key.starts_with('[') {
        "the value".to_owned()
    } else {
        format!("`{key}`")
    };
    if key == "the value" && expected.starts_with("struct ") {
        return "a contract is a YAML mapping: start from the two lines `contract_version: 1` and `node: {name: my_node, node_type: compute, version: 1.0.0, domain: my_domain}`".to_owned();
    }
    if found == "unit value" {
        return format!("give {key} a value, or remove the line");
    }
    match expected {
        "a boolean" => format!("write {key} as `true` or `false`, without quotes"),
        "u32" | "u64" => format!("write {key} as a whole number without quotes, e.g. `1`"),
        "a string" if found == "sequence" => {
            format!("quote {key} if it is text: a value starting with `[` is a YAML list")
        }
        "a string" if found == "map" => format!(
            "quote {key} if it is text: a value with `: ` or starting with `{{` is a YAML mapping"
        ),
        "a string" => format!("write {key} as text"),
        "a sequence" => format!("write {key} as a list: `[a, b]`, or one `- item` per line"),
        s if s.starts_with("struct ") => format!(
            "write {key} as a mapping: `key: value` lines indented under it, or `{{key: value}}`"
        ),
        _ => format!("see docs/contracts.md for the type of {key}"),
    }
}

fn missing_key_help(key: &str) -> String {
    match key {
        "contract_version" => "add `contract_version: 1` as the first line".to_owned(),
        "node" => "add `node:` with `name`, `node_type`, `version` and `domain`, e.g. `node: {name: my_node, node_type: compute, version: 1.0.0, domain: my_domain}`".to_owned(),
        "name" => "add `name:` with a snake_case name (PascalCase for a type)".to_owned(),
        "node_type" => "add `node_type:` with one of `effect`, `compute`, `reducer`, `orchestrator`".to_owned(),
        "version" => "add `version: 1.0.0` (a semantic version)".to_owned(),
        "domain" => "add `domain:`, e.g. `domain: database`".to_owned(),
        "type" => "add `type:`, e.g. `type: string` (see the field types in docs/contracts.md)".to_owned(),
        "input" | "output" => format!("add `{key}:` naming a struct declared under `types`"),
        "topic" => "add `topic: <service>.<event_type>.v1`".to_owned(),
        "initial" => "add `initial:` naming one of the `states`".to_owned(),
        "states" => "add `states:` listing the states, e.g. `states: [idle, running]`".to_owned(),
        "from" | "to" => format!("add `{key}:` naming one of the `states`"),
        "steps" => "add `steps:` with at least one `- name: <step>`".to_owned(),
        "topics" => "add `topics:` listing the topics to aggregate, e.g. `topics: [orders.effect.order.placed.v1]`".to_owned(),
        other => format!("add `{other}:` (see docs/contracts.md)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "contract_version: 1\nnode:\n  name: n\n  node_type: compute\n  version: 1.0.0\n  domain: d\ntypes:\n  - name: A\n    fields:\n      - { name: x, type: u32 }\nevents:\n  - name: e\n    version: 1.0\n    fields: [{name: a, type: string}]\n";

    #[test]
    fn loads_and_indexes() {
        let loaded = load_str(Path::new("c.yaml"), BASE.to_owned()).map_err(|d| d.to_string());
        let loaded = loaded.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.contract.events[0].version.as_deref(), Some("1.0"));
        assert_eq!(
            loaded.locations.position("types[0].fields[0].type"),
            Some((10, 26))
        );
        assert_eq!(loaded.locations.key_position("node"), Some((2, 1)));
    }

    #[test]
    fn misspelt_keys_get_a_suggestion_and_a_position() {
        let src = BASE.replace("  domain: d", "  domian: d");
        let ds = load_str(Path::new("c.yaml"), src).err();
        let ds = ds.unwrap_or_else(|| panic!("must fail"));
        // The misspelt key, and not also the `domain` it leaves missing.
        assert_eq!(ds.len(), 1, "{ds}");
        let d = &ds.0[0];
        assert_eq!((d.line, d.column), (Some(6), Some(3)));
        assert_eq!(d.field_path, "node.domian");
        assert_eq!(d.help.as_deref(), Some("did you mean `domain`?"));
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let with_bom = format!("\u{feff}{BASE}");
        let loaded = load_str(Path::new("c.yaml"), with_bom).map_err(|d| d.to_string());
        let loaded = loaded.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.contract.node.name, "n");
        assert!(!loaded.source.starts_with('\u{feff}'));
        // Positions are those an editor shows, which does not count the mark.
        assert_eq!(loaded.locations.key_position("node"), Some((2, 1)));
        assert_eq!(
            loaded.locations.key_position("contract_version"),
            Some((1, 1))
        );
    }

    #[test]
    fn every_schema_error_is_reported_in_one_run() {
        let src = BASE
            .replace("  domain: d", "  domian: d")
            .replace(
                "      - { name: x, type: u32 }",
                "      - { name: x, typ: u32, type: u32 }",
            )
            .replace(
                "  node_type: compute",
                "  node_type: compute\n  tags: yes_please",
            )
            .replace(
                "    version: 1.0",
                "    version: 1.0\n    deprecated: maybe",
            );
        let ds = load_str(Path::new("c.yaml"), src).err();
        let ds = ds.unwrap_or_else(|| panic!("must fail"));
        let found: Vec<(&str, Option<usize>)> =
            ds.iter().map(|d| (d.field_path.as_str(), d.line)).collect();
        assert_eq!(ds.len(), 4, "{found:?}\n{ds}");
        assert!(found.contains(&("node.domian", Some(7))), "{found:?}");
        assert!(found.contains(&("node.tags", Some(5))), "{found:?}");
        assert!(
            found.contains(&("types[0].fields[0].typ", Some(11))),
            "{found:?}"
        );
        assert!(
            found.iter().any(|(p, _)| p.starts_with("events[0]")),
            "{found:?}"
        );
    }

    #[test]
    fn missing_keys_are_all_reported_and_made_up_values_are_silent() {
        let src = "contract_version: 1\nnode: { name: a }\nretries: 3\n";
        let ds = load_str(Path::new("c.yaml"), src.to_owned()).err();
        let ds = ds.unwrap_or_else(|| panic!("must fail"));
        let paths: Vec<&str> = ds.iter().map(|d| d.field_path.as_str()).collect();
        assert_eq!(
            paths,
            ["node.node_type", "node.version", "node.domain", "retries"],
            "{ds}"
        );

        // A list where a mapping belongs is one error, not one per key the
        // mapping lacks; the error after it is still found.
        let src = BASE
            .replace(
                "node:\n  name: n\n  node_type: compute\n  version: 1.0.0\n  domain: d\n",
                "node: [n]\n",
            )
            .replace(
                "      - { name: x, type: u32 }",
                "      - { name: x, type: u32, size: 4 }",
            );
        let ds = load_str(Path::new("c.yaml"), src).err();
        let ds = ds.unwrap_or_else(|| panic!("must fail"));
        let paths: Vec<&str> = ds.iter().map(|d| d.field_path.as_str()).collect();
        assert_eq!(paths, ["node", "types[0].fields[0].size"], "{ds}");
    }

    /// Random byte edits of a valid contract: loading and validating must
    /// return, never panic.
    #[test]
    fn mutations_never_panic() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b" \t\n:-[]{}&*!|>'\"#,?%@`~0aZ\\";
        for _ in 0..3000 {
            let mut bytes = BASE.as_bytes().to_vec();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[i] = alphabet[(next() as usize) % alphabet.len()],
                    1 => {
                        bytes.remove(i);
                    }
                    _ => bytes.insert(i, alphabet[(next() as usize) % alphabet.len()]),
                }
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Ok(loaded) = load_str(Path::new("m.yaml"), text) {
                let _ = crate::validate::validate(&loaded);
            }
        }
    }
}
