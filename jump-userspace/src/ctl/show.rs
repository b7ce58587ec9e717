//! `jumpctl show [USER]`: the effective policy (`compile::show`), from the running jumpd's
//! installed image, or with `--dir DIR` from a policy directory compiled here (with the same
//! `--passwd/--group/--subuid` as `validate`).

use std::{io::Write, path::PathBuf};

use clap::Args;

use super::{client, exit, offline};
use crate::{
    compile, policy,
    protocol::{Request, Shown},
    resolve::{Accounts, Directory},
};

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A user name or numeric uid; without it, every profile and who has it
    pub user: Option<String>,
    /// Compile this policy directory here instead of asking the running jumpd
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// With --dir only
    #[command(flatten)]
    pub accounts: offline::AccountArgs,
    #[command(flatten)]
    pub conn: client::Conn,
}

pub fn run(a: &ShowArgs, now: jiff::Timestamp, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match &a.dir {
        Some(dir) => offline_show(a, dir, now, out, err),
        None => {
            let req = Request::Show {
                user: a.user.clone(),
            };
            let result = client::request::<Shown>(&a.conn.socket, &req).map(|answer| {
                answer.print(a.conn.json, out, |s| s.text.clone());
                exit::OK
            });
            client::finish(result, err)
        }
    }
}

fn offline_show(
    a: &ShowArgs,
    dir: &std::path::Path,
    now: jiff::Timestamp,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let Some(accounts) = a.accounts.load(err) else {
        return exit::ERROR;
    };
    if !offline::readable_dir(dir, err) {
        return exit::ERROR;
    }
    let compiled = match policy::load_dir(dir)
        .and_then(|l| compile::compile_full(&l.policy, &accounts, now))
    {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return exit::FAIL;
        }
    };
    let who = match &a.user {
        None => None,
        Some(u) => match super::check::resolve_user(u, &accounts) {
            Ok(uid) => Some((u.as_str(), uid)),
            Err(e) => {
                let _ = writeln!(err, "{e}");
                return exit::ERROR;
            }
        },
    };
    // Names from the same accounts the policy was compiled against.
    let names: std::collections::BTreeMap<u32, String> = accounts_names(&accounts, &compiled);
    let text = compile::show::show(&compiled.image, who, &|uid| names.get(&uid).cloned());
    if a.conn.json {
        client::print_json(
            out,
            &serde_json::json!({"user": who.map(|(_, u)| u), "text": text}),
        );
    } else {
        let _ = write!(out, "{text}");
    }
    exit::OK
}

/// uid → name for the uids the image names, as far as the accounts know them.
fn accounts_names(
    accounts: &Accounts,
    compiled: &compile::Compiled,
) -> std::collections::BTreeMap<u32, String> {
    compiled
        .rules
        .principals
        .keys()
        .filter_map(|p| p.strip_prefix("user "))
        .filter_map(|n| Some((accounts.uid_of(n)?, n.to_string())))
        .collect()
}
