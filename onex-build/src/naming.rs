//! Names: case conversion and Rust keyword handling, shared by every stage.

/// Strict keywords of every edition (2015, 2018's `async`, `await`, `dyn`,
/// 2024's `gen`): never plain identifiers.
pub const STRICT_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while",
];

/// Keywords reserved for future use: not identifiers either.
pub const RESERVED_KEYWORDS: &[&str] = &[
    "abstract", "become", "box", "do", "final", "macro", "override", "priv", "try", "typeof",
    "unsized", "virtual", "yield",
];

/// Weak (contextual) keywords: keywords in one position only, and plain
/// identifiers everywhere generated code puts a contract name, so they are
/// written as they are.
pub const WEAK_KEYWORDS: &[&str] = &["auto", "default", "macro_rules", "raw", "safe", "union"];

/// Keywords that cannot be raw identifiers (`r#self` is not allowed), and
/// `_`, which is no identifier at all.
pub const NON_RAW_KEYWORDS: &[&str] = &["crate", "self", "Self", "super", "_"];

/// Whether `s` is a strict or reserved Rust keyword of any edition: a name
/// that generated code can only write as a raw identifier (`r#type`).
pub fn is_keyword(s: &str) -> bool {
    STRICT_KEYWORDS.contains(&s) || RESERVED_KEYWORDS.contains(&s)
}

/// Whether `s` is a weak keyword (`union`, `default`, ...).
pub fn is_weak_keyword(s: &str) -> bool {
    WEAK_KEYWORDS.contains(&s)
}

/// Why a name cannot be written as a Rust identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    /// `self`, `Self`, `super`, `crate` or `_`: keywords that even a raw
    /// identifier cannot spell.
    #[error("`{0}` is a Rust keyword that cannot be written as a raw identifier")]
    NotRawable(String),
    /// Not an identifier at all (empty, a leading digit, punctuation, ...).
    #[error("`{0}` is not a Rust identifier")]
    NotIdentifier(String),
}

/// The Rust identifier that spells `name`: the name itself, or the raw
/// identifier `r#name` when it is a strict or reserved keyword of any
/// edition (so the code compiles in every edition a user's crate may use).
/// An identifier that is already raw (`r#type`) is kept.
///
/// This is the one rule of the crate for contract names in code: the
/// `ident` render filter writes every identifier through it, the build stage
/// spells fields with it and the QC-002 gate refuses what it refuses, so a
/// name the gates accept is a name the templates can write.
///
/// ```
/// use onex_build::naming::{IdentError, rust_ident};
/// assert_eq!(rust_ident("write").as_deref(), Ok("write"));
/// assert_eq!(rust_ident("type").as_deref(), Ok("r#type"));
/// assert_eq!(rust_ident("r#type").as_deref(), Ok("r#type"));
/// assert_eq!(rust_ident("union").as_deref(), Ok("union"));
/// assert!(matches!(rust_ident("self"), Err(IdentError::NotRawable(_))));
/// assert!(matches!(rust_ident("1st"), Err(IdentError::NotIdentifier(_))));
/// ```
pub fn rust_ident(name: &str) -> Result<std::borrow::Cow<'_, str>, IdentError> {
    let (raw, bare) = match name.strip_prefix("r#") {
        Some(bare) => (true, bare),
        None => (false, name),
    };
    if NON_RAW_KEYWORDS.contains(&bare) {
        return Err(IdentError::NotRawable(bare.to_owned()));
    }
    if !is_bare_identifier(bare) {
        return Err(IdentError::NotIdentifier(name.to_owned()));
    }
    if raw || !is_keyword(bare) {
        Ok(std::borrow::Cow::Borrowed(name))
    } else {
        Ok(std::borrow::Cow::Owned(format!("r#{bare}")))
    }
}

