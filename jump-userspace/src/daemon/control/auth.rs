//! Who may use the control socket: root, or a member of the admin group as /etc/group lists
//! it at the moment of the request (SO_PEERCRED credentials).

/// A caller, from SO_PEERCRED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = nix::unistd::User::from_uid(self.uid.into())
            .ok()
            .flatten()
            .map(|u| format!(" ({})", u.name))
            .unwrap_or_default();
        write!(f, "uid {}{name}", self.uid)?;
        if let Some(pid) = self.pid {
            write!(f, " pid {pid}")?;
        }
        Ok(())
    }
}

/// The admin group as /etc/group has it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminGroup {
    pub gid: u32,
    pub members: Vec<String>,
}

/// Root, or an account whose primary group is the admin group or which /etc/group lists in
/// it now. Pure; `user` is the caller's account (name, primary gid). The gid of the caller's
/// process does not count: `newgrp` or `sg` keeps it after the account has left the group, and
/// a user namespace may hold it through a subordinate gid range.
pub fn authorized(peer: &Peer, user: Option<(&str, u32)>, admin: Option<&AdminGroup>) -> bool {
    if peer.uid == 0 {
        return true;
    }
    let Some(admin) = admin else { return false };
    user.is_some_and(|(name, primary)| {
        primary == admin.gid || admin.members.iter().any(|m| m == name)
    })
}

pub(super) fn admin_group(name: &str) -> Option<AdminGroup> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| AdminGroup {
            gid: g.gid.as_raw(),
            members: g.mem,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_the_admin_group_are_authorized() {
        let admin = AdminGroup {
            gid: 990,
            members: vec!["alice".into()],
        };
        let peer = |uid, gid| Peer {
            uid,
            gid,
            pid: None,
        };
        assert!(
            authorized(&peer(0, 0), None, None),
            "root, even without the group"
        );
        assert!(
            authorized(&peer(1001, 1001), Some(("alice", 1001)), Some(&admin)),
            "a listed member"
        );
        assert!(
            !authorized(&peer(1003, 990), Some(("mallory", 1003)), Some(&admin)),
            "the group as the process's gid only (newgrp before leaving the group)"
        );
        assert!(
            !authorized(&peer(165_536, 990), None, Some(&admin)),
            "nor for a uid without an account"
        );
        assert!(
            authorized(&peer(1004, 1004), Some(("dave", 990)), Some(&admin)),
            "the group as the account's primary group"
        );
        assert!(
            !authorized(&peer(1002, 1002), Some(("bob", 1002)), Some(&admin)),
            "anyone else"
        );
        assert!(
            !authorized(&peer(1001, 1001), Some(("alice", 1001)), None),
            "no group: root only"
        );
    }
}
