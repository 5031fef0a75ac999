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
            Self::Literal(name) => items::rhai_string(name),
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

    /// Whether changes to the milter `name` go to the TOML table or to Rhai run after the
    /// detected milters are defined.
    fn milter_in_toml(&self, name: &MilterName, block: &[Stmt]) -> bool {
        let MilterName::Literal(name) = name else { return false };
        if !self.after_default() {
            return true;
        }
        if self.rhai_touched_all || self.rhai_touched.contains(name) {
            return false;
        }
        let known = self.out.milters.iter().any(|m| m.name == *name);
        known || defines_socket(block)
    }

    fn define_milter(
        &mut self,
        name: MilterName,
        block: Option<(&Block, &[Stmt])>,
        at: &Location,
    ) -> Result<(), MigrateError> {
        let (param, statements) = match block {
            Some((block, statements)) => {
                (block.params.first().cloned().unwrap_or_default(), statements)
            }
            None => (String::new(), &[][..]),
        };
        if self.milter_in_toml(&name, statements) {
            let MilterName::Literal(literal) = &name else { unreachable!("checked above") };
            if !self.out.milters.iter().any(|m| m.name == *literal) {
                self.out.milters.push(MilterTable {
                    name: literal.clone(),
                    at: at.clone(),
                    settings: Vec::new(),
                });
            }
            for statement in statements {
                if let Some((key, value, at)) = self.milter_statement(literal, &param, statement)? {
                    let table = self
                        .out
                        .milters
                        .iter_mut()
                        .find(|m| m.name == *literal)
                        .expect("pushed above");
                    let setting = Setting { key, value, at };
                    match table.settings.iter_mut().find(|s| s.key == setting.key) {
                        Some(old) => *old = setting,
                        None => table.settings.push(setting),
                    }
                }
            }
            return Ok(());
        }
        let mut lines = self.rhai_milter(&name, &param, statements, at)?;
        match &name {
            MilterName::Literal(literal) if !defines_socket(statements) => {
                // A milter the platform default may detect: changed only if it did, as
                // the original would otherwise define one without a socket.
                self.rhai_touched.insert(literal.clone());
                let guard = format!("if {} in defined_milters() {{", name.rhai());
                let comment = lines.remove(0);
                lines = [comment, guard]
                    .into_iter()
                    .chain(lines.into_iter().map(|line| format!("    {line}")))
                    .chain(std::iter::once("}".to_string()))
                    .collect();
            }
            MilterName::Literal(literal) => {
                self.rhai_touched.insert(literal.clone());
            }
            MilterName::Variable(_) => self.rhai_touched_all = true,
        }
        self.push_rhai(lines);
        Ok(())
    }

    /// One statement of a `define_milter` block that goes to TOML: the item it sets.
    fn milter_statement(
        &mut self,
        name: &str,
        param: &str,
        statement: &Stmt,
    ) -> Result<Option<(String, Value, Location)>, MigrateError> {
        match statement {
            Stmt::Assign { target: Expr::Call(target), value, at } if is_on(target, param) => {
                let value = self.milter_value(&target.name, value, at)?;
                Ok(value.map(|value| (target.name.clone(), value, at.clone())))
            }
            Stmt::Expr { expr: Expr::Call(call), at }
                if is_on(call, param) && call.name == "add_applicable_condition" =>
            {
                let condition = self.condition_argument(call, at)?;
                let table = self.out.milters.iter().find(|m| m.name == name);
                let mut list = table
                    .and_then(|t| t.settings.iter().find(|s| s.key == "applicable_conditions"))
                    .and_then(|s| match &s.value {
                        Value::List(list) => Some(list.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                if !list.contains(&condition) {
                    list.push(condition);
                }
                Ok(Some(("applicable_conditions".into(), Value::List(list), at.clone())))
            }
            other => {
                self.finding(
                    other.location(),
                    format!("this statement of define_milter({name:?}) is not translated"),
                );
                Ok(None)
            }
        }
    }

    /// The value of a milter item, `None` when it is reported and left out.
    fn milter_value(
        &mut self,
        key: &str,
        value: &Expr,
        at: &Location,
    ) -> Result<Option<Value>, MigrateError> {
        if key == "name" {
            self.finding(at, "renaming a milter (milter.name =) is not translated".into());
            return Ok(None);
        }
        let Some(kind) = items::milter_item(key) else {
            return Err(MigrateError::UnknownItem {
                at: at.clone(),
                item: format!("milter.{key}"),
            });
        };
        let mut value = items::convert(kind, value).map_err(|problem| MigrateError::BadValue {
            at: at.clone(),
            item: format!("milter.{key}"),
            problem,
        })?;
        if key == "applicable_conditions" {
            if let Value::List(names) = &mut value {
                for name in names.iter_mut() {
                    *name = self.condition_name(name, at);
                }
            }
        }
        Ok(Some(value))
    }

    fn condition_argument(&mut self, call: &Call, at: &Location) -> Result<String, MigrateError> {
        match call.args.as_slice() {
            [Expr::Str(name)] => Ok(self.condition_name(name, at)),
            _ => Err(MigrateError::BadValue {
                at: at.clone(),
                item: call.name.clone(),
                problem: "expected the name of a condition, a string".into(),
            }),
        }
    }

    /// Our name for a condition the original names `name`.
    fn condition_name(&mut self, name: &str, at: &Location) -> String {
        self.condition_uses.push((name.to_string(), at.clone()));
        builtin_condition(name).map_or_else(|| name.to_string(), str::to_string)
    }

    fn check_condition_names(&mut self) {
        let uses = std::mem::take(&mut self.condition_uses);
        for (name, at) in uses {
            if builtin_condition(&name).is_none() && !self.custom_conditions.contains(&name) {
                self.finding(&at, format!("no applicable condition {name:?} is defined"));
            }
        }
    }

    /// A `define_milter` block as Rhai.
    fn rhai_milter(
        &mut self,
        name: &MilterName,
        param: &str,
        statements: &[Stmt],
        at: &Location,
    ) -> Result<Vec<String>, MigrateError> {
        let mut lines =
            vec![format!("// {at}"), format!("define_milter({}, |milter| {{", name.rhai())];
        for statement in statements {
            match statement {
                Stmt::Assign { target: Expr::Call(target), value, at } if is_on(target, param) => {
                    if let Some(value) = self.milter_value(&target.name, value, at)? {
                        lines.push(format!(
                            "    milter.{} = {}; // {at}",
                            target.name,
                            value.rhai()
                        ));
                    }
                }
                Stmt::Expr { expr: Expr::Call(call), at }
                    if is_on(call, param) && call.name == "add_applicable_condition" =>
                {
                    let condition = self.condition_argument(call, at)?;
                    lines.push(format!(
                        "    milter.add_applicable_condition({}); // {at}",
                        items::rhai_string(&condition)
                    ));
                }
                other => self.finding(
                    other.location(),
                    "this statement of define_milter is not translated".into(),
                ),
            }
        }
        lines.push("});".into());
        Ok(lines)
    }

    fn push_rhai(&mut self, lines: Vec<String>) {
        if self.after_default() {
            self.out.rhai_after.extend(lines);
            self.out.rhai_after.push(String::new());
        } else {
            self.out.rhai_before.extend(lines);
            self.out.rhai_before.push(String::new());
        }
    }

    fn remove_milter(&mut self, name: MilterName, at: &Location) {
        if let MilterName::Literal(literal) = &name {
            let before = self.out.milters.len();
            self.out.milters.retain(|m| m.name != *literal);
            if !self.after_default() {
                if before == self.out.milters.len() {
                    self.finding(
                        at,
                        format!("remove_milter({literal:?}): no such milter is defined here"),
                    );
                }
                return;
            }
        }
        // After the default, a detected milter of that name is removed too.
        if let MilterName::Literal(literal) = &name {
            self.rhai_touched.insert(literal.clone());
        }
        let name = name.rhai();
        self.push_rhai(vec![
            format!("// {at}"),
            format!("if {name} in defined_milters() {{ remove_milter({name}); }}"),
        ]);
    }

    fn each_milter(&mut self, call: &Call, at: &Location) -> Result<(), MigrateError> {
        let Some((block, statements)) = self.dsl_block(call, at)? else {
            self.finding(at, "defined_milters.each without a block is not translated".into());
            return Ok(());
        };
        let variable = block.params.first().cloned().unwrap_or_else(|| "name".into());
        if !self.after_default() {
            // Before the default, the milters are the ones defined so far: unrolled.
            let names: Vec<String> = self.out.milters.iter().map(|m| m.name.clone()).collect();
            for name in names {
                let bindings = [(variable.clone(), name)];
                for statement in statements {
                    self.statement(statement, &bindings)?;
                }
            }
            return Ok(());
        }
        let mut lines = vec![format!("// {at}"), format!("for {variable} in defined_milters() {{")];
        for statement in statements {
            let Stmt::Expr { expr: Expr::Call(inner), at } = statement else {
                self.finding(
                    statement.location(),
                    "this statement in defined_milters.each is not translated".into(),
                );
                continue;
            };
            let is_variable = matches!(inner.args.as_slice(), [Expr::Call(v)] if v.name == variable && v.receiver.is_none());
            match inner.name.as_str() {
                "define_milter" if is_variable => {
                    let inner_block = self.dsl_block(inner, at)?;
                    let (param, body) = match inner_block {
                        Some((b, body)) => (b.params.first().cloned().unwrap_or_default(), body),
                        None => (String::new(), &[][..]),
                    };
                    let name = MilterName::Variable(variable.clone());
                    let milter_lines = self.rhai_milter(&name, &param, body, at)?;
                    lines.extend(milter_lines.into_iter().map(|l| format!("    {l}")));
                }
                "remove_milter" if is_variable => {
                    lines.push(format!("    remove_milter({variable}); // {at}"));
                }
                _ => self
                    .finding(at, "this statement in defined_milters.each is not translated".into()),
            }
        }
        lines.push("}".into());
        self.rhai_touched_all = true;
        self.push_rhai(lines);
        Ok(())
    }

    fn define_condition(&mut self, call: &Call, at: &Location) -> Result<(), MigrateError> {
        let name = self.name_argument(call, at, &[])?;
        if builtin_condition(&name).is_some() {
            self.finding(
                at,
                format!("{name:?} is a built-in condition here; this definition is not translated"),
            );
            return Ok(());
        }
        self.custom_conditions.insert(name.clone());
        let block = self.dsl_block(call, at)?;
        let (param, statements) = match block {
            Some((b, s)) => (b.params.first().cloned().unwrap_or_default(), s),
            None => (String::new(), &[][..]),
        };
        let mut lines = vec![
            format!("// {at}"),
            format!("define_applicable_condition({}, |condition| {{", items::rhai_string(&name)),
        ];
        for statement in statements {
            match statement {
                Stmt::Assign { target: Expr::Call(target), value, at }
                    if is_on(target, &param) && target.name == "description" =>
                {
                    let value =
                        items::convert(ValueKind::OptionalText, value).map_err(|problem| {
                            MigrateError::BadValue {
                                at: at.clone(),
                                item: "condition.description".into(),
                                problem,
                            }
                        })?;
                    lines.push(format!("    condition.description = {}; // {at}", value.rhai()));
                }
                Stmt::Expr { expr: Expr::Call(stopper), at }
                    if is_on(stopper, &param) && stopper_params(&stopper.name).is_some() =>
                {
                    lines.extend(self.stopper(&name, stopper, at));
                }
                other => self.finding(
                    other.location(),
                    format!("this statement of condition {name:?} is not translated"),
                ),
            }
        }
        lines.push("});".into());
        self.out.rhai_before.extend(lines);
        self.out.rhai_before.push(String::new());
        Ok(())
    }

    /// A `define_*_stopper` call as Rhai: translated, or a stopper that applies the
    /// milter with the Ruby kept beside it.
    fn stopper(&mut self, condition: &str, call: &Call, at: &Location) -> Vec<String> {
        let standard = stopper_params(&call.name).unwrap_or(&[]);
        let Some(block) = &call.block else {
            self.finding(at, format!("{} without a block is not translated", call.name));
            return Vec::new();
        };
        let mut params: Vec<String> = block.params.clone();
        for (index, name) in standard.iter().enumerate() {
            if params.len() <= index {
                params.push((*name).to_string());
            }
        }
        let translated = if params.len() > standard.len() {
            Err(format!(
                "it takes {} parameters, the stopper gives {}",
                params.len(),
                standard.len()
            ))
        } else {
            block
                .body
                .clone()
                .map_err(|e| e.to_string())
                .and_then(|body| stopper::translate(&body, &params, "        "))
        };
        let mut lines = vec![
            format!("    // {at}"),
            format!("    condition.{}(|{}| {{", call.name, params.join(", ")),
        ];
        match translated {
            Ok(body) => lines.push(body.trim_end().to_string()),
            Err(reason) => {
                self.finding(
                    at,
                    format!(
                        "{} of condition {condition:?} is not translated ({reason}); until it is \
                         written in Rhai, the condition applies the milter",
                        call.name
                    ),
                );
                lines.push(
                    "        // TODO: translate this stopper from the original's Ruby:".into(),
                );
                lines.extend(dedent(&block.source).map(|line| format!("        //   {line}")));
                lines.push("        false".into());
            }
        }
        lines.push("    });".into());
        lines
    }

    fn builtin_call(
        &mut self,
        object: &str,
        method: &str,
        call: &Call,
        at: &Location,
    ) -> Result<(), MigrateError> {
        let list: Option<(&'static str, &'static str)> = match (object, method) {
            ("s25r", "add_whitelist") => Some(("s25r", "whitelist")),
            ("s25r", "add_blacklist") => Some(("s25r", "blacklist")),
            ("remote_network", "add_local_address") => Some(("remote_network", "local_addresses")),
            ("remote_network", "add_remote_address") => {
                Some(("remote_network", "remote_addresses"))
            }
            ("trust", "add_envelope_from_domain") => Some(("trust", "envelope_from_domains")),
            ("trust", "load_envelope_from_domains") => {
                Some(("trust", "envelope_from_domain_files"))
            }
            ("dnsbl", "add_service") => Some(("dnsbl", "services")),
            _ => None,
        };
        if let Some((section, key)) = list {
            if object == "s25r" && call.block.is_some() {
                self.s25r_block(method, call, at);
                return Ok(());
            }
            let entry = match (object, call.args.as_slice()) {
                ("dnsbl", [Expr::Str(zone)]) => Ok(zone.clone()),
                ("dnsbl", [Expr::Str(zone), Expr::Str(answer)]) => Ok(format!("{zone}={answer}")),
                ("trust", [Expr::Str(path)]) if key == "envelope_from_domain_files" => {
                    Ok(self.path_of(path))
                }
                ("s25r" | "trust", [one]) => list_entry(one),
                ("remote_network", [Expr::Str(address)]) => Ok(address.clone()),
                _ => Err("expected one string".to_string()),
            };
            match entry {
                Ok(entry) => self.out.lists.push(ListEntry { section, key, entry, at: at.clone() }),
                Err(problem) => {
                    self.finding(at, format!("{object}.{method}: {problem}; not translated"));
                }
            }
            return Ok(());
        }
        match (object, method) {
            ("trust", "clear") => {
                self.out.lists.retain(|e| e.section != "trust" || e.key != "envelope_from_domains");
                self.set("trust", "default_envelope_from_domains", Value::Bool(false), at);
            }
            ("dnsbl", "clear") => {
                self.out.lists.retain(|e| e.section != "dnsbl" || e.key != "services");
                self.set("dnsbl", "default_services", Value::Bool(false), at);
            }
            ("manager", "use_netstat_connection_checker") => {
                let interval = match call.args.as_slice() {
                    [] => 5,
                    [Expr::Int(n)] if *n >= 0 => *n,
                    _ => {
                        return Err(MigrateError::BadValue {
                            at: at.clone(),
                            item: "manager.use_netstat_connection_checker".into(),
                            problem: "expected a number of seconds".into(),
                        })
                    }
                };
                self.set("manager", "connection_check_interval", Value::Int(interval), at);
            }
            ("manager", "report_memory_statistics") if call.args.is_empty() => {
                self.set("manager", "report_memory_statistics", Value::Bool(true), at);
            }
            ("manager", "define_connection_checker" | "maintained" | "event_loop_created") => {
                self.finding(at, format!("manager.{method} runs Ruby code; not translated"));
            }
            _ => {
                return Err(MigrateError::UnknownItem {
                    at: at.clone(),
                    item: format!("{object}.{method}"),
                })
            }
        }
        Ok(())
    }

    fn s25r_block(&mut self, method: &str, call: &Call, at: &Location) {
        let Some(block) = &call.block else { return };
        let params: Vec<String> =
            if block.params.is_empty() { vec!["host".into()] } else { block.params.clone() };
        let translated = block
            .body
            .clone()
            .map_err(|e| e.to_string())
            .and_then(|body| stopper::translate(&body, &params, "    "));
        let mut lines =
            vec![format!("// {at}"), format!("s25r.{method}(|{}| {{", params.join(", "))];
        match translated {
            Ok(body) => lines.push(body.trim_end().to_string()),
            Err(reason) => {
                self.finding(
                    at,
                    format!(
                        "s25r.{method} with a block is not translated ({reason}); until it is \
                             written in Rhai, it matches no host"
                    ),
                );
                lines.push("    // TODO: translate this block from the original's Ruby:".into());
                lines.extend(dedent(&block.source).map(|line| format!("    //   {line}")));
                lines.push("    false".into());
            }
        }
        lines.push("});".into());
        self.out.rhai_before.extend(lines);
        self.out.rhai_before.push(String::new());
    }

    fn restrict_accounts(&mut self, call: &Call, at: &Location) -> Result<(), MigrateError> {
        let mut milters = Vec::new();
        for arg in &call.args {
            match arg {
                Expr::Str(account) => self.out.lists.push(ListEntry {
                    section: "restrict_accounts",
                    key: "accounts",
                    entry: account.clone(),
                    at: at.clone(),
                }),
                Expr::Pair(key, value) if key == "milters" => {
                    if let Ok(Value::List(names)) = items::convert(ValueKind::Names, value) {
                        milters = names;
                    }
                }
                Expr::Pair(key, _) => self.finding(
                    at,
                    format!("restrict_accounts_by_list's {key}: is not translated; the condition is \"Restrict Accounts\" here"),
                ),
                _ => self.finding(at, "an account computed in Ruby is not translated".into()),
            }
        }
        for name in milters {
            let statement = Stmt::Expr {
                expr: Expr::Call(Box::new(Call {
                    receiver: Some(Box::new(Expr::Call(Box::new(Call {
                        receiver: None,
                        name: "milter".into(),
                        args: Vec::new(),
                        block: None,
                        at: at.clone(),
                    })))),
                    name: "add_applicable_condition".into(),
                    args: vec![Expr::Str("Restrict Accounts".into())],
                    block: None,
                    at: at.clone(),
                })),
                at: at.clone(),
            };
            let block = Block {
                params: vec!["milter".into()],
                body: Ok(Vec::new()),
                source: String::new(),
                at: at.clone(),
            };
            let statements = [statement];
            self.define_milter(MilterName::Literal(name), Some((&block, &statements)), at)?;
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
