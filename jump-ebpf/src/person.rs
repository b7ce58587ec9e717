//! `defaults.identity: person`: the second decision, for the person behind a task (its audit
//! login uid, set at login by `pam_loginuid` and kept across `sudo`, `su`, setuid programs and
//! user namespaces), and the audit-session match of session-scoped grants.
//!
//! Called from the hooks only when the active image says `person` (`Decision::identity`), so
//! the `uid` path costs one byte compare. The egress backstop never reads a task here: it gives
//! the login uid and session recorded with the socket when it was connected (`JUMP_SOCKS`).

use jump_common::{action, decided_by, identity, LOGIN_UNSET};

use crate::lookup::Decision;

/// `Active::session` meaning "the current task's session, read only if a window needs it".
pub const SESSION_CURRENT: u32 = u32::MAX - 1;

/// How permissive an action is: the lower one of two decisions wins.
#[inline(always)]
fn rank(a: u8) -> u8 {
    match a {
        action::DENY => 0,
        action::AUDIT => 1,
        _ => 2,
    }
}

/// `d`, the decision for the task's uid, narrowed by the decision for its login uid: with
/// `identity: person` and a login uid set, the less permissive of the two decides (deny, then
/// audit, then allow; the uid's on a tie) and the event says which. The login uid is read
/// (`login`) only then. A login uid can only narrow: it never turns the uid's deny into allow.
#[inline(always)]
pub fn narrow(
    d: Decision,
    login: impl FnOnce() -> u32,
    by_login: impl FnOnce(u32) -> Decision,
) -> Decision {
    if d.identity != identity::PERSON || d.action == action::DENY {
        return d;
    }
    let login_uid = login();
    if login_uid == LOGIN_UNSET || login_uid == d.uid {
        return d;
    }
    let l = by_login(login_uid);
    let timed = d.timed || l.timed;
    if rank(l.action) < rank(d.action) {
        // The event still names the task's uid (`d.uid`); its login uid is in the event too.
        Decision {
            action: l.action,
            rule_id: l.rule_id,
            timed,
            decided_by: decided_by::LOGIN,
            ..d
        }
    } else {
        Decision { timed, ..d }
    }
}

/// `sock_create`: the profile flags of the uid, narrowed to those the login uid's profile has
/// too (with `identity: person` and a login uid set). Sets `deny.decided_by` when the login
/// uid's profile took a flag away.
#[inline(always)]
pub fn narrow_flags(
    flags: u32,
    deny: &mut Decision,
    login: impl FnOnce() -> u32,
    by_login: impl FnOnce(u32) -> u32,
) -> u32 {
    if deny.identity != identity::PERSON {
        return flags;
    }
    let login_uid = login();
    if login_uid == LOGIN_UNSET || login_uid == deny.uid {
        return flags;
    }
    let both = flags & by_login(login_uid);
    if both != flags {
        deny.decided_by = decided_by::LOGIN;
    }
    both
}

/// Whether a window scoped to audit session `want` (0: any session) is open for `have`
/// (`SESSION_CURRENT`: the current task's, read here and only here).
#[inline(always)]
pub fn session_holds(want: u32, have: u32) -> bool {
    if want == 0 {
        return true;
    }
    let have = if have == SESSION_CURRENT {
        crate::ctx::audit_ids().1
    } else {
        have
    };
    // An unset session (a task no login started, or a socket without a record) matches none.
    have != LOGIN_UNSET && have == want
}
