//! Other processes, seen through /proc and signalled with kill(1); users and groups, as
//! getent(1) and id(1) give them.

use std::process::Command;

/// A field of /proc/PID/status ("State", "Uid", ...), or "" once the process is gone.
pub(crate) fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let prefix = format!("{field}:");
    status.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or("").trim().to_string()
}

/// Whether `pid` is a process that has not exited (a zombie has).
pub(crate) fn is_alive(pid: u32) -> bool {
    let state = status_field(pid, "State");
    !state.is_empty() && !state.starts_with('Z')
}

/// The real user id of `pid`; panics if it is gone.
pub(crate) fn real_uid(pid: u32) -> u32 {
    let ids = status_field(pid, "Uid");
    let real = ids.split_whitespace().next().unwrap_or_else(|| panic!("process {pid} is gone"));
    real.parse().expect("a numeric uid")
}

/// The children of `pid` (zombies included: they are still its children).
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect()
}

/// Every pid of /proc.
fn all_pids() -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").expect("read /proc");
    entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Live processes whose command line contains `needle` (a path of the test's own
/// directory, so that other tests' processes never match).
pub(crate) fn processes_with(needle: &str) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) && is_alive(*pid)
        })
        .collect()
}

/// Live processes whose real user id is `uid`.
pub(crate) fn live_processes_of(uid: &str) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|pid| {
            status_field(*pid, "Uid").split_whitespace().next() == Some(uid) && is_alive(*pid)
        })
        .collect()
}

/// Sends `signal` (a name such as "TERM") to `pid`; panics if kill fails (e.g. the
/// process is gone). For a process the test started, prefer `ChildGuard::signal`.
pub(crate) fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("run kill (package procps): {e}"));
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Whether the tests run as root.
pub(crate) fn running_as_root() -> bool {
    status_field(std::process::id(), "Uid").starts_with("0\t")
}

/// Fails the test (never skips it) unless it runs as root, as CI does: privilege paths
/// are tested for real.
pub(crate) fn require_root() {
    let ids = status_field(std::process::id(), "Uid");
    assert!(running_as_root(), "this test runs as root (CI does): Uid {ids}");
}

/// A passwd or group entry (`getent DATABASE KEY`, KEY a name or a numeric id), if any.
pub(crate) fn getent(database: &str, key: &str) -> Option<String> {
    let out = Command::new("getent").args([database, key]).output().expect("run getent");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Field `index` (0-based, ':'-separated) of a passwd or group entry.
pub(crate) fn entry_field(entry: &str, index: usize) -> String {
    entry.split(':').nth(index).unwrap_or_else(|| panic!("field {index} of {entry:?}")).into()
}

/// The numeric id of user `name`, as text.
pub(crate) fn user_id(name: &str) -> String {
    entry_field(&getent("passwd", name).unwrap_or_else(|| panic!("no user {name}")), 2)
}

/// The numeric id of group `name`, as text.
pub(crate) fn group_id(name: &str) -> String {
    entry_field(&getent("group", name).unwrap_or_else(|| panic!("no group {name}")), 2)
}
