//! The real datapath: loads jump's eBPF object with aya, attaches its programs to a cgroup and
//! writes policy images into the maps with an atomic slot switch.
//!
//! (Over 500 lines: the one module that holds aya's objects; keeping every map write here keeps
//! the kernel I/O edge in one place.)

use std::{
    ffi::CString,
    fs::File,
    os::{
        fd::{AsFd, BorrowedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, bail, Context};
use aya::{
    maps::{
        lpm_trie::Key, Array, HashMap, LpmTrie, MapData, MapInfo, PerCpuArray, PerCpuValues,
        RingBuf,
    },
    programs::{
        links::{CgroupAttachMode, FdLink},
        CgroupSkbAttachType, Program, TestRun, TestRunOptions,
    },
    Ebpf, EbpfLoader,
};
use jump_common::{
    counter, maps, rule_hit_index, sys::MappedArray, uid_index, DestKey, DestValue, ExactKey,
    ExactValue, Limits, PortKey, PortValue, RuleTableChunk, SlotConfig, SubuidKey, SubuidValue,
    UidHeld, UidSketch, UserKey, UserValue, ViaKey, ViaSet, Window, HIT_COUNTED_RULES,
    RULE_TABLE_CHUNK, RULE_TABLE_CHUNKS, SLOT_COUNT, UID_DIRECT,
};
use nix::time::{clock_gettime, ClockId};

use super::{
    integrity::{self, ReadBack, Written},
    Datapath, HeldSnapshot, SlotImage,
};
use crate::compile::image::MapImage;

/// An entry of `JUMP_UID_INDEX` for a uid not listed (INVARIANT uid index).
const UNLISTED: UserValue = UserValue {
    profile: 0,
    flags: 0,
};

/// The object `cargo xtask build` produced, embedded by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/jump.bpf.o"));

/// The programs jump attaches, by their function names in `jump-ebpf`. The egress backstop
/// comes last: once it is attached, nothing undecided leaves.
pub const PROGRAMS: &[&str] = &[
    "sock_create",
    "connect4",
    "connect6",
    "sendmsg4",
    "sendmsg6",
    "bind4",
    "bind6",
    "setsockopt",
    "egress",
];

/// The default event limits: per (uid, hook, verdict, destination), at most 5 events per
/// second; per uid, bursts of 1024 and 100 a second. The rest are counted per uid and
/// summarised. 1024 is 1/32 of the ring buffer's 32,768 events: fewer than 32 uids bursting at
/// once while jumpd does not read lose nothing.
pub const DEFAULT_LIMITS: Limits = Limits {
    window_ns: 1_000_000_000,
    burst: 5,
    uid_burst: 1024,
    uid_interval_ns: 10_000_000,
};

pub struct KernelOptions {
    /// Enable the kernel programs' own debug diagnostics (aya-log).
    pub debug_log: bool,
    pub limits: Limits,
    /// This cgroup's pin directory (`pins::dir_for`).
    pub pin_dir: PathBuf,
}

pub struct Kernel {
    ebpf: Ebpf,
    /// `JUMP_UID_INDEX`'s values, mapped into memory: written and read back without syscalls.
    uid_index: MappedArray<UserValue>,
    pin_dir: PathBuf,
    tai_offset_ns: i64,
    /// The programs read the audit login uid and session themselves (the kernel's BTF gave
    /// their offsets): what events carry is then final, unset included.
    reads_audit_ids: bool,
    attached: Vec<(String, PathBuf)>,
    /// The active slot's image and the rate limit as last written: what `verify` compares.
    written: Option<Written>,
    limits: Limits,
    /// How many rules each slot's image has (0: not written by this jumpd), so the hits of a
    /// slot about to be recycled can be read in full first.
    slot_rules: [usize; 2],
    /// Whether this jumpd emptied the slot itself (`remove_written` or `clear`) and wrote
    /// nothing there since, so a reload can fill it without scanning the maps for leftovers
    /// first. False for slots of adopted pinned state, which a previous jumpd may have left.
    slot_empty: [bool; 2],
    /// The slot `apply` switched away from and what this jumpd wrote there, if it did, until
    /// `clear_previous` empties it.
    previous: Option<(u32, Option<Written>)>,
    /// (generation, hits) of recycled slots, until `take_retired_hits`.
    retired: Vec<(u64, super::RuleHits)>,
    /// `JUMP_LOCAL_ADDRS` and `JUMP_HOST_NETNS` as last written: also compared by `verify`.
    local_addrs: Option<std::collections::BTreeMap<std::net::Ipv6Addr, u32>>,
    host_netns: Option<u64>,
}

/// CLOCK_TAI − CLOCK_REALTIME: zero unless an NTP daemon set the kernel's TAI offset.
fn tai_offset_ns() -> anyhow::Result<i64> {
    let tai = clock_gettime(ClockId::CLOCK_TAI)?;
    let real = clock_gettime(ClockId::CLOCK_REALTIME)?;
    // Whole seconds: the offset is an integer number of leap seconds.
    Ok((tai.tv_sec() - real.tv_sec()) * 1_000_000_000)
}

impl Kernel {
    /// Loads the object (maps are created, programs not yet verified).
    pub fn load(
        opts: &KernelOptions,
    ) -> anyhow::Result<(Self, Option<aya_log::EbpfLogger<&'static dyn log::Log>>)> {
        if OBJECT.is_empty() {
            anyhow::bail!(
                "this jumpd was built without its eBPF object; build it with `cargo xtask build`"
            );
        }
        // aya-log-ebpf's level threshold (1 error .. 5 trace): debug only when asked, so the
        // hot path skips the formatting otherwise.
        let level: u8 = if opts.debug_log { 4 } else { 2 };
        let task = super::btf::offsets();
        let maps_dir = super::pins::maps_dir(&opts.pin_dir);
        std::fs::create_dir_all(&maps_dir)
            .with_context(|| format!("failed to create pin directory `{}`", maps_dir.display()))?;
        std::fs::create_dir_all(opts.pin_dir.join("links"))?;
        // Maps already pinned there (a previous jumpd) are reused: policy, counters and pending
        // events carry over.
        // `JUMP_SOCKS` and `JUMP_CREATORS` are BTF map definitions, which carry no pinning
        // flag: pinned by name here, so a restarted jumpd reads what the adopted programs write.
        let socks_pin = maps_dir.join(maps::SOCKS);
        let creators_pin = maps_dir.join(maps::CREATORS);
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&maps_dir)
            .map_pin_path(maps::SOCKS, &socks_pin)
            .map_pin_path(maps::CREATORS, &creators_pin)
            .override_global("AYA_LOG_LEVEL", &level, true)
            // Not every kernel has these (CONFIG_AUDIT); 0 leaves the event fields unset.
            .override_global("LOGINUID_OFFSET", &task.loginuid, false)
            .override_global("SESSIONID_OFFSET", &task.sessionid, false)
            .override_global("COMM_OFFSET", &task.comm, false)
            .override_global("TGID_OFFSET", &task.tgid, false)
            .override_global("GROUP_LEADER_OFFSET", &task.group_leader, false)
            .override_global("START_BOOTTIME_OFFSET", &task.start_boottime, false)
            .override_global("CRED_OFFSET", &task.cred, false)
            .override_global("CRED_UID_OFFSET", &task.cred_uid, false)
            .override_global("CRED_GID_OFFSET", &task.cred_gid, false)
            .override_global("SOCK_UID_OFFSET", &task.sock_uid, false)
            .load(OBJECT)
            .context("failed to load jump's eBPF object")?;
        let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!("kernel program diagnostics unavailable: {e}");
                None
            }
        };
        let uid_index = match ebpf.map(maps::UID_INDEX) {
            Some(aya::maps::Map::Array(m)) => {
                MappedArray::new(m.fd().as_fd(), (UID_DIRECT * SLOT_COUNT) as usize)
                    .with_context(|| format!("failed to map `{}`", maps::UID_INDEX))?
            }
            _ => bail!(
                "array map `{}` missing from the eBPF object",
                maps::UID_INDEX
            ),
        };
        let mut kernel = Self {
            ebpf,
            uid_index,
            pin_dir: opts.pin_dir.clone(),
            tai_offset_ns: tai_offset_ns()?,
            reads_audit_ids: task.loginuid != 0 && task.sessionid != 0,
            attached: Vec::new(),
            slot_rules: [0; 2],
            slot_empty: [false; 2],
            previous: None,
            retired: Vec::new(),
            written: None,
            limits: opts.limits,
            local_addrs: None,
            host_netns: None,
        };
        kernel.set_limits(opts.limits)?;
        Ok((kernel, logger))
    }

    /// Verifies and attaches every program to `cgroup`. All or nothing: on error the programs
    /// attached so far are detached again when `self` is dropped.
    pub fn attach(&mut self, cgroup: &Path) -> anyhow::Result<()> {
        let fd = File::open(cgroup)
            .with_context(|| format!("failed to open cgroup `{}`", cgroup.display()))?;
        // Verify every program before attaching any, so a verifier rejection leaves the
        // cgroup as it was.
        for name in PROGRAMS {
            let loaded = match self.program(name)? {
                Program::CgroupSockAddr(p) => p.load(),
                Program::CgroupSock(p) => p.load(),
                Program::CgroupSkb(p) => p.load(),
                Program::CgroupSockopt(p) => p.load(),
                _ => bail!("program `{name}` has an unexpected type"),
            };
            loaded.with_context(|| format!("the kernel refused to load `{name}`"))?;
        }
        // A bpf_link is always multi-attach (the kernel rejects the ALLOW_MULTI flag on
        // link_create with EINVAL), so jump coexists with programs others (systemd) attach to
        // the same cgroup; the kernel then requires every program to allow.
        let mode = CgroupAttachMode::Single;
        for name in PROGRAMS {
            let pin = super::pins::link_path(&self.pin_dir, name);
            if pin.exists() {
                // A previous jumpd's program is attached and reads these same maps: adopt it,
                // so enforcement has no gap.
                self.attached
                    .push((format!("{name} (adopted)"), cgroup.to_path_buf()));
                continue;
            }
            let link: Result<Result<FdLink, _>, _> = match self.program(name)? {
                Program::CgroupSockAddr(p) => p
                    .attach(&fd, mode)
                    .and_then(|id| p.take_link(id))
                    .map(FdLink::try_from),
                Program::CgroupSock(p) => p
                    .attach(&fd, mode)
                    .and_then(|id| p.take_link(id))
                    .map(FdLink::try_from),
                Program::CgroupSkb(p) => p
                    .attach(&fd, CgroupSkbAttachType::Egress, mode)
                    .and_then(|id| p.take_link(id))
                    .map(FdLink::try_from),
                Program::CgroupSockopt(p) => {
                    // aya 0.14 cannot turn a sockopt link into an `FdLink` to pin: this link
                    // is made and pinned through `jump_common::sys`, so `setsockopt` stays
                    // judged while jumpd is stopped, like every other hook.
                    pin_sockopt_link(p.fd()?.as_fd(), fd.as_fd(), &pin).with_context(|| {
                        format!("failed to attach `{name}` to `{}`", cgroup.display())
                    })?;
                    self.attached.push((name.to_string(), cgroup.to_path_buf()));
                    continue;
                }
                _ => bail!("program `{name}` has an unexpected type"),
            };
            let link = link
                .with_context(|| format!("failed to attach `{name}` to `{}`", cgroup.display()))?
                .with_context(|| format!("`{name}` was not attached with a bpf_link"))?;
            link.pin(&pin)
                .with_context(|| format!("failed to pin `{name}` at `{}`", pin.display()))?;
            self.attached.push((name.to_string(), cgroup.to_path_buf()));
        }
        Ok(())
    }

    /// Records the network namespace jumpd runs in (`JUMP_HOST_NETNS`), whose addresses
    /// `set_local_addrs` lists: the kernel's test run of `netns_probe` builds its packet in the
    /// caller's namespace (net/bpf/test_run.c).
    pub fn measure_netns(&mut self) -> anyhow::Result<()> {
        let Program::CgroupSkb(p) = self.program("netns_probe")? else {
            bail!("program `netns_probe` has an unexpected type");
        };
        if p.fd().is_err() {
            p.load()
                .context("the kernel refused to load `netns_probe`")?;
        }
        // The smallest packet the test run accepts: an Ethernet header's worth.
        let data = [0u8; 64];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&data);
        p.test_run(opts)
            .context("failed to run `netns_probe` to learn jumpd's network namespace")?;
        let map: Array<_, u64> = Array::try_from(self.map(maps::HOST_NETNS)?)?;
        let netns = map.get(&0, 0)?;
        if netns == 0 {
            bail!("`netns_probe` did not record jumpd's network namespace");
        }
        self.host_netns = Some(netns);
        Ok(())
    }

    /// Makes `JUMP_LOCAL_ADDRS` hold exactly `addrs` (IPv4 as IPv4-mapped IPv6): new ones are
    /// added before stale ones go, so an address present in both lists never disappears.
    pub fn set_local_addrs(
        &mut self,
        addrs: &std::collections::BTreeMap<std::net::Ipv6Addr, u32>,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            addrs.len() <= jump_common::MAX_LOCAL_ADDRS as usize,
            "the host has {} addresses, more than jump's map holds ({})",
            addrs.len(),
            jump_common::MAX_LOCAL_ADDRS
        );
        let mut map: HashMap<_, [u8; 16], u32> =
            HashMap::try_from(self.map_mut(maps::LOCAL_ADDRS)?)?;
        for (a, ifindex) in addrs {
            map.insert(a.octets(), ifindex, 0)
                .with_context(|| format!("failed to record local address `{a}`"))?;
        }
        let stale: Vec<[u8; 16]> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !addrs.contains_key(&std::net::Ipv6Addr::from(*k)))
            .collect();
        for k in &stale {
            map.remove(k).ok();
        }
        self.local_addrs = Some(addrs.clone());
        Ok(())
    }

    fn program(&mut self, name: &str) -> anyhow::Result<&mut Program> {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("program `{name}` missing from the eBPF object"))
    }

    pub fn set_limits(&mut self, limits: Limits) -> anyhow::Result<()> {
        let mut map: Array<_, Limits> = Array::try_from(self.map_mut(maps::LIMITS)?)?;
        map.set(0, limits, 0)
            .context("failed to set the event rate limit")?;
        self.limits = limits;
        Ok(())
    }

    pub fn attached(&self) -> &[(String, PathBuf)] {
        &self.attached
    }

    /// A descriptor of `JUMP_SOCKS` (the socket records), for revocation's socket dumps.
    pub fn socks_fd(&self) -> anyhow::Result<std::os::fd::OwnedFd> {
        match self.map(maps::SOCKS)? {
            aya::maps::Map::SkStorage(m) => Ok(m.fd().as_fd().try_clone_to_owned()?),
            _ => bail!("map `{}` is not socket storage", maps::SOCKS),
        }
    }

    pub fn take_events(&mut self) -> anyhow::Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(maps::EVENTS)
            .ok_or_else(|| anyhow!("map `{}` missing", maps::EVENTS))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// The kernel's counters, summed over CPUs, indexed by `jump_common::counter`.
    pub fn counters(&self) -> anyhow::Result<[u64; counter::LEN as usize]> {
        let map: PerCpuArray<_, u64> = PerCpuArray::try_from(self.map(maps::COUNTERS)?)?;
        let mut out = [0; counter::LEN as usize];
        for (i, v) in out.iter_mut().enumerate() {
            *v = map.get(&(i as u32), 0)?.iter().sum();
        }
        Ok(out)
    }

    /// What the kernel held back per uid and has not been reported yet: for each uid with an
    /// entry, (uid, counts held so far, counts already reported, sketch since the last report).
    /// Reading a sketch zeroes it.
    pub fn take_held(&mut self) -> anyhow::Result<Vec<HeldSnapshot>> {
        let held: HashMap<_, u32, UidHeld> = HashMap::try_from(self.map(maps::UID_HELD)?)?;
        let entries: Vec<(u32, UidHeld)> = held.iter().filter_map(Result::ok).collect();
        let reported: HashMap<_, u32, UidHeld> = HashMap::try_from(self.map(maps::UID_REPORTED)?)?;
        let mut out = Vec::new();
        for (uid, counts) in entries {
            let done = reported.get(&uid, 0).unwrap_or_default();
            out.push(HeldSnapshot {
                uid,
                counts,
                reported: done,
                sketch: UidSketch::default(),
            });
        }
        let mut sketches: HashMap<_, u32, UidSketch> =
            HashMap::try_from(self.map_mut(maps::UID_SKETCH)?)?;
        for s in &mut out {
            if !s.pending() {
                continue;
            }
            s.sketch = sketches.get(&s.uid, 0).unwrap_or_default();
            // BPF_EXIST: only reset what is there. An update the kernel makes between the read
            // and this write is lost to the estimate and the times, never to a count.
            sketches.insert(s.uid, UidSketch::default(), 2).ok();
        }
        Ok(out)
    }

    /// Records that `counts` of `uid` have been reported.
    pub fn mark_reported(&mut self, uid: u32, counts: UidHeld) -> anyhow::Result<()> {
        let mut reported: HashMap<_, u32, UidHeld> =
            HashMap::try_from(self.map_mut(maps::UID_REPORTED)?)?;
        reported
            .insert(uid, counts, 0)
            .context("failed to record the reported held events")?;
        Ok(())
    }

    /// The rule tables kept in both slots (`keep_rule_table`), as written; unreadable or empty
    /// ones left out.
    pub fn rule_tables(&self) -> Vec<Vec<u8>> {
        let Ok(map) = self
            .map(maps::RULE_TABLES)
            .and_then(|m| Ok(HashMap::<_, u32, RuleTableChunk>::try_from(m)?))
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for slot in 0..jump_common::SLOT_COUNT {
            let base = slot * RULE_TABLE_CHUNKS;
            let Ok(first) = map.get(&base, 0) else {
                continue;
            };
            let len = u32::from_le_bytes(first.bytes[..4].try_into().unwrap_or_default()) as usize;
            if len == 0 || len + 4 > RULE_TABLE_CHUNK * RULE_TABLE_CHUNKS as usize {
                continue;
            }
            let mut framed = Vec::with_capacity(len + 4);
            for i in 0..(len + 4).div_ceil(RULE_TABLE_CHUNK) as u32 {
                match map.get(&(base + i), 0) {
                    Ok(c) => framed.extend_from_slice(&c.bytes),
                    Err(_) => break,
                }
            }
            if framed.len() >= len + 4 {
                out.push(framed[4..len + 4].to_vec());
            }
        }
        out
    }

    /// CLOCK_TAI − CLOCK_REALTIME in ns, to turn the kernel's timestamps into wall time.
    pub fn tai_offset_ns(&self) -> i64 {
        self.tai_offset_ns
    }

    /// Whether events carry the login uid and session as the kernel read them (see the field).
    pub fn reads_audit_ids(&self) -> bool {
        self.reads_audit_ids
    }

    /// Hits per (rule id, action) of the active policy, summed over CPUs; only non-zero ones.
    pub fn rule_hits(&self, rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>> {
        self.slot_hits(self.active_slot()?, rules)
    }

    /// The same for the inactive slot: the previous generation, which in-flight decisions may
    /// still have counted in after the switch.
    pub fn previous_rule_hits(&self, rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>> {
        self.slot_hits(1 - self.active_slot()?, rules)
    }

    fn slot_hits(&self, slot: u32, rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>> {
        let map: PerCpuArray<_, u64> = PerCpuArray::try_from(self.map(maps::RULE_HITS)?)?;
        let mut out = Vec::new();
        for rule in 0..(rules as u32).min(HIT_COUNTED_RULES) {
            for action in 0..3u8 {
                let n: u64 = map
                    .get(&rule_hit_index(slot, rule, action), 0)?
                    .iter()
                    .sum();
                if n > 0 {
                    out.push((rule, action, n));
                }
            }
        }
        Ok(out)
    }

    /// Zeroes a slot's rule hits from rule `from` up to `rules`, before the slot is filled
    /// with a new policy.
    fn zero_hits(&mut self, slot: u32, from: usize, rules: usize) -> anyhow::Result<()> {
        let range = (from as u32).min(HIT_COUNTED_RULES)..(rules as u32).min(HIT_COUNTED_RULES);
        let entries: Vec<(u32, u8)> = range
            .flat_map(|rule| (0..3u8).map(move |action| (rule, action)))
            .collect();
        self.zero_hit_entries(slot, &entries)
    }

    /// Zeroes the rule hits of (rule, action) `entries` of a slot.
    fn zero_hit_entries(&mut self, slot: u32, entries: &[(u32, u8)]) -> anyhow::Result<()> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
        let mut map: PerCpuArray<_, u64> = PerCpuArray::try_from(self.map_mut(maps::RULE_HITS)?)?;
        // Rules past `HIT_COUNTED_RULES` have no counters.
        for &(rule, action) in entries.iter().filter(|(r, _)| *r < HIT_COUNTED_RULES) {
            map.set(
                rule_hit_index(slot, rule, action),
                PerCpuValues::try_from(vec![0u64; cpus])?,
                0,
            )?;
        }
        Ok(())
    }

    fn map(&self, name: &str) -> anyhow::Result<&aya::maps::Map> {
        self.ebpf
            .map(name)
            .ok_or_else(|| anyhow!("map `{name}` missing from the eBPF object"))
    }

    fn map_mut(&mut self, name: &str) -> anyhow::Result<&mut aya::maps::Map> {
        self.ebpf
            .map_mut(name)
            .ok_or_else(|| anyhow!("map `{name}` missing from the eBPF object"))
    }

    /// Writes the `JUMP_UID_INDEX` entry of `k` (a uid below `UID_DIRECT`).
    fn set_uid_index(&mut self, k: UserKey, v: UserValue) {
        if let Some(i) = uid_index(k.slot, k.uid) {
            self.uid_index.set(i as usize, v);
        }
    }

    /// The non-zero entries of `JUMP_UID_INDEX`, by the uid each is at.
    fn uid_index_entries(&self) -> Vec<(UserKey, UserValue)> {
        (0..self.uid_index.len())
            .filter_map(|i| {
                let v = self.uid_index.get(i).filter(|v| *v != UNLISTED)?;
                let i = i as u32;
                let k = UserKey {
                    slot: i / UID_DIRECT,
                    uid: i % UID_DIRECT,
                };
                Some((k, v))
            })
            .collect()
    }

    fn active_slot(&self) -> anyhow::Result<u32> {
        let active: Array<_, u32> = Array::try_from(self.map(maps::ACTIVE)?)?;
        Ok(active.get(&0, 0)?)
    }

    /// The generation in force in the maps (0 when they are new), so a restarted jumpd
    /// continues the numbering of the one whose pinned state it adopts.
    pub fn generation(&self) -> anyhow::Result<u64> {
        let slots: Array<_, SlotConfig> = Array::try_from(self.map(maps::SLOTS)?)?;
        Ok(slots.get(&self.active_slot()?, 0)?.generation)
    }

    /// Removes every entry of `slot`. The keys are found by scanning, since a previous jumpd
    /// may have written them.
    fn clear(&mut self, slot: u32) -> anyhow::Result<()> {
        let range = slot * UID_DIRECT..(slot + 1) * UID_DIRECT;
        for i in range.map(|i| i as usize) {
            if self.uid_index.get(i) != Some(UNLISTED) {
                self.uid_index.set(i, UNLISTED);
            }
        }
        let mut users: HashMap<_, UserKey, UserValue> =
            HashMap::try_from(self.map_mut(maps::USERS)?)?;
        let stale: Vec<UserKey> = users
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.slot == slot)
            .collect();
        for k in &stale {
            users.remove(k).ok();
        }
        let mut dests: LpmTrie<_, DestKey, DestValue> =
            LpmTrie::try_from(self.map_mut(maps::DESTS)?)?;
        let stale: Vec<Key<DestKey>> = dests
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.data().slot_be == slot.to_be())
            .collect();
        for k in &stale {
            dests.remove(k).ok();
        }
        let mut ports: LpmTrie<_, PortKey, PortValue> =
            LpmTrie::try_from(self.map_mut(maps::PORTS)?)?;
        let stale: Vec<Key<PortKey>> = ports
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.data().slot_be == slot.to_be())
            .collect();
        for k in &stale {
            ports.remove(k).ok();
        }
        let mut exact: HashMap<_, ExactKey, ExactValue> =
            HashMap::try_from(self.map_mut(maps::EXACT)?)?;
        let stale: Vec<ExactKey> = exact
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.slot == slot)
            .collect();
        for k in &stale {
            exact.remove(k).ok();
        }
        let mut vias: HashMap<_, ViaKey, ViaSet> = HashMap::try_from(self.map_mut(maps::VIAS)?)?;
        let stale: Vec<ViaKey> = vias
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.slot == slot)
            .collect();
        for k in &stale {
            vias.remove(k).ok();
        }
        let mut subuids: LpmTrie<_, SubuidKey, SubuidValue> =
            LpmTrie::try_from(self.map_mut(maps::SUBUIDS)?)?;
        let stale: Vec<Key<SubuidKey>> = subuids
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.data().slot_be == slot.to_be())
            .collect();
        for k in &stale {
            subuids.remove(k).ok();
        }
        Ok(())
    }

    /// Removes the entries of image `s` (in its slot), as `write` wrote them. An entry that is
    /// already gone is no error: the goal is that none is left.
    fn remove_written(&mut self, s: &SlotImage) -> anyhow::Result<()> {
        for (k, _) in s.uid_index() {
            self.set_uid_index(k, UNLISTED);
        }
        let mut users: HashMap<_, UserKey, UserValue> =
            HashMap::try_from(self.map_mut(maps::USERS)?)?;
        for (k, _) in &s.users {
            users.remove(k).ok();
        }
        let mut dests: LpmTrie<_, DestKey, DestValue> =
            LpmTrie::try_from(self.map_mut(maps::DESTS)?)?;
        for (len, k, _) in &s.dests {
            dests.remove(&Key::new(*len, *k)).ok();
        }
        let mut ports: LpmTrie<_, PortKey, PortValue> =
            LpmTrie::try_from(self.map_mut(maps::PORTS)?)?;
        for (len, k, _) in &s.ports {
            ports.remove(&Key::new(*len, *k)).ok();
        }
        let mut exact: HashMap<_, ExactKey, ExactValue> =
            HashMap::try_from(self.map_mut(maps::EXACT)?)?;
        for (k, _) in &s.exact {
            exact.remove(k).ok();
        }
        let mut vias: HashMap<_, ViaKey, ViaSet> = HashMap::try_from(self.map_mut(maps::VIAS)?)?;
        for (k, _) in &s.vias {
            vias.remove(k).ok();
        }
        let mut subuids: LpmTrie<_, SubuidKey, SubuidValue> =
            LpmTrie::try_from(self.map_mut(maps::SUBUIDS)?)?;
        for (len, k, _) in &s.subuids {
            subuids.remove(&Key::new(*len, *k)).ok();
        }
        Ok(())
    }

    fn write(&mut self, slot: u32, s: &SlotImage) -> anyhow::Result<()> {
        for (k, v) in s.uid_index() {
            self.set_uid_index(k, v);
        }
        let mut users: HashMap<_, UserKey, UserValue> =
            HashMap::try_from(self.map_mut(maps::USERS)?)?;
        for (k, v) in &s.users {
            users
                .insert(k, v, 0)
                .context("failed to write a user entry")?;
        }
        let mut dests: LpmTrie<_, DestKey, DestValue> =
            LpmTrie::try_from(self.map_mut(maps::DESTS)?)?;
        for (len, k, v) in &s.dests {
            dests
                .insert(&Key::new(*len, *k), v, 0)
                .context("failed to write a destination entry")?;
        }
        let mut ports: LpmTrie<_, PortKey, PortValue> =
            LpmTrie::try_from(self.map_mut(maps::PORTS)?)?;
        for (len, k, v) in &s.ports {
            ports
                .insert(&Key::new(*len, *k), v, 0)
                .context("failed to write a port entry")?;
        }
        let mut exact: HashMap<_, ExactKey, ExactValue> =
            HashMap::try_from(self.map_mut(maps::EXACT)?)?;
        for (k, v) in &s.exact {
            exact
                .insert(k, v, 0)
                .context("failed to write an exact destination entry")?;
        }
        let mut vias: HashMap<_, ViaKey, ViaSet> = HashMap::try_from(self.map_mut(maps::VIAS)?)?;
        for (k, v) in &s.vias {
            vias.insert(k, v, 0)
                .context("failed to write a rule's interfaces")?;
        }
        let mut subuids: LpmTrie<_, SubuidKey, SubuidValue> =
            LpmTrie::try_from(self.map_mut(maps::SUBUIDS)?)?;
        for (len, k, v) in &s.subuids {
            subuids
                .insert(&Key::new(*len, *k), v, 0)
                .context("failed to write a subordinate uid entry")?;
        }
        let mut windows: Array<_, Window> = Array::try_from(self.map_mut(maps::WINDOWS)?)?;
        for (i, v) in &s.windows {
            windows
                .set(*i, v, 0)
                .context("failed to write a time window")?;
        }
        let mut slots: Array<_, SlotConfig> = Array::try_from(self.map_mut(maps::SLOTS)?)?;
        slots
            .set(slot, s.config, 0)
            .context("failed to write the slot configuration")?;
        Ok(())
    }
}

