//! Just enough of the POSIX shell to read the variables of init scripts, rc.d scripts and
//! the files they source (`/etc/default/*`, `/etc/sysconfig/*`, `/etc/rc.conf`), without
//! running anything.
//!
//! Commands are evaluated in order, whatever `if` or `case` they sit in, and never run:
//! only assignments (`NAME=value`, `export NAME=value`) and the assigning expansions
//! (`: ${NAME=default}`) change variables. A value that needs a command substitution or a
//! positional parameter cannot be known; it is kept as unknown, with the reason, so that
//! whoever uses it can say why.

use std::collections::BTreeMap;

/// Why a value cannot be worked out without running the script.
pub(crate) type Unknown = String;

/// A variable's value and the file that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Var {
    pub value: Result<String, Unknown>,
    pub origin: String,
}

/// One simple command: its words as written (quotes kept) and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub words: Vec<String>,
    /// The column of its first word: 0 for a command at the left margin.
    pub indent: usize,
}

/// Variables, as a script would leave them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Shell {
    vars: BTreeMap<String, Var>,
    /// The file being read, recorded as the origin of what it sets.
    origin: String,
}

/// A hook called with the expanded words of each command that is not an assignment.
pub(crate) type Hook<'a> = &'a mut dyn FnMut(&mut Shell, &[String]);

/// Reserved words after which a command starts.
const OPENERS: [&str; 6] = ["then", "else", "do", "{", "!", "time"];
/// Reserved words starting a condition or closing a block: nothing to evaluate.
const SKIPPED: [&str; 12] =
    ["if", "elif", "while", "until", "fi", "done", "esac", "case", "for", "}", "in", ";;"];

impl Shell {
    pub fn new() -> Shell {
        Shell::default()
    }

