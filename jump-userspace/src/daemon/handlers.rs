//! The control requests the main loop serves (`handle`): status, stats, check, reload, grants,
//! show, detach; and the periodic integrity check of the maps.

use super::*;

/// Serves one control request; `Some` ends the main loop.
pub(super) fn handle(
    dp: &mut dyn Live,
    st: &mut State,
    opts: &Options,
    call: Call,
) -> Option<Exit> {
    let reply = match &call.request {
        protocol::Request::Status => Reply::ok(status(dp, st, opts)),
        protocol::Request::Reload => {
            reload(dp, st, opts, "jumpctl");
            match st.last_reload.clone() {
                Some(r) if !r.ok => {
                    Reply::err_with(ErrorKind::Rejected, r.error.clone().unwrap_or_default(), r)
                }
                Some(r) => Reply::ok(r),
                None => Reply::err(ErrorKind::Failed, "no reload ran"),
            }
        }
        protocol::Request::Grant(req) => grants::grant(dp, st, opts, &call.peer, req),
        protocol::Request::Grants => Reply::ok(st.grants.list()),
        protocol::Request::Revoke { id } => grants::revoke(dp, st, opts, &call.peer, *id),
        protocol::Request::Stats => match stats(dp, st) {
            Ok(s) => Reply::ok(s),
            Err(e) => Reply::err(
                ErrorKind::Failed,
                format!("failed to read the rule counters: {e:#}"),
            ),
        },
        protocol::Request::Check {
            user,
            dest,
            at,
            login,
        } => check(st, opts, user, login.as_deref(), dest, at.as_deref()),
        protocol::Request::Show { user } => show::show(st, opts, user.as_deref()),
        protocol::Request::Detach => {
            tracing::warn!("detach requested by {}", call.peer);
            return Some(Exit::Detach(call.reply, call.written));
        }
        // Served by the connection itself (control::connection).
        protocol::Request::Events { .. } => Reply::err(ErrorKind::Invalid, "events are not a call"),
    };
    let _ = call.reply.send(reply);
    None
}

/// (rules, users, profiles) of the policy in force.
pub(super) fn status_counts(st: &State) -> (usize, usize, usize) {
    st.active
        .as_ref()
        .map(|a| {
            let i = &a.compiled.image;
            (
                i.rules.len().saturating_sub(1),
                i.users
                    .keys()
                    .filter(|&&u| u != jump_common::ANY_UID)
                    .count(),
                i.users
                    .values()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len(),
            )
        })
        .unwrap_or_default()
}

pub fn status(dp: &dyn Live, st: &State, opts: &Options) -> protocol::Status {
    use jump_common::counter;
    let c = dp.counters().unwrap_or_default();
    let (rules, users, profiles) = status_counts(st);
    protocol::Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        mode: opts.mode.name().to_string(),
        cgroup: opts.cgroup.display().to_string(),
        policy_dir: opts.policy_dir.display().to_string(),
        generation: st.generation,
        policy_sha256: st
            .active
            .as_ref()
            .map(|a| a.sha256.clone())
            .unwrap_or_default(),
        rules,
        users,
        profiles,
        hooks: dp.hooks(),
        started_at: st.started_at.to_string(),
        uptime_secs: st.started.elapsed().as_secs(),
        last_reload: st.last_reload.clone(),
        counters: protocol::Counters {
            decisions: c[counter::DECISIONS as usize],
            events_sent: c[counter::EVENTS_SENT as usize],
            events_suppressed: c[counter::EVENTS_SUPPRESSED as usize],
            events_over_budget: c[counter::EVENTS_OVER_BUDGET as usize],
            events_dropped: c[counter::EVENTS_DROPPED as usize],
            followers_dropped: st
                .bus
                .followers_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            maps_tampered: st.maps_tampered,
        },
        capabilities: st.capabilities.clone(),
        watching: st.watching.clone(),
        integrity: st.integrity.clone(),
        etcd: st.etcd.as_ref().map(etcd::Link::view),
    }
}

pub fn stats(dp: &dyn Live, st: &State) -> anyhow::Result<protocol::Stats> {
    use jump_common::action;
    let Some(active) = &st.active else {
        return Ok(protocol::Stats {
            generation: st.generation,
            rules: Vec::new(),
        });
    };
    let infos = &active.compiled.image.rules;
    let by_name: std::collections::HashMap<String, [u64; 3]> =
        hits_by_name(dp, st)?.into_iter().collect();
    let mut rules: Vec<protocol::RuleStats> = infos
        .iter()
        .enumerate()
        .map(|(id, r)| protocol::RuleStats {
            id: id as u32,
            name: r.name.clone(),
            location: r.location.clone(),
            allow: 0,
            deny: 0,
            audit: 0,
        })
        .collect();
    for r in &mut rules {
        if let Some(h) = by_name.get(&r.name) {
            r.allow = h[action::ALLOW as usize];
            r.deny = h[action::DENY as usize];
            r.audit = h[action::AUDIT as usize];
        }
    }
    Ok(protocol::Stats {
        generation: st.generation,
        rules,
    })
}

