//! Applying one parsed file to the configuration: its `remove_milters`, its sections and
//! milter tables, each value checked and its origin recorded. What the file asks to load
//! next (includes, the platform default) is handed back to the loader.

use std::path::Path;

use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

use super::error::ConfigError;
use super::origin::{Origin, Origins};
use super::schema::{self, Item};
use super::values::{self, Input};
use super::Config;

/// A file being applied: its path and text, and where its lines start, to turn byte
/// offsets into line numbers.
pub(super) struct Source<'a> {
    pub path: &'a Path,
    text: &'a str,
    line_starts: Vec<usize>,
}

/// The comment milter-manager-migrate-config writes above each item it converted, before
/// the original's FILE:LINE.
pub(crate) const CONVERTED_FROM: &str = "# converted from ";

impl<'a> Source<'a> {
    pub(super) fn new(path: &'a Path, text: &'a str) -> Self {
        let line_starts =
            std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Source { path, text, line_starts }
    }

    /// The text of 1-based `line`, without its line break.
    fn line_text(&self, line: usize) -> &'a str {
        let start = self.line_starts[line - 1];
        let end = self.line_starts.get(line).map_or(self.text.len(), |next| next - 1);
        self.text[start..end].trim_end_matches('\r')
    }

    /// The 1-based line of a byte offset.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|start| *start <= offset)
    }

    /// Where `spanned` was set: its line, and the original's FILE:LINE when the line above
    /// is a converter's comment.
    fn origin<T>(&self, spanned: &Spanned<T>) -> Origin {
        let (path, line) = (self.path.to_path_buf(), self.line(spanned.span().start));
        let original = (line > 1)
            .then(|| self.line_text(line - 1).trim().strip_prefix(CONVERTED_FROM))
            .flatten()
            .map(str::trim)
            .filter(|original| !original.is_empty());
        match original {
            Some(original) => Origin::Converted { path, line, original: original.to_string() },
            None => Origin::File { path, line },
        }
    }

    fn error<T>(
        &self,
        at: &Spanned<T>,
        key: Option<String>,
        message: impl std::fmt::Display,
    ) -> ConfigError {
        ConfigError::at(self.path, self.line(at.span().start), key, message)
    }
}

/// One pattern of `include` or `include_optional`, with its line for errors.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    pub text: String,
    pub line: usize,
}

/// What a file asks the loader to do after its own settings.
#[derive(Debug, Default)]
pub(super) struct Directives {
    pub include: Vec<Pattern>,
    pub include_optional: Vec<Pattern>,
    /// `load_default` when the file sets it, and its line.
    pub load_default: Option<(bool, usize)>,
}

/// `found a table`: for messages about a TOML value of the wrong type.
fn found(value: &DeValue<'_>) -> String {
    values::found_kind(value.type_str())
}

type Entry<'t, 'i> = (&'t Spanned<DeString<'i>>, &'t Spanned<DeValue<'i>>);

