//! Reading configuration files: a file's own settings, then its `include` files, then the
//! platform default, then its `include_optional` files, recursively, refusing cycles.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::document::{self, Directives, Pattern, Source};
use super::error::{ConfigError, IncludeError};
use super::glob;
use super::model::CommandOptions;
use super::origin::Origin;
use super::schema;
use super::script::ScriptLoader;
use super::Config;
use crate::detect::{self, PackageOptions};

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
}

/// Whether a file named by an include must exist.
#[derive(Clone, Copy, PartialEq)]
enum Need {
    Required,
    Optional,
}

/// A file an include pattern names.
struct Found {
    path: PathBuf,
    /// Matched by a glob rather than named.
    by_glob: bool,
}

impl Loader {
    pub fn new(config_dir: &Path) -> Loader {
        Loader {
            config_dir: config_dir.to_path_buf(),
            stack: Vec::new(),
            scripts: None,
            load_default: None,
            default_loaded: false,
            default_allowed: true,
        }
    }

    /// A loader that never loads the platform default: for loading again when a file read
    /// after the default turned `load_default` off.
    pub fn without_default(config_dir: &Path) -> Loader {
        Loader { default_allowed: false, ..Loader::new(config_dir) }
    }

    /// Where `load_default = false` was set last, when that is the final word.
    pub fn default_turned_off(&self) -> Option<&Origin> {
        match &self.load_default {
            Some((false, origin)) => Some(origin),
            _ => None,
        }
    }

    /// Whether the platform default (and detection) was loaded.
    pub fn default_loaded(&self) -> bool {
        self.default_loaded
    }

