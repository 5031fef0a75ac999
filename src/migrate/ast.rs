//! What a parsed original configuration file is made of. Every statement and call keeps
//! the FILE:LINE it was written at.

use super::error::{Location, MigrateError};

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    /// `target = value` (`manager.n_workers = 10`, `a += 1` as `a = a + 1`).
    Assign { target: Expr, value: Expr, at: Location },
    /// Any other expression, usually a call.
    Expr { expr: Expr, at: Location },
}

impl Stmt {
    pub fn location(&self) -> &Location {
        match self {
            Self::Assign { at, .. } | Self::Expr { at, .. } => at,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Str(String),
    /// A double-quoted string with `#{...}`, as written.
    Interpolated(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Regexp {
        source: String,
        flags: String,
    },
    Symbol(String),
    Array(Vec<Self>),
    /// `name: value` among a call's arguments.
    Pair(String, Box<Self>),
    /// A method call; a bare name (`host`, `defined_milters`) is a call without receiver
    /// and arguments.
    Call(Box<Call>),
    /// `Milter::Logger`.
    Constant(String),
    /// `context["j"]`.
    Index(Box<Self>, Vec<Self>),
    /// `!x`, `-x`.
    Unary(&'static str, Box<Self>),
    /// `a == b`, `a =~ /re/`, `a && b` (`and`, `or` as `&&`, `||`).
    Binary(&'static str, Box<Self>, Box<Self>),
    /// `if`/`unless` (as `if !`), also as a modifier; `elsif` nests in `otherwise`.
    If {
        condition: Box<Self>,
        then: Vec<Stmt>,
        otherwise: Vec<Stmt>,
    },
    /// `case subject when a, b then ... else ... end`: each arm's values are matched with
    /// `===` (equality, or a regexp's match).
    Case {
        subject: Box<Self>,
        arms: Vec<(Vec<Self>, Vec<Stmt>)>,
        otherwise: Vec<Stmt>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub receiver: Option<Box<Expr>>,
    pub name: String,
    pub args: Vec<Expr>,
    pub block: Option<Block>,
    pub at: Location,
}

impl Call {
    /// `a.b.c` as "a.b.c" when every part is a plain name (no arguments, no block).
    pub fn dotted_name(&self) -> Option<String> {
        if !self.args.is_empty() || self.block.is_some() {
            return None;
        }
        match self.receiver.as_deref() {
            None => Some(self.name.clone()),
            Some(Expr::Call(receiver)) => {
                Some(format!("{}.{}", receiver.dotted_name()?, self.name))
            }
            Some(_) => None,
        }
    }
}

/// `do |params| ... end` or `{ |params| ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub params: Vec<String>,
    /// The statements, or why they could not be read: a stopper's body may hold any Ruby,
    /// and is then kept as text only.
    pub body: Result<Vec<Stmt>, MigrateError>,
    /// The body as written, for a comment beside what replaces it.
    pub source: String,
    pub at: Location,
}
