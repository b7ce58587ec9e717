//! Turns a `MapImage` into the exact keys and values for one slot, including the CLOCK_TAI shift
//! of time windows. Pure, so the layout rules (IPv4-mapped addresses, big-endian key fields,
//! prefix lengths) are unit-tested without a kernel.

use std::collections::{BTreeMap, BTreeSet};

use jump_common::{
    action, profile_flags, proto, Candidate, DestKey, DestValue, ExactKey, ExactValue, PortKey,
    PortValue, SlotConfig, SubuidKey, SubuidValue, UserKey, UserValue, ViaKey, ViaSet, Window,
    DEST_FIXED_BITS, MAX_CANDIDATES, MAX_DESTS, MAX_INTERVALS, MAX_PORTS, MAX_SUBUID_BLOCKS,
    MAX_USERS, MAX_VIA_INTERFACES, MAX_WINDOWS, PORT_FIXED_BITS, SUBUID_FIXED_BITS, UID_DIRECT,
};

use crate::compile::image::MapImage;

/// Every entry of one slot, ready to be written.
#[derive(Clone)]
pub struct SlotImage {
    pub config: SlotConfig,
    pub users: Vec<(UserKey, UserValue)>,
    /// (prefix length, key data, value)
    pub dests: Vec<(u32, DestKey, DestValue)>,
    pub ports: Vec<(u32, PortKey, PortValue)>,
    /// Lookup step 3a: the tries' answers for host-and-port destinations
    /// (`MapImage::exact_entries`).
    pub exact: Vec<(ExactKey, ExactValue)>,
    /// (array index, value)
    pub windows: Vec<(u32, Window)>,
    pub vias: Vec<(ViaKey, ViaSet)>,
    /// (prefix length, key data, value)
    pub subuids: Vec<(u32, SubuidKey, SubuidValue)>,
}