    /// Loads the top file and everything it includes into `config`.
    pub fn load(&mut self, config: &mut Config, path: &Path) -> Result<(), ConfigError> {
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
        for found in resolve(base, &pattern.text).map_err(error)? {
            if !found.by_glob && !found.path.exists() {
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

/// Defines the child milters the platform's detection finds installed, after the platform
/// default file. A milter defined already is left as it is; the later files may change or
/// remove what is defined here.
fn define_detected(config: &mut Config) {
    let options = config.package.options.as_deref().unwrap_or("");
    // `package.options` was checked when it was read.
    let options = PackageOptions::parse(options).unwrap_or_default();
    let root = config.system_root();
    let detection = detect::detect(&config.package.platform, &root, &options);
    config.notes.extend(detection.notes);
    for found in detection.milters {
        if config.milter(&found.name).is_some() {
            config.notes.push(format!(
                "{}: {} is defined already; the detected one is not used",
                found.source, found.name
            ));
            continue;
        }
        let origin = Origin::Detected { source: found.source.clone() };
        let index = match config.define_milter(&found.name, origin.clone()) {
            Ok(index) => index,
            Err(reason) => {
                config.notes.push(format!("{}: {reason}", found.source));
                continue;
            }
        };
        let milter = &mut config.milters[index];
        milter.description = found.description;
        milter.enabled = found.enabled;
        milter.connection_spec = Some(found.connection_spec);
        milter.command = found.command;
        milter.command_options = Some(CommandOptions::Arguments(found.command_options));
        milter.applicable_conditions = found.applicable_conditions;
        for key in [
            "description",
            "enabled",
            "connection_spec",
            "command",
            "command_options",
            "applicable_conditions",
        ] {
            config.origins.set_milter(&found.name, key, origin.clone());
        }
    }
}

/// The files a pattern names, relative to `base` unless absolute. Pattern characters are
/// allowed in the file name only; matches come sorted by name. A plain name is returned
/// whether or not it exists, for the caller to decide.
fn resolve(base: &Path, pattern: &str) -> Result<Vec<Found>, IncludeError> {
    let (directory, name) = match pattern.rsplit_once('/') {
        Some((directory, name)) => (if directory.is_empty() { "/" } else { directory }, name),
        None => ("", pattern),
    };
    if glob::is_pattern(directory) {
        return Err(IncludeError::PatternInDirectory(pattern.to_string()));
    }
    let directory = base.join(directory);
    if !glob::is_pattern(name) {
        return Ok(vec![Found { path: directory.join(name), by_glob: false }]);
    }
    glob::check(name)?;
    let entries = match fs::read_dir(&directory) {
        Ok(entries) => entries,
        // A glob in a directory that does not exist matches nothing, like an empty one.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(IncludeError::List { directory, error }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|error| IncludeError::List { directory: directory.clone(), error })?;
        // A name that is not UTF-8 cannot match a UTF-8 pattern.
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // Follows symbolic links, so linked files count and directories do not.
        if glob::matches(name, &file_name) && entry.path().is_file() {
            names.push(file_name);
        }
    }
    names.sort();
    Ok(names.into_iter().map(|n| Found { path: directory.join(n), by_glob: true }).collect())
}

#[cfg(test)]
mod tests {
    use super::super::model::Milter;
    use super::super::testdir::TestDir;
    use super::super::{CommandOptions, Origin, MAIN_FILE};
    use super::*;

    fn load(dir: &TestDir) -> Result<Config, ConfigError> {
        dir.load()
    }

    fn origin_line(config: &Config, key: &str) -> (String, usize) {
        match config.origin(key) {
            Origin::File { path, line } => {
                (path.strip_prefix(".").unwrap_or(&path).display().to_string(), line)
            }
            other => panic!("{key} comes from {other:?}"),
        }
    }

    fn file_name(config: &Config, key: &str) -> String {
        let (path, line) = origin_line(config, key);
        let name = Path::new(&path).file_name().unwrap().to_string_lossy().to_string();
        format!("{name}:{line}")
    }

    #[test]
    fn globs_load_in_name_order_and_skip_other_files() {
        let dir = TestDir::new("glob-order");
        dir.write(MAIN_FILE, "include = [\"conf.d/*.toml\"]\n[manager]\nn_workers = 1\n");
        dir.write("conf.d/20-b.toml", "[manager]\nn_workers = 20\n");
        dir.write("conf.d/10-a.toml", "[manager]\nn_workers = 10\nmax_connections = 10\n");
        dir.write("conf.d/README", "not toml at all [");
        dir.write("conf.d/.hidden.toml", "[manager]\nn_workers = 99\n");
        std::fs::create_dir_all(dir.path().join("conf.d/dir.toml")).unwrap();
        let config = load(&dir).unwrap();
        assert_eq!(config.manager.n_workers, 20);
        assert_eq!(config.manager.max_connections, 10);
        assert_eq!(file_name(&config, "manager.n_workers"), "20-b.toml:2");
        assert_eq!(file_name(&config, "manager.max_connections"), "10-a.toml:3");
    }

    #[test]
    fn globs_matching_nothing_and_missing_optional_files_are_fine() {
        let dir = TestDir::new("nothing");
        dir.write(
            MAIN_FILE,
            "include = [\"conf.d/*.toml\", \"none/*.toml\"]\nload_default = true\n\
             include_optional = [\"milter-manager.local.toml\", \"local.d/*.toml\"]\n",
        );
        assert_eq!(load(&dir).unwrap(), Config::default());
    }

    #[test]
    fn a_missing_plain_include_is_an_error() {
        let dir = TestDir::new("missing");
        let main = dir.write(MAIN_FILE, "# first\ninclude = [\n  \"a.toml\",\n  \"b.toml\",\n]\n");
        dir.write("a.toml", "");
        let error = load(&dir).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}:4: include: {} does not exist",
                main.display(),
                dir.path().join("b.toml").display()
            )
        );
    }

    #[test]
    fn patterns_only_in_the_file_name() {
        let dir = TestDir::new("pattern-dir");
        let main = dir.write(MAIN_FILE, "include = [\"*/x.toml\"]\n");
        let error = load(&dir).unwrap_err();
        assert!(error.to_string().starts_with(&format!("{}:1: include: ", main.display())));
        assert!(error.message.contains("file name only"), "{error}");
        dir.write(MAIN_FILE, "include = [\"conf.d/[ab.toml\"]\n");
        assert!(load(&dir).unwrap_err().message.contains("without ']'"));
    }

    #[test]
    fn absolute_includes() {
        let dir = TestDir::new("absolute");
        let other = TestDir::new("absolute-other");
        let included = other.write("x.toml", "[manager]\ndaemon = true\n");
        dir.write(MAIN_FILE, &format!("include = [{:?}]\n", included.display().to_string()));
        assert!(load(&dir).unwrap().manager.daemon);
        dir.write(MAIN_FILE, &format!("include = [\"{}/*.toml\"]\n", other.path().display()));
        assert!(load(&dir).unwrap().manager.daemon);
    }

    #[test]
    fn the_order_is_own_settings_includes_default_then_optional() {
        let dir = TestDir::new("order");
        dir.write(
            MAIN_FILE,
            "include = [\"conf.d/*.toml\"]\nload_default = true\n\
             include_optional = [\"milter-manager.local.toml\"]\n\
             [manager]\nn_workers = 1\nmax_connections = 1\nchunk_size = 1\npacket_buffer_size = 1\n",
        );
        // The platform chosen by an include is the one whose default is loaded.
        dir.write(
            "conf.d/platform.toml",
            "[package]\nplatform = \"freebsd\"\n[manager]\nn_workers = 2\nmax_connections = 2\nchunk_size = 2\n",
        );
        dir.write("defaults/debian.toml", "[manager]\nn_workers = 99\n");
        dir.write("defaults/freebsd.toml", "[manager]\nn_workers = 3\nmax_connections = 3\n");
        dir.write(
            "milter-manager.local.toml",
            "[manager]\nn_workers = 4\n[package]\nplatform = \"redhat\"\n",
        );
        let config = load(&dir).unwrap();
        assert_eq!(config.manager.packet_buffer_size, 1);
        assert_eq!(config.manager.chunk_size, 2);
        assert_eq!(config.manager.max_connections, 3);
        assert_eq!(config.manager.n_workers, 4);
        assert_eq!(file_name(&config, "manager.packet_buffer_size"), "milter-manager.toml:8");
        assert_eq!(file_name(&config, "manager.chunk_size"), "platform.toml:6");
        assert_eq!(file_name(&config, "manager.max_connections"), "freebsd.toml:3");
        assert_eq!(file_name(&config, "manager.n_workers"), "milter-manager.local.toml:2");
        // Set after the default was loaded: it changes the value, not what was loaded.
        assert_eq!(config.package.platform, "redhat");
    }

    #[test]
    fn milters_merge_across_files_in_definition_order() {
        let dir = TestDir::new("merge");
        dir.write(
            MAIN_FILE,
            "include_optional = [\"milter-manager.local.toml\"]\n\
             [milter.b]\nconnection_spec = \"inet:2\"\ndescription = \"bee\"\n\
             [milter.\"a-milter\"]\nconnection_spec = \"inet:1\"\n",
        );
        dir.write(
            "milter-manager.local.toml",
            "[milter.c]\nconnection_spec = \"inet:3\"\n[milter.b]\nenabled = false\n",
        );
        let config = load(&dir).unwrap();
        let names: Vec<&str> = config.milters.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["b", "a-milter", "c"]);
        let b = config.milter("b").unwrap();
        assert!(!b.enabled);
        assert_eq!(b.description.as_deref(), Some("bee"));
        assert_eq!(b.connection_spec.as_ref().unwrap().to_string(), "inet:2");
        assert_eq!(file_name(&config, "milter.b.description"), "milter-manager.toml:4");
        assert_eq!(file_name(&config, "milter.b.enabled"), "milter-manager.local.toml:4");
        assert_eq!(config.origin("milter.b.fallback_status"), Origin::Default);
    }

