//! Walks the original's files in its load order and collects what each statement sets:
//! items for TOML, milter tables, and the Rhai that our configuration needs where the
//! original ran code (conditions, loops over the milters, changes to detected milters).
//! Whatever is translated approximately or not at all becomes a finding with FILE:LINE.

use std::collections::HashSet;
use std::fmt;

use super::ast::{Block, Call, Expr, Stmt};
use super::error::{Location, MigrateError};
use super::items::{self, builtin_condition, list_entry, Value, ValueKind};
use super::parser::parse;
use super::stopper;

mod builtins;
mod conditions;
mod milters;

/// Where the converter reads the original's files (the program: the disk; tests: a map).
pub trait Source {
    /// The text of the file at `path`; `Ok(None)` when there is none.
    fn read(&self, path: &str) -> Result<Option<String>, String>;
    /// The names of the files in the directory `dir` (none when it does not exist).
    fn list(&self, dir: &str) -> Vec<String>;
}

/// Something of the original that needs a hand: translated approximately or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub at: Location,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// One item set by the original, with where.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: String,
    pub value: Value,
    pub at: Location,
}

/// A `[milter."NAME"]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct MilterTable {
    pub name: String,
    pub at: Location,
    pub settings: Vec<Setting>,
}

/// An entry of a built-in condition's list (`s25r.add_whitelist("mx.example.com")`).
#[derive(Debug, Clone, PartialEq)]
pub struct ListEntry {
    pub section: &'static str,
    pub key: &'static str,
    pub entry: String,
    pub at: Location,
}

/// Everything collected from the original's files.
#[derive(Debug, Default)]
pub struct Collected {
    /// `(section, setting)`, the last one set of each key.
    pub settings: Vec<(String, Setting)>,
    pub lists: Vec<ListEntry>,
    pub milters: Vec<MilterTable>,
    /// Where the original loaded its platform default (`load_default`).
    pub load_default: Option<Location>,
    /// Rhai run before the platform default: conditions and what the original did before
    /// its `load_default`.
    pub rhai_before: Vec<String>,
    /// Rhai run after the platform default and its detected milters.
    pub rhai_after: Vec<String>,
    pub findings: Vec<Finding>,
    /// Every file read, in order.
    pub files: Vec<String>,
}

/// The main file of the original's configuration directory.
pub const MAIN_FILE: &str = "milter-manager.conf";

/// Reads `dir/milter-manager.conf` and what it loads, in the original's order.
pub fn collect(dir: &str, source: &dyn Source) -> Result<Collected, MigrateError> {
    let mut walker = Walker {
        dir: dir.trim_end_matches('/').to_string(),
        source,
        loading: Vec::new(),
        out: Collected::default(),
        custom_conditions: HashSet::new(),
        condition_uses: Vec::new(),
        rhai_touched: HashSet::new(),
        rhai_touched_all: false,
    };
    let main = walker.path_of(MAIN_FILE);
    let Some(text) = source
        .read(&main)
        .map_err(|reason| MigrateError::Unreadable { path: main.clone(), reason })?
    else {
        return Err(MigrateError::Unreadable { path: main, reason: "no such file".into() });
    };
    walker.file(&main, &text)?;
    let custom = walker.path_of("milter-manager.custom.conf");
    if let Ok(Some(_)) = source.read(&custom) {
        walker.finding(
            &Location { file: custom.as_str().into(), line: 1 },
            "the web interface's settings (XML) are not converted; set them in \
             milter-manager.toml"
                .into(),
        );
    }
    walker.check_condition_names();
    Ok(walker.out)
}

struct Walker<'a> {
    dir: String,
    source: &'a dyn Source,
    /// The files being loaded, outermost first, to refuse cycles.
    loading: Vec<String>,
    out: Collected,
    custom_conditions: HashSet<String>,
    condition_uses: Vec<(String, Location)>,
    /// Milters changed by Rhai after the default (all of them after a loop): later
    /// changes to them go there too, so that they keep the original's order.
    rhai_touched: HashSet<String>,
    rhai_touched_all: bool,
}

/// How a milter is named in the statement being converted.
#[derive(Clone)]
enum MilterName {
    Literal(String),
    /// A Rhai variable (the loop over `defined_milters()`).
    Variable(String),
}

impl MilterName {
    fn rhai(&self) -> String {
        match self {
            Self::Literal(name) => crate::text::quote(name),
            Self::Variable(name) => name.clone(),
        }
    }
}

/// A loop variable bound to a milter's name while a loop is unrolled.
type Bindings<'b> = &'b [(String, String)];

