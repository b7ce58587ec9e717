//! A decoded event made readable: user and rule names, addresses in their family's notation.
//! What the kernel could not know (names, the executable) is looked up here through caches with
//! a fixed capacity, so a flood of distinct uids or pids cannot grow the daemon's memory.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
};

use jump_common::{action, hook, proto, Event};
use serde::Serialize;

use crate::compile::image::RuleInfo;

/// One decision, as every sink writes it. Field names are the journald fields without the
/// `JUMP_` prefix, lower-case.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Record {
    pub verdict: &'static str,
    pub uid: u32,
    pub user: String,
    pub gid: u32,
    pub pid: u32,
    pub comm: String,
    pub exe: String,
    pub proto: &'static str,
    pub dst_addr: IpAddr,
    pub dst_port: u16,
    pub rule: String,
    pub hook: &'static str,
    pub policy_generation: u64,
    pub policy_sha256: String,
}

impl Record {
    /// `deny alice(1001) -> 203.0.113.7:443/tcp rule=default hook=connect4 pid=4711 comm=curl`
    pub fn message(&self) -> String {
        let dst = match self.dst_addr {
            IpAddr::V4(a) => format!("{a}:{}", self.dst_port),
            IpAddr::V6(a) => format!("[{a}]:{}", self.dst_port),
        };
        format!(
            "{} {}({}) -> {dst}/{} rule={} hook={} pid={} comm={}",
            self.verdict,
            self.user,
            self.uid,
            self.proto,
            self.rule,
            self.hook,
            self.pid,
            self.comm
        )
    }
}

pub fn verdict_name(a: u8) -> &'static str {
    match a {
        action::ALLOW => "allow",
        action::AUDIT => "would-deny",
        _ => "deny",
    }
}

pub fn proto_name(p: u8) -> &'static str {
    match p {
        proto::TCP => "tcp",
        proto::UDP => "udp",
        proto::ICMP | proto::ICMPV6 => "icmp",
        _ => "other",
    }
}

/// A map that forgets everything when it is full: cheap, bounded, and right for names that
/// rarely change.
struct BoundedCache<V> {
    map: HashMap<u32, V>,
    cap: usize,
}

impl<V: Clone> BoundedCache<V> {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            cap,
        }
    }

    fn get_or(&mut self, k: u32, f: impl FnOnce() -> V) -> V {
        if let Some(v) = self.map.get(&k) {
            return v.clone();
        }
        if self.map.len() >= self.cap {
            self.map.clear();
        }
        let v = f();
        self.map.insert(k, v.clone());
        v
    }
}

/// Turns kernel events into records for the policy generation that is active.
pub struct Enricher {
    users: BoundedCache<String>,
    /// Rule table and hash of each generation still in use; the kernel may report the previous
    /// generation for a decision made just before a switch.
    generations: Vec<(u64, Vec<RuleInfo>, String)>,
}

impl Default for Enricher {
    fn default() -> Self {
        Self::new()
    }
}

impl Enricher {
    pub fn new() -> Self {
        Self {
            users: BoundedCache::new(4096),
            generations: Vec::new(),
        }
    }

    /// Remembers a generation's rule table; keeps the last two.
    pub fn set_generation(&mut self, generation: u64, rules: Vec<RuleInfo>, sha256: String) {
        self.generations.push((generation, rules, sha256));
        if self.generations.len() > 2 {
            self.generations.remove(0);
        }
    }

    pub fn record(&mut self, e: &Event) -> Record {
        let uid = e.uid;
        let user = self.users.get_or(uid, || {
            nix::unistd::User::from_uid(uid.into())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| uid.to_string())
        });
        let (rule, sha) = match self.generations.iter().find(|(g, ..)| *g == e.generation) {
            Some((_, rules, sha)) => {
                let rule = match rules.get(e.rule_id as usize) {
                    Some(r) if r.location.is_empty() => r.name.clone(),
                    Some(r) => format!("{} ({})", r.name, r.location),
                    None => format!("#{}", e.rule_id),
                };
                (rule, sha.clone())
            }
            None => (format!("#{}", e.rule_id), String::new()),
        };
        let v6 = Ipv6Addr::from(e.dst_addr);
        let dst_addr = v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6));
        let comm_len = e.comm.iter().position(|&c| c == 0).unwrap_or(e.comm.len());
        Record {
            verdict: verdict_name(e.action),
            uid,
            user,
            gid: e.gid,
            pid: e.pid,
            comm: String::from_utf8_lossy(&e.comm[..comm_len]).into_owned(),
            // The process may be gone already; an empty field says "not readable".
            exe: std::fs::read_link(format!("/proc/{}/exe", e.pid))
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            proto: proto_name(e.proto),
            dst_addr,
            dst_port: e.dst_port,
            rule,
            hook: hook::name(e.hook),
            policy_generation: e.generation,
            policy_sha256: sha,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_user_destination_rule_and_hook() {
        let r = Record {
            verdict: "deny",
            uid: 1001,
            user: "alice".into(),
            gid: 1001,
            pid: 4711,
            comm: "curl".into(),
            exe: String::new(),
            proto: "tcp",
            dst_addr: "203.0.113.7".parse().unwrap(),
            dst_port: 443,
            rule: "default".into(),
            hook: "connect4",
            policy_generation: 1,
            policy_sha256: String::new(),
        };
        assert_eq!(
            r.message(),
            "deny alice(1001) -> 203.0.113.7:443/tcp rule=default hook=connect4 pid=4711 comm=curl"
        );
        let r6 = Record {
            dst_addr: "2001:db8::7".parse().unwrap(),
            ..r
        };
        assert_eq!(r6.message(), "deny alice(1001) -> [2001:db8::7]:443/tcp rule=default hook=connect4 pid=4711 comm=curl");
    }

    #[test]
    fn ipv4_mapped_destinations_are_shown_as_ipv4() {
        let mut en = Enricher::new();
        en.set_generation(
            1,
            vec![RuleInfo {
                name: "default".into(),
                location: String::new(),
            }],
            "ab".into(),
        );
        let e = Event {
            ts_ns: 0,
            generation: 1,
            cookie: 0,
            uid: 0,
            gid: 0,
            pid: 0,
            rule_id: 0,
            login_uid: u32::MAX,
            session_id: u32::MAX,
            suppressed: 0,
            _pad0: 0,
            dst_addr: "::ffff:198.51.100.10".parse::<Ipv6Addr>().unwrap().octets(),
            src_addr: [0; 16],
            dst_port: 22,
            src_port: 0,
            family: 10,
            proto: 6,
            hook: hook::CONNECT6,
            action: action::DENY,
            _pad1: [0; 7],
            comm: [0; 16],
        };
        let r = en.record(&e);
        assert_eq!(r.dst_addr, "198.51.100.10".parse::<IpAddr>().unwrap());
        assert_eq!(r.rule, "default");
        assert_eq!(r.policy_sha256, "ab");
        assert_eq!(r.hook, "connect6");
    }
}