/// The entries of a table in the order they are written (the parsed map is sorted by key),
/// so milters keep their order of definition and errors come in reading order.
fn in_file_order<'t, 'i>(table: &'t DeTable<'i>) -> Vec<Entry<'t, 'i>> {
    let mut entries: Vec<Entry<'t, 'i>> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

/// Applies a parsed file: `remove_milters` first (so a file can remove a milter and define
/// it afresh), then its sections and milters. Returns what to load next.
pub(super) fn apply(
    config: &mut Config,
    source: &Source<'_>,
    document: &DeTable<'_>,
) -> Result<Directives, ConfigError> {
    let mut directives = Directives::default();
    let mut tables = Vec::new();
    let mut removals = None;
    for (key, value) in in_file_order(document) {
        let name: &str = key.get_ref();
        match name {
            schema::INCLUDE => directives.include = patterns(source, name, value)?,
            schema::INCLUDE_OPTIONAL => {
                directives.include_optional = patterns(source, name, value)?
            }
            schema::LOAD_DEFAULT => {
                let load = values::decode::<values::Flag>(&Input::Toml(value))
                    .map_err(|message| source.error(value, Some(name.into()), message))?;
                directives.load_default = Some((load, source.line(key.span().start)));
            }
            schema::REMOVE_MILTERS => removals = Some(value),
            _ if name == schema::MILTER_TABLE || schema::SECTIONS.contains(&name) => {
                tables.push((key, value))
            }
            _ => return Err(source.error(key, None, schema::unknown_key(None, name))),
        }
    }
    if let Some(removals) = removals {
        remove_milters(config, source, removals)?;
    }
    for (key, value) in tables {
        let name: &str = key.get_ref();
        let Some(table) = value.get_ref().as_table() else {
            let message = format!("expected a table ([{name}]), {}", found(value.get_ref()));
            return Err(source.error(value, Some(name.into()), message));
        };
        // The section's name is its field's name in `Config`.
        macro_rules! section {
            ($field:ident, $items:expr) => {
                apply_section(
                    &mut config.$field,
                    $items,
                    stringify!($field),
                    table,
                    source,
                    &mut config.origins,
                )?
            };
        }
        match name {
            "package" => section!(package, schema::PACKAGE),
            "security" => section!(security, schema::SECURITY),
            "manager" => section!(manager, schema::MANAGER),
            "controller" => section!(controller, schema::CONTROLLER),
            "log" => section!(log, schema::LOG),
            "s25r" => section!(s25r, schema::S25R),
            "remote_network" => section!(remote_network, schema::REMOTE_NETWORK),
            "trust" => section!(trust, schema::TRUST),
            "stress" => section!(stress, schema::STRESS),
            "dnsbl" => section!(dnsbl, schema::DNSBL),
            "restrict_accounts" => section!(restrict_accounts, schema::RESTRICT_ACCOUNTS),
            _ => apply_milters(config, table, source)?,
        }
    }
    Ok(directives)
}

fn patterns(
    source: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
) -> Result<Vec<Pattern>, ConfigError> {
    spanned_strings(source, key, value)?
        .into_iter()
        .map(|(text, line)| {
            if text.is_empty() {
                Err(ConfigError::at(source.path, line, Some(key.into()), "an empty file name"))
            } else {
                Ok(Pattern { text, line })
            }
        })
        .collect()
}

/// A string or an array of strings, each with its line. Read from the spanned tree, not
/// through serde: these directives are TOML-only and each entry's error names its own line.
fn spanned_strings(
    source: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
) -> Result<Vec<(String, usize)>, ConfigError> {
    let items: Vec<&Spanned<DeValue<'_>>> = match value.get_ref() {
        DeValue::Array(items) => items.iter().collect(),
        DeValue::String(_) => vec![value],
        other => {
            let message = format!("expected an array of strings, {}", found(other));
            return Err(source.error(value, Some(key.into()), message));
        }
    };
    items
        .into_iter()
        .map(|item| match item.get_ref().as_str() {
            Some(text) => Ok((text.to_string(), source.line(item.span().start))),
            None => {
                let message = format!("expected a string, {}", found(item.get_ref()));
                Err(source.error(item, Some(key.into()), message))
            }
        })
        .collect()
}

fn remove_milters(
    config: &mut Config,
    source: &Source<'_>,
    value: &Spanned<DeValue<'_>>,
) -> Result<(), ConfigError> {
    for (name, line) in spanned_strings(source, schema::REMOVE_MILTERS, value)? {
        config.remove_milter(&name).map_err(|message| {
            ConfigError::at(source.path, line, Some(schema::REMOVE_MILTERS.into()), message)
        })?;
    }
    Ok(())
}

fn apply_section<T>(
    target: &mut T,
    items: &[Item<T>],
    section: &'static str,
    table: &DeTable<'_>,
    source: &Source<'_>,
    origins: &mut Origins,
) -> Result<(), ConfigError> {
    for (key, value) in in_file_order(table) {
        let name: &str = key.get_ref();
        let Some(item) = items.iter().find(|item| item.key == name) else {
            let message = schema::unknown_key(Some(section), name);
            return Err(source.error(key, Some(format!("{section}.{name}")), message));
        };
        (item.set)(target, &Input::Toml(value))
            .map_err(|message| source.error(value, Some(format!("{section}.{name}")), message))?;
        origins.set(section, item.key, source.origin(key));
    }
    Ok(())
}

/// `[milter.NAME]` tables: a new name defines a milter at the end of the list, a known
/// one is changed only in the keys given.
fn apply_milters(
    config: &mut Config,
    table: &DeTable<'_>,
    source: &Source<'_>,
) -> Result<(), ConfigError> {
    for (key, value) in in_file_order(table) {
        let name: &str = key.get_ref();
        let label = format!("milter.{name}");
        let index = config
            .define_milter(name, source.origin(key))
            .map_err(|message| source.error(key, Some(label.clone()), message))?;
        let Some(items) = value.get_ref().as_table() else {
            let message = format!(
                "expected a table ([milter.{name}] with its items), {}",
                found(value.get_ref())
            );
            return Err(source.error(value, Some(label), message));
        };
        let milter = &mut config.milters[index];
        for (item_key, item_value) in in_file_order(items) {
            let item_name: &str = item_key.get_ref();
            let full_key = format!("milter.{name}.{item_name}");
            let Some(item) = schema::MILTER.iter().find(|item| item.key == item_name) else {
                let message = schema::unknown_key(Some(schema::MILTER_TABLE), item_name);
                return Err(source.error(item_key, Some(full_key), message));
            };
            (item.set)(milter, &Input::Toml(item_value))
                .map_err(|message| source.error(item_value, Some(full_key), message))?;
            config.origins.set_milter(name, item.key, source.origin(item_key));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_from_one() {
        let source = Source::new(Path::new("x"), "a\nbc\n\nd");
        assert_eq!(source.line(0), 1);
        assert_eq!(source.line(1), 1);
        assert_eq!(source.line(2), 2);
        assert_eq!(source.line(5), 3);
        assert_eq!(source.line(6), 4);
    }
}
