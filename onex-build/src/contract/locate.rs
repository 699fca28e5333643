//! Where every value of a contract is: an index from field paths
//! (`operations[1].idempotent`) to 1-based line and column.
//!
//! The index is built from the YAML event stream (with `yaml-rust2`'s marked
//! parser), never by expanding aliases, so it costs time and memory in
//! proportion to the file. The same pass refuses what would make the typed
//! parse slow or unsafe: nesting deeper than [`MAX_DEPTH`], aliases that
//! expand to more than [`MAX_ALIAS_EXPANSION`] nodes (the "billion laughs"),
//! duplicate keys and more than one document.

use std::collections::{BTreeMap, HashMap};

use yaml_rust2::{Event, parser::Parser, scanner::Marker};

/// The deepest nesting of mappings and lists a contract may have. The
/// format itself needs six levels.
pub const MAX_DEPTH: usize = 32;

/// How many nodes aliases (`*name`) may add to a contract in total once
/// expanded.
pub const MAX_ALIAS_EXPANSION: u64 = 10_000;

/// A 1-based line and column.
pub type Position = (usize, usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    value: Position,
    key: Option<Position>,
}

/// Field path to source position, for every value of a contract.
///
/// Paths are written as serde_path_to_error writes them: `node.name`,
/// `types[0].fields[2].type`; the document itself is the empty path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMap {
    entries: BTreeMap<String, Entry>,
}

impl SourceMap {
    /// Builds the index of a YAML text; a text that is not YAML gives an
    /// empty or partial index (loading reports the syntax error).
    pub fn of(source: &str) -> SourceMap {
        match scan(source) {
            Ok(map) => map,
            Err((map, _)) => map,
        }
    }

    /// Where the value at `path` starts (for a mapping written as indented
    /// lines: where its first key starts).
    ///
    /// ```
    /// use onex_build::contract::SourceMap;
    /// let map = SourceMap::of("node:\n  name: x\nlist: [a, b]\n");
    /// assert_eq!(map.position("node.name"), Some((2, 9)));
    /// assert_eq!(map.position("list[1]"), Some((3, 11)));
    /// assert_eq!(map.position("nothing"), None);
    /// ```
    pub fn position(&self, path: &str) -> Option<Position> {
        self.entries.get(path).map(|e| e.value)
    }

    /// Where the key of the mapping entry at `path` starts (`None` for list
    /// items and the document).
    pub fn key_position(&self, path: &str) -> Option<Position> {
        self.entries.get(path).and_then(|e| e.key)
    }

    /// The position of `path`, or of its closest ancestor that has one:
    /// a value that is absent is reported where its parent is.
    pub fn nearest(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(p) = self.position(path) {
                return Some(p);
            }
            if path.is_empty() {
                return None;
            }
            path = parent(path);
        }
    }

    /// How many values are indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every indexed path, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

/// The parent of a field path: `a.b[2]` -> `a.b` -> `a` -> ``.
pub(crate) fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Why a text cannot be a contract, found while indexing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Not YAML.
    Syntax { message: String, at: Position },
    /// No document, or a null one.
    Empty,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep { at: Position },
    /// Aliases expand to more than [`MAX_ALIAS_EXPANSION`] nodes.
    AliasBomb { at: Position },
    /// A key given twice in one mapping.
    DuplicateKey {
        path: String,
        key: String,
        at: Position,
        first: Position,
    },
    /// A second `---` document.
    SecondDocument { at: Position },
}

enum Kind {
    Map {
        pending_key: Option<(String, Position)>,
        seen: HashMap<String, Position>,
    },
    Seq {
        next: usize,
    },
}

struct Frame {
    path: String,
    kind: Kind,
    anchor: usize,
    size: u64,
    /// A block mapping's position is its first key's; not known yet.
    position_pending: bool,
    /// False inside a complex (non-scalar) key: nothing there is indexed.
    record: bool,
}

