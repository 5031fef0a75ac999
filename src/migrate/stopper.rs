//! A stopper's Ruby body in Rhai, for the simple forms the manual shows: true/false,
//! comparing a macro, the host or an address with a string or a regexp, another child's
//! `reject?`, `if`/`unless`, setting a macro. Anything else is refused with the reason, and
//! the caller keeps the Ruby beside a stopper that applies the milter.

use std::collections::HashSet;

use super::ast::{Call, Expr, Stmt};
use super::regexp::rust_pattern;
use crate::text::quote;

/// The body `statements` as Rhai statements (the last one the stopper's value), one per
/// line, indented by `indent`.
pub fn translate(statements: &[Stmt], params: &[String], indent: &str) -> Result<String, String> {
    let mut translator = Translator { locals: params.iter().cloned().collect() };
    let lines = translator.statements(statements, true)?;
    Ok(lines.iter().map(|line| format!("{indent}{line}\n")).collect())
}

struct Translator {
    /// The block's parameters and the names it assigned.
    locals: HashSet<String>,
}

type Translated = Result<String, String>;

impl Translator {
    /// Rhai lines; with `value`, the last statement is the block's value and must be true
    /// or false.
    fn statements(&mut self, statements: &[Stmt], value: bool) -> Result<Vec<String>, String> {
        let Some((last, rest)) = statements.split_last() else {
            // Ruby's empty body is nil: go on applying.
            return Ok(if value { vec!["false".into()] } else { Vec::new() });
        };
        let mut lines = Vec::new();
        for statement in rest {
            lines.push(self.statement(statement)?);
        }
        if !value {
            lines.push(self.statement(last)?);
            return Ok(lines);
        }
        match last {
            Stmt::Expr { expr, .. } if is_boolean(expr) => lines.push(self.expr(expr, true)?),
            Stmt::Expr { .. } => return Err("its value is not plainly true or false".into()),
            Stmt::Assign { .. } => return Err("it ends with an assignment".into()),
        }
        Ok(lines)
    }

    fn statement(&mut self, statement: &Stmt) -> Translated {
        match statement {
            Stmt::Assign { target: Expr::Call(call), value, .. }
                if call.receiver.is_none() && call.args.is_empty() && call.block.is_none() =>
            {
                let value = self.expr(value, false)?;
                if self.locals.insert(call.name.clone()) {
                    Ok(format!("let {} = {value};", rhai_name(&call.name)?))
                } else {
                    Ok(format!("{} = {value};", rhai_name(&call.name)?))
                }
            }
            Stmt::Assign { target: target @ Expr::Index(..), value, .. } => {
                Ok(format!("{} = {};", self.expr(target, false)?, self.expr(value, false)?))
            }
            Stmt::Assign { .. } => {
                Err("it assigns to something other than a macro or a name".into())
            }
            Stmt::Expr { expr, .. } => Ok(format!("{};", self.expr(expr, false)?)),
        }
    }