impl SlotImage {
    /// `tai_offset_ns` is CLOCK_TAI − CLOCK_REALTIME, as read from the running kernel.
    pub fn build(
        image: &MapImage,
        slot: u32,
        generation: u64,
        tai_offset_ns: i64,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            image.users.len() <= MAX_USERS as usize,
            "policy needs {} user entries, the map holds {MAX_USERS}",
            image.users.len()
        );
        anyhow::ensure!(
            image.dests.len() <= MAX_DESTS as usize,
            "policy needs {} destination entries, the map holds {MAX_DESTS}",
            image.dests.len()
        );
        anyhow::ensure!(
            image.ports.len() <= MAX_PORTS as usize,
            "policy needs {} port entries, the map holds {MAX_PORTS}",
            image.ports.len()
        );
        anyhow::ensure!(
            image.windows.len() <= MAX_WINDOWS as usize,
            "policy needs {} time windows, the map holds {MAX_WINDOWS}",
            image.windows.len()
        );
        anyhow::ensure!(
            image.subuids.len() <= MAX_SUBUID_BLOCKS as usize,
            "policy needs {} subordinate uid entries, the map holds {MAX_SUBUID_BLOCKS}",
            image.subuids.len()
        );
        let subuids = image
            .subuids
            .iter()
            .map(|b| {
                let key = SubuidKey {
                    slot_be: slot.to_be(),
                    uid_be: b.first.to_be(),
                };
                (
                    SUBUID_FIXED_BITS + u32::from(b.bits),
                    key,
                    SubuidValue { owner: b.owner },
                )
            })
            .collect();
        let flags = profile_flags(image);
        let users = image
            .users
            .iter()
            .map(|(&uid, &profile)| {
                let flags = flags.get(&profile).copied().unwrap_or(0);
                (UserKey { slot, uid }, UserValue { profile, flags })
            })
            .collect();
        let dests = image
            .dests
            .iter()
            .map(|d| {
                let (addr, len) = d.v6();
                let key = DestKey {
                    slot_be: slot.to_be(),
                    profile_be: d.profile.to_be(),
                    addr: addr.octets(),
                };
                (
                    DEST_FIXED_BITS + u32::from(len),
                    key,
                    DestValue { class: d.class },
                )
            })
            .collect();
        let ports = image
            .ports
            .iter()
            .map(|p| {
                anyhow::ensure!(
                    p.candidates.len() <= MAX_CANDIDATES,
                    "a port entry has {} candidates, at most {MAX_CANDIDATES} fit",
                    p.candidates.len()
                );
                let mut candidates = [Candidate::default(); MAX_CANDIDATES];
                candidates[..p.candidates.len()].copy_from_slice(&p.candidates);
                let key = PortKey {
                    slot_be: slot.to_be(),
                    class_be: p.class.to_be(),
                    proto: p.proto,
                    _pad: 0,
                    port_be: p.port.to_be(),
                };
                let value = PortValue {
                    len: p.candidates.len() as u32,
                    candidates,
                };
                Ok((PORT_FIXED_BITS + u32::from(p.bits), key, value))
            })
            .collect::<anyhow::Result<_>>()?;
        // Derived here, from the image as written, so every transform of the image (audit
        // mode, grants) is reflected in it.
        let exact = image
            .exact_entries()
            .into_iter()
            .map(|e| {
                (
                    ExactKey {
                        slot,
                        profile: e.profile,
                        addr: e.addr.octets(),
                        proto: e.proto,
                        _pad: 0,
                        port: e.port,
                    },
                    ExactValue {
                        rule_id: e.ruling.rule_id,
                        action: e.ruling.action,
                        _pad: [0; 3],
                    },
                )
            })
            .collect();
        let windows = image
            .windows
            .iter()
            .enumerate()
            .skip(1)
            .map(|(id, intervals)| {
                anyhow::ensure!(
                    intervals.len() <= MAX_INTERVALS,
                    "a time window has {} intervals, at most {MAX_INTERVALS} fit",
                    intervals.len()
                );
                let mut w = Window {
                    len: intervals.len() as u32,
                    session: image
                        .window_sessions
                        .get(&(id as u32))
                        .copied()
                        .unwrap_or(0),
                    intervals: [[0; 2]; MAX_INTERVALS],
                };
                for (slot_iv, &(start, end)) in w.intervals.iter_mut().zip(intervals) {
                    *slot_iv = [shift(start, tai_offset_ns), shift(end, tai_offset_ns)];
                }
                Ok((slot * MAX_WINDOWS + id as u32, w))
            })
            .collect::<anyhow::Result<_>>()?;
        let vias = image
            .vias
            .iter()
            .map(|(&rule_id, set)| {
                anyhow::ensure!(
                    set.len() <= MAX_VIA_INTERFACES,
                    "a rule's `via` has {} interfaces, at most {MAX_VIA_INTERFACES} fit",
                    set.len()
                );
                let mut v = ViaSet {
                    len: set.len() as u32,
                    ifindex: [0; MAX_VIA_INTERFACES],
                };
                v.ifindex[..set.len()].copy_from_slice(set);
                Ok((ViaKey { slot, rule_id }, v))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            config: SlotConfig {
                generation,
                default_action: image.default_action,
                log_mode: image.log_mode,
                identity: image.identity,
                audit: u8::from(image.audit),
                _pad: [0; 4],
            },
            users,
            dests,
            ports,
            exact,
            windows,
            vias,
            subuids,
        })
    }

    /// `JUMP_UID_INDEX`'s entries for this image: every listed uid below `UID_DIRECT`, with
    /// its `JUMP_USERS` value marked `LISTED` (INVARIANT uid index), in key order; its array
    /// index is `jump_common::uid_index(slot, uid)`. The rest of the slot's range is zero.
    pub fn uid_index(&self) -> Vec<(UserKey, UserValue)> {
        self.users
            .iter()
            .filter(|(k, _)| k.uid < UID_DIRECT)
            .map(|(k, v)| {
                let flags = v.flags | profile_flags::LISTED;
                (*k, UserValue { flags, ..*v })
            })
            .collect()
    }
}

