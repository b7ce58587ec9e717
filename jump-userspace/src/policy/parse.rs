//! Position-carrying YAML tree → model. Every check reports into one list and carries on, so
//! one run shows every mistake.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::Arc,
};

use ipnet::IpNet;

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

struct Ctx {
    file: Arc<str>,
    errors: Vec<Diagnostic>,
    /// Errors beyond `MAX_ERRORS`, counted only.
    dropped: usize,
}

impl Ctx {
    fn span(&self, n: &Node) -> Span {
        Span::new(&self.file, n.pos.line, n.pos.col)
    }

    fn push(&mut self, d: Diagnostic) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(d);
        } else {
            self.dropped += 1;
        }
    }

    fn err(&mut self, n: &Node, msg: impl Into<String>) {
        let span = self.span(n);
        self.push(Diagnostic::error(span, msg));
    }

    fn err_help(&mut self, n: &Node, msg: impl Into<String>, help: impl Into<String>) {
        let span = self.span(n);
        self.push(Diagnostic::error(span, msg).with_help(help));
    }

    fn wrong_type(&mut self, n: &Node, what: &str, expected: &str) {
        let found = n.describe();
        self.err(n, format!("`{what}` must be {expected}, found {found}"));
    }

    /// The entries of a mapping, reporting unknown keys (with a suggestion) and duplicate keys.
    fn map<'n>(
        &mut self,
        n: &'n Node,
        what: &str,
        known: &[&str],
    ) -> Option<BTreeMap<&'n str, (&'n Node, &'n Node)>> {
        let Kind::Map(items) = &n.kind else {
            self.wrong_type(n, what, "a mapping");
            return None;
        };
        let mut out: BTreeMap<&str, (&Node, &Node)> = BTreeMap::new();
        for (k, v) in items {
            let Some(key) = k.as_str() else {
                self.err(
                    k,
                    format!("keys in `{what}` must be strings, found {}", k.describe()),
                );
                continue;
            };
            if !known.contains(&key) {
                let msg = format!("unknown key `{key}` in `{what}`");
                match suggest(key, known.iter().copied()) {
                    Some(s) => self.err_help(k, msg, format!("did you mean `{s}`?")),
                    None => self.err_help(
                        k,
                        msg,
                        format!(
                            "expected one of {}",
                            known
                                .iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                }
                continue;
            }
            if let Some((first, _)) = out.get(key) {
                let first = self.span(first);
                self.err(k, format!("duplicate key `{key}`: first given at {first}"));
                continue;
            }
            out.insert(key, (k, v));
        }
        Some(out)
    }

    /// A list, or a single item standing for a list of one.
    fn seq_or_one<'n>(&mut self, n: &'n Node, what: &str, expected: &str) -> Vec<&'n Node> {
        match &n.kind {
            Kind::Seq(items) => items.iter().collect(),
            Kind::Scalar { .. } if !n.is_null() => vec![n],
            _ => {
                self.wrong_type(n, what, expected);
                vec![]
            }
        }
    }

    fn string(&mut self, n: &Node, what: &str) -> Option<String> {
        match &n.kind {
            Kind::Scalar { value, .. } if !n.is_null() => Some(value.clone()),
            _ => {
                self.wrong_type(n, what, "a string");
                None
            }
        }
    }

    fn one_of<T: Copy>(&mut self, n: &Node, what: &str, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(n, what)?;
        if let Some((_, v)) = options.iter().find(|(k, _)| *k == s) {
            return Some(*v);
        }
        let list = options
            .iter()
            .map(|(k, _)| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.err_help(
            n,
            format!("invalid `{what}` value `{s}`"),
            format!("expected one of {list}"),
        );
        None
    }
}

/// A zone reference or an inline address, before zones are resolved.
enum Target {
    Zone(String, Span),
    Nets(Vec<IpNet>),
}

