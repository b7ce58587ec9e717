//! The I/O half of a reload: a plan installed as the next generation (`install`), the
//! outcome logged and kept for `jumpctl status`, and revocation of what the new policy no
//! longer allows.

use super::*;

pub(super) fn now_ns() -> u64 {
    jiff::Timestamp::now().as_nanosecond().max(0) as u64
}

/// How far back a window edge still gets its own revocation pass when the run loop reaches it
/// late.
pub(super) const EDGE_CATCH_UP_NS: u64 = 10_000_000_000;

/// Asks for a revocation pass over the installed image.
pub(super) fn request_revocation(st: &State, trigger: revoke::Trigger) {
    if let (Some(worker), Some(image)) = (&st.revoker, &st.installed) {
        worker.submit(revoke::Job {
            image: image.clone(),
            trigger,
            now_ns: now_ns(),
        });
    }
}

/// Logs what a revocation pass closed, and what it failed to.
pub(super) fn log_revocations(st: &State, trigger: &revoke::Trigger, outcome: revoke::Outcome) {
    for e in &outcome.failures {
        tracing::error!("revocation: {e}");
    }
    st.metrics
        .revoked(outcome.revoked.len(), outcome.failures.len());
    for r in outcome.revoked {
        let rec = &r.record;
        let (rule, location) = st.rule_name(rec.generation, rec.rule_id);
        let reason = match trigger {
            revoke::Trigger::Reload(g) => format!("reload to generation {g}"),
            revoke::Trigger::Edge(at) => st.edge_reason(rec, *at),
        };
        let user = user_name(rec.uid);
        let comm = String::from_utf8_lossy(&rec.comm);
        let comm = comm.trim_end_matches('\0');
        tracing::warn!(
            message_id = message_id::REVOKED,
            jump_uid = rec.uid,
            jump_user = user.as_deref().unwrap_or(""),
            jump_login_uid = rec.login_uid,
            jump_pid = rec.pid,
            jump_comm = comm,
            jump_proto = policy::Proto::name_of(r.proto),
            jump_dst_addr = %r.peer.ip(),
            jump_dst_port = r.peer.port(),
            jump_src_addr = %r.local.ip(),
            jump_src_port = r.local.port(),
            jump_rule = %rule,
            jump_rule_location = %location,
            jump_policy_generation = rec.generation,
            jump_revoke_reason = %reason,
            jump_netns = r.netns,
            "revoked {} {} -> {} of uid {}{} (allowed by rule `{rule}`): {reason}",
            policy::Proto::name_of(r.proto),
            r.local,
            r.peer,
            rec.uid,
            user.as_deref().map(|u| format!(" ({u})")).unwrap_or_default(),
        );
    }
}

impl State {
    /// The name and location of rule `id` of `generation`, as far as it is remembered.
    pub(super) fn rule_name(&self, generation: u64, id: u32) -> (String, String) {
        let table = if generation == self.generation {
            self.active.as_ref().map(|a| &a.compiled.image.rules)
        } else {
            self.past_rules
                .iter()
                .find(|(g, _)| *g == generation)
                .map(|(_, r)| r)
        };
        match table.and_then(|t| t.get(id as usize)) {
            Some(r) => (r.name.clone(), r.location.clone()),
            None => (format!("#{id} of generation {generation}"), String::new()),
        }
    }

    /// Why the window edge at `at` (Unix ns) ends a connection allowed by `rec`'s rule.
    pub(super) fn edge_reason(&self, rec: &SockRecord, at: u64) -> String {
        let (name, _) = self.rule_name(rec.generation, rec.rule_id);
        let rule = (rec.generation == self.generation)
            .then(|| self.active.as_ref()?.compiled.rules.rule(rec.rule_id))
            .flatten();
        let at_ts = jiff::Timestamp::from_nanosecond(i128::from(at)).unwrap_or_default();
        match rule {
            Some(r) if r.expires.is_some_and(|e| e <= at_ts) => format!("rule `{name}` expired"),
            Some(r) if r.schedule.is_some() => format!("schedule of `{name}` ended"),
            _ => format!("a time window of the policy closed (rule `{name}`)"),
        }
    }
}

