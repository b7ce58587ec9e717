//! Moments written in a policy (`expires`) and asked about (`jumpctl check --at`, test cases):
//! RFC 3339 with an offset, within what the kernel's clock can express. One parser for both, so
//! a time the policy accepts is a time `check` can answer about.

use jiff::Timestamp;

/// The kernel compares `bpf_ktime_get_tai_ns`-style u64 nanoseconds since 1970: the last moment
/// it can express is 2^64-1 ns after the epoch (2554-07-21T23:34:33.709551615Z).
pub fn kernel_max() -> Timestamp {
    Timestamp::from_nanosecond(i128::from(u64::MAX)).unwrap_or(Timestamp::MAX)
}

/// `2026-12-31T18:00:00Z`, `2026-12-01T09:00:00+01:00`. Offsets as RFC 3339 has them (hours
/// 00-23); from 1970 to 2554-07-21T23:34:33Z. Errors are `(why, help)`: the caller says
/// "invalid `expires` `…`" or "invalid time `…`" and adds `: why` when there is one.
pub fn parse(s: &str) -> Result<Timestamp, (Option<&'static str>, String)> {
    let rfc = "write an RFC 3339 time with an offset, like `2026-12-31T18:00:00Z`";
    let range = "between 1970-01-01T00:00:00Z and 2554-07-21T23:34:33Z, what the kernel's clock can express";
    if let Some(off) = offset(s) {
        let (h, m) = off;
        if h > 23 || m > 59 {
            return Err((
                Some("the offset is out of range"),
                "RFC 3339 offsets run from -23:59 to +23:59".into(),
            ));
        }
    }
    let t = match s.parse::<Timestamp>() {
        Ok(t) => t,
        // Well-formed but outside jiff's range (years up to 9999): say the range, not the form.
        Err(_) if offset(s).is_some() && civil(s).is_some() => {
            return Err((Some("out of range"), format!("a time must be {range}")));
        }
        Err(_) => return Err((None, rfc.into())),
    };
    if t < Timestamp::UNIX_EPOCH || t > kernel_max() {
        return Err((Some("out of range"), format!("a time must be {range}")));
    }
    Ok(t)
}

/// The `±HH:MM` or `Z` of an RFC 3339 time, as (hours, minutes).
fn offset(s: &str) -> Option<(u32, u32)> {
    if s.ends_with(['Z', 'z']) {
        return Some((0, 0));
    }
    let tail = s.get(s.len().checked_sub(6)?..)?;
    let b = tail.as_bytes();
    if !matches!(b[0], b'+' | b'-') || b[3] != b':' {
        return None;
    }
    let h = tail[1..3].parse::<u32>().ok()?;
    let m = tail[4..6].parse::<u32>().ok()?;
    (tail[1..3].bytes().all(|c| c.is_ascii_digit())
        && tail[4..6].bytes().all(|c| c.is_ascii_digit()))
    .then_some((h, m))
}

/// The date and time without the offset, when they are well formed.
fn civil(s: &str) -> Option<jiff::civil::DateTime> {
    let body = if s.ends_with(['Z', 'z']) {
        &s[..s.len() - 1]
    } else {
        s.get(..s.len().checked_sub(6)?)?
    };
    body.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_decided() {
        let range = "a time must be between 1970-01-01T00:00:00Z and 2554-07-21T23:34:33Z, what the kernel's clock can express";
        assert!(parse("2026-12-31T18:00:00Z").is_ok());
        assert!(parse("2026-12-31T18:00:00+23:59").is_ok());
        assert_eq!(
            parse("2026-12-31T18:00:00+25:00").unwrap_err(),
            (
                Some("the offset is out of range"),
                "RFC 3339 offsets run from -23:59 to +23:59".to_string()
            )
        );
        for s in [
            "9999-12-31T23:59:59Z",
            "2600-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2554-07-21T23:34:34Z",
        ] {
            assert_eq!(
                parse(s).unwrap_err(),
                (Some("out of range"), range.to_string()),
                "{s}"
            );
        }
        assert!(parse("2554-07-21T23:34:33Z").is_ok());
        assert!(parse("1970-01-01T00:00:00Z").is_ok());
        for s in ["2026-12-31", "tomorrow", "2026-12-31T18:00:00"] {
            assert_eq!(
                parse(s).unwrap_err(),
                (
                    None,
                    "write an RFC 3339 time with an offset, like `2026-12-31T18:00:00Z`"
                        .to_string()
                ),
                "{s}"
            );
        }
    }
}
