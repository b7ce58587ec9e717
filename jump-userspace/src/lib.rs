//! jump's userspace: the data flows through these modules in order.
//!
//! YAML files (`policy`) → validated model → compiled map image (`compile`) → kernel maps
//! (`datapath`) → decision events (`events`) → journald / JSON / text. `eval` is the reference
//! evaluator the compiler is tested against, and `explain` answers `check` with both; `protocol`
//! is the control socket's wire format; `daemon` and `ctl` (`jumpd` and `jumpctl`) sit on top and
//! share only what lies below them, never each other; `escape` makes user-controlled text safe
//! for every human output.
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
