//! The policy file format as Rust types, for `jumpctl schema` (JSON Schema via schemars) and
//! editors. The parser (`parse.rs`) reads the same keys; a test checks the two agree key by key.

#![allow(dead_code, reason = "these types exist to be described, never built")]

use std::collections::BTreeMap;

use schemars::JsonSchema;

/// One policy file. Every file in the directory is part of one policy; any file may hold any of
/// these sections.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields, title = "jump policy file")]
pub struct PolicyFile {
    /// Policy-wide settings; each may be set in only one file.
    defaults: Option<Defaults>,
    /// Named address sets, IPv4 and IPv6, usable in `to:` from any file.
    zones: Option<BTreeMap<String, OneOrMany<String>>>,
    /// Access rules. A connection is allowed iff some `allow` entry matches and no `deny` entry
    /// matches.
    rules: Option<Vec<Rule>>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Defaults {
    /// What happens to a connection no rule allows (default `deny`).
    egress: Option<Egress>,
    /// Which decisions become events (default `all`).
    log: Option<Log>,
    /// `allow` (default): 127.0.0.0/8 and ::1 are allowed unless a rule denies them; `deny`:
    /// always denied; `policy`: no special case.
    loopback: Option<LoopbackMode>,
    /// `uid` (default): decisions are for the uid that connects; `person`: a process with an
    /// audit login uid (set at login by `pam_loginuid`) needs both its uid and its login uid
    /// to allow, so `sudo` and `su` cannot widen what a person reaches.
    identity: Option<IdentityMode>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    Uid,
    Person,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    Deny,
    Allow,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Log {
    All,
    Deny,
    None,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LoopbackMode {
    Allow,
    Deny,
    Policy,
}

#[derive(JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// A port (`22`) or an inclusive range (`"8000-8080"`).
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Port {
    Number(#[schemars(range(min = 1, max = 65535))] u16),
    Range(#[schemars(regex(pattern = r"^[0-9]{1,5}(-[0-9]{1,5})?$"))] String),
}

/// A user name, a numeric uid, or `"*"` for every uid on the host.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum User {
    Uid(u32),
    Name(String),
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    /// tcp, udp and icmp.
    Any,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Decide as written (default).
    Enforce,
    /// Let the connection through but log "would deny": for trying rules safely.
    Audit,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Rule {
    /// Unique across the policy; events and `jumpctl check` name it.
    name: String,
    description: Option<String>,
    /// User names, numeric uids, or `"*"` for every uid (system users and root included).
    users: Option<OneOrMany<User>>,
    /// Unix groups: their members and the users whose primary group it is.
    groups: Option<OneOrMany<String>>,
    allow: Option<Vec<Entry>>,
    /// An explicit deny wins over every allow.
    deny: Option<Vec<Entry>>,
    /// Ports these users may bind and accept connections on.
    listen: Option<Vec<Listen>>,
    mode: Option<Mode>,
    /// RFC 3339 time with an offset; the rule is inactive from then on.
    expires: Option<String>,
    /// The rule is active only in these hours.
    schedule: Option<Schedule>,
    /// Interfaces the rule holds on (like `eth1`): a packet it would let through that leaves on
    /// another interface is dropped. Omitted: every interface.
    via: Option<OneOrMany<String>>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Entry {
    /// Zone names, addresses or CIDRs.
    to: OneOrMany<String>,
    /// Omitted: every port.
    ports: Option<OneOrMany<Port>>,
    /// Omitted: `tcp` in `allow`, `any` in `deny`.
    proto: Option<OneOrMany<Protocol>>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Listen {
    ports: OneOrMany<Port>,
    /// `tcp`, `udp` or both (`any`); omitted: `tcp`.
    proto: Option<OneOrMany<Protocol>>,
    /// Local addresses or CIDRs; omitted: every local address.
    addresses: Option<OneOrMany<String>>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Schedule {
    /// Omitted: every day. An interval belongs to the day it starts.
    days: Option<Vec<Day>>,
    /// `HH:MM-HH:MM`, end exclusive; `22:00-06:00` runs past midnight. Omitted: the whole day.
    #[schemars(regex(pattern = r"^[0-9]{1,2}:[0-9]{2}-[0-9]{1,2}:[0-9]{2}$"))]
    hours: Option<String>,
    /// IANA time zone name (default `UTC`).
    tz: Option<String>,
}

/// The JSON Schema of a policy file, pretty-printed, with a trailing newline.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(PolicyFile);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::policy::parse;

    fn keys(schema: &Value, def: &str) -> Vec<String> {
        let obj = if def.is_empty() {
            schema
        } else {
            &schema["$defs"][def]
        };
        let mut k: Vec<String> = obj["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    }

    fn sorted(k: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = k.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn schema_keys_match_the_parser() {
        let schema: Value = serde_json::from_str(&json_schema()).unwrap();
        assert_eq!(keys(&schema, ""), sorted(parse::TOP_KEYS));
        assert_eq!(keys(&schema, "Defaults"), sorted(parse::DEFAULTS_KEYS));
        assert_eq!(keys(&schema, "Rule"), sorted(parse::RULE_KEYS));
        assert_eq!(keys(&schema, "Entry"), sorted(parse::ENTRY_KEYS));
        assert_eq!(keys(&schema, "Listen"), sorted(parse::LISTEN_KEYS));
        assert_eq!(keys(&schema, "Schedule"), sorted(parse::SCHEDULE_KEYS));
    }

    #[test]
    fn committed_schema_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/schema.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == json_schema(),
            "policies/schema.json is stale: run `cargo run -p jump-userspace --bin jumpctl -- schema > policies/schema.json`"
        );
    }
}
