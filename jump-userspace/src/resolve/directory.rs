//! Where user and group names, users' subordinate uids and interface names come from.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::Arc,
};

use crate::policy::Span;

/// One line of `/etc/subuid`: `owner:first:count`, the owner a user name or a numeric uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubuidRange {
    pub owner: String,
    pub first: u32,
    pub count: u32,
    /// The line, for warnings about the range.
    pub span: Span,
}

/// Parses `/etc/subuid` contents (see subuid(5)), read from `file`; malformed lines and
/// comments are skipped, as shadow-utils skips them.
pub fn parse_subuid(text: &str, file: &str) -> Vec<SubuidRange> {
    let file: Arc<str> = file.into();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#'))
        .filter_map(|(i, l)| {
            let f: Vec<&str> = l.trim().split(':').collect();
            match f.as_slice() {
                [owner, first, count] if !owner.is_empty() => Some(SubuidRange {
                    owner: owner.to_string(),
                    first: first.parse().ok()?,
                    count: count.parse().ok()?,
                    span: Span::new(&file, u32::try_from(i + 1).unwrap_or(u32::MAX), 1),
                }),
                _ => None,
            }
        })
        .collect()
}

/// Where jumpd reads subordinate uids unless told otherwise.
pub const SUBUID_FILE: &str = "/etc/subuid";

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
    /// The subordinate uid ranges of users (`/etc/subuid`), as written.
    fn subuid_ranges(&self) -> Vec<SubuidRange> {
        Vec::new()
    }
    /// Every uid that has an account: such a uid is always itself, never someone's
    /// subordinate uid.
    fn account_uids(&self) -> BTreeSet<u32> {
        BTreeSet::new()
    }
    /// A consistent in-memory copy to resolve a whole policy against, if reading is costly.
    fn snapshot(&self) -> Option<FakeDirectory> {
        None
    }
}

/// The host's users and groups, read from `/etc/passwd` and `/etc/group` at each lookup
/// (what NSS's `files` source gives), and subordinate uids from `subuid` (`/etc/subuid`).
/// Users and groups known only to a directory service (LDAP, SSSD) are not seen: list such
/// users by numeric uid.
#[derive(Clone, Debug)]
pub struct SystemDirectory {
    pub subuid: PathBuf,
}

impl Default for SystemDirectory {
    fn default() -> Self {
        Self {
            subuid: SUBUID_FILE.into(),
        }
    }
}

