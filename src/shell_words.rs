//! Words of a command line as a POSIX shell splits them by its quoting rules alone
//! ('...', "..." and backslash): no variables, globs or redirections. Used for a milter's
//! `command_options` string and for the option strings detection reads from init scripts
//! and unit files.

/// Splits `line` into words as a POSIX shell would for quoting and backslashes alone.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(done) = word.take() {
                    words.push(done);
                }
            }
            '\'' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err(format!("unterminated ' in {line:?}")),
                    }
                }
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        // Inside double quotes a backslash escapes only these.
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => current.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                current.push('\\');
                                current.push(c);
                            }
                            None => return Err(format!("unterminated \" in {line:?}")),
                        },
                        Some(c) => current.push(c),
                        None => return Err(format!("unterminated \" in {line:?}")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(format!("a lone \\ ends {line:?}")),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_split_by_the_shell_quoting_rules() {
        let words = split(r#"-p inet:8891@[127.0.0.1]  'a b' "c \"d\" \$e" f\ g h'i'j"#);
        assert_eq!(
            words.unwrap(),
            ["-p", "inet:8891@[127.0.0.1]", "a b", "c \"d\" $e", "f g", "hij"]
        );
        assert_eq!(split("''").unwrap(), [""]);
        assert_eq!(split("   ").unwrap(), Vec::<String>::new());
        assert!(split("'open").unwrap_err().contains("unterminated '"));
        assert!(split("\"open").unwrap_err().contains("unterminated \""));
    }
}
