//! Serializing payloads with `collect_str` done in one piece.
//!
//! Types that serialize through their `Display` call `collect_str`, and
//! serde_json escapes whatever `Display` writes fragment by fragment: a
//! chrono timestamp arrives a character or two at a time, and escaping it
//! was a third of building a typed event's message. Generated `datetime`
//! fields now serialize through [`crate::time`]; what still comes this way
//! (timestamps in lists and maps, a user's own `Display` types) [`Whole`]
//! renders into a buffer first and hands serde_json one string, with the
//! same output.

use std::fmt::{self, Write as _};

use serde::ser::{
    self, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

/// `T`, serialized with every `collect_str` (at any depth) in one piece.
pub(crate) struct Whole<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: Serialize + ?Sized> Serialize for Whole<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(WholeSerializer(serializer))
    }
}

/// The serializer `S` with `collect_str` rendering in one piece; the rest
/// is `S`'s own, with nested values wrapped again.
struct WholeSerializer<S>(S);

/// A `Display` value rendered on the stack when it is short (timestamps,
/// ids), on the heap when not.
struct Rendered {
    inline: [u8; 64],
    len: usize,
    spilled: Option<String>,
}

impl Rendered {
    fn of<T: fmt::Display + ?Sized>(value: &T) -> Result<Self, fmt::Error> {
        let mut out = Rendered {
            inline: [0; 64],
            len: 0,
            spilled: None,
        };
        write!(out, "{value}")?;
        Ok(out)
    }

    fn as_str(&self) -> &str {
        match &self.spilled {
            Some(text) => text,
            // Only whole `str`s were copied in.
            None => std::str::from_utf8(&self.inline[..self.len]).unwrap_or_default(),
        }
    }
}

impl fmt::Write for Rendered {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(text) = &mut self.spilled {
            text.push_str(s);
        } else if self.len + s.len() <= self.inline.len() {
            self.inline[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            let mut text = String::with_capacity(self.len + s.len() + 64);
            text.push_str(std::str::from_utf8(&self.inline[..self.len]).unwrap_or_default());
            text.push_str(s);
            self.spilled = Some(text);
        }
        Ok(())
    }

    /// `Display` of numbers and dates writes a character at a time.
    fn write_char(&mut self, c: char) -> fmt::Result {
        if self.spilled.is_none() && c.is_ascii() && self.len < self.inline.len() {
            self.inline[self.len] = c as u8;
            self.len += 1;
            Ok(())
        } else {
            self.write_str(c.encode_utf8(&mut [0; 4]))
        }
    }
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
                self.0.$method($($arg),*)
            }
        )*
    };
}

impl<S: Serializer> Serializer for WholeSerializer<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = WholeSerializer<S::SerializeSeq>;
    type SerializeTuple = WholeSerializer<S::SerializeTuple>;
    type SerializeTupleStruct = WholeSerializer<S::SerializeTupleStruct>;
    type SerializeTupleVariant = WholeSerializer<S::SerializeTupleVariant>;
    type SerializeMap = WholeSerializer<S::SerializeMap>;
    type SerializeStruct = WholeSerializer<S::SerializeStruct>;
    type SerializeStructVariant = WholeSerializer<S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Whole(value))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Whole(value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Whole(value))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(WholeSerializer)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(WholeSerializer)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0
            .serialize_tuple_struct(name, len)
            .map(WholeSerializer)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(WholeSerializer)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(WholeSerializer)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(WholeSerializer)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(WholeSerializer)
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        match Rendered::of(value) {
            Ok(text) => self.0.serialize_str(text.as_str()),
            Err(_) => Err(ser::Error::custom(
                "a value's Display implementation returned an error",
            )),
        }
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<C: SerializeSeq> SerializeSeq for WholeSerializer<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_element(&Whole(value))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeTuple> SerializeTuple for WholeSerializer<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_element(&Whole(value))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeTupleStruct> SerializeTupleStruct for WholeSerializer<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_field(&Whole(value))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeTupleVariant> SerializeTupleVariant for WholeSerializer<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_field(&Whole(value))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeMap> SerializeMap for WholeSerializer<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        self.0.serialize_key(&Whole(key))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_value(&Whole(value))
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), C::Error> {
        self.0.serialize_entry(&Whole(key), &Whole(value))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeStruct> SerializeStruct for WholeSerializer<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        self.0.serialize_field(key, &Whole(value))
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.0.skip_field(key)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeStructVariant> SerializeStructVariant for WholeSerializer<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        self.0.serialize_field(key, &Whole(value))
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.0.skip_field(key)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, TimeZone, Utc};
    use serde::Serialize;

    use super::Whole;

    #[derive(Serialize)]
    enum Shape {
        Point,
        Circle(f64),
        Pair(u8, String),
        Box { at: DateTime<Utc>, id: uuid::Uuid },
    }

    #[derive(Serialize)]
    struct Everything {
        at: DateTime<Utc>,
        maybe: Option<DateTime<Utc>>,
        list: Vec<DateTime<Utc>>,
        by_time: BTreeMap<DateTime<Utc>, i32>,
        shapes: Vec<Shape>,
        tuple: (u8, DateTime<Utc>),
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        json: serde_json::Value,
        long: Long,
    }

    /// A `Display` longer than the stack buffer, with characters to escape.
    struct Long;

    impl Serialize for Long {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("{}\"quoted\"\n{}", "x".repeat(70), "ü"))
        }
    }

    #[test]
    fn the_json_is_the_same_as_serde_json_writes() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 3, 4, 5).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        let value = Everything {
            at,
            maybe: Some(at),
            list: vec![at, Utc.timestamp_opt(0, 0).unwrap()],
            by_time: BTreeMap::from([(at, 1)]),
            shapes: vec![
                Shape::Point,
                Shape::Circle(1.5),
                Shape::Pair(2, "two".to_owned()),
                Shape::Box {
                    at,
                    id: uuid::Uuid::nil(),
                },
            ],
            tuple: (9, at),
            text: "tab\there".to_owned(),
            skipped: None,
            json: serde_json::json!({"nested": [1, "x", null]}),
            long: Long,
        };
        let expected = serde_json::to_string(&value).unwrap();
        assert_eq!(serde_json::to_string(&Whole(&value)).unwrap(), expected);
        assert!(
            expected.contains("2026-12-01T03:04:05.123456789Z"),
            "{expected}"
        );
    }
}
