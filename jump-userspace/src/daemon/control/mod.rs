//! The control socket: how `jumpctl` talks to a running jumpd.
//!
//! A Unix stream socket (default `/run/jump/jumpd.sock`), owned by root and the admin group
//! (default `jump-admin`), mode 0660. The kernel already refuses `connect()` to anyone without
//! write permission on it; jumpd checks again with the caller's SO_PEERCRED credentials, against
//! the admin group as /etc/group lists it *now* (so removing someone from the group revokes a
//! session that still carries the old group), and logs every request and every refusal with the
//! caller's uid and pid (`auth`). The wire format is `crate::protocol`'s; events reach
//! followers through `bus`. This module is the server: socket, connections, calls.

mod auth;
mod bus;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{broadcast, mpsc, oneshot},
};

use auth::admin_group;
pub use auth::{authorized, AdminGroup, Peer};
use bus::account_exists;
pub use bus::{check_filters, matches, Bus, EVENT_BACKLOG, RECENT_EVENTS};

use crate::protocol::{ErrorKind, Reply, Request};

/// Longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;
/// Connections served at once; one more is told so and closed. Each holds a descriptor, and
/// jumpd needs descriptors of its own to reload (the unit's `LimitNOFILE` is well above this).
pub const MAX_CONNECTIONS: usize = 64;
/// A connection that sends no complete request for this long is closed (idle or half-open).
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// A reply (or followed event) the peer does not take within this long closes the connection:
/// a client that stopped reading must not hold a slot.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `write_all` bounded by `WRITE_TIMEOUT`.
async fn send<W: AsyncWriteExt + Unpin>(wr: &mut W, line: &str) -> anyhow::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(line.as_bytes())).await {
        Ok(r) => Ok(r?),
        Err(_) => anyhow::bail!("the peer took no reply for {WRITE_TIMEOUT:?}"),
    }
}

/// A request for the main loop, which owns the kernel and the policy.
pub struct Call {
    pub request: Request,
    pub peer: Peer,
    pub reply: oneshot::Sender<Reply>,
    /// Closes once the connection has written the reply (or given up on it): what must not
    /// happen before the caller has its answer (the runtime ending after a detach) waits here.
    pub written: oneshot::Receiver<()>,
}

/// Creates the socket: parent directory if missing (0750 root:admin), stale socket removed
/// (but never one a live jumpd answers on), owner root:admin, mode 0660.
pub fn bind(path: &Path, group: &str) -> anyhow::Result<UnixListener> {
    let gid = admin_group(group).map(|g| g.gid);
    if gid.is_none() {
        tracing::warn!(
            "group `{group}` does not exist: only root can use the control socket `{}`",
            path.display()
        );
    }
    let gid = gid.map(nix::unistd::Gid::from_raw);
    if let Some(parent) = path.parent().filter(|p| !p.exists()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("failed to create `{}`: {e}", parent.display()))?;
        nix::unistd::chown(parent, None, gid)?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o750))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another jumpd answers on the control socket `{}`",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .map_err(|e| anyhow::anyhow!("failed to remove stale `{}`: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        anyhow::anyhow!(
            "failed to create the control socket `{}`: {e}",
            path.display()
        )
    })?;
    nix::unistd::chown(path, Some(nix::unistd::Uid::from_raw(0)), gid)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Removes the socket file when jumpd stops.
pub struct SocketFile(pub PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Accepts connections until the runtime stops; each is served on its own task.
pub fn serve(listener: UnixListener, group: String, calls: mpsc::Sender<Call>, bus: Arc<Bus>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::error!("control socket: accept failed: {e}");
                    // Why the pause: the usual causes (EMFILE, ENFILE, ENOBUFS) persist, and
                    // `accept` fails again at once; retrying straight away would spin a core
                    // and write this error thousands of times a second. 100 ms is well within a
                    // client's patience and gives open connections time to free descriptors.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(
                    "control socket: {MAX_CONNECTIONS} connections open, refusing another"
                );
                tokio::spawn(async move {
                    let mut stream = stream;
                    let reply = Reply::err(
                        ErrorKind::Failed,
                        format!("busy: {MAX_CONNECTIONS} control connections are open; try again"),
                    );
                    let _ = send(&mut stream, &reply.line()).await;
                });
                continue;
            };
            let (group, calls, bus) = (group.clone(), calls.clone(), bus.clone());
            tokio::spawn(async move {
                if let Err(e) = connection(stream, &group, calls, bus).await {
                    tracing::debug!("control connection ended: {e}");
                }
                drop(slot);
            });
        }
    });
}

