//! Tokens of the Ruby the original's configuration files are written in: names, literals,
//! punctuation and line ends. Comments and escaped line ends are dropped here.

use std::rc::Rc;

use super::error::{Location, MigrateError};

/// One token and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: Kind,
    pub line: u32,
    /// Whitespace came right before it (tells `f -1` from `f - 1`, `f [1]` from `f[1]`).
    pub spaced: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A local name, method name or keyword; may end with `?` or `!`.
    Ident(String),
    /// A name starting with a capital letter (`Milter`, `Time`).
    Constant(String),
    /// A string; `interpolated` when it held `#{...}`, which is kept as written.
    Str {
        text: String,
        interpolated: bool,
    },
    Int(i64),
    Float(f64),
    Regexp {
        source: String,
        flags: String,
    },
    Symbol(String),
    /// `%w[...]`.
    Words(Vec<String>),
    /// `name:` in a call's arguments.
    Label(String),
    /// Operators and punctuation: `.`, `,`, `(`, `==`, `=~`, `::`, ...
    Punct(&'static str),
    Newline,
}

/// Punctuation, longest first so that `===` is not read as `==` `=`.
const PUNCTUATION: [&str; 36] = [
    "===", "**", "==", "!=", "=~", "!~", "<=", ">=", "&&", "||", "::", "=>", "+=", "-=", "||=",
    "<<", "..", ".", ",", "(", ")", "[", "]", "{", "}", "|", "=", "!", "<", ">", "+", "-", "*",
    "/", "%", ";",
];

/// Reads `text` (the file `file`) into tokens.
pub fn tokenize(file: &Rc<str>, text: &str) -> Result<Vec<Token>, MigrateError> {
    Lexer { file, chars: text.chars().collect(), at: 0, line: 1, tokens: Vec::new() }.run()
}

