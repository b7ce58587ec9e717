//! Position-carrying YAML tree → model. Every check reports into one list and carries on, so
//! one run shows every mistake. The reader (`reader`), scalar values (`scalar`), rules (`rule`)
//! and zones with the cross-file resolution (`zones`) each have a file; this one holds the
//! policy's top level: each file parsed on its own (a few side by side on threads of their own,
//! or taken from the memo), then what spans files checked in file order.

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
#[derive(Clone)]
pub(super) enum Target {
    Zone(String, Span),
    Nets(Vec<IpNet>),
}

#[derive(Clone)]
pub(super) struct RawEntry {
    entry: Entry,
    targets: Vec<Target>,
}

/// A rule as one file's `rules:` list gives it: the rule and its allow and deny entries.
type ParsedRule = (Rule, Vec<RawEntry>, Vec<RawEntry>);

/// One file as parsed before: its text, its `defaults` and `zones` as written (which depend on
/// the other files: set twice, defined twice), and its rules.
struct MemoFile {
    text: String,
    defaults: Option<Node>,
    zones: Option<Node>,
    rules: Vec<ParsedRule>,
}

/// The rules of the files of the last load, so that a reload parses only the files whose text
/// changed (a reload of 100,000 rules spent most of its time parsing YAML that had not
/// changed). Only files without any diagnostic are kept: their rules are a function of their
/// name and text alone (`parse_rule` reads nothing else), so a file read again with the same
/// text gives the same rules; everything that spans files (duplicate rule names, defaults set
/// twice, zones defined twice or unused, zone references) is checked again on every load.
#[derive(Default)]
pub struct Memo {
    files: HashMap<String, MemoFile>,
}

