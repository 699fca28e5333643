//! Names: case conversion and Rust keyword handling, shared by every stage.

/// Rust keywords (strict, reserved, and 2018+ edition keywords).
pub const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "true", "try", "type",
    "typeof", "union", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Keywords that cannot be raw identifiers (`r#self` is not allowed).
pub const NON_RAW_KEYWORDS: &[&str] = &["crate", "self", "Self", "super", "_"];

/// Whether `s` is a Rust keyword.
pub fn is_keyword(s: &str) -> bool {
    RUST_KEYWORDS.contains(&s)
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
/// (`type` -> `r#type`).
pub fn field_ident(s: &str) -> String {
    if is_keyword(s) && !NON_RAW_KEYWORDS.contains(&s) {
        format!("r#{s}")
    } else {
        s.to_owned()
    }
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
}
