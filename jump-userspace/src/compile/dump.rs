//! A readable dump of a map image, for golden tests and debugging: what the kernel maps will
//! hold, one entry a line, in a stable order.

use std::fmt::Write;

use jump_common::{action, log_mode, ANY_UID};

use super::image::MapImage;
use crate::policy::Proto;

pub(super) fn action_name(a: u8) -> &'static str {
    match a {
        action::DENY => "deny",
        action::ALLOW => "allow",
        action::AUDIT => "audit",
        _ => "?",
    }
}

pub(super) fn time(ns: u64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ns.to_string())
}

pub fn dump(image: &MapImage) -> String {
    let mut s = String::new();
    let log = match image.log_mode {
        log_mode::NONE => "none",
        log_mode::DENY => "deny",
        _ => "all",
    };
    let _ = writeln!(
        s,
        "default {}, log {log}",
        action_name(image.default_action)
    );
    if !image.vias.is_empty() {
        let _ = writeln!(s, "vias:");
        for (rule, set) in &image.vias {
            let _ = writeln!(s, "  r{rule} -> ifindex {set:?}");
        }
    }
    let _ = writeln!(s, "rules:");
    for (i, r) in image.rules.iter().enumerate() {
        let _ = writeln!(s, "  {i} {} {}", r.name, r.location).map(|_| ());
        if r.location.is_empty() {
            s.pop();
            s.pop();
            s.push('\n');
        }
    }
    let _ = writeln!(s, "users:");
    for (uid, profile) in &image.users {
        let uid = if *uid == ANY_UID {
            "*".to_string()
        } else {
            uid.to_string()
        };
        let _ = writeln!(s, "  {uid} -> profile {profile}");
    }
    // Only where there are some, so dumps of hosts without /etc/subuid entries stay as they were.
    if !image.subuids.is_empty() {
        let _ = writeln!(s, "subordinate uids:");
        for b in &image.subuids {
            let last = u64::from(b.first) | (u64::from(u32::MAX) >> b.bits);
            let _ = writeln!(s, "  {}-{last} (/{}) -> {}", b.first, b.bits, b.owner);
        }
    }
    let _ = writeln!(s, "windows:");
    for (i, w) in image.windows.iter().enumerate().skip(1) {
        let iv: Vec<String> = w
            .iter()
            .map(|&(a, b)| format!("[{}, {})", time(a), time(b)))
            .collect();
        let _ = writeln!(s, "  {i}: {}", iv.join(" "));
    }
    let _ = writeln!(s, "dests:");
    for d in &image.dests {
        let _ = writeln!(s, "  profile {} {} -> class {}", d.profile, d.net, d.class);
    }
    let _ = writeln!(s, "ports:");
    for p in &image.ports {
        let last = u32::from(p.port) | (0xffff_u32 >> p.bits);
        let range = if p.bits == 16 {
            p.port.to_string()
        } else {
            format!("{}-{last}", p.port)
        };
        let c: Vec<String> = p
            .candidates
            .iter()
            .map(|c| {
                let w = if c.window == 0 {
                    String::new()
                } else {
                    format!("@w{}", c.window)
                };
                format!("{}:r{}{w}", action_name(c.action), c.rule_id)
            })
            .collect();
        let _ = writeln!(
            s,
            "  class {} {} {range} (/{}) -> {}",
            p.class,
            Proto::name_of(p.proto),
            p.bits,
            c.join(" ")
        );
    }
    s
}