impl Datapath for Kernel {
    fn keep_rule_table(&mut self, json: &[u8]) -> anyhow::Result<()> {
        let mut framed = (json.len() as u32).to_le_bytes().to_vec();
        framed.extend_from_slice(json);
        if framed.len() > RULE_TABLE_CHUNK * RULE_TABLE_CHUNKS as usize {
            bail!(
                "the rule table ({} bytes) does not fit `{}`: events decided while jumpd is down will name rules by number",
                json.len(),
                maps::RULE_TABLES
            );
        }
        let base = self.active_slot()? * RULE_TABLE_CHUNKS;
        let mut map: HashMap<_, u32, RuleTableChunk> =
            HashMap::try_from(self.map_mut(maps::RULE_TABLES)?)?;
        let chunks = framed.len().div_ceil(RULE_TABLE_CHUNK) as u32;
        for (i, c) in framed.chunks(RULE_TABLE_CHUNK).enumerate() {
            let mut chunk = RuleTableChunk {
                bytes: [0; RULE_TABLE_CHUNK],
            };
            chunk.bytes[..c.len()].copy_from_slice(c);
            map.insert(base + i as u32, chunk, 0)
                .context("failed to keep the rule table")?;
        }
        // A longer table kept in this slot before leaves chunks past this one's end: freed,
        // so the slot holds only what its table needs (they are written from 0 without gaps).
        for i in chunks..RULE_TABLE_CHUNKS {
            if map.remove(&(base + i)).is_err() {
                break;
            }
        }
        Ok(())
    }

