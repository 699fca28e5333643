//! Timestamps as RFC 3339 text, rendered on the stack.
//!
//! Every event carries at least two timestamps (the envelope's and its
//! own `…_at`), and a Kafka message repeats the envelope's in two headers.
//! chrono renders them through `core::fmt` a character at a time, which
//! was a fifth of building a typed event's message; [`Rfc3339`] writes the
//! same text directly; reading one back, [`deserialize`] parses that form
//! itself and leaves any other to chrono. Generated events' `datetime`
//! fields go through both: `#[serde(with = "onex::time")]` (and
//! [`option`]).

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::{
    Deserializer, Serializer,
    de::{self, Visitor},
};

/// A UTC timestamp as chrono's `to_rfc3339_opts(SecondsFormat::AutoSi, _)`
/// writes it: no fraction, or 3, 6 or 9 digits, whichever is exact; `Z` or
/// `+00:00` as the offset.
pub(crate) struct Rfc3339 {
    text: Text,
}

enum Text {
    Inline {
        bytes: [u8; 35],
        len: u8,
    },
    /// Years outside 0–9999 and leap seconds: chrono's own rendering.
    Heap(String),
}

impl Rfc3339 {
    /// `time` with `Z` as its offset, as serde and CloudEvents write it.
    pub(crate) fn zulu(time: &DateTime<Utc>) -> Self {
        Self::new(time, true)
    }

    /// `time` with `+00:00` as its offset, as `DateTime::to_rfc3339` writes it.
    pub(crate) fn offset(time: &DateTime<Utc>) -> Self {
        Self::new(time, false)
    }

    fn new(time: &DateTime<Utc>, zulu: bool) -> Self {
        let nanos = time.timestamp_subsec_nanos();
        let seconds = time.timestamp();
        // 0000-01-01T00:00:00Z up to 9999-12-31T23:59:59Z; leap seconds
        // (nanos past a second) and other years are left to chrono.
        if !(-62_167_219_200..253_402_300_800).contains(&seconds) || nanos >= 1_000_000_000 {
            return Rfc3339 {
                text: Text::Heap(time.to_rfc3339_opts(SecondsFormat::AutoSi, zulu)),
            };
        }
        // Read off the seconds since the epoch rather than through chrono's
        // accessors, each of which converts the date again.
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        let of_day = seconds.rem_euclid(86_400) as u32;
        let mut bytes = *b"0000-00-00T00:00:00.000000000+00:00";
        let digits = |bytes: &mut [u8; 35], end: usize, mut value: u32, width: usize| {
            for at in (end - width..end).rev() {
                bytes[at] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        digits(&mut bytes, 4, year, 4);
        digits(&mut bytes, 7, month, 2);
        digits(&mut bytes, 10, day, 2);
        digits(&mut bytes, 13, of_day / 3600, 2);
        digits(&mut bytes, 16, of_day / 60 % 60, 2);
        digits(&mut bytes, 19, of_day % 60, 2);
        let (fraction, width) = if nanos == 0 {
            (0, 0)
        } else if nanos.is_multiple_of(1_000_000) {
            (nanos / 1_000_000, 3)
        } else if nanos.is_multiple_of(1_000) {
            (nanos / 1_000, 6)
        } else {
            (nanos, 9)
        };
        let mut at = 19;
        if width > 0 {
            at += 1 + width;
            digits(&mut bytes, at, fraction, width);
        }
        let offset: &[u8] = if zulu { b"Z" } else { b"+00:00" };
        bytes[at..at + offset.len()].copy_from_slice(offset);
        at += offset.len();
        Rfc3339 {
            text: Text::Inline {
                bytes,
                len: at as u8,
            },
        }
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        match &self.text {
            Text::Inline { bytes, len } => {
                let ascii = &bytes[..usize::from(*len)];
                debug_assert!(ascii.is_ascii());
                // SAFETY: `new` writes ASCII digits and separators only
                // (checking it again cost a third of the rendering).
                unsafe { std::str::from_utf8_unchecked(ascii) }
            }
            Text::Heap(text) => text,
        }
    }
}

/// The proleptic Gregorian (year, month, day) of a day counted from
/// 1970-01-01, for years 0 to 9999 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Within 0..=9999 for the seconds `Rfc3339::new` lets through.
    (year as u32, month as u32, day as u32)
}

/// Reads RFC 3339 text of the form onex writes (`2026-12-01T08:34:27.123Z`,
/// up to nine fraction digits, `Z` or a `±HH:MM` offset) without chrono's
/// general parser, which took a twentieth of consuming a message; `None`
/// for anything else (lowercase, a space for `T`, a leap second, an
/// invalid date), which callers hand to chrono.
fn parse_common(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 20 || [b[4], b[7], b[10], b[13], b[16]] != *b"--T::" {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut at = 19;
    let mut nanos = 0;
    if b[at] == b'.' {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        nanos = number(at + 1..at + 1 + digits)? * 10u32.pow(9 - digits as u32);
        at += 1 + digits;
    }
    let offset_seconds = match &b[at..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (number(at + 1..at + 3)?, number(at + 4..at + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = (hours * 3600 + minutes * 60) as i32;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    if second > 59 {
        return None;
    }
    let local = chrono::NaiveDate::from_ymd_opt(year as i32, month, day)?
        .and_hms_nano_opt(hour, minute, second, nanos)?;
    let utc = local.checked_sub_signed(chrono::TimeDelta::seconds(i64::from(offset_seconds)))?;
    Some(utc.and_utc())
}

/// Parses RFC 3339 text as `DateTime::parse_from_rfc3339` does, in UTC.
pub(crate) fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    match parse_common(text) {
        Some(time) => Ok(time),
        None => DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)),
    }
}

/// Serializes a timestamp as RFC 3339 text, as chrono's `Serialize` does
/// (`2026-12-01T08:34:27.123Z`), without its per-character formatting.
/// With [`deserialize`], what `#[serde(with = "onex::time")]` calls.
pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(Rfc3339::zulu(time).as_str())
}

/// Deserializes a timestamp as chrono's `Deserialize` does (any text its
/// `DateTime<FixedOffset>` parses, in UTC), the form onex writes without
/// chrono's general parser.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    deserializer.deserialize_str(TimeVisitor)
}

