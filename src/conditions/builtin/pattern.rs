//! The `/regex/` notation shared by the lists of the built-in conditions.

use regex::{Regex, RegexBuilder};

use crate::conditions::PatternError;

/// `Some` when `text` is written `/regex/` or `/regex/i`, with the compiled pattern or a
/// one-line error naming it; `None` when it is a plain string. `ignore_case` forces the `i`
/// flag (lists whose entries are case-insensitive by nature).
pub(crate) fn parse_slashed(text: &str, ignore_case: bool) -> Option<Result<Regex, PatternError>> {
    let text = text.trim();
    let rest = text.strip_prefix('/')?;
    let (body, flag_i) = if let Some(body) = rest.strip_suffix("/i") {
        (body, true)
    } else {
        (rest.strip_suffix('/')?, false)
    };
    if body.is_empty() {
        return Some(Err(PatternError::Empty(text.to_string())));
    }
    let compiled = RegexBuilder::new(body).case_insensitive(ignore_case || flag_i).build();
    Some(compiled.map_err(|e| PatternError::Invalid { text: text.to_string(), why: one_line(&e) }))
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
        assert!(!error.to_string().contains('\n'), "{error}");
        assert!(error.to_string().contains("/a(b/"), "{error}");
        assert!(error.to_string().contains("unclosed group"), "{error}");
        let error = parse_slashed("//", false).unwrap().unwrap_err();
        assert!(error.to_string().contains("empty"), "{error}");
    }
}
