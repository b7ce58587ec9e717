//! `jumpctl show [USER]`: the effective policy read back from a compiled map image — what each
//! user may reach, listen on, and when — in the spirit of `sshd -T` and `nft list ruleset`.
//! It reads the image the kernel holds (jumpd answers from the image it installed, audit mode
//! applied), not the YAML, so what it prints is what is enforced. Pure.

use std::{collections::BTreeMap, fmt::Write};

use jump_common::{Candidate, ANY_UID, LISTEN_CLASS, WINDOW_ALWAYS};

use super::{
    dump::{action_name, time},
    image::{MapImage, PortEntry},
};
use crate::policy::Proto;

/// Windows listed per candidate; the rest are counted.
const WINDOWS_SHOWN: usize = 3;

/// The effective policy of `who` (name if known, uid), or of every profile when `None`.
/// `name_of` names uids for the user list.
pub fn show(
    image: &MapImage,
    who: Option<(&str, u32)>,
    name_of: &dyn Fn(u32) -> Option<String>,
) -> String {
    let mut s = String::new();
    let default = action_name(image.default_action);
    match who {
        Some((name, uid)) => {
            let (decided, profile) = image.user(uid);
            let _ = write!(s, "user {name} (uid {uid})");
            if decided != uid {
                let owner = name_of(decided).unwrap_or_else(|| decided.to_string());
                let _ = write!(
                    s,
                    ": a subordinate uid of {owner} (uid {decided}), decided as them"
                );
            }
            s.push('\n');
            // The kernel holds prefixes; adjacent ones read as one range.
            let mut ranges: Vec<(u32, u32)> = Vec::new();
            for b in image.subuids.iter().filter(|b| b.owner == uid) {
                let last = b.first | (u32::MAX.checked_shr(u32::from(b.bits)).unwrap_or(0));
                match ranges.last_mut() {
                    Some((_, end)) if end.checked_add(1) == Some(b.first) => *end = last,
                    _ => ranges.push((b.first, last)),
                }
            }
            for (first, last) in ranges {
                let _ = writeln!(
                    s,
                    "  subordinate uids {first}-{last} are decided as this user"
                );
            }
            match profile {
                Some(p) => {
                    if !image.users.contains_key(&decided) {
                        let _ =
                            writeln!(s, "  no rule names this user: the rules for everyone apply");
                    }
                    profile_text(&mut s, image, p, "  ");
                }
                None => {
                    let _ = writeln!(s, "  no rule applies to this user");
                }
            }
            let _ = writeln!(
                s,
                "  anything else: {default} (default); listening on any other port: deny"
            );
        }
        None => {
            let mut profiles: BTreeMap<u32, Vec<String>> = BTreeMap::new();
            for (&uid, &p) in &image.users {
                let label = if uid == ANY_UID {
                    "everyone else".to_string()
                } else {
                    match name_of(uid) {
                        Some(n) => format!("{n} ({uid})"),
                        None => uid.to_string(),
                    }
                };
                profiles.entry(p).or_default().push(label);
            }
            let _ = writeln!(s, "default {default}");
            for (p, users) in &profiles {
                let _ = writeln!(s, "profile {p}: {}", users.join(", "));
                profile_text(&mut s, image, *p, "  ");
            }
            if !image.users.contains_key(&ANY_UID) {
                let _ = writeln!(s, "everyone else: no rule applies ({default})");
            }
        }
    }
    s
}

fn profile_text(s: &mut String, image: &MapImage, profile: u32, indent: &str) {
    let mut dests: Vec<_> = image
        .dests
        .iter()
        .filter(|d| d.profile == profile)
        .collect();
    dests.sort_by_key(|d| (d.net.addr().is_ipv6(), d.net));
    if !dests.is_empty() {
        let _ = writeln!(s, "{indent}egress (the longest matching network decides):");
    }
    for d in dests {
        let _ = writeln!(s, "{indent}  {}", d.net);
        let ports = ports_text(image, d.class, &format!("{indent}    "));
        if ports.is_empty() {
            let _ = writeln!(
                s,
                "{indent}    no port: {} (default)",
                action_name(image.default_action)
            );
        }
        s.push_str(&ports);
    }
    let listen = ports_text(image, LISTEN_CLASS | profile, &format!("{indent}  "));
    if !listen.is_empty() {
        let _ = writeln!(s, "{indent}listen:");
        s.push_str(&listen);
    }
}

