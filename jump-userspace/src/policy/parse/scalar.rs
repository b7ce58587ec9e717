//! Scalar values of a policy: names, networks, zone references, ports, protocols, hours.

use super::*;

/// A decimal number as a policy writes it: digits only, no sign, no spaces, no leading zero
/// (`"+22"`, `" 22"` and `022` are refused rather than read leniently).
pub(crate) fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// What is wrong with a rule name, if anything. Names appear in logs, events and `check`
/// answers, so two names must never look alike: no control or invisible formatting characters,
/// no white space at either end (which would make `ops` and `ops ` two rules), not blank.
pub(super) fn name_problem(name: &str) -> Option<&'static str> {
    let invisible = |c: char| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{AD}');
    if name.trim().is_empty() {
        Some("it is blank")
    } else if name.chars().any(char::is_control) {
        Some("it holds a control character")
    } else if name.chars().any(invisible) {
        Some("it holds an invisible formatting character")
    } else if name.trim() != name {
        Some("it begins or ends with white space")
    } else {
        None
    }
}

pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// An address or a CIDR. IPv4-mapped IPv6 is written back as IPv4, since that is how the
/// kernel sees such a destination.
pub(super) fn parse_net(cx: &mut Ctx, n: &Node, s: &str) -> Option<IpNet> {
    let net = if let Some((_, len)) = s.split_once('/') {
        if !is_decimal(len) {
            cx.err_help(
                n,
                format!("invalid CIDR `{s}`"),
                "the prefix length is a plain number without sign or leading zero, like `/8`",
            );
            return None;
        }
        match s.parse::<IpNet>() {
            Ok(net) => {
                if net.trunc() != net {
                    cx.err_help(
                        n,
                        format!("invalid CIDR `{s}`: host bits are set"),
                        format!("did you mean `{}`?", net.trunc()),
                    );
                    return None;
                }
                net
            }
            Err(_) => {
                cx.err(n, format!("invalid CIDR `{s}`"));
                return None;
            }
        }
    } else {
        match s.parse::<IpAddr>() {
            Ok(a) => IpNet::from(a),
            Err(_) => {
                cx.err(n, format!("invalid address `{s}`"));
                return None;
            }
        }
    };
    Some(normalize_net(net))
}

pub(crate) fn normalize_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.network().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), n.prefix_len() - 96).unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// A destination in `to:`: an address or CIDR when it looks like one, otherwise a zone name.
pub(super) fn parse_target(cx: &mut Ctx, n: &Node, s: &str) -> Option<Target> {
    let looks_like_address =
        s.contains('/') || s.contains(':') || s.starts_with(|c: char| c.is_ascii_digit());
    if looks_like_address {
        return parse_net(cx, n, s).map(|net| Target::Nets(vec![net]));
    }
    if !is_identifier(s) {
        cx.err(
            n,
            format!("invalid destination `{s}`: not a zone name, an address or a CIDR"),
        );
        return None;
    }
    Some(Target::Zone(s.to_string(), cx.span(n)))
}

pub(super) fn parse_port(cx: &mut Ctx, n: &Node, s: &str) -> Option<u16> {
    match s.parse::<u32>() {
        Ok(p) if is_decimal(s) && (1..=65535).contains(&p) => Some(p as u16),
        Ok(_) if is_decimal(s) => {
            cx.err(n, format!("port `{s}` is out of range (1-65535)"));
            None
        }
        _ if is_decimal(s.trim_start_matches('0')) && s.starts_with('0') => {
            cx.err_help(
                n,
                format!("invalid port `{s}`"),
                "write a port without leading zeros, like `22`",
            );
            None
        }
        _ => {
            cx.err_help(
                n,
                format!("invalid port `{s}`"),
                "a port is a number like `22` or a range like `8000-8080`",
            );
            None
        }
    }
}

/// `ports:` → sorted inclusive ranges; `[(0, 65535)]` when absent.
pub(super) fn parse_ports(cx: &mut Ctx, v: Option<&Node>, what: &str) -> Vec<(u16, u16)> {
    let Some(v) = v else {
        return vec![(0, u16::MAX)];
    };
    let mut out = Vec::new();
    let items = cx.seq_or_one(v, what, "a port, a range or a list of them");
    if items.is_empty() && matches!(v.kind, Kind::Seq(_)) {
        cx.err_help(
            v,
            format!("`{what}` is empty"),
            "omit `ports` to mean every port",
        );
    }
    for item in items {
        let Some(s) = cx.string(item, what) else {
            continue;
        };
        if let Some((a, b)) = s.split_once('-') {
            let (Some(a), Some(b)) = (parse_port(cx, item, a), parse_port(cx, item, b)) else {
                continue;
            };
            if a > b {
                cx.err(
                    item,
                    format!("invalid port range `{s}`: start is greater than end"),
                );
                continue;
            }
            out.push((a, b));
        } else if let Some(p) = parse_port(cx, item, &s) {
            out.push((p, p));
        }
    }
    out.sort();
    out.dedup();
    out
}

pub(super) fn parse_protos(
    cx: &mut Ctx,
    v: Option<&Node>,
    default: &[Proto],
    omitted: &str,
) -> Vec<Proto> {
    let Some(v) = v else { return default.to_vec() };
    if matches!(&v.kind, Kind::Seq(items) if items.is_empty()) {
        cx.err_help(
            v,
            "`proto` is empty",
            format!("omit `proto` to mean {omitted}"),
        );
        return default.to_vec();
    }
    let mut out = Vec::new();
    for item in cx.seq_or_one(v, "proto", "a protocol or a list of them") {
        let Some(p) = cx.one_of(
            item,
            "proto",
            &[
                ("tcp", &[Proto::Tcp][..]),
                ("udp", &[Proto::Udp][..]),
                ("icmp", &[Proto::Icmp][..]),
                ("any", &Proto::ALL[..]),
            ],
        ) else {
            continue;
        };
        out.extend_from_slice(p);
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return default.to_vec();
    }
    out
}

/// Whether a `proto` value names `icmp` itself (not through `any`).
pub(super) fn names_icmp(n: &Node) -> bool {
    match &n.kind {
        Kind::Seq(items) => items.iter().any(|i| i.as_str() == Some("icmp")),
        _ => n.as_str() == Some("icmp"),
    }
}

/// `HH:MM-HH:MM` → minutes after midnight; the end may be `24:00`.
pub(super) fn parse_hours(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let hm = |t: &str, allow_24: bool| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        // Digits only, like every number in a policy: `u16::from_str` would also take `+8`.
        let digits = |x: &str| x.bytes().all(|c| c.is_ascii_digit());
        if h.is_empty() || h.len() > 2 || m.len() != 2 || !digits(h) || !digits(m) {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        if m >= 60 || h > 24 || (h == 24 && (m != 0 || !allow_24)) {
            return None;
        }
        Some(h * 60 + m)
    };
    Some((hm(a, false)?, hm(b, true)?))
}
