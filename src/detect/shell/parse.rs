//! Splitting a script into simple commands of raw words.

use super::Command;

/// The index of the bracket closing the one at `chars[open]`, skipping quoted text.
pub(super) fn closing(chars: &[char], open: usize, left: char, right: char) -> Option<usize> {
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
