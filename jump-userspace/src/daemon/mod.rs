//! `jumpd`.
