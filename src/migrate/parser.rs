//! Statements of the Ruby subset the original's configuration files use: assignments,
//! method calls with and without parentheses, blocks, `if`/`unless` and the operators of
//! simple conditions. A block's end is found by counting openers first, so a stopper body
//! the parser does not know (`case ... when`) is kept as text instead of failing the file.

use std::rc::Rc;

use super::ast::{Block, Call, Expr, Stmt};
use super::error::{Location, MigrateError};
use super::lexer::{is_keyword, tokenize, Kind, Token};

/// Parses the file `file` holding `text`.
pub fn parse(file: &str, text: &str) -> Result<Vec<Stmt>, MigrateError> {
    let file: Rc<str> = Rc::from(file);
    let tokens = tokenize(&file, text)?;
    let lines: Vec<&str> = text.lines().collect();
    let mut parser = Parser { file: &file, lines: &lines, tokens: &tokens, at: 0, depth: 0 };
    let statements = parser.statements(&[])?;
    match parser.peek() {
        None => Ok(statements),
        Some(_) => Err(parser.unexpected("a statement")),
    }
}

struct Parser<'a> {
    file: &'a Rc<str>,
    lines: &'a [&'a str],
    tokens: &'a [Token],
    at: usize,
    /// How deeply expressions nest here: a limit keeps garbage from overflowing the stack.
    depth: usize,
}

/// Deeper than any configuration file nests.
const MAX_DEPTH: usize = 100;