    /// With `value`, an `if` must give true or false on every branch.
    fn expr(&mut self, expr: &Expr, value: bool) -> Translated {
        Ok(match expr {
            Expr::Bool(flag) => flag.to_string(),
            Expr::Nil => "()".into(),
            Expr::Int(n) => n.to_string(),
            Expr::Float(n) => format!("{n:?}"),
            Expr::Str(text) => quote(text),
            Expr::Array(items) => {
                let items: Result<Vec<String>, String> =
                    items.iter().map(|item| self.expr(item, false)).collect();
                format!("[{}]", items?.join(", "))
            }
            Expr::Call(call) => self.call(call)?,
            Expr::Index(receiver, args) => match args.as_slice() {
                [key] => format!("{}[{}]", self.expr(receiver, false)?, self.expr(key, false)?),
                _ => return Err("an index with more than one key".into()),
            },
            Expr::Unary("!", inner) => format!("!{}", self.operand(inner)?),
            Expr::Unary(_, inner) => format!("-{}", self.operand(inner)?),
            Expr::Binary(op @ ("=~" | "!~" | "==="), left, right) => {
                let negate = if *op == "!~" { "!" } else { "" };
                let (regexp, text) = match (left.as_ref(), right.as_ref()) {
                    (Expr::Regexp { source, flags }, other)
                    | (other, Expr::Regexp { source, flags })
                        if *op != "===" || matches!(left.as_ref(), Expr::Regexp { .. }) =>
                    {
                        (rust_pattern(source, flags)?, other)
                    }
                    _ => return Err(format!("{op} without a regexp literal")),
                };
                format!("{negate}{}.regex_match({})", self.operand(text)?, quote(&regexp))
            }
            Expr::Binary(
                op @ ("==" | "!=" | "&&" | "||" | "<" | ">" | "<=" | ">=" | "+" | "-"),
                left,
                right,
            ) => {
                format!("{} {op} {}", self.operand(left)?, self.operand(right)?)
            }
            Expr::If { condition, then, otherwise } => {
                let condition = self.expr(condition, false)?;
                let then = self.statements(then, value)?;
                let otherwise = self.statements(otherwise, value)?;
                let mut text = format!("if {condition} {{ {} }}", then.join(" "));
                if !otherwise.is_empty() {
                    text.push_str(&format!(" else {{ {} }}", otherwise.join(" ")));
                }
                text
            }
            Expr::Case { subject, arms, otherwise } => {
                let mut text = String::new();
                for (index, (values, body)) in arms.iter().enumerate() {
                    let tests: Result<Vec<String>, String> =
                        values.iter().map(|v| self.case_test(subject, v)).collect();
                    let body = self.statements(body, value)?;
                    let keyword = if index == 0 { "if" } else { " else if" };
                    text.push_str(&format!(
                        "{keyword} {} {{ {} }}",
                        tests?.join(" || "),
                        body.join(" ")
                    ));
                }
                let otherwise = self.statements(otherwise, value)?;
                if !otherwise.is_empty() {
                    text.push_str(&format!(" else {{ {} }}", otherwise.join(" ")));
                }
                text
            }
            Expr::Regexp { .. } => return Err("a regexp on its own".into()),
            Expr::Interpolated(_) => return Err("a string with #{...}".into()),
            Expr::Binary(op, ..) => return Err(format!("the operator {op}")),
            Expr::Constant(name) => return Err(format!("Ruby's {name}")),
            Expr::Symbol(_) | Expr::Pair(..) => {
                return Err(format!("Ruby's {}", super::items::describe(expr)))
            }
        })
    }

    /// `value === subject` of a `when`: a regexp's match, else equality.
    fn case_test(&mut self, subject: &Expr, value: &Expr) -> Translated {
        let test = match value {
            Expr::Regexp { .. } => {
                Expr::Binary("=~", Box::new(subject.clone()), Box::new(value.clone()))
            }
            Expr::Str(_) | Expr::Int(_) | Expr::Nil | Expr::Bool(_) => {
                Expr::Binary("==", Box::new(subject.clone()), Box::new(value.clone()))
            }
            _ => return Err("a when of something other than a string or a regexp".into()),
        };
        self.expr(&test, false)
    }

    /// An operand of an operator, in parentheses unless it is simple.
    fn operand(&mut self, expr: &Expr) -> Translated {
        let text = self.expr(expr, false)?;
        Ok(match expr {
            Expr::Binary(..) | Expr::Unary(..) | Expr::If { .. } | Expr::Case { .. } => {
                format!("({text})")
            }
            _ => text,
        })
    }

    fn call(&mut self, call: &Call) -> Translated {
        if call.block.is_some() {
            return Err(format!("a call of {} with a block", call.name));
        }
        let Some(receiver) = call.receiver.as_deref() else {
            if call.args.is_empty() && self.locals.contains(&call.name) {
                return rhai_name(&call.name);
            }
            return Err(format!("a call of {}", call.name));
        };
        let receiver = self.operand(receiver)?;
        let args: Result<Vec<String>, String> =
            call.args.iter().map(|arg| self.expr(arg, false)).collect();
        let args = args?;
        let property = |name: &str| -> Translated {
            if args.is_empty() {
                Ok(format!("{receiver}.{name}"))
            } else {
                Err(format!("{} with arguments", call.name))
            }
        };
        match call.name.as_str() {
            // The context's, then the socket address's.
            "name" | "children" | "address" | "port" | "path" | "to_s" => property(&call.name),
            "local?" => property("local"),
            "reject?" | "accept?" | "temporary_failure?" | "discard?" | "quitted?" | "postfix?"
            | "authenticated?" => property(call.name.trim_end_matches('?')),
            "downcase" => property("to_lower()"),
            "upcase" => property("to_upper()"),
            "nil?" if args.is_empty() => Ok(format!("({receiver} == ())")),
            "include?" | "start_with?" | "end_with?" if args.len() == 1 => {
                let method = match call.name.as_str() {
                    "include?" => "contains",
                    "start_with?" => "starts_with",
                    _ => "ends_with",
                };
                Ok(format!("{receiver}.{method}({})", args[0]))
            }
            other => Err(format!("the method {other}")),
        }
    }
}

