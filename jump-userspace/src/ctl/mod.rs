//! `jumpctl`: the admin's view of a policy directory. `validate`, `check`, `test` and `schema`
//! work offline, without root: they compile the policy exactly as the daemon does, so `check`
//! answers what the kernel would. Each subcommand writes to the given streams and returns the
//! process exit code; `bin/jumpctl.rs` only parses arguments and exits.

mod cases;
mod check;
pub mod client;
pub mod completions;
pub mod fleet;
pub mod grant;
pub mod offline;
pub mod render;
mod show;

use std::{io::Write, path::PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::{explain::parse_time, policy, resolve::Directory};
pub use cases::{run_cases, run_cases_as, CaseOutput};

/// Exit codes shared by the subcommands.
pub mod exit {
    /// Valid / allowed / every case passed.
    pub const OK: u8 = 0;
    /// Invalid policy / denied / some case failed.
    pub const FAIL: u8 = 1;
    /// The question could not be answered (bad arguments, unreadable files).
    pub const ERROR: u8 = 2;
    /// jumpd is not running: no control socket, or nobody listening on it.
    pub const UNREACHABLE: u8 = 3;
    /// Permission denied: not root nor in jumpd's admin group.
    pub const REFUSED: u8 = 4;
}

#[derive(Debug, Parser)]
#[command(
    name = "jumpctl",
    version,
    about = "Inspect and test jump egress policies, and control the running jumpd"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a policy directory: errors and warnings with file:line:col; exit 1 if invalid
    Validate(ValidateArgs),
    /// Would USER be allowed to reach DEST? Prints the verdict and the rules behind it.
    /// `check USER DEST` asks the running jumpd (its live policy); `check DIR USER DEST`
    /// compiles DIR offline
    Check(CheckArgs),
    /// Run policy test cases (for an admin's CI); exit 1 on any failure
    Test(TestArgs),
    /// Print the JSON Schema of policy files (for editors)
    Schema,
    /// The running jumpd: generation, policy hash, counts, hooks, uptime, last reload, counters
    Status(client::Conn),
    /// Make jumpd reload its policy directory and users now; exit 1 if it was rejected
    Reload(client::Conn),
    /// Hits per rule and verdict over jumpd's life (kernel counters, kept across reloads)
    Stats(client::Conn),
    /// Decision events: the most recent ones, or a live tail with --follow
    Events(client::EventsArgs),
    /// Stop enforcement: jumpd detaches its programs and exits
    Detach(client::DetachArgs),
    /// Grant USER access to DEST... for a time, with a reason; prints the grant's id
    Grant(grant::GrantArgs),
    /// The just-in-time grants in force
    Grants(client::Conn),
    /// End a just-in-time grant now; its connections are closed
    Revoke(grant::RevokeArgs),
    /// The effective policy — what USER (or every profile) may reach, listen on and when — read
    /// back from the compiled image the running jumpd installed in the kernel, or with --dir
    /// from a policy directory compiled offline
    Show(show::ShowArgs),
    /// Validate DIR (users and groups unknown here are warnings) and make it the policy of
    /// every jump host: one etcd transaction replaces the policy keys; prints the revision
    Push(fleet::PushArgs),
    /// Every jump host's state from etcd; exit 0 when all applied the latest revision
    Fleet(fleet::FleetArgs),
    /// Print the completion script for SHELL (bash, zsh, fish, elvish, powershell)
    Completions(completions::CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The policy directory
    pub dir: PathBuf,
    /// Print JSON: `{dir, valid, errors, warnings, counts}`
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub accounts: offline::AccountArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// `[DIR] USER DEST`. DIR: the policy directory, compiled offline; without it the running
    /// jumpd's live policy is asked. USER: a user name or a numeric uid. DEST:
    /// `ADDR:PORT[/PROTO]`, `[IPV6]:PORT[/PROTO]`, `ADDR/icmp`, or `listen:PORT[/PROTO]` to ask
    /// about binding a local port; the protocol defaults to tcp
    #[arg(value_name = "[DIR] USER DEST", num_args = 2..=3, required = true)]
    pub args: Vec<String>,
    /// The moment to ask about (RFC 3339, like `2026-12-01T09:00:00+01:00`); default now
    #[arg(long)]
    pub at: Option<String>,
    /// Ask for a process of USER whose audit login uid is LOGIN (a `sudo`'d session): with
    /// `defaults.identity: person` both must allow
    #[arg(long, value_name = "LOGIN")]
    pub login: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// jumpd's control socket (for the live policy)
    #[arg(long, env = "JUMP_SOCKET", default_value = crate::protocol::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// With DIR only
    #[command(flatten)]
    pub accounts: offline::AccountArgs,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The policy directory
    pub dir: PathBuf,
    /// A YAML list of cases like `- {user: alice, to: "198.51.100.130:5432", expect: allow}`
    pub cases: PathBuf,
    /// Print JSON: `{passed, failed, cases: [{file, line, col, user, to, expect, passed, failure}]}`
    #[arg(long)]
    pub json: bool,
    /// Also write the results as JUnit XML to FILE (for CI systems)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub accounts: offline::AccountArgs,
}

impl CheckArgs {
    /// (policy directory if given, user, destination).
    pub fn parts(&self) -> (Option<PathBuf>, &str, &str) {
        match self.args.as_slice() {
            [dir, user, dest] => (Some(PathBuf::from(dir)), user, dest),
            [user, dest] => (None, user, dest),
            _ => unreachable!("clap takes 2 or 3 values"),
        }
    }
}

/// Runs the policy subcommands with the system's users and the current time.
pub fn run(command: &Command, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let now = jiff::Timestamp::now();
    match command {
        Command::Validate(a) => match a.accounts.load(err) {
            Some(dir) => offline::validate(&a.dir, &dir, now, a.json, out, err),
            None => exit::ERROR,
        },
        Command::Check(a) => {
            let at = match a.at.as_deref().map(parse_time).transpose() {
                Ok(at) => at.unwrap_or(now),
                Err(e) => {
                    let _ = writeln!(err, "error: {e}");
                    return exit::ERROR;
                }
            };
            match a.parts() {
                (Some(d), user, dest) => match a.accounts.load(err) {
                    Some(dir) => check::run(
                        &d,
                        user,
                        a.login.as_deref(),
                        dest,
                        at,
                        a.json,
                        &dir,
                        out,
                        err,
                    ),
                    None => exit::ERROR,
                },
                (None, user, dest) => {
                    let conn = client::Conn {
                        socket: a.socket.clone(),
                        json: a.json,
                    };
                    client::check_live(
                        &conn,
                        user,
                        a.login.as_deref(),
                        dest,
                        a.at.as_deref(),
                        out,
                        err,
                    )
                }
            }
        }
        Command::Test(a) => match a.accounts.load(err) {
            Some(dir) => {
                let how = CaseOutput {
                    json: a.json,
                    junit: a.junit.clone(),
                };
                run_cases_as(&a.dir, &a.cases, &dir, now, &how, out, err)
            }
            None => exit::ERROR,
        },
        Command::Schema => {
            let _ = out.write_all(policy::schema::json_schema().as_bytes());
            exit::OK
        }
        Command::Status(c) => client::status(c, out, err),
        Command::Reload(c) => client::reload(c, out, err),
        Command::Stats(c) => client::stats(c, out, err),
        Command::Events(a) => client::events(a, out, err),
        Command::Detach(a) => client::detach(a, out, err),
        Command::Grant(a) => grant::grant(a, out, err),
        Command::Grants(c) => grant::grants(c, out, err),
        Command::Revoke(a) => grant::revoke(a, out, err),
        Command::Show(a) => show::run(a, now, out, err),
        Command::Push(a) => fleet::push(a, out, err),
        Command::Fleet(a) => fleet::fleet(a, out, err),
        Command::Completions(a) => completions::run(a, out),
    }
}

/// Loads and compiles; prints every diagnostic. Exit 0 when valid (warnings allowed), 1 when
/// not, 2 when the directory cannot be read (`offline::validate`).
pub fn validate(
    dir: &std::path::Path,
    directory: &dyn Directory,
    now: jiff::Timestamp,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    offline::validate(dir, directory, now, false, out, err)
}

fn summary(errors: usize, warnings: usize) -> String {
    let s = |n: usize| if n == 1 { "" } else { "s" };
    format!(
        "error: invalid policy: {errors} error{}, {warnings} warning{}",
        s(errors),
        s(warnings)
    )
}

#[cfg(test)]
mod tests;