/// Whether `s` has the shape of an identifier, keywords aside. Templates
/// check hundreds of identifiers per module and syn is slow in an
/// unoptimized build script, so plain ASCII is decided here; syn decides
/// the rest (Unicode identifiers).
fn is_bare_identifier(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(first) = bytes.first() else {
        return false;
    };
    if bytes.is_ascii() {
        return (first.is_ascii_alphabetic() || *first == b'_')
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
            && s != "_";
    }
    syn::parse_str::<syn::Ident>(s).is_ok()
}

/// Whether `s` is a snake_case identifier: `[a-z][a-z0-9_]*`.
pub fn is_snake_case(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && !s.contains("__")
        && !s.ends_with('_')
}

/// Whether `s` is a PascalCase identifier: `[A-Z][A-Za-z0-9]*`.
pub fn is_pascal_case(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('A'..='Z')) && chars.all(|c| c.is_ascii_alphanumeric())
}

/// `write_record` -> `WriteRecord`.
pub fn to_pascal_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut upper = true;
    for c in s.chars() {
        if c == '_' || c == '-' || c == '.' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `WriteRecord` -> `write_record`.
pub fn to_snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '-' || c == '.' {
            out.push('_');
        } else {
            out.push(c);
        }
    }
    out
}

/// `write_record` -> `WRITE_RECORD`.
pub fn to_shouty_snake_case(s: &str) -> String {
    to_snake_case(s).to_ascii_uppercase()
}

/// A snake_case name as a Rust identifier: keywords become raw identifiers
/// (`type` -> `r#type`); see [`rust_ident`]. A name it refuses is returned
/// as it is, for the `ident` filter to report.
pub fn field_ident(s: &str) -> String {
    rust_ident(s).map_or_else(|_| s.to_owned(), std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_conversions() {
        assert_eq!(to_pascal_case("write_record"), "WriteRecord");
        assert_eq!(to_snake_case("WriteRecord"), "write_record");
        assert_eq!(to_shouty_snake_case("write_record"), "WRITE_RECORD");
        assert_eq!(field_ident("type"), "r#type");
        assert_eq!(field_ident("name"), "name");
        assert!(is_snake_case("a1_b"));
        assert!(!is_snake_case("A"));
        assert!(!is_snake_case("a__b"));
        assert!(is_pascal_case("OrderLine"));
        assert!(!is_pascal_case("order_line"));
    }

    /// Every keyword: strict and reserved ones become raw identifiers that
    /// syn parses, weak ones stay plain identifiers syn parses, and the
    /// five that no raw identifier can spell are refused.
    #[test]
    fn keywords_become_identifiers_or_are_refused() {
        for kw in STRICT_KEYWORDS.iter().chain(RESERVED_KEYWORDS) {
            match rust_ident(kw) {
                Ok(ident) => {
                    assert_eq!(ident, format!("r#{kw}"));
                    assert!(syn::parse_str::<syn::Ident>(&ident).is_ok(), "{ident}");
                }
                Err(e) => assert!(NON_RAW_KEYWORDS.contains(kw), "{kw}: {e}"),
            }
        }
        for kw in WEAK_KEYWORDS {
            let ident = rust_ident(kw).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(ident, *kw);
            assert!(syn::parse_str::<syn::Ident>(&ident).is_ok(), "{ident}");
        }
        for kw in NON_RAW_KEYWORDS {
            assert!(
                matches!(rust_ident(kw), Err(IdentError::NotRawable(_))),
                "{kw}"
            );
            let raw = format!("r#{kw}");
            assert!(
                matches!(rust_ident(&raw), Err(IdentError::NotRawable(_))),
                "{raw}"
            );
        }
        for bad in ["", "r#", "1x", "a-b", "a b", "\u{202e}x", "x::y"] {
            assert!(
                matches!(rust_ident(bad), Err(IdentError::NotIdentifier(_))),
                "{bad:?}"
            );
        }
        for good in ["x1", "_private", "caf\u{e9}", "PriceQuote", "r#foo"] {
            assert_eq!(rust_ident(good).as_deref(), Ok(good));
        }
    }
}
