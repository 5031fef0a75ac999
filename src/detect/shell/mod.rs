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

pub(crate) use command_line::{is_yes, option_value, split_words};
use parse::parse;

mod command_line;
mod expand;
mod parse;
#[cfg(test)]
mod tests;

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
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn var(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    /// A variable's value; `None` when unset.
    pub(crate) fn value(&self, name: &str) -> Option<Result<&str, &str>> {
        self.vars.get(name).map(|var| match &var.value {
            Ok(value) => Ok(value.as_str()),
            Err(why) => Err(why.as_str()),
        })
    }

    /// A variable's value when it is known and not empty.
    pub(crate) fn known(&self, name: &str) -> Option<&str> {
        match self.value(name) {
            Some(Ok(value)) if !value.trim().is_empty() => Some(value),
            _ => None,
        }
    }

    /// Sets a known value, recording where it came from.
    pub(crate) fn define(&mut self, name: &str, value: &str, origin: &str) {
        self.vars.insert(
            name.to_string(),
            Var { value: Ok(value.to_string()), origin: origin.to_string() },
        );
    }

    pub(crate) fn set(&mut self, name: &str, value: Result<String, Unknown>) {
        self.vars.insert(name.to_string(), Var { value, origin: self.origin.clone() });
    }

    /// Evaluates `text`, read from `origin`: the commands `filter` accepts, in order.
    pub(crate) fn run(
        &mut self,
        origin: &str,
        text: &str,
        filter: &dyn Fn(&Command) -> bool,
        hook: Hook,
    ) {
        let saved = std::mem::replace(&mut self.origin, origin.to_string());
        for command in parse(text) {
            if filter(&command) {
                self.eval(&command.words, hook);
            }
        }
        self.origin = saved;
    }

    /// Evaluates every command of `text`, with no hook.
    pub(crate) fn run_all(&mut self, origin: &str, text: &str) {
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
