//! Ruby regexps as the `regex` crate's: the flags become inline groups, Ruby's line
//! anchors stay line anchors, and what the crate lacks (look-around, back references)
//! is refused with the reason.

/// The pattern for `regex`, or why Ruby's cannot be kept.
pub fn rust_pattern(source: &str, flags: &str) -> Result<String, String> {
    if source.contains("#{") {
        return Err("the regexp is computed in Ruby (#{...})".into());
    }
    for (construct, name) in [
        ("(?=", "look-ahead"),
        ("(?!", "negative look-ahead"),
        ("(?<=", "look-behind"),
        ("(?<!", "negative look-behind"),
        ("(?>", "atomic group"),
        ("\\G", "\\G"),
    ] {
        if source.contains(construct) {
            return Err(format!("the regexp uses {name}, which this project's regexps lack"));
        }
    }
    if source.as_bytes().windows(2).any(|w| w[0] == b'\\' && w[1].is_ascii_digit() && w[1] != b'0')
    {
        return Err("the regexp uses a back reference, which this project's regexps lack".into());
    }
    let mut inline = String::new();
    if flags.contains('i') {
        inline.push('i');
    }
    if flags.contains('x') {
        inline.push('x');
    }
    // Ruby's `.` matches a line end only with /m; `^` and `$` always work on lines.
    if flags.contains('m') {
        inline.push('s');
    }
    if has_line_anchor(source) {
        inline.push('m');
    }
    let body = source.replace("\\Z", "\\n?\\z").replace("\\h", "[0-9a-fA-F]");
    let pattern = if inline.is_empty() { body } else { format!("(?{inline}){body}") };
    regex::Regex::new(&pattern).map_err(|error| {
        let first = error.to_string();
        let line = first.lines().last().unwrap_or("invalid").trim().to_string();
        format!("the regexp does not compile here: {line}")
    })?;
    Ok(pattern)
}

/// Whether `source` has `^` or `$` as an anchor (not escaped, not `[^...]`).
fn has_line_anchor(source: &str) -> bool {
    let mut previous = ' ';
    let mut escaped = false;
    for c in source.chars() {
        if !escaped && (c == '$' || c == '^' && previous != '[') {
            return true;
        }
        escaped = !escaped && c == '\\';
        previous = c;
    }
    false
}

/// A regexp as an entry of a host or domain list (`"/regex/"`).
pub fn pattern_entry(source: &str, flags: &str) -> Result<String, String> {
    Ok(format!("/{}/", rust_pattern(source, flags)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_anchors_become_inline_groups() {
        assert_eq!(rust_pattern(r"\.google\.com\z", ""), Ok(r"\.google\.com\z".into()));
        assert_eq!(rust_pattern(r"\Adhcp", "i"), Ok(r"(?i)\Adhcp".into()));
        assert_eq!(rust_pattern("^-----BEGIN$", ""), Ok("(?m)^-----BEGIN$".into()));
        assert_eq!(pattern_entry(r"\.jp\Z", ""), Ok(r"/\.jp\n?\z/".into()));
    }

    #[test]
    fn what_cannot_be_kept_says_why() {
        assert!(rust_pattern("a(?=b)", "").unwrap_err().contains("look-ahead"));
        assert!(rust_pattern(r"(a)\1", "").unwrap_err().contains("back reference"));
        assert!(rust_pattern("(", "").unwrap_err().starts_with("the regexp does not compile"));
    }
}
