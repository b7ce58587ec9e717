//! Zones and the cross-file step: every entry's zone references resolved to networks, with
//! "did you mean" suggestions for unknown ones.

use super::*;

/// "Did you mean" suggestions for unknown zones, per policy.
pub(super) const MAX_SUGGESTIONS: usize = 100;

pub(super) fn resolve_entries(
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

pub(super) fn parse_zones(
    cx: &mut Ctx,
    n: &Node,
    zones: &mut Vec<Zone>,
    index: &mut HashMap<String, usize>,
) {
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