/// Per profile, what `sock_create` lets it open: a profile that may send ICMP beyond loopback (an
/// allow or audit candidate for `icmp`) may create ping and raw sockets.
fn profile_flags(image: &MapImage) -> BTreeMap<u32, u32> {
    let icmp_classes: BTreeSet<u32> = image
        .ports
        .iter()
        .filter(|p| p.proto == proto::ICMP && p.candidates.iter().any(|c| c.action != action::DENY))
        .map(|p| p.class)
        .collect();
    let mut flags = BTreeMap::new();
    for d in &image.dests {
        // Loopback ICMP is allowed to everyone by `defaults.loopback`; it is no reason to let a
        // user open ping or raw sockets.
        let (addr, _) = d.v6();
        let loopback = addr.is_loopback() || addr.to_ipv4_mapped().is_some_and(|a| a.is_loopback());
        if icmp_classes.contains(&d.class) && !loopback {
            *flags.entry(d.profile).or_insert(0) |= profile_flags::ICMP;
        }
    }
    flags
}

/// Unix-time ns → CLOCK_TAI ns, saturating: `u64::MAX` stays "never".
fn shift(t: u64, offset: i64) -> u64 {
    if t == u64::MAX {
        t
    } else {
        t.saturating_add_signed(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::image::{DestEntry, PortEntry};
    use jump_common::ANY_UID;

    #[test]
    fn ipv4_networks_are_written_ipv4_mapped() {
        let image = MapImage {
            dests: vec![DestEntry {
                profile: 3,
                net: "198.51.100.0/24".parse().unwrap(),
                class: 9,
            }],
            ..Default::default()
        };
        let s = SlotImage::build(&image, 1, 7, 0).unwrap();
        let (len, key, value) = s.dests[0];
        assert_eq!(
            len,
            64 + 96 + 24,
            "an IPv4 /24 is a /120 inside ::ffff:0:0/96"
        );
        assert_eq!(
            key.addr,
            "::ffff:198.51.100.0"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        assert_eq!(key.slot_be, 1u32.to_be());
        assert_eq!(key.profile_be, 3u32.to_be());
        assert_eq!(value.class, 9);
        assert_eq!(s.config.generation, 7);
    }

    #[test]
    fn port_keys_are_big_endian_with_prefix_after_fixed_bits() {
        let image = MapImage {
            ports: vec![PortEntry {
                class: 2,
                proto: 6,
                port: 0x1b58,
                bits: 16,
                candidates: vec![Candidate {
                    rule_id: 4,
                    window: 0,
                    action: 1,
                    _pad: [0; 3],
                }],
            }],
            ..Default::default()
        };
        let s = SlotImage::build(&image, 0, 1, 0).unwrap();
        let (len, key, value) = s.ports[0];
        assert_eq!(len, 80 + 16);
        assert_eq!(key.port_be, 0x1b58u16.to_be());
        assert_eq!(key.class_be, 2u32.to_be());
        assert_eq!(value.len, 1);
        assert_eq!(value.candidates[0].rule_id, 4);
    }

    #[test]
    fn a_host_and_a_port_block_get_exact_keys_as_the_kernel_asks() {
        let c = |rule_id, window| Candidate {
            rule_id,
            window,
            action: action::ALLOW,
            _pad: [0; 3],
        };
        let port = |port, bits, candidates| PortEntry {
            class: 5,
            proto: 6,
            port,
            bits,
            candidates,
        };
        let image = MapImage {
            dests: vec![
                DestEntry {
                    profile: 3,
                    net: "198.51.100.10/32".parse().unwrap(),
                    class: 5,
                },
                // Not a host: the tries alone answer for it.
                DestEntry {
                    profile: 3,
                    net: "198.51.100.0/24".parse().unwrap(),
                    class: 5,
                },
            ],
            ports: vec![
                // 7000-7001, with 7001 carved out by a longer block of its own.
                port(7000, 15, vec![c(4, 0)]),
                port(7001, 16, vec![c(6, 0)]),
                // Timed first: the kernel must see the window, so no exact entry.
                port(22, 16, vec![c(8, 2)]),
                // More than 16 ports: left to the trie.
                port(1024, 8, vec![c(9, 0)]),
            ],
            ..Default::default()
        };
        let s = SlotImage::build(&image, 1, 7, 0).unwrap();
        let addr = "::ffff:198.51.100.10"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let got: Vec<(u16, u32)> = s.exact.iter().map(|(k, v)| (k.port, v.rule_id)).collect();
        assert_eq!(
            got,
            [(7000, 4), (7001, 6)],
            "one entry per port of the 7000/15 block, 7001 from its longer block"
        );
        for (k, v) in &s.exact {
            assert_eq!(
                (k.slot, k.profile, k.addr, k.proto, k._pad),
                (1, 3, addr, 6, 0),
                "the key is what connect4 asks: slot, profile, IPv4-mapped host, protocol"
            );
            assert_eq!(v.action, action::ALLOW);
        }
    }

    #[test]
    fn only_profiles_with_an_icmp_grant_may_open_ping_sockets() {
        let allow = Candidate {
            rule_id: 1,
            window: 0,
            action: action::ALLOW,
            _pad: [0; 3],
        };
        let deny = Candidate {
            action: action::DENY,
            ..allow
        };
        let image = MapImage {
            users: [(1000, 0), (1001, 1)].into_iter().collect(),
            dests: vec![
                DestEntry {
                    profile: 0,
                    net: "198.51.100.0/24".parse().unwrap(),
                    class: 5,
                },
                DestEntry {
                    profile: 1,
                    net: "198.51.100.0/24".parse().unwrap(),
                    class: 6,
                },
            ],
            ports: vec![
                PortEntry {
                    class: 5,
                    proto: proto::ICMP,
                    port: 0,
                    bits: 0,
                    candidates: vec![allow],
                },
                PortEntry {
                    class: 6,
                    proto: proto::ICMP,
                    port: 0,
                    bits: 0,
                    candidates: vec![deny],
                },
            ],
            ..Default::default()
        };
        let s = SlotImage::build(&image, 0, 1, 0).unwrap();
        let flags: Vec<(u32, u32)> = s.users.iter().map(|(k, v)| (k.uid, v.flags)).collect();
        assert_eq!(
            flags,
            [(1000, profile_flags::ICMP), (1001, 0)],
            "a deny-only icmp entry grants nothing"
        );
    }

    #[test]
    fn uids_below_the_direct_range_are_indexed_by_slot_and_uid() {
        let image = MapImage {
            users: [
                (0, 3),
                (1000, 4),
                (UID_DIRECT - 1, 5),
                (UID_DIRECT, 6),
                (ANY_UID, 7),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let s = SlotImage::build(&image, 1, 1, 0).unwrap();
        assert_eq!(s.users.len(), 5, "JUMP_USERS keeps every uid");
        let listed = |profile| UserValue {
            profile,
            flags: profile_flags::LISTED,
        };
        let index: Vec<_> = s
            .uid_index()
            .into_iter()
            .map(|(k, v)| (jump_common::uid_index(k.slot, k.uid), v))
            .collect();
        assert_eq!(
            index,
            [
                (Some(UID_DIRECT), listed(3)),
                (Some(UID_DIRECT + 1000), listed(4)),
                (Some(2 * UID_DIRECT - 1), listed(5)),
            ],
            "slot 1's range, uids below UID_DIRECT only, each marked listed"
        );
    }

    #[test]
    fn subuid_keys_are_big_endian_with_prefix_after_the_slot() {
        let image = MapImage {
            subuids: vec![crate::compile::image::SubuidBlock {
                first: 131_072,
                bits: 15,
                owner: 1000,
            }],
            ..Default::default()
        };
        let s = SlotImage::build(&image, 1, 1, 0).unwrap();
        let (len, key, value) = s.subuids[0];
        assert_eq!(len, 32 + 15, "a /15 of uids after the 32 slot bits");
        assert_eq!(key.slot_be, 1u32.to_be());
        assert_eq!(key.uid_be, 131_072u32.to_be());
        assert_eq!(value.owner, 1000);
    }

    #[test]
    fn windows_are_shifted_to_tai_and_placed_per_slot() {
        let image = MapImage {
            windows: vec![vec![], vec![(100, u64::MAX)]],
            ..Default::default()
        };
        let s = SlotImage::build(&image, 1, 1, 37_000_000_000).unwrap();
        assert_eq!(s.windows[0].0, MAX_WINDOWS + 1, "window 1 of slot 1");
        assert_eq!(
            s.windows[0].1.intervals[0],
            [37_000_000_100, u64::MAX],
            "an open end stays open"
        );
    }
}
