//! Expanding words as the shell would: quotes, parameters and their operators.

use super::parse::closing;
use super::{is_name, Shell, Unknown};

impl Shell {
    /// Expands a word as the shell would, without field splitting: quotes are removed,
    /// parameters replaced (unset ones by nothing).
    pub(crate) fn expand(&mut self, raw: &str) -> Result<String, Unknown> {
        let chars: Vec<char> = raw.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '\'' => {
                    i += 1;
                    while i < chars.len() && chars[i] != '\'' {
                        out.push(chars[i]);
                        i += 1;
                    }
                    i += 1;
                }
                '"' => {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        match chars[i] {
                            '\\' if matches!(chars.get(i + 1), Some('$' | '`' | '"' | '\\')) => {
                                out.push(chars[i + 1]);
                                i += 2;
                            }
                            '\\' if chars.get(i + 1) == Some(&'\n') => i += 2,
                            '$' => i = self.dollar(&chars, i, &mut out)?,
                            '`' => return Err(COMMAND_SUBSTITUTION.into()),
                            c => {
                                out.push(c);
                                i += 1;
                            }
                        }
                    }
                    i += 1;
                }
                '\\' => {
                    if let Some(&c) = chars.get(i + 1) {
                        if c != '\n' {
                            out.push(c);
                        }
                    }
                    i += 2;
                }
                '$' => i = self.dollar(&chars, i, &mut out)?,
                '`' => return Err(COMMAND_SUBSTITUTION.into()),
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        Ok(out)
    }

    /// Expands the `$` at `chars[i]`; returns the index after it.
    fn dollar(&mut self, chars: &[char], i: usize, out: &mut String) -> Result<usize, Unknown> {
        match chars.get(i + 1) {
            Some('{') => {
                let end = closing(chars, i + 1, '{', '}')
                    .ok_or_else(|| "has an unterminated ${".to_string())?;
                let inner: String = chars[i + 2..end].iter().collect();
                out.push_str(&self.braced(&inner)?);
                Ok(end + 1)
            }
            Some('(') => Err(COMMAND_SUBSTITUTION.into()),
            Some(&c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = i + 1;
                while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_')
                {
                    end += 1;
                }
                let name: String = chars[i + 1..end].iter().collect();
                out.push_str(&self.lookup(&name)?);
                Ok(end)
            }
            Some(&c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => Err(special(c)),
            _ => {
                out.push('$');
                Ok(i + 1)
            }
        }
    }

    fn lookup(&self, name: &str) -> Result<String, Unknown> {
        match self.vars.get(name) {
            None => Ok(String::new()),
            Some(var) => var.value.clone(),
        }
    }

    /// `${...}`: a parameter, with one of the operators `- = + ?` (optionally after `:`),
    /// `# ## % %%`, or `#` before the name for the length.
    fn braced(&mut self, inner: &str) -> Result<String, Unknown> {
        if let Some(name) = inner.strip_prefix('#').filter(|name| is_name(name)) {
            return Ok(self.lookup(name)?.chars().count().to_string());
        }
        let name_len = inner
            .char_indices()
            .find(|&(at, c)| {
                !(c.is_ascii_alphanumeric() || c == '_') || (at == 0 && c.is_ascii_digit())
            })
            .map_or(inner.len(), |(at, _)| at);
        let name = &inner[..name_len];
        if name.is_empty() {
            return Err(match inner.chars().next() {
                Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => special(c),
                _ => format!("has a bad substitution ${{{inner}}}"),
            });
        }
        let rest = &inner[name_len..];
        let current = self.vars.get(name).map(|var| var.value.clone());
        if rest.is_empty() {
            return current.unwrap_or(Ok(String::new()));
        }
        let (colon, rest) = match rest.strip_prefix(':') {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let is_set = match &current {
            None => false,
            Some(Ok(value)) => !(colon && value.is_empty()),
            Some(Err(_)) => true,
        };
        let mut ops = rest.chars();
        let op = ops.next().unwrap_or(' ');
        let word = ops.as_str();
        match op {
            '-' if is_set => current.unwrap_or(Ok(String::new())),
            '-' => self.expand(word),
            '=' if is_set => current.unwrap_or(Ok(String::new())),
            '=' => {
                let value = self.expand(word);
                self.set(name, value.clone());
                value
            }
            '+' if is_set => self.expand(word),
            '+' => Ok(String::new()),
            '?' if is_set => current.unwrap_or(Ok(String::new())),
            '?' => Err(format!("needs ${name}, which is unset")),
            '#' | '%' if !colon => {
                let value = current.unwrap_or(Ok(String::new()))?;
                let (longest, pattern) = match word.strip_prefix(op) {
                    Some(pattern) => (true, pattern),
                    None => (false, word),
                };
                let pattern = self.expand(pattern)?;
                Ok(remove_pattern(&value, &pattern, op == '#', longest))
            }
            _ => Err(format!("has a bad substitution ${{{inner}}}")),
        }
    }
}

const COMMAND_SUBSTITUTION: &str = "is computed by a command";

fn special(c: char) -> Unknown {
    format!("uses the script's parameter ${c}")
}

/// `${value#pattern}` and friends: removes the shortest or longest prefix (or suffix)
/// matching the glob `pattern`.
fn remove_pattern(value: &str, pattern: &str, prefix: bool, longest: bool) -> String {
    let text: Vec<char> = value.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    let n = text.len();
    let cuts: Box<dyn Iterator<Item = usize>> = match (prefix, longest) {
        (true, false) | (false, true) => Box::new(0..=n),
        (true, true) | (false, false) => Box::new((0..=n).rev()),
    };
    for cut in cuts {
        let (part, keep) =
            if prefix { (&text[..cut], &text[cut..]) } else { (&text[cut..], &text[..cut]) };
        if glob(&pattern, part) {
            return keep.iter().collect();
        }
    }
    value.to_string()
}

/// A shell glob with `*` and `?`; backtracks to the last `*` only, so it stays linear.
pub(super) fn glob(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if pattern.get(p) == Some(&'*') {
            star = Some((p, t));
            p += 1;
        } else if pattern.get(p).is_some_and(|&c| c == '?' || c == text[t]) {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}
