//! helio.yaml's durations: `^\d+[smhd]$` (`30s`, `5m`, `1h`, `90d`), as the
//! original Helio reads them.

/// Milliseconds in `text`, or none when it is not a duration (or
/// overflows).
pub fn parse_ms(text: &str) -> Option<u64> {
    let unit = text.chars().last()?;
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let per_unit: u64 = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(per_unit)
}

/// The error for text that is not a duration.
pub fn invalid(text: &str) -> String {
    format!("invalid duration \"{text}\" (expected a whole number followed by s, m, h or d, e.g. \"30s\", \"5m\", \"1h\", \"2d\")")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_the_original_grammar() {
        for (text, ms) in [
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("90d", 90 * 86_400_000),
            ("0s", 0),
        ] {
            assert_eq!(parse_ms(text), Some(ms), "{text}");
        }
        for bad in [
            "",
            "s",
            "10",
            "1.5h",
            "-1s",
            " 1s",
            "1s ",
            "1w",
            "1H",
            "१s",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_ms(bad), None, "{bad:?} should be rejected");
        }
    }
}
