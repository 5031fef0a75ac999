//! The built-in conditions' settings (`s25r.add_whitelist`, ...) and the `manager`
//! calls of the original.

use super::*;

impl Walker<'_> {
    pub(super) fn builtin_call(
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
                    let full = self.path_of(path);
                    if !path.starts_with('/') {
                        // The new directory may replace the original's one.
                        self.finding(
                            at,
                            format!(
                                "trust.load_envelope_from_domains: {full} is read from the \
                                     original's directory; keep it there or copy it and change \
                                     [trust] envelope_from_domain_files"
                            ),
                        );
                    }
                    Ok(full)
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
}
