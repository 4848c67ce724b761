//! ISO-8601 timestamps (session state, audit records), in the exact form
//! JavaScript's `Date.prototype.toISOString` produces (the original Helio's
//! format, which SDK users may parse): `YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC.
//! Calendar arithmetic is `jiff`'s.

use jiff::civil::{Date, DateTime};
use jiff::fmt::temporal::DateTimePrinter;
use jiff::SignedDuration;

/// Milliseconds, always three digits.
const PRINTER: DateTimePrinter = DateTimePrinter::new().precision(Some(3));
/// The Unix epoch, as a UTC civil time. (Civil times reach 9999-12-31
/// 23:59:59.999, the last instant the stored form can hold; jiff's
/// `Timestamp` stops a day short of it.)
const EPOCH: DateTime = DateTime::constant(1970, 1, 1, 0, 0, 0, 0);

/// Formats milliseconds since the Unix epoch as an ISO-8601 UTC timestamp
/// with millisecond precision. Instants past 9999-12-31 (which no clock
/// reaches) print as its last millisecond.
pub fn iso_utc(ms: u64) -> String {
    let at = i64::try_from(ms)
        .ok()
        .and_then(|ms| EPOCH.checked_add(SignedDuration::from_millis(ms)).ok())
        .unwrap_or(DateTime::MAX);
    let mut text = PRINTER.datetime_to_string(&at);
    text.push('Z');
    text
}

/// Milliseconds since the Unix epoch of midnight (UTC) of a proleptic
/// Gregorian date; none if there is no such date.
pub fn utc_midnight_ms(year: i64, month: i64, day: i64) -> Option<i64> {
    let date = Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    )
    .ok()?;
    i64::try_from(date.duration_since(EPOCH.date()).as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_javascript_to_iso_string() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(1), "1970-01-01T00:00:00.001Z");
        assert_eq!(iso_utc(86_399_999), "1970-01-01T23:59:59.999Z");
        // Leap days: a century that is a leap year, and an ordinary one.
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_utc(951_868_800_000), "2000-03-01T00:00:00.000Z");
        assert_eq!(iso_utc(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(iso_utc(1_735_689_599_000), "2024-12-31T23:59:59.000Z");
        assert_eq!(iso_utc(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(iso_utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_utc(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso_utc(253_402_300_800_000), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso_utc(u64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn midnights_of_real_dates_only() {
        assert_eq!(utc_midnight_ms(1970, 1, 1), Some(0));
        assert_eq!(utc_midnight_ms(2000, 2, 29), Some(951_782_400_000));
        assert_eq!(utc_midnight_ms(2100, 3, 1), Some(4_107_542_400_000));
        assert_eq!(utc_midnight_ms(2100, 2, 29), None);
        assert_eq!(utc_midnight_ms(2025, 13, 1), None);
        assert_eq!(utc_midnight_ms(2025, 4, 31), None);
    }
}
