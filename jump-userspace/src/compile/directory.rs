//! Where user, group and interface names come from.

use std::collections::{BTreeMap, BTreeSet};

/// User and group lookups the compiler needs.
pub trait Directory {
    /// The uid of a user name.
    fn uid_of(&self, name: &str) -> Option<u32>;
    /// Whether a uid has an account (numeric uids in a policy are accepted either way).
    fn uid_exists(&self, uid: u32) -> bool;
    /// The uids in a group: its supplementary members and every user whose primary group it is.
    /// `None` if there is no such group.
    fn group_members(&self, name: &str) -> Option<Vec<u32>>;
    /// The index of a network interface of the host (jumpd's namespace), for `via`.
    fn ifindex(&self, name: &str) -> Option<u32>;
    /// A consistent in-memory copy to resolve a whole policy against, if reading is costly.
    fn snapshot(&self) -> Option<FakeDirectory> {
        None
    }
}

/// The host's users and groups, read from `/etc/passwd` and `/etc/group` at each lookup
/// (what NSS's `files` source gives). Users and groups known only to a directory service (LDAP,
/// SSSD) are not seen: list such users by numeric uid.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemDirectory;

impl SystemDirectory {
    fn load(&self) -> FakeDirectory {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        let mut d = FakeDirectory::from_files(&passwd, &group);
        d.interfaces = nix::net::if_::if_nameindex()
            .map(|list| {
                list.iter()
                    .map(|i| (i.name().to_string_lossy().into_owned(), i.index()))
                    .collect()
            })
            .unwrap_or_default();
        d
    }
}

impl Directory for SystemDirectory {
    fn uid_of(&self, name: &str) -> Option<u32> {
        self.load().uid_of(name)
    }

    fn uid_exists(&self, uid: u32) -> bool {
        self.load().uid_exists(uid)
    }

    fn group_members(&self, name: &str) -> Option<Vec<u32>> {
        self.load().group_members(name)
    }

    fn ifindex(&self, name: &str) -> Option<u32> {
        nix::net::if_::if_nametoindex(name).ok()
    }

    /// Reads the two files once per compile instead of once per name.
    fn snapshot(&self) -> Option<FakeDirectory> {
        Some(self.load())
    }
}

/// An in-memory directory: for tests, and the parsed form of the system files.
#[derive(Clone, Debug, Default)]
pub struct FakeDirectory {
    /// name → (uid, primary gid)
    pub users: BTreeMap<String, (u32, u32)>,
    /// name → (gid, member names)
    pub groups: BTreeMap<String, (u32, Vec<String>)>,
    /// interface name → ifindex
    pub interfaces: BTreeMap<String, u32>,
}

impl FakeDirectory {
    pub fn interface(mut self, name: &str, ifindex: u32) -> Self {
        self.interfaces.insert(name.into(), ifindex);
        self
    }

    pub fn user(mut self, name: &str, uid: u32, gid: u32) -> Self {
        self.users.insert(name.into(), (uid, gid));
        self
    }

    pub fn group(mut self, name: &str, gid: u32, members: &[&str]) -> Self {
        self.groups.insert(
            name.into(),
            (gid, members.iter().map(|m| m.to_string()).collect()),
        );
        self
    }

    /// Parses `/etc/passwd` and `/etc/group` contents; malformed lines are skipped.
    pub fn from_files(passwd: &str, group: &str) -> Self {
        let mut d = FakeDirectory::default();
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && !line.starts_with('#') {
                if let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) {
                    d.users.entry(f[0].to_string()).or_insert((uid, gid));
                }
            }
        }
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && !line.starts_with('#') {
                if let Ok(gid) = f[2].parse() {
                    let members = f[3]
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(String::from)
                        .collect();
                    d.groups.entry(f[0].to_string()).or_insert((gid, members));
                }
            }
        }
        d
    }
}

impl Directory for FakeDirectory {
    fn uid_of(&self, name: &str) -> Option<u32> {
        self.users.get(name).map(|u| u.0)
    }

    fn uid_exists(&self, uid: u32) -> bool {
        self.users.values().any(|u| u.0 == uid)
    }

    fn group_members(&self, name: &str) -> Option<Vec<u32>> {
        let (gid, members) = self.groups.get(name)?;
        let mut uids: BTreeSet<u32> = members.iter().filter_map(|m| self.uid_of(m)).collect();
        uids.extend(self.users.values().filter(|u| u.1 == *gid).map(|u| u.0));
        Some(uids.into_iter().collect())
    }

    fn ifindex(&self, name: &str) -> Option<u32> {
        self.interfaces.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_include_primary_members() {
        let d = FakeDirectory::from_files(
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:2000::/:/bin/sh\n",
            "alice:x:1000:\nops:x:2000:alice,ghost\n",
        );
        assert_eq!(d.uid_of("alice"), Some(1000));
        assert_eq!(
            d.group_members("ops"),
            Some(vec![1000, 1001]),
            "ops: alice as member, bob by primary gid"
        );
        assert_eq!(d.group_members("nope"), None);
    }
}
