//! How `jumpctl` prints what jumpd answers: the status summary, the stats table, an event as
//! the log line. User-controlled text is escaped (`crate::escape`).

use serde_json::Value;

use crate::{
    escape::{escape, escape_word},
    protocol::{Stats, Status},
};

/// `3d 4h`, `2h 5m`, `7m 3s`, `42s`.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

pub fn render_status(s: &Status) -> String {
    let mut o = String::new();
    let sha = &s.policy_sha256[..s.policy_sha256.len().min(12)];
    o += &format!(
        "jumpd {} (pid {}), up {}, {} mode\n",
        s.version,
        s.pid,
        uptime(s.uptime_secs),
        s.mode
    );
    o += &format!(
        "cgroup:      {} (hooks {})\n",
        s.cgroup,
        if s.hooks.is_empty() {
            "none".into()
        } else {
            s.hooks.join(", ")
        }
    );
    o += &format!(
        "policy:      {}, generation {}, sha256 {sha}\n             {} rules, {} users, {} profiles\n",
        s.policy_dir, s.generation, s.rules, s.users, s.profiles
    );
    match &s.last_reload {
        Some(r) if r.ok => {
            o += &format!(
                "last reload: ok at {} ({}): {}\n",
                r.at, r.trigger, r.summary
            )
        }
        Some(r) => {
            o += &format!(
                "last reload: REJECTED at {} ({}), generation {} stays in force:\n",
                r.at, r.trigger, r.generation
            );
            for l in r.error.as_deref().unwrap_or("").lines() {
                o += &format!("             {l}\n");
            }
        }
        None => o += "last reload: none\n",
    }
    let c = &s.counters;
    o += &format!(
        "events:      {} decisions, {} sent, {} suppressed, {} over a user's budget, {} dropped (ring buffer full), {} followers dropped\n",
        c.decisions, c.events_sent, c.events_suppressed, c.events_over_budget, c.events_dropped, c.followers_dropped
    );
    if let Some(e) = &s.etcd {
        o += &e.render();
    }
    let i = &s.integrity;
    o += &match &i.last_tampering {
        Some(t) => format!(
            "integrity:   MAPS REWRITTEN {} time(s) behind jumpd's back; last at {} (generation {}, {}): {}\n",
            c.maps_tampered,
            t.at,
            t.generation,
            if t.restored { "restored" } else { "NOT restored" },
            t.what.join("; ")
        ),
        None => format!(
            "integrity:   maps as written ({} checks, last at {})\n",
            i.checks,
            i.last_check_at.as_deref().unwrap_or("-")
        ),
    };
    o += &format!(
        "privileges:  {}; no-new-privileges\n",
        if s.capabilities.is_empty() {
            "none".into()
        } else {
            s.capabilities.join(",")
        }
    );
    o += &format!(
        "watching:    {}\n",
        if s.watching.is_empty() {
            "nothing (reload by SIGHUP or jumpctl reload)".into()
        } else {
            s.watching.join(", ")
        }
    );
    o
}

/// A table with a header; columns padded to the widest cell, numbers right-aligned.
fn table(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if right[i] {
                    format!("{c:>width$}", width = w[i])
                } else {
                    format!("{c:<width$}", width = w[i])
                }
            })
            .collect();
        s.join("  ").trim_end().to_string() + "\n"
    };
    let mut o = line(header.to_vec());
    for r in rows {
        o += &line(r.iter().map(String::as_str).collect());
    }
    o
}

pub fn render_stats(s: &Stats) -> String {
    let rows: Vec<Vec<String>> = s
        .rules
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                escape(&r.name).into_owned(),
                escape(&r.location).into_owned(),
                r.allow.to_string(),
                r.deny.to_string(),
                r.audit.to_string(),
            ]
        })
        .collect();
    format!(
        "generation {}\n{}",
        s.generation,
        table(
            &["ID", "RULE", "LOCATION", "ALLOW", "DENY", "WOULD-DENY"],
            &rows,
            &[true, false, false, true, true, true]
        )
    )
}

