//! Position-carrying YAML tree → model. Every check reports into one list and carries on, so
//! one run shows every mistake. The reader (`reader`), scalar values (`scalar`), rules (`rule`)
//! and zones with the cross-file resolution (`zones`) each have a file; this one holds the
//! policy's top level.

pub(crate) mod reader;
mod rule;
mod scalar;
mod zones;

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::Arc,
};

use ipnet::IpNet;

use reader::*;
use rule::*;
use scalar::*;
use zones::*;

use super::{
    diag::suggest,
    model::*,
    yaml::{self, Kind, Node},
    Diagnostic, PolicyErrors, Span,
};

pub(crate) const TOP_KEYS: &[&str] = &["defaults", "zones", "rules"];

pub(crate) const DEFAULTS_KEYS: &[&str] = &["egress", "log", "loopback", "identity"];

pub(crate) const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "users",
    "groups",
    "allow",
    "deny",
    "listen",
    "mode",
    "expires",
    "schedule",
    "via",
];

pub(crate) const ENTRY_KEYS: &[&str] = &["to", "ports", "proto"];

pub(crate) const LISTEN_KEYS: &[&str] = &["ports", "proto", "addresses"];

pub(crate) const SCHEDULE_KEYS: &[&str] = &["days", "hours", "tz"];

/// Names the rule table uses for its synthetic entries.
pub(crate) const RESERVED_RULE_NAMES: &[&str] = &["default", "loopback"];

/// Errors (and warnings) kept per policy; more are counted, not kept, so a hostile file of a
/// million mistakes costs no more memory than a few thousand.
pub(crate) const MAX_ERRORS: usize = 1000;

/// A zone reference or an inline address, before zones are resolved.
pub(super) enum Target {
    Zone(String, Span),
    Nets(Vec<IpNet>),
}

pub(super) struct RawEntry {
    entry: Entry,
    targets: Vec<Target>,
}

pub(crate) fn parse_files(
    files: &[(String, String)],
) -> Result<(Policy, Vec<Diagnostic>), PolicyErrors> {
    let (policy, warnings, errors) = parse_files_lenient(files);
    if !errors.is_empty() {
        return Err(PolicyErrors::new(errors));
    }
    Ok((policy, warnings))
}