impl Walker<'_> {
    fn path_of(&self, name: &str) -> String {
        if name.starts_with('/') {
            name.to_string()
        } else {
            format!("{}/{name}", self.dir)
        }
    }

    fn finding(&mut self, at: &Location, message: String) {
        self.out.findings.push(Finding { at: at.clone(), message });
    }

    fn after_default(&self) -> bool {
        self.out.load_default.is_some()
    }

    fn file(&mut self, path: &str, text: &str) -> Result<(), MigrateError> {
        self.loading.push(path.to_string());
        self.out.files.push(path.to_string());
        let statements = parse(path, text)?;
        for statement in &statements {
            self.statement(statement, &[])?;
        }
        self.loading.pop();
        Ok(())
    }

    fn statement(&mut self, statement: &Stmt, bindings: Bindings<'_>) -> Result<(), MigrateError> {
        match statement {
            Stmt::Assign { target: Expr::Call(target), value, at } => {
                let Some(dotted) = target.dotted_name() else {
                    self.finding(at, "an assignment computed in Ruby is not translated".into());
                    return Ok(());
                };
                self.assignment(&dotted, value, at)
            }
            Stmt::Assign { at, .. } => {
                self.finding(at, "an assignment computed in Ruby is not translated".into());
                Ok(())
            }
            Stmt::Expr { expr: Expr::Call(call), at } => self.call(call, at, bindings),
            Stmt::Expr { at, expr } => {
                let what = items::describe(expr);
                self.finding(at, format!("{what} at the top level is not translated"));
                Ok(())
            }
        }
    }

    fn assignment(
        &mut self,
        dotted: &str,
        value: &Expr,
        at: &Location,
    ) -> Result<(), MigrateError> {
        let Some((section, key)) = dotted.split_once('.') else {
            self.finding(at, format!("the Ruby variable {dotted} is not translated"));
            return Ok(());
        };
        if section == "database" {
            self.finding(at, format!("{dotted}: there is no database here; not translated"));
            return Ok(());
        }
        let Some(kind) = items::section_item(section, key) else {
            return Err(MigrateError::UnknownItem { at: at.clone(), item: dotted.to_string() });
        };
        let value = items::convert(kind, value).map_err(|problem| MigrateError::BadValue {
            at: at.clone(),
            item: dotted.to_string(),
            problem,
        })?;
        if section == "package" && self.after_default() {
            self.finding(
                at,
                format!(
                    "{dotted} set after load_default: the original ignored it for the \
                         default; here it counts"
                ),
            );
        }
        self.set(section, key, value, at);
        Ok(())
    }

    fn set(&mut self, section: &str, key: &str, value: Value, at: &Location) {
        let setting = Setting { key: key.to_string(), value, at: at.clone() };
        let settings = &mut self.out.settings;
        if setting.value == Value::Default {
            settings.retain(|(s, old)| s != section || old.key != key);
            return;
        }
        match settings.iter_mut().find(|(s, old)| s == section && old.key == key) {
            Some((_, old)) => *old = setting,
            None => settings.push((section.to_string(), setting)),
        }
    }

    fn call(
        &mut self,
        call: &Call,
        at: &Location,
        bindings: Bindings<'_>,
    ) -> Result<(), MigrateError> {
        let receiver = match call.receiver.as_deref() {
            None => None,
            Some(Expr::Call(receiver)) => receiver.dotted_name(),
            Some(_) => {
                self.finding(at, format!("the Ruby call {} is not translated", call.name));
                return Ok(());
            }
        };
        match (receiver.as_deref(), call.name.as_str()) {
            (None, "load" | "load_if_exist") => self.load(call, at, call.name == "load"),
            (None, "load_default") => {
                if self.out.load_default.is_none() {
                    self.out.load_default = Some(at.clone());
                }
                Ok(())
            }
            (None, "define_milter") => {
                let name = self.name_argument(call, at, bindings)?;
                let block = self.dsl_block(call, at)?;
                self.define_milter(MilterName::Literal(name), block, at)
            }
            (None, "remove_milter") => {
                let name = self.name_argument(call, at, bindings)?;
                self.remove_milter(MilterName::Literal(name), at);
                Ok(())
            }
            (None, "define_applicable_condition") => self.define_condition(call, at),
            (None, "restrict_accounts_by_list") => self.restrict_accounts(call, at),
            (Some("defined_milters"), "each") => self.each_milter(call, at),
            (
                Some(object @ ("s25r" | "remote_network" | "trust" | "dnsbl" | "manager")),
                method,
            ) => self.builtin_call(object, method, call, at),
            (Some("database"), _) => {
                self.finding(at, "there is no database here; not translated".into());
                Ok(())
            }
            (Some(object @ ("package" | "security" | "controller" | "log" | "stress")), method) => {
                Err(MigrateError::UnknownItem {
                    at: at.clone(),
                    item: format!("{object}.{method}"),
                })
            }
            _ => {
                let name = receiver.map_or(call.name.clone(), |r| format!("{r}.{}", call.name));
                self.finding(at, format!("the Ruby call {name} is not translated"));
                Ok(())
            }
        }
    }

    /// The one string argument of `call` (a loop variable counts while a loop is unrolled).
    fn name_argument(
        &self,
        call: &Call,
        at: &Location,
        bindings: Bindings<'_>,
    ) -> Result<String, MigrateError> {
        let bad = |problem: &str| MigrateError::BadValue {
            at: at.clone(),
            item: call.name.clone(),
            problem: problem.to_string(),
        };
        match call.args.as_slice() {
            [Expr::Str(name)] => Ok(name.clone()),
            [Expr::Call(variable)] if variable.receiver.is_none() && variable.args.is_empty() => {
                bindings
                    .iter()
                    .find(|(bound, _)| *bound == variable.name)
                    .map(|(_, name)| name.clone())
                    .ok_or_else(|| bad("the name is computed in Ruby; give it as a string"))
            }
            [] => Err(bad("a name is needed")),
            _ => Err(bad("expected one name, a string")),
        }
    }

    /// The statements of the block of a DSL call (`define_milter`, ...).
    fn dsl_block<'c>(
        &self,
        call: &'c Call,
        _at: &Location,
    ) -> Result<Option<(&'c Block, &'c [Stmt])>, MigrateError> {
        let Some(block) = &call.block else { return Ok(None) };
        match &block.body {
            Ok(statements) => Ok(Some((block, statements))),
            Err(error) => Err(error.clone()),
        }
    }

    fn load(&mut self, call: &Call, at: &Location, required: bool) -> Result<(), MigrateError> {
        let [Expr::Str(pattern)] = call.args.as_slice() else {
            self.finding(at, format!("{} of a computed path is not translated", call.name));
            return Ok(());
        };
        let path = self.path_of(pattern);
        let (directory, name) = path.rsplit_once('/').unwrap_or((".", path.as_str()));
        let mut paths = Vec::new();
        if name.contains(['*', '?']) {
            let mut names: Vec<String> =
                self.source.list(directory).into_iter().filter(|n| glob_match(name, n)).collect();
            names.sort();
            paths.extend(names.into_iter().map(|n| format!("{directory}/{n}")));
        } else {
            paths.push(path.clone());
        }
        for path in paths {
            let (directory, name) = path.rsplit_once('/').unwrap_or((".", path.as_str()));
            if directory.ends_with("applicable-conditions")
                && items::SHIPPED_CONDITION_FILES.contains(&name)
            {
                // The original's own conditions are our built-ins.
                continue;
            }
            if self.loading.contains(&path) {
                return Err(MigrateError::Cycle { at: at.clone(), file: path });
            }
            let text = self
                .source
                .read(&path)
                .map_err(|reason| MigrateError::Unreadable { path: path.clone(), reason })?;
            match text {
                Some(text) => self.file(&path, &text)?,
                None if required && !name.contains(['*', '?']) => {
                    return Err(MigrateError::Missing { at: at.clone(), file: path })
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// Whether a `define_milter` block sets the milter's socket.
fn defines_socket(block: &[Stmt]) -> bool {
    block.iter().any(|statement| {
        matches!(statement, Stmt::Assign { target: Expr::Call(call), .. } if call.name == "connection_spec")
    })
}

/// Whether `call` is made on the block parameter `param` (`milter.enabled`).
fn is_on(call: &Call, param: &str) -> bool {
    matches!(call.receiver.as_deref(), Some(Expr::Call(receiver))
        if receiver.receiver.is_none() && receiver.args.is_empty() && receiver.name == param)
}

/// The parameters our stopper of that name gives, by the names the manual uses.
fn stopper_params(method: &str) -> Option<&'static [&'static str]> {
    Some(match method {
        "define_connect_stopper" => &["context", "host", "address"],
        "define_helo_stopper" => &["context", "fqdn"],
        "define_envelope_from_stopper" => &["context", "from"],
        "define_envelope_recipient_stopper" => &["context", "recipient"],
        "define_header_stopper" => &["context", "name", "value"],
        "define_body_stopper" => &["context", "chunk"],
        "define_data_stopper"
        | "define_end_of_header_stopper"
        | "define_end_of_message_stopper" => &["context"],
        _ => return None,
    })
}

/// The lines of `text` without the indentation they share.
fn dedent(text: &str) -> impl Iterator<Item = &str> {
    let indent = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    text.lines().map(move |line| line.get(indent..).unwrap_or(line.trim_start()))
}

/// `*` and `?` of a file name pattern.
fn glob_match(pattern: &str, name: &str) -> bool {
    fn matches(pattern: &[char], name: &[char]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some(('*', rest)) => (0..=name.len()).any(|skip| matches(rest, &name[skip..])),
            Some(('?', rest)) => !name.is_empty() && matches(rest, &name[1..]),
            Some((c, rest)) => name.first() == Some(c) && matches(rest, &name[1..]),
        }
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    name.first().is_none_or(|c| *c != '.') && matches(&pattern, &name)
}

#[cfg(test)]
mod tests;