impl Memo {
    /// How many files are kept.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

pub(crate) fn parse_files(
    files: &[(String, String)],
    memo: Option<&mut Memo>,
) -> Result<(Policy, Vec<Diagnostic>), PolicyErrors> {
    let (policy, warnings, errors) = parse_files_with(files, memo);
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
    parse_files_with(files, None)
}

/// The top-level nodes of one file that parsed: `defaults`, `zones` and the parsed rules.
struct FileParts {
    defaults: Option<Node>,
    zones: Option<Node>,
    rules: Vec<ParsedRule>,
    /// Whether parsing the file said nothing (no error, no warning): only then is it memoised.
    clean: bool,
}

/// Parses one file's YAML and its rules; `None` when there is nothing to take from it (a
/// syntax error, an empty file, a top level that is not a mapping).
fn parse_file(cx: &mut Ctx, text: &str, errors: &mut Vec<Diagnostic>) -> Option<FileParts> {
    let Ok(root) = cx.parse(text) else {
        errors.append(&mut cx.errors);
        return None;
    };
    let root = root.filter(|r| !r.is_null())?;
    let Some(top) = cx.map(&root, "policy file", TOP_KEYS) else {
        errors.append(&mut cx.errors);
        return None;
    };
    let defaults = top.get("defaults").map(|(_, d)| (*d).clone());
    let zones = top.get("zones").map(|(_, z)| (*z).clone());
    let mut rules = Vec::new();
    if let Some((_, r)) = top.get("rules") {
        match &r.kind {
            Kind::Seq(items) => rules.extend(items.iter().filter_map(|i| parse_rule(cx, i))),
            _ if r.is_null() => {}
            _ => cx.wrong_type(r, "rules", "a list of rules"),
        }
    }
    let clean = cx.errors.is_empty() && cx.dropped == 0;
    Some(FileParts {
        defaults,
        zones,
        rules,
        clean,
    })
}

/// One file as the first, per-file stage left it: taken from the memo, or parsed now (with the
/// file's reader, whose errors follow those of the parse itself).
enum Stage1 {
    Remembered(MemoFile),
    Parsed(Ctx, Option<FileParts>, Vec<Diagnostic>),
}

/// At most this many files are parsed side by side: each holds its whole YAML tree until it is
/// taken across files, so a policy of many hostile files costs at most this many trees.
const PARSE_THREADS: usize = 4;

fn parse_one((i, name, text): (usize, &str, &str)) -> (usize, Stage1) {
    let mut cx = Ctx::new(name);
    let mut errors = Vec::new();
    let parts = parse_file(&mut cx, text, &mut errors);
    (i, Stage1::Parsed(cx, parts, errors))
}

/// Parses `files` (index, name, text), each on its own thread (`parse_file` reads nothing but
/// the file's name and text): YAML parsing is most of a large policy's load. Returned in the
/// order given.
fn parse_each(files: Vec<(usize, &str, &str)>) -> Vec<(usize, Stage1)> {
    if files.len() <= 1 {
        return files.into_iter().map(parse_one).collect();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .into_iter()
            .map(|f| s.spawn(move || parse_one(f)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// `parse_files_lenient`, taking the rules of files unchanged since the last call from `memo`
/// and leaving there those of this call.
pub(crate) fn parse_files_with(
    files: &[(String, String)],
    mut memo: Option<&mut Memo>,
) -> (Policy, Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut kept: HashMap<String, MemoFile> = HashMap::new();
    let mut errors = Vec::new();
    let mut dropped = 0;
    let mut warnings = Vec::new();
    let mut defaults = Defaults::default();
    let mut defaults_seen: HashMap<&'static str, Span> = HashMap::new();
    let mut zones: Vec<Zone> = Vec::new();
    let mut zone_index: HashMap<String, usize> = HashMap::new();
    let mut rules: Vec<(Rule, Vec<RawEntry>, Vec<RawEntry>)> = Vec::new();
    let mut rule_index: HashMap<String, Span> = HashMap::new();

    let memoising = memo.is_some();
    let mut previous = memo
        .as_deref_mut()
        .map(|m| std::mem::take(&mut m.files))
        .unwrap_or_default();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, PARSE_THREADS);
    // In waves of `threads` files: first each file of the wave on its own (from the memo where
    // its text is unchanged, else parsed, side by side), then, in file order, what spans files,
    // before the next wave is parsed.
    for wave in files.chunks(threads) {
        let mut firsts: Vec<Option<Stage1>> = Vec::with_capacity(wave.len());
        let mut to_parse = Vec::new();
        for (j, (name, text)) in wave.iter().enumerate() {
            match previous.remove(name).filter(|f| f.text == *text) {
                Some(f) => firsts.push(Some(Stage1::Remembered(f))),
                None => {
                    firsts.push(None);
                    to_parse.push((j, name.as_str(), text.as_str()));
                }
            }
        }
        for (j, parsed) in parse_each(to_parse) {
            firsts[j] = Some(parsed);
        }
        for ((name, text), first) in wave.iter().zip(firsts) {
            let Some(first) = first else { continue };
            let (mut cx, parts) = match first {
                Stage1::Remembered(f) => {
                    let parts = FileParts {
                        defaults: f.defaults.clone(),
                        zones: f.zones.clone(),
                        rules: f.rules.clone(),
                        clean: true,
                    };
                    kept.insert(name.clone(), f);
                    (Ctx::new(name), parts)
                }
                Stage1::Parsed(cx, parts, mut early) => {
                    errors.append(&mut early);
                    let Some(parts) = parts else {
                        continue;
                    };
                    if parts.clean && memoising {
                        let f = MemoFile {
                            text: text.clone(),
                            defaults: parts.defaults.clone(),
                            zones: parts.zones.clone(),
                            rules: parts.rules.clone(),
                        };
                        kept.insert(name.clone(), f);
                    }
                    (cx, parts)
                }
            };
            // What spans files, checked on every load, memoised file or not.
            if let Some(d) = &parts.defaults {
                parse_defaults(&mut cx, d, &mut defaults, &mut defaults_seen);
            }
            if let Some(z) = &parts.zones {
                parse_zones(&mut cx, z, &mut zones, &mut zone_index);
            }
            for rule in parts.rules {
                // A rule refused for its name (none, or one already taken) stays in the lenient
                // policy, so that its users and groups are resolved and reported with that error;
                // `parse_files` refuses the policy.
                if rule.0.name.is_empty() {
                    rules.push(rule);
                } else if let Some(first) = rule_index.get(&rule.0.name) {
                    let msg = format!("duplicate rule `{}`: first defined at {first}", rule.0.name);
                    cx.push(Diagnostic::error(rule.0.span.clone(), msg));
                    rules.push(rule);
                } else {
                    rule_index.insert(rule.0.name.clone(), rule.0.span.clone());
                    rules.push(rule);
                }
            }
            dropped += cx.dropped;
            errors.append(&mut cx.errors);
            if errors.len() > MAX_ERRORS {
                dropped += errors.len() - MAX_ERRORS;
                errors.truncate(MAX_ERRORS);
            }
        }
    }

    if let Some(m) = memo {
        // Files gone or changed since the last load are forgotten.
        m.files = kept;
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
