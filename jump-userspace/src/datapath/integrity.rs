//! Tamper detection: the maps jumpd owns, read back, against what it wrote. Root can rewrite a
//! pinned map (`bpftool map update pinned …`) while jump is attached; nothing in the kernel
//! notices, so the daemon compares the maps with its own copy every few seconds and restores
//! them. The comparison here is pure; `Kernel::verify`/`Kernel::restore` do the reading and
//! writing.
//!
//! Owned (compared): `JUMP_ACTIVE`, the active slot's `JUMP_SLOTS` entry, `JUMP_LIMITS`, every
//! entry of `JUMP_USERS`, `JUMP_UID_INDEX` (its non-zero entries), `JUMP_DESTS`, `JUMP_PORTS`,
//! `JUMP_EXACT` and `JUMP_SUBUIDS` (an entry of the inactive slot is extra: a reload empties
//! it), the time windows the image uses, and the host's addresses and namespace for the source
//! check (`JUMP_LOCAL_ADDRS`, `JUMP_HOST_NETNS`, compared in `Kernel::verify`). Not owned: what
//! the kernel programs write (counters, rule hits, rate-limit state, socket owners, the ring
//! buffer).

use std::{collections::BTreeMap, fmt::Debug};

use jump_common::{
    DestKey, DestValue, ExactKey, ExactValue, Limits, PortKey, PortValue, SlotConfig, SubuidKey,
    SubuidValue, UserKey, UserValue, Window,
};

use super::SlotImage;

/// What jumpd wrote last: the image of the active slot and the rate limit.
#[derive(Clone)]
pub struct Written {
    pub slot: u32,
    pub image: SlotImage,
}

/// The owned maps as read from the kernel.
pub struct ReadBack {
    pub active: u32,
    /// `JUMP_SLOTS[written.slot]`.
    pub config: SlotConfig,
    pub limits: Limits,
    pub users: Vec<(UserKey, UserValue)>,
    /// The non-zero entries of `JUMP_UID_INDEX`, both slots, by the uid each is at.
    pub uid_index: Vec<(UserKey, UserValue)>,
    pub dests: Vec<(u32, DestKey, DestValue)>,
    pub ports: Vec<(u32, PortKey, PortValue)>,
    pub exact: Vec<(ExactKey, ExactValue)>,
    pub subuids: Vec<(u32, SubuidKey, SubuidValue)>,
    /// The windows at the indexes `written.image.windows` uses.
    pub windows: Vec<(u32, Window)>,
}

/// How one map differs: keys jumpd wrote whose value changed or that are gone, and keys it
/// never wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapDiff<K> {
    pub changed: Vec<K>,
    pub missing: Vec<K>,
    pub extra: Vec<K>,
}

