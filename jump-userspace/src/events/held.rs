//! What the kernel held back instead of sending, per uid (`jump_common::UidHeld`), turned into
//! one summary per uid and report: how many, why, their verdicts, roughly how many distinct
//! destinations, and when; with them, per uid, the events jumpd received but its sink did not
//! take (journald refused the entry: `Unsent`), counted as lost. Pure: the daemon reads the maps
//! and writes the entries.

use std::collections::BTreeMap;

use jump_common::{UidHeld, UidSketch, SKETCH_REGISTERS};

use crate::{datapath::HeldSnapshot, verdict::Verdict};

/// One uid's events that reached jumpd but not the journal since the last report, by verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unsent {
    pub allow: u64,
    pub deny: u64,
    pub would_deny: u64,
}

impl Unsent {
    pub fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Allow => self.allow += 1,
            Verdict::Deny => self.deny += 1,
            Verdict::WouldDeny => self.would_deny += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.allow + self.deny + self.would_deny
    }
}

/// One uid's held-back events since the last report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub uid: u32,
    /// Over the uid's own budget.
    pub over_budget: u64,
    /// Repeats of an event just sent (per-destination rate limit).
    pub similar: u64,
    /// Lost: to a full ring buffer, or not taken by the sink (`unsent` of them).
    pub lost: u64,
    /// Of `lost`, those jumpd received but journald did not take.
    pub unsent: u64,
    pub allow: u64,
    pub deny: u64,
    pub would_deny: u64,
    /// HyperLogLog estimate of the distinct (address, port, protocol) among them.
    pub destinations: u64,
    /// Wall-clock time of the first and last of them, where the sketch saw them.
    pub first: Option<jiff::Timestamp>,
    pub last: Option<jiff::Timestamp>,
    /// The kernel's counts now reported, for the daemon to record; `None` for a uid of which
    /// only `unsent` is reported (the kernel's table has nothing new to mark).
    pub counts: Option<UidHeld>,
}

impl Summary {
    pub fn total(&self) -> u64 {
        self.over_budget + self.similar + self.lost
    }
}

/// The summary of what `s` holds that was not reported yet; `None` when nothing is pending.
/// `tai_offset_ns` is CLOCK_TAI − CLOCK_REALTIME (the kernel stamps CLOCK_TAI).
pub fn summarize(s: &HeldSnapshot, tai_offset_ns: i64) -> Option<Summary> {
    if !s.pending() {
        return None;
    }
    let (c, r) = (&s.counts, &s.reported);
    // The counts only grow; a `reported` above them means maps of another life: report all.
    let d = |now: u64, done: u64| now.checked_sub(done).unwrap_or(now);
    let time = |ns: u64| {
        (ns != 0)
            .then(|| jiff::Timestamp::from_nanosecond(ns as i128 - tai_offset_ns as i128).ok())
            .flatten()
    };
    Some(Summary {
        uid: s.uid,
        over_budget: d(c.over_budget, r.over_budget),
        similar: d(c.similar, r.similar),
        lost: d(c.lost, r.lost),
        unsent: 0,
        allow: d(c.allow, r.allow),
        deny: d(c.deny, r.deny),
        would_deny: d(c.audit, r.audit),
        destinations: estimate(&s.sketch),
        first: time(s.sketch.first_ns),
        last: time(s.sketch.last_ns),
        counts: Some(*c),
    })
}

/// Adds each uid's `unsent` to its summary (as lost, with its verdicts), and a summary of its own
/// for a uid the kernel held nothing of; sorted by uid, so the report's order is stable.
pub fn with_unsent(summaries: Vec<Summary>, unsent: BTreeMap<u32, Unsent>) -> Vec<Summary> {
    // By uid: up to 65,536 kernel summaries meet up to 4,096 uids of unsent entries.
    let mut by_uid: BTreeMap<u32, Summary> = summaries.into_iter().map(|s| (s.uid, s)).collect();
    for (uid, u) in unsent {
        if u.total() == 0 {
            continue;
        }
        let s = by_uid.entry(uid).or_insert_with(|| Summary {
            uid,
            ..Summary::default()
        });
        s.lost += u.total();
        s.unsent += u.total();
        s.allow += u.allow;
        s.deny += u.deny;
        s.would_deny += u.would_deny;
    }
    by_uid.into_values().collect()
}

/// The HyperLogLog estimate of the registers' cardinality, with the small-range correction
/// (linear counting while registers are still empty), rounded.
pub fn estimate(sketch: &UidSketch) -> u64 {
    let m = SKETCH_REGISTERS as f64;
    let zeros = sketch.registers.iter().filter(|&&r| r == 0).count();
    if zeros == SKETCH_REGISTERS {
        return 0;
    }
    let sum: f64 = sketch
        .registers
        .iter()
        .map(|&r| 2f64.powi(-i32::from(r)))
        .sum();
    // alpha_64 from Flajolet et al., "HyperLogLog" (2007), figure 3.
    let raw = 0.709 * m * m / sum;
    let e = if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    };
    e.round() as u64
}

