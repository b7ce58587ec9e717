//! Waiting on a condition: the one polling loop of the harness, so every wait has a deadline
//! and a failure that names what was awaited.

use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, for at most `within`; the error names `what`. The pause
/// between polls starts at 2 ms and doubles up to 200 ms: quick conditions are seen at once,
/// expensive ones (`journalctl`) are not run in a busy loop.
pub fn poll_until<T>(
    within: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
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