struct Lexer<'a> {
    file: &'a Rc<str>,
    chars: Vec<char>,
    at: usize,
    line: u32,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn run(mut self) -> Result<Vec<Token>, MigrateError> {
        let mut spaced = true;
        while let Some(c) = self.peek(0) {
            let line = self.line;
            if c == '\n' {
                self.bump();
                self.push(Kind::Newline, line, spaced);
                spaced = true;
                if self.at_line_start_word("=begin") {
                    self.skip_embedded_document()?;
                }
                continue;
            }
            if c == ' ' || c == '\t' || c == '\r' {
                self.bump();
                spaced = true;
                continue;
            }
            if c == '\\' && self.peek(1) == Some('\n') {
                self.bump();
                self.bump();
                spaced = true;
                continue;
            }
            if c == '#' {
                while self.peek(0).is_some_and(|c| c != '\n') {
                    self.bump();
                }
                continue;
            }
            let kind = self.token(c, spaced)?;
            self.push(kind, line, spaced);
            spaced = false;
        }
        Ok(self.tokens)
    }

    fn token(&mut self, c: char, spaced: bool) -> Result<Kind, MigrateError> {
        if self.at == 0 && self.at_line_start_word("=begin") {
            self.skip_embedded_document()?;
            return Ok(Kind::Newline);
        }
        if c.is_ascii_digit() {
            return self.number();
        }
        if c.is_alphabetic() || c == '_' {
            return Ok(self.name());
        }
        match c {
            '"' | '\'' | '`' => {
                self.bump();
                let (text, interpolated) = self.quoted(c, c, c == '"')?;
                Ok(Kind::Str { text, interpolated })
            }
            ':' if self.peek(1).is_some_and(|c| c.is_alphabetic() || c == '_') => {
                self.bump();
                match self.name() {
                    Kind::Ident(name) | Kind::Constant(name) => Ok(Kind::Symbol(name)),
                    _ => Err(self.not_ruby("a symbol")),
                }
            }
            ':' if self.peek(1) == Some('"') => {
                self.bump();
                self.bump();
                Ok(Kind::Symbol(self.quoted('"', '"', true)?.0))
            }
            '/' if self.regexp_may_start(spaced) => {
                self.bump();
                let (source, _) = self.quoted('/', '/', false)?;
                Ok(Kind::Regexp { source, flags: self.regexp_flags() })
            }
            '%' if self.percent_literal_follows(spaced) => self.percent_literal(),
            '$' | '@' => Err(self.not_ruby(&format!("global or instance variable ({c})"))),
            _ => self.punctuation(),
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn push(&mut self, kind: Kind, line: u32, spaced: bool) {
        self.tokens.push(Token { kind, line, spaced });
    }

    fn location(&self) -> Location {
        Location { file: Rc::clone(self.file), line: self.line }
    }

    fn not_ruby(&self, what: &str) -> MigrateError {
        MigrateError::NotRuby { at: self.location(), what: what.to_string() }
    }

    fn at_line_start_word(&self, word: &str) -> bool {
        let rest: String = self.chars[self.at..].iter().take(word.len()).collect();
        rest == word
    }

    fn skip_embedded_document(&mut self) -> Result<(), MigrateError> {
        let at = self.location();
        loop {
            while self.peek(0).is_some_and(|c| c != '\n') {
                self.bump();
            }
            if self.bump().is_none() {
                return Err(MigrateError::Unterminated { at, what: "=begin comment" });
            }
            if self.at_line_start_word("=end") {
                while self.peek(0).is_some_and(|c| c != '\n') {
                    self.bump();
                }
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Kind {
        let mut name = String::new();
        while let Some(c) = self.peek(0).filter(|c| c.is_alphanumeric() || *c == '_') {
            name.push(c);
            self.bump();
        }
        // `reject?`, `clear!`, but not `a!=b` or `x ?a : b`.
        if let Some(c @ ('?' | '!')) = self.peek(0) {
            if self.peek(1) != Some('=') || self.peek(2) == Some('=') {
                name.push(c);
                self.bump();
            }
        }
        // `milters: [...]`, but not `A::B`.
        if self.peek(0) == Some(':') && self.peek(1) != Some(':') {
            self.bump();
            return Kind::Label(name);
        }
        if name.starts_with(|c: char| c.is_uppercase()) {
            Kind::Constant(name)
        } else {
            Kind::Ident(name)
        }
    }

    fn number(&mut self) -> Result<Kind, MigrateError> {
        let mut digits = String::new();
        let mut float = false;
        let prefixed = self.peek(0) == Some('0') && self.peek(1).is_some_and(|c| c.is_alphabetic());
        while let Some(c) = self.peek(0) {
            let decimal = !prefixed;
            if c.is_ascii_digit() || c == '_' || prefixed && c.is_ascii_alphanumeric() {
                digits.push(c);
            } else if decimal && c == '.' && self.peek(1).is_some_and(|d| d.is_ascii_digit()) {
                float = true;
                digits.push(c);
            } else if decimal
                && matches!(c, 'e' | 'E')
                && self.peek(1).is_some_and(|d| d.is_ascii_digit() || d == '-' || d == '+')
            {
                float = true;
                digits.push(c);
                self.bump();
                if let Some(sign @ ('-' | '+')) = self.peek(0) {
                    digits.push(sign);
                    self.bump();
                }
                continue;
            } else {
                break;
            }
            self.bump();
        }
        let clean = digits.replace('_', "");
        if float {
            return clean.parse().map(Kind::Float).map_err(|_| self.bad_number(&digits));
        }
        let lower = clean.to_ascii_lowercase();
        let (radix, body) = if let Some(hex) = lower.strip_prefix("0x") {
            (16, hex)
        } else if let Some(binary) = lower.strip_prefix("0b") {
            (2, binary)
        } else if let Some(octal) = lower.strip_prefix("0o") {
            (8, octal)
        } else if lower.len() > 1 && lower.starts_with('0') {
            (8, &lower[1..])
        } else {
            (10, lower.as_str())
        };
        i64::from_str_radix(body, radix).map(Kind::Int).map_err(|_| self.bad_number(&digits))
    }

    fn bad_number(&self, digits: &str) -> MigrateError {
        self.not_ruby(&format!("bad number {digits}"))
    }

    /// Reads up to the closing `close` (the opening one is consumed); nested `open`s pair
    /// up as in `%w(a (b) c)`. Escapes are resolved in double-quoted text.
    fn quoted(
        &mut self,
        open: char,
        close: char,
        double: bool,
    ) -> Result<(String, bool), MigrateError> {
        let at = self.location();
        let unterminated = || MigrateError::Unterminated {
            at: at.clone(),
            what: if open == '/' { "regexp" } else { "string" },
        };
        let mut text = String::new();
        let mut interpolated = false;
        let mut depth = 0;
        loop {
            let c = self.bump().ok_or_else(unterminated)?;
            if c == close && depth == 0 {
                return Ok((text, interpolated));
            }
            if c == close {
                depth -= 1;
            } else if c == open && open != close {
                depth += 1;
            }
            match c {
                '\\' => {
                    let next = self.bump().ok_or_else(unterminated)?;
                    if double {
                        text.push_str(&self.escape(next));
                    } else if open == '/' || (next != close && next != '\\') {
                        // A regexp keeps its escapes; so does single-quoted text, but for
                        // the quote and the backslash.
                        if !(open == '/' && next == '/') {
                            text.push('\\');
                        }
                        text.push(next);
                    } else {
                        text.push(next);
                    }
                }
                '#' if double && self.peek(0) == Some('{') => {
                    interpolated = true;
                    text.push(c);
                }
                _ => text.push(c),
            }
        }
    }

    fn escape(&mut self, c: char) -> String {
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'e' => Some('\u{1b}'),
            's' => Some(' '),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '\n' => return String::new(),
            _ => None,
        };
        if let Some(simple) = simple {
            return simple.to_string();
        }
        let decoded = match c {
            'x' => self.take_digits(16, 2),
            'u' if self.peek(0) == Some('{') => {
                self.bump();
                let decoded = self.take_digits(16, 6);
                if self.peek(0) == Some('}') {
                    self.bump();
                }
                decoded
            }
            'u' => self.take_digits(16, 4),
            '0'..='7' => {
                let mut value = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek(0).and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                char::from_u32(value)
            }
            other => Some(other),
        };
        decoded.map(String::from).unwrap_or_default()
    }

    /// Up to `most` digits of `radix`, as the character they number.
    fn take_digits(&mut self, radix: u32, most: usize) -> Option<char> {
        let mut digits = String::new();
        while digits.len() < most {
            match self.peek(0).filter(|c| c.is_digit(radix)) {
                Some(d) => {
                    digits.push(d);
                    self.bump();
                }
                None => break,
            }
        }
        u32::from_str_radix(&digits, radix).ok().and_then(char::from_u32)
    }

    fn regexp_flags(&mut self) -> String {
        let mut flags = String::new();
        while let Some(c) = self.peek(0).filter(|c| matches!(c, 'i' | 'm' | 'x' | 'o' | 'u' | 'n'))
        {
            flags.push(c);
            self.bump();
        }
        flags
    }

    /// A `/` starts a regexp where a value is expected: at the start, after an operator or
    /// a keyword, or after a method name with a space before and none after (`when /a/`).
    fn regexp_may_start(&self, spaced: bool) -> bool {
        match self.tokens.last().map(|t| &t.kind) {
            None | Some(Kind::Newline | Kind::Label(_)) => true,
            Some(Kind::Punct(p)) => !matches!(*p, ")" | "]" | "}"),
            Some(Kind::Ident(name)) => {
                is_keyword(name) || spaced && self.peek(1).is_some_and(|c| c != ' ' && c != '=')
            }
            _ => false,
        }
    }

    fn percent_literal_follows(&self, spaced: bool) -> bool {
        let value_expected = match self.tokens.last().map(|t| &t.kind) {
            None | Some(Kind::Newline | Kind::Label(_)) => true,
            Some(Kind::Punct(p)) => !matches!(*p, ")" | "]" | "}"),
            Some(Kind::Ident(_)) => spaced,
            _ => false,
        };
        value_expected
            && matches!(self.peek(1), Some('w' | 'W' | 'r' | 'q' | 'Q' | 'i' | '[' | '(' | '{'))
    }

    fn percent_literal(&mut self) -> Result<Kind, MigrateError> {
        self.bump();
        let mut kind = self.peek(0).unwrap_or('Q');
        if kind.is_alphabetic() {
            self.bump();
        } else {
            kind = 'Q';
        }
        let open = self.bump().ok_or_else(|| self.not_ruby("% literal without a delimiter"))?;
        let close = match open {
            '[' => ']',
            '(' => ')',
            '{' => '}',
            '<' => '>',
            c if c.is_alphanumeric() || c.is_whitespace() => {
                return Err(self.not_ruby(&format!("% literal delimited by {c:?}")))
            }
            c => c,
        };
        let (text, interpolated) = self.quoted(open, close, matches!(kind, 'Q' | 'W'))?;
        match kind {
            'w' | 'W' | 'i' => {
                Ok(Kind::Words(text.split_whitespace().map(str::to_string).collect()))
            }
            'r' => Ok(Kind::Regexp { source: text, flags: self.regexp_flags() }),
            'q' | 'Q' => Ok(Kind::Str { text, interpolated }),
            other => Err(self.not_ruby(&format!("%{other} literal"))),
        }
    }

    fn punctuation(&mut self) -> Result<Kind, MigrateError> {
        let rest: String = self.chars[self.at..].iter().take(3).collect();
        let Some(punct) = PUNCTUATION.iter().find(|p| rest.starts_with(**p)) else {
            let c = self.peek(0).unwrap_or(' ');
            return Err(self.not_ruby(&format!("unexpected character {c:?}")));
        };
        for _ in 0..punct.len() {
            self.bump();
        }
        Ok(Kind::Punct(punct))
    }
}

/// Ruby's keywords that may come before an expression.
pub fn is_keyword(name: &str) -> bool {
    matches!(
        name,
        "if" | "unless"
            | "when"
            | "and"
            | "or"
            | "not"
            | "return"
            | "then"
            | "else"
            | "elsif"
            | "while"
            | "until"
            | "case"
            | "do"
            | "in"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        tokenize(&Rc::from("t.conf"), text).unwrap().into_iter().map(|t| t.kind).collect()
    }

    fn string(text: &str) -> Kind {
        Kind::Str { text: text.into(), interpolated: false }
    }

    #[test]
    fn reads_the_literals_of_the_manual() {
        assert_eq!(kinds("0660"), [Kind::Int(0o660)]);
        assert_eq!(
            kinds("0o600 0x1F 1_000 297.0 1e3"),
            [
                Kind::Int(0o600),
                Kind::Int(31),
                Kind::Int(1000),
                Kind::Float(297.0),
                Kind::Float(1000.0)
            ]
        );
        assert_eq!(kinds(r#""a\tb\"c\\" 'it\'s \n'"#), [string("a\tb\"c\\"), string("it's \\n")]);
        assert_eq!(kinds(r#""\x41\101\u00e9""#), [string("AAé")]);
        assert_eq!(kinds("%w[a b  c]"), [Kind::Words(vec!["a".into(), "b".into(), "c".into()])]);
        assert_eq!(
            kinds(r"x(/\.jp\z/i)")[2],
            Kind::Regexp { source: r"\.jp\z".into(), flags: "i".into() }
        );
        assert_eq!(kinds(":accept"), [Kind::Symbol("accept".into())]);
        assert_eq!(kinds("milters: 1")[0], Kind::Label("milters".into()));
        assert_eq!(kinds("\"#{x}\""), [Kind::Str { text: "#{x}".into(), interpolated: true }]);
    }

    #[test]
    fn drops_comments_and_escaped_line_ends_and_keeps_lines() {
        let tokens =
            tokenize(&Rc::from("t"), "a = 1 # one\nb \\\n = 2\n=begin\nx\n=end\nc").unwrap();
        let lines: Vec<(Kind, u32)> = tokens.into_iter().map(|t| (t.kind, t.line)).collect();
        assert_eq!(lines[0], (Kind::Ident("a".into()), 1));
        assert_eq!(lines[4], (Kind::Ident("b".into()), 2));
        assert_eq!(lines[5], (Kind::Punct("="), 3));
        assert_eq!(lines.last().unwrap(), &(Kind::Ident("c".into()), 7));
    }

    #[test]
    fn tells_division_from_a_regexp_and_names_predicates() {
        assert_eq!(kinds("a / b")[1], Kind::Punct("/"));
        assert_eq!(kinds("context.reject?")[2], Kind::Ident("reject?".into()));
        assert_eq!(kinds("a != b")[1], Kind::Punct("!="));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let error = tokenize(&Rc::from("x.conf"), "a = 1\nb = \"open").unwrap_err();
        assert_eq!(error.to_string(), "x.conf:2: unterminated string");
        let error = tokenize(&Rc::from("x.conf"), "\n\n$x = 1").unwrap_err();
        assert!(error.to_string().starts_with("x.conf:3: not Ruby"), "{error}");
    }
}
