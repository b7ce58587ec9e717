//! A synthetic large policy for the compiler's scale tests (compiled only with `cfg(test)`): many
//! users spread over overlapping rules, so most users get a profile of their own — the
//! compiler's worst case for profile sharing.

use crate::{
    policy::{self, Policy},
    resolve::FakeDirectory,
};

/// `users` users (uids 10000..) and `rules` rules over 16 overlapping zones. User `u` is named by
/// three rules chosen from `u` (so rule sets vary widely), and every fourth rule is time-limited
/// or audit-mode. Returns the policy and the directory that resolves its names.
pub fn synthetic_policy(users: usize, rules: usize) -> (Policy, FakeDirectory) {
    let mut dir = FakeDirectory::default();
    let rules = rules.max(1);
    let mut members: Vec<Vec<String>> = vec![Vec::new(); rules];
    for u in 0..users {
        let name = format!("user{u}");
        let uid = 10_000 + u as u32;
        dir = dir.user(&name, uid, uid);
        for r in [
            u % rules,
            (u / rules) % rules,
            (u / (rules * rules)) % rules,
        ] {
            if !members[r].contains(&name) {
                members[r].push(name.clone());
            }
        }
    }
    let mut y = String::from("defaults: {egress: deny, log: all}\nzones:\n");
    for z in 0..16 {
        y.push_str(&format!(
            "  z{z}: [10.{z}.0.0/16, 10.{z}.{z}.0/24, \"2001:db8:{z:x}::/48\", 192.0.2.{}]\n",
            z * 8
        ));
    }
    y.push_str("rules:\n  - name: dns\n    users: [\"*\"]\n    allow: [{to: 10.0.0.53, ports: [53], proto: [udp, tcp]}]\n");
    for (r, names) in members.iter().enumerate() {
        y.push_str(&format!(
            "  - name: rule{r}\n    users: [{}]\n",
            names.join(", ")
        ));
        y.push_str(&format!(
            "    allow:\n      - {{to: [z{}, z{}], ports: [22, \"8000-8080\", {}]}}\n      - {{to: 10.0.0.0/8, ports: [443], proto: any}}\n",
            r % 16,
            (r * 7 + 3) % 16,
            1000 + r
        ));
        match r % 4 {
            1 => y.push_str("    expires: 2099-01-01T00:00:00Z\n"),
            2 => y.push_str("    schedule: {days: [mon, tue, wed, thu, fri], hours: \"07:00-19:00\", tz: Europe/Paris}\n"),
            3 => y.push_str(&format!("    deny: [{{to: 10.{}.{}.0/24}}]\n    mode: audit\n", r % 16, r % 16)),
            _ => {}
        }
    }
    match policy::load_str("bench.yaml", &y) {
        Ok(l) => (l.policy, dir),
        // The text above is fixed; a failure here is a bug in this function.
        Err(e) => panic!("synthetic policy is invalid: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_policy_compiles() {
        let (p, dir) = synthetic_policy(500, 20);
        let c =
            super::super::compile_full(&p, &dir, "2026-11-23T12:00:00Z".parse().unwrap()).unwrap();
        assert!(c.image.users.len() > 400);
    }
}
