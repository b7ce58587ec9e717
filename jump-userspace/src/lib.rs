//! jump's userspace: the data flows through these modules in order.
//!
//! YAML files (`policy`) → validated model → resolved rules (`resolve`) → compiled map image
//! (`compile`) → kernel maps (`datapath`) → decision events (`events`) → journald / JSON / text.
//! `eval` is the reference evaluator the compiler is tested against, and `explain` answers
//! `check` with both; `protocol` is the control socket's wire format; `daemon` and `ctl`
//! (`jumpd` and `jumpctl`) sit on top and share only what lies below them, never each other.
//!
//! Layers, lowest first. A module imports only modules of lower layers (the `layering` test
//! reads this list and checks every `crate::` import outside tests):
//! 1. `escape`, `verdict` — safe text for human output; the one verdict vocabulary
//! 2. `policy` — YAML → validated model, with spans for `file:line:col`
//! 3. `resolve` — model → resolved rules: users, groups, the loopback rule, rule ids
//! 4. `compile` — resolved rules → map image; pure, no aya
//! 5. `eval` — the reference evaluator, straight from the semantics
//! 6. `explain` — a `check` answer: the compiled decision next to the reference's
//! 7. `datapath` — map image → kernel: programs, maps, pins
//! 8. `events` — ring buffer → decoded events → records → journald
//! 9. `fleet` — policies from etcd
//! 10. `protocol` — the control socket's wire types, shared by both ends
//! 11. `daemon`, `ctl` — `jumpd` and `jumpctl`
#![forbid(unsafe_code)]

pub mod compile;
pub mod ctl;
pub mod daemon;
pub mod datapath;
pub mod escape;
pub mod eval;
pub mod events;
pub mod explain;
pub mod fleet;
pub mod policy;
pub mod protocol;
pub mod resolve;
pub mod verdict;

#[cfg(test)]
mod layering;
