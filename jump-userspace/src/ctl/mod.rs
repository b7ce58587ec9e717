//! `jumpctl` subcommands.
