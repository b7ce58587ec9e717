//! Compiled map image → kernel. This is the only module that talks to the kernel's BPF objects
//! (through aya, in `kernel`); the rest of the daemon sees the `Datapath` trait, which `Fake`
//! also implements so reload logic can be tested without root (and `Live`, what the kernel
//! reports back).

pub mod btf;
mod fake;
pub mod integrity;
mod kernel;
mod live;
pub mod pins;
pub mod revoke;
mod slots;
pub mod sockdiag;

use crate::compile::image::MapImage;

pub use fake::Fake;
pub use kernel::{refuse_other_jump, Kernel, KernelOptions, DEFAULT_LIMITS};
pub use live::Live;
pub use slots::SlotImage;

/// One uid's entry of the kernel's held-event maps (`jump_common::UidHeld`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldSnapshot {
    pub uid: u32,
    /// Everything held back so far (the counts only grow).
    pub counts: jump_common::UidHeld,
    /// What a daemon has reported of it.
    pub reported: jump_common::UidHeld,
    /// Times and destinations since the last report (zeroed when nothing is pending).
    pub sketch: jump_common::UidSketch,
}

impl HeldSnapshot {
    /// Whether some held events have not been reported.
    pub fn pending(&self) -> bool {
        let n = |h: &jump_common::UidHeld| h.over_budget + h.similar + h.lost;
        n(&self.counts) != n(&self.reported)
    }
}

/// A generation's rule table as kept beside the pins (`Datapath::keep_rule_table`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleTable {
    pub generation: u64,
    pub sha256: String,
    pub rules: Vec<crate::compile::image::RuleInfo>,
}

/// (rule id, action, hits) of one slot.
pub type RuleHits = Vec<(u32, u8, u64)>;

/// The I/O edge of a reload: everything before it (parse, compile, diff) is pure.
pub trait Datapath {
    /// Writes `image` as generation `generation` into the inactive slot and switches to it
    /// atomically. On error the active slot is untouched.
    fn apply(&mut self, image: &MapImage, generation: u64) -> anyhow::Result<()>;

    /// The final rule hits, (rule id, action, hits), of each generation whose slot `apply` has
    /// recycled since the last call, so counters can stay monotonic across reloads.
    fn take_retired_hits(&mut self) -> Vec<(u64, RuleHits)> {
        Vec::new()
    }

    /// Keeps the active slot's rule table (`RuleTable` as JSON) where a restarted daemon finds
    /// it.
    fn keep_rule_table(&mut self, _json: &[u8]) -> anyhow::Result<()> {
        Ok(())
    }

    /// Empties the slot the last `apply` switched away from. The switch alone put the new
    /// generation in force, so the daemon reports it loaded first and calls this right after
    /// (before anything else, integrity checks included, looks at the maps); `apply` also does
    /// it first if it was not called.
    fn clear_previous(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}
