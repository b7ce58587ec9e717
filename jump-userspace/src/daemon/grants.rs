//! Just-in-time grants (`jumpctl grant`, `grants`, `revoke`): what jumpd alone owns of them —
//! the list of grants in force, its state file, and how each grant becomes an enforce-mode
//! allow rule `grant-<id>` appended to the policy's resolved rules.
//!
//! A grant's end is a compiled time window (like `expires:`), so the kernel ends it by its own
//! clock even while jumpd is down; jumpd only prunes and logs it afterwards. Grants come after
//! every policy rule and are enforce-mode allows, so the compiler's candidate order (every
//! enforce-deny first) lets a policy `deny` win over a grant.
//!
//! The state file (`<state-dir>/grants.json`) is replaced atomically (write, fsync, rename,
//! fsync the directory): a crash leaves the old list or the new one, never a torn one.
//!
//! (Over 500 lines, a quarter of them tests: the store, its state file, the grant-to-rule step
//! and the three requests that change it are one life cycle.)

use std::{
    collections::BTreeSet,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

pub use crate::protocol::{Grant, GrantRequest};
use crate::protocol::{Granted, Revoked};
use crate::{
    policy::{Entry, Mode, Proto, Span},
    resolve::{EffRule, RuleSet},
};

/// Grants in force at once: each is a rule of every generation, and the rule table, windows
/// and candidate lists are bounded (`MAX_WINDOWS`, `MAX_CANDIDATES`).
pub const MAX_GRANTS: usize = 256;
/// Destinations per grant.
pub const MAX_DESTS: usize = 32;
/// Grants in force per user: more than this overlapping on one destination would overflow a
/// candidate list (`MAX_CANDIDATES`) and make every reload fail.
pub const MAX_PER_USER: usize = 4;
/// Longest reason, in bytes.
pub const MAX_REASON: usize = 512;
/// `grant_max_duration` when the config does not say.
pub const DEFAULT_MAX_DURATION: SignedDuration = SignedDuration::from_hours(24);

const STATE_FILE: &str = "grants.json";

/// When this boot started, in Unix seconds (CLOCK_REALTIME − CLOCK_BOOTTIME). Audit session
/// ids count from 1 again at every boot, so a session-scoped grant holds only in the boot it
/// was made in; the boot id itself is in /proc/sys, which the unit hides (`ProcSubset=pid`).
pub fn boot_second() -> Option<i64> {
    use nix::time::{clock_gettime, ClockId};
    let real = clock_gettime(ClockId::CLOCK_REALTIME).ok()?;
    let boot = clock_gettime(ClockId::CLOCK_BOOTTIME).ok()?;
    Some(real.tv_sec() - boot.tv_sec())
}

/// How far two readings of `boot_second` in one boot may differ (slewing, rounding). A boot
/// ends long after its start; a wall clock stepped by more ends session grants at the next
/// start of jumpd, which fails closed.
const BOOT_SLACK: i64 = 30;

/// MESSAGE_IDs of grant life (the daemon's others are in `daemon::message_id`).
pub mod message_id {
    pub const GRANTED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f80b";
    pub const REVOKED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f80c";
    pub const EXPIRED: &str = "7c3f0a9e2d4b4f81a6e5c2d1b0a9f80d";
}

/// Who asks (the control socket's peer credentials).
#[derive(Clone, Copy, Debug)]
pub struct Granter {
    pub uid: u32,
    pub pid: u32,
    pub login_uid: Option<u32>,
}

impl Granter {
    /// The peer's login uid from `/proc/PID/loginuid`, only where a privileged process opened
    /// its audit session (`trusted`, jumpd's answers for events): a process whose login uid
    /// was unset may set it to anyone's once, and a grant must not name that person as its
    /// granter. Unset, unreadable or untrusted: `None`.
    pub fn of_peer(uid: u32, pid: u32, trusted: impl FnOnce(u32) -> bool) -> Self {
        let read = |file: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .filter(|&v| v != jump_common::LOGIN_UNSET)
        };
        let login_uid = read("loginuid").filter(|_| read("sessionid").is_some_and(trusted));
        Self {
            uid,
            pid,
            login_uid,
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct StateFile {
    next_id: u64,
    grants: Vec<Grant>,
}

/// The grants in force and where they are kept.
#[derive(Debug, Default)]
pub struct Store {
    /// `None`: kept in memory only (tests with the fake datapath).
    path: Option<PathBuf>,
    next_id: u64,
    grants: Vec<Grant>,
}

/// Parses `--for`: `90m`, `2h`, `1h30m`, `45s`, `1d` (jiff's friendly duration format).
pub fn parse_duration(s: &str) -> Result<SignedDuration, String> {
    let d: SignedDuration = s
        .trim()
        .parse()
        .or_else(|_| {
            // `1d` is 24 hours here: a grant is wall-clock time, not a calendar day.
            s.trim()
                .strip_suffix('d')
                .and_then(|n| n.parse::<i64>().ok())
                .and_then(|n| n.checked_mul(24))
                .map(SignedDuration::from_hours)
                .ok_or(())
        })
        .map_err(|_| format!("invalid duration `{s}`: write it like `90m`, `2h` or `1h30m`"))?;
    if d <= SignedDuration::ZERO {
        return Err(format!("invalid duration `{s}`: it must be positive"));
    }
    Ok(d)
}

/// The reason as given, if it is fit for the log: not blank, at most `MAX_REASON` bytes. Control
/// characters are kept (the record keeps exact text) and escaped wherever it is printed.
fn check_reason(reason: &str) -> Result<(), String> {
    if reason.trim().is_empty() {
        return Err("a grant needs a reason (`--reason TEXT`)".into());
    }
    if reason.len() > MAX_REASON {
        return Err(format!(
            "the reason is {} bytes, at most {MAX_REASON}",
            reason.len()
        ));
    }
    Ok(())
}

/// One destination of a grant as an allow entry: one address, one protocol, one port (ICMP:
/// every "port").
fn entry(dest: &crate::explain::Dest) -> Entry {
    let addr = crate::eval::canonical(dest.addr);
    let net = IpNet::from(addr);
    let proto = Proto::from_number(dest.proto).unwrap_or(Proto::Tcp);
    Entry {
        span: Span::default(),
        to: vec![addr.to_string()],
        nets: vec![net],
        protos: vec![proto],
        ports: if proto == Proto::Icmp {
            vec![(0, u16::MAX)]
        } else {
            vec![(dest.port, dest.port)]
        },
    }
}

fn parse_dests(dests: &[String]) -> Result<Vec<crate::explain::Dest>, String> {
    if dests.is_empty() {
        return Err("a grant needs at least one destination".into());
    }
    if dests.len() > MAX_DESTS {
        return Err(format!(
            "{} destinations, at most {MAX_DESTS} per grant",
            dests.len()
        ));
    }
    dests
        .iter()
        .map(|d| {
            let parsed = crate::explain::parse_dest(d)?;
            if parsed.listen {
                return Err(format!(
                    "`{d}`: a grant is for destinations, not for listening"
                ));
            }
            if Proto::from_number(parsed.proto).is_none() {
                return Err(format!("`{d}`: unknown protocol"));
            }
            Ok(parsed)
        })
        .collect()
}

impl Store {
    /// The grants kept in `dir` (none yet when the file does not exist).
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(STATE_FILE);
        let state: StateFile = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("cannot read the grants in `{}`: {e}", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => anyhow::bail!("cannot read `{}`: {e}", path.display()),
        };
        Ok(Self {
            path: Some(path),
            next_id: state
                .next_id
                .max(state.grants.iter().map(|g| g.id + 1).max().unwrap_or(1)),
            grants: state.grants,
        })
    }

    pub fn in_memory() -> Self {
        Self {
            path: None,
            next_id: 1,
            grants: Vec::new(),
        }
    }

    pub fn list(&self) -> &[Grant] {
        &self.grants
    }

    /// Writes the list atomically: a temporary file in the same directory, fsync, rename over
    /// the old one, fsync the directory. Owner-only (0600): reasons may name incidents.
    fn save(&self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create `{}`: {e}", dir.display()))?;
        let state = StateFile {
            next_id: self.next_id,
            grants: self.grants.clone(),
        };
        let tmp = dir.join(format!(".{STATE_FILE}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut bytes = serde_json::to_vec_pretty(&state)?;
            bytes.push(b'\n');
            f.write_all(&bytes)?;
            f.sync_all()
        };
        if let Err(e) = write().and_then(|()| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            anyhow::bail!("cannot write `{}`: {e}", path.display());
        }
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// Adds a grant for `uid` (resolved from `req.user` by the caller) and persists it. The
    /// list is unchanged on any error.
    pub fn add(
        &mut self,
        req: &GrantRequest,
        uid: u32,
        by: Granter,
        max: SignedDuration,
        now: Timestamp,
    ) -> Result<Grant, String> {
        check_reason(&req.reason)?;
        let dests = parse_dests(&req.dests)?;
        let until = match (&req.duration, &req.until) {
            (Some(_), Some(_)) => return Err("give `--for` or `--until`, not both".into()),
            (Some(d), None) => {
                let d = parse_duration(d)?;
                if d > max {
                    return Err(format!(
                        "`--for {}` is longer than the maximum grant ({max:#})",
                        req.duration.as_deref().unwrap_or_default()
                    ));
                }
                now.checked_add(d).map_err(|e| e.to_string())?
            }
            (None, Some(u)) => {
                let t = crate::explain::parse_time(u)?;
                if t <= now {
                    return Err(format!("`--until {u}` is not in the future"));
                }
                if t.duration_since(now) > max {
                    return Err(format!(
                        "`--until {u}` is further away than the maximum grant ({max:#})"
                    ));
                }
                t
            }
            (None, None) => return Err("a grant needs `--for DURATION` or `--until TIME`".into()),
        };
        if uid == jump_common::ANY_UID {
            return Err("uid 4294967295 stands for no uid: it cannot be granted anything".into());
        }
        if req.session == Some(0) || req.session == Some(jump_common::LOGIN_UNSET) {
            return Err("invalid session id: audit sessions are numbered from 1".into());
        }
        if self.grants.len() >= MAX_GRANTS {
            return Err(format!(
                "{MAX_GRANTS} grants are in force, the most jumpd keeps: revoke one first"
            ));
        }
        if self.grants.iter().filter(|g| g.uid == uid).count() >= MAX_PER_USER {
            return Err(format!(
                "uid {uid} already has {MAX_PER_USER} grants in force, the most per user: revoke one first"
            ));
        }
        let grant = Grant {
            id: self.next_id,
            user: req.user.clone(),
            uid,
            dests: dests.iter().map(|d| d.to_string()).collect(),
            from: now,
            until,
            reason: req.reason.clone(),
            session: req.session,
            session_boot: req.session.and(boot_second()),
            granted_by_uid: by.uid,
            granted_by_pid: by.pid,
            granted_by_login_uid: by.login_uid,
        };
        self.next_id += 1;
        self.grants.push(grant.clone());
        if let Err(e) = self.save() {
            self.grants.pop();
            return Err(format!("the grant was not kept: {e:#}"));
        }
        Ok(grant)
    }

    /// Ends grant `id` now; `None` when no such grant is in force.
    pub fn revoke(&mut self, id: u64) -> Result<Option<Grant>, String> {
        let Some(i) = self.grants.iter().position(|g| g.id == id) else {
            return Ok(None);
        };
        let g = self.grants.remove(i);
        if let Err(e) = self.save() {
            self.grants.insert(i, g);
            return Err(format!("the revocation was not kept: {e:#}"));
        }
        Ok(Some(g))
    }

    /// Puts back a grant `revoke` took out, when its revocation could not be applied.
    fn restore(&mut self, g: Grant) -> Result<(), String> {
        self.grants.push(g);
        self.grants.sort_by_key(|g| g.id);
        self.save()
            .map_err(|e| format!("the grant was not kept again: {e:#}"))
    }

    /// Removes (and returns) the session-scoped grants not made in the boot that started at
    /// `boot` (`boot_second`): their session id may now be anyone's login of that user.
    pub fn prune_other_boots(&mut self, boot: Option<i64>) -> anyhow::Result<Vec<Grant>> {
        let this_boot = |g: &Grant| match (g.session_boot, boot) {
            (Some(made), Some(now)) => (made - now).abs() <= BOOT_SLACK,
            _ => false,
        };
        let (ended, kept): (Vec<Grant>, Vec<Grant>) = self
            .grants
            .drain(..)
            .partition(|g| g.session.is_some() && !this_boot(g));
        self.grants = kept;
        if !ended.is_empty() {
            self.save()?;
        }
        Ok(ended)
    }

    /// Removes (and returns) the grants that ended by `now`. The kernel ended them already.
    pub fn prune(&mut self, now: Timestamp) -> anyhow::Result<Vec<Grant>> {
        let (ended, kept): (Vec<Grant>, Vec<Grant>) =
            self.grants.drain(..).partition(|g| g.until <= now);
        self.grants = kept;
        if !ended.is_empty() {
            self.save()?;
        }
        Ok(ended)
    }

    /// The grants as rules, with ids from `first_id` on, to append to the policy's rules.
    /// Destinations were checked when the grant was made; one that no longer parses (a
    /// hand-edited state file) is left out.
    pub fn rules(&self, first_id: u32) -> Vec<EffRule> {
        self.grants
            .iter()
            .zip(first_id..)
            .map(|(g, id)| EffRule {
                id,
                name: format!("grant-{}", g.id),
                span: None,
                everyone: false,
                uids: BTreeSet::from([g.uid]),
                mode: Mode::Enforce,
                expires: Some(g.until),
                schedule: None,
                allow: g
                    .dests
                    .iter()
                    .filter_map(|d| crate::explain::parse_dest(d).ok())
                    .filter(|d| !d.listen)
                    .map(|d| entry(&d))
                    .collect(),
                deny: Vec::new(),
                listen: Vec::new(),
                via: Vec::new(),
                session: g.session,
                reason: Some(g.reason.clone()),
            })
            .collect()
    }
}

/// `rules` with the grants appended, compiled: the image the kernel gets. The policy's own
/// rules keep their ids, so events of older generations still name them.
pub fn compile_with_grants(
    rules: &RuleSet,
    store: &Store,
    now: Timestamp,
) -> anyhow::Result<(RuleSet, crate::compile::image::MapImage)> {
    let mut all = rules.clone();
    all.rules.extend(store.rules(rules.rules.len() as u32 + 1));
    let (image, _) = crate::compile::compile_rules(&all, now)
        .map_err(|e| anyhow::anyhow!("the grants do not compile with the policy: {e}"))?;
    Ok((all, image))
}

/// `planned` with the grants in force appended and compiled in: what `reload` applies.
pub fn with_grants(
    planned: anyhow::Result<super::Plan>,
    store: &Store,
) -> anyhow::Result<super::Plan> {
    let mut plan = planned?;
    if store.list().is_empty() {
        return Ok(plan);
    }
    let (rules, image) = compile_with_grants(&plan.rules, store, Timestamp::now())?;
    plan.rules = rules;
    plan.image = image;
    Ok(plan)
}

fn resolve_user(user: &str) -> Result<u32, String> {
    match user.parse::<u32>() {
        Ok(u) => Ok(u),
        Err(_) => nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
            .ok_or_else(|| format!("unknown user `{}`", crate::escape::escape(user))),
    }
}

/// Logs a grant's start, end or revocation as its own journal entry, every field structured
/// (the exact text) and the message escaped (one line, no terminal sequences).
fn log(id: &'static str, what: &str, g: &Grant, extra: &str) {
    use crate::escape::{escape, escape_word};
    let session = g
        .session
        .map(|s| format!(" in session {s}"))
        .unwrap_or_default();
    let by_login = g
        .granted_by_login_uid
        .map(|l| format!(" login {l}"))
        .unwrap_or_default();
    tracing::info!(
        message_id = id,
        jump_grant_id = g.id,
        jump_grant_rule = %format!("grant-{}", g.id),
        jump_grant_user = %g.user,
        jump_grant_uid = g.uid,
        jump_grant_dests = %g.dests.join(" "),
        jump_grant_from = %g.from,
        jump_grant_until = %g.until,
        jump_grant_reason = %g.reason,
        jump_grant_session = g.session,
        jump_granted_by_uid = g.granted_by_uid,
        jump_granted_by_pid = g.granted_by_pid,
        jump_granted_by_login_uid = g.granted_by_login_uid,
        "grant {} {what}: {}({}) -> {} from {} until {}{session} reason={} (granted by uid {}{by_login} pid {}){extra}",
        g.id,
        escape_word(&g.user),
        g.uid,
        escape(&g.dests.join(",")),
        g.from,
        g.until,
        escape_word(&g.reason),
        g.granted_by_uid,
        g.granted_by_pid,
    );
}

/// Applies the grants in force to the policy in force: its own rules with the store's grants
/// appended, as the next generation. The policy's source is not read again, so a grant or a
/// revocation never depends on it: a policy directory (or etcd revision) that is being edited
/// or does not validate cannot keep a revoked grant in the kernel. Before any policy is in
/// force, a full reload. `Err` when the kernel did not take the image.
///
/// A rejection of the policy's source stays what `jumpctl status` shows as the last reload:
/// applying a grant says nothing about the directory.
fn apply(
    dp: &mut dyn crate::datapath::Datapath,
    st: &mut super::State,
    opts: &super::Options,
    trigger: &str,
) -> Result<(), String> {
    let Some(a) = &st.active else {
        super::reload(dp, st, opts, trigger);
        return outcome(st);
    };
    let now = Timestamp::now();
    let mut policy = a.compiled.rules.clone();
    policy.rules.truncate(a.policy_rules);
    let planned = compile_with_grants(&policy, &st.grants, now).map(|(rules, image)| super::Plan {
        image,
        recompile_by: crate::compile::time::recompile_by(&policy, now),
        rules,
        sha256: a.sha256.clone(),
        warnings: Vec::new(),
        policy_rules: a.policy_rules,
    });
    let rejected_source = st.last_reload.clone().filter(|r| !r.ok);
    super::systemd::reloading();
    super::reload_with(dp, st, opts, trigger, planned);
    let result = outcome(st);
    if result.is_ok() && rejected_source.is_some() {
        st.last_reload = rejected_source;
    }
    super::systemd::ready(&super::status_line(st, opts));
    result
}

/// Whether the last reload put its image in force.
fn outcome(st: &super::State) -> Result<(), String> {
    match &st.last_reload {
        Some(r) if !r.ok => Err(r.error.clone().unwrap_or_default()),
        _ => Ok(()),
    }
}

/// `jumpctl grant`: keeps the grant, then applies it to the policy in force as the next
/// generation. A grant the policy cannot take is withdrawn again.
pub fn grant(
    dp: &mut dyn crate::datapath::Datapath,
    st: &mut super::State,
    opts: &super::Options,
    peer: &super::control::Peer,
    req: &GrantRequest,
) -> super::Reply {
    use super::{ErrorKind, Reply};
    let by = Granter::of_peer(peer.uid, peer.pid.unwrap_or(0).max(0) as u32, |s| {
        // A fresh look at /proc: the last batch's may predate the caller's session.
        st.enricher.new_batch();
        st.enricher.trusted(s)
    });
    let uid = match resolve_user(&req.user) {
        Ok(u) => u,
        Err(e) => return Reply::err(ErrorKind::Invalid, e),
    };
    let g = match st
        .grants
        .add(req, uid, by, opts.grant_max, Timestamp::now())
    {
        Ok(g) => g,
        Err(e) => return Reply::err(ErrorKind::Invalid, e),
    };
    if let Err(e) = apply(dp, st, opts, "grant") {
        let _ = st.grants.revoke(g.id);
        let _ = apply(dp, st, opts, "grant withdrawn");
        return Reply::err(
            ErrorKind::Rejected,
            format!("the grant cannot be applied: {e}"),
        );
    }
    log(message_id::GRANTED, "given", &g, "");
    Reply::ok(Granted {
        grant: g,
        generation: st.generation,
    })
}

/// `jumpctl revoke ID`: ends the grant at once, by a generation of the policy in force without
/// it, whose revocation pass closes its connections. Where that generation cannot be applied,
/// the grant is kept and the answer is an error, never "revoked".
pub fn revoke(
    dp: &mut dyn crate::datapath::Datapath,
    st: &mut super::State,
    opts: &super::Options,
    peer: &super::control::Peer,
    id: u64,
) -> super::Reply {
    use super::{ErrorKind, Reply};
    let g = match st.grants.revoke(id) {
        Ok(Some(g)) => g,
        Ok(None) => return Reply::err(ErrorKind::Invalid, format!("no grant {id} is in force")),
        Err(e) => return Reply::err(ErrorKind::Failed, e),
    };
    if let Err(e) = apply(dp, st, opts, "grant revoked") {
        let kept = st.grants.restore(g).err().unwrap_or_default();
        return Reply::err(
            ErrorKind::Failed,
            format!("grant {id} is still in force: the generation without it was not applied: {e}{kept}"),
        );
    }
    let by = Granter::of_peer(peer.uid, peer.pid.unwrap_or(0).max(0) as u32, |s| {
        // A fresh look at /proc: the last batch's may predate the caller's session.
        st.enricher.new_batch();
        st.enricher.trusted(s)
    });
    let login = by
        .login_uid
        .map(|l| format!(" login {l}"))
        .unwrap_or_default();
    log(
        message_id::REVOKED,
        "revoked",
        &g,
        &format!("; revoked by uid {}{login} pid {}", by.uid, by.pid),
    );
    Reply::ok(Revoked {
        revoked: g,
        generation: st.generation,
    })
}

/// Prunes the grants that ended (the kernel ended them already, by their window), logs each,
/// and compiles the policy without them.
pub fn expire(
    dp: &mut dyn crate::datapath::Datapath,
    st: &mut super::State,
    opts: &super::Options,
) {
    let ended = match st.grants.prune(Timestamp::now()) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("failed to prune the ended grants: {e:#}");
            return;
        }
    };
    for g in &ended {
        log(message_id::EXPIRED, "expired", g, "");
    }
    if !ended.is_empty() {
        if let Err(e) = apply(dp, st, opts, "grant expired") {
            tracing::error!("the generation without the ended grants was not applied: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(user: &str, dests: &[&str], duration: &str, reason: &str) -> GrantRequest {
        GrantRequest {
            user: user.into(),
            dests: dests.iter().map(|d| d.to_string()).collect(),
            duration: Some(duration.into()),
            until: None,
            reason: reason.into(),
            session: None,
        }
    }

    const BY: Granter = Granter {
        uid: 0,
        pid: 1,
        login_uid: Some(1000),
    };

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("90m"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(parse_duration("2h"), Ok(SignedDuration::from_hours(2)));
        assert_eq!(parse_duration("1d"), Ok(SignedDuration::from_hours(24)));
        assert_eq!(parse_duration("4s"), Ok(SignedDuration::from_secs(4)));
        assert_eq!(
            parse_duration("soon"),
            Err("invalid duration `soon`: write it like `90m`, `2h` or `1h30m`".into())
        );
        assert!(parse_duration("-5m").is_err());
    }

    #[test]
    fn a_session_grant_holds_only_in_the_boot_it_was_made_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let (now, max) = (Timestamp::now(), DEFAULT_MAX_DURATION);
        let mut scoped = req("alice", &["198.51.100.7:22"], "2h", "this login");
        scoped.session = Some(42);
        let g = s.add(&scoped, 1000, BY, max, now).unwrap();
        let boot = boot_second().unwrap();
        assert_eq!(g.session_boot, Some(boot));
        s.add(
            &req("bob", &["198.51.100.7:22"], "2h", "x"),
            1001,
            BY,
            max,
            now,
        )
        .unwrap();

        assert!(
            s.prune_other_boots(Some(boot + 3)).unwrap().is_empty(),
            "this boot"
        );
        let mut again = Store::open(dir.path()).unwrap();
        let ended = again.prune_other_boots(Some(boot + 3600)).unwrap();
        assert_eq!(
            ended.len(),
            1,
            "a later boot: session 42 may be anyone's now"
        );
        assert_eq!(ended[0].session, Some(42));
        let kept = Store::open(dir.path()).unwrap();
        assert_eq!(
            kept.list().len(),
            1,
            "kept on disk: bob's, which has no session"
        );
        assert_eq!(kept.list()[0].user, "bob");
    }

    #[test]
    fn a_grant_is_bounded_and_kept_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let now = Timestamp::now();
        let max = DEFAULT_MAX_DURATION;
        let g = s
            .add(
                &req("alice", &["198.51.100.7:22"], "2h", "INC-1\nfake line"),
                1000,
                BY,
                max,
                now,
            )
            .unwrap();
        assert_eq!(
            (g.id, g.dests.clone()),
            (1, vec!["198.51.100.7:22/tcp".to_string()])
        );
        assert_eq!(
            s.add(
                &req("alice", &["198.51.100.7:22"], "25h", "x"),
                1000,
                BY,
                max,
                now
            ),
            Err("`--for 25h` is longer than the maximum grant (24h)".into())
        );
        assert!(s
            .add(
                &req("alice", &["198.51.100.7:22"], "1h", " "),
                1000,
                BY,
                max,
                now
            )
            .is_err());
        assert!(s
            .add(
                &req(
                    "alice",
                    &["198.51.100.7:22"],
                    "1h",
                    &"x".repeat(MAX_REASON + 1)
                ),
                1000,
                BY,
                max,
                now
            )
            .is_err());
        assert!(s
            .add(&req("alice", &["listen:22"], "1h", "x"), 1000, BY, max, now)
            .is_err());
        let many: Vec<String> = (0..=MAX_DESTS)
            .map(|i| format!("198.51.100.{i}:22"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(s
            .add(&req("alice", &many, "1h", "x"), 1000, BY, max, now)
            .is_err());
        for _ in 1..MAX_PER_USER {
            s.add(
                &req("alice", &["198.51.100.8:22"], "1h", "x"),
                1000,
                BY,
                max,
                now,
            )
            .unwrap();
        }
        assert!(
            s.add(
                &req("alice", &["198.51.100.9:22"], "1h", "x"),
                1000,
                BY,
                max,
                now
            )
            .is_err(),
            "a user's grants are bounded"
        );
        // The file holds exactly the list, and a reopened store continues the numbering.
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.list(), s.list());
        assert_eq!(again.next_id, s.next_id);
        assert_eq!(
            again.list()[0].reason,
            "INC-1\nfake line",
            "exact text kept"
        );
        let later = now + SignedDuration::from_hours(3);
        let ended = s.prune(later).unwrap();
        assert_eq!(ended.len(), MAX_PER_USER);
        assert!(Store::open(dir.path()).unwrap().list().is_empty());
    }

    #[test]
    fn grants_become_enforce_allow_rules_after_the_policy_so_a_deny_wins() {
        let p = crate::policy::load_str(
            "p.yaml",
            "rules:\n  - name: no-db\n    users: [alice]\n    deny: [{to: 198.51.100.9}]\n",
        )
        .unwrap()
        .policy;
        let dir = crate::resolve::FakeDirectory::default().user("alice", 1000, 1000);
        let now = Timestamp::now();
        let c = crate::compile::compile_full(&p, &dir, now).unwrap();
        let mut s = Store::in_memory();
        s.add(
            &req(
                "alice",
                &["198.51.100.7:22", "198.51.100.9:5432"],
                "1h",
                "INC-7",
            ),
            1000,
            BY,
            DEFAULT_MAX_DURATION,
            now,
        )
        .unwrap();
        let (rules, image) = compile_with_grants(&c.rules, &s, now).unwrap();
        let t = crate::compile::time::ns(now);
        let v = image.lookup(1000, "198.51.100.7".parse().unwrap(), 6, 22, t);
        let id = rules.rules.len() as u32;
        assert_eq!(
            (v.action, image.rules[v.rule_id as usize].name.as_str()),
            (1, "grant-1")
        );
        assert_eq!(v.rule_id, id);
        assert_eq!(image.rules[id as usize].reason.as_deref(), Some("INC-7"));
        let v = image.lookup(1000, "198.51.100.9".parse().unwrap(), 6, 5432, t);
        assert_eq!(
            (v.action, image.rules[v.rule_id as usize].name.as_str()),
            (0, "no-db"),
            "the policy's deny wins over the grant"
        );
        let after = crate::compile::time::ns(now + SignedDuration::from_mins(61));
        assert_eq!(
            image
                .lookup(1000, "198.51.100.7".parse().unwrap(), 6, 22, after)
                .action,
            0,
            "the kernel ends the grant by its window"
        );
        assert_eq!(
            image
                .lookup(1001, "198.51.100.7".parse().unwrap(), 6, 22, t)
                .action,
            0,
            "only the user granted"
        );
    }
}
