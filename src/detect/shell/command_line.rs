//! Option strings and command lines: their words and the value of an option.

/// Splits an option string (a value such as `OPTIONS`, or a systemd command line) into
/// words, honouring quotes and backslashes; no expansion. A string the shell itself would
/// refuse (an unterminated quote) gives no words: nothing is read from it.
pub(crate) fn split_words(text: &str) -> Vec<String> {
    shell_words::split(text).unwrap_or_default()
}

/// The argument of one of `options` on a command line: `-p ARG`, `-pARG`, `--name ARG`,
/// `--name=ARG`. The last one counts, as with getopt; words after `--` are someone else's
/// (spamass-milter hands them to spamc). An argument starting with `-` is taken as missing:
/// it is the next option, left there by an empty variable.
pub(crate) fn option_value(words: &[String], options: &[&str]) -> Option<String> {
    let mut found = None;
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        if word == "--" {
            break;
        }
        for option in options {
            if word == option {
                found = words.get(i + 1).filter(|next| !next.starts_with('-')).cloned();
                i += 1;
            } else if let Some(attached) = word.strip_prefix(option) {
                let long = option.starts_with("--");
                let value = if long { attached.strip_prefix('=') } else { Some(attached) };
                if let Some(value) = value.filter(|value| !value.is_empty()) {
                    found = Some(value.to_string());
                }
            }
        }
        i += 1;
    }
    found
}

/// rc.subr's `checkyesno`: YES, TRUE, ON or 1, in any case.
pub(crate) fn is_yes(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1")
}
