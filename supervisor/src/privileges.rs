//! Switching to an unprivileged user and group, in the order OpenSSH uses: every name lookup
//! first (while still root, before NSS could become unreadable), then `setgroups` →
//! `setresgid` → `setresuid`, then a check that root cannot be regained.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::{self, Gid, Group, Uid, User};

use crate::error::{Error, Result};

/// Finds a user by name, or by numeric id when no user has that name.
pub(crate) fn lookup_user(name: &str) -> Result<User> {
    let lookup_error = |errno: nix::Error| Error::AccountLookup {
        what: format!("user \"{name}\""),
        source: io::Error::from(errno),
    };
    if let Some(user) = User::from_name(name).map_err(lookup_error)? {
        return Ok(user);
    }
    if let Ok(id) = name.parse::<u32>() {
        if let Some(user) = User::from_uid(Uid::from_raw(id)).map_err(lookup_error)? {
            return Ok(user);
        }
    }
    Err(Error::UnknownUser { name: name.to_string() })
}

/// Finds a group by name, or by numeric id. A numeric id is accepted even without an entry in
/// the group database, as chown(1) does: the kernel needs no name.
pub(crate) fn lookup_group(name: &str) -> Result<Gid> {
    let lookup_error = |errno: nix::Error| Error::AccountLookup {
        what: format!("group \"{name}\""),
        source: io::Error::from(errno),
    };
    if let Some(group) = Group::from_name(name).map_err(lookup_error)? {
        return Ok(group.gid);
    }
    match name.parse::<u32>() {
        Ok(id) => Ok(Gid::from_raw(id)),
        Err(_) => Err(Error::UnknownGroup { name: name.to_string() }),
    }
}

/// The identity to switch to, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `None` when only a group was asked for: the process keeps its uid.
    pub(crate) user: Option<(String, Uid)>,
    pub(crate) gid: Gid,
    /// Supplementary groups, including `gid`.
    pub(crate) groups: Vec<Gid>,
}

impl Identity {
    /// Resolves `user` and `group` (names or numeric ids). With only a user, the group is the
    /// user's primary group and the supplementary groups are the user's.
    pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Self>> {
        let user = user.map(lookup_user).transpose()?;
        let explicit_gid = group.map(lookup_group).transpose()?;
        let identity = match (user, explicit_gid) {
            (None, None) => return Ok(None),
            (None, Some(gid)) => Self { user: None, gid, groups: vec![gid] },
            (Some(user), explicit_gid) => {
                let gid = explicit_gid.unwrap_or(user.gid);
                let groups = supplementary_groups(&user.name, gid)?;
                Self { user: Some((user.name, user.uid)), gid, groups }
            }
        };
        Ok(Some(identity))
    }

    /// What to call this identity in messages: `user "nobody"` or `group "nogroup"`.
    pub fn describe(&self) -> String {
        match &self.user {
            Some((name, _)) => format!("user \"{name}\""),
            None => format!("group {}", self.gid),
        }
    }

    /// True when the process already runs with exactly these ids (then no root is needed).
    fn is_current(&self) -> bool {
        let uid_matches = match &self.user {
            Some((_, uid)) => *uid == Uid::current() && *uid == Uid::effective(),
            None => true,
        };
        uid_matches && self.gid == Gid::current() && self.gid == Gid::effective()
    }

    /// Fails unless the process may switch to this identity.
    pub(crate) fn check_allowed(&self) -> Result<()> {
        if Uid::effective().is_root() || self.is_current() {
            return Ok(());
        }
        Err(Error::NeedsRoot { what: self.describe(), euid: Uid::effective().as_raw() })
    }

    /// Gives a unix socket to the new identity, so that the unprivileged process can still
    /// manage it. The group is left alone when `keep_group` (it was set by
    /// `unix_socket_group`).
    pub(crate) fn chown_socket(&self, path: &Path, keep_group: bool) -> Result<()> {
        let uid = self.user.as_ref().map(|(_, uid)| *uid);
        let gid = if keep_group { None } else { Some(self.gid) };
        if uid.is_none() && gid.is_none() {
            return Ok(());
        }
        unistd::chown(path, uid, gid).map_err(|errno| Error::SocketOwner {
            path: path.to_path_buf(),
            owner: describe_owner(uid, gid),
            source: io::Error::from(errno),
        })
    }

