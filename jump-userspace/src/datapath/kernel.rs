//! The real datapath: loads jump's eBPF object with aya, attaches its programs to a cgroup and
//! writes policy images into the maps with an atomic slot switch.

use std::{
    fs::File,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{anyhow, bail, Context};
use aya::{
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, MapData, PerCpuArray, PerCpuValues, RingBuf},
    programs::{
        links::{CgroupAttachMode, FdLink},
        CgroupSkbAttachType, Program,
    },
    Ebpf, EbpfLoader,
};
use jump_common::{
    counter, maps, rule_hit_index, DestKey, DestValue, Limits, PortKey, PortValue, SlotConfig,
    UserKey, UserValue, Window, MAX_RULES,
};
use nix::time::{clock_gettime, ClockId};

use super::{Datapath, SlotImage};
use crate::compile::image::MapImage;

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
    "egress",
];

/// The default event rate limit: per (uid, hook, verdict, destination), at most this many
/// events per second; the rest are counted and summarised.
pub const DEFAULT_LIMITS: Limits = Limits {
    window_ns: 1_000_000_000,
    burst: 5,
    _pad: 0,
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
    pin_dir: PathBuf,
    tai_offset_ns: i64,
    attached: Vec<(String, PathBuf)>,
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
        let (loginuid_off, sessionid_off) = super::btf::audit_offsets();
        let maps_dir = super::pins::maps_dir(&opts.pin_dir);
        std::fs::create_dir_all(&maps_dir)
            .with_context(|| format!("failed to create pin directory `{}`", maps_dir.display()))?;
        std::fs::create_dir_all(opts.pin_dir.join("links"))?;
        // Maps already pinned there (a previous jumpd) are reused: policy, counters and pending
        // events carry over.
        // `JUMP_SOCKS` is a BTF map definition, which carries no pinning flag: pinned by name
        // here, so a restarted jumpd reads the records the adopted programs write.
        let socks_pin = maps_dir.join(maps::SOCKS);
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&maps_dir)
            .map_pin_path(maps::SOCKS, &socks_pin)
            .override_global("AYA_LOG_LEVEL", &level, true)
            // Not every kernel has these (CONFIG_AUDIT); 0 leaves the event fields unset.
            .override_global("LOGINUID_OFFSET", &loginuid_off, false)
            .override_global("SESSIONID_OFFSET", &sessionid_off, false)
            .load(OBJECT)
            .context("failed to load jump's eBPF object")?;
        let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!("kernel program diagnostics unavailable: {e}");
                None
            }
        };
        let mut kernel = Self {
            ebpf,
            pin_dir: opts.pin_dir.clone(),
            tai_offset_ns: tai_offset_ns()?,
            attached: Vec::new(),
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

    fn program(&mut self, name: &str) -> anyhow::Result<&mut Program> {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| anyhow!("program `{name}` missing from the eBPF object"))
    }

    pub fn set_limits(&mut self, limits: Limits) -> anyhow::Result<()> {
        let mut map: Array<_, Limits> = Array::try_from(self.map_mut(maps::LIMITS)?)?;
        map.set(0, limits, 0)
            .context("failed to set the event rate limit")?;
        Ok(())
    }

    pub fn attached(&self) -> &[(String, PathBuf)] {
        &self.attached
    }

    /// A descriptor of `JUMP_SOCKS` (the socket records), for revocation's socket dumps.
    pub fn socks_fd(&self) -> anyhow::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
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

    /// Hits per (rule id, action) of the active policy, summed over CPUs; only non-zero ones.
    pub fn rule_hits(&self, rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>> {
        let slot = self.active_slot()?;
        let map: PerCpuArray<_, u64> = PerCpuArray::try_from(self.map(maps::RULE_HITS)?)?;
        let mut out = Vec::new();
        for rule in 0..(rules as u32).min(MAX_RULES) {
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

    /// Zeroes a slot's rule hits up to `rules`, before the slot is filled with a new policy.
    fn zero_hits(&mut self, slot: u32, rules: usize) -> anyhow::Result<()> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
        let mut map: PerCpuArray<_, u64> = PerCpuArray::try_from(self.map_mut(maps::RULE_HITS)?)?;
        for rule in 0..(rules as u32).min(MAX_RULES) {
            for action in 0..3u8 {
                map.set(
                    rule_hit_index(slot, rule, action),
                    PerCpuValues::try_from(vec![0u64; cpus])?,
                    0,
                )?;
            }
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
        Ok(())
    }

    fn write(&mut self, slot: u32, s: &SlotImage) -> anyhow::Result<()> {
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
    fn apply(&mut self, image: &MapImage, generation: u64) -> anyhow::Result<()> {
        let active = self.active_slot()?;
        let target = 1 - active;
        let s = SlotImage::build(image, target, generation, self.tai_offset_ns)?;
        self.clear(target)?;
        self.zero_hits(target, image.rules.len())?;
        if let Err(e) = self.write(target, &s) {
            self.clear(target).ok();
            return Err(e);
        }
        // INVARIANT (one generation per decision): the switch is this single array write; a
        // program reads the active slot once and does all its lookups in that slot.
        let mut active_map: Array<_, u32> = Array::try_from(self.map_mut(maps::ACTIVE)?)?;
        active_map
            .set(0, target, 0)
            .context("failed to switch to the new policy slot")?;
        // Programs run under RCU and finish in microseconds; let any that still read the old
        // slot finish before its entries go (a miss there would fall back to the default).
        std::thread::sleep(Duration::from_millis(2));
        self.clear(active)?;
        Ok(())
    }
}
