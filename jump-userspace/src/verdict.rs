//! The kernel's decision as userspace names it. One vocabulary: `allow`, `deny` and
//! `would-deny` — what an audit-mode rule or policy lets through and logs. `audit` names the
//! mode, never a verdict; it is still accepted as input for `would-deny`.
//!
//! Words users already read stay as they were: `JUMP_VERDICT` and the event streams write
//! `as_str`; the Prometheus label is `would_deny` (`metric_label`); `jumpctl check` reports and
//! policy test cases (`expect: audit`) keep `audit` (`check_word`).

use std::{fmt, str::FromStr};

use jump_common::action;
use serde::{Serialize, Serializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Allow,
    Deny,
    /// Allowed and logged: an audit-mode rule or policy would have denied it.
    WouldDeny,
}

impl Verdict {
    /// The words `FromStr` accepts: the vocabulary plus `audit` for `would-deny`.
    pub const ACCEPTED: [&'static str; 4] = ["allow", "deny", "would-deny", "audit"];

    /// The verdict of a kernel `action` (anything unknown is a deny, as in the kernel).
    pub const fn from_action(a: u8) -> Self {
        match a {
            action::ALLOW => Self::Allow,
            action::AUDIT => Self::WouldDeny,
            _ => Self::Deny,
        }
    }

    /// The word of the journal (`JUMP_VERDICT`), the event streams and `jumpctl events`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::WouldDeny => "would-deny",
        }
    }

    /// The `verdict` label of the Prometheus metrics (label values in snake case).
    pub const fn metric_label(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::WouldDeny => "would_deny",
        }
    }

    /// The word `jumpctl check` reports and policy test cases expect: `audit` for `would-deny`.
    pub const fn check_word(self) -> &'static str {
        match self {
            Self::WouldDeny => "audit",
            v => v.as_str(),
        }
    }

    /// Serialises as `check_word`, for the `jumpctl check` report.
    pub fn serialize_check_word<S: Serializer>(v: &Self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.check_word())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            "would-deny" | "audit" => Ok(Self::WouldDeny),
            _ => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_word_parses_and_every_verdict_reads_back() {
        for w in Verdict::ACCEPTED {
            assert!(w.parse::<Verdict>().is_ok(), "`{w}` should parse");
        }
        for v in [Verdict::Allow, Verdict::Deny, Verdict::WouldDeny] {
            assert_eq!(v.as_str().parse(), Ok(v));
            assert_eq!(v.check_word().parse(), Ok(v));
        }
        assert_eq!("denied".parse::<Verdict>(), Err(()));
    }

    #[test]
    fn kernel_actions_name_their_verdicts() {
        assert_eq!(Verdict::from_action(action::ALLOW), Verdict::Allow);
        assert_eq!(Verdict::from_action(action::DENY), Verdict::Deny);
        assert_eq!(Verdict::from_action(action::AUDIT), Verdict::WouldDeny);
        assert_eq!(Verdict::from_action(200), Verdict::Deny);
        assert_eq!(
            serde_json::to_string(&Verdict::WouldDeny).unwrap(),
            "\"would-deny\""
        );
    }
}
