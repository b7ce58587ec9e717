//! The reference evaluator: a deliberately naive reading of the policy semantics.