    fn take_retired_hits(&mut self) -> Vec<(u64, super::RuleHits)> {
        std::mem::take(&mut self.retired)
    }

    fn clear_previous(&mut self) -> anyhow::Result<()> {
        let Some((slot, written)) = self.previous.take() else {
            return Ok(());
        };
        // The old slot's entries are the ones this jumpd wrote there (its `written` image):
        // removed by key, without scanning the maps. Anything else there (adopted state, or
        // entries root added, which `verify` reports) needs the scan.
        match written.filter(|w| w.slot == slot) {
            Some(w) => self.remove_written(&w.image)?,
            None => self.clear(slot)?,
        }
        self.slot_empty[slot as usize] = true;
        Ok(())
    }

    fn apply(&mut self, image: &MapImage, generation: u64) -> anyhow::Result<()> {
        self.clear_previous()?;
        let active = self.active_slot()?;
        let target = 1 - active;
        let s = SlotImage::build(image, target, generation, self.tai_offset_ns)?;
        // The target's counts are final (no program has read that slot since the switch
        // before last): keep them for the daemon's totals before they are zeroed.
        let old_rules = self.slot_rules[target as usize];
        if old_rules > 0 {
            let slots: Array<_, SlotConfig> = Array::try_from(self.map(maps::SLOTS)?)?;
            let old_generation = slots.get(&target, 0)?.generation;
            let hits = self.slot_hits(target, old_rules)?;
            // Only the counts just read as non-zero need zeroing below the old rule count,
            // and everything from there up to the new one (one write per entry each).
            let nonzero: Vec<(u32, u8)> = hits.iter().map(|(r, a, _)| (*r, *a)).collect();
            self.zero_hit_entries(target, &nonzero)?;
            self.retired.push((old_generation, hits));
        }
        if !self.slot_empty[target as usize] {
            self.clear(target)?;
        }
        self.zero_hits(target, old_rules, image.rules.len())?;
        self.slot_rules[target as usize] = image.rules.len();
        self.slot_empty[target as usize] = false;
        if let Err(e) = self.write(target, &s) {
            if self.clear(target).is_ok() {
                self.slot_empty[target as usize] = true;
            }
            return Err(e);
        }
        // INVARIANT (one generation per decision): the switch is this single array write; a
        // program reads the active slot once and does all its lookups in that slot.
        let mut active_map: Array<_, u32> = Array::try_from(self.map_mut(maps::ACTIVE)?)?;
        active_map
            .set(0, target, 0)
            .context("failed to switch to the new policy slot")?;
        // Programs run under RCU: wait for a grace period, so none still reads the old slot
        // when its entries go (a miss there would fall back to the default).
        wait_for_readers();
        let previous = self.written.replace(Written {
            slot: target,
            image: s,
        });
        self.previous = Some((active, previous));
        Ok(())
    }
}

