//! Subordinate uid ranges → `JUMP_SUBUIDS` blocks: the uids the kernel decides as their owner.
//!
//! A uid is taken for its owner's only when that is unambiguous:
//! 1. it lies in the ranges of exactly one owner (where two users' ranges overlap, neither
//!    owns the overlap: such uids are decided as themselves, like any unlisted uid);
//! 2. it is not a uid of its own: no account has it and no rule names it (a rule naming it by
//!    number gives it its own rules);
//! 3. it is not `ANY_UID`, the users map's key for everyone else.
//!
//! What remains is cut into aligned prefix blocks, which never overlap, so the kernel's
//! longest-prefix match is the only match.

use std::collections::{BTreeMap, BTreeSet};

use jump_common::ANY_UID;

use super::image::SubuidBlock;
use crate::resolve::RuleSet;

/// The blocks of `rules.subordinates`, by first uid.
pub fn blocks(rules: &RuleSet) -> Vec<SubuidBlock> {
    let mut own: BTreeSet<u32> = rules.accounts.clone();
    for r in &rules.rules {
        own.extend(&r.uids);
    }
    own.insert(ANY_UID);
    // (1): sweep the range starts and ends (as u64, so `last + 1` cannot overflow), keeping the
    // owners covering each stretch.
    let mut edges: BTreeMap<u64, Vec<(u32, i32)>> = BTreeMap::new();
    for s in &rules.subordinates {
        edges
            .entry(u64::from(s.first))
            .or_default()
            .push((s.owner, 1));
        edges
            .entry(u64::from(s.last) + 1)
            .or_default()
            .push((s.owner, -1));
    }
    let mut covering: BTreeMap<u32, i32> = BTreeMap::new();
    let mut owned: Vec<(u64, u64, u32)> = Vec::new();
    let points: Vec<u64> = edges.keys().copied().collect();
    for (i, at) in points.iter().enumerate() {
        for &(owner, d) in &edges[at] {
            let n = covering.entry(owner).or_insert(0);
            *n += d;
            if *n == 0 {
                covering.remove(&owner);
            }
        }
        let Some(&next) = points.get(i + 1) else {
            break;
        };
        if covering.len() == 1 {
            let owner = *covering.keys().next().expect("one owner");
            match owned.last_mut() {
                Some(last) if last.1 + 1 == *at && last.2 == owner => last.1 = next - 1,
                _ => owned.push((*at, next - 1, owner)),
            }
        }
    }
    let mut out = Vec::new();
    for (lo, hi, owner) in owned {
        // (2) and (3): cut out the uids of their own.
        let mut from = lo;
        for &u in own.range(lo as u32..=hi as u32) {
            let u = u64::from(u);
            if from < u {
                push_blocks(&mut out, from, u - 1, owner);
            }
            from = u + 1;
        }
        if from <= hi {
            push_blocks(&mut out, from, hi, owner);
        }
    }
    out
}

/// The aligned blocks covering `lo..=hi`.
fn push_blocks(out: &mut Vec<SubuidBlock>, lo: u64, hi: u64, owner: u32) {
    let mut a = lo;
    while a <= hi {
        let mut size: u64 = if a == 0 {
            1 << 32
        } else {
            a & a.wrapping_neg()
        };
        while a + size - 1 > hi {
            size >>= 1;
        }
        out.push(SubuidBlock {
            first: a as u32,
            bits: (32 - size.trailing_zeros()) as u8,
            owner,
        });
        a += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::Subordinate;

    fn rules(subs: &[(u32, u32, u32)], accounts: &[u32]) -> RuleSet {
        RuleSet {
            default_action: 0,
            log_mode: 0,
            identity: 0,
            rules: Vec::new(),
            principals: Default::default(),
            subordinates: subs
                .iter()
                .map(|&(owner, first, last)| Subordinate { owner, first, last })
                .collect(),
            accounts: accounts.iter().copied().collect(),
        }
    }

    /// Every uid the blocks give an owner, expanded.
    fn owners(b: &[SubuidBlock]) -> BTreeMap<u32, u32> {
        let mut m = BTreeMap::new();
        for x in b {
            let size = 1u64 << (32 - u32::from(x.bits));
            assert_eq!(u64::from(x.first) % size, 0, "block {x:?} is aligned");
            for u in u64::from(x.first)..u64::from(x.first) + size {
                assert!(
                    m.insert(u as u32, x.owner).is_none(),
                    "blocks overlap at {u}"
                );
            }
        }
        m
    }

    #[test]
    fn a_debian_range_is_a_few_aligned_blocks() {
        let b = blocks(&rules(&[(1000, 100_000, 165_535)], &[]));
        assert!(b.len() <= 32, "{} blocks", b.len());
        let m = owners(&b);
        assert_eq!(m.len(), 65_536);
        assert!(m.values().all(|&o| o == 1000));
        assert_eq!(m.keys().next(), Some(&100_000));
        assert_eq!(m.keys().last(), Some(&165_535));
    }

    #[test]
    fn overlaps_accounts_and_any_uid_are_left_out() {
        let b = blocks(&rules(
            &[
                (1, 10, 19),
                (2, 15, 24),
                (3, 40, 49),
                (4, u32::MAX - 2, u32::MAX),
            ],
            &[42],
        ));
        let m = owners(&b);
        let expect: BTreeMap<u32, u32> = (10..15)
            .map(|u| (u, 1))
            .chain((20..25).map(|u| (u, 2)))
            .chain((40..50).filter(|&u| u != 42).map(|u| (u, 3)))
            .chain([(u32::MAX - 2, 4), (u32::MAX - 1, 4)])
            .collect();
        assert_eq!(m, expect);
    }

    #[test]
    fn one_owner_twice_is_still_one_owner() {
        let m = owners(&blocks(&rules(&[(7, 0, 9), (7, 5, 14)], &[])));
        assert_eq!(m.len(), 15);
        assert!(m.values().all(|&o| o == 7));
    }
}
