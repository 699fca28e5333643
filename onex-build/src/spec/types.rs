//! Contract field types: parsing `list<optional<uuid>>` and friends, and
//! resolving them to Rust types.

use std::collections::BTreeMap;

use crate::validate::types::{FieldType, parse_field_type};

/// A parsed contract field type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeExpr {
    /// `string`
    String,
    /// `bool`
    Bool,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `u32`
    U32,
    /// `u64`
    U64,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `uuid`
    Uuid,
    /// `datetime` (UTC)
    DateTime,
    /// `json`: any JSON value
    Json,
    /// `list<T>`
    List(Box<TypeExpr>),
    /// `map<T>`: string keys, sorted
    Map(Box<TypeExpr>),
    /// `optional<T>`
    Optional(Box<TypeExpr>),
    /// A type declared under `types` (or mapped with `extern_type`).
    Named(String),
}

/// Why a type expression could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeParseError {
    /// What is wrong.
    pub message: String,
}

impl TypeExpr {
    /// Parses a contract type such as `map<list<string>>`, with the one
    /// grammar the validation gates use (`validate::parse_field_type`).
    pub fn parse(text: &str) -> Result<TypeExpr, TypeParseError> {
        parse_field_type(text)
            .map(|ty| TypeExpr::from_field_type(&ty))
            .map_err(|e| TypeParseError { message: e.message })
    }

    fn from_field_type(ty: &FieldType) -> TypeExpr {
        match ty {
            FieldType::Builtin(name) => match *name {
                "string" => TypeExpr::String,
                "bool" => TypeExpr::Bool,
                "i32" => TypeExpr::I32,
                "i64" => TypeExpr::I64,
                "u32" => TypeExpr::U32,
                "u64" => TypeExpr::U64,
                "f32" => TypeExpr::F32,
                "f64" => TypeExpr::F64,
                "uuid" => TypeExpr::Uuid,
                "datetime" => TypeExpr::DateTime,
                // `BUILTIN_TYPES` has no other entry: what is left is json.
                _ => TypeExpr::Json,
            },
            FieldType::List(t) => TypeExpr::List(Box::new(TypeExpr::from_field_type(t))),
            FieldType::Map(t) => TypeExpr::Map(Box::new(TypeExpr::from_field_type(t))),
            FieldType::Optional(t) => TypeExpr::Optional(Box::new(TypeExpr::from_field_type(t))),
            FieldType::Named(n) => TypeExpr::Named(n.clone()),
        }
    }

    /// The canonical contract spelling, e.g. `list<string>`.
    pub fn contract_name(&self) -> String {
        match self {
            TypeExpr::String => "string".to_owned(),
            TypeExpr::Bool => "bool".to_owned(),
            TypeExpr::I32 => "i32".to_owned(),
            TypeExpr::I64 => "i64".to_owned(),
            TypeExpr::U32 => "u32".to_owned(),
            TypeExpr::U64 => "u64".to_owned(),
            TypeExpr::F32 => "f32".to_owned(),
            TypeExpr::F64 => "f64".to_owned(),
            TypeExpr::Uuid => "uuid".to_owned(),
            TypeExpr::DateTime => "datetime".to_owned(),
            TypeExpr::Json => "json".to_owned(),
            TypeExpr::List(t) => format!("list<{}>", t.contract_name()),
            TypeExpr::Map(t) => format!("map<{}>", t.contract_name()),
            TypeExpr::Optional(t) => format!("optional<{}>", t.contract_name()),
            TypeExpr::Named(n) => n.clone(),
        }
    }

    /// Every named type this expression mentions.
    pub fn named(&self) -> Vec<&str> {
        match self {
            TypeExpr::List(t) | TypeExpr::Map(t) | TypeExpr::Optional(t) => t.named(),
            TypeExpr::Named(n) => vec![n.as_str()],
            _ => Vec::new(),
        }
    }

    /// Whether the outermost type is `optional<T>`.
    pub fn is_optional(&self) -> bool {
        matches!(self, TypeExpr::Optional(_))
    }

    /// The Rust type. `runtime` is the runtime crate's path (`::onex`);
    /// `named` maps contract type names to Rust paths.
    pub fn rust(&self, runtime: &str, named: &BTreeMap<String, String>) -> String {
        match self {
            TypeExpr::String => "::std::string::String".to_owned(),
            TypeExpr::Bool => "bool".to_owned(),
            TypeExpr::I32 => "i32".to_owned(),
            TypeExpr::I64 => "i64".to_owned(),
            TypeExpr::U32 => "u32".to_owned(),
            TypeExpr::U64 => "u64".to_owned(),
            TypeExpr::F32 => "f32".to_owned(),
            TypeExpr::F64 => "f64".to_owned(),
            TypeExpr::Uuid => format!("{runtime}::uuid::Uuid"),
            TypeExpr::DateTime => {
                format!("{runtime}::chrono::DateTime<{runtime}::chrono::Utc>")
            }
            TypeExpr::Json => format!("{runtime}::serde_json::Value"),
            TypeExpr::List(t) => format!("::std::vec::Vec<{}>", t.rust(runtime, named)),
            TypeExpr::Map(t) => format!(
                "::std::collections::BTreeMap<::std::string::String, {}>",
                t.rust(runtime, named)
            ),
            TypeExpr::Optional(t) => {
                format!("::std::option::Option<{}>", t.rust(runtime, named))
            }
            TypeExpr::Named(n) => named.get(n).cloned().unwrap_or_else(|| n.clone()),
        }
    }

    /// Whether the Rust type implements `Eq`; `named_eq` answers for named
    /// types.
    pub fn is_eq(&self, named_eq: &dyn Fn(&str) -> bool) -> bool {
        match self {
            TypeExpr::F32 | TypeExpr::F64 => false,
            TypeExpr::List(t) | TypeExpr::Map(t) | TypeExpr::Optional(t) => t.is_eq(named_eq),
            TypeExpr::Named(n) => named_eq(n),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_types() {
        let t = TypeExpr::parse("map< list<optional<uuid>> >").expect("parses");
        assert_eq!(t.contract_name(), "map<list<optional<uuid>>>");
        assert_eq!(
            t.rust("::onex", &BTreeMap::new()),
            "::std::collections::BTreeMap<::std::string::String, \
             ::std::vec::Vec<::std::option::Option<::onex::uuid::Uuid>>>"
        );
        assert!(TypeExpr::parse("list<string").is_err());
        assert!(TypeExpr::parse("set<string>").is_err());
        assert!(TypeExpr::parse("string; fn x()").is_err());
        assert_eq!(
            TypeExpr::parse("Order").expect("parses"),
            TypeExpr::Named("Order".into())
        );
    }
}