/// Tamper detection (`integrity`): read back, compare, restore.
impl Kernel {
    fn read_back(&self, w: &Written) -> anyhow::Result<ReadBack> {
        let slots: Array<_, SlotConfig> = Array::try_from(self.map(maps::SLOTS)?)?;
        let limits: Array<_, Limits> = Array::try_from(self.map(maps::LIMITS)?)?;
        let users: HashMap<_, UserKey, UserValue> = HashMap::try_from(self.map(maps::USERS)?)?;
        let exact: HashMap<_, ExactKey, ExactValue> = HashMap::try_from(self.map(maps::EXACT)?)?;
        let windows: Array<_, Window> = Array::try_from(self.map(maps::WINDOWS)?)?;
        Ok(ReadBack {
            active: self.active_slot()?,
            config: slots.get(&w.slot, 0)?,
            limits: limits.get(&0, 0)?,
            users: users.iter().collect::<Result<_, _>>()?,
            uid_index: self.uid_index_entries(),
            dests: self.lpm_entries::<DestKey, DestValue>(maps::DESTS)?,
            ports: self.lpm_entries::<PortKey, PortValue>(maps::PORTS)?,
            exact: exact.iter().collect::<Result<_, _>>()?,
            subuids: self.lpm_entries::<SubuidKey, SubuidValue>(maps::SUBUIDS)?,
            windows: w
                .image
                .windows
                .iter()
                .map(|(i, _)| Ok((*i, windows.get(i, 0)?)))
                .collect::<anyhow::Result<_>>()?,
        })
    }

