//! The collected configuration written as our files: `milter-manager.toml` with every
//! item and the FILE:LINE the original set it at, and the Rhai files it includes.

use super::convert::{Collected, MAIN_FILE};
use super::items::Value;
use crate::config::CONVERTED_FROM;
use crate::config::SECTIONS;
use crate::text::quote;

/// Rhai run before the platform default: conditions, and code of the original's before
/// its `load_default`.
pub const RHAI_BEFORE: &str = "migrated.rhai";
/// Rhai run after the platform default: changes to milters it may have detected.
pub const RHAI_AFTER: &str = "migrated-after-default.rhai";
/// Where the admin's own later changes go, as in the shipped configuration.
const LOCAL_FILE: &str = "milter-manager.local.toml";

/// The files to write, by name, in the output directory.
pub fn render(dir: &str, collected: &Collected) -> Vec<(String, String)> {
    let mut files = vec![("milter-manager.toml".to_string(), main_file(dir, collected))];
    let header = |when: &str| {
        format!(
            "// Converted from the original milter manager's configuration in {dir} by\n\
             // milter-manager-migrate-config. {when}\n\
             // Each statement names the original FILE:LINE it came from.\n\n"
        )
    };
    if !collected.rhai_before.is_empty() {
        let text = format!(
            "{}{}",
            header("Read before the platform default."),
            collected.rhai_before.join("\n")
        );
        files.push((RHAI_BEFORE.to_string(), text));
    }
    if !collected.rhai_after.is_empty() {
        let text = format!(
            "{}{}",
            header("Read after the platform default and the milters it detects."),
            collected.rhai_after.join("\n")
        );
        files.push((RHAI_AFTER.to_string(), text));
    }
    files
}

fn main_file(dir: &str, collected: &Collected) -> String {
    let mut out = format!(
        "# Converted from the original milter manager's configuration by\n\
         # milter-manager-migrate-config, from {dir}/{MAIN_FILE} and the files it loads:\n"
    );
    for file in &collected.files {
        out.push_str(&format!("#   {file}\n"));
    }
    out.push_str(
        "# Each item names the original FILE:LINE it came from. The original's shipped\n\
         # applicable conditions are built in here. Put later changes in\n\
         # milter-manager.local.toml; `milter-manager --check-config` checks the result.\n\n",
    );
    // conf.d as in the shipped configuration: settings of this machine, read first.
    let mut include = vec![quote("conf.d/*.toml"), quote("conf.d/*.rhai")];
    if !collected.rhai_before.is_empty() {
        include.push(quote(RHAI_BEFORE));
    }
    out.push_str(&format!("include = [{}]\n", include.join(", ")));
    match &collected.load_default {
        Some(at) => out.push_str(&format!("{CONVERTED_FROM}{at}\nload_default = true\n")),
        None => out.push_str("# The original did not call load_default.\nload_default = false\n"),
    }
    let mut optional = Vec::new();
    if !collected.rhai_after.is_empty() {
        optional.push(quote(RHAI_AFTER));
    }
    optional.push(quote(LOCAL_FILE));
    out.push_str(&format!("include_optional = [{}]\n", optional.join(", ")));
    for section in &SECTIONS {
        let settings: Vec<_> =
            collected.settings.iter().filter(|(s, _)| s == section).map(|(_, s)| s).collect();
        let lists: Vec<_> = collected.lists.iter().filter(|e| e.section == *section).collect();
        if settings.is_empty() && lists.is_empty() {
            continue;
        }
        out.push_str(&format!("\n[{section}]\n"));
        for setting in settings {
            out.push_str(&format!(
                "{CONVERTED_FROM}{}\n{} = {}\n",
                setting.at,
                setting.key,
                setting.value.toml()
            ));
        }
        let mut keys: Vec<&str> = lists.iter().map(|e| e.key).collect();
        keys.dedup();
        for key in keys {
            // The list as a whole comes from its first entry; each entry says its own.
            if let Some(first) = lists.iter().find(|e| e.key == key) {
                out.push_str(&format!("{CONVERTED_FROM}{}\n", first.at));
            }
            out.push_str(&format!("{key} = [\n"));
            for entry in lists.iter().filter(|e| e.key == key) {
                out.push_str(&format!("    {}, # {}\n", quote(&entry.entry), entry.at));
            }
            out.push_str("]\n");
        }
    }
    for milter in &collected.milters {
        out.push_str(&format!("\n{CONVERTED_FROM}{}\n", milter.at));
        out.push_str(&format!("[milter.{}]\n", quote(&milter.name)));
        for setting in &milter.settings {
            let value = match &setting.value {
                Value::Text(text) if text.is_empty() => continue,
                value => value.toml(),
            };
            out.push_str(&format!("{CONVERTED_FROM}{}\n{} = {value}\n", setting.at, setting.key));
        }
    }
    out
}