/// `parse_files`, keeping what parsed despite errors — every rule, also those with errors of
/// their own (a missing or duplicate name included) — so that `jumpctl validate` can resolve
/// their users and groups and report every error at once.
pub(crate) fn parse_files_lenient(
    files: &[(String, String)],
) -> (Policy, Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut errors = Vec::new();
    let mut dropped = 0;
    let mut warnings = Vec::new();
    let mut defaults = Defaults::default();
    let mut defaults_seen: HashMap<&'static str, Span> = HashMap::new();
    let mut zones: Vec<Zone> = Vec::new();
    let mut zone_index: HashMap<String, usize> = HashMap::new();
    let mut rules: Vec<(Rule, Vec<RawEntry>, Vec<RawEntry>)> = Vec::new();
    let mut rule_index: HashMap<String, Span> = HashMap::new();

    for (name, text) in files {
        let mut cx = Ctx::new(name);
        let Ok(root) = cx.parse(text) else {
            errors.append(&mut cx.errors);
            continue;
        };
        let Some(root) = root.filter(|r| !r.is_null()) else {
            continue;
        };
        let Some(top) = cx.map(&root, "policy file", TOP_KEYS) else {
            errors.append(&mut cx.errors);
            continue;
        };
        if let Some((_, d)) = top.get("defaults") {
            parse_defaults(&mut cx, d, &mut defaults, &mut defaults_seen);
        }
        if let Some((_, z)) = top.get("zones") {
            parse_zones(&mut cx, z, &mut zones, &mut zone_index);
        }
        if let Some((_, r)) = top.get("rules") {
            match &r.kind {
                Kind::Seq(items) => {
                    for item in items {
                        if let Some(rule) = parse_rule(&mut cx, item) {
                            // A rule refused for its name (none, or one already taken) stays
                            // in the lenient policy, so that its users and groups are resolved
                            // and reported with that error; `parse_files` refuses the policy.
                            if rule.0.name.is_empty() {
                                rules.push(rule);
                            } else if let Some(first) = rule_index.get(&rule.0.name) {
                                let msg = format!(
                                    "duplicate rule `{}`: first defined at {first}",
                                    rule.0.name
                                );
                                cx.push(Diagnostic::error(rule.0.span.clone(), msg));
                                rules.push(rule);
                            } else {
                                rule_index.insert(rule.0.name.clone(), rule.0.span.clone());
                                rules.push(rule);
                            }
                        }
                    }
                }
                _ if r.is_null() => {}
                _ => cx.wrong_type(r, "rules", "a list of rules"),
            }
        }
        dropped += cx.dropped;
        errors.append(&mut cx.errors);
        if errors.len() > MAX_ERRORS {
            dropped += errors.len() - MAX_ERRORS;
            errors.truncate(MAX_ERRORS);
        }
    }

    // Zones are visible across files, so references are resolved once all files are read.
    let mut out_rules = Vec::new();
    let mut used = vec![false; zones.len()];
    let mut suggestions = 0;
    for (mut rule, allow, deny) in rules {
        rule.allow = resolve_entries(
            allow,
            &zones,
            &zone_index,
            &mut used,
            &mut errors,
            &mut suggestions,
            &mut dropped,
        );
        rule.deny = resolve_entries(
            deny,
            &zones,
            &zone_index,
            &mut used,
            &mut errors,
            &mut suggestions,
            &mut dropped,
        );
        out_rules.push(rule);
    }
    if errors.len() > MAX_ERRORS {
        dropped += errors.len() - MAX_ERRORS;
        errors.truncate(MAX_ERRORS);
    }
    if dropped > 0 {
        errors.push(Diagnostic::error(
            Span::default(),
            format!("{dropped} more errors not shown (at most {MAX_ERRORS} are)"),
        ));
    }
    for (z, used) in zones.iter().zip(used) {
        if !used && warnings.len() < MAX_ERRORS {
            warnings.push(Diagnostic::warning(
                z.span.clone(),
                format!("zone `{}` is never used", z.name),
            ));
        }
    }
    warnings.sort_by(|a, b| a.span.cmp(&b.span));
    (
        Policy {
            defaults,
            zones,
            rules: out_rules,
        },
        warnings,
        errors,
    )
}

fn parse_defaults(
    cx: &mut Ctx,
    n: &Node,
    defaults: &mut Defaults,
    seen: &mut HashMap<&'static str, Span>,
) {
    let Some(m) = cx.map(n, "defaults", DEFAULTS_KEYS) else {
        return;
    };
    for (key, (k, v)) in m {
        let key: &'static str = match key {
            "egress" => "egress",
            "log" => "log",
            "identity" => "identity",
            _ => "loopback",
        };
        let span = cx.span(k);
        if let Some(first) = seen.get(key) {
            cx.err(
                k,
                format!("`defaults.{key}` is set twice: first set at {first}"),
            );
            continue;
        }
        seen.insert(key, span);
        match key {
            "egress" => {
                if let Some(e) = cx.one_of(
                    v,
                    "defaults.egress",
                    &[("deny", Egress::Deny), ("allow", Egress::Allow)],
                ) {
                    defaults.egress = e;
                }
            }
            "log" => {
                if let Some(l) = cx.one_of(
                    v,
                    "defaults.log",
                    &[
                        ("all", LogMode::All),
                        ("deny", LogMode::Deny),
                        ("none", LogMode::None),
                    ],
                ) {
                    defaults.log = l;
                }
            }
            "identity" => {
                if let Some(i) = cx.one_of(
                    v,
                    "defaults.identity",
                    &[("uid", Identity::Uid), ("person", Identity::Person)],
                ) {
                    defaults.identity = i;
                }
            }
            _ => {
                if let Some(l) = cx.one_of(
                    v,
                    "defaults.loopback",
                    &[
                        ("allow", Loopback::Allow),
                        ("deny", Loopback::Deny),
                        ("policy", Loopback::Policy),
                    ],
                ) {
                    defaults.loopback = l;
                }
            }
        }
    }
}