    fn lpm_entries<K: aya::Pod, V: aya::Pod>(
        &self,
        name: &str,
    ) -> anyhow::Result<Vec<(u32, K, V)>> {
        let trie: LpmTrie<_, K, V> = LpmTrie::try_from(self.map(name)?)?;
        trie.iter()
            .map(|e| {
                let (k, v) = e?;
                Ok((k.prefix_len(), k.data(), v))
            })
            .collect()
    }

    /// How the owned maps differ from what this jumpd wrote (empty: as written; also before
    /// the first policy).
    pub fn verify(&self) -> anyhow::Result<Vec<String>> {
        let Some(w) = &self.written else {
            return Ok(Vec::new());
        };
        let mut out = integrity::compare(w, &self.limits, &self.read_back(w)?);
        if let Some(want) = &self.local_addrs {
            let map: HashMap<_, [u8; 16], u32> = HashMap::try_from(self.map(maps::LOCAL_ADDRS)?)?;
            let read: Vec<([u8; 16], u32)> = map.iter().collect::<Result<_, _>>()?;
            let want = want.iter().map(|(a, i)| (a.octets(), *i));
            out.extend(integrity::describe(
                maps::LOCAL_ADDRS,
                &integrity::diff_entries(want, read),
            ));
        }
        if let Some(want) = self.host_netns {
            let map: Array<_, u64> = Array::try_from(self.map(maps::HOST_NETNS)?)?;
            let got = map.get(&0, 0)?;
            if got != want {
                out.push(format!(
                    "{}: network namespace {got}, jumpd measured {want}",
                    maps::HOST_NETNS
                ));
            }
        }
        Ok(out)
    }

