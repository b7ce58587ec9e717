//! Waiting on a condition: the one polling loop of the harness, so every wait has a deadline
//! and a failure that names what was awaited.

use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, for at most `within`; the error names `what`. The pause
/// between polls is a tenth of the time waited so far, from 1 ms up to 200 ms: a condition that
/// holds soon is seen within ~10% of its time (a thousand reloads in a row stay quick), and an
/// expensive check (`journalctl`) is not run in a busy loop over a long wait.
pub fn poll_until<T>(
    within: Duration,
    what: &str,
    f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    poll(
        within,
        what,
        |waited| (waited / 10).clamp(Duration::from_millis(1), Duration::from_millis(200)),
        f,
    )
}

/// `poll_until` with a fixed pause `every` between polls: for a wait whose end is itself the
/// measurement (the benchmark's reload and start times), where the backoff's lag of up to a
/// tenth of the time waited would show in the number.
pub fn poll_every<T>(
    within: Duration,
    every: Duration,
    what: &str,
    f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    poll(within, what, |_| every, f)
}

fn poll<T>(
    within: Duration,
    what: &str,
    pause: impl Fn(Duration) -> Duration,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        let waited = start.elapsed();
        if waited >= within {
            anyhow::bail!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(pause(waited));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_value_and_names_what_timed_out() {
        let mut n = 0;
        let v = poll_until(Duration::from_secs(5), "three polls", || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(v.unwrap(), 3);
        let e = poll_until(Duration::from_millis(10), "nothing", || None::<()>).unwrap_err();
        assert_eq!(e.to_string(), "timed out after 10ms waiting for nothing");
    }
}