/// Whether Ruby's value of `expr` is plainly true or false (so Rhai's is a bool too).
fn is_boolean(expr: &Expr) -> bool {
    match expr {
        Expr::Bool(_) => true,
        Expr::Unary("!", _) => true,
        Expr::Binary(op, left, right) => match *op {
            "&&" | "||" => is_boolean(left) && is_boolean(right),
            "==" | "!=" | "=~" | "!~" | "===" | "<" | ">" | "<=" | ">=" => true,
            _ => false,
        },
        Expr::If { then, otherwise, .. } => last_is_boolean(then) && last_is_boolean(otherwise),
        Expr::Case { arms, otherwise, .. } => {
            arms.iter().all(|(_, body)| last_is_boolean(body)) && last_is_boolean(otherwise)
        }
        Expr::Call(call) => call.name.ends_with('?'),
        _ => false,
    }
}

/// Whether a branch ends in true or false (an empty one is nil: false).
fn last_is_boolean(statements: &[Stmt]) -> bool {
    match statements.last() {
        None => true,
        Some(Stmt::Expr { expr, .. }) => is_boolean(expr),
        Some(Stmt::Assign { .. }) => false,
    }
}

/// A Ruby local name that is also a name in Rhai.
fn rhai_name(name: &str) -> Translated {
    const RESERVED: [&str; 14] = [
        "fn", "let", "const", "this", "switch", "loop", "import", "export", "private", "global",
        "is", "in", "throw", "try",
    ];
    if RESERVED.contains(&name) || name.ends_with('?') || name.ends_with('!') {
        Err(format!("the name {name}, which Rhai reserves or cannot spell"))
    } else {
        Ok(name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::parser::parse;

    fn rhai(body: &str, params: &[&str]) -> Result<String, String> {
        let statements = parse("t", body).unwrap();
        let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
        translate(&statements, &params, "").map(|text| text.trim_end().to_string())
    }

    #[test]
    fn translates_the_manuals_simple_stoppers() {
        assert_eq!(
            rhai("helo == \"localhost.localdomain\"", &["context", "helo"]).unwrap(),
            "helo == \"localhost.localdomain\""
        );
        assert_eq!(rhai("true", &["context"]).unwrap(), "true");
        assert_eq!(
            rhai("if /@example.com>\\z/ =~ from\n  true\nelse\n  false\nend", &["context", "from"])
                .unwrap(),
            "if from.regex_match(\"@example.com>\\\\z\") { true } else { false }"
        );
        assert_eq!(
            rhai(
                "!socket_address.local? && socket_address.port == 25",
                &["context", "host", "socket_address"]
            )
            .unwrap(),
            "(!socket_address.local) && (socket_address.port == 25)"
        );
        assert_eq!(
            rhai("context.children[\"milter-greylist\"].reject?", &["context"]).unwrap(),
            "context.children[\"milter-greylist\"].reject"
        );
        assert_eq!(
            rhai(
                "if /^-----BEGIN PGP SIGNATURE-----$/ =~ chunk\n true\nelse\n false\nend",
                &["context", "chunk"]
            )
            .unwrap(),
            "if chunk.regex_match(\"(?m)^-----BEGIN PGP SIGNATURE-----$\") { true } else { false }"
        );
        assert_eq!(
            rhai("context[\"stress\"] = \"yes\" if context[\"n\"] == \"1\"\nfalse", &["context"])
                .unwrap(),
            "if context[\"n\"] == \"1\" { context[\"stress\"] = \"yes\"; };\nfalse"
        );
    }

    #[test]
    fn translates_case_when_as_the_original_s25r_writes_it() {
        let body = "case host\nwhen \"unknown\",\n  /\\A\\[.+\\]\\z/,\n  /\\A(?:dhcp|ppp)[^.]*\\d/i\n  false\nelse\n  true\nend";
        assert_eq!(
            rhai(body, &["context", "host"]).unwrap(),
            "if host == \"unknown\" || host.regex_match(\"\\\\A\\\\[.+\\\\]\\\\z\") || \
             host.regex_match(\"(?i)\\\\A(?:dhcp|ppp)[^.]*\\\\d\") { false } else { true }"
        );
    }

    #[test]
    fn refuses_what_it_cannot_keep_and_says_why() {
        assert_eq!(rhai("host", &["host"]).unwrap_err(), "its value is not plainly true or false");
        assert_eq!(
            rhai("(8..19).include?(Time.now.hour)", &["host"]).unwrap_err(),
            "the operator .."
        );
        assert_eq!(rhai("Time.now.hour < 8", &["context"]).unwrap_err(), "Ruby's Time");
        assert!(rhai("unknown_call == 1", &["context"])
            .unwrap_err()
            .contains("a call of unknown_call"));
    }
}