struct TimeVisitor;

impl Visitor<'_> for TimeVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an RFC 3339 timestamp")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
        match parse_common(text) {
            Some(time) => Ok(time),
            None => text
                .parse::<DateTime<FixedOffset>>()
                .map(|t| t.with_timezone(&Utc))
                .map_err(E::custom),
        }
    }
}

/// [`serialize`] and [`deserialize`] for an optional timestamp:
/// `#[serde(with = "onex::time::option")]`.
pub mod option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes an optional timestamp (`null` when absent).
    // serde's `serialize_with` hands over a reference to the field's type.
    #[allow(clippy::ref_option)]
    pub fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => serializer.serialize_some(super::Rfc3339::zulu(time).as_str()),
            None => serializer.serialize_none(),
        }
    }

    /// Deserializes an optional timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        struct Time(DateTime<Utc>);
        impl<'de> Deserialize<'de> for Time {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                super::deserialize(deserializer).map(Time)
            }
        }
        Ok(Option::<Time>::deserialize(deserializer)?.map(|t| t.0))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn chrono_zulu(time: &DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    #[test]
    fn renders_as_chrono_does() {
        let base = Utc.with_ymd_and_hms(2026, 12, 1, 8, 4, 7).unwrap();
        for nanos in [
            0,
            1,
            999,
            1_000,
            120_000,
            1_000_000,
            5_000_000,
            123_456_789,
            999_999_999,
            100_000_000,
        ] {
            let time = base + chrono::Duration::nanoseconds(nanos);
            assert_eq!(Rfc3339::zulu(&time).as_str(), chrono_zulu(&time));
            assert_eq!(Rfc3339::offset(&time).as_str(), time.to_rfc3339());
        }
        for time in [
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc::now(),
        ] {
            assert_eq!(Rfc3339::zulu(&time).as_str(), chrono_zulu(&time));
            assert_eq!(Rfc3339::offset(&time).as_str(), time.to_rfc3339());
        }
    }

    #[test]
    fn dates_render_as_chrono_does_across_the_years() {
        let first = Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap();
        let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        // Every day of the centuries' turns (1900 is no leap year, 2000
        // is), a day in 97 elsewhere; each at a different time of day.
        let around = Utc.with_ymd_and_hms(1895, 1, 1, 0, 0, 0).unwrap();
        let days = (0..80_000)
            .map(|d| around + chrono::Duration::days(d))
            .chain(
                (0..)
                    .map(|d| first + chrono::Duration::days(97 * d))
                    .take_while(|t| *t <= last),
            );
        for (i, day) in days.enumerate() {
            let time = day + chrono::Duration::seconds((i as i64 * 7_919) % 86_400);
            assert_eq!(
                Rfc3339::zulu(&time).as_str(),
                chrono_zulu(&time),
                "{time:?}"
            );
        }
        assert_eq!(Rfc3339::zulu(&last).as_str(), chrono_zulu(&last));
    }

    #[test]
    fn a_leap_second_renders_as_chrono_does() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        assert_eq!(Rfc3339::zulu(&leap).as_str(), chrono_zulu(&leap));
    }

    #[test]
    fn serializes_and_deserializes_as_chrono_does() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Ours {
            #[serde(with = "super")]
            at: DateTime<Utc>,
            #[serde(with = "super::option")]
            maybe: Option<DateTime<Utc>>,
            #[serde(default, with = "super::option")]
            never: Option<DateTime<Utc>>,
        }
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Chrono {
            at: DateTime<Utc>,
            maybe: Option<DateTime<Utc>>,
            #[serde(default)]
            never: Option<DateTime<Utc>>,
        }
        let at = Utc::now();
        let ours = Ours {
            at,
            maybe: Some(at),
            never: None,
        };
        let theirs = Chrono {
            at,
            maybe: Some(at),
            never: None,
        };
        let text = serde_json::to_string(&ours).unwrap();
        assert_eq!(text, serde_json::to_string(&theirs).unwrap());
        assert_eq!(serde_json::from_str::<Ours>(&text).unwrap(), ours);
        let absent: Ours = serde_json::from_str(&format!(
            r#"{{"at":"{}","maybe":null}}"#,
            Rfc3339::zulu(&at).as_str()
        ))
        .unwrap();
        assert_eq!(absent.never, None);
    }

    #[test]
    fn parses_as_chrono_does() {
        let texts = [
            "2026-12-01T08:34:27Z",
            "2026-12-01T08:34:27.1Z",
            "2026-12-01T08:34:27.123Z",
            "2026-12-01T08:34:27.123456Z",
            "2026-12-01T08:34:27.123456789Z",
            "2026-12-01T08:34:27.123+00:00",
            "2026-12-01T08:34:27.123+05:30",
            "2026-12-01T00:04:27-08:00",
            "2026-01-01T00:00:00+14:00",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2024-02-29T12:00:00Z",
            // chrono's own: other forms, and what is not a timestamp.
            "2026-12-01t08:34:27z",
            "2026-12-01 08:34:27Z",
            "2026-12-01T08:34:27.1234567891Z",
            "2016-12-31T23:59:60Z",
            "2023-02-29T12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T08:34:27",
            "2026-12-01T08:34:27+0100",
            "2026-12-01T08:34:27.Z",
            "not a time",
            "",
        ];
        for text in texts {
            let chrono_value = text
                .parse::<DateTime<FixedOffset>>()
                .map(|t| t.with_timezone(&Utc));
            let ours =
                serde_json::from_value::<Wrapped>(serde_json::json!({ "at": text })).map(|w| w.at);
            assert_eq!(ours.ok(), chrono_value.ok(), "{text}");
            let rfc = DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc));
            assert_eq!(parse_rfc3339(text).ok(), rfc.ok(), "{text}");
        }
    }

    #[derive(serde::Deserialize)]
    struct Wrapped {
        #[serde(with = "super")]
        at: DateTime<Utc>,
    }
}
