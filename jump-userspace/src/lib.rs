//! jump's userspace: the data flows through these modules in order.
//!
//! YAML files (`policy`) → validated model → compiled map image (`compile`) → kernel maps
//! (`datapath`) → decision events (`events`) → journald / JSON / text. `eval` is the reference
//! evaluator the compiler is tested against, and `explain` answers `check` with both; `protocol`
//! is the control socket's wire format; `daemon` and `ctl` (`jumpd` and `jumpctl`) sit on top and
//! share only what lies below them, never each other.
//!
//! Layers, lowest first. A module imports only modules of lower layers (the `layering` test
//! reads this list and checks every `crate::` import outside tests):
//! 1. `escape`, `verdict` — safe text for human output; the one verdict vocabulary
//! 2. `policy` — YAML → validated model, with spans for `file:line:col`
//! 3. `compile` — model → resolved rules → map image; pure, no aya
//! 4. `eval` — the reference evaluator, straight from the semantics
//! 5. `explain` — a `check` answer: the compiled decision next to the reference's
//! 6. `datapath` — map image → kernel: programs, maps, pins
//! 7. `events` — ring buffer → decoded events → records → journald
//! 8. `fleet` — policies from etcd
//! 9. `protocol` — the control socket's wire types, shared by both ends
//! 10. `daemon`, `ctl` — `jumpd` and `jumpctl`
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
pub mod verdict;

#[cfg(test)]
mod layering;
