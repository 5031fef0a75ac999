//! `package.options`: hints for the detection, such as pkgsrc's directories.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// `package.options`: `name=value,name=value`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageOptions {
    /// pkgsrc: the configuration directory, `/usr/pkg/etc` by default.
    pub prefix: Option<String>,
    /// pkgsrc: the rc.d directory, `<prefix>/rc.d` by default.
    pub rcddir: Option<String>,
    /// Any other option, kept as written.
    pub other: BTreeMap<String, String>,
}

/// Malformed `package.options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageOptionsError {
    pub text: String,
    pub reason: String,
}

impl fmt::Display for PackageOptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid package.options {:?}: {}", self.text, self.reason)
    }
}

impl std::error::Error for PackageOptionsError {}

impl PackageOptions {
    /// Parses `name=value,name=value`; spaces around names and values are ignored; an
    /// empty text gives no options. Each item needs a name, `=` and a value, once;
    /// `prefix` and `rcddir` must be absolute paths.
    pub fn parse(text: &str) -> Result<Self, PackageOptionsError> {
        let error = |reason: String| PackageOptionsError { text: text.to_string(), reason };
        let mut options = Self::default();
        if text.trim().is_empty() {
            return Ok(options);
        }
        let mut seen = Vec::new();
        for item in text.split(',') {
            let item = item.trim();
            let (name, value) =
                item.split_once('=').ok_or_else(|| error(format!("{item:?} is not name=value")))?;
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(error(format!("{item:?} does not start with an option name")));
            }
            if value.is_empty() {
                return Err(error(format!("{name} has no value")));
            }
            if seen.contains(&name) {
                return Err(error(format!("{name} is given twice")));
            }
            seen.push(name);
            match name {
                "prefix" | "rcddir" if !value.starts_with('/') => {
                    return Err(error(format!("{name} must be an absolute path, not {value:?}")));
                }
                "prefix" => options.prefix = Some(value.to_string()),
                "rcddir" => options.rcddir = Some(value.to_string()),
                _ => {
                    options.other.insert(name.to_string(), value.to_string());
                }
            }
        }
        Ok(options)
    }
}

impl FromStr for PackageOptions {
    type Err = PackageOptionsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}
