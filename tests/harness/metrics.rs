//! jumpd's Prometheus endpoint (`--metrics-listen`) read as a scraper would: `get` one path over
//! plain HTTP, `sample` one series' value from the text, `wait_sample` until a value holds
//! (jumpd reads the kernel's counters at most once a second).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use crate::poll_until;

/// GET `path` from `addr`: (status line, body), or why there was no answer.
pub fn get(addr: SocketAddr, path: &str) -> Result<(String, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("timeout: {e}"))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP response: {text:?}"))?;
    Ok((
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    ))
}

/// The value of `series` (name and labels, as printed) in an exposition `text`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes `/metrics` until `what` holds of `series`' value, returning it; panics with the last
/// scrape after 15 s.
pub fn wait_sample(addr: SocketAddr, series: &str, what: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let mut last = String::new();
    poll_until(
        Duration::from_secs(15),
        &format!("{series} to become {what}"),
        || {
            last = match get(addr, "/metrics") {
                Ok((status, body)) if status == "HTTP/1.1 200 OK" => body,
                Ok((status, body)) => format!("{status}\n{body}"),
                Err(e) => e,
            };
            sample(&last, series).filter(|v| ok(*v))
        },
    )
    .unwrap_or_else(|e| panic!("{e} (last {:?}):\n{last}", sample(&last, series)))
}
