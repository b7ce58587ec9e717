//! Audit mode as a transform of the compiled image: every deny the kernel could reach becomes
//! an audit ("would-deny": allowed and logged), so the kernel decides and logs exactly as in
//! enforce mode but never refuses. Pure; applied just before `Datapath::apply`, so the compiler,
//! the reference evaluator and `jumpctl check` keep seeing the policy as written.

use jump_common::action;

use crate::compile::image::MapImage;

/// Rewrites the default and every deny candidate into an audit.
///
/// Candidate order is kept: a deny that turned into an audit still comes before every allow,
/// so the rule it names is the one that would have refused the connection.
pub fn audit_only(image: &mut MapImage) {
    image.audit = true;
    if image.default_action == action::DENY {
        image.default_action = action::AUDIT;
    }
    for port in &mut image.ports {
        for c in &mut port.candidates {
            if c.action == action::DENY {
                c.action = action::AUDIT;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::image::PortEntry;
    use jump_common::Candidate;

    fn cand(action: u8, rule_id: u32) -> Candidate {
        Candidate {
            action,
            rule_id,
            ..Candidate::default()
        }
    }

    #[test]
    fn every_deny_becomes_an_audit_and_nothing_else_changes() {
        let mut image = MapImage {
            default_action: action::DENY,
            ports: vec![PortEntry {
                class: 1,
                proto: 6,
                port: 22,
                bits: 16,
                candidates: vec![
                    cand(action::DENY, 3),
                    cand(action::AUDIT, 4),
                    cand(action::ALLOW, 5),
                ],
            }],
            ..MapImage::default()
        };
        let before = image.clone();
        audit_only(&mut image);
        assert_eq!(image.default_action, action::AUDIT);
        let got: Vec<(u8, u32)> = image.ports[0]
            .candidates
            .iter()
            .map(|c| (c.action, c.rule_id))
            .collect();
        assert_eq!(
            got,
            [(action::AUDIT, 3), (action::AUDIT, 4), (action::ALLOW, 5)],
            "the deny turns into an audit in place, ahead of the allow"
        );
        assert!(image.audit, "what no rule grants is audited too");
        let mut rest = image.clone();
        rest.audit = before.audit;
        rest.default_action = before.default_action;
        rest.ports = before.ports.clone();
        assert_eq!(rest, before, "only actions change");
    }

    #[test]
    fn an_audited_image_never_refuses() {
        let mut image = MapImage {
            default_action: action::DENY,
            ..MapImage::default()
        };
        audit_only(&mut image);
        let v = image.lookup(1000, "203.0.113.7".parse().unwrap(), 6, 443, 0);
        assert!(MapImage::allows(v), "the default deny is only audited");
        assert_eq!(v.action, action::AUDIT);
        let mut allow_default = MapImage {
            default_action: action::ALLOW,
            ..MapImage::default()
        };
        audit_only(&mut allow_default);
        assert_eq!(allow_default.default_action, action::ALLOW);
    }
}