struct RawEntry {
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
        let mut cx = Ctx {
            file: name.as_str().into(),
            errors: Vec::new(),
            dropped: 0,
        };
        let root = match yaml::parse(text) {
            Ok(r) => r,
            Err(e) => {
                errors.push(Diagnostic::error(
                    Span::new(&cx.file, e.pos.line, e.pos.col),
                    format!("invalid YAML: {}", e.message),
                ));
                continue;
            }
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

/// "Did you mean" suggestions for unknown zones, per policy.
const MAX_SUGGESTIONS: usize = 100;

fn resolve_entries(
    raw: Vec<RawEntry>,
    zones: &[Zone],
    zone_index: &HashMap<String, usize>,
    used: &mut [bool],
    errors: &mut Vec<Diagnostic>,
    suggestions: &mut usize,
    dropped: &mut usize,
) -> Vec<Entry> {
    raw.into_iter()
        .map(|RawEntry { mut entry, targets }| {
            for t in targets {
                match t {
                    Target::Nets(n) => entry.nets.extend(n),
                    Target::Zone(name, span) => match zone_index.get(&name) {
                        Some(&i) => {
                            used[i] = true;
                            entry.nets.extend(zones[i].nets.iter().copied());
                        }
                        None => {
                            let mut d = Diagnostic::error(span, format!("unknown zone `{name}`"));
                            // Bounded per policy: each suggestion is a scan of the zones.
                            *suggestions += 1;
                            let close = if *suggestions <= MAX_SUGGESTIONS {
                                suggest(&name, zones.iter().map(|z| z.name.as_str()))
                            } else {
                                None
                            };
                            if let Some(s) = close {
                                d = d.with_help(format!("did you mean `{s}`?"));
                            } else if zones.is_empty() {
                                d = d.with_help("define it under `zones:` in any policy file");
                            }
                            if errors.len() < MAX_ERRORS {
                                errors.push(d);
                            } else {
                                *dropped += 1;
                            }
                        }
                    },
                }
            }
            entry.nets.sort();
            entry.nets.dedup();
            entry
        })
        .collect()
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

/// A decimal number as a policy writes it: digits only, no sign, no spaces, no leading zero
/// (`"+22"`, `" 22"` and `022` are refused rather than read leniently).
pub(crate) fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// What is wrong with a rule name, if anything. Names appear in logs, events and `check`
/// answers, so two names must never look alike: no control or invisible formatting characters,
/// no white space at either end (which would make `ops` and `ops ` two rules), not blank.
fn name_problem(name: &str) -> Option<&'static str> {
    let invisible = |c: char| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{AD}');
    if name.trim().is_empty() {
        Some("it is blank")
    } else if name.chars().any(char::is_control) {
        Some("it holds a control character")
    } else if name.chars().any(invisible) {
        Some("it holds an invisible formatting character")
    } else if name.trim() != name {
        Some("it begins or ends with white space")
    } else {
        None
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn parse_zones(cx: &mut Ctx, n: &Node, zones: &mut Vec<Zone>, index: &mut HashMap<String, usize>) {
    let Kind::Map(items) = &n.kind else {
        if !n.is_null() {
            cx.wrong_type(n, "zones", "a mapping of zone names to address lists");
        }
        return;
    };
    for (k, v) in items {
        let Some(name) = k.as_str() else {
            cx.err(
                k,
                format!("zone names must be strings, found {}", k.describe()),
            );
            continue;
        };
        if !is_identifier(name) {
            cx.err_help(
                k,
                format!("invalid zone name `{}`", name.escape_debug()),
                "a zone name starts with a letter and holds letters, digits, `_`, `-` and `.`",
            );
            continue;
        }
        let what = format!("zones.{name}");
        let mut nets = Vec::new();
        for item in cx.seq_or_one(v, &what, "a list of addresses or CIDRs") {
            if let Some(s) = cx.string(item, &what) {
                if let Some(net) = parse_net(cx, item, &s) {
                    nets.push(net);
                }
            }
        }
        nets.sort();
        nets.dedup();
        let span = cx.span(k);
        if let Some(&first) = index.get(name) {
            let first = zones[first].span.clone();
            cx.err(
                k,
                format!("duplicate zone `{name}`: first defined at {first}"),
            );
            continue;
        }
        index.insert(name.to_string(), zones.len());
        zones.push(Zone {
            name: name.to_string(),
            nets,
            span,
        });
    }
}

/// An address or a CIDR. IPv4-mapped IPv6 is written back as IPv4, since that is how the
/// kernel sees such a destination.
fn parse_net(cx: &mut Ctx, n: &Node, s: &str) -> Option<IpNet> {
    let net = if let Some((_, len)) = s.split_once('/') {
        if !is_decimal(len) {
            cx.err_help(
                n,
                format!("invalid CIDR `{s}`"),
                "the prefix length is a plain number without sign or leading zero, like `/8`",
            );
            return None;
        }
        match s.parse::<IpNet>() {
            Ok(net) => {
                if net.trunc() != net {
                    cx.err_help(
                        n,
                        format!("invalid CIDR `{s}`: host bits are set"),
                        format!("did you mean `{}`?", net.trunc()),
                    );
                    return None;
                }
                net
            }
            Err(_) => {
                cx.err(n, format!("invalid CIDR `{s}`"));
                return None;
            }
        }
    } else {
        match s.parse::<IpAddr>() {
            Ok(a) => IpNet::from(a),
            Err(_) => {
                cx.err(n, format!("invalid address `{s}`"));
                return None;
            }
        }
    };
    Some(normalize_net(net))
}

pub(crate) fn normalize_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.network().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), n.prefix_len() - 96).unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// A destination in `to:`: an address or CIDR when it looks like one, otherwise a zone name.
fn parse_target(cx: &mut Ctx, n: &Node, s: &str) -> Option<Target> {
    let looks_like_address =
        s.contains('/') || s.contains(':') || s.starts_with(|c: char| c.is_ascii_digit());
    if looks_like_address {
        return parse_net(cx, n, s).map(|net| Target::Nets(vec![net]));
    }
    if !is_identifier(s) {
        cx.err(
            n,
            format!("invalid destination `{s}`: not a zone name, an address or a CIDR"),
        );
        return None;
    }
    Some(Target::Zone(s.to_string(), cx.span(n)))
}

fn parse_port(cx: &mut Ctx, n: &Node, s: &str) -> Option<u16> {
    match s.parse::<u32>() {
        Ok(p) if is_decimal(s) && (1..=65535).contains(&p) => Some(p as u16),
        Ok(_) if is_decimal(s) => {
            cx.err(n, format!("port `{s}` is out of range (1-65535)"));
            None
        }
        _ if is_decimal(s.trim_start_matches('0')) && s.starts_with('0') => {
            cx.err_help(
                n,
                format!("invalid port `{s}`"),
                "write a port without leading zeros, like `22`",
            );
            None
        }
        _ => {
            cx.err_help(
                n,
                format!("invalid port `{s}`"),
                "a port is a number like `22` or a range like `8000-8080`",
            );
            None
        }
    }
}

/// `ports:` → sorted inclusive ranges; `[(0, 65535)]` when absent.
fn parse_ports(cx: &mut Ctx, v: Option<&Node>, what: &str) -> Vec<(u16, u16)> {
    let Some(v) = v else {
        return vec![(0, u16::MAX)];
    };
    let mut out = Vec::new();
    let items = cx.seq_or_one(v, what, "a port, a range or a list of them");
    if items.is_empty() && matches!(v.kind, Kind::Seq(_)) {
        cx.err_help(
            v,
            format!("`{what}` is empty"),
            "omit `ports` to mean every port",
        );
    }
    for item in items {
        let Some(s) = cx.string(item, what) else {
            continue;
        };
        if let Some((a, b)) = s.split_once('-') {
            let (Some(a), Some(b)) = (parse_port(cx, item, a), parse_port(cx, item, b)) else {
                continue;
            };
            if a > b {
                cx.err(
                    item,
                    format!("invalid port range `{s}`: start is greater than end"),
                );
                continue;
            }
            out.push((a, b));
        } else if let Some(p) = parse_port(cx, item, &s) {
            out.push((p, p));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn parse_protos(cx: &mut Ctx, v: Option<&Node>, default: &[Proto], omitted: &str) -> Vec<Proto> {
    let Some(v) = v else { return default.to_vec() };
    if matches!(&v.kind, Kind::Seq(items) if items.is_empty()) {
        cx.err_help(
            v,
            "`proto` is empty",
            format!("omit `proto` to mean {omitted}"),
        );
        return default.to_vec();
    }
    let mut out = Vec::new();
    for item in cx.seq_or_one(v, "proto", "a protocol or a list of them") {
        let Some(p) = cx.one_of(
            item,
            "proto",
            &[
                ("tcp", &[Proto::Tcp][..]),
                ("udp", &[Proto::Udp][..]),
                ("icmp", &[Proto::Icmp][..]),
                ("any", &Proto::ALL[..]),
            ],
        ) else {
            continue;
        };
        out.extend_from_slice(p);
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return default.to_vec();
    }
    out
}

/// Whether a `proto` value names `icmp` itself (not through `any`).
fn names_icmp(n: &Node) -> bool {
    match &n.kind {
        Kind::Seq(items) => items.iter().any(|i| i.as_str() == Some("icmp")),
        _ => n.as_str() == Some("icmp"),
    }
}

fn parse_entry(cx: &mut Ctx, n: &Node, what: &str, default_protos: &[Proto]) -> Option<RawEntry> {
    let m = cx.map(n, what, ENTRY_KEYS)?;
    let span = cx.span(n);
    let Some((_, to)) = m.get("to") else {
        cx.err_help(
            n,
            format!("`{what}` entry has no `to`"),
            "add `to:` with a zone, an address or a CIDR",
        );
        return None;
    };
    let mut targets = Vec::new();
    let mut to_text = Vec::new();
    let items = cx.seq_or_one(to, "to", "a zone, an address, a CIDR or a list of them");
    if items.is_empty() && matches!(to.kind, Kind::Seq(_)) {
        cx.err(to, "`to` is empty");
    }
    for item in items {
        if let Some(s) = cx.string(item, "to") {
            if let Some(t) = parse_target(cx, item, &s) {
                targets.push(t);
                to_text.push(s);
            }
        }
    }
    let proto_node = m.get("proto").map(|e| e.1);
    let omitted = if default_protos.len() == 1 {
        "`tcp`"
    } else {
        "`any`"
    };
    let mut protos = parse_protos(cx, proto_node, default_protos, omitted);
    let ports_node = m.get("ports").map(|e| e.1);
    let ports = parse_ports(cx, ports_node, "ports");
    if let Some(p) = ports_node {
        // ICMP has no ports, so an entry with ports cannot match it: `icmp` named outright is a
        // contradiction; `any` (written or implied) then means tcp and udp.
        if proto_node.is_some_and(names_icmp) {
            cx.err_help(
                p,
                "`ports` cannot be used with `icmp`",
                "give `icmp` an entry of its own, without `ports`",
            );
        }
        protos.retain(|&p| p != Proto::Icmp);
    }
    Some(RawEntry {
        entry: Entry {
            span,
            to: to_text,
            nets: Vec::new(),
            protos,
            ports,
        },
        targets,
    })
}

fn parse_listen(cx: &mut Ctx, n: &Node) -> Option<Listen> {
    let m = cx.map(n, "listen", LISTEN_KEYS)?;
    let span = cx.span(n);
    let Some((_, ports)) = m.get("ports") else {
        cx.err(n, "`listen` entry has no `ports`");
        return None;
    };
    let ports = parse_ports(cx, Some(ports), "ports");
    let mut addresses = Vec::new();
    if let Some((_, a)) = m.get("addresses") {
        for item in cx.seq_or_one(a, "addresses", "a list of addresses or CIDRs") {
            if let Some(s) = cx.string(item, "addresses") {
                if let Some(net) = parse_net(cx, item, &s) {
                    addresses.push(net);
                }
            }
        }
    }
    let protos = parse_protos(cx, m.get("proto").map(|e| e.1), &[Proto::Tcp], "`tcp`");
    let protos: Vec<Proto> = protos.into_iter().filter(|&p| p != Proto::Icmp).collect();
    if protos.is_empty() {
        if let Some((_, p)) = m.get("proto") {
            cx.err(p, "`listen` takes `tcp` or `udp`, not `icmp`");
        }
        return None;
    }
    Some(Listen {
        span,
        protos,
        ports,
        addresses,
    })
}

fn parse_schedule(cx: &mut Ctx, n: &Node) -> Option<Schedule> {
    let m = cx.map(n, "schedule", SCHEDULE_KEYS)?;
    let span = cx.span(n);
    let mut ok = true;
    let mut days = Vec::new();
    match m.get("days") {
        None => days = Day::ALL.to_vec(),
        Some((_, d)) => {
            let names = [
                ("mon", Day::Mon),
                ("tue", Day::Tue),
                ("wed", Day::Wed),
                ("thu", Day::Thu),
                ("fri", Day::Fri),
                ("sat", Day::Sat),
                ("sun", Day::Sun),
            ];
            let items = cx.seq_or_one(d, "days", "a list of days (`mon` … `sun`)");
            if items.is_empty() {
                if matches!(d.kind, Kind::Seq(_)) {
                    cx.err_help(d, "`days` is empty", "omit `days` to mean every day");
                }
                ok = false;
            }
            for item in items {
                match cx.one_of(item, "days", &names) {
                    Some(day) => days.push(day),
                    None => ok = false,
                }
            }
        }
    }
    days.sort();
    days.dedup();
    let (mut start, mut end) = (0, 24 * 60);
    if let Some((_, h)) = m.get("hours") {
        match cx.string(h, "hours") {
            Some(s) => match parse_hours(&s) {
                Some((a, b)) if a != b => (start, end) = (a, b),
                Some(_) => {
                    cx.err_help(
                        h,
                        format!("invalid `hours` `{s}`: start and end are equal"),
                        "omit `hours` to mean the whole day",
                    );
                    ok = false;
                }
                None => {
                    cx.err_help(h, format!("invalid `hours` `{s}`"), "write `HH:MM-HH:MM`, like `08:00-18:00` (`22:00-06:00` runs past midnight)");
                    ok = false;
                }
            },
            None => ok = false,
        }
    }
    let mut tz_name = "UTC".to_string();
    let mut tz = jiff::tz::TimeZone::UTC;
    if let Some((_, t)) = m.get("tz") {
        match cx.string(t, "tz") {
            Some(s) => match jiff::tz::TimeZone::get(&s) {
                Ok(z) => {
                    tz = z;
                    tz_name = s;
                }
                Err(_) => {
                    cx.err_help(
                        t,
                        format!("unknown time zone `{s}`"),
                        "use an IANA name like `Europe/Paris` or `UTC`",
                    );
                    ok = false;
                }
            },
            None => ok = false,
        }
    }
    ok.then_some(Schedule {
        days,
        start,
        end,
        tz_name,
        tz,
        span,
    })
}

/// `HH:MM-HH:MM` → minutes after midnight; the end may be `24:00`.
fn parse_hours(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let hm = |t: &str, allow_24: bool| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        if m >= 60 || h > 24 || (h == 24 && (m != 0 || !allow_24)) {
            return None;
        }
        Some(h * 60 + m)
    };
    Some((hm(a, false)?, hm(b, true)?))
}

fn parse_rule(cx: &mut Ctx, n: &Node) -> Option<(Rule, Vec<RawEntry>, Vec<RawEntry>)> {
    let errors_before = cx.errors.len();
    let m = cx.map(n, "rule", RULE_KEYS)?;
    let span = cx.span(n);
    let name = match m.get("name") {
        Some((_, v)) => cx.string(v, "name"),
        None => {
            cx.err_help(
                n,
                "rule has no `name`",
                "every rule needs a unique `name`; events and `jumpctl check` show it",
            );
            None
        }
    };
    let name_node = m.get("name").map(|e| e.1);
    if let (Some(name), Some(node)) = (&name, name_node) {
        if RESERVED_RULE_NAMES.contains(&name.as_str()) {
            cx.err(node, format!("rule name `{name}` is reserved"));
        } else if let Some(why) = name_problem(name) {
            cx.err(
                node,
                format!("invalid rule name `{}`: {why}", name.escape_debug()),
            );
        }
    }
    let shown = name.clone().unwrap_or_else(|| "<unnamed>".into());
    let description = m
        .get("description")
        .and_then(|(_, v)| cx.string(v, "description"));

    let mut everyone = false;
    let mut users = Vec::new();
    let mut groups = Vec::new();
    if let Some((_, u)) = m.get("users") {
        for item in cx.seq_or_one(u, "users", "a list of user names or uids") {
            let Some(s) = cx.string(item, "users") else {
                continue;
            };
            let span = cx.span(item);
            if s == "*" {
                everyone = true;
            } else if s.starts_with(|c: char| c.is_ascii_digit()) {
                match s.parse::<u32>() {
                    Ok(u32::MAX) => cx.err_help(
                        item,
                        format!("invalid uid `{s}`"),
                        "4294967295 is `(uid_t)-1`, which stands for no uid",
                    ),
                    Ok(uid) if is_decimal(&s) => users.push((UserRef::Uid(uid), span)),
                    Ok(_) => cx.err_help(
                        item,
                        format!("invalid uid `{s}`"),
                        "write a uid without leading zeros",
                    ),
                    Err(_) => cx.err(item, format!("invalid uid `{s}`")),
                }
            } else {
                users.push((UserRef::Name(s), span));
            }
        }
    }
    if let Some((_, g)) = m.get("groups") {
        for item in cx.seq_or_one(g, "groups", "a list of group names") {
            if let Some(s) = cx.string(item, "groups") {
                let span = cx.span(item);
                groups.push((s, span));
            }
        }
    }
    if !everyone && users.is_empty() && groups.is_empty() && cx.errors.len() == errors_before {
        cx.err_help(
            n,
            format!("rule `{shown}` applies to no one: it has no `users` or `groups`"),
            "add `users: [\"*\"]` to apply it to every user",
        );
    }

    let mut allow = Vec::new();
    let mut deny = Vec::new();
    let mut listen = Vec::new();
    for (key, out, default) in [
        ("allow", &mut allow, &[Proto::Tcp][..]),
        ("deny", &mut deny, &Proto::ALL[..]),
    ] {
        if let Some((_, v)) = m.get(key) {
            match &v.kind {
                Kind::Seq(items) => {
                    for item in items {
                        if let Some(e) = parse_entry(cx, item, key, default) {
                            out.push(e);
                        }
                    }
                }
                Kind::Map(_) => {
                    if let Some(e) = parse_entry(cx, v, key, default) {
                        out.push(e);
                    }
                }
                _ if v.is_null() => {}
                _ => cx.wrong_type(v, key, "a list of entries like `{to: dmz, ports: [22]}`"),
            }
        }
    }
    if let Some((_, v)) = m.get("listen") {
        match &v.kind {
            Kind::Seq(items) => listen.extend(items.iter().filter_map(|i| parse_listen(cx, i))),
            _ if v.is_null() => {}
            _ => cx.wrong_type(v, "listen", "a list of entries like `{ports: [8080]}`"),
        }
    }
    if allow.is_empty() && deny.is_empty() && listen.is_empty() && cx.errors.len() == errors_before
    {
        cx.err_help(n, format!("rule `{shown}` grants and denies nothing: it has no `allow`, `deny` or `listen` entries"), "add `allow: [{to: ZONE, ports: [PORT]}]`");
    }
    let mode = match m.get("mode") {
        Some((_, v)) => cx
            .one_of(
                v,
                "mode",
                &[("enforce", Mode::Enforce), ("audit", Mode::Audit)],
            )
            .unwrap_or_default(),
        None => Mode::Enforce,
    };
    let expires = m.get("expires").and_then(|(_, v)| {
        let s = cx.string(v, "expires")?;
        match super::moment::parse(&s) {
            Ok(t) => Some(t),
            Err((why, help)) => {
                let why = why.map(|w| format!(": {w}")).unwrap_or_default();
                cx.err_help(v, format!("invalid `expires` `{s}`{why}"), help);
                None
            }
        }
    });
    let schedule = m.get("schedule").and_then(|(_, v)| parse_schedule(cx, v));
    let via = m
        .get("via")
        .map(|(_, v)| parse_via(cx, v))
        .unwrap_or_default();
    // INVARIANT (unnamed rules are errors): `None` was reported above (missing, or not a
    // string); the empty name marks the rule as refused for `parse_files_lenient`.
    let name = name.unwrap_or_default();
    let rule = Rule {
        name,
        span,
        description,
        everyone,
        users,
        groups,
        allow: Vec::new(),
        deny: Vec::new(),
        listen,
        mode,
        expires,
        schedule,
        via,
    };
    Some((rule, allow, deny))
}

/// `via: [eth1]`: interface names as the kernel allows them (1 to 15 bytes, no `/`, no
/// whitespace, not `.` or `..`).
fn parse_via(cx: &mut Ctx, n: &Node) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    for item in cx.seq_or_one(n, "via", "an interface name or a list of them") {
        let Some(s) = cx.string(item, "via") else {
            continue;
        };
        let valid = !s.is_empty()
            && s.len() <= 15
            && s != "."
            && s != ".."
            && !s.contains('/')
            && !s.chars().any(|c| c.is_whitespace() || c == ':');
        if valid {
            out.push((s, cx.span(item)));
        } else {
            cx.err_help(
                item,
                format!("invalid interface name `{s}`"),
                "an interface name has 1 to 15 characters, without `/`, `:` or spaces (like `eth1`)",
            );
        }
    }
    out
}
