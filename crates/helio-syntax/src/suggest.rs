//! "Did you mean …?" for a misspelt key or value, the same on both sides of
//! the WIT boundary.

/// The closest known name to a misspelt one, if it is close enough to be a
/// typo.
pub fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(input, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `unknown key "x"`, with a suggestion when one of `known` is close.
pub fn unknown_key(key: &str, known: &[&str]) -> String {
    match did_you_mean(key, known) {
        Some(suggestion) => format!("unknown key \"{key}\" (did you mean \"{suggestion}\"?)"),
        None => format!("unknown key \"{key}\""),
    }
}

/// `invalid value "x" (expected one of: …)`, with a suggestion when one of
/// `choices` is close.
pub fn invalid_value(text: &str, choices: &[&str]) -> String {
    let mut message = format!(
        "invalid value \"{text}\" (expected one of: {})",
        choices.join(", ")
    );
    if let Some(suggestion) = did_you_mean(text, choices) {
        message.push_str(&format!("; did you mean \"{suggestion}\"?"));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_only_for_near_misses() {
        let known = ["request_timeout", "connect_timeout", "url"];
        assert_eq!(
            did_you_mean("request_timout", &known),
            Some("request_timeout")
        );
        assert_eq!(did_you_mean("zzz", &known), None);
    }
}