/// `2026-01-05T09:00:00.123Z deny alice(1001) -> 203.0.113.7:443/tcp rule=default
/// hook=connect4 pid=4711 comm=curl generation=3`: the decision's time, then the line jumpd logs.
pub fn render_event(v: &Value) -> String {
    let s = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v[k].to_string())
    };
    let addr = s("dst_addr");
    let dst = if addr.contains(':') {
        format!("[{addr}]:{}", v["dst_port"])
    } else {
        format!("{addr}:{}", v["dst_port"])
    };
    // Escaped here too: the line is printed, whatever jumpd sent.
    format!(
        "{} {} {}({}) -> {dst}/{} rule={} hook={} pid={} comm={} generation={}",
        escape_word(&s("time")),
        escape_word(&s("verdict")),
        escape_word(&s("user")),
        v["uid"],
        escape_word(&s("proto")),
        escape(&s("rule")),
        escape_word(&s("hook")),
        v["pid"],
        escape_word(&s("comm")),
        v["policy_generation"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Counters, ReloadOutcome, RuleStats, Stats, Status};

    #[test]
    fn check_takes_an_optional_directory_before_user_and_destination() {
        use clap::Parser;
        let parts = |argv: &[&str]| match crate::ctl::Cli::try_parse_from(argv).unwrap().command {
            crate::ctl::Command::Check(a) => {
                let (d, u, t) = a.parts();
                (
                    d.map(|d| d.display().to_string()),
                    u.to_string(),
                    t.to_string(),
                )
            }
            c => panic!("parsed as {c:?}"),
        };
        assert_eq!(
            parts(&["jumpctl", "check", "alice", "198.51.100.7:22"]),
            (None, "alice".into(), "198.51.100.7:22".into()),
            "two arguments ask the live policy"
        );
        assert_eq!(
            parts(&["jumpctl", "check", "policies", "alice", "198.51.100.7:22"]),
            (
                Some("policies".into()),
                "alice".into(),
                "198.51.100.7:22".into()
            )
        );
        assert!(crate::ctl::Cli::try_parse_from(["jumpctl", "check", "alice"]).is_err());
    }

    #[test]
    fn uptime_reads_like_a_human_wrote_it() {
        assert_eq!(uptime(42), "42s");
        assert_eq!(uptime(7 * 60 + 3), "7m 3s");
        assert_eq!(uptime(2 * 3600 + 5 * 60 + 9), "2h 5m");
        assert_eq!(uptime(3 * 86400 + 4 * 3600), "3d 4h");
    }

    #[test]
    fn the_stats_table_aligns_its_columns() {
        let s = Stats {
            generation: 3,
            rules: vec![
                RuleStats {
                    id: 0,
                    name: "default".into(),
                    location: String::new(),
                    allow: 0,
                    deny: 12,
                    audit: 0,
                },
                RuleStats {
                    id: 1,
                    name: "ops-ssh".into(),
                    location: "policies/20-access.yaml:4:5".into(),
                    allow: 1234,
                    deny: 0,
                    audit: 2,
                },
            ],
        };
        assert_eq!(
            render_stats(&s),
            "generation 3\n\
             ID  RULE     LOCATION                     ALLOW  DENY  WOULD-DENY\n\
             \x200  default                                   0    12           0\n\
             \x201  ops-ssh  policies/20-access.yaml:4:5   1234     0           2\n"
        );
    }

    #[test]
    fn status_shows_a_rejected_reload_with_its_error() {
        let s = Status {
            version: "0.1.0".into(),
            pid: 7,
            mode: "enforce".into(),
            cgroup: "/sys/fs/cgroup".into(),
            policy_dir: "/etc/jump/policies".into(),
            generation: 2,
            policy_sha256: "0123456789abcdef".into(),
            rules: 3,
            users: 2,
            profiles: 2,
            hooks: vec!["connect4".into(), "connect6".into()],
            started_at: "2026-01-01T00:00:00Z".into(),
            uptime_secs: 61,
            last_reload: Some(ReloadOutcome {
                ok: false,
                trigger: "sighup".into(),
                at: "2026-01-01T00:01:00Z".into(),
                generation: 2,
                error: Some("p.yaml:3:9: invalid port range `90-80`".into()),
                changes: None,
                summary: String::new(),
            }),
            counters: Counters::default(),
            capabilities: vec!["cap_bpf".into()],
            watching: vec![],
            integrity: Default::default(),
            etcd: None,
        };
        let text = render_status(&s);
        assert!(
            text.contains("policy:      /etc/jump/policies, generation 2, sha256 0123456789ab\n"),
            "{text}"
        );
        assert!(text.contains("last reload: REJECTED at 2026-01-01T00:01:00Z (sighup), generation 2 stays in force:\n             p.yaml:3:9: invalid port range `90-80`\n"), "{text}");
        assert!(text.contains("cgroup:      /sys/fs/cgroup (hooks connect4, connect6)\n"));
        assert!(text.contains("up 1m 1s, enforce mode"));

        // Moved from the daemon's integrity test (which checks the Status it builds).
        let mut s = s;
        s.counters.maps_tampered = 1;
        s.integrity.last_tampering = Some(crate::protocol::Tampering {
            at: "2026-01-01T00:02:00Z".into(),
            generation: 1,
            what: vec!["JUMP_SLOTS[1]: default action 1".into()],
            restored: true,
        });
        let text = render_status(&s);
        assert!(
            text.contains("integrity:   MAPS REWRITTEN 1 time(s) behind jumpd's back; last at "),
            "{text}"
        );
    }

    #[test]
    fn an_event_renders_as_the_log_line() {
        let v = serde_json::json!({
            "time": "2026-01-05T09:00:00.123Z",
            "verdict": "deny", "uid": 1001, "user": "alice", "proto": "tcp",
            "dst_addr": "2001:db8::7", "dst_port": 443, "rule": "default", "hook": "connect6",
            "pid": 4711, "comm": "curl\n\u{1b}[2K", "policy_generation": 2
        });
        assert_eq!(
            render_event(&v),
            "2026-01-05T09:00:00.123Z deny alice(1001) -> [2001:db8::7]:443/tcp rule=default hook=connect6 pid=4711 comm=curl\\n\\e[2K generation=2"
        );
    }
}
