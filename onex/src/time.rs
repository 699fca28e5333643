//! Timestamps as RFC 3339 text, rendered on the stack.
//!
//! Every event carries at least two timestamps (the envelope's and its
//! own `…_at`), and a Kafka message repeats the envelope's in two headers.
//! chrono renders them through `core::fmt` a character at a time, which
//! was a fifth of building a typed event's message; [`Rfc3339`] writes the
//! same text directly. Generated events serialize their `datetime` fields
//! with [`serialize`] (and [`serialize_option`]); what is read back is
//! chrono's own parsing.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

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

/// Serializes a timestamp as RFC 3339 text, as chrono's `Serialize` does
/// (`2026-12-01T08:34:27.123Z`), without its per-character formatting:
/// `#[serde(serialize_with = "onex::time::serialize")]`.
pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(Rfc3339::zulu(time).as_str())
}

/// [`serialize`] for an optional timestamp.
// serde's `serialize_with` hands over a reference to the field's type.
#[allow(clippy::ref_option)]
pub fn serialize_option<S: Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.serialize_some(Rfc3339::zulu(time).as_str()),
        None => serializer.serialize_none(),
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
    fn serializes_as_chrono_does() {
        #[derive(serde::Serialize)]
        struct Ours {
            #[serde(serialize_with = "serialize")]
            at: DateTime<Utc>,
            #[serde(serialize_with = "serialize_option")]
            maybe: Option<DateTime<Utc>>,
            #[serde(serialize_with = "serialize_option")]
            never: Option<DateTime<Utc>>,
        }
        #[derive(serde::Serialize)]
        struct Chrono {
            at: DateTime<Utc>,
            maybe: Option<DateTime<Utc>>,
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
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&theirs).unwrap()
        );
    }
}
