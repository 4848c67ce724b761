//! Tool-name globs (`match.tool`, budget contributors), with glob-match
//! semantics.

/// A compiled tool glob.
#[derive(Debug, Clone)]
pub enum Glob {
    /// No glob syntax: plain equality.
    Literal(String),
    /// Matched with `glob_match`.
    Pattern(String),
}

impl Glob {
    /// Validates what glob-match would otherwise silently treat as a
    /// never-matching pattern.
    pub fn compile(glob: &str) -> Result<Glob, String> {
        if glob.is_empty() {
            return Err("tool glob must not be empty".into());
        }
        let bytes = glob.as_bytes();
        let mut depth = 0usize;
        let mut special = bytes[0] == b'!';
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    special = true;
                    i += 1;
                    if i >= bytes.len() {
                        return Err(format!(
                            "invalid glob \"{glob}\": ends with an unfinished escape (\\)"
                        ));
                    }
                }
                b'[' => {
                    special = true;
                    i = class_end(bytes, i).ok_or_else(|| {
                        format!("invalid glob \"{glob}\": unclosed character class ([ without ])")
                    })?;
                }
                b'{' => {
                    special = true;
                    depth += 1;
                    if depth > 10 {
                        return Err(format!(
                            "invalid glob \"{glob}\": braces nested more than 10 deep"
                        ));
                    }
                }
                b'}' => depth = depth.saturating_sub(1),
                b'*' | b'?' => special = true,
                _ => {}
            }
            i += 1;
        }
        if depth > 0 {
            return Err(format!(
                "invalid glob \"{glob}\": unclosed brace ({{ without }})"
            ));
        }
        Ok(if special {
            Glob::Pattern(glob.to_owned())
        } else {
            Glob::Literal(glob.to_owned())
        })
    }

    pub fn matches(&self, tool: &str) -> bool {
        match self {
            Glob::Literal(name) => name == tool,
            Glob::Pattern(glob) => glob_match::glob_match(glob, tool),
        }
    }
}

/// The index of the `]` closing the class that opens at `open`: the first
/// `]` that is not the class's first member.
fn class_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut j = open + 1;
    if j < bytes.len() && matches!(bytes[j], b'^' | b'!') {
        j += 1;
    }
    let mut first = true;
    while j < bytes.len() && (first || bytes[j] != b']') {
        if bytes[j] == b'\\' {
            j += 1;
        }
        j += 1;
        first = false;
    }
    (j < bytes.len()).then_some(j)
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn tool_globs() {
        let cases: &[(&str, &str, bool)] = &[
            // Exact names, case-sensitive.
            ("send_email", "send_email", true),
            ("send_email", "send_emails", false),
            ("send_email", "Send_Email", false),
            ("send_email", "", false),
            // `*` matches any name (dots included), but not across `/`.
            ("*", "anything", true),
            ("*", "stripe.refund", true),
            ("*", "a/b", false),
            ("**", "a/b", true),
            // Prefixes and suffixes.
            ("send_*", "send_email", true),
            ("send_*", "send_", true),
            ("send_*", "send", false),
            ("send_*", "resend_email", false),
            ("*_delete", "db_delete", true),
            ("*_delete", "db_delete_all", false),
            // `.` is literal: `stripe.*` is not `stripe_*`.
            ("stripe.*", "stripe.refund", true),
            ("stripe.*", "stripe.", true),
            ("stripe.*", "stripe_refund", false),
            ("stripe.*", "stripe", false),
            ("stripe.*", "xstripe.refund", false),
            // `?` is exactly one character.
            ("file_?", "file_1", true),
            ("file_?", "file_12", false),
            ("file_?", "file_", false),
            // Character classes.
            ("[abc]_x", "a_x", true),
            ("[abc]_x", "d_x", false),
            ("[a-c]_x", "b_x", true),
            ("[!abc]_x", "d_x", true),
            ("[!abc]_x", "a_x", false),
            // Braces.
            ("{send,read}_email", "send_email", true),
            ("{send,read}_email", "read_email", true),
            ("{send,read}_email", "delete_email", false),
            ("{stripe,paypal}.*", "paypal.refund", true),
            ("{stripe,paypal}.*", "square.refund", false),
            // Leading `!` negates.
            ("!delete_*", "read_file", true),
            ("!delete_*", "delete_file", false),
            // Escapes make glob characters literal.
            ("\\*", "*", true),
            ("\\*", "a", false),
            // A stray `}` outside braces is a literal.
            ("a}", "a}", true),
        ];
        for (glob, tool, want) in cases {
            let compiled = Glob::compile(glob).unwrap();
            assert_eq!(
                compiled.matches(tool),
                *want,
                "glob {glob:?} on tool {tool:?}"
            );
        }
    }

    #[test]
    fn broken_globs_are_rejected() {
        let cases: &[(&str, &str)] = &[
            ("", "must not be empty"),
            ("send_[ab", "unclosed character class"),
            ("[]", "unclosed character class"),
            ("{a,b", "unclosed brace"),
            ("a\\", "unfinished escape"),
            ("{{{{{{{{{{{a}}}}}}}}}}}", "more than 10 deep"),
        ];
        for (glob, want) in cases {
            let error = Glob::compile(glob).unwrap_err();
            assert!(error.contains(want), "{glob:?}: {error}");
        }
        for glob in ["[]]", "[!]]x", "a}", "{{a}}"] {
            assert!(Glob::compile(glob).is_ok(), "{glob:?}");
        }
    }

    #[test]
    fn plain_names_compare_without_glob_match() {
        assert!(matches!(Glob::compile("send_email"), Ok(Glob::Literal(_))));
        assert!(matches!(Glob::compile("send_*"), Ok(Glob::Pattern(_))));
        assert!(matches!(Glob::compile("!x"), Ok(Glob::Pattern(_))));
    }
}