    /// Writes back what this jumpd wrote: removes entries it did not write, rewrites the ones
    /// that differ, and points `JUMP_ACTIVE` at its slot again (last, so the slot is whole
    /// before it is used).
    pub fn restore(&mut self) -> anyhow::Result<()> {
        let Some(w) = self.written.clone() else {
            return Ok(());
        };
        let r = self.read_back(&w)?;
        let mut users: HashMap<_, UserKey, UserValue> =
            HashMap::try_from(self.map_mut(maps::USERS)?)?;
        let d = integrity::diff_entries(w.image.users.clone(), r.users);
        for k in &d.extra {
            users.remove(k).ok();
        }
        let rewrite: std::collections::BTreeSet<_> = d.changed.iter().chain(&d.missing).collect();
        for (k, v) in w.image.users.iter().filter(|(k, _)| rewrite.contains(k)) {
            users.insert(k, v, 0)?;
        }
        let want = w.image.uid_index();
        let d = integrity::diff_entries(want.clone(), r.uid_index);
        for k in d.extra {
            self.set_uid_index(k, UNLISTED);
        }
        let rewrite: std::collections::BTreeSet<_> = d.changed.iter().chain(&d.missing).collect();
        for (k, v) in want.into_iter().filter(|(k, _)| rewrite.contains(k)) {
            self.set_uid_index(k, v);
        }
        let mut exact: HashMap<_, ExactKey, ExactValue> =
            HashMap::try_from(self.map_mut(maps::EXACT)?)?;
        let d = integrity::diff_entries(w.image.exact.clone(), r.exact);
        for k in &d.extra {
            exact.remove(k).ok();
        }
        let rewrite: std::collections::BTreeSet<_> = d.changed.iter().chain(&d.missing).collect();
        for (k, v) in w.image.exact.iter().filter(|(k, _)| rewrite.contains(k)) {
            exact.insert(k, v, 0)?;
        }
        self.restore_lpm(maps::DESTS, &w.image.dests, r.dests)?;
        self.restore_lpm(maps::PORTS, &w.image.ports, r.ports)?;
        self.restore_lpm(maps::SUBUIDS, &w.image.subuids, r.subuids)?;
        let mut windows: Array<_, Window> = Array::try_from(self.map_mut(maps::WINDOWS)?)?;
        for (i, v) in &w.image.windows {
            windows.set(*i, v, 0)?;
        }
        let mut slots: Array<_, SlotConfig> = Array::try_from(self.map_mut(maps::SLOTS)?)?;
        slots.set(w.slot, w.image.config, 0)?;
        let limits = self.limits;
        self.set_limits(limits)?;
        if let Some(addrs) = self.local_addrs.clone() {
            self.set_local_addrs(&addrs)?;
        }
        if let Some(netns) = self.host_netns {
            let mut map: Array<_, u64> = Array::try_from(self.map_mut(maps::HOST_NETNS)?)?;
            map.set(0, netns, 0)?;
        }
        let mut active: Array<_, u32> = Array::try_from(self.map_mut(maps::ACTIVE)?)?;
        active.set(0, w.slot, 0)?;
        Ok(())
    }

