//! Times in query parameters (`from`, `to`): ISO-8601, turned into the
//! stored form (`YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC) so that comparing text in
//! SQL compares instants.
//!
//! Accepted: `2025-01-31`, `2025-01-31T12:00`, `2025-01-31T12:00:00`,
//! `2025-01-31T12:00:00.250`, each optionally followed by `Z` or an offset
//! (`+02:00`, `-0500`); no zone means UTC. A value names a span (a day, a
//! minute, a second, a millisecond): `from` takes its first instant and
//! `to` its last, so `to=2025-01-31` includes all of that day.

use crate::time::iso_utc;

/// The last instant [`iso_utc`] writes with a four-digit year; later ones
/// would not compare correctly as text.
const LATEST_MS: i64 = 253_402_300_799_999;

/// The span of time a parameter value names, in ms since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Parses an ISO-8601 date or date-time; the error says what is accepted.
pub fn parse(text: &str) -> Result<Span, String> {
    parse_span(text.as_bytes()).ok_or_else(|| {
        format!(
            "must be an ISO-8601 date or time such as 2025-01-31, 2025-01-31T09:30:00Z or \
             2025-01-31T09:30:00.000+02:00, got {}",
            super::params::quoted(text)
        )
    })
}

/// `ms` in the stored text form, clamped to the years that form can hold.
pub fn stored_form(ms: i64) -> String {
    iso_utc(u64::try_from(ms.clamp(0, LATEST_MS)).unwrap_or(0))
}

fn parse_span(b: &[u8]) -> Option<Span> {
    let (day_ms, rest) = date(b)?;
    if rest.is_empty() {
        return Some(span(day_ms, 86_400_000));
    }
    let (sep, rest) = rest.split_first()?;
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    let (time_ms, width, rest) = time(rest)?;
    let offset_ms = zone(rest)?;
    Some(span(day_ms + time_ms - offset_ms, width))
}

fn span(first_ms: i64, width: i64) -> Span {
    Span {
        first_ms,
        last_ms: first_ms + width - 1,
    }
}

/// `YYYY-MM-DD` → its midnight (UTC) in ms since the epoch, and what
/// follows.
fn date(b: &[u8]) -> Option<(i64, &[u8])> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    Some((crate::time::utc_midnight_ms(year, month, day)?, &b[10..]))
}

/// `HH:MM[:SS[.fff…]]` → (ms into the day, the span its precision names,
/// what follows).
fn time(b: &[u8]) -> Option<(i64, i64, &[u8])> {
    if b.len() < 5 || b[2] != b':' {
        return None;
    }
    let (hour, minute) = (digits(&b[0..2])?, digits(&b[3..5])?);
    if hour > 23 || minute > 59 {
        return None;
    }
    let mut ms = hour * 3_600_000 + minute * 60_000;
    let mut rest = &b[5..];
    if rest.first() != Some(&b':') {
        return Some((ms, 60_000, rest));
    }
    let second = digits(rest.get(1..3)?)?;
    if second > 59 {
        return None;
    }
    ms += second * 1000;
    rest = &rest[3..];
    if rest.first() != Some(&b'.') {
        return Some((ms, 1000, rest));
    }
    let count = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=9).contains(&count) {
        return None;
    }
    // Stored times have millisecond precision: finer digits are dropped.
    let fraction = &rest[1..1 + count.min(3)];
    let scale = [100, 10, 1][fraction.len() - 1];
    ms += digits(fraction)? * scale;
    Some((ms, scale, &rest[1 + count..]))
}

/// `` (UTC), `Z`, `±HH:MM` or `±HHMM` → the offset from UTC in ms.
fn zone(b: &[u8]) -> Option<i64> {
    let (sign, rest) = match b {
        [] | [b'Z' | b'z'] => return Some(0),
        [b'+', rest @ ..] => (1, rest),
        [b'-', rest @ ..] => (-1, rest),
        // An unencoded `+` in a URL arrives as a space.
        [b' ', rest @ ..] => (1, rest),
        _ => return None,
    };
    let (hours, minutes) = match rest {
        [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3_600_000 + minutes * 60_000))
}

/// ASCII digits as a number; none for anything else.
fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
}
