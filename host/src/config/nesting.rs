//! A cheap look at helio.yaml's nesting before the YAML parser sees it.
//!
//! The parser's cost grows with the square of the nesting depth (100 000
//! nested `[` took 29 s of CPU before it was refused), and it refuses
//! anything deeper than 128 levels anyway. This scan refuses such text in
//! linear time: flow collections (`[`, `{`) nested deeper than
//! [`MAX_FLOW_DEPTH`], or block content indented past [`MAX_INDENT`]
//! columns (every block level needs at least one more column). It skips
//! quoted scalars, comments and block scalars (`|`, `>`), so brackets in
//! strings never count. A real configuration is a few levels deep.

/// Deepest flow nesting accepted (the parser itself stops at 128).
pub const MAX_FLOW_DEPTH: usize = 128;
/// Deepest block indentation accepted, in columns.
pub const MAX_INDENT: usize = 1024;

/// Where the text is nested too deeply: `(line, message)`.
pub fn check(text: &str) -> Result<(), (usize, String)> {
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    // The indentation of the line that opened a block scalar: more-indented
    // (and blank) lines after it are its content.
    let mut block_scalar: Option<usize> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(parent) = block_scalar {
            if line.trim().is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        if quote.is_none() && flow == 0 && content_column(line) > MAX_INDENT {
            return Err((
                number,
                format!("nested deeper than {MAX_INDENT} columns of indentation"),
            ));
        }
        let mut previous: Option<char> = None;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if let Some(q) = quote {
                match (q, c) {
                    ('"', '\\') => {
                        chars.next();
                    }
                    ('\'', '\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                    }
                    _ if c == q => quote = None,
                    _ => {}
                }
                previous = Some(c);
                continue;
            }
            let starts_token = previous.is_none_or(|p| p.is_whitespace() || "[{,:-?".contains(p));
            match c {
                '#' if previous.is_none_or(char::is_whitespace) => break,
                '"' | '\'' if scalar_may_start(previous) => quote = Some(c),
                '[' | '{' if starts_token || flow > 0 => {
                    flow += 1;
                    if flow > MAX_FLOW_DEPTH {
                        return Err((
                            number,
                            format!("flow collections ([ ] or {{ }}) nested deeper than {MAX_FLOW_DEPTH} levels"),
                        ));
                    }
                }
                ']' | '}' if flow > 0 => flow -= 1,
                _ => {}
            }
            if !c.is_whitespace() {
                previous = Some(c);
            } else if previous.is_some() {
                previous = Some(' ');
            }
        }
        if quote.is_none() && flow == 0 && opens_block_scalar(line) {
            block_scalar = Some(indent);
        }
    }
    Ok(())
}

/// A quote opens a quoted scalar only where a scalar may start: at the
/// start of the line's content or after an indicator or whitespace that
/// follows one (a quote inside a plain scalar is just a character).
fn scalar_may_start(previous: Option<char>) -> bool {
    previous.is_none_or(|p| p == ' ' || "[{,:-?".contains(p))
}

/// The column where a line's content starts, past indentation and the
/// `- ` / `? ` indicators of compact nested block collections.
fn content_column(line: &str) -> usize {
    let bytes = line.as_bytes();
    let mut column = 0;
    while column < bytes.len() {
        match bytes[column] {
            b' ' => column += 1,
            b'-' | b'?' if bytes.get(column + 1).is_none_or(|b| *b == b' ') => column += 1,
            _ => break,
        }
    }
    column
}

/// `key: |`, `- >-`, `|2+` … : the following indented lines are text.
fn opens_block_scalar(line: &str) -> bool {
    let content = match line.find(" #") {
        Some(at) => &line[..at],
        None => line,
    };
    let last = content.trim_end().rsplit([' ', '\t']).next().unwrap_or("");
    let mut chars = last.chars();
    matches!(chars.next(), Some('|' | '>'))
        && chars.all(|c| c == '-' || c == '+' || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_configurations_pass() {
        let text = r#"
version: "1"
upstream: { url: "http://x/mcp", headers: { a: "[[[[" } }
policies:
  rules:
    - name: it's fine [not flow]
      match: { tool: "*", input: { $.a: { regex: '^[a-z]{2,}[[[[$' } } }
      feedback:
        message: |
          [[[[[[ text in a block scalar ]]]
          {{{{{{
        suggestion: "say \"[[[[\""   # [[[[ in a comment
    - - - - nested
      - [1, [2, [3]]]
"#;
        assert_eq!(check(text), Ok(()));
    }

    #[test]
    fn deep_flow_and_block_nesting_are_refused_in_linear_time() {
        let deep = format!("x-deep: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        let (line, message) = check(&deep).expect_err("deep flow");
        assert_eq!(line, 1);
        assert!(message.contains("flow collections"), "{message}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));

        let block: String = (1..3000)
            .map(|i| format!("{}-\n", "  ".repeat(i)))
            .collect();
        let (_, message) = check(&format!("x-deep:\n{block}")).expect_err("deep block");
        assert!(message.contains("indentation"), "{message}");
        let compact = format!("{}x\n", "- ".repeat(2000));
        assert!(check(&compact).is_err());

        let fine = format!(
            "x: {}{}\n",
            "[".repeat(MAX_FLOW_DEPTH),
            "]".repeat(MAX_FLOW_DEPTH)
        );
        assert_eq!(check(&fine), Ok(()));
    }
}