/// One line per port range of `class`, narrowest range winning where they overlap.
fn ports_text(image: &MapImage, class: u32, indent: &str) -> String {
    let mut entries: Vec<&PortEntry> = image.ports.iter().filter(|p| p.class == class).collect();
    entries.sort_by_key(|p| (p.proto, p.port, p.bits));
    // Adjacent prefixes with the same candidates read as one range.
    let mut ranges: Vec<(u8, u16, u16, &[Candidate])> = Vec::new();
    for p in entries {
        let last = p.port | (u16::MAX.checked_shr(u32::from(p.bits)).unwrap_or(0));
        match ranges.last_mut() {
            Some((proto, _, end, c))
                if *proto == p.proto
                    && *c == p.candidates.as_slice()
                    && end.checked_add(1) == Some(p.port) =>
            {
                *end = last
            }
            _ => ranges.push((p.proto, p.port, last, &p.candidates)),
        }
    }
    let mut s = String::new();
    for (proto, first, last, candidates) in ranges {
        let ports = match (first, last) {
            (0, u16::MAX) => "any port".to_string(),
            (a, b) if a == b => a.to_string(),
            (a, b) => format!("{a}-{b}"),
        };
        let _ = writeln!(
            s,
            "{indent}{} {ports}: {}",
            Proto::name_of(proto),
            candidates_text(image, candidates)
        );
    }
    s
}

/// `allow by rule `a` (file:line:col) during …; otherwise deny by …` in precedence order.
fn candidates_text(image: &MapImage, candidates: &[Candidate]) -> String {
    let mut parts = Vec::new();
    for c in candidates {
        let rule = image.rules.get(c.rule_id as usize);
        let mut p = format!(
            "{} by rule `{}`",
            action_name(c.action),
            rule.map_or("?", |r| r.name.as_str())
        );
        if let Some(r) = rule.filter(|r| !r.location.is_empty()) {
            let _ = write!(p, " ({})", r.location);
        }
        if let Some(ifs) = image.vias.get(&c.rule_id) {
            let _ = write!(p, " via ifindex {ifs:?}");
        }
        if c.window != WINDOW_ALWAYS {
            let iv = image
                .windows
                .get(c.window as usize)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let shown: Vec<String> = iv
                .iter()
                .take(WINDOWS_SHOWN)
                .map(|&(a, b)| match (a, b) {
                    (0, b) => format!("until {}", time(b)),
                    (a, u64::MAX) => format!("from {}", time(a)),
                    (a, b) => format!("{}..{}", time(a), time(b)),
                })
                .collect();
            if !iv.is_empty() {
                let _ = write!(p, " {}", shown.join(", "));
            }
            if iv.len() > WINDOWS_SHOWN {
                let _ = write!(p, " (+{} more)", iv.len() - WINDOWS_SHOWN);
            }
            if iv.is_empty() {
                p.push_str(" never (its time windows are over)");
            }
        }
        parts.push(p);
    }
    if parts.is_empty() {
        return format!("{} (default)", action_name(image.default_action));
    }
    parts.join("; otherwise ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile::compile_full, resolve::FakeDirectory};

    fn image(policy: &str) -> MapImage {
        let loaded = crate::policy::load_str("p.yaml", policy).unwrap();
        let dir = FakeDirectory::default()
            .user("alice", 64530, 64530)
            .user("bob", 64531, 64531)
            .subuid("alice", 300000, 65536);
        compile_full(
            &loaded.policy,
            &dir,
            "2026-11-23T08:00:00Z".parse().unwrap(),
        )
        .unwrap()
        .image
    }

    const POLICY: &str = "\
defaults: {egress: deny, loopback: policy}
rules:
  - name: ssh
    users: [alice]
    allow: [{to: [198.51.100.0/24], ports: [22], proto: [tcp]}]
  - name: web
    users: [alice]
    allow: [{to: [198.51.100.0/24], ports: [8000-8003], proto: [tcp]}]
    listen: [{ports: [9000], proto: [tcp]}]
";

    #[test]
    fn a_user_sees_what_they_may_reach_and_listen_on() {
        let img = image(POLICY);
        let none = |_: u32| None;
        let s = show(&img, Some(("alice", 64530)), &none);
        assert_eq!(
            s,
            "user alice (uid 64530)\n  subordinate uids 300000-365535 are decided as this user\n  egress (the longest matching network decides):\n    198.51.100.0/24\n      tcp 22: allow by rule `ssh` (p.yaml:3:5)\n      tcp 8000-8003: allow by rule `web` (p.yaml:6:5)\n  listen:\n    tcp 9000: allow by rule `web` (p.yaml:6:5)\n  anything else: deny (default); listening on any other port: deny\n"
        );
        let s = show(&img, Some(("bob", 64531)), &none);
        assert_eq!(
            s,
            "user bob (uid 64531)\n  no rule applies to this user\n  anything else: deny (default); listening on any other port: deny\n"
        );
        let s = show(&img, Some(("300001", 300001)), &|u| {
            (u == 64530).then(|| "alice".to_string())
        });
        assert!(
            s.starts_with("user 300001 (uid 300001): a subordinate uid of alice (uid 64530), decided as them\n"),
            "{s}"
        );
    }

    #[test]
    fn every_profile_names_its_users() {
        let img = image(POLICY);
        let s = show(&img, None, &|u| (u == 64530).then(|| "alice".to_string()));
        assert!(s.starts_with("default deny\nprofile "), "{s}");
        assert!(s.contains(": alice (64530)\n"), "{s}");
        assert!(
            s.ends_with("everyone else: no rule applies (deny)\n"),
            "{s}"
        );
    }
}