type Parsed<T> = Result<T, MigrateError>;

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Kind> {
        self.tokens.get(self.at).map(|t| &t.kind)
    }

    fn token(&self) -> Option<&'a Token> {
        self.tokens.get(self.at)
    }

    fn location(&self) -> Location {
        let line = self.tokens.get(self.at).or(self.tokens.last()).map_or(1, |t| t.line);
        Location { file: Rc::clone(self.file), line }
    }

    fn unexpected(&self, wanted: &str) -> MigrateError {
        let found = match self.peek() {
            None => "the end of the file".to_string(),
            Some(kind) => describe(kind),
        };
        MigrateError::NotRuby {
            at: self.location(),
            what: format!("expected {wanted}, found {found}"),
        }
    }

    fn is_punct(&self, punct: &str) -> bool {
        matches!(self.peek(), Some(Kind::Punct(p)) if *p == punct)
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Kind::Ident(name)) if name == word)
    }

    fn eat_punct(&mut self, punct: &str) -> bool {
        let found = self.is_punct(punct);
        if found {
            self.at += 1;
        }
        found
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.is_word(word);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect_punct(&mut self, punct: &str) -> Parsed<()> {
        if self.eat_punct(punct) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("{punct:?}")))
        }
    }

    fn skip_newlines(&mut self) {
        while matches!(self.peek(), Some(Kind::Newline | Kind::Punct(";"))) {
            self.at += 1;
        }
    }

    /// Statements up to one of the words `until` (not consumed) or the end.
    fn statements(&mut self, until: &[&str]) -> Parsed<Vec<Stmt>> {
        let mut statements = Vec::new();
        loop {
            self.skip_newlines();
            match self.peek() {
                None => return Ok(statements),
                Some(Kind::Ident(word)) if until.contains(&word.as_str()) => return Ok(statements),
                _ => {}
            }
            statements.push(self.statement()?);
            match self.peek() {
                None | Some(Kind::Newline | Kind::Punct(";")) => {}
                Some(Kind::Ident(word)) if until.contains(&word.as_str()) => {}
                Some(_) => return Err(self.unexpected("the end of the statement")),
            }
        }
    }

    fn statement(&mut self) -> Parsed<Stmt> {
        let at = self.location();
        let target = self.expression()?;
        let mut statement = if let Some(Kind::Punct(op @ ("=" | "+=" | "-=" | "||="))) = self.peek()
        {
            self.at += 1;
            self.skip_newlines();
            if !matches!(target, Expr::Call(_) | Expr::Index(..)) {
                return Err(MigrateError::NotRuby {
                    at,
                    what: "assignment to something that is not a name".into(),
                });
            }
            let value = self.expression()?;
            let value = match *op {
                "+=" => Expr::Binary("+", Box::new(target.clone()), Box::new(value)),
                "-=" => Expr::Binary("-", Box::new(target.clone()), Box::new(value)),
                "||=" => Expr::Binary("||", Box::new(target.clone()), Box::new(value)),
                _ => value,
            };
            Stmt::Assign { target, value, at: at.clone() }
        } else {
            Stmt::Expr { expr: target, at: at.clone() }
        };
        // `statement if condition`.
        while let Some(Kind::Ident(word)) = self.peek() {
            let negate = match word.as_str() {
                "if" => false,
                "unless" => true,
                _ => break,
            };
            self.at += 1;
            let condition = self.expression()?;
            let condition = if negate { Expr::Unary("!", Box::new(condition)) } else { condition };
            let expr = Expr::If {
                condition: Box::new(condition),
                then: vec![statement],
                otherwise: vec![],
            };
            statement = Stmt::Expr { expr, at: at.clone() };
        }
        Ok(statement)
    }

    fn expression(&mut self) -> Parsed<Expr> {
        self.nested(Self::expression_inner)
    }

    fn expression_inner(&mut self) -> Parsed<Expr> {
        let mut left = self.not_expression()?;
        loop {
            let op = if self.eat_word("and") {
                "&&"
            } else if self.eat_word("or") {
                "||"
            } else {
                return Ok(left);
            };
            self.skip_newlines();
            let right = self.not_expression()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn not_expression(&mut self) -> Parsed<Expr> {
        if self.eat_word("not") {
            return Ok(Expr::Unary("!", Box::new(self.not_expression()?)));
        }
        self.binary(0)
    }

    /// Binary operators by precedence level, loosest first.
    fn binary(&mut self, level: usize) -> Parsed<Expr> {
        const LEVELS: [&[&str]; 6] = [
            &["||"],
            &["&&"],
            &["==", "!=", "=~", "!~", "==="],
            &["<", ">", "<=", ">=", ".."],
            &["+", "-"],
            &["*", "/", "%"],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        while let Some(Kind::Punct(op)) = self.peek() {
            if !LEVELS[level].contains(op) {
                break;
            }
            self.at += 1;
            self.skip_newlines();
            let right = self.binary(level + 1)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Parsed<Expr> {
        if matches!(self.peek(), Some(Kind::Punct("!" | "-"))) {
            // `!!!x` nests without passing through `expression`.
            return self.nested(|parser| parser.unary_inner());
        }
        self.unary_inner()
    }

    fn nested(&mut self, parse: impl FnOnce(&mut Self) -> Parsed<Expr>) -> Parsed<Expr> {
        if self.depth >= MAX_DEPTH {
            return Err(MigrateError::NotRuby {
                at: self.location(),
                what: format!("nested more than {MAX_DEPTH} deep"),
            });
        }
        self.depth += 1;
        let result = parse(self);
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self) -> Parsed<Expr> {
        if self.eat_punct("!") {
            return Ok(Expr::Unary("!", Box::new(self.unary()?)));
        }
        if self.eat_punct("-") {
            return Ok(match self.unary()? {
                Expr::Int(n) => Expr::Int(-n),
                Expr::Float(n) => Expr::Float(-n),
                other => Expr::Unary("-", Box::new(other)),
            });
        }
        let primary = self.primary()?;
        self.postfix(primary)
    }

    fn postfix(&mut self, mut expr: Expr) -> Parsed<Expr> {
        loop {
            if self.eat_punct(".") {
                self.skip_newlines();
                let at = self.location();
                let name = match self.peek() {
                    Some(Kind::Ident(name) | Kind::Constant(name)) => name.clone(),
                    _ => return Err(self.unexpected("a method name")),
                };
                self.at += 1;
                expr = Expr::Call(Box::new(self.call_rest(Some(Box::new(expr)), name, at)?));
            } else if self.token().is_some_and(|t| t.kind == Kind::Punct("[") && !t.spaced) {
                self.at += 1;
                let args = self.list("]")?;
                expr = Expr::Index(Box::new(expr), args);
            } else if self.eat_punct("::") {
                let Some(Kind::Constant(name)) = self.peek() else {
                    return Err(self.unexpected("a constant"));
                };
                self.at += 1;
                expr = match expr {
                    Expr::Constant(outer) => Expr::Constant(format!("{outer}::{name}")),
                    _ => return Err(self.unexpected("a constant before ::")),
                };
            } else {
                return Ok(expr);
            }
        }
    }

    fn primary(&mut self) -> Parsed<Expr> {
        let at = self.location();
        let Some(kind) = self.peek() else {
            return Err(self.unexpected("a value"));
        };
        self.at += 1;
        Ok(match kind {
            Kind::Str { text, interpolated: false } => Expr::Str(text.clone()),
            Kind::Str { text, interpolated: true } => Expr::Interpolated(text.clone()),
            Kind::Int(n) => Expr::Int(*n),
            Kind::Float(n) => Expr::Float(*n),
            Kind::Regexp { source, flags } => {
                Expr::Regexp { source: source.clone(), flags: flags.clone() }
            }
            Kind::Symbol(name) => Expr::Symbol(name.clone()),
            Kind::Words(words) => Expr::Array(words.iter().cloned().map(Expr::Str).collect()),
            Kind::Constant(name) => Expr::Constant(name.clone()),
            Kind::Punct("(") => {
                self.skip_newlines();
                let inner = self.expression()?;
                self.skip_newlines();
                self.expect_punct(")")?;
                inner
            }
            Kind::Punct("[") => Expr::Array(self.list("]")?),
            Kind::Ident(word) => match word.as_str() {
                "true" => Expr::Bool(true),
                "false" => Expr::Bool(false),
                "nil" => Expr::Nil,
                "if" | "unless" => self.if_rest(word == "unless")?,
                "case" => self.case_rest()?,
                _ if is_keyword(word) || word == "end" => {
                    self.at -= 1;
                    return Err(self.unexpected("a value"));
                }
                _ => Expr::Call(Box::new(self.call_rest(None, word.clone(), at)?)),
            },
            _ => {
                self.at -= 1;
                return Err(self.unexpected("a value"));
            }
        })
    }

    /// After `if`/`unless`: the condition, the branches and `end`.
    fn if_rest(&mut self, negate: bool) -> Parsed<Expr> {
        let opened = self.location();
        let condition = self.expression()?;
        let condition = if negate { Expr::Unary("!", Box::new(condition)) } else { condition };
        self.eat_word("then");
        let then = self.statements(&["elsif", "else", "end"])?;
        let otherwise = if self.eat_word("elsif") {
            let at = self.location();
            let nested = self.if_rest(false)?;
            return Ok(Expr::If {
                condition: Box::new(condition),
                then,
                otherwise: vec![Stmt::Expr { expr: nested, at }],
            });
        } else if self.eat_word("else") {
            self.statements(&["end"])?
        } else {
            Vec::new()
        };
        if !self.eat_word("end") {
            return Err(MigrateError::Unterminated { at: opened, what: "if (no end)" });
        }
        Ok(Expr::If { condition: Box::new(condition), then, otherwise })
    }

    /// After `case`: the subject, the `when` arms, `else` and `end`.
    fn case_rest(&mut self) -> Parsed<Expr> {
        let opened = self.location();
        let subject = self.expression()?;
        self.skip_newlines();
        let mut arms = Vec::new();
        while self.eat_word("when") {
            let mut values = Vec::new();
            loop {
                values.push(self.expression()?);
                if !self.eat_punct(",") {
                    break;
                }
                self.skip_newlines();
            }
            self.eat_word("then");
            arms.push((values, self.statements(&["when", "else", "end"])?));
        }
        let otherwise = if self.eat_word("else") { self.statements(&["end"])? } else { Vec::new() };
        if !self.eat_word("end") {
            return Err(MigrateError::Unterminated { at: opened, what: "case (no end)" });
        }
        Ok(Expr::Case { subject: Box::new(subject), arms, otherwise })
    }

    /// A call's arguments (in parentheses, or after a space as in `load_default`,
    /// `remove_milter "a"`) and block.
    fn call_rest(
        &mut self,
        receiver: Option<Box<Expr>>,
        name: String,
        at: Location,
    ) -> Parsed<Call> {
        let mut args = Vec::new();
        if self.token().is_some_and(|t| t.kind == Kind::Punct("(") && !t.spaced) {
            self.at += 1;
            args = self.list(")")?;
        } else if self.command_argument_follows() {
            loop {
                args.push(self.argument()?);
                if !self.eat_punct(",") {
                    break;
                }
                self.skip_newlines();
            }
        }
        let block = self.block()?;
        Ok(Call { receiver, name, args, block, at })
    }

    fn command_argument_follows(&self) -> bool {
        let Some(token) = self.token() else { return false };
        token.spaced
            && match &token.kind {
                Kind::Str { .. }
                | Kind::Int(_)
                | Kind::Float(_)
                | Kind::Regexp { .. }
                | Kind::Symbol(_)
                | Kind::Words(_)
                | Kind::Label(_)
                | Kind::Constant(_) => true,
                Kind::Ident(word) => !is_keyword(word) && word != "end",
                Kind::Punct("[") => true,
                _ => false,
            }
    }

    fn argument(&mut self) -> Parsed<Expr> {
        self.nested(Self::argument_inner)
    }

    fn argument_inner(&mut self) -> Parsed<Expr> {
        if let Some(Kind::Label(name)) = self.peek() {
            self.at += 1;
            self.skip_newlines();
            return Ok(Expr::Pair(name.clone(), Box::new(self.expression()?)));
        }
        self.not_expression()
    }

    /// Comma-separated arguments up to `close`; line ends inside are ignored.
    fn list(&mut self, close: &str) -> Parsed<Vec<Expr>> {
        let mut items = Vec::new();
        loop {
            self.skip_newlines();
            if self.eat_punct(close) {
                return Ok(items);
            }
            items.push(self.argument()?);
            self.skip_newlines();
            if !self.eat_punct(",") {
                self.skip_newlines();
                if self.eat_punct(close) {
                    return Ok(items);
                }
                return Err(self.unexpected(&format!("\",\" or {close:?}")));
            }
        }
    }

    /// `do |params| ... end` or `{ |params| ... }`, if one follows.
    fn block(&mut self) -> Parsed<Option<Block>> {
        let brace = self.is_punct("{");
        if !brace && !self.is_word("do") {
            return Ok(None);
        }
        let at = self.location();
        let opener = self.at;
        let closer = self.matching_end(opener)?;
        self.at += 1;
        let mut params = Vec::new();
        if self.eat_punct("|") {
            loop {
                self.eat_punct("*");
                match self.peek() {
                    Some(Kind::Ident(name)) => params.push(name.clone()),
                    _ => return Err(self.unexpected("a block parameter")),
                }
                self.at += 1;
                if self.eat_punct("|") {
                    break;
                }
                self.expect_punct(",")?;
            }
        }
        let body_tokens = &self.tokens[self.at..closer];
        let mut inner = Parser {
            file: self.file,
            lines: self.lines,
            tokens: body_tokens,
            at: 0,
            depth: self.depth + 1,
        };
        let body = inner.statements(&[]).and_then(|statements| match inner.peek() {
            None => Ok(statements),
            Some(_) => Err(inner.unexpected("a statement")),
        });
        let first = at.line as usize;
        let last = self.tokens[closer].line as usize;
        let source = if last > first {
            self.lines.get(first..last - 1).unwrap_or_default().join("\n")
        } else {
            String::new()
        };
        self.at = closer + 1;
        Ok(Some(Block { params, body, source, at }))
    }

    /// The index of the `end` or `}` closing the block opened at `opener`.
    fn matching_end(&self, opener: usize) -> Parsed<usize> {
        let mut depth = 0usize;
        for index in opener..self.tokens.len() {
            let previous = index.checked_sub(1).map(|i| &self.tokens[i].kind);
            match &self.tokens[index].kind {
                Kind::Punct("{") => depth += 1,
                Kind::Ident(word) if word == "do" => depth += 1,
                Kind::Ident(word)
                    if matches!(word.as_str(), "case" | "begin" | "def" | "class" | "module") =>
                {
                    depth += 1;
                }
                Kind::Ident(word)
                    if matches!(word.as_str(), "if" | "unless" | "while" | "until")
                        && starts_expression(previous) =>
                {
                    depth += 1;
                }
                Kind::Punct("}") => depth = depth.saturating_sub(1),
                Kind::Ident(word) if word == "end" => depth = depth.saturating_sub(1),
                _ => continue,
            }
            if depth == 0 {
                return Ok(index);
            }
        }
        let at = Location { file: Rc::clone(self.file), line: self.tokens[opener].line };
        let what = if self.tokens[opener].kind == Kind::Punct("{") {
            "block: no } for this {"
        } else {
            "block: no end for this do"
        };
        Err(MigrateError::Unterminated { at, what })
    }
}

/// Whether a keyword after `previous` opens a statement (`if x` rather than `a if x`).
fn starts_expression(previous: Option<&Kind>) -> bool {
    match previous {
        None | Some(Kind::Newline | Kind::Label(_)) => true,
        Some(Kind::Punct(p)) => !matches!(*p, ")" | "]" | "}"),
        Some(Kind::Ident(word)) => is_keyword(word),
        _ => false,
    }
}

fn describe(kind: &Kind) -> String {
    match kind {
        Kind::Ident(name) | Kind::Constant(name) => format!("{name:?}"),
        Kind::Str { .. } => "a string".into(),
        Kind::Int(_) | Kind::Float(_) => "a number".into(),
        Kind::Regexp { .. } => "a regexp".into(),
        Kind::Symbol(name) => format!(":{name}"),
        Kind::Words(_) => "a %w list".into(),
        Kind::Label(name) => format!("{name}:"),
        Kind::Punct(p) => format!("{p:?}"),
        Kind::Newline => "the end of the line".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Stmt {
        let mut statements = parse("t.conf", text).unwrap();
        assert_eq!(statements.len(), 1, "{statements:?}");
        statements.remove(0)
    }

    #[test]
    fn reads_assignments_and_calls_with_and_without_parentheses() {
        let Stmt::Assign { target: Expr::Call(target), value, at } =
            one("\nmanager.unix_socket_mode = 0660")
        else {
            panic!("not an assignment")
        };
        assert_eq!(target.dotted_name().as_deref(), Some("manager.unix_socket_mode"));
        assert_eq!(value, Expr::Int(0o660));
        assert_eq!(at.to_string(), "t.conf:2");
        for text in ["load_if_exist(\"a.conf\")", "load_if_exist \"a.conf\""] {
            let Stmt::Expr { expr: Expr::Call(call), .. } = one(text) else { panic!() };
            assert_eq!(
                (call.name.as_str(), call.args),
                ("load_if_exist", vec![Expr::Str("a.conf".into())])
            );
        }
        let Stmt::Expr { expr: Expr::Call(call), .. } = one("load_default") else { panic!() };
        assert!(call.args.is_empty());
    }

    #[test]
    fn reads_blocks_with_their_statements_and_lines() {
        let text = "define_milter(\"greylist\") do |milter|\n  milter.connection_spec = \
                    \"inet:10026\"\n  milter.applicable_conditions = [\"S25R\",\n \"Remote Network\"]\nend\n";
        let Stmt::Expr { expr: Expr::Call(call), .. } = one(text) else { panic!() };
        let block = call.block.unwrap();
        assert_eq!(block.params, ["milter"]);
        let body = block.body.unwrap();
        assert_eq!(body.len(), 2);
        assert_eq!(body[1].location().line, 3);
        assert!(block.source.contains("milter.connection_spec"));
    }

    #[test]
    fn reads_blocks_after_arguments_without_parentheses_and_in_braces() {
        for text in [
            "define_milter \"a\" do |milter|\n  milter.enabled = false\nend",
            "define_milter(\"a\") { |milter| milter.enabled = false }",
        ] {
            let Stmt::Expr { expr: Expr::Call(call), .. } = one(text) else { panic!("{text}") };
            assert_eq!(call.args, [Expr::Str("a".into())], "{text}");
            let block = call.block.unwrap();
            assert_eq!(
                (block.params.as_slice(), block.body.unwrap().len()),
                (&["milter".to_string()][..], 1),
                "{text}"
            );
        }
    }

    #[test]
    fn keeps_a_stopper_body_it_cannot_read_as_text() {
        let text = "define_applicable_condition(\"X\") do |c|\n  c.define_connect_stopper do |ctx, host|\n    begin\n    when /a/\n      true\n    end\n  end\nend\n";
        let Stmt::Expr { expr: Expr::Call(outer), .. } = one(text) else { panic!() };
        let body = outer.block.unwrap().body.unwrap();
        let Stmt::Expr { expr: Expr::Call(stopper), .. } = &body[0] else { panic!() };
        let block = stopper.block.as_ref().unwrap();
        assert!(block.body.is_err());
        assert!(block.source.contains("when /a/"));
    }

    #[test]
    fn reads_if_and_modifiers() {
        let Stmt::Expr { expr: Expr::If { then, otherwise, .. }, .. } =
            one("if /\\A\\[.+\\]\\z/ =~ host\n  false\nelse\n  true\nend")
        else {
            panic!()
        };
        assert_eq!((then.len(), otherwise.len()), (1, 1));
        assert!(matches!(one("x = 1 if y"), Stmt::Expr { expr: Expr::If { .. }, .. }));
    }

    #[test]
    fn errors_are_one_line_with_file_and_line() {
        let error = parse("m.conf", "define_milter(\"a\") do |milter|\n  milter.enabled = true\n")
            .unwrap_err();
        assert_eq!(error.to_string(), "m.conf:1: unterminated block: no end for this do");
        let error = parse("m.conf", "a = = 1").unwrap_err();
        assert!(error.to_string().starts_with("m.conf:1: not Ruby"), "{error}");
        let error = parse("m.conf", "<html>\n<body>").unwrap_err();
        assert!(error.to_string().starts_with("m.conf:1: not Ruby"), "{error}");
    }

    #[test]
    fn garbage_never_panics() {
        let samples = [
            "\u{0}\u{1}}}}{{{((",
            "do do do",
            "end end",
            "a.",
            "[1,",
            "%w",
            "%w[",
            "\"\\",
            "/",
            "0x",
            "1e",
            "if",
            "x ? y : z",
            "'",
            ":",
            "::",
            "a::",
            "-",
            "!",
            "|a|",
            "{|",
            "=begin",
            "f(a:",
            "a[",
            "%r{",
            "\\",
            "0o9",
            "99999999999999999999999",
        ];
        for sample in samples {
            let _ = parse("g", sample);
        }
        let mut seed = 7u64;
        let alphabet: Vec<char> = "ab d=.()[]{}|\"'/%w:,\n#\\0123?!-endoif".chars().collect();
        for deep in [
            "(".repeat(100_000),
            "!".repeat(100_000),
            "a do\n".repeat(20_000),
            "[".repeat(100_000),
            "x.y ".repeat(50_000),
        ] {
            let error = parse("g", &deep).unwrap_err().to_string();
            assert!(error.starts_with("g:"), "{error}");
        }
        for _ in 0..3000 {
            let text: String = (0..(seed % 40))
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    alphabet[(seed >> 33) as usize % alphabet.len()]
                })
                .collect();
            let _ = parse("g", &text);
        }
    }
}
