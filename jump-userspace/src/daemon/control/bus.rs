//! Decision records fanned out to `jumpctl events` followers (`Bus`), and the events filters.
//! A follower never slows the daemon down: the channel is bounded, and one that falls
//! `EVENT_BACKLOG` events behind is told so and disconnected.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::broadcast;

use crate::{events::Record, protocol::VERDICTS};

/// Events a follower may fall behind before it is disconnected.
pub const EVENT_BACKLOG: usize = 1024;
/// Events kept for `jumpctl events` without `--follow`.
pub const RECENT_EVENTS: usize = 256;

/// Whether a record passes `jumpctl events` filters: `user` is a name or uid, `verdict` one of
/// `allow`, `deny`, `would-deny` (or `audit`).
pub fn matches(r: &Record, user: Option<&str>, verdict: Option<&str>) -> bool {
    let user_ok = user.is_none_or(|u| u == &*r.user || u == r.uid.to_string());
    let verdict_ok = verdict.is_none_or(|v| v.parse() == Ok(r.verdict));
    user_ok && verdict_ok
}

/// Checks `jumpctl events` filters, so a typo is an error rather than an empty answer: the
/// verdict must be one of `VERDICTS`, the user a uid or a name `known` accepts.
pub fn check_filters(
    user: Option<&str>,
    verdict: Option<&str>,
    known: impl Fn(&str) -> bool,
) -> Result<(), String> {
    if let Some(v) = verdict.filter(|v| !VERDICTS.contains(v)) {
        return Err(format!(
            "unknown verdict `{}`: expected allow, deny or would-deny",
            crate::escape::escape(v)
        ));
    }
    if let Some(u) = user.filter(|u| u.parse::<u32>().is_err() && !known(u)) {
        return Err(format!("unknown user `{}`", crate::escape::escape(u)));
    }
    Ok(())
}

pub(super) fn account_exists(name: &str) -> bool {
    matches!(nix::unistd::User::from_name(name), Ok(Some(_)))
}

/// Decision records fanned out to followers, and the last few for `events` without follow.
pub struct Bus {
    tx: broadcast::Sender<Arc<Record>>,
    recent: Mutex<VecDeque<Arc<Record>>>,
    pub followers_dropped: std::sync::atomic::AtomicU64,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

impl Bus {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(EVENT_BACKLOG).0,
            recent: Mutex::new(VecDeque::with_capacity(RECENT_EVENTS)),
            followers_dropped: Default::default(),
        }
    }

    /// Never blocks: broadcast drops the oldest entry for a receiver that lags.
    pub fn publish(&self, r: Record) {
        let r = Arc::new(r);
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT_EVENTS {
                recent.pop_front();
            }
            recent.push_back(r.clone());
        }
        let _ = self.tx.send(r);
    }

    /// A follower's receiver: what is published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Record>> {
        self.tx.subscribe()
    }

    pub fn recent(&self) -> Vec<Arc<Record>> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(user: &str, uid: u32, verdict: &str) -> Record {
        Record {
            verdict: verdict.parse().unwrap(),
            uid,
            user: user.into(),
            gid: uid,
            ..crate::events::record::sample()
        }
    }

    #[test]
    fn unknown_event_filters_are_errors() {
        let known = |u: &str| u == "alice";
        assert_eq!(check_filters(Some("alice"), Some("deny"), known), Ok(()));
        assert_eq!(check_filters(Some("1001"), Some("audit"), known), Ok(()));
        assert_eq!(check_filters(None, None, known), Ok(()));
        assert_eq!(
            check_filters(None, Some("denied"), known),
            Err("unknown verdict `denied`: expected allow, deny or would-deny".into())
        );
        assert_eq!(
            check_filters(Some("mallory\n"), None, known),
            Err("unknown user `mallory\\n`".into())
        );
    }

    #[test]
    fn event_filters_match_user_by_name_or_uid_and_verdict() {
        let r = record("alice", 1001, "would-deny");
        assert!(matches(&r, None, None));
        assert!(matches(&r, Some("alice"), None));
        assert!(matches(&r, Some("1001"), Some("audit")));
        assert!(matches(&r, None, Some("would-deny")));
        assert!(!matches(&r, Some("bob"), None));
        assert!(!matches(&r, None, Some("deny")));
    }

    #[test]
    fn the_bus_keeps_a_bounded_backlog_and_never_blocks() {
        let bus = Bus::new();
        let mut rx = bus.tx.subscribe();
        for i in 0..(RECENT_EVENTS + EVENT_BACKLOG + 10) as u32 {
            bus.publish(record("u", i, "deny"));
        }
        assert_eq!(bus.recent().len(), RECENT_EVENTS);
        assert_eq!(bus.recent()[0].uid, (EVENT_BACKLOG + 10) as u32);
        assert!(
            matches!(
                rx.try_recv(),
                Err(broadcast::error::TryRecvError::Lagged(_))
            ),
            "a receiver that did not keep up is told it lagged"
        );
    }
}