    fn restore_lpm<K: aya::Pod + Ord, V: aya::Pod + PartialEq>(
        &mut self,
        name: &str,
        want: &[(u32, K, V)],
        read: Vec<(u32, K, V)>,
    ) -> anyhow::Result<()> {
        let pairs = |v: Vec<(u32, K, V)>| v.into_iter().map(|(l, k, v)| ((l, k), v));
        let d = integrity::diff_entries(pairs(want.to_vec()), pairs(read));
        let mut trie: LpmTrie<_, K, V> = LpmTrie::try_from(self.map_mut(name)?)?;
        for (l, k) in &d.extra {
            trie.remove(&Key::new(*l, *k)).ok();
        }
        let rewrite: std::collections::BTreeSet<_> = d.changed.iter().chain(&d.missing).collect();
        for (l, k, v) in want {
            if rewrite.contains(&(*l, *k)) {
                trie.insert(&Key::new(*l, *k), v, 0)?;
            }
        }
        Ok(())
    }
}

/// Per-program statistics for the metrics (`daemon::metrics`).
impl Kernel {
    /// (program, runs, run time) of each attached program, as the kernel counts them while
    /// `kernel.bpf_stats_enabled` is 1. An adopted program (a previous jumpd's, still attached
    /// through its pinned link) is the one that runs, not this jumpd's copy: it is found
    /// through the link.
    pub fn program_stats(&self) -> Vec<(String, u64, Duration)> {
        let ids: Vec<(&str, u32)> = PROGRAMS
            .iter()
            .filter_map(|name| {
                let pin = super::pins::link_path(&self.pin_dir, name);
                let id = match aya::programs::links::PinnedLink::from_pin(&pin) {
                    Ok(link) => FdLink::from(link).info().ok()?.program_id(),
                    Err(_) => self.ebpf.program(name)?.info().ok()?.id(),
                };
                Some((*name, id))
            })
            .collect();
        aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .filter_map(|info| {
                let (name, _) = ids.iter().find(|(_, id)| *id == info.id())?;
                Some((name.to_string(), info.run_count(), info.run_time()))
            })
            .collect()
    }
}

