//! `Live`: what the kernel reports besides accepting images (counters, hooks, held events, the
//! tamper check), for the daemon's control requests and metrics; `Kernel` and `Fake` both have
//! it, so those requests are served the same way in tests without root.

use super::{Datapath, Fake, HeldSnapshot, Kernel};

/// What the kernel reports besides accepting images; `Kernel` and `Fake` both have it, so the
/// control requests are served the same way in tests without root.
pub trait Live: Datapath {
    /// Indexed by `jump_common::counter`.
    fn counters(&self) -> anyhow::Result<[u64; jump_common::counter::LEN as usize]>;
    /// (rule id, action, hits) of the active generation.
    fn rule_hits(&self, rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>>;
    /// The same for the previous generation (the inactive slot).
    fn previous_rule_hits(&self, rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>>;
    fn hooks(&self) -> Vec<String>;
    /// Every uid's held-back events (`Kernel::take_held`).
    fn take_held(&mut self) -> anyhow::Result<Vec<HeldSnapshot>>;
    fn mark_reported(&mut self, uid: u32, counts: jump_common::UidHeld) -> anyhow::Result<()>;
    fn tai_offset_ns(&self) -> i64;
    /// How the maps differ from what jumpd wrote, one line per map (`datapath::integrity`).
    fn verify(&self) -> anyhow::Result<Vec<String>>;
    /// Writes back what jumpd wrote.
    fn restore(&mut self) -> anyhow::Result<()>;
    /// (program, runs, run time) of each attached program (`metrics`).
    fn program_stats(&self) -> Vec<(String, u64, std::time::Duration)> {
        Vec::new()
    }
}

impl Live for Kernel {
    fn program_stats(&self) -> Vec<(String, u64, std::time::Duration)> {
        Kernel::program_stats(self)
    }
    fn verify(&self) -> anyhow::Result<Vec<String>> {
        Kernel::verify(self)
    }
    fn restore(&mut self) -> anyhow::Result<()> {
        Kernel::restore(self)
    }
    fn counters(&self) -> anyhow::Result<[u64; jump_common::counter::LEN as usize]> {
        Kernel::counters(self)
    }
    fn rule_hits(&self, rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>> {
        Kernel::rule_hits(self, rules)
    }
    fn previous_rule_hits(&self, rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>> {
        Kernel::previous_rule_hits(self, rules)
    }
    fn hooks(&self) -> Vec<String> {
        self.attached().iter().map(|(n, _)| n.clone()).collect()
    }
    fn take_held(&mut self) -> anyhow::Result<Vec<HeldSnapshot>> {
        Kernel::take_held(self)
    }
    fn mark_reported(&mut self, uid: u32, counts: jump_common::UidHeld) -> anyhow::Result<()> {
        Kernel::mark_reported(self, uid, counts)
    }
    fn tai_offset_ns(&self) -> i64 {
        Kernel::tai_offset_ns(self)
    }
}

impl Live for Fake {
    fn verify(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.tampered.clone())
    }
    fn restore(&mut self) -> anyhow::Result<()> {
        self.tampered.clear();
        Ok(())
    }
    fn counters(&self) -> anyhow::Result<[u64; jump_common::counter::LEN as usize]> {
        Ok(Default::default())
    }
    fn rule_hits(&self, _rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>> {
        Ok(Vec::new())
    }
    fn previous_rule_hits(&self, _rules: usize) -> anyhow::Result<Vec<(u32, u8, u64)>> {
        Ok(Vec::new())
    }
    fn hooks(&self) -> Vec<String> {
        Vec::new()
    }
    fn take_held(&mut self) -> anyhow::Result<Vec<HeldSnapshot>> {
        Ok(Vec::new())
    }
    fn mark_reported(&mut self, _uid: u32, _counts: jump_common::UidHeld) -> anyhow::Result<()> {
        Ok(())
    }
    fn tai_offset_ns(&self) -> i64 {
        0
    }
}
