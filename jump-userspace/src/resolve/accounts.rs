//! The accounts a policy is compiled against: the host's (its `/etc/passwd` and `/etc/group`,
//! then NSS — LDAP, SSSD — for names those files do not hold), or another host's, from copies of
//! its files (`jumpctl validate|check|test --passwd FILE --group FILE --subuid FILE`), which
//! then replace the host's entirely: a policy repository checked in CI must not see the CI
//! runner's users.
//!
//! The files are read once, when the value is made: one consistent view per compile, and a
//! missing or unreadable file is an error of its own (exit 2 in jumpctl), never an empty list.
//!
//! NSS cannot be listed reliably (SSSD and LDAP usually disable enumeration), so a user known
//! only to NSS counts as a member of a group when the group lists them, not when it is merely
//! their primary group; and such a user always counts as an account of their own
//! (`uid_exists`), never as someone's subordinate uid only.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use super::directory::{parse_subuid, Directory, FakeDirectory, SubuidRange, SUBUID_FILE};

/// Where the account files come from; `None`: the host's, with NSS.
#[derive(Clone, Debug, Default)]
pub struct AccountFiles {
    pub passwd: Option<PathBuf>,
    pub group: Option<PathBuf>,
    pub subuid: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Accounts {
    files: FakeDirectory,
    /// Ask NSS for users (no `--passwd` given).
    nss_users: bool,
    /// Ask NSS for groups (no `--group` given).
    nss_groups: bool,
}

fn read(path: &Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {what} file `{}`: {e}", path.display()))
}

impl Accounts {
    /// Reads the files. The host's `/etc/passwd` and `/etc/group` may be missing (NSS alone),
    /// and `/etc/subuid` too (no subordinate uids); a file given by name must be readable.
    pub fn load(f: &AccountFiles) -> Result<Self, String> {
        let host = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let passwd = match &f.passwd {
            Some(p) => read(p, "passwd")?,
            None => host("/etc/passwd"),
        };
        let group = match &f.group {
            Some(p) => read(p, "group")?,
            None => host("/etc/group"),
        };
        let (subuid, subuid_file) = match &f.subuid {
            Some(p) => (read(p, "subuid")?, p.to_string_lossy().into_owned()),
            None => (host(SUBUID_FILE), SUBUID_FILE.to_string()),
        };
        let mut files = FakeDirectory::from_files(&passwd, &group);
        files.subuids = parse_subuid(&subuid, &subuid_file);
        Ok(Self {
            files,
            nss_users: f.passwd.is_none(),
            nss_groups: f.group.is_none(),
        })
    }

    /// jumpd's: the host's accounts with NSS, subordinate uids from `subuid`; a missing
    /// `subuid` file is no subordinate uids (Debian creates it empty).
    pub fn host(subuid: &Path) -> Self {
        let host = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let mut files = FakeDirectory::from_files(
            &host(Path::new("/etc/passwd")),
            &host(Path::new("/etc/group")),
        );
        files.subuids = parse_subuid(&host(subuid), &subuid.to_string_lossy());
        Self {
            files,
            nss_users: true,
            nss_groups: true,
        }
    }

    /// Only the given files, never NSS (tests).
    pub fn from_files(files: FakeDirectory) -> Self {
        Self {
            files,
            nss_users: false,
            nss_groups: false,
        }
    }
}

impl Directory for Accounts {
    fn uid_of(&self, name: &str) -> Option<u32> {
        self.files.uid_of(name).or_else(|| {
            self.nss_users
                .then(|| nix::unistd::User::from_name(name).ok().flatten())
                .flatten()
                .map(|u| u.uid.as_raw())
        })
    }

    fn uid_exists(&self, uid: u32) -> bool {
        self.files.uid_exists(uid)
            || (self.nss_users
                && nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .is_some())
    }

    fn group_members(&self, name: &str) -> Option<Vec<u32>> {
        if let Some(m) = self.files.group_members(name) {
            return Some(m);
        }
        if !self.nss_groups {
            return None;
        }
        let g = nix::unistd::Group::from_name(name).ok().flatten()?;
        let gid = g.gid.as_raw();
        let mut uids: BTreeSet<u32> = g.mem.iter().filter_map(|m| self.uid_of(m)).collect();
        uids.extend(
            self.files
                .users
                .values()
                .filter(|u| u.1 == gid)
                .map(|u| u.0),
        );
        Some(uids.into_iter().collect())
    }

    fn ifindex(&self, name: &str) -> Option<u32> {
        nix::net::if_::if_nametoindex(name).ok()
    }

    fn subuid_ranges(&self) -> Vec<SubuidRange> {
        self.files.subuids.clone()
    }

    fn account_uids(&self) -> BTreeSet<u32> {
        self.files.account_uids()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn given_files_replace_the_hosts_accounts() {
        let d = tempfile::tempdir().unwrap();
        let f = AccountFiles {
            passwd: Some(write(d.path(), "passwd", "zed:x:64510:64510::/:/bin/sh\n")),
            group: Some(write(d.path(), "group", "ops:x:64520:zed\n")),
            subuid: Some(write(d.path(), "subuid", "zed:200000:65536\n")),
        };
        let a = Accounts::load(&f).unwrap();
        assert_eq!(a.uid_of("zed"), Some(64510));
        assert_eq!(
            a.uid_of("root"),
            None,
            "the host's root is not the target's"
        );
        assert!(!a.uid_exists(0));
        assert_eq!(a.group_members("ops"), Some(vec![64510]));
        assert_eq!(a.group_members("root"), None);
        assert_eq!(a.subuid_ranges().len(), 1);
    }

    #[test]
    fn a_named_file_that_is_missing_is_an_error_not_an_empty_list() {
        let f = AccountFiles {
            passwd: Some("/nonexistent/passwd".into()),
            ..Default::default()
        };
        let e = Accounts::load(&f).unwrap_err();
        assert!(
            e.starts_with("cannot read passwd file `/nonexistent/passwd`: "),
            "{e}"
        );
    }

    #[test]
    fn names_missing_from_the_files_are_asked_of_nss() {
        // No files at all: only getpwnam/getgrnam can know root (every NSS setup has it).
        let a = Accounts {
            files: FakeDirectory::default(),
            nss_users: true,
            nss_groups: true,
        };
        assert_eq!(a.uid_of("root"), Some(0));
        assert!(a.uid_exists(0));
        assert!(a.group_members("root").is_some());
        assert_eq!(a.uid_of("no-such-user-64599"), None);
        let host = Accounts::host(Path::new("/nonexistent/subuid"));
        assert_eq!(host.uid_of("root"), Some(0));
        assert!(host.subuid_ranges().is_empty());
    }
}
