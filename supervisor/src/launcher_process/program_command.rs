//! How the launcher runs a program: as its user (resolved before the fork), in a process
//! group of its own, with a clean environment.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::unistd::{self, Gid, Pid, Uid};

use crate::error::{Error, Result};
use crate::privileges;

/// The `PATH` a started milter gets (the usual system one; not the manager's own).
const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The command that runs `program` with `arguments` as `identity` (`None`: root), with
/// standard input from /dev/null, `/` as its working directory and only `PATH`, `LANG` and
/// the user's `HOME` in its environment.
pub(super) fn command_as(
    program: &str,
    arguments: &[String],
    identity: Option<ChildIdentity>,
) -> Command {
    let home = match &identity {
        Some(identity) => identity.home.clone(),
        None => root_home(),
    };
    let mut command = Command::new(program);
    // Nothing of root's environment or working directory leaks into the milter: only
    // what a login would give the user.
    command
        .args(arguments)
        .stdin(Stdio::null())
        .env_clear()
        .env("PATH", CHILD_PATH)
        .env("LANG", std::env::var_os("LANG").unwrap_or_else(|| "C".into()))
        .env("HOME", home)
        .current_dir("/");
    // SAFETY: the closure runs between fork and exec in a single-threaded process and
    // only makes system calls (no allocation: the group list was built before).
    unsafe {
        command.pre_exec(move || {
            // Its own group: a stop reaches the helpers a start script leaves behind.
            unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            if let Some(identity) = &identity {
                unistd::setgroups(&identity.groups)?;
                unistd::setgid(identity.gid)?;
                unistd::setuid(identity.uid)?;
            }
            Ok(())
        });
    }
    command
}

/// A program's user, resolved before the fork.
pub(super) struct ChildIdentity {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    home: PathBuf,
}

impl ChildIdentity {
    pub(super) fn resolve(user: &str) -> Result<Self> {
        let account = privileges::lookup_user(user)?;
        let name = CString::new(account.name.clone())
            .map_err(|_| Error::UnknownUser { name: user.to_string() })?;
        let groups =
            unistd::getgrouplist(&name, account.gid).map_err(|errno| Error::AccountLookup {
                what: format!("the groups of user \"{}\"", account.name),
                source: io::Error::from(errno),
            })?;
        Ok(Self { uid: account.uid, gid: account.gid, groups, home: account.dir })
    }
}

/// Root's home directory, for a milter without `user_name`.
fn root_home() -> PathBuf {
    match nix::unistd::User::from_uid(Uid::from_raw(0)) {
        Ok(Some(root)) => root.dir,
        _ => PathBuf::from("/"),
    }
}
