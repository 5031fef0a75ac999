//! The host is shared by every test of this one binary, which runs them on parallel
//! threads (before, each test file was its own binary and the files ran one after
//! another). A test that changes the host for everyone takes [`changing_host`]; a test
//! whose outcome depends on that state takes [`depending_on_host`], so the two never
//! overlap. Tests that only use their own temp dirs, loopback ports and child processes
//! take neither.
//!
//! What changes the host: `debian_package` installs and purges the package, which creates
//! and removes the user and group `milter-manager`, /etc/milter-manager, /run/milter-manager,
//! /var/log/milter-manager.log, and replaces /usr/sbin/policy-rc.d for the duration.
//! What depends on it: milter-manager started as root without a user serves as
//! `milter-manager` when that user exists and as `nobody` otherwise, and the package test
//! counts the processes of user `milter-manager`.
//!
//! The lock is also taken across processes (a file lock), for other runs of the suite on
//! the same machine.
//!
//! Nothing here changes process-wide state (current directory, environment, umask, signal
//! dispositions): a test that needs it must not, and gives a child process its own instead.

use std::fs::{File, OpenOptions};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use nix::fcntl::{Flock, FlockArg};

static HOST: RwLock<()> = RwLock::new(());

/// The same lock across processes: other runs of this test suite on the machine (another
/// checkout, another builder) install the same package and count the same user. Root
/// may write it; without root the tests that need these locks fail for that reason.
const HOST_LOCK_FILE: &str = "/run/lock/milter-manager-tests-host.lock";

/// What [`changing_host`] and [`depending_on_host`] hold until dropped.
pub(crate) struct HostLock<G> {
    _in_process: G,
    _across_processes: Option<Flock<File>>,
}

fn lock_file(exclusive: bool) -> Option<Flock<File>> {
    let file = OpenOptions::new().create(true).append(true).open(HOST_LOCK_FILE).ok()?;
    let how = if exclusive { FlockArg::LockExclusive } else { FlockArg::LockShared };
    match Flock::lock(file, how) {
        Ok(lock) => Some(lock),
        Err((_, e)) => panic!("lock {HOST_LOCK_FILE}: {e}"),
    }
}

/// Held for the whole of a test that changes the host (see the module's documentation).
/// A test that failed while holding it leaves the host as its drop guards restore it, so
/// a poisoned lock is taken over rather than failing every later test.
pub(crate) fn changing_host() -> HostLock<RwLockWriteGuard<'static, ()>> {
    let in_process = HOST.write().unwrap_or_else(PoisonError::into_inner);
    HostLock { _in_process: in_process, _across_processes: lock_file(true) }
}

/// Held for the whole of a test whose outcome depends on what [`changing_host`] tests
/// change; any number of them run together.
pub(crate) fn depending_on_host() -> HostLock<RwLockReadGuard<'static, ()>> {
    let in_process = HOST.read().unwrap_or_else(PoisonError::into_inner);
    HostLock { _in_process: in_process, _across_processes: lock_file(false) }
}