pub(super) fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Applies a plan as the next generation; returns what changed.
pub(super) fn install(
    dp: &mut dyn Datapath,
    st: &mut State,
    plan: Plan,
    mode: Mode,
    trigger: &str,
) -> anyhow::Result<diff::Diff> {
    let generation = st.generation + 1;
    let mut image = plan.image.clone();
    if mode == Mode::Audit {
        audit::audit_only(&mut image);
    }
    dp.apply(&image, generation)?;
    for (g, hits) in dp.take_retired_hits() {
        if let Some((_, table)) = st.tables.iter().find(|(t, _)| *t == g) {
            for (rule, act, n) in hits {
                if let (Some(r), true) = (table.get(rule as usize), act < 3) {
                    st.retired_hits.entry(r.name.clone()).or_default()[act as usize] += n;
                }
            }
        }
    }
    st.tables.push((generation, plan.image.rules.clone()));
    if st.tables.len() > 2 {
        st.tables.remove(0);
    }
    st.generation = generation;
    st.recompile_by = plan.recompile_by;
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    let changes = diff::diff(st.active.as_ref().map(|a| &a.compiled.image), &plan.image);
    let summary = changes.summary(user_name);
    tracing::info!(
        message_id = message_id::POLICY_LOADED,
        jump_policy_generation = generation,
        jump_policy_sha256 = %plan.sha256,
        jump_reload_trigger = trigger,
        jump_mode = mode.name(),
        jump_rules = plan.image.rules.len() - 1,
        jump_users = plan.image.users.len(),
        jump_changes = %summary,
        "policy generation {generation} loaded ({} rules, sha256 {}, {}): {summary}",
        plan.image.rules.len() - 1,
        &plan.sha256[..plan.sha256.len().min(12)],
        trigger,
    );
    // Audit mode revokes nothing, as its image refuses nothing.
    st.installed = Some(Arc::new(image));
    request_revocation(st, revoke::Trigger::Reload(generation));
    if let Some(a) = &st.active {
        st.past_rules
            .push_back((generation - 1, a.compiled.image.rules.clone()));
        if st.past_rules.len() > PAST_RULES {
            st.past_rules.pop_front();
        }
    }
    let table = crate::datapath::RuleTable {
        generation,
        sha256: plan.sha256.clone(),
        rules: plan.image.rules.clone(),
    };
    match serde_json::to_vec(&table).map_err(anyhow::Error::from) {
        Ok(json) => {
            if let Err(e) = dp.keep_rule_table(&json) {
                tracing::warn!("{e:#}");
            }
        }
        Err(e) => tracing::warn!("failed to encode the rule table: {e}"),
    }
    if let Err(e) = dp.clear_previous() {
        tracing::error!("failed to empty the previous generation's slot: {e:#}");
    }
    st.enricher
        .set_generation(generation, plan.image.rules.clone(), plan.sha256.clone());
    st.active = Some(Active {
        policy_rules: plan.policy_rules,
        compiled: Compiled {
            image: plan.image,
            rules: plan.rules,
            warnings: Vec::new(),
        },
        sha256: plan.sha256,
    });
    Ok(changes)
}

/// Re-reads the policy directory and the user database and applies the result. A policy that
/// does not compile, or that the kernel refuses, leaves the active generation in force.
pub fn reload(dp: &mut dyn Datapath, st: &mut State, opts: &Options, trigger: &str) {
    if st.etcd.as_ref().is_some_and(etcd::Link::has_policy) {
        return etcd::reload(dp, st, opts, trigger);
    }
    systemd::reloading();
    let known = st
        .active
        .as_ref()
        .map(|a| a.compiled.rules.principals.clone())
        .unwrap_or_default();
    let planned = grants::with_grants(
        plan(&opts.policy_dir, &known, &opts.subuid_file, &mut st.memo),
        &st.grants,
    );
    reload_with(dp, st, opts, trigger, planned);
    systemd::ready(&status_line(st, opts));
}

pub(super) fn reload_with(
    dp: &mut dyn Datapath,
    st: &mut State,
    opts: &Options,
    trigger: &str,
    planned: anyhow::Result<Plan>,
) {
    let at = jiff::Timestamp::now().to_string();
    // A reload (any trigger: an edit, SIGHUP, jumpctl) that compiles to the very same policy
    // is not a new generation: nothing is written, nothing reset, the numbering stays.
    if let (Ok(p), Some(a)) = (&planned, &st.active) {
        if p.image == a.compiled.image && p.sha256 == a.sha256 {
            tracing::info!(
                jump_policy_generation = st.generation,
                jump_reload_trigger = trigger,
                jump_policy_unchanged = true,
                "reload ({trigger}): policy unchanged, generation {} stays",
                st.generation
            );
            // Still an attempt: `status` shows its state, not an older rejection, and says the
            // directory is what is enforced again.
            st.last_reload = Some(ReloadOutcome {
                ok: true,
                trigger: trigger.to_string(),
                at,
                generation: st.generation,
                error: None,
                changes: None,
                summary: format!(
                    "no change: the policy directory matches generation {}",
                    st.generation
                ),
            });
            st.metrics.reloaded(true, false);
            return;
        }
    }
    let result = planned.and_then(|p| install(dp, st, p, opts.mode, trigger));
    let outcome = match result {
        Ok(changes) => ReloadOutcome {
            ok: true,
            trigger: trigger.to_string(),
            at,
            generation: st.generation,
            error: None,
            summary: changes.summary(user_name),
            changes: Some(changes),
        },
        Err(e) => {
            tracing::error!(
                message_id = message_id::RELOAD_REJECTED,
                jump_policy_generation = st.generation,
                jump_reload_trigger = trigger,
                "reload ({trigger}) rejected, generation {} stays in force: {e:#}",
                st.generation
            );
            ReloadOutcome {
                ok: false,
                trigger: trigger.to_string(),
                at,
                generation: st.generation,
                error: Some(format!("{e:#}")),
                changes: None,
                summary: String::new(),
            }
        }
    };
    st.metrics.reloaded(outcome.ok, true);
    st.last_reload = Some(outcome);
}
