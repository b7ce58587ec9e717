//! `jumpctl grant | grants | revoke`: just-in-time grants, kept and applied by the running
//! jumpd (`daemon::grants`; wire types in `protocol`). Only root and jumpd's admin group reach the control socket.

use std::io::Write;

use clap::Args;

use super::{
    client::{finish, request, Conn},
    exit,
};
use crate::{
    escape::{escape, escape_word},
    protocol::{Grant, GrantRequest, Granted, Request, Revoked},
};

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The user (name or uid) granted access
    pub user: String,
    /// Destinations as `check` writes them: `ADDR:PORT[/PROTO]`, `[IPV6]:PORT[/PROTO]`,
    /// `ADDR/icmp`
    #[arg(required = true, value_name = "DEST")]
    pub dests: Vec<String>,
    /// How long, like `90m` or `2h` (at most jumpd's `grant_max_duration`, default 24h)
    #[arg(
        long = "for",
        value_name = "DURATION",
        conflicts_with = "until",
        required_unless_present = "until"
    )]
    pub duration: Option<String>,
    /// Until when (RFC 3339, like `2026-12-01T18:00:00+01:00`)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Why: logged with the grant and with every connection it allows
    #[arg(long, required = true)]
    pub reason: String,
    /// Only for this audit session (`/proc/PID/sessionid` of the user's login): the grant dies
    /// with that login and is of no use from another
    #[arg(long, value_name = "ID")]
    pub session: Option<u32>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The grant's id (as `grant` printed it)
    pub id: u64,
    #[command(flatten)]
    pub conn: Conn,
}

/// One grant on one line, user text escaped.
pub fn render(g: &Grant) -> String {
    let session = g
        .session
        .map(|s| format!(" session={s}"))
        .unwrap_or_default();
    let login = g
        .granted_by_login_uid
        .map(|l| format!(" login={l}"))
        .unwrap_or_default();
    format!(
        "{} {}({}) -> {} from {} until {}{session} reason={} by uid={}{login}\n",
        g.id,
        escape_word(&g.user),
        g.uid,
        escape(&g.dests.join(",")),
        g.from,
        g.until,
        escape_word(&g.reason),
        g.granted_by_uid,
    )
}

pub fn grant(a: &GrantArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let req = Request::Grant(GrantRequest {
        user: a.user.clone(),
        dests: a.dests.clone(),
        duration: a.duration.clone(),
        until: a.until.clone(),
        reason: a.reason.clone(),
        session: a.session,
    });
    let result = request::<Granted>(&a.conn.socket, &req).map(|answer| {
        answer.print(a.conn.json, out, |g| format!("{}\n", g.grant.id));
        exit::OK
    });
    finish(result, err)
}

pub fn grants(conn: &Conn, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = request::<Vec<Grant>>(&conn.socket, &Request::Grants).map(|answer| {
        answer.print(conn.json, out, |list| {
            if list.is_empty() {
                return "no grants in force\n".into();
            }
            list.iter().map(render).collect()
        });
        exit::OK
    });
    finish(result, err)
}

pub fn revoke(a: &RevokeArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = request::<Revoked>(&a.conn.socket, &Request::Revoke { id: a.id }).map(|answer| {
        answer.print(a.conn.json, out, |r| {
            format!("revoked grant {} (generation {})\n", a.id, r.generation)
        });
        exit::OK
    });
    finish(result, err)
}
