//! Conditions of the site's own and condition names: Rhai, with the stoppers translated
//! where they are simple.

use super::*;

impl Walker<'_> {
    pub(super) fn condition_argument(
        &mut self,
        call: &Call,
        at: &Location,
    ) -> Result<String, MigrateError> {
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
    pub(super) fn condition_name(&mut self, name: &str, at: &Location) -> String {
        self.condition_uses.push((name.to_string(), at.clone()));
        builtin_condition(name).map_or_else(|| name.to_string(), str::to_string)
    }

    pub(super) fn check_condition_names(&mut self) {
        let uses = std::mem::take(&mut self.condition_uses);
        for (name, at) in uses {
            if builtin_condition(&name).is_none() && !self.custom_conditions.contains(&name) {
                self.finding(&at, format!("no applicable condition {name:?} is defined"));
            }
        }
    }

    pub(super) fn define_condition(
        &mut self,
        call: &Call,
        at: &Location,
    ) -> Result<(), MigrateError> {
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
            format!("define_applicable_condition({}, |condition| {{", crate::text::quote(&name)),
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
    pub(super) fn stopper(&mut self, condition: &str, call: &Call, at: &Location) -> Vec<String> {
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
                .map_err(unread_reason)
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

    pub(super) fn s25r_block(&mut self, method: &str, call: &Call, at: &Location) {
        let Some(block) = &call.block else { return };
        let params: Vec<String> =
            if block.params.is_empty() { vec!["host".into()] } else { block.params.clone() };
        let translated = block
            .body
            .clone()
            .map_err(unread_reason)
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
}

/// Why a block body was not read, without its place (the finding names it).
fn unread_reason(error: MigrateError) -> String {
    match error {
        MigrateError::NotRuby { what, .. } => format!("Ruby the converter does not read: {what}"),
        other => other.to_string(),
    }
}