    /// Switches the whole process (real, effective and saved ids) to this identity.
    pub(crate) fn switch(&self) -> Result<()> {
        if self.is_current() && !Uid::effective().is_root() {
            return Ok(());
        }
        let step_error = |step: String| {
            move |errno: nix::Error| Error::DropPrivileges { step, source: io::Error::from(errno) }
        };
        unistd::setgroups(&self.groups).map_err(step_error("setgroups".into()))?;
        let gid = self.gid;
        unistd::setresgid(gid, gid, gid).map_err(step_error(format!("setresgid({gid})")))?;
        if let Some((name, uid)) = &self.user {
            let uid = *uid;
            unistd::setresuid(uid, uid, uid).map_err(step_error(format!("setresuid({uid})")))?;
            if !uid.is_root() && can_regain_root() {
                return Err(Error::RootRegainable { user: name.clone() });
            }
        }
        log::debug!(
            "switched to uid {}, gid {} (groups {:?})",
            Uid::effective(),
            Gid::effective(),
            self.groups.iter().map(|g| g.as_raw()).collect::<Vec<_>>()
        );
        Ok(())
    }

    /// The uid this identity serves as (the current one when only a group is switched).
    fn uid(&self) -> Uid {
        self.user.as_ref().map_or_else(Uid::effective, |(_, uid)| *uid)
    }

    /// Fails unless this identity will be able to write `path` (`what` names it in the
    /// error): the file when it exists, else its directory (where it will be created).
    /// With `needs_directory`, the directory must be writable in any case (to remove the
    /// file at the end). Decided from the mode bits and owners, as the kernel does without
    /// ACLs, so that it is known before anything is created.
    pub fn check_writable(&self, what: &str, path: &Path, needs_directory: bool) -> Result<()> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let directory = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let refused = |place: &Path, reason: String| Error::NotWritable {
            what: what.to_string(),
            path: path.clone(),
            place: place.to_path_buf(),
            who: self.describe(),
            reason,
        };
        let file = match std::fs::metadata(&path) {
            Ok(metadata) => Some(metadata),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(refused(&path, crate::error::os_words(&e))),
        };
        if let Some(file) = &file {
            if !self.may_write(file) {
                return Err(refused(&path, describe_metadata(file)));
            }
        }
        if file.is_none() || needs_directory {
            match std::fs::metadata(&directory) {
                Ok(metadata) if self.may_write(&metadata) => {}
                Ok(metadata) => return Err(refused(&directory, describe_metadata(&metadata))),
                Err(e) => return Err(refused(&directory, crate::error::os_words(&e))),
            }
        }
        Ok(())
    }

    /// Fails unless this identity will be able to remove a file in `path`'s directory
    /// (`what` names the file): a unix socket removed at stop by the unprivileged process.
    /// The file itself does not matter (it may be a stale one, replaced at the bind).
    pub fn check_removable(&self, what: &str, path: &Path) -> Result<()> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let directory = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let refused = |reason: String| Error::NotWritable {
            what: what.to_string(),
            path: path.clone(),
            place: directory.clone(),
            who: self.describe(),
            reason,
        };
        match std::fs::metadata(&directory) {
            Ok(metadata) if self.may(&metadata, WRITE | SEARCH) => Ok(()),
            Ok(metadata) => Err(refused(describe_metadata(&metadata))),
            Err(e) => Err(refused(crate::error::os_words(&e))),
        }
    }

    /// Fails unless this identity will be able to read `path` (`what` names it): read on
    /// the file and search on every directory above it, from the mode bits and owners. A
    /// configuration file read again at a reload, after the switch, is checked so at start.
    pub fn check_readable(&self, what: &'static str, path: &Path) -> Result<()> {
        self.check_access(what, path, READ, |what, path, place, who, reason| Error::NotReadable {
            what,
            path,
            place,
            who,
            reason,
        })
    }

    /// Fails unless this identity will be able to list the directory `path` (`what` names
    /// it): read and search on it, search on every directory above it. The directory of an
    /// include glob is listed again at every reload, where new files may have come.
    pub fn check_listable(&self, what: &'static str, path: &Path) -> Result<()> {
        self.check_access(what, path, READ | SEARCH, |what, path, place, who, reason| {
            Error::NotListable { what, path, place, who, reason }
        })
    }

    /// `wanted` on `path` itself and search on every directory above it, or the error
    /// `refusal` makes of (what, path, the place refused, who, why).
    fn check_access(
        &self,
        what: &'static str,
        path: &Path,
        wanted: u32,
        refusal: fn(&'static str, PathBuf, PathBuf, String, String) -> Error,
    ) -> Result<()> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let refused = |place: &Path, reason| {
            refusal(what, path.clone(), place.to_path_buf(), self.describe(), reason)
        };
        for directory in path.ancestors().skip(1) {
            match std::fs::metadata(directory) {
                Ok(metadata) if self.may(&metadata, SEARCH) => {}
                Ok(metadata) => return Err(refused(directory, describe_metadata(&metadata))),
                Err(e) => return Err(refused(directory, crate::error::os_words(&e))),
            }
        }
        match std::fs::metadata(&path) {
            Ok(metadata) if self.may(&metadata, wanted) => Ok(()),
            Ok(metadata) => Err(refused(&path, describe_metadata(&metadata))),
            Err(e) => Err(refused(&path, crate::error::os_words(&e))),
        }
    }

    fn may_write(&self, metadata: &std::fs::Metadata) -> bool {
        self.may(metadata, WRITE)
    }

    fn may(&self, metadata: &std::fs::Metadata, wanted: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        let groups: Vec<u32> = self.groups.iter().map(|g| g.as_raw()).collect();
        let (uid, mode) = (self.uid().as_raw(), metadata.mode());
        may(uid, &groups, metadata.uid(), metadata.gid(), mode, wanted)
    }

    /// Gives a file this process created (still as root) to this identity, so that it can
    /// open it again after the switch (a log file reopened on SIGUSR1).
    pub fn give_file(&self, path: &Path) -> Result<()> {
        let uid = self.user.as_ref().map(|(_, uid)| *uid);
        unistd::chown(path, uid, Some(self.gid)).map_err(|errno| Error::FileOwner {
            path: path.to_path_buf(),
            owner: describe_owner(uid, Some(self.gid)),
            source: io::Error::from(errno),
        })
    }
}

