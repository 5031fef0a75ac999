//! The file-name patterns of `include`: `*`, `?` and `[...]` (`[!...]` or `[^...]` to
//! negate, `a-z` ranges), matched against one file name.

use super::error::IncludeError;

/// Whether `text` has a pattern character, i.e. is a glob rather than a plain name.
pub(super) fn is_pattern(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// Checks that a pattern is well formed, so a typo is reported instead of matching nothing.
pub(super) fn check(pattern: &str) -> Result<(), IncludeError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '[' {
            let unclosed = || IncludeError::UnclosedBracket(pattern.to_string());
            i = class_end(&chars, i).ok_or_else(unclosed)?;
        }
        i += 1;
    }
    Ok(())
}

/// Whether the file `name` matches `pattern`. As in the shell, a leading dot is matched
/// only by a leading dot in the pattern, so editors' hidden backup files stay out.
pub(super) fn matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    matches_at(&pattern, &name)
}

fn matches_at(pattern: &[char], name: &[char]) -> bool {
    // Iterative matching with one backtrack point for the last `*`: linear enough for file
    // names and without recursion.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => Some(p + 1),
            Some('[') => match class_end(pattern, p) {
                Some(end) if class_matches(&pattern[p + 1..end], name[n]) => Some(end + 1),
                Some(_) => None,
                None => (name[n] == '[').then_some(p + 1),
            },
            Some(c) if *c == name[n] => Some(p + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                n += 1;
            }
            (None, Some((star_p, star_n))) => {
                // Let the last `*` swallow one more character and try again.
                p = star_p + 1;
                n = star_n + 1;
                star = Some((star_p, star_n + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// The index of the `]` closing the class that opens at `start`.
fn class_end(pattern: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if matches!(pattern.get(i), Some('!' | '^')) {
        i += 1;
    }
    // A `]` right after the opening (or the negation) is a member, not the end.
    if pattern.get(i) == Some(&']') {
        i += 1;
    }
    while i < pattern.len() {
        if pattern[i] == ']' {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Whether `c` is in the class whose inside (between the brackets) is `class`.
fn class_matches(class: &[char], c: char) -> bool {
    let (negated, members) = match class.first() {
        Some('!' | '^') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut found = false;
    let mut i = 0;
    while i < members.len() {
        if i + 2 < members.len() && members[i + 1] == '-' {
            found |= members[i] <= c && c <= members[i + 2];
            i += 3;
        } else {
            found |= members[i] == c;
            i += 1;
        }
    }
    found != negated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_questions() {
        assert!(matches("*.toml", "a.toml"));
        assert!(!matches("*.toml", ".toml.toml"));
        assert!(matches("*", "anything"));
        assert!(!matches("*.toml", "a.toml.bak"));
        assert!(matches("a*b*c", "aXXbYYbc"));
        assert!(matches("??.toml", "10.toml"));
        assert!(!matches("??.toml", "1.toml"));
        assert!(matches("*", ""));
        assert!(!matches("*.toml", ".hidden.toml"));
        assert!(matches(".*.toml", ".hidden.toml"));
    }

    #[test]
    fn classes() {
        assert!(matches("[0-9]*.toml", "10-spam.toml"));
        assert!(!matches("[0-9]*.toml", "spam.toml"));
        assert!(matches("[!0-9]*.toml", "spam.toml"));
        assert!(matches("[^0-9]*.toml", "spam.toml"));
        assert!(matches("[]a].toml", "].toml"));
        assert!(matches("x[ab-]", "x-"));
    }

    #[test]
    fn malformed_patterns_are_reported() {
        assert!(check("[abc.toml").unwrap_err().to_string().contains("without ']'"));
        assert!(check("[a]*.toml").is_ok());
        assert!(
            is_pattern("*.toml") && is_pattern("a?") && is_pattern("[ab]") && !is_pattern("a.toml")
        );
    }
}
