//! Stage 3: resolved rule set (`crate::resolve`) → map image, the exact entries the kernel maps
//! will hold. `compile_full` runs both steps for a policy.
//! Pure (no kernel, no aya): everything here runs without root, which is what lets `jumpctl
//! check` give the kernel's answer and the property test compare it with the reference.
//!
//! How the lookup precedence (see `image.rs` and `jump-ebpf/src/lookup.rs`) is met:
//! 1. Users with the same effective rule set share one profile; uids whose rules are exactly the
//!    `users: ["*"]` rules are left out of the users map and fall to the `ANY_UID` profile.
//! 2. Destinations: every network a profile names gets one entry whose class is the set of rule
//!    entries of that network *and every network containing it*, so the longest prefix alone
//!    holds every entry that applies (INVARIANT longest-prefix-complete).
//! 3. Ports: per class and protocol, the port line is cut into the intervals on which the set of
//!    applying entries is constant; each interval becomes aligned prefix blocks, which never
//!    overlap, so the longest match is the only match.
//! 4. Multicast joins: every class with udp entries gets an IGMP (`proto::IGMP`) entry for
//!    port 0 whose candidates are those udp entries regardless of their ports.
//! 5. Candidates are ordered enforce-deny, audit-deny, enforce-allow, audit-allow (rule id order
//!    within a level), and cut after the first that is always open.

mod build;
// A test fixture (a large synthetic policy), not part of the library.
#[cfg(test)]
mod bench;
pub mod dump;
pub mod image;
pub mod prefix;
pub mod show;
pub mod subuid;
pub mod time;

pub use build::compile_rules;
use image::MapImage;
pub use prefix::port_blocks;

use crate::{
    policy::{Diagnostic, Policy, PolicyErrors},
    resolve::{resolve_with, Directory, RuleSet, Vanished},
};

/// A compiled policy and what the compiler noticed on the way.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub image: MapImage,
    pub rules: RuleSet,
    pub warnings: Vec<Diagnostic>,
}

/// Compiles `policy` for the moment `now` (schedules are expanded around it).
pub fn compile(
    policy: &Policy,
    dir: &dyn Directory,
    now: jiff::Timestamp,
) -> Result<MapImage, PolicyErrors> {
    compile_full(policy, dir, now).map(|c| c.image)
}

/// `compile`, keeping the resolved rule set (for the reference evaluator and explanations) and
/// the warnings (rules that can never match or are fully shadowed).
pub fn compile_full(
    policy: &Policy,
    dir: &dyn Directory,
    now: jiff::Timestamp,
) -> Result<Compiled, PolicyErrors> {
    compile_with(policy, dir, now, Vanished::Error)
}

/// `compile_full`, letting the principals in `vanished` be gone (jumpd at runtime).
pub fn compile_with(
    policy: &Policy,
    dir: &dyn Directory,
    now: jiff::Timestamp,
    vanished: Vanished,
) -> Result<Compiled, PolicyErrors> {
    let (rules, mut warnings) = resolve_with(policy, dir, vanished)?;
    let (image, more) = compile_rules(&rules, now)?;
    warnings.extend(more);
    Ok(Compiled {
        image,
        rules,
        warnings,
    })
}

#[cfg(test)]
pub(crate) mod tests_examples;
#[cfg(test)]
mod tests_person;
#[cfg(test)]
mod tests_prop;