impl<K> MapDiff<K> {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

pub fn diff_entries<K: Ord + Clone, V: PartialEq>(
    written: impl IntoIterator<Item = (K, V)>,
    read: impl IntoIterator<Item = (K, V)>,
) -> MapDiff<K> {
    let mut want: BTreeMap<K, V> = written.into_iter().collect();
    let mut d = MapDiff {
        changed: Vec::new(),
        missing: Vec::new(),
        extra: Vec::new(),
    };
    for (k, v) in read {
        match want.remove(&k) {
            Some(w) if w == v => {}
            Some(_) => d.changed.push(k),
            None => d.extra.push(k),
        }
    }
    d.missing.extend(want.into_keys());
    d
}

/// One line for a map that differs, with counts and a first example.
pub fn describe<K: Debug>(map: &str, d: &MapDiff<K>) -> Option<String> {
    if d.is_empty() {
        return None;
    }
    let example = d
        .changed
        .first()
        .map(|k| format!("changed {k:?}"))
        .or_else(|| d.missing.first().map(|k| format!("removed {k:?}")))
        .or_else(|| d.extra.first().map(|k| format!("added {k:?}")))
        .unwrap_or_default();
    Some(format!(
        "{map}: {} changed, {} removed, {} added (e.g. {example})",
        d.changed.len(),
        d.missing.len(),
        d.extra.len()
    ))
}

/// Every difference between what jumpd wrote and what the maps hold, one line per map, or
/// nothing when they agree.
pub fn compare(w: &Written, limits: &Limits, r: &ReadBack) -> Vec<String> {
    use jump_common::maps;
    let mut out = Vec::new();
    if r.active != w.slot {
        out.push(format!(
            "{}: active slot {}, jumpd wrote {}",
            maps::ACTIVE,
            r.active,
            w.slot
        ));
    }
    let c = &w.image.config;
    if r.config != *c {
        out.push(format!(
            "{}[{}]: generation {}, default action {}, log mode {}; jumpd wrote generation {}, default action {}, log mode {}",
            maps::SLOTS,
            w.slot,
            r.config.generation,
            r.config.default_action,
            r.config.log_mode,
            c.generation,
            c.default_action,
            c.log_mode
        ));
    }
    if r.limits != *limits {
        let l = |l: &Limits| {
            format!(
                "window {} ns, burst {}, per-uid burst {} per {} ns",
                l.window_ns, l.burst, l.uid_burst, l.uid_interval_ns
            )
        };
        out.push(format!(
            "{}: {}; jumpd wrote {}",
            maps::LIMITS,
            l(&r.limits),
            l(limits)
        ));
    }
    out.extend(describe(
        maps::USERS,
        &diff_entries(w.image.users.clone(), r.users.clone()),
    ));
    out.extend(describe(
        maps::UID_INDEX,
        &diff_entries(w.image.uid_index(), r.uid_index.clone()),
    ));
    out.extend(describe(
        maps::DESTS,
        &diff_entries(split(w.image.dests.clone()), split(r.dests.clone())),
    ));
    out.extend(describe(
        maps::PORTS,
        &diff_entries(split(w.image.ports.clone()), split(r.ports.clone())),
    ));
    out.extend(describe(
        maps::EXACT,
        &diff_entries(w.image.exact.clone(), r.exact.clone()),
    ));
    out.extend(describe(
        maps::SUBUIDS,
        &diff_entries(split(w.image.subuids.clone()), split(r.subuids.clone())),
    ));
    out.extend(describe(
        maps::WINDOWS,
        &diff_entries(w.image.windows.clone(), r.windows.clone()),
    ));
    out
}

/// LPM entries as ((prefix length, key), value).
fn split<K, V>(v: Vec<(u32, K, V)>) -> Vec<((u32, K), V)> {
    v.into_iter().map(|(l, k, v)| ((l, k), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::image::MapImage;

    fn written() -> Written {
        let image = MapImage {
            users: [(64001, 0)].into_iter().collect(),
            ..Default::default()
        };
        Written {
            slot: 1,
            image: SlotImage::build(&image, 1, 7, 0).unwrap(),
        }
    }

    fn read_back(w: &Written, limits: Limits) -> ReadBack {
        ReadBack {
            active: w.slot,
            config: w.image.config,
            limits,
            users: w.image.users.clone(),
            uid_index: w.image.uid_index(),
            dests: w.image.dests.clone(),
            ports: w.image.ports.clone(),
            exact: w.image.exact.clone(),
            subuids: w.image.subuids.clone(),
            windows: w.image.windows.clone(),
        }
    }

    #[test]
    fn maps_as_written_compare_equal() {
        let w = written();
        let l = Limits::default();
        assert_eq!(compare(&w, &l, &read_back(&w, l)), Vec::<String>::new());
    }

    #[test]
    fn every_rewrite_is_named() {
        let w = written();
        let l = Limits {
            window_ns: 1_000_000_000,
            burst: 5,
            uid_burst: 50,
            uid_interval_ns: 20_000_000,
        };
        let mut r = read_back(&w, l);
        r.active = 0;
        r.config.default_action = jump_common::action::ALLOW;
        r.limits.burst = 0;
        r.users[0].1.profile = 9;
        r.users.push((UserKey { slot: 0, uid: 1 }, r.users[0].1));
        r.uid_index[0].1.profile = 9;
        let got = compare(&w, &l, &r);
        assert_eq!(
            got,
            vec![
                "JUMP_ACTIVE: active slot 0, jumpd wrote 1".to_string(),
                "JUMP_SLOTS[1]: generation 7, default action 1, log mode 0; jumpd wrote generation 7, default action 0, log mode 0".into(),
                "JUMP_LIMITS: window 1000000000 ns, burst 0, per-uid burst 50 per 20000000 ns; jumpd wrote window 1000000000 ns, burst 5, per-uid burst 50 per 20000000 ns".into(),
                "JUMP_USERS: 1 changed, 0 removed, 1 added (e.g. changed UserKey { slot: 1, uid: 64001 })".into(),
                "JUMP_UID_INDEX: 1 changed, 0 removed, 0 added (e.g. changed UserKey { slot: 1, uid: 64001 })".into(),
            ]
        );
    }

    #[test]
    fn entry_diffs_tell_changed_missing_and_extra_apart() {
        let d = diff_entries(
            [(1, 'a'), (2, 'b'), (3, 'c')],
            [(1, 'a'), (2, 'x'), (4, 'd')],
        );
        assert_eq!(
            d,
            MapDiff {
                changed: vec![2],
                missing: vec![3],
                extra: vec![4]
            }
        );
    }
}