/// The "others" bits of an access: read, write, search (execute).
const READ: u32 = 0o4;
const WRITE: u32 = 0o2;
const SEARCH: u32 = 0o1;

/// Whether a process with `uid` and `groups` may access (`wanted`: [`READ`], [`WRITE`],
/// [`SEARCH`], or-ed) a file owned by `owner`:`group` with `mode`, by the permission bits
/// alone (root always may, as for the checks it needs).
fn may(uid: u32, groups: &[u32], owner: u32, group: u32, mode: u32, wanted: u32) -> bool {
    let bits = if uid == 0 {
        return true;
    } else if uid == owner {
        mode >> 6
    } else if groups.contains(&group) {
        mode >> 3
    } else {
        mode
    };
    bits & wanted == wanted
}

#[cfg(test)]
fn may_write(uid: u32, groups: &[u32], owner: u32, group: u32, mode: u32) -> bool {
    may(uid, groups, owner, group, mode, WRITE)
}

/// `owned by root:root, mode 0755` for a refusal.
fn describe_metadata(metadata: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let owner =
        describe_owner(Some(Uid::from_raw(metadata.uid())), Some(Gid::from_raw(metadata.gid())));
    format!("owned by {owner}, mode {:04o}", metadata.mode() & 0o7777)
}

/// Logs the user and group this process serves as, switched or not.
pub(crate) fn log_serving_user() {
    let (uid, gid) = (Uid::effective(), Gid::effective());
    let user = match User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    };
    let group = match Group::from_gid(gid) {
        Ok(Some(group)) => group.name,
        _ => gid.to_string(),
    };
    log::info!("serving as user \"{user}\" (uid {uid}), group \"{group}\" (gid {gid})");
}

