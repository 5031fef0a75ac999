//! `define_milter`, `remove_milter` and loops over the milters: TOML tables where the
//! order allows, Rhai after the platform default where it does not.

use super::*;

impl Walker<'_> {
    /// Whether changes to the milter `name` go to the TOML table or to Rhai run after the
    /// detected milters are defined.
    pub(super) fn milter_in_toml(&self, name: &MilterName, block: &[Stmt]) -> bool {
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

    pub(super) fn define_milter(
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
    pub(super) fn milter_statement(
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
    pub(super) fn milter_value(
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

    /// A `define_milter` block as Rhai.
    pub(super) fn rhai_milter(
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
                        crate::text::quote(&condition)
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

    pub(super) fn push_rhai(&mut self, lines: Vec<String>) {
        if self.after_default() {
            self.out.rhai_after.extend(lines);
            self.out.rhai_after.push(String::new());
        } else {
            self.out.rhai_before.extend(lines);
            self.out.rhai_before.push(String::new());
        }
    }

    pub(super) fn remove_milter(&mut self, name: MilterName, at: &Location) {
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

    pub(super) fn each_milter(&mut self, call: &Call, at: &Location) -> Result<(), MigrateError> {
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

    pub(super) fn restrict_accounts(
        &mut self,
        call: &Call,
        at: &Location,
    ) -> Result<(), MigrateError> {
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
