//! Where each configuration value came from, for `--show-config` and for errors that are
//! found after loading (an unknown condition, a milter without a socket).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Where a value was set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// Never set: the built-in default.
    #[default]
    Default,
    /// Set at this line of this file.
    File { path: PathBuf, line: usize },
    /// Set at this line of a file milter-manager-migrate-config wrote, from `original`
    /// (FILE:LINE of the original milter manager's Ruby configuration), as the comment
    /// above the line says.
    Converted { path: PathBuf, line: usize, original: String },
    /// Set by a command-line option.
    CommandLine,
    /// Found by the platform's milter detection (`load_default`), in this file.
    Detected { source: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
            Self::Converted { path, line, original } => {
                write!(f, "{}:{line}, converted from {original}", path.display())
            }
            Self::CommandLine => f.write_str("command line"),
            Self::Detected { source } => write!(f, "detected: {source}"),
        }
    }
}

/// The origins of one child milter's items, and where it was defined first.
#[derive(Debug, Clone, Default)]
pub(super) struct MilterOrigins {
    pub defined: Origin,
    pub items: BTreeMap<&'static str, Origin>,
}

/// The origins of every value that is not at its default.
///
/// Milters are kept apart from the sections so that a milter name containing dots cannot
/// be confused with an item key.
#[derive(Debug, Clone, Default)]
pub(super) struct Origins {
    /// Keyed by `section.key`.
    sections: BTreeMap<String, Origin>,
    milters: BTreeMap<String, MilterOrigins>,
}

impl Origins {
    pub(super) fn set(&mut self, section: &'static str, key: &'static str, origin: Origin) {
        self.sections.insert(format!("{section}.{key}"), origin);
    }

    pub(super) fn get(&self, section: &str, key: &str) -> Origin {
        self.sections.get(&format!("{section}.{key}")).cloned().unwrap_or_default()
    }

    pub(super) fn milter_defined(&mut self, name: &str, origin: Origin) {
        self.milters
            .insert(name.to_string(), MilterOrigins { defined: origin, ..Default::default() });
    }

    pub(super) fn set_milter(&mut self, name: &str, key: &'static str, origin: Origin) {
        self.milters.entry(name.to_string()).or_default().items.insert(key, origin);
    }

    pub(super) fn milter(&self, name: &str) -> Option<&MilterOrigins> {
        self.milters.get(name)
    }

    pub(super) fn milter_item(&self, name: &str, key: &str) -> Origin {
        self.milters.get(name).and_then(|m| m.items.get(key)).cloned().unwrap_or_default()
    }

    pub(super) fn remove_milter(&mut self, name: &str) {
        self.milters.remove(name);
    }

    /// The origin of `section.key` or `milter.NAME.key`.
    pub(super) fn lookup(&self, key: &str) -> Origin {
        if let Some(rest) = key.strip_prefix("milter.") {
            // The item key never contains a dot, the milter name may.
            return match rest.rsplit_once('.') {
                Some((name, item)) => self.milter_item(name, item),
                None => Origin::Default,
            };
        }
        self.sections.get(key).cloned().unwrap_or_default()
    }
}
