//! Reading configuration files: a file's own settings, then its `include` files, then the
//! platform default, then its `include_optional` files, recursively, refusing cycles.

use std::fs;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::document::{self, Directives, Pattern, Source};
use super::error::{ConfigError, IncludeError};
use super::origin::Origin;
use super::schema;
use super::script::ScriptLoader;
use super::Config;
use detected::define_detected;
use include::{listed_directory, resolve, Need};

mod detected;
mod include;
#[cfg(test)]
mod tests;

/// Loads files into one configuration.
pub(super) struct Loader {
    /// Where `defaults/<platform>.toml` is looked up.
    config_dir: PathBuf,
    /// The files being loaded, outermost first: canonical paths to find cycles, and the
    /// paths as written to report them.
    stack: Vec<(PathBuf, PathBuf)>,
    /// Runs `*.rhai` files; made at the first one.
    scripts: Option<ScriptLoader>,
    /// The last `load_default` a file set, in the order files are read, and where.
    load_default: Option<(bool, Origin)>,
    /// Whether the platform default and detection ran (once at most).
    default_loaded: bool,
    /// False when loading again after a later file turned `load_default` off.
    default_allowed: bool,
    /// Every file read, in order (for the check of who may write them).
    files: Vec<PathBuf>,
    /// The existing directories include globs listed, in order, each once.
    listed: Vec<PathBuf>,
}

impl Loader {
    pub(super) fn new(config_dir: &Path) -> Self {
        Self {
            config_dir: config_dir.to_path_buf(),
            stack: Vec::new(),
            scripts: None,
            load_default: None,
            default_loaded: false,
            default_allowed: true,
            files: Vec::new(),
            listed: Vec::new(),
        }
    }

    /// A loader that never loads the platform default: for loading again when a file read
    /// after the default turned `load_default` off.
    pub(super) fn without_default(config_dir: &Path) -> Self {
        Self { default_allowed: false, ..Self::new(config_dir) }
    }

    /// Where `load_default = false` was set last, when that is the final word.
    pub(super) fn default_turned_off(&self) -> Option<&Origin> {
        match &self.load_default {
            Some((false, origin)) => Some(origin),
            _ => None,
        }
    }

    /// Every configuration file read, in the order read, and every directory an include
    /// glob listed.
    pub(super) fn into_files(self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        (self.files, self.listed)
    }

    /// Whether the platform default (and detection) was loaded.
    pub(super) fn default_loaded(&self) -> bool {
        self.default_loaded
    }

    /// Loads the top file and everything it includes into `config`.
    pub(super) fn load(&mut self, config: &mut Config, path: &Path) -> Result<(), ConfigError> {
        let canonical = fs::canonicalize(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read the file: {e}")))?;
        self.load_canonical(config, path, canonical)
    }

    fn load_canonical(
        &mut self,
        config: &mut Config,
        path: &Path,
        canonical: PathBuf,
    ) -> Result<(), ConfigError> {
        self.files.push(path.to_path_buf());
        if path.extension().is_some_and(|e| e == "rhai") {
            return self.scripts.get_or_insert_with(ScriptLoader::new).load(config, path);
        }
        let text = fs::read_to_string(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read the file: {e}")))?;
        let source = Source::new(path, &text);
        let document = DeTable::parse(&text).map_err(|e| {
            let line = source.line(e.span().map_or(0, |span| span.start));
            ConfigError::at(path, line, None, format!("invalid TOML: {}", e.message()))
        })?;
        let directives = document::apply(config, &source, document.get_ref())?;
        if let Some((value, line)) = directives.load_default {
            self.load_default = Some((value, Origin::File { path: path.to_path_buf(), line }));
        }
        self.stack.push((canonical, path.to_path_buf()));
        let result = self.follow(config, &source, directives);
        self.stack.pop();
        result
    }

    /// Loads what a file asked for, in the documented order.
    fn follow(
        &mut self,
        config: &mut Config,
        source: &Source<'_>,
        directives: Directives,
    ) -> Result<(), ConfigError> {
        for pattern in &directives.include {
            self.include(config, source, schema::INCLUDE, pattern, Need::Required)?;
        }
        // The default is loaded where a file asks for it, unless a file read since (an
        // include) turned it off again; a file read later still can, see `Config::load`.
        let wanted = matches!(self.load_default, Some((true, _)));
        if let Some((true, line)) = directives.load_default {
            if wanted && self.default_allowed && !self.default_loaded {
                self.default_loaded = true;
                // The platform in effect now: set before this point, as the manual asks.
                config.settle_platform();
                let platform = &config.package.platform;
                let path = self.config_dir.join("defaults").join(format!("{platform}.toml"));
                if path.is_file() {
                    self.load_named(config, source, schema::LOAD_DEFAULT, line, &path)?;
                } else {
                    log::debug!("no platform default {}: nothing to load", path.display());
                }
                define_detected(config);
            }
        }
        for pattern in &directives.include_optional {
            self.include(config, source, schema::INCLUDE_OPTIONAL, pattern, Need::Optional)?;
        }
        Ok(())
    }

    fn include(
        &mut self,
        config: &mut Config,
        source: &Source<'_>,
        key: &str,
        pattern: &Pattern,
        need: Need,
    ) -> Result<(), ConfigError> {
        let error = |message: IncludeError| {
            ConfigError::at(source.path, pattern.line, Some(key.to_string()), message)
        };
        let base = source.path.parent().unwrap_or(Path::new(""));
        let found = resolve(base, &pattern.text).map_err(error)?;
        if let Some(directory) = listed_directory(base, &pattern.text) {
            if directory.is_dir() && !self.listed.contains(&directory) {
                self.listed.push(directory);
            }
        }
        for found in found {
            // An error other than "not found" (a directory that cannot be searched) is
            // reported: an optional file must not be skipped for lack of permission.
            let missing = !found.by_glob
                && !found.path.try_exists().map_err(|e| {
                    error(IncludeError::Unknown { path: found.path.clone(), error: e })
                })?;
            if missing {
                if need == Need::Optional {
                    continue;
                }
                return Err(error(IncludeError::Missing(found.path)));
            }
            self.load_named(config, source, key, pattern.line, &found.path)?;
        }
        Ok(())
    }

    /// Loads a file named at `line` of `source`, unless that would close a cycle.
    fn load_named(
        &mut self,
        config: &mut Config,
        source: &Source<'_>,
        key: &str,
        line: usize,
        path: &Path,
    ) -> Result<(), ConfigError> {
        let error = |message: String| ConfigError::at(source.path, line, Some(key.into()), message);
        let canonical = fs::canonicalize(path)
            .map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
        if let Some(start) = self.stack.iter().position(|(c, _)| *c == canonical) {
            let chain: Vec<String> = self.stack[start..]
                .iter()
                .map(|(_, shown)| shown.display().to_string())
                .chain([path.display().to_string()])
                .collect();
            return Err(error(format!("include cycle: {}", chain.join(" -> "))));
        }
        self.load_canonical(config, path, canonical)
    }
}
