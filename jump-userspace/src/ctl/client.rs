//! The client side of the control socket: one `request` helper, and `jumpctl status | reload |
//! stats | events | check USER DEST | detach` asked through it (protocol in `crate::protocol`). Human tables by default,
//! `--json` for scripts (the reply's `data`, as jumpd sent it).
//!
//! Exit codes (`ctl::exit`): 0 done (check: allowed); 1 the answer is no (reload rejected and
//! the old policy kept, check denied, follower disconnected); 2 the question could not be
//! answered (bad arguments, a failure inside jumpd); 3 jumpd is not running (no socket, or
//! nobody listening); 4 permission denied (not root nor in the admin group).

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
};

use clap::Args;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::exit;
use super::render::{render_event, render_stats, render_status};
use crate::explain::CheckAnswer;
use crate::protocol::{Detached, ErrorKind, Reply, Request, Stats, Status, DEFAULT_SOCKET};

#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// jumpd's control socket
    #[arg(long, env = "JUMP_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print JSON (the `data` of jumpd's reply)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Keep printing new events as they come (without it: the most recent ones jumpd keeps)
    #[arg(long, short)]
    pub follow: bool,
    /// Only this user (name or uid)
    #[arg(long)]
    pub user: Option<String>,
    /// Only this verdict: allow, deny or would-deny (audit)
    #[arg(long, value_parser = crate::protocol::VERDICTS)]
    pub verdict: Option<String>,
}

#[derive(Debug, Args)]
pub struct DetachArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Confirm: after this nothing is enforced until jumpd starts again
    #[arg(long)]
    pub yes: bool,
}

/// Why a request did not get an answer.
pub(super) struct Failure {
    pub(super) code: u8,
    pub(super) message: String,
}

fn connect(socket: &Path) -> Result<UnixStream, Failure> {
    UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => Failure {
            code: exit::UNREACHABLE,
            message: format!(
                "jumpd is not running: cannot connect to `{}`: {e}",
                socket.display()
            ),
        },
        std::io::ErrorKind::PermissionDenied => Failure {
            code: exit::REFUSED,
            message: format!(
                "permission denied on `{}`: run jumpctl as root or as a member of jumpd's admin group",
                socket.display()
            ),
        },
        _ => Failure {
            code: exit::ERROR,
            message: format!("cannot connect to `{}`: {e}", socket.display()),
        },
    })
}

fn code_of(kind: Option<ErrorKind>) -> u8 {
    match kind {
        Some(ErrorKind::Refused) => exit::REFUSED,
        Some(ErrorKind::Rejected) | Some(ErrorKind::Lagged) => exit::FAIL,
        _ => exit::ERROR,
    }
}

/// Sends one request; calls `each` with every reply line until `each` returns false or jumpd
/// closes the connection.
fn exchange(
    socket: &Path,
    request: &Request,
    mut each: impl FnMut(Reply) -> bool,
) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure {
        code: exit::ERROR,
        message: format!("lost the connection to jumpd: {e}"),
    };
    let mut stream = connect(socket)?;
    let mut line = serde_json::to_string(request).expect("requests always encode");
    line.push('\n');
    // jumpd may have answered and closed already (a refusal is sent before the request is
    // read): a failed write is not the answer, the reply line is.
    let written = stream.write_all(line.as_bytes());
    let mut rd = BufReader::new(stream);
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = match (rd.read_line(&mut buf), &written) {
            (Ok(n), _) => n,
            (Err(_), Err(e)) => return Err(io(std::io::Error::new(e.kind(), e.to_string()))),
            (Err(e), Ok(())) => return Err(io(e)),
        };
        if n == 0 {
            return match written {
                Err(e) => Err(io(e)),
                Ok(()) => Ok(()),
            };
        }
        let reply: Reply = serde_json::from_str(buf.trim()).map_err(|e| Failure {
            code: exit::ERROR,
            message: format!("unreadable reply from jumpd: {e}"),
        })?;
        if !each(reply) {
            return Ok(());
        }
    }
}

/// One request, one reply (failed or not).
pub(super) fn call(socket: &Path, request: &Request) -> Result<Reply, Failure> {
    let mut got = None;
    exchange(socket, request, |r| {
        got = Some(r);
        false
    })?;
    got.ok_or_else(|| Failure {
        code: exit::ERROR,
        message: "jumpd closed the connection without a reply".into(),
    })
}

pub(super) fn fail(reply: &Reply) -> Failure {
    Failure {
        code: code_of(reply.kind),
        message: reply.error.clone().unwrap_or_else(|| "failed".into()),
    }
}

