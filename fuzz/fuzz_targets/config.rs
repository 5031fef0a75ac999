//! The configuration loader: the input is the main TOML file and, after a line `%%`, a
//! Rhai script it may include as `conditions.rhai`. What loads has its conditions set up.
#![no_main]

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use milter_manager::conditions::{ConditionSet, SessionCount};
use milter_manager::config::Config;

struct NoSessions;

impl SessionCount for NoSessions {
    fn n_sessions(&self) -> usize {
        0
    }
}

/// One scratch directory for the whole run (its files are rewritten by every input), with
/// an empty machine root so nothing of the host is read.
fn scratch() -> &'static (PathBuf, PathBuf) {
    static DIR: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("fuzz-config-").tempdir().expect("a temp dir");
        let dir = dir.keep();
        let machine = dir.join("machine");
        std::fs::create_dir_all(&machine).expect("the machine root");
        (dir, machine)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (toml, rhai) = text.split_once("\n%%\n").unwrap_or((text, ""));
    let (dir, machine) = scratch();
    std::fs::write(dir.join("milter-manager.toml"), toml).expect("write the configuration");
    std::fs::write(dir.join("conditions.rhai"), rhai).expect("write the script");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(dir).expect("scratch"));
    let Ok(config) = Config::load_under(dir, machine, owner) else { return };
    let _ = ConditionSet::new(&config, Rc::new(NoSessions));
});
