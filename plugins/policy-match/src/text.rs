//! Text for feedback and state keys: JSON objects written by hand (so
//! exact decimals from the host stay exact, and the components do not carry
//! serde's serializer for a few fixed shapes), ISO-8601 timestamps, exact
//! decimal arithmetic, and configuration fingerprints.

use serde_json::Value as Json;

/// Appends `s` as a JSON string literal.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let n = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[n >> 4]));
                out.push(char::from(HEX[n & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON object written field by field, in the order given.
#[derive(Debug)]
pub struct JsonObject {
    out: String,
}

impl Default for JsonObject {
    fn default() -> Self {
        JsonObject::new()
    }
}

impl JsonObject {
    pub fn new() -> JsonObject {
        JsonObject {
            out: String::from("{"),
        }
    }

    fn key(mut self, key: &str) -> JsonObject {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_json_string(&mut self.out, key);
        self.out.push(':');
        self
    }

    pub fn string(self, key: &str, value: &str) -> JsonObject {
        let mut o = self.key(key);
        push_json_string(&mut o.out, value);
        o
    }

    /// A string, or null when absent.
    pub fn opt_string(self, key: &str, value: Option<&str>) -> JsonObject {
        match value {
            Some(v) => self.string(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A decimal string written as a JSON number, exactly as given; null if
    /// it is not a JSON number (so the object stays valid whatever the host
    /// sent).
    pub fn decimal(self, key: &str, decimal: &str) -> JsonObject {
        if is_json_number(decimal) {
            self.raw(key, decimal)
        } else {
            self.raw(key, "null")
        }
    }

    /// [`decimal`](Self::decimal), or null when absent.
    pub fn opt_decimal(self, key: &str, decimal: Option<&str>) -> JsonObject {
        match decimal {
            Some(d) => self.decimal(key, d),
            None => self.raw(key, "null"),
        }
    }

    pub fn u64(self, key: &str, value: u64) -> JsonObject {
        self.raw(key, &value.to_string())
    }

    pub fn bool(self, key: &str, value: bool) -> JsonObject {
        self.raw(key, if value { "true" } else { "false" })
    }

    /// A list of strings.
    pub fn strings(self, key: &str, values: &[String]) -> JsonObject {
        let mut list = String::from("[");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                list.push(',');
            }
            push_json_string(&mut list, v);
        }
        list.push(']');
        self.raw(key, &list)
    }

    /// A list of objects.
    pub fn objects(self, key: &str, values: Vec<JsonObject>) -> JsonObject {
        let items: Vec<String> = values.into_iter().map(JsonObject::finish).collect();
        self.raw(key, &format!("[{}]", items.join(",")))
    }

    /// `json` must already be valid JSON text.
    fn raw(self, key: &str, json: &str) -> JsonObject {
        let mut o = self.key(key);
        o.out.push_str(json);
        o
    }

    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// Whether `text` is a JSON number token.
pub fn is_json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let int_len = digits(&mut i);
    if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Whether `text` is a non-negative decimal as the state interface takes
/// it: digits, optionally a point and more digits (`12`, `12.50`).
pub fn is_plain_decimal(text: &str) -> bool {
    let (int, frac) = text.split_once('.').unwrap_or((text, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// An f64 as an exact decimal string. Rust's `Display` writes the shortest
/// text that reads back as the same f64 and never uses an exponent, so a
/// JSON amount keeps the digits the agent sent; -0 becomes `0`.
pub fn decimal(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    value.to_string()
}

/// `max(0, a - b)` for two non-negative decimal strings, exactly; none if
/// either is not a plain decimal. Trailing fractional zeros are dropped.
pub fn decimal_saturating_sub(a: &str, b: &str) -> Option<String> {
    if !is_plain_decimal(a) || !is_plain_decimal(b) {
        return None;
    }
    let (ai, af) = a.split_once('.').unwrap_or((a, ""));
    let (bi, bf) = b.split_once('.').unwrap_or((b, ""));
    let (width, scale) = (ai.len().max(bi.len()), af.len().max(bf.len()));
    // Both as digit strings of one width and scale, so they compare and
    // subtract digit by digit.
    let aligned = |int: &str, frac: &str| -> Vec<u8> {
        let mut digits = vec![0u8; width - int.len()];
        digits.extend(int.bytes().chain(frac.bytes()).map(|d| d - b'0'));
        digits.resize(width + scale, 0);
        digits
    };
    let (mut x, y) = (aligned(ai, af), aligned(bi, bf));
    if x <= y {
        return Some("0".into());
    }
    let mut borrow = 0u8;
    for (xd, yd) in x.iter_mut().zip(&y).rev() {
        let take = yd + borrow;
        borrow = u8::from(*xd < take);
        *xd = *xd + 10 * borrow - take;
    }
    Some(digits_to_decimal(&x, width))
}

/// Digits with the point after `width` of them, without leading integer
/// zeros or trailing fractional zeros.
fn digits_to_decimal(digits: &[u8], width: usize) -> String {
    let text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    let (int, frac) = text.split_at(width);
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

/// Milliseconds since the epoch as ISO-8601 UTC with milliseconds
/// (`2026-11-23T00:00:00.000Z`), as the original's `Date.toISOString`.
pub fn iso_utc(ms: u64) -> String {
    let days = ms / 86_400_000;
    let in_day = ms % 86_400_000;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Whole seconds from `now_ms` until `at_ms`, rounded up; 0 if past.
pub fn seconds_until(now_ms: u64, at_ms: u64) -> u64 {
    at_ms.saturating_sub(now_ms).div_ceil(1_000)
}

/// 16 hex digits of FNV-1a-64 over the compact JSON text of `value`.
/// serde_json's map is ordered by key, so equal configurations give equal
/// fingerprints however their keys were written.
pub fn fingerprint(value: &Json) -> String {
    fingerprint_bytes(value.to_string().as_bytes())
}

/// 16 hex digits of FNV-1a-64 over `bytes`.
fn fingerprint_bytes(bytes: &[u8]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
    format!("{hash:016x}")
}

/// The host's limit on state keys; a longer key traps.
pub const MAX_STATE_KEY: usize = 512;

/// `key`, or, when it is longer than [`MAX_STATE_KEY`] (tool names and
/// session ids come from callers), its first bytes followed by `~` and the
/// FNV-1a-64 of the whole key: still one key per bucket, and never a trap.
pub fn state_key(key: String) -> String {
    if key.len() <= MAX_STATE_KEY {
        return key;
    }
    let hash = fingerprint_bytes(key.as_bytes());
    let mut end = MAX_STATE_KEY - 1 - hash.len();
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}~{hash}", &key[..end])
}

/// `a`, `a and b`, `a, b and c`.
pub fn word_list<S: AsRef<str>>(words: &[S]) -> String {
    match words {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", rest.join(", "), last.as_ref())
        }
    }
}

#[cfg(test)]
mod tests;