    #[test]
    fn remove_milters_forgets_and_a_redefinition_goes_last() {
        let dir = TestDir::new("remove");
        dir.write(
            MAIN_FILE,
            "include_optional = [\"milter-manager.local.toml\"]\n\
             [milter.a]\nconnection_spec = \"inet:1\"\ndescription = \"old\"\n\
             [milter.b]\nconnection_spec = \"inet:2\"\n[milter.c]\nconnection_spec = \"inet:3\"\n",
        );
        dir.write(
            "milter-manager.local.toml",
            "remove_milters = [\"a\", \"c\"]\n[milter.a]\nconnection_spec = \"inet:10\"\n",
        );
        let config = load(&dir).unwrap();
        let names: Vec<&str> = config.milters.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        let mut expected = Milter::new("a");
        expected.connection_spec = Some(crate::spec::Spec::parse("inet:10").unwrap());
        assert_eq!(config.milter("a"), Some(&expected));
        assert_eq!(config.origin("milter.a.description"), Origin::Default);
        assert_eq!(config.origin("milter.c.connection_spec"), Origin::Default);

        let local = dir.write("milter-manager.local.toml", "remove_milters = [\n\"b\",\n\"x\"]\n");
        let error = load(&dir).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}:3: remove_milters: no milter named \"x\" to remove (defined so far: a, c)",
                local.display()
            )
        );
    }

    #[test]
    fn include_cycles_are_errors() {
        let dir = TestDir::new("cycle");
        dir.write(MAIN_FILE, "include = [\"a.toml\"]\n");
        let a = dir.write("a.toml", "\ninclude = [\"b.toml\"]\n");
        dir.write("b.toml", "include_optional = [\"*.toml\"]\n");
        let error = load(&dir).unwrap_err();
        // b.toml's glob matches a.toml first, which is being loaded.
        let b = dir.path().join("b.toml");
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}:1: include_optional: include cycle: ", b.display())),
            "{error}"
        );
        assert!(
            error.message.contains(&format!(
                "{} -> {} -> {}",
                a.display(),
                b.display(),
                a.display()
            )),
            "{error}"
        );

        dir.write(MAIN_FILE, "include = [\"milter-manager.toml\"]\n");
        assert!(load(&dir).unwrap_err().message.contains("include cycle"));
        dir.write(MAIN_FILE, "load_default = true\n");
        dir.write("defaults/debian.toml", "include = [\"../milter-manager.toml\"]\n");
        assert!(load(&dir).unwrap_err().message.contains("include cycle"));
    }

    #[test]
    fn the_same_file_twice_is_not_a_cycle() {
        let dir = TestDir::new("twice");
        dir.write(MAIN_FILE, "include = [\"a.toml\", \"a.toml\"]\n");
        dir.write("a.toml", "[manager]\nn_workers = 1\n");
        assert_eq!(load(&dir).unwrap().manager.n_workers, 1);
    }

    #[test]
    fn load_default_defines_the_detected_milters_and_later_files_change_them() {
        let dir = TestDir::new("detected");
        let root = dir.path().join("root");
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "lib/systemd/system/opendkim.service",
            "[Unit]\nDescription=OpenDKIM Milter\n[Service]\n\
             ExecStart=/usr/sbin/opendkim -x /etc/opendkim.conf\n",
        );
        write("etc/opendkim.conf", "Socket inet:8891@localhost\n");
        write("etc/systemd/system/multi-user.target.wants/opendkim.service", "");
        write(
            "lib/systemd/system/spamass-milter.service",
            "[Service]\nExecStart=/usr/sbin/spamass-milter\n",
        );
        dir.write(
            MAIN_FILE,
            &format!(
                "load_default = true\ninclude_optional = [\"local.toml\"]\n\
                 [package]\nplatform = \"debian\"\noptions = \"root={}\"\n",
                root.display()
            ),
        );
        dir.write("local.toml", "[milter.opendkim]\nfallback_status = \"temporary-failure\"\n");
        let config = load(&dir).unwrap();
        let names: Vec<&str> = config.milters.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["opendkim"], "notes: {:?}", config.notes);
        let milter = &config.milters[0];
        assert_eq!(milter.connection_spec.as_ref().unwrap().to_string(), "inet:8891@localhost");
        assert!(milter.enabled);
        assert_eq!(milter.fallback_status, crate::status::FallbackStatus::TemporaryFailure);
        assert_eq!(
            config.origin("milter.opendkim.connection_spec"),
            Origin::Detected { source: "/lib/systemd/system/opendkim.service".into() }
        );
        assert_eq!(file_name(&config, "milter.opendkim.fallback_status"), "local.toml:2");
        assert!(
            config.notes.iter().any(|n| n.contains("spamass-milter")),
            "spamass-milter without a socket is explained: {:?}",
            config.notes
        );
    }

    /// A machine (under the test directory's `machine/`) with opendkim and spamass-milter
    /// installed and enabled, and the shipped layout of files reading it.
    fn machine_with_two_milters(dir: &TestDir) {
        let root = dir.machine();
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "lib/systemd/system/opendkim.service",
            "[Service]\nExecStart=/usr/sbin/opendkim -x /etc/opendkim.conf\n",
        );
        write("etc/opendkim.conf", "Socket inet:8891@localhost\n");
        write(
            "lib/systemd/system/spamass-milter.service",
            "[Service]\nExecStart=/usr/sbin/spamass-milter -p /run/spamass.sock\n",
        );
        dir.write(
            MAIN_FILE,
            "include = [\"conf.d/*.toml\"]\nload_default = true\n\
             include_optional = [\"milter-manager.local.toml\"]\n",
        );
        dir.write("defaults/debian.toml", "[manager]\nmax_connections = 7\n");
    }

    fn milter_names(config: &Config) -> Vec<&str> {
        config.milters.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn load_default_false_in_a_later_file_wins() {
        let dir = TestDir::new("load-default-off");
        machine_with_two_milters(&dir);
        let config = load(&dir).unwrap();
        assert_eq!(milter_names(&config), ["opendkim", "spamass-milter"]);
        assert_eq!(config.manager.max_connections, 7);
        assert_eq!(
            config.milter("spamass-milter").unwrap().applicable_conditions,
            ["Remote Network", "Unauthenticated", "No Stress"]
        );

        // conf.d is read before the default's place in milter-manager.toml.
        let conf_d = dir.write("conf.d/10-no-default.toml", "\nload_default = false\n");
        let config = load(&dir).unwrap();
        assert_eq!(milter_names(&config), Vec::<&str>::new());
        assert_eq!(config.manager.max_connections, 0, "the default file is not read either");
        let note = format!(
            "{}:2: load_default = false: no platform default, no detected milter",
            conf_d.display()
        );
        assert!(config.notes.contains(&note), "{:?}", config.notes);
        std::fs::remove_file(conf_d).unwrap();

        // milter-manager.local.toml is read after it: loading starts again without it,
        // and the local file's own settings still count.
        dir.write(
            "milter-manager.local.toml",
            "load_default = false\n[milter.mine]\nconnection_spec = \"inet:1\"\n",
        );
        let config = load(&dir).unwrap();
        assert_eq!(milter_names(&config), ["mine"]);
        assert_eq!(config.manager.max_connections, 0);
        assert!(config.notes.iter().any(|n| n.contains("load_default = false")));
    }

    #[test]
    fn later_files_remove_and_change_the_detected_milters() {
        let dir = TestDir::new("detected-later");
        machine_with_two_milters(&dir);
        dir.write(
            "milter-manager.local.toml",
            "remove_milters = [\"opendkim\"]\n\
             [milter.spamass-milter]\napplicable_conditions = [\"Authentication\"]\n",
        );
        let config = load(&dir).unwrap();
        assert_eq!(milter_names(&config), ["spamass-milter"]);
        let spamass = config.milter("spamass-milter").unwrap();
        assert_eq!(spamass.applicable_conditions, ["Authentication"]);
        assert_eq!(
            file_name(&config, "milter.spamass-milter.applicable_conditions"),
            "milter-manager.local.toml:3"
        );
        assert_eq!(
            config.origin("milter.spamass-milter.connection_spec"),
            Origin::Detected { source: "/lib/systemd/system/spamass-milter.service".into() }
        );
    }

    #[test]
    fn the_platform_is_detected_when_no_file_sets_it() {
        let dir = TestDir::new("platform");
        machine_with_two_milters(&dir);
        dir.write("defaults/redhat.toml", "[manager]\nmax_connections = 9\n");
        let root = dir.machine();
        std::fs::write(root.join("etc/os-release"), "ID=\"rocky\"\nID_LIKE=\"rhel fedora\"\n")
            .unwrap();
        let config = load(&dir).unwrap();
        assert_eq!(config.package.platform, "redhat");
        assert_eq!(config.manager.max_connections, 9, "defaults/redhat.toml is read");
        assert_eq!(milter_names(&config), ["spamass-milter", "opendkim"], "Red Hat's order");
        let source = "/etc/os-release: ID=rocky".to_string();
        assert_eq!(config.origin("package.platform"), Origin::Detected { source });
        assert!(config
            .show()
            .contains("# detected: /etc/os-release: ID=rocky\nplatform = \"redhat\"\n"));

        // A file's platform wins over the machine's.
        dir.write("conf.d/platform.toml", "[package]\nplatform = \"debian\"\n");
        let config = load(&dir).unwrap();
        assert_eq!(config.package.platform, "debian");
        assert_eq!(config.manager.max_connections, 7);
    }

    #[test]
    fn a_detected_condition_that_does_not_exist_is_left_out_with_a_note() {
        let dir = TestDir::new("detected-unknown-condition");
        machine_with_two_milters(&dir);
        let mut config = load(&dir).unwrap();
        let spamass = config.milters.iter_mut().find(|m| m.name == "spamass-milter").unwrap();
        spamass.applicable_conditions.push("Gone Away".into());
        config.settle_detected_conditions();
        let spamass = config.milter("spamass-milter").unwrap();
        assert_eq!(
            spamass.applicable_conditions,
            ["Remote Network", "Unauthenticated", "No Stress"]
        );
        let note = "/lib/systemd/system/spamass-milter.service: spamass-milter: no applicable \
                    condition \"Gone Away\"; the milter is kept without it";
        assert!(config.notes.iter().any(|n| n == note), "{:?}", config.notes);

        // The same name in a file of the admin's is an error naming the file and line.
        dir.write(
            "milter-manager.local.toml",
            "[milter.spamass-milter]\nenabled = true\napplicable_conditions = [\"Gone Away\"]\n",
        );
        let config = load(&dir).unwrap();
        let sessions = std::rc::Rc::new(NoSessions);
        let error = crate::conditions::ConditionSet::new(&config, sessions).err().unwrap();
        let local = dir.path().join("milter-manager.local.toml");
        assert!(
            error.to_string().starts_with(&format!(
                "{}:3: milter.spamass-milter.applicable_conditions: milter \"spamass-milter\": \
                 unknown applicable condition \"Gone Away\"",
                local.display()
            )),
            "{error}"
        );
    }

    struct NoSessions;

    impl crate::conditions::SessionCount for NoSessions {
        fn n_sessions(&self) -> usize {
            0
        }
    }

    #[test]
    fn rhai_files_load_by_name_and_by_glob_in_order() {
        let dir = TestDir::new("rhai");
        dir.write(MAIN_FILE, "include = [\"conditions/*\"]\n[manager]\nn_workers = 2\n");
        dir.write(
            "conditions/a.rhai",
            "define_milter(\"a\", |m| { m.connection_spec = \"inet:1@[127.0.0.1]\"; });",
        );
        dir.write("conditions/b.toml", "[milter.a]\nenabled = false\n");
        dir.write("conditions/c.rhai", "if defined_milters() == [\"a\"] { remove_milter(\"a\"); }");
        let config = load(&dir).unwrap();
        assert!(config.milters.is_empty(), "{:?}", config.milters);
        dir.write("conditions/c.rhai", "let m = define_milter(\"b\");\nm.enabled = false;\n");
        let config = load(&dir).unwrap();
        let names: Vec<&str> = config.milters.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(!config.milters[0].enabled);
        assert_eq!(file_name(&config, "milter.b.enabled"), "c.rhai:2");
    }

    #[test]
    fn a_missing_main_file_names_it() {
        let dir = TestDir::new("no-main");
        let error = load(&dir).unwrap_err();
        let main = dir.path().join(MAIN_FILE);
        assert!(error
            .to_string()
            .starts_with(&format!("{}: cannot read the file: ", main.display())));
    }

    #[test]
    fn modes_and_command_options_in_both_forms() {
        let dir = TestDir::new("forms");
        dir.write(
            MAIN_FILE,
            "[manager]\nunix_socket_mode = 0o600\n[controller]\nunix_socket_mode = \"0640\"\n\
             [milter.a]\nconnection_spec = \"inet:1\"\ncommand_options = \"start --now\"\n\
             [milter.b]\nconnection_spec = \"inet:2\"\ncommand_options = [\"start\", \"--now\"]\n",
        );
        let config = load(&dir).unwrap();
        assert_eq!(config.manager.unix_socket_mode, 0o600);
        assert_eq!(config.controller.unix_socket_mode, 0o640);
        assert_eq!(
            config.milter("a").unwrap().command_options,
            Some(CommandOptions::Line("start --now".into()))
        );
        assert_eq!(
            config.milter("b").unwrap().command_options,
            Some(CommandOptions::Arguments(vec!["start".into(), "--now".into()]))
        );
    }

    #[test]
    fn an_empty_string_unsets_an_optional_item() {
        let dir = TestDir::new("unset");
        dir.write(
            MAIN_FILE,
            "include = [\"b.toml\"]\n[manager]\npid_file = \"/run/a.pid\"\n[controller]\nconnection_spec = \"inet:1\"\n",
        );
        dir.write("b.toml", "[manager]\npid_file = \"\"\n[controller]\nconnection_spec = \"\"\n");
        let config = load(&dir).unwrap();
        assert_eq!(config.manager.pid_file, None);
        assert_eq!(config.controller.connection_spec, None);
    }

    /// Each error names the file, the line and the key.
    #[test]
    fn errors_name_the_file_line_and_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[milter.opendkim]\nenabled = true\nconnection_spec = \"inet:x\"\n",
                "3: milter.opendkim.connection_spec: ",
                "invalid connection spec \"inet:x\": port \"x\" is not a number",
            ),
            (
                "[manager]\nfallback_status = \"continue\"\n",
                "2: manager.fallback_status: ",
                "unknown status \"continue\"",
            ),
            (
                "[milter.a]\nconnection_spec = \"inet:1\"\nfallback_status = \"pass\"\n",
                "3: milter.a.fallback_status: ",
                "unknown status \"pass\"",
            ),
            ("[manager]\n\nn_worker = 3\n", "3: manager.n_worker: ", "did you mean \"n_workers\"?"),
            (
                "[milter.a]\nconection_spec = \"inet:1\"\n",
                "2: milter.a.conection_spec: ",
                "did you mean \"connection_spec\"?",
            ),
            ("[managr]\n", "1: ", "unknown table or key \"managr\"; did you mean \"manager\"?"),
            ("[manager]\nn_workers = 1001\n", "2: manager.n_workers: ", "from 0 to 1000"),
            ("[manager]\nchunk_size = 0\n", "2: manager.chunk_size: ", "from 1 to 65535"),
            ("[manager]\nchunk_size = 65536\n", "2: manager.chunk_size: ", "from 1 to 65535"),
            (
                "[manager]\nunix_socket_mode = 0o10000\n",
                "2: manager.unix_socket_mode: ",
                "at most 0o7777",
            ),
            (
                "[manager]\nunix_socket_mode = 660\n",
                "2: manager.unix_socket_mode: ",
                "not an octal number",
            ),
            (
                "[manager]\nevent_loop_backend = \"epoll\"\n",
                "2: manager.event_loop_backend: ",
                "\"glib\", \"libev\"",
            ),
            (
                "[manager]\ndaemon = \"yes\"\n",
                "2: manager.daemon: ",
                "expected true or false, found a string",
            ),
            (
                "[package]\nplatform = \"gentoo\"\n",
                "2: package.platform: ",
                "unknown value \"gentoo\"",
            ),
            ("[log]\nlevel = \"loud\"\n", "2: log.level: ", "unknown log level \"loud\""),
            (
                "[dnsbl]\nservices = [\"bl.example=yes\"]\n",
                "2: dnsbl.services: ",
                "invalid expected DNSBL answer \"yes\" for bl.example",
            ),
            (
                "[dnsbl]\n\nservices = [\"bl example\"]\n",
                "3: dnsbl.services: ",
                "invalid DNSBL zone \"bl example\"",
            ),
            (
                "[dnsbl]\nname_servers = [\"ns.example\"]\n",
                "2: dnsbl.name_servers: ",
                "invalid name server \"ns.example\"",
            ),
            ("[dnsbl]\ntimeout = 61\n", "2: dnsbl.timeout: ", "at most 60"),
            ("[dnsbl]\ntimeout = 0\n", "2: dnsbl.timeout: ", "above 0"),
            (
                "[log]\nsyslog_facility = \"email\"\n",
                "2: log.syslog_facility: ",
                "unknown value \"email\"",
            ),
            ("[manager\nn_workers = 1\n", "1: ", "invalid TOML: "),
            ("[manager]\nn_workers = 1\nn_workers = 2\n", "3: ", "invalid TOML: "),
            (
                "[milter.x]\ndescription = \"no socket\"\n",
                "1: milter.x.connection_spec: ",
                "milter \"x\" is enabled but has no connection_spec",
            ),
            (
                "[milter.\"\"]\nconnection_spec = \"inet:1\"\n",
                "1: milter.: ",
                "a milter needs a name",
            ),
            (
                "[milter.a]\nconnection_spec = \"inet:1\"\nreading_timeout = 0\n",
                "3: milter.a.reading_timeout: ",
                "above 0",
            ),
            (
                "[milter.a]\nconnection_spec = \"inet:1\"\nwriting_timeout = nan\n",
                "3: milter.a.writing_timeout: ",
                "above 0",
            ),
            (
                "[milter.a]\nconnection_spec = \"inet:1\"\napplicable_conditions = [\"\"]\n",
                "3: milter.a.applicable_conditions: ",
                "empty",
            ),
            ("milter = 3\n", "1: milter: ", "expected a table"),
            ("[milter]\na = 3\n", "2: milter.a: ", "expected a table"),
            ("[controller]\nn_workers = 2\n", "2: controller.n_workers: ", "belongs in [manager]"),
            ("load_default = \"yes\"\n", "1: load_default: ", "expected true or false"),
            ("include = [1]\n", "1: include: ", "expected a string, found an integer"),
        ];
        for (text, location, message) in cases {
            let dir = TestDir::new("errors");
            let path = dir.write(MAIN_FILE, text);
            let error = load(&dir).expect_err(text).to_string();
            let prefix = format!("{}:{location}", path.display());
            assert!(
                error.starts_with(&prefix),
                "{text:?}: {error:?} does not start with {prefix:?}"
            );
            assert!(error.contains(message), "{text:?}: {error:?} does not say {message:?}");
            assert!(!error.contains('\n'), "{error:?}");
        }
    }

    #[test]
    fn a_disabled_milter_needs_no_socket() {
        let dir = TestDir::new("disabled");
        dir.write(MAIN_FILE, "[milter.x]\nenabled = false\n");
        assert!(!load(&dir).unwrap().milter("x").unwrap().enabled);
    }
}
