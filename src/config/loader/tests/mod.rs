//! Loading files: includes, globs, cycles and the order of everything; the platform
//! default and detection in `platform_default`, single values and errors in `values`.

use std::path::Path;

use crate::config::model::Milter;
use crate::config::testdir::TestDir;
use crate::config::{Config, ConfigError, Origin, MAIN_FILE};

mod platform_default;
mod values;

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
fn the_files_read_and_the_directories_globs_list_are_kept() {
    let dir = TestDir::new("listed");
    dir.write(
        MAIN_FILE,
        "include = [\"conf.d/*.toml\", \"none/*.toml\", \"plain.toml\"]\n\
         include_optional = [\"conf.d/*.toml\", \"local.d/*.rhai\"]\n",
    );
    dir.write("plain.toml", "");
    dir.write("conf.d/10-a.toml", "");
    std::fs::create_dir(dir.path().join("local.d")).unwrap();
    let config = load(&dir).unwrap();
    let names = |paths: &[std::path::PathBuf]| -> Vec<String> {
        paths.iter().map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string()).collect()
    };
    // A directory that does not exist is not listed; one listed twice is kept once.
    assert_eq!(names(&config.directories_listed), ["conf.d", "local.d"]);
    assert_eq!(
        names(&config.files_read),
        [MAIN_FILE, "conf.d/10-a.toml", "plain.toml", "conf.d/10-a.toml"]
    );
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
        error.message.contains(&format!("{} -> {} -> {}", a.display(), b.display(), a.display())),
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