/// The user's supplementary groups as the group database lists them, plus `gid`.
fn supplementary_groups(user: &str, gid: Gid) -> Result<Vec<Gid>> {
    let name = CString::new(user).map_err(|_| Error::UnknownUser { name: user.to_string() })?;
    unistd::getgrouplist(&name, gid).map_err(|errno| Error::AccountLookup {
        what: format!("the groups of user \"{user}\""),
        source: io::Error::from(errno),
    })
}

/// OpenSSH's paranoia check: after a permanent switch, neither setuid(0) nor seteuid(0) may
/// succeed.
fn can_regain_root() -> bool {
    unistd::setuid(Uid::from_raw(0)).is_ok() || unistd::seteuid(Uid::from_raw(0)).is_ok()
}

fn describe_owner(uid: Option<Uid>, gid: Option<Gid>) -> String {
    let user = uid
        .map(|uid| match User::from_uid(uid) {
            Ok(Some(user)) => user.name,
            _ => uid.to_string(),
        })
        .unwrap_or_default();
    let group = gid
        .map(|gid| match Group::from_gid(gid) {
            Ok(Some(group)) => group.name,
            _ => gid.to_string(),
        })
        .unwrap_or_default();
    format!("{user}:{group}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_user_is_named() {
        let error = lookup_user("no-such-user-for-supervisor-tests").unwrap_err();
        assert_eq!(error.to_string(), "unknown user \"no-such-user-for-supervisor-tests\"");
    }

    #[test]
    fn unknown_group_is_named() {
        let error = lookup_group("no-such-group-for-supervisor-tests").unwrap_err();
        assert_eq!(error.to_string(), "unknown group \"no-such-group-for-supervisor-tests\"");
    }

    #[test]
    fn users_and_groups_are_found_by_name_or_number() {
        assert_eq!(lookup_user("root").unwrap().uid, Uid::from_raw(0));
        assert_eq!(lookup_user("0").unwrap().name, "root");
        assert_eq!(lookup_group("root").unwrap(), Gid::from_raw(0));
        assert_eq!(lookup_group("4242").unwrap(), Gid::from_raw(4242));
    }

    #[test]
    fn a_user_alone_brings_its_primary_group() {
        let identity = Identity::resolve(Some("root"), None).unwrap().unwrap();
        assert_eq!(identity.gid, Gid::from_raw(0));
        assert!(identity.groups.contains(&Gid::from_raw(0)));
        assert_eq!(Identity::resolve(None, None).unwrap(), None);
    }

    #[test]
    fn writing_is_decided_by_owner_then_group_then_others() {
        assert!(may_write(0, &[0], 1, 1, 0o000), "root writes anything");
        assert!(may_write(7, &[7], 7, 0, 0o200));
        assert!(!may_write(7, &[7], 7, 7, 0o077), "the owner's bits decide for the owner");
        assert!(may_write(7, &[7, 9], 0, 9, 0o020));
        assert!(!may_write(7, &[7, 9], 0, 9, 0o202), "the group's bits decide for members");
        assert!(may_write(7, &[7], 0, 0, 0o002));
        assert!(!may_write(7, &[7], 0, 0, 0o755));
    }

    #[test]
    fn reading_and_searching_use_their_own_bits() {
        assert!(may(7, &[7], 0, 0, 0o644, READ));
        assert!(!may(7, &[7], 0, 0, 0o640, READ), "others may not read 0640");
        assert!(may(7, &[7, 9], 0, 9, 0o640, READ));
        assert!(!may(7, &[7], 0, 0, 0o754, SEARCH));
        assert!(may(7, &[7], 0, 0, 0o773, WRITE | SEARCH));
        assert!(!may(7, &[7], 0, 0, 0o776, WRITE | SEARCH), "removing needs both");
    }

    #[test]
    fn the_current_identity_needs_no_root() {
        let user = User::from_uid(Uid::effective()).unwrap().unwrap();
        let identity = Identity::resolve(Some(&user.name), Some(&Gid::effective().to_string()))
            .unwrap()
            .unwrap();
        identity.check_allowed().unwrap();
    }
}