/// A successful reply's `data`: as jumpd sent it (what `--json` prints) and decoded.
pub(super) struct Answer<T> {
    pub(super) raw: Value,
    pub(super) data: T,
}

impl<T> Answer<T> {
    /// `--json`: the data as jumpd sent it; otherwise what `render` makes of it.
    pub(super) fn print(&self, json: bool, out: &mut dyn Write, render: impl FnOnce(&T) -> String) {
        if json {
            print_json(out, &self.raw);
        } else {
            let _ = write!(out, "{}", render(&self.data));
        }
    }
}

/// One request whose successful reply carries a `T`; a failed reply is a `Failure`.
pub(super) fn request<T: DeserializeOwned>(
    socket: &Path,
    request: &Request,
) -> Result<Answer<T>, Failure> {
    let reply = call(socket, request)?;
    if !reply.ok {
        return Err(fail(&reply));
    }
    let data = serde_json::from_value(reply.data.clone()).map_err(|e| Failure {
        code: exit::ERROR,
        message: format!("unreadable {} from jumpd: {e}", request.name()),
    })?;
    Ok(Answer {
        raw: reply.data,
        data,
    })
}

pub(super) fn print_json(out: &mut dyn Write, v: &Value) {
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    );
}

pub(super) fn finish(result: Result<u8, Failure>, err: &mut dyn Write) -> u8 {
    match result {
        Ok(code) => code,
        Err(f) => {
            let _ = writeln!(err, "error: {}", f.message);
            f.code
        }
    }
}

pub fn status(conn: &Conn, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = request::<Status>(&conn.socket, &Request::Status).map(|a| {
        a.print(conn.json, out, render_status);
        exit::OK
    });
    finish(result, err)
}

pub fn reload(conn: &Conn, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = (|| {
        // Not `request`: a rejected reload's data (the outcome) is printed too.
        let reply = call(&conn.socket, &Request::Reload)?;
        if conn.json {
            print_json(out, &reply.data);
        }
        if !reply.ok {
            return Err(fail(&reply));
        }
        if !conn.json {
            let _ = writeln!(
                out,
                "reloaded: generation {} in force ({})",
                reply.data["generation"],
                reply.data["summary"].as_str().unwrap_or("")
            );
        }
        Ok(exit::OK)
    })();
    finish(
        result.map_err(|mut f| {
            if f.code == exit::FAIL {
                f.message = format!(
                    "reload rejected, the active policy stays in force:\n{}",
                    f.message
                );
            }
            f
        }),
        err,
    )
}

pub fn stats(conn: &Conn, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = request::<Stats>(&conn.socket, &Request::Stats).map(|a| {
        a.print(conn.json, out, render_stats);
        exit::OK
    });
    finish(result, err)
}

pub fn events(a: &EventsArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let request = Request::Events {
        follow: a.follow,
        user: a.user.clone(),
        verdict: a.verdict.clone(),
    };
    let mut failed = None;
    let print = |out: &mut dyn Write, v: &Value| {
        if a.conn.json {
            let _ = writeln!(out, "{}", serde_json::to_string(v).unwrap_or_default());
        } else {
            let _ = writeln!(out, "{}", render_event(v));
        }
        out.flush().is_ok()
    };
    let result = exchange(&a.conn.socket, &request, |reply| {
        if !reply.ok {
            failed = Some(fail(&reply));
            return false;
        }
        if a.follow {
            return print(out, &reply.data);
        }
        for v in reply.data.as_array().into_iter().flatten() {
            print(out, v);
        }
        false
    });
    finish(result.and_then(|()| failed.map_or(Ok(exit::OK), Err)), err)
}

/// `jumpctl check USER DEST` against the live policy: jumpd answers with the report, printed
/// as the offline `check` prints its own.
pub fn check_live(
    conn: &Conn,
    user: &str,
    login: Option<&str>,
    dest: &str,
    at: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let req = Request::Check {
        user: user.into(),
        dest: dest.into(),
        at: at.map(str::to_string),
        login: login.map(str::to_string),
    };
    let result = request::<CheckAnswer>(&conn.socket, &req)
        .map(|a| super::check::print(&a.data, conn.json, out));
    finish(result, err)
}

pub fn detach(a: &DetachArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    if !a.yes {
        let _ = writeln!(
            err,
            "error: `jumpctl detach` stops enforcement: nothing is filtered until jumpd starts again; confirm with `--yes`"
        );
        return exit::ERROR;
    }
    let result = request::<Detached>(&a.conn.socket, &Request::Detach).map(|answer| {
        answer.print(a.conn.json, out, |d| {
            format!(
                "detached: `{}` is no longer enforced; jumpd stopped\n",
                d.cgroup
            )
        });
        exit::OK
    });
    finish(result, err)
}
