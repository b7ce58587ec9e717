//! The pure half of a reload: read and compile the policy (`plan`), without touching the
//! kernel. `reload` applies the result.

use super::*;

/// A compiled policy, ready to apply.
pub struct Plan {
    /// The policy as written; audit mode is applied at install time (`audit::audit_only`).
    pub image: MapImage,
    /// The resolved rules, for `jumpctl check` against the live policy.
    pub rules: crate::resolve::RuleSet,
    pub sha256: String,
    pub warnings: Vec<String>,
    /// Schedules are expanded a few days ahead: the policy must be compiled again before this.
    pub recompile_by: Option<jiff::Timestamp>,
    /// How many of `rules.rules` are the policy's own; just-in-time grants follow them.
    pub policy_rules: usize,
}

/// How jumpd reads its policy: only root may write it, a file being written is not applied,
/// and nothing from a file an admin could not read reaches the log or `jumpctl status`.
pub const READ: policy::ReadOptions = policy::ReadOptions {
    ownership: policy::Ownership::Refuse,
    until_stable: true,
    redact_private: true,
};

/// Parse and compile the policy directory against the host's accounts and `subuid` file. Pure
/// with respect to the kernel. `known`: the principals the active policy resolved, which may
/// have been deleted since (their grants go, with a warning). `memo`: the files parsed by the
/// last call, so only changed files are parsed again (`policy::Memo`).
pub fn plan(
    dir: &std::path::Path,
    known: &crate::resolve::Principals,
    subuid: &std::path::Path,
    memo: &mut policy::Memo,
) -> anyhow::Result<Plan> {
    let loaded =
        policy::load_dir_memo(dir, READ, Some(memo)).map_err(|e| anyhow::anyhow!("{e}"))?;
    plan_loaded(loaded, known, subuid)
}

/// `plan` of a policy already read (a directory, or etcd's keys).
pub fn plan_loaded(
    loaded: policy::Loaded,
    known: &crate::resolve::Principals,
    subuid: &std::path::Path,
) -> anyhow::Result<Plan> {
    let now = jiff::Timestamp::now();
    let directory = crate::resolve::Accounts::host(subuid);
    let compiled = compile::compile_with(
        &loaded.policy,
        &directory,
        now,
        crate::resolve::Vanished::Warn(known),
    )
    .map_err(|mut e| {
        policy::redact(&mut e.errors, &loaded.private);
        anyhow::anyhow!("{e}")
    })?;
    let mut compiled = compiled;
    policy::redact(&mut compiled.warnings, &loaded.private);
    let recompile_by = compile::time::recompile_by(&compiled.rules, now);
    let mut warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    warnings.extend(compiled.warnings.iter().map(|w| w.to_string()));
    Ok(Plan {
        image: compiled.image,
        policy_rules: compiled.rules.rules.len(),
        rules: compiled.rules,
        sha256: loaded.sha256,
        warnings,
        recompile_by,
    })
}