/// Rule hits over jumpd's life by rule name and action: generations gone, the previous one
/// (its slot may still count in-flight decisions) and the active one. The active policy's
/// rules come first, in id order.
pub(super) fn hits_by_name(dp: &dyn Live, st: &State) -> anyhow::Result<Vec<(String, [u64; 3])>> {
    let mut by_name = st.retired_hits.clone();
    let previous = st.tables.iter().rev().nth(1);
    if let Some((_, table)) = previous {
        for (rule, act, n) in dp.previous_rule_hits(table.len())? {
            if let (Some(r), true) = (table.get(rule as usize), act < 3) {
                by_name.entry(r.name.clone()).or_default()[act as usize] += n;
            }
        }
    }
    let infos = st
        .active
        .as_ref()
        .map(|a| a.compiled.image.rules.as_slice())
        .unwrap_or_default();
    for (rule, act, n) in dp.rule_hits(infos.len())? {
        if let (Some(r), true) = (infos.get(rule as usize), act < 3) {
            by_name.entry(r.name.clone()).or_default()[act as usize] += n;
        }
    }
    let mut out = Vec::with_capacity(by_name.len());
    for r in infos {
        if let Some(h) = by_name.remove(&r.name) {
            out.push((r.name.clone(), h));
        }
    }
    let mut rest: Vec<_> = by_name.into_iter().collect();
    rest.sort();
    out.extend(rest);
    Ok(out)
}

/// `jumpctl check USER DEST` against the policy in force.
pub(super) fn check(
    st: &State,
    opts: &Options,
    user: &str,
    login: Option<&str>,
    dest: &str,
    at: Option<&str>,
) -> Reply {
    let Some(active) = &st.active else {
        return Reply::err(ErrorKind::Failed, "no policy loaded");
    };
    let at_given = at;
    let result = (|| {
        let dest = explain::parse_dest(dest)?;
        let at = match at {
            Some(a) => explain::parse_time(a)?,
            None => jiff::Timestamp::now(),
        };
        let resolve = |user: &str| match user.parse::<u32>() {
            Ok(u) => Ok(u),
            Err(_) => nix::unistd::User::from_name(user)
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw())
                .ok_or_else(|| format!("unknown user `{user}`")),
        };
        let uid = resolve(user)?;
        let login = login
            .map(|l| resolve(l).map(|u| (l.to_string(), u)))
            .transpose()?;
        // The active image holds its schedules expanded around the moment it was compiled; any
        // other moment is answered by the image jumpd would compile then from the same rules,
        // which is what the kernel would enforce at that moment.
        match at_given {
            None => explain::check_person(&active.compiled, user, uid, login, dest, at),
            Some(_) => {
                let (image, _) = compile::compile_rules(&active.compiled.rules, at)
                    .map_err(|e| e.to_string())?;
                let then = Compiled {
                    image,
                    rules: active.compiled.rules.clone(),
                    warnings: Vec::new(),
                };
                explain::check_person(&then, user, uid, login, dest, at)
            }
        }
    })();
    match result {
        Ok(report) => Reply::ok(explain::CheckAnswer {
            allowed: report.allowed,
            generation: Some(st.generation),
            mode: Some(opts.mode.name().to_string()),
            report,
        }),
        Err(e) => Reply::err(ErrorKind::Invalid, e),
    }
}

/// Reads the maps back; if they differ from what jumpd wrote (root rewrote a pinned map), says
/// so at once as a crit alarm with what differed, and restores them.
pub fn check_integrity(dp: &mut dyn Live, st: &mut State) {
    let found = match dp.verify() {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("failed to read the kernel maps back: {e:#}");
            return;
        }
    };
    let at = jiff::Timestamp::now().to_string();
    st.integrity.checks += 1;
    st.integrity.last_check_at = Some(at.clone());
    if found.is_empty() {
        return;
    }
    st.maps_tampered += 1;
    let restored = match dp.restore().and_then(|()| dp.verify()) {
        Ok(left) if left.is_empty() => Ok(()),
        Ok(left) => Err(anyhow::anyhow!("still differs: {}", left.join("; "))),
        Err(e) => Err(e),
    };
    let what = found.join("; ");
    let outcome = match &restored {
        Ok(()) => "restored".to_string(),
        Err(e) => format!("restoring failed: {e:#}"),
    };
    tracing::error!(
        target: crate::events::sink::ALARM_TARGET,
        message_id = message_id::MAPS_TAMPERED,
        jump_policy_generation = st.generation,
        jump_tampered = %what,
        jump_restored = restored.is_ok(),
        "the kernel maps of generation {} were rewritten behind jumpd's back: {what}; {outcome}",
        st.generation
    );
    st.integrity.last_tampering = Some(protocol::Tampering {
        at,
        generation: st.generation,
        what: found,
        restored: restored.is_ok(),
    });
}
