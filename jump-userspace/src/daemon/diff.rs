//! What a reload changed: rules (by name) and principals (the uids the policy names, after
//! groups are resolved against /etc/group) added and removed. Pure: two images in, a summary
//! out, so the log line after a reload can say "rules +db-admins, users −alice".

use std::collections::BTreeSet;

use jump_common::ANY_UID;

use crate::compile::image::MapImage;
pub use crate::protocol::Diff;

fn rule_names(image: &MapImage) -> BTreeSet<&str> {
    // Rule 0 is the policy default, present in every image.
    image
        .rules
        .iter()
        .skip(1)
        .map(|r| r.name.as_str())
        .collect()
}

fn uids(image: &MapImage) -> BTreeSet<u32> {
    image
        .users
        .keys()
        .copied()
        .filter(|&u| u != ANY_UID)
        .collect()
}

/// The change from `old` (none before the first load) to `new`.
pub fn diff(old: Option<&MapImage>, new: &MapImage) -> Diff {
    let empty = MapImage::default();
    let old = old.unwrap_or(&empty);
    let (or, nr) = (rule_names(old), rule_names(new));
    let (ou, nu) = (uids(old), uids(new));
    Diff {
        rules_added: nr.difference(&or).map(|s| s.to_string()).collect(),
        rules_removed: or.difference(&nr).map(|s| s.to_string()).collect(),
        users_added: nu.difference(&ou).copied().collect(),
        users_removed: ou.difference(&nu).copied().collect(),
        entries_changed: old != new,
    }
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        !self.entries_changed
    }

    /// `rules +a,+b −c; users +1001(alice) −1002`; `no change` when nothing did. `name`
    /// turns a uid into a user name where one is known.
    pub fn summary(&self, name: impl Fn(u32) -> Option<String>) -> String {
        if self.is_empty() {
            return "no change".into();
        }
        let uid = |u: &u32| match name(*u) {
            Some(n) => format!("{u}({})", crate::escape::escape_word(&n)),
            None => u.to_string(),
        };
        let mut parts = Vec::new();
        let list = |added: Vec<String>, removed: Vec<String>| -> Option<String> {
            let all: Vec<String> = added
                .into_iter()
                .map(|a| format!("+{}", crate::escape::escape_word(&a)))
                .chain(
                    removed
                        .into_iter()
                        .map(|r| format!("-{}", crate::escape::escape_word(&r))),
                )
                .collect();
            (!all.is_empty()).then(|| all.join(" "))
        };
        if let Some(r) = list(self.rules_added.clone(), self.rules_removed.clone()) {
            parts.push(format!("rules {r}"));
        }
        if let Some(u) = list(
            self.users_added.iter().map(uid).collect(),
            self.users_removed.iter().map(uid).collect(),
        ) {
            parts.push(format!("users {u}"));
        }
        if parts.is_empty() {
            parts.push("entries changed, same rules and users".into());
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::image::RuleInfo;

    fn image(rules: &[&str], users: &[u32]) -> MapImage {
        let mut rs = vec![RuleInfo {
            name: "default".into(),
            location: String::new(),
            reason: None,
        }];
        rs.extend(rules.iter().map(|r| RuleInfo {
            name: r.to_string(),
            location: "p.yaml:1:1".into(),
            reason: None,
        }));
        MapImage {
            rules: rs,
            users: users
                .iter()
                .map(|&u| (u, 1))
                .chain([(ANY_UID, 0)])
                .collect(),
            ..MapImage::default()
        }
    }

    #[test]
    fn rules_and_users_added_and_removed() {
        let old = image(&["ops", "dba"], &[1001, 1002]);
        let new = image(&["ops", "web"], &[1002, 1003]);
        let d = diff(Some(&old), &new);
        assert_eq!(
            d,
            Diff {
                rules_added: vec!["web".into()],
                rules_removed: vec!["dba".into()],
                users_added: vec![1003],
                users_removed: vec![1001],
                entries_changed: true,
            }
        );
        assert_eq!(
            d.summary(|u| (u == 1003).then(|| "carol".to_string())),
            "rules +web -dba; users +1003(carol) -1001"
        );
    }

    #[test]
    fn the_first_load_adds_everything_and_an_identical_image_is_no_change() {
        let new = image(&["ops"], &[1001]);
        let d = diff(None, &new);
        assert_eq!(d.rules_added, ["ops"]);
        assert_eq!(d.users_added, [1001], "ANY_UID is not a principal");
        let same = diff(Some(&new), &new.clone());
        assert!(same.is_empty());
        assert_eq!(same.summary(|_| None), "no change");
        let mut moved = new.clone();
        moved.default_action = 1;
        assert_eq!(
            diff(Some(&new), &moved).summary(|_| None),
            "entries changed, same rules and users"
        );
    }
}