fn pos(m: &Marker) -> Position {
    (m.line(), m.col() + 1)
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Indexes `source`; on a problem, returns what was indexed so far too.
pub(crate) fn scan(source: &str) -> Result<SourceMap, (SourceMap, Problem)> {
    let lines: Vec<&str> = source.lines().collect();
    let char_at = |p: Position| -> Option<char> {
        lines
            .get(p.0.checked_sub(1)?)
            .and_then(|l| l.chars().nth(p.1.checked_sub(1)?))
    };
    let mut map = SourceMap::default();
    let mut parser = Parser::new_from_str(source);
    let mut stack: Vec<Frame> = Vec::new();
    let mut weights: HashMap<usize, u64> = HashMap::new();
    let mut expansion: u64 = 0;
    let mut documents = 0usize;
    let mut root_is_null = false;
    let mut root_size: u64 = 0;

    loop {
        let (event, marker) = match parser.next_token() {
            Ok(x) => x,
            Err(e) => {
                let problem = Problem::Syntax {
                    message: e.info().to_owned(),
                    at: pos(e.marker()),
                };
                return Err((map, problem));
            }
        };
        let at = pos(&marker);
        let (anchor, is_collection, weight, scalar) = match &event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    // The marker of a `---` may point past it: find the line.
                    let line = (1..=marker.line().min(lines.len()))
                        .rev()
                        .find(|&l| lines[l - 1].starts_with("---"))
                        .unwrap_or(marker.line());
                    return Err((map, Problem::SecondDocument { at: (line, 1) }));
                }
                continue;
            }
            Event::Scalar(value, style, anchor, _) => {
                if stack.is_empty() {
                    root_is_null = *style == yaml_rust2::scanner::TScalarStyle::Plain
                        && matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL");
                }
                (*anchor, false, 1, Some(value.clone()))
            }
            Event::Alias(id) => {
                let w = weights.get(id).copied().unwrap_or(1);
                expansion = expansion.saturating_add(w);
                if expansion > MAX_ALIAS_EXPANSION {
                    return Err((map, Problem::AliasBomb { at }));
                }
                (0, false, w, None)
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                (*anchor, true, 0, None)
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = stack.pop() else { continue };
                if frame.anchor > 0 {
                    weights.insert(frame.anchor, frame.size);
                }
                match stack.last_mut() {
                    Some(parent) => parent.size = parent.size.saturating_add(frame.size),
                    None => root_size = root_size.saturating_add(frame.size),
                }
                continue;
            }
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => continue,
        };

        // A node: a key, a list item, a mapping value or the document.
        let mut path = String::new();
        let mut key_at = None;
        let mut record = true;
        let mut is_key = false;
        if let Some(frame) = stack.last_mut() {
            frame.size = frame.size.saturating_add(weight.max(1));
            record = frame.record;
            match &mut frame.kind {
                Kind::Map { pending_key, seen } => match pending_key.take() {
                    None => {
                        is_key = true;
                        let key = scalar.clone().unwrap_or_else(|| "?".to_owned());
                        if scalar.is_some() {
                            if let Some(first) = seen.get(&key) {
                                let problem = Problem::DuplicateKey {
                                    path: join(&frame.path, &key),
                                    key,
                                    at,
                                    first: *first,
                                };
                                return Err((map, problem));
                            }
                            seen.insert(key.clone(), at);
                        }
                        *pending_key = Some((key, at));
                        if frame.position_pending {
                            frame.position_pending = false;
                            if let Some(e) = map.entries.get_mut(&frame.path) {
                                e.value = at;
                            }
                        }
                    }
                    Some((key, k_at)) => {
                        path = join(&frame.path, &key);
                        key_at = Some(k_at);
                    }
                },
                Kind::Seq { next } => {
                    path = format!("{}[{}]", frame.path, next);
                    *next += 1;
                }
            }
        } else if scalar.is_some() {
            root_size = root_size.saturating_add(1);
        }

        if anchor > 0 && !is_collection {
            weights.insert(anchor, 1);
        }
        if record && !is_key {
            map.entries.insert(
                path.clone(),
                Entry {
                    value: at,
                    key: key_at,
                },
            );
        }
        if is_collection {
            if stack.len() >= MAX_DEPTH {
                return Err((map, Problem::TooDeep { at }));
            }
            let flow_map = char_at(at) == Some('{');
            let kind = match event {
                Event::MappingStart(..) => Kind::Map {
                    pending_key: None,
                    seen: HashMap::new(),
                },
                _ => Kind::Seq { next: 0 },
            };
            let position_pending = matches!(kind, Kind::Map { .. }) && !flow_map;
            stack.push(Frame {
                path,
                kind,
                anchor,
                size: 1,
                position_pending,
                record: record && !is_key,
            });
        }
    }
    if documents == 0 || (root_is_null && map.entries.len() <= 1) {
        return Err((map, Problem::Empty));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_block_and_flow_values() {
        let src = "a:\n  b: 1\n  c: [x, {d: y}]\nlist:\n  - name: n\n    ty: t\n";
        let map = scan(src).unwrap_or_default();
        assert_eq!(map.position(""), Some((1, 1)));
        assert_eq!(map.position("a"), Some((2, 3)));
        assert_eq!(map.key_position("a"), Some((1, 1)));
        assert_eq!(map.position("a.b"), Some((2, 6)));
        assert_eq!(map.position("a.c"), Some((3, 6)));
        assert_eq!(map.position("a.c[1].d"), Some((3, 14)));
        assert_eq!(map.position("list[0]"), Some((5, 5)));
        assert_eq!(map.position("list[0].ty"), Some((6, 9)));
        assert_eq!(map.nearest("list[0].missing"), Some((5, 5)));
        assert_eq!(parent("a.b[2]"), "a.b");
    }

    #[test]
    fn problems() {
        let problem = |s: &str| scan(s).err().map(|(_, p)| p);
        assert_eq!(problem(""), Some(Problem::Empty));
        assert_eq!(problem("# nothing\n"), Some(Problem::Empty));
        assert_eq!(problem("---\n~\n"), Some(Problem::Empty));
        assert!(matches!(
            problem("a: 1\nb: 2\na: 3\n"),
            Some(Problem::DuplicateKey {
                at: (3, 1),
                first: (1, 1),
                ..
            })
        ));
        assert!(matches!(
            problem("a: 1\n---\nb: 2\n"),
            Some(Problem::SecondDocument { at: (2, 1) })
        ));
        let deep = format!("a: {}{}", "[".repeat(100), "]".repeat(100));
        assert!(matches!(problem(&deep), Some(Problem::TooDeep { .. })));
        let mut bomb = String::from("a: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            bomb += &format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n");
        }
        let bomb = bomb.replacen("a: &a0", "a0: &a0", 1);
        assert!(matches!(problem(&bomb), Some(Problem::AliasBomb { .. })));
        assert!(matches!(problem("a: [b\n"), Some(Problem::Syntax { .. })));
    }
}