impl SystemDirectory {
    fn load(&self) -> FakeDirectory {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        // A missing file is no subordinate uids (Debian creates it empty).
        let subuid = std::fs::read_to_string(&self.subuid).unwrap_or_default();
        let mut d = FakeDirectory::from_files(&passwd, &group);
        d.subuids = parse_subuid(&subuid, &self.subuid.to_string_lossy());
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

    fn subuid_ranges(&self) -> Vec<SubuidRange> {
        self.load().subuids
    }

    fn account_uids(&self) -> BTreeSet<u32> {
        self.load().account_uids()
    }

    /// Reads the files once per compile instead of once per name.
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
    pub subuids: Vec<SubuidRange>,
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

    /// A range on the next line of a file called `subuid`.
    pub fn subuid(mut self, owner: &str, first: u32, count: u32) -> Self {
        let line = u32::try_from(self.subuids.len() + 1).unwrap_or(u32::MAX);
        self.subuids.push(SubuidRange {
            owner: owner.into(),
            first,
            count,
            span: Span::new(&"subuid".into(), line, 1),
        });
        self
    }

    /// Parses `/etc/passwd` and `/etc/group` contents as glibc's `files` source reads them, so
    /// jump sees the same members the kernel is given at login (a group that lists
    /// `ops:x:2000: mallory` has mallory in it for `initgroups`); malformed lines are skipped.
    pub fn from_files(passwd: &str, group: &str) -> Self {
        let mut d = FakeDirectory::default();
        for f in entries(passwd) {
            if let (Some(uid), Some(gid)) = (
                f.get(2).and_then(|v| number(v)),
                f.get(3).and_then(|v| number(v)),
            ) {
                d.users.entry(f[0].to_string()).or_insert((uid, gid));
            }
        }
        for f in entries(group) {
            if let (Some(gid), Some(members)) = (f.get(2).and_then(|v| number(v)), f.get(3)) {
                let members = members
                    .split(',')
                    .map(|m| m.trim_start_matches(c_space))
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect();
                d.groups.entry(f[0].to_string()).or_insert((gid, members));
            }
        }
        d
    }
}

/// C's `isspace` in the C locale.
fn c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// The `:`-separated fields of each entry: like glibc, leading white space of a line is
/// skipped, and blank lines and comments are no entries.
fn entries(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(|l| l.trim_start_matches(c_space))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

/// A uid or gid field as glibc reads it: leading white space and a `+` are taken; a `-`,
/// anything after the digits, or a number over 32 bits makes the line malformed.
fn number(field: &str) -> Option<u32> {
    let t = field.trim_start_matches(c_space);
    let digits = t.strip_prefix('+').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
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

    fn subuid_ranges(&self) -> Vec<SubuidRange> {
        self.subuids.clone()
    }

    fn account_uids(&self) -> BTreeSet<u32> {
        self.users.values().map(|u| u.0).collect()
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

    /// What glibc's `fgetgrent`/`fgetpwent` (Debian's 2.36) make of odd spacing and signs.
    #[test]
    fn the_files_read_as_glibc_reads_them() {
        let d = FakeDirectory::from_files(
            "mallory:x:1005: 3000::/:/bin/sh\n  eve:x:+1006:1006::/:/bin/sh\nbad:x:10x:1::/:/bin/sh\nneg:x:-2:1::/:/bin/sh\nbig:x:4294967296:1::/:/bin/sh\n",
            "contractors:x:3000: mallory\nops:x:2000:alice, eve ,bob\n\tlab:x: 4000:\n",
        );
        assert_eq!(d.users.get("mallory"), Some(&(1005, 3000)));
        assert_eq!(
            d.users.get("eve"),
            Some(&(1006, 1006)),
            "leading blanks and `+`"
        );
        assert_eq!(d.users.get("bad"), None, "trailing garbage: malformed");
        assert_eq!(
            (d.users.get("neg"), d.users.get("big")),
            (None, None),
            "a sign other than `+`, or over 32 bits: malformed"
        );
        assert_eq!(
            d.groups.get("contractors").map(|g| g.1.clone()),
            Some(vec!["mallory".to_string()]),
            "a member after a blank is a member"
        );
        assert_eq!(
            d.group_members("contractors"),
            Some(vec![1005]),
            "by name and as primary group"
        );
        assert_eq!(
            d.groups.get("ops").map(|g| g.1.clone()),
            Some(vec!["alice".into(), "eve ".into(), "bob".into()]),
            "leading blanks go, trailing ones stay (glibc's parse_list)"
        );
        assert_eq!(d.groups.get("lab").map(|g| g.0), Some(4000));
    }

    #[test]
    fn subuid_lines_are_owner_first_count() {
        let r = parse_subuid(
            "alice:100000:65536\n# x:1:2\n1001:165536:65536\nbad\nbob:1:\n:5:6\n",
            "/etc/subuid",
        );
        let file: Arc<str> = "/etc/subuid".into();
        assert_eq!(
            r,
            vec![
                SubuidRange {
                    owner: "alice".into(),
                    first: 100_000,
                    count: 65_536,
                    span: Span::new(&file, 1, 1),
                },
                SubuidRange {
                    owner: "1001".into(),
                    first: 165_536,
                    count: 65_536,
                    span: Span::new(&file, 3, 1),
                },
            ],
            "comments, short and ownerless lines are skipped"
        );
    }
}
