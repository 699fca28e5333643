//! [`Text`]: the string of an envelope or header field that most events of
//! a node share (its event type, service, version, environment, node id).
//!
//! Every envelope used to copy each of them into a `String` of its own:
//! seven to eleven allocations per event, freed again on whichever thread
//! dropped the message. A `Text` is a constant (`&'static str`, such as an
//! event type) or a shared `Arc<str>` (such as the service of a
//! [`SourceInfo`](crate::SourceInfo)): cloning it allocates nothing.
//!
//! It reads like a `&str` (`Deref`), compares with `str`, `&str` and
//! `String`, prints as the string, and is serialized as one.

use std::{borrow::Borrow, cmp::Ordering, fmt, hash, ops::Deref, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string shared instead of copied: see the [module documentation](self).
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Text {
    /// A constant string: no allocation, now or when cloned.
    pub const fn from_static(text: &'static str) -> Self {
        Text(Repr::Static(text))
    }

    /// A shared copy of `text` (one allocation).
    pub fn copied(text: &str) -> Self {
        Text(Repr::Shared(Arc::from(text)))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(text) => text,
            Repr::Shared(text) => text,
        }
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::from_static("")
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for Text {
    fn from(text: &'static str) -> Self {
        Text::from_static(text)
    }
}

impl From<String> for Text {
    fn from(text: String) -> Self {
        Text(Repr::Shared(text.into()))
    }
}

impl From<&String> for Text {
    fn from(text: &String) -> Self {
        Text(Repr::Shared(text.as_str().into()))
    }
}

impl From<Arc<str>> for Text {
    fn from(text: Arc<str>) -> Self {
        Text(Repr::Shared(text))
    }
}

impl From<Text> for String {
    fn from(text: Text) -> Self {
        text.as_str().to_owned()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl hash::Hash for Text {
    fn hash<H: hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Straight from the input's text into the shared string: one
        // allocation, as a `String` would take (not a `String` and then a
        // copy of it).
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Text;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text, E> {
                Ok(Text::copied(text))
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_compares_and_serializes_as_its_string() {
        let constant = Text::from_static("effect.write_record.started");
        let shared = Text::from("effect.write_record.started".to_owned());
        assert_eq!(constant, shared);
        assert_eq!(constant, "effect.write_record.started");
        assert!("effect.write_record.started" == shared);
        assert_eq!(shared.len(), 27);
        assert_eq!(format!("{shared}"), "effect.write_record.started");
        assert_eq!(format!("{shared:?}"), r#""effect.write_record.started""#);
        let json = serde_json::to_string(&constant).expect("JSON");
        assert_eq!(json, r#""effect.write_record.started""#);
        let back: Text = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, constant);
        assert_eq!(String::from(back), "effect.write_record.started");
    }
}