/// Returns once every BPF program that started before the call has finished: cgroup programs
/// run inside an RCU read-side section, and `membarrier(MEMBARRIER_CMD_GLOBAL)` is
/// `synchronize_rcu()` (kernel/sched/membarrier.c, since Linux 4.3 as `MEMBARRIER_CMD_SHARED`).
/// Unavailable (`nohz_full` kernels refuse it) or on one CPU it returns at once; a program that
/// still reads the old slot then finds it emptied and takes the default, which is logged.
fn wait_for_readers() {
    if let Err(e) = rustix::thread::membarrier(rustix::thread::MembarrierCommand::Global) {
        tracing::debug!("membarrier(GLOBAL) failed, not waiting for the old slot's readers: {e}");
    }
}

/// Attaches the loaded `setsockopt` program to `cgroup` with a new link and pins the link at
/// `pin`; the descriptor is closed on return, the pin keeps the program attached.
fn pin_sockopt_link(
    prog: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    pin: &Path,
) -> anyhow::Result<()> {
    let link = jump_common::sys::cgroup_link(prog, cgroup, jump_common::sys::BPF_CGROUP_SETSOCKOPT)
        .context("bpf_link_create")?;
    let path = CString::new(pin.as_os_str().as_bytes())
        .with_context(|| format!("pin path `{}` holds a NUL byte", pin.display()))?;
    jump_common::sys::pin(link.as_fd(), &path)
        .with_context(|| format!("failed to pin the link at `{}`", pin.display()))
}

/// Refuses a cgroup where jump's programs already run on other maps than those pinned in
/// `pin_dir`: attached by a jumpd with another `--pin-dir` or of another pin layout (an upgrade
/// that skipped `--detach`). cgroup links are always multi-attach, so both sets would enforce,
/// and the other set's refusals would reach no log. jump's programs are told by the map they
/// read the active slot from (`JUMP_ACTIVE`); a restart's adopted ones read the pinned one.
/// Called before anything is created, so a refusal changes nothing.
pub fn refuse_other_jump(cgroup: &Path, pin_dir: &Path) -> anyhow::Result<()> {
    let fd = File::open(cgroup)
        .with_context(|| format!("failed to open cgroup `{}`", cgroup.display()))?;
    let ours = MapInfo::from_pin(super::pins::maps_dir(pin_dir).join(maps::ACTIVE))
        .ok()
        .map(|m| m.id());
    let mut attached = Vec::new();
    for attach_type in [
        jump_common::sys::BPF_CGROUP_INET_EGRESS,
        jump_common::sys::BPF_CGROUP_INET4_CONNECT,
    ] {
        attached.extend(
            jump_common::sys::cgroup_program_ids(fd.as_fd(), attach_type).with_context(|| {
                format!("failed to list the programs of `{}`", cgroup.display())
            })?,
        );
    }
    let mut others = Vec::new();
    for info in aya::programs::loaded_programs().flatten() {
        if !attached.contains(&info.id()) {
            continue;
        }
        let maps = info.map_ids().ok().flatten().unwrap_or_default();
        let reads_another_active = maps.iter().any(|&id| {
            Some(id) != ours
                && MapInfo::from_id(id).is_ok_and(|m| m.name_as_str() == Some(maps::ACTIVE))
        });
        if reads_another_active {
            others.push(format!(
                "{} (id {})",
                info.name_as_str().unwrap_or("?"),
                info.id()
            ));
        }
    }
    if others.is_empty() {
        return Ok(());
    }
    bail!(
        "`{}` already runs jump programs on other maps than those of `{}`: {}. A jumpd with \
         another --pin-dir or pin layout attached them; detach them with that jumpd \
         (`jumpd --detach --pin-dir DIR`) first; nothing was changed",
        cgroup.display(),
        pin_dir.display(),
        others.join(", ")
    )
}
