//! The etcd calls of the fleet: connecting (TLS, mutual TLS), reading every policy key at one
//! revision, replacing them in one transaction, and the status entries.

use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp,
};

use super::{Connection, NodeStatus};
use crate::policy::{Named, PolicyErrors};

/// Each call gives up after this long: a host must notice quickly that etcd is away.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// At most this many keys under `policies/` are read (a directory holds at most `MAX_FILES`
/// policy files; other names are skipped, but not without bound).
pub const MAX_KEYS: i64 = 4 * crate::policy::MAX_FILES as i64;
/// A response may be this large: every policy file at its limit, with room for the keys.
const MAX_RESPONSE_BYTES: usize = crate::policy::MAX_TOTAL_BYTES as usize + (4 << 20);

/// An error of a call, said briefly.
pub fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => format!("{}: {}", s.code(), s.message()),
        e => e.to_string(),
    }
}

/// Runs one etcd call with `CALL_TIMEOUT`.
pub async fn call<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {}", describe(&e))),
        Err(_) => Err(format!(
            "{what}: no answer within {} s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

/// Connects (lazily: the first call finds out whether etcd is there).
pub async fn connect(c: &Connection) -> Result<Client, String> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
    if let Some(tls) = &c.tls {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()))
        };
        let mut t = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
        match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => {
                t = t.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => {
                return Err(
                    "etcd TLS: a client certificate needs its key, and a key its certificate"
                        .into(),
                )
            }
        }
        opts = opts.with_tls(t);
    }
    let endpoints: Vec<String> = c
        .endpoints
        .iter()
        .map(|e| {
            if c.tls.is_some() && e.starts_with("http://") {
                Err(format!(
                    "etcd endpoint `{e}`: TLS is configured, so it must be https://"
                ))
            } else {
                Ok(e.clone())
            }
        })
        .collect::<Result<_, _>>()?;
    match tokio::time::timeout(CALL_TIMEOUT, Client::connect(&endpoints, Some(opts))).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!(
            "connecting to {}: {}",
            endpoints.join(","),
            describe(&e)
        )),
        Err(_) => Err(format!("connecting to {}: no answer", endpoints.join(","))),
    }
}

/// The policy keys as read at one revision.
pub struct Snapshot {
    /// The store's revision when read.
    pub header_revision: i64,
    /// The newest `mod_revision` among the policy keys.
    pub newest: i64,
    /// The files, or why the keys are no policy directory.
    pub files: Result<Vec<Named>, PolicyErrors>,
}

/// Every key under `PREFIX policies/` at `revision` (the newest when `None`), in one range
/// read, which etcd serves from one revision.
pub async fn read_policy(
    client: &Client,
    prefix: &str,
    revision: Option<i64>,
) -> Result<Snapshot, String> {
    let mut kv = client
        .kv_client()
        .max_decoding_message_size(MAX_RESPONSE_BYTES);
    let mut opts = GetOptions::new().with_prefix().with_limit(MAX_KEYS);
    if let Some(r) = revision {
        opts = opts.with_revision(r);
    }
    let resp = call(
        "reading the policy keys",
        kv.get(super::policies_key(prefix), Some(opts)),
    )
    .await?;
    let header_revision = resp.header().map(|h| h.revision()).unwrap_or(0);
    let newest = resp
        .kvs()
        .iter()
        .map(|k| k.mod_revision())
        .max()
        .unwrap_or(0);
    let files = if resp.more() {
        Err(crate::policy::Diagnostic::error(
            crate::policy::Span::file(&super::policies_key(prefix)),
            format!("more than {MAX_KEYS} keys, the limit"),
        )
        .into())
    } else {
        super::policy_files(
            prefix,
            resp.kvs()
                .iter()
                .map(|k| (k.key().to_vec(), k.value().to_vec())),
        )
    };
    Ok(Snapshot {
        header_revision,
        newest,
        files,
    })
}

/// Replaces the policy keys with `files` (name, text) in one transaction: keys not among them
/// are deleted. The transaction only commits if no policy key changed since they were listed
/// (someone else pushing at the same moment); it is retried a few times. Returns the revision.
pub async fn replace_policy(
    client: &Client,
    prefix: &str,
    files: &[(String, String)],
) -> Result<i64, String> {
    let dir = super::policies_key(prefix);
    let mut kv = client.kv_client();
    for _ in 0..5 {
        let listed = call(
            "listing the policy keys",
            kv.get(
                dir.clone(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            ),
        )
        .await?;
        let at = listed.header().map(|h| h.revision()).unwrap_or(0);
        let mut ops: Vec<TxnOp> = listed
            .kvs()
            .iter()
            .filter(|k| {
                !files
                    .iter()
                    .any(|(n, _)| format!("{dir}{n}").as_bytes() == k.key())
            })
            .map(|k| TxnOp::delete(k.key().to_vec(), None))
            .collect();
        ops.extend(
            files
                .iter()
                .map(|(n, t)| TxnOp::put(format!("{dir}{n}"), t.clone(), None)),
        );
        // Every key under the prefix last changed at or before the listing: nothing was added
        // or rewritten in between.
        let unchanged = Compare::mod_revision(dir.clone(), CompareOp::Less, at + 1).with_prefix();
        let txn = Txn::new().when(vec![unchanged]).and_then(ops);
        let resp = call("writing the policy", kv.txn(txn)).await?;
        if resp.succeeded() {
            return Ok(resp.header().map(|h| h.revision()).unwrap_or(0));
        }
    }
    Err("the policy keys kept changing while pushing (another push at the same time?)".into())
}

/// Publishes `status` at `PREFIX status/NODE` under `lease`.
pub async fn put_status(
    client: &Client,
    prefix: &str,
    lease: i64,
    status: &NodeStatus,
) -> Result<(), String> {
    let json = serde_json::to_string(status).map_err(|e| e.to_string())?;
    call(
        "publishing the status",
        client.kv_client().put(
            super::status_key(prefix, &status.node),
            json,
            Some(PutOptions::new().with_lease(lease)),
        ),
    )
    .await
    .map(drop)
}

/// The status entries (node from the key, entry or why it is unreadable), and the store's
/// revision.
pub type Entries = Vec<(String, Result<NodeStatus, String>)>;

pub async fn read_statuses(client: &Client, prefix: &str) -> Result<(Entries, i64), String> {
    let dir = format!("{prefix}status/");
    let resp = call(
        "reading the status entries",
        client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .get(
                dir.clone(),
                Some(GetOptions::new().with_prefix().with_limit(10_000)),
            ),
    )
    .await?;
    let entries = resp
        .kvs()
        .iter()
        .map(|k| {
            let node = super::show_key(k.key().strip_prefix(dir.as_bytes()).unwrap_or(k.key()));
            (node, NodeStatus::parse_untrusted(k.value()))
        })
        .collect();
    Ok((entries, resp.header().map(|h| h.revision()).unwrap_or(0)))
}