/// The summary's message: `held back 3 events of alice(1001) …` (the name escaped).
pub fn message(s: &Summary, user: &str) -> String {
    let user = crate::escape::escape_word(user);
    let when = match (s.first, s.last) {
        (Some(f), Some(l)) => format!(" from {f} to {l}"),
        _ => String::new(),
    };
    let unsent = if s.unsent > 0 {
        format!(" ({} not taken by journald)", s.unsent)
    } else {
        String::new()
    };
    format!(
        "held back {} events of {user}({}){when}: {} over its budget, {} similar, {} lost{unsent}; {} deny, {} allow, {} would-deny; about {} destinations",
        s.total(),
        s.uid,
        s.over_budget,
        s.similar,
        s.lost,
        s.deny,
        s.allow,
        s.would_deny,
        s.destinations
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jump_common::{dest_hash, sketch_slot};

    fn sketch_of(dests: impl Iterator<Item = ([u8; 16], u16)>) -> UidSketch {
        let mut s = UidSketch::default();
        for (a, p) in dests {
            let (i, n) = sketch_slot(dest_hash(&a, p, 6));
            s.registers[i] = s.registers[i].max(n);
        }
        s
    }

    #[test]
    fn slot_value_is_one_plus_the_trailing_zeros_of_the_rest() {
        for h in [
            0u64,
            1,
            0x40,
            0x80,
            0xffff_ffff_ffff_ffc0,
            1 << 40,
            u64::MAX,
        ] {
            let (i, n) = sketch_slot(h);
            assert_eq!(i, (h & 63) as usize, "the low six bits pick the register");
            let want = (((h >> 6) | 1 << 58).trailing_zeros() + 1) as u8;
            assert_eq!(n, want, "hash {h:#x}");
        }
    }

    #[test]
    fn the_destination_estimate_is_within_a_third_of_the_truth() {
        // 64 registers: a standard error of 13%, so a third is about 2.5 sigma.
        for n in [1u32, 10, 50, 300, 3_000, 60_000] {
            let s = sketch_of((0..n).map(|i| {
                let mut a = [0u8; 16];
                a[10] = 0xff;
                a[11] = 0xff;
                a[12..].copy_from_slice(&(0xcb00_7100u32 + i).to_be_bytes());
                (a, 7000)
            }));
            let e = estimate(&s) as f64;
            assert!(
                (e - n as f64).abs() <= n as f64 / 3.0 + 1.0,
                "{n} destinations estimated as {e}"
            );
        }
        assert_eq!(estimate(&UidSketch::default()), 0);
    }

    #[test]
    fn a_summary_is_the_difference_to_what_was_reported() {
        let counts = UidHeld {
            tat_ns: 99,
            over_budget: 1000,
            similar: 30,
            lost: 2,
            allow: 12,
            deny: 1020,
            audit: 0,
        };
        let reported = UidHeld {
            over_budget: 400,
            similar: 10,
            deny: 410,
            ..UidHeld::default()
        };
        let snap = HeldSnapshot {
            uid: 1001,
            counts,
            reported,
            sketch: UidSketch {
                first_ns: 37_000_000_000 + 1_700_000_000_000_000_000,
                last_ns: 37_000_000_000 + 1_700_000_001_000_000_000,
                ..sketch_of(std::iter::once(([1; 16], 22)))
            },
        };
        let s = summarize(&snap, 37_000_000_000).unwrap();
        assert_eq!(
            (
                s.over_budget,
                s.similar,
                s.lost,
                s.allow,
                s.deny,
                s.would_deny
            ),
            (600, 20, 2, 12, 610, 0)
        );
        assert_eq!(s.total(), s.allow + s.deny + s.would_deny);
        assert_eq!(s.destinations, 1);
        assert_eq!(s.first.unwrap().to_string(), "2023-11-14T22:13:20Z");
        assert_eq!(s.counts, Some(counts));
        assert_eq!(
            message(&s, "alice"),
            "held back 622 events of alice(1001) from 2023-11-14T22:13:20Z to 2023-11-14T22:13:21Z: 600 over its budget, 20 similar, 2 lost; 610 deny, 12 allow, 0 would-deny; about 1 destinations"
        );
        let done = HeldSnapshot {
            reported: counts,
            ..snap
        };
        assert_eq!(summarize(&done, 0), None, "nothing pending, nothing to say");
    }

    #[test]
    fn what_journald_did_not_take_is_reported_as_lost_per_uid() {
        let counts = UidHeld {
            over_budget: 5,
            lost: 1,
            deny: 6,
            ..UidHeld::default()
        };
        let snap = HeldSnapshot {
            uid: 1001,
            counts,
            reported: UidHeld::default(),
            sketch: UidSketch::default(),
        };
        let kernel = vec![summarize(&snap, 0).unwrap()];
        let mut alice = Unsent::default();
        alice.add(Verdict::Deny);
        alice.add(Verdict::Allow);
        let mut bob = Unsent::default();
        bob.add(Verdict::WouldDeny);
        let unsent = BTreeMap::from([(1002, bob), (1001, alice), (1003, Unsent::default())]);
        let out = with_unsent(kernel, unsent);
        assert_eq!(
            out.iter().map(|s| s.uid).collect::<Vec<_>>(),
            [1001, 1002],
            "one summary per uid with something to report, by uid"
        );
        let (a, b) = (&out[0], &out[1]);
        assert_eq!(
            (a.over_budget, a.lost, a.unsent, a.deny, a.allow, a.total()),
            (5, 3, 2, 7, 1, 8),
            "alice's two unsent entries join the kernel's one lost"
        );
        assert_eq!(a.total(), a.allow + a.deny + a.would_deny);
        assert_eq!(
            a.counts,
            Some(counts),
            "the kernel's counts are marked as before"
        );
        assert_eq!(
            message(a, "alice"),
            "held back 8 events of alice(1001): 5 over its budget, 0 similar, 3 lost (2 not taken by journald); 7 deny, 1 allow, 0 would-deny; about 0 destinations"
        );
        assert_eq!((b.lost, b.unsent, b.would_deny, b.total()), (1, 1, 1, 1));
        assert_eq!(b.counts, None, "nothing of bob's in the kernel to mark");
    }
}