    pub fn var(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    /// A variable's value; `None` when unset.
    pub fn value(&self, name: &str) -> Option<Result<&str, &str>> {
        self.vars.get(name).map(|var| match &var.value {
            Ok(value) => Ok(value.as_str()),
            Err(why) => Err(why.as_str()),
        })
    }

    /// A variable's value when it is known and not empty.
    pub fn known(&self, name: &str) -> Option<&str> {
        match self.value(name) {
            Some(Ok(value)) if !value.trim().is_empty() => Some(value),
            _ => None,
        }
    }

    /// Sets a known value, recording where it came from.
    pub fn define(&mut self, name: &str, value: &str, origin: &str) {
        self.vars.insert(
            name.to_string(),
            Var { value: Ok(value.to_string()), origin: origin.to_string() },
        );
    }

    pub fn set(&mut self, name: &str, value: Result<String, Unknown>) {
        self.vars.insert(name.to_string(), Var { value, origin: self.origin.clone() });
    }

    /// Evaluates `text`, read from `origin`: the commands `filter` accepts, in order.
    pub fn run(&mut self, origin: &str, text: &str, filter: &dyn Fn(&Command) -> bool, hook: Hook) {
        let saved = std::mem::replace(&mut self.origin, origin.to_string());
        for command in parse(text) {
            if filter(&command) {
                self.eval(&command.words, hook);
            }
        }
        self.origin = saved;
    }

    /// Evaluates every command of `text`, with no hook.
    pub fn run_all(&mut self, origin: &str, text: &str) {
        self.run(origin, text, &|_| true, &mut |_, _| {});
    }

    fn eval(&mut self, words: &[String], hook: Hook) {
        let mut words = words;
        while let Some(first) = words.first() {
            if OPENERS.contains(&first.as_str()) {
                words = &words[1..];
            } else {
                break;
            }
        }
        let Some(first) = words.first() else { return };
        if SKIPPED.contains(&first.as_str()) {
            return;
        }
        let n_assignments =
            words.iter().take_while(|word| split_assignment(word).is_some()).count();
        if n_assignments == words.len() {
            for word in words {
                self.assign(word);
            }
            return;
        }
        // Assignments before a command are for that command only.
        let command = &words[n_assignments..];
        if matches!(command[0].as_str(), "export" | "readonly" | "local" | "typeset" | "declare") {
            for word in &command[1..] {
                if split_assignment(word).is_some() {
                    self.assign(word);
                }
            }
            return;
        }
        let mut expanded = Vec::with_capacity(command.len());
        for word in command {
            match self.expand(word) {
                Ok(word) => expanded.push(word),
                Err(_) => return,
            }
        }
        hook(self, &expanded);
    }

    fn assign(&mut self, word: &str) {
        if let Some((name, raw)) = split_assignment(word) {
            let value = self.expand(raw);
            self.set(name, value);
        }
    }

    /// Expands a word as the shell would, without field splitting: quotes are removed,
    /// parameters replaced (unset ones by nothing).
    pub fn expand(&mut self, raw: &str) -> Result<String, Unknown> {
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

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `NAME=value` written with an unquoted name: the name and the raw value.
fn split_assignment(word: &str) -> Option<(&str, &str)> {
    let (name, value) = word.split_once('=')?;
    is_name(name).then_some((name, value))
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
fn glob(pattern: &[char], text: &[char]) -> bool {
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

/// The index of the bracket closing the one at `chars[open]`, skipping quoted text.
fn closing(chars: &[char], open: usize, left: char, right: char) -> Option<usize> {
    let mut depth = 0;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '\'' => i = chars[i + 1..].iter().position(|&c| c == '\'')? + i + 1,
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            c if c == left => depth += 1,
            c if c == right => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Splits a script into simple commands of raw words. Comments, `;`, `&`, `|`, `(`, `)`
/// and new lines separate commands; quoted text, `${...}`, `$(...)` and backquotes stay in
/// their word.
pub(crate) fn parse(text: &str) -> Vec<Command> {
    let chars: Vec<char> = text.chars().collect();
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut indent = 0;
    let mut line_start = 0;
    let mut i = 0;

    fn end_word(words: &mut Vec<String>, word: &mut String, in_word: &mut bool) {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    }
    fn end_command(commands: &mut Vec<Command>, words: &mut Vec<String>, indent: usize) {
        if !words.is_empty() {
            commands.push(Command { words: std::mem::take(words), indent });
        }
    }

    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && chars.get(i + 1) == Some(&'\n') {
            i += 2;
            line_start = i;
            continue;
        }
        if !in_word && !matches!(c, ' ' | '\t' | '\n' | '\r' | ';' | '&' | '|' | '(' | ')' | '#') {
            in_word = true;
            if words.is_empty() {
                indent = i - line_start;
            }
        }
        match c {
            '\n' => {
                end_word(&mut words, &mut word, &mut in_word);
                end_command(&mut commands, &mut words, indent);
                line_start = i + 1;
            }
            ' ' | '\t' | '\r' => end_word(&mut words, &mut word, &mut in_word),
            ';' | '&' | '|' | '(' | ')' => {
                end_word(&mut words, &mut word, &mut in_word);
                end_command(&mut commands, &mut words, indent);
            }
            '#' if !in_word => {
                while i + 1 < chars.len() && chars[i + 1] != '\n' {
                    i += 1;
                }
            }
            '\\' => {
                word.push('\\');
                if let Some(&next) = chars.get(i + 1) {
                    word.push(next);
                }
                i += 1;
            }
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '\'')
                    .map_or(chars.len(), |at| i + 1 + at);
                word.extend(&chars[i..(end + 1).min(chars.len())]);
                i = end;
            }
            '"' => {
                let mut end = i + 1;
                while end < chars.len() && chars[end] != '"' {
                    match chars[end] {
                        '\\' => end += 1,
                        '$' if matches!(chars.get(end + 1), Some('{')) => {
                            end = closing(&chars, end + 1, '{', '}').unwrap_or(chars.len());
                        }
                        '$' if matches!(chars.get(end + 1), Some('(')) => {
                            end = closing(&chars, end + 1, '(', ')').unwrap_or(chars.len());
                        }
                        _ => {}
                    }
                    end += 1;
                }
                word.extend(&chars[i..(end + 1).min(chars.len())]);
                i = end;
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '`')
                    .map_or(chars.len(), |at| i + 1 + at);
                word.extend(&chars[i..(end + 1).min(chars.len())]);
                i = end;
            }
            '$' if matches!(chars.get(i + 1), Some('{' | '(')) => {
                let (left, right) = if chars[i + 1] == '{' { ('{', '}') } else { ('(', ')') };
                let end = closing(&chars, i + 1, left, right).unwrap_or(chars.len() - 1);
                word.extend(&chars[i..=end]);
                i = end;
            }
            c => word.push(c),
        }
        i += 1;
    }
    end_word(&mut words, &mut word, &mut in_word);
    end_command(&mut commands, &mut words, indent);
    commands
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Shell {
        let mut shell = Shell::new();
        shell.run_all("/test", text);
        shell
    }

    #[test]
    fn assignments_and_expansions() {
        let shell = run(concat!(
            "NAME=opendkim\n",
            "RUNDIR=/run/$NAME\n",
            "SOCKET=\"local:${RUNDIR}/$NAME.sock\" # a comment\n",
            "QUOTED='$NAME'\n",
            "export EXPORTED=yes\n",
            "TEMP=1 some_command $TEMP\n",
            "if [ -f /x ]; then INSIDE=\"a b\"; fi\n",
            "CONT=\"one \\\n two\"\n",
            "COMPUTED=`awk '{print $2}' /etc/x`\n",
            "POSITIONAL=$1\n",
        ));
        assert_eq!(shell.value("SOCKET"), Some(Ok("local:/run/opendkim/opendkim.sock")));
        assert_eq!(shell.value("QUOTED"), Some(Ok("$NAME")));
        assert_eq!(shell.value("EXPORTED"), Some(Ok("yes")));
        assert_eq!(shell.value("TEMP"), None);
        assert_eq!(shell.value("INSIDE"), Some(Ok("a b")));
        assert_eq!(shell.value("CONT"), Some(Ok("one  two")));
        assert_eq!(shell.value("COMPUTED"), Some(Err("is computed by a command")));
        assert_eq!(shell.value("POSITIONAL"), Some(Err("uses the script's parameter $1")));
        assert_eq!(shell.var("SOCKET").unwrap().origin, "/test");
    }

    #[test]
    fn parameter_operators() {
        let shell = run(concat!(
            "EMPTY=\n",
            "a=${UNSET:-\"default value\"}\n",
            "b=${EMPTY-set}\n",
            "c=${EMPTY:-empty}\n",
            ": ${d=\"/var/run/d.sock\"}\n",
            ": ${a:=ignored}\n",
            "e=${a:+alt}\n",
            "path=local:/run/x/y.sock\n",
            "f=${path##local:}\n",
            "g=${path##*/}\n",
            "h=${path%/*}\n",
            "i=${#path}\n",
            "j=${k:-${d}}\n",
        ));
        assert_eq!(shell.value("a"), Some(Ok("default value")));
        assert_eq!(shell.value("b"), Some(Ok("")));
        assert_eq!(shell.value("c"), Some(Ok("empty")));
        assert_eq!(shell.value("d"), Some(Ok("/var/run/d.sock")));
        assert_eq!(shell.value("e"), Some(Ok("alt")));
        assert_eq!(shell.value("f"), Some(Ok("/run/x/y.sock")));
        assert_eq!(shell.value("g"), Some(Ok("y.sock")));
        assert_eq!(shell.value("h"), Some(Ok("local:/run/x")));
        assert_eq!(shell.value("i"), Some(Ok("19")));
        assert_eq!(shell.value("j"), Some(Ok("/var/run/d.sock")));
        let g = |pattern: &str, text: &str| {
            glob(&pattern.chars().collect::<Vec<_>>(), &text.chars().collect::<Vec<_>>())
        };
        assert!(g("*", "") && g("a*c", "abbc") && g("a?c", "abc") && g("*.sock", "x.sock"));
        assert!(!g("a*c", "abd") && !g("?", "") && !g("a", "ab"));
        assert!(!g(&"*a".repeat(30), &"a".repeat(29)));
    }

    #[test]
    fn hook_sees_commands_and_filter_chooses_them() {
        let mut shell = Shell::new();
        let mut seen = Vec::new();
        let text = "X=1\n. /etc/default/$NAME\nfoo() {\n    Y=2\n}\nZ=3\n";
        shell.set("NAME", Ok("opendkim".into()));
        shell.run("/s", text, &|command| command.indent == 0, &mut |_, words| {
            seen.push(words.join(" "));
        });
        assert_eq!(seen, [". /etc/default/opendkim", "foo"]);
        assert_eq!(shell.value("Y"), None);
        assert_eq!(shell.value("Z"), Some(Ok("3")));
    }

    #[test]
    fn options() {
        let words = split_words("-u spamass-milter -p '/var/run/a b.sock' -i 127.0.0.1 -- -d x");
        assert_eq!(words[3], "/var/run/a b.sock");
        assert_eq!(option_value(&words, &["-p"]).as_deref(), Some("/var/run/a b.sock"));
        assert_eq!(option_value(&words, &["-d"]), None);
        let words = split_words("-x/etc/o.conf --config-file=/etc/c.conf -p -g postfix");
        assert_eq!(option_value(&words, &["-x"]).as_deref(), Some("/etc/o.conf"));
        assert_eq!(option_value(&words, &["-c", "--config-file"]).as_deref(), Some("/etc/c.conf"));
        assert_eq!(option_value(&words, &["-p"]), None);
        assert!(is_yes("Yes") && is_yes("TRUE") && !is_yes("NO") && !is_yes(""));
    }
}
