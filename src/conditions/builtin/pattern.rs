//! The `/regex/` notation shared by the lists of the built-in conditions.

use regex::{Regex, RegexBuilder};

/// `Some` when `text` is written `/regex/` or `/regex/i`, with the compiled pattern or a
/// one-line error naming it; `None` when it is a plain string. `ignore_case` forces the `i`
/// flag (lists whose entries are case-insensitive by nature).
pub(crate) fn parse_slashed(text: &str, ignore_case: bool) -> Option<Result<Regex, String>> {
    let text = text.trim();
    let rest = text.strip_prefix('/')?;
    let (body, flag_i) = if let Some(body) = rest.strip_suffix("/i") {
        (body, true)
    } else {
        (rest.strip_suffix('/')?, false)
    };
    if body.is_empty() {
        return Some(Err(format!("empty regular expression {text}: it would match everything")));
    }
    Some(
        compile(body, ignore_case || flag_i)
            .map_err(|e| format!("invalid regular expression {text}: {e}")),
    )
}

/// Compiles with a one-line error (the regex crate's own message spans several lines).
pub(crate) fn compile(pattern: &str, ignore_case: bool) -> Result<Regex, String> {
    RegexBuilder::new(pattern).case_insensitive(ignore_case).build().map_err(|e| one_line(&e))
}

fn one_line(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .or_else(|| text.lines().next())
        .unwrap_or("unknown error")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_not_a_pattern() {
        assert!(parse_slashed("mx.example.com", false).is_none());
        assert!(parse_slashed("/", false).is_none());
        assert!(parse_slashed("/abc", false).is_none());
        assert!(parse_slashed("abc/", false).is_none());
    }

    #[test]
    fn slashed_text_is_a_pattern() {
        let re = parse_slashed("/\\.example\\.com\\z/", false).unwrap().unwrap();
        assert!(re.is_match("mx.example.com"));
        assert!(!re.is_match("mx.EXAMPLE.com"));
        assert!(!re.is_match("mx.example.com.evil"));
        let re = parse_slashed(" /\\.example\\.com\\z/i ", false).unwrap().unwrap();
        assert!(re.is_match("mx.EXAMPLE.com"));
        let re = parse_slashed("/example/", true).unwrap().unwrap();
        assert!(re.is_match("EXAMPLE"));
    }

    #[test]
    fn errors_are_one_line_and_name_the_pattern() {
        let error = parse_slashed("/a(b/", false).unwrap().unwrap_err();
        assert!(!error.contains('\n'), "{error}");
        assert!(error.contains("/a(b/"), "{error}");
        assert!(error.contains("unclosed group"), "{error}");
        let error = parse_slashed("//", false).unwrap().unwrap_err();
        assert!(error.contains("empty"), "{error}");
    }
}