async fn connection(
    stream: UnixStream,
    group: &str,
    calls: mpsc::Sender<Call>,
    bus: Arc<Bus>,
) -> anyhow::Result<()> {
    let cred = stream.peer_cred()?;
    let peer = Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        pid: cred.pid(),
    };
    let (rd, mut wr) = stream.into_split();
    let account = nix::unistd::User::from_uid(peer.uid.into())
        .ok()
        .flatten()
        .map(|u| (u.name, u.gid.as_raw()));
    let admin = admin_group(group);
    if !authorized(
        &peer,
        account.as_ref().map(|(n, g)| (n.as_str(), *g)),
        admin.as_ref(),
    ) {
        tracing::warn!(
            jump_peer_uid = peer.uid,
            jump_peer_pid = peer.pid,
            "control socket: refused {peer}: neither root nor in group `{group}`"
        );
        let reply = Reply::err(
            ErrorKind::Refused,
            format!(
                "permission denied: uid {} is neither root nor in group `{group}`",
                peer.uid
            ),
        );
        send(&mut wr, &reply.line()).await?;
        return Ok(());
    }
    let mut lines = BufReader::new(rd);
    let mut line = String::new();
    loop {
        line.clear();
        let mut limited = (&mut lines).take(MAX_REQUEST as u64 + 1);
        let read = limited.read_line(&mut line);
        let Ok(n) = tokio::time::timeout(IDLE_TIMEOUT, read).await else {
            tracing::debug!("control socket: closing {peer}: no request for {IDLE_TIMEOUT:?}");
            return Ok(());
        };
        let n = n?;
        if n == 0 {
            return Ok(());
        }
        if n > MAX_REQUEST {
            let reply = Reply::err(ErrorKind::Invalid, "request too long");
            send(&mut wr, &reply.line()).await?;
            return Ok(());
        }
        let request: Request = match serde_json::from_str(line.trim()) {
            Ok(r) => r,
            Err(e) => {
                let reply = Reply::err(ErrorKind::Invalid, format!("invalid request: {e}"));
                send(&mut wr, &reply.line()).await?;
                continue;
            }
        };
        tracing::info!(
            jump_peer_uid = peer.uid,
            jump_peer_pid = peer.pid,
            jump_control_request = request.name(),
            "control socket: `{}` from {peer}",
            request.name()
        );
        if let Request::Events {
            follow,
            user,
            verdict,
        } = &request
        {
            if let Err(e) = check_filters(user.as_deref(), verdict.as_deref(), account_exists) {
                wr.write_all(Reply::err(ErrorKind::Invalid, e).line().as_bytes())
                    .await?;
                continue;
            }
            // Subscribe before taking the backlog, so nothing falls between the two.
            let mut rx = bus.subscribe();
            let recent: Vec<Value> = bus
                .recent()
                .iter()
                .filter(|r| matches(r, user.as_deref(), verdict.as_deref()))
                .filter_map(|r| serde_json::to_value(&**r).ok())
                .collect();
            if !follow {
                send(&mut wr, &Reply::ok(recent).line()).await?;
                continue;
            }
            loop {
                match rx.recv().await {
                    Ok(r) => {
                        if matches(&r, user.as_deref(), verdict.as_deref()) {
                            send(&mut wr, &Reply::ok(&*r).line()).await?;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        bus.followers_dropped
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(
                            "control socket: dropped a follower ({peer}): {n} events behind"
                        );
                        let reply = Reply::err(
                            ErrorKind::Lagged,
                            format!("disconnected: {n} events behind, too slow to follow"),
                        );
                        let _ = send(&mut wr, &reply.line()).await;
                        return Ok(());
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        }
        let (tx, rx) = oneshot::channel();
        // Held until the reply is written (or this task ends): dropping it closes `written`.
        let (written_tx, written) = oneshot::channel::<()>();
        calls
            .send(Call {
                request,
                peer: peer.clone(),
                reply: tx,
                written,
            })
            .await
            .map_err(|_| anyhow::anyhow!("jumpd is stopping"))?;
        let reply = rx
            .await
            .unwrap_or_else(|_| Reply::err(ErrorKind::Failed, "jumpd is stopping"));
        send(&mut wr, &reply.line()).await?;
        drop(written_tx);
    }
}
