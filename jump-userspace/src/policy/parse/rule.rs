//! One rule and its parts: `allow`/`deny` entries, `listen` grants, `schedule`, `via`.

use super::*;

pub(super) fn parse_entry(
    cx: &mut Ctx,
    n: &Node,
    what: &str,
    default_protos: &[Proto],
) -> Option<RawEntry> {
    let m = cx.map(n, what, ENTRY_KEYS)?;
    let span = cx.span(n);
    let Some((_, to)) = m.get("to") else {
        cx.err_help(
            n,
            format!("`{what}` entry has no `to`"),
            "add `to:` with a zone, an address or a CIDR",
        );
        return None;
    };
    let mut targets = Vec::new();
    let mut to_text = Vec::new();
    let items = cx.seq_or_one(to, "to", "a zone, an address, a CIDR or a list of them");
    if items.is_empty() && matches!(to.kind, Kind::Seq(_)) {
        cx.err(to, "`to` is empty");
    }
    for item in items {
        if let Some(s) = cx.string(item, "to") {
            if let Some(t) = parse_target(cx, item, &s) {
                targets.push(t);
                to_text.push(s);
            }
        }
    }
    let proto_node = m.get("proto").map(|e| e.1);
    let omitted = if default_protos.len() == 1 {
        "`tcp`"
    } else {
        "`any`"
    };
    let mut protos = parse_protos(cx, proto_node, default_protos, omitted);
    let ports_node = m.get("ports").map(|e| e.1);
    let ports = parse_ports(cx, ports_node, "ports");
    if let Some(p) = ports_node {
        // ICMP has no ports, so an entry with ports cannot match it: `icmp` named outright is a
        // contradiction; `any` (written or implied) then means tcp and udp.
        if proto_node.is_some_and(names_icmp) {
            cx.err_help(
                p,
                "`ports` cannot be used with `icmp`",
                "give `icmp` an entry of its own, without `ports`",
            );
        }
        protos.retain(|&p| p != Proto::Icmp);
    }
    Some(RawEntry {
        entry: Entry {
            span,
            to: to_text,
            nets: Vec::new(),
            protos,
            ports,
        },
        targets,
    })
}

pub(super) fn parse_listen(cx: &mut Ctx, n: &Node) -> Option<Listen> {
    let m = cx.map(n, "listen", LISTEN_KEYS)?;
    let span = cx.span(n);
    let Some((_, ports)) = m.get("ports") else {
        cx.err(n, "`listen` entry has no `ports`");
        return None;
    };
    let ports = parse_ports(cx, Some(ports), "ports");
    let mut addresses = Vec::new();
    if let Some((_, a)) = m.get("addresses") {
        for item in cx.seq_or_one(a, "addresses", "a list of addresses or CIDRs") {
            if let Some(s) = cx.string(item, "addresses") {
                if let Some(net) = parse_net(cx, item, &s) {
                    addresses.push(net);
                }
            }
        }
    }
    let protos = parse_protos(cx, m.get("proto").map(|e| e.1), &[Proto::Tcp], "`tcp`");
    let protos: Vec<Proto> = protos.into_iter().filter(|&p| p != Proto::Icmp).collect();
    if protos.is_empty() {
        if let Some((_, p)) = m.get("proto") {
            cx.err(p, "`listen` takes `tcp` or `udp`, not `icmp`");
        }
        return None;
    }
    Some(Listen {
        span,
        protos,
        ports,
        addresses,
    })
}

pub(super) fn parse_schedule(cx: &mut Ctx, n: &Node) -> Option<Schedule> {
    let m = cx.map(n, "schedule", SCHEDULE_KEYS)?;
    let span = cx.span(n);
    let mut ok = true;
    let mut days = Vec::new();
    match m.get("days") {
        None => days = Day::ALL.to_vec(),
        Some((_, d)) => {
            let names = [
                ("mon", Day::Mon),
                ("tue", Day::Tue),
                ("wed", Day::Wed),
                ("thu", Day::Thu),
                ("fri", Day::Fri),
                ("sat", Day::Sat),
                ("sun", Day::Sun),
            ];
            let items = cx.seq_or_one(d, "days", "a list of days (`mon` … `sun`)");
            if items.is_empty() {
                if matches!(d.kind, Kind::Seq(_)) {
                    cx.err_help(d, "`days` is empty", "omit `days` to mean every day");
                }
                ok = false;
            }
            for item in items {
                match cx.one_of(item, "days", &names) {
                    Some(day) => days.push(day),
                    None => ok = false,
                }
            }
        }
    }
    days.sort();
    days.dedup();
    let (mut start, mut end) = (0, 24 * 60);
    if let Some((_, h)) = m.get("hours") {
        match cx.string(h, "hours") {
            Some(s) => match parse_hours(&s) {
                Some((a, b)) if a != b => (start, end) = (a, b),
                Some(_) => {
                    cx.err_help(
                        h,
                        format!("invalid `hours` `{s}`: start and end are equal"),
                        "omit `hours` to mean the whole day",
                    );
                    ok = false;
                }
                None => {
                    cx.err_help(h, format!("invalid `hours` `{s}`"), "write `HH:MM-HH:MM`, like `08:00-18:00` (`22:00-06:00` runs past midnight)");
                    ok = false;
                }
            },
            None => ok = false,
        }
    }
    let mut tz_name = "UTC".to_string();
    let mut tz = jiff::tz::TimeZone::UTC;
    if let Some((_, t)) = m.get("tz") {
        match cx.string(t, "tz") {
            Some(s) => match jiff::tz::TimeZone::get(&s) {
                Ok(z) => {
                    tz = z;
                    tz_name = s;
                }
                Err(_) => {
                    cx.err_help(
                        t,
                        format!("unknown time zone `{s}`"),
                        "use an IANA name like `Europe/Paris` or `UTC`",
                    );
                    ok = false;
                }
            },
            None => ok = false,
        }
    }
    ok.then_some(Schedule {
        days,
        start,
        end,
        tz_name,
        tz,
        span,
    })
}

pub(super) fn parse_rule(cx: &mut Ctx, n: &Node) -> Option<(Rule, Vec<RawEntry>, Vec<RawEntry>)> {
    let errors_before = cx.errors.len();
    let m = cx.map(n, "rule", RULE_KEYS)?;
    let span = cx.span(n);
    let name = match m.get("name") {
        Some((_, v)) => cx.string(v, "name"),
        None => {
            cx.err_help(
                n,
                "rule has no `name`",
                "every rule needs a unique `name`; events and `jumpctl check` show it",
            );
            None
        }
    };
    let name_node = m.get("name").map(|e| e.1);
    if let (Some(name), Some(node)) = (&name, name_node) {
        if RESERVED_RULE_NAMES.contains(&name.as_str()) {
            cx.err(node, format!("rule name `{name}` is reserved"));
        } else if let Some(why) = name_problem(name) {
            cx.err(
                node,
                format!("invalid rule name `{}`: {why}", name.escape_debug()),
            );
        }
    }
    let shown = name.clone().unwrap_or_else(|| "<unnamed>".into());
    let description = m
        .get("description")
        .and_then(|(_, v)| cx.string(v, "description"));

    let mut everyone = false;
    let mut users = Vec::new();
    let mut groups = Vec::new();
    if let Some((_, u)) = m.get("users") {
        for item in cx.seq_or_one(u, "users", "a list of user names or uids") {
            let Some(s) = cx.string(item, "users") else {
                continue;
            };
            let span = cx.span(item);
            if s == "*" {
                everyone = true;
            } else if s.starts_with(|c: char| c.is_ascii_digit()) {
                match s.parse::<u32>() {
                    Ok(u32::MAX) => cx.err_help(
                        item,
                        format!("invalid uid `{s}`"),
                        "4294967295 is `(uid_t)-1`, which stands for no uid",
                    ),
                    Ok(uid) if is_decimal(&s) => users.push((UserRef::Uid(uid), span)),
                    Ok(_) => cx.err_help(
                        item,
                        format!("invalid uid `{s}`"),
                        "write a uid without leading zeros",
                    ),
                    Err(_) => cx.err(item, format!("invalid uid `{s}`")),
                }
            } else {
                users.push((UserRef::Name(s), span));
            }
        }
    }
    if let Some((_, g)) = m.get("groups") {
        for item in cx.seq_or_one(g, "groups", "a list of group names") {
            if let Some(s) = cx.string(item, "groups") {
                let span = cx.span(item);
                groups.push((s, span));
            }
        }
    }
    if !everyone && users.is_empty() && groups.is_empty() && cx.errors.len() == errors_before {
        cx.err_help(
            n,
            format!("rule `{shown}` applies to no one: it has no `users` or `groups`"),
            "add `users: [\"*\"]` to apply it to every user",
        );
    }

    let mut allow = Vec::new();
    let mut deny = Vec::new();
    let mut listen = Vec::new();
    for (key, out, default) in [
        ("allow", &mut allow, &[Proto::Tcp][..]),
        ("deny", &mut deny, &Proto::ALL[..]),
    ] {
        if let Some((_, v)) = m.get(key) {
            match &v.kind {
                Kind::Seq(items) => {
                    for item in items {
                        if let Some(e) = parse_entry(cx, item, key, default) {
                            out.push(e);
                        }
                    }
                }
                Kind::Map(_) => {
                    if let Some(e) = parse_entry(cx, v, key, default) {
                        out.push(e);
                    }
                }
                _ if v.is_null() => {}
                _ => cx.wrong_type(v, key, "a list of entries like `{to: dmz, ports: [22]}`"),
            }
        }
    }
    if let Some((_, v)) = m.get("listen") {
        match &v.kind {
            Kind::Seq(items) => listen.extend(items.iter().filter_map(|i| parse_listen(cx, i))),
            _ if v.is_null() => {}
            _ => cx.wrong_type(v, "listen", "a list of entries like `{ports: [8080]}`"),
        }
    }
    if allow.is_empty() && deny.is_empty() && listen.is_empty() && cx.errors.len() == errors_before
    {
        cx.err_help(n, format!("rule `{shown}` grants and denies nothing: it has no `allow`, `deny` or `listen` entries"), "add `allow: [{to: ZONE, ports: [PORT]}]`");
    }
    let mode = match m.get("mode") {
        Some((_, v)) => cx
            .one_of(
                v,
                "mode",
                &[("enforce", Mode::Enforce), ("audit", Mode::Audit)],
            )
            .unwrap_or_default(),
        None => Mode::Enforce,
    };
    let expires = m.get("expires").and_then(|(_, v)| {
        let s = cx.string(v, "expires")?;
        match crate::policy::moment::parse(&s) {
            Ok(t) => Some(t),
            Err((why, help)) => {
                let why = why.map(|w| format!(": {w}")).unwrap_or_default();
                cx.err_help(v, format!("invalid `expires` `{s}`{why}"), help);
                None
            }
        }
    });
    let schedule = m.get("schedule").and_then(|(_, v)| parse_schedule(cx, v));
    let via = m
        .get("via")
        .map(|(_, v)| parse_via(cx, v))
        .unwrap_or_default();
    let name = name?;
    let rule = Rule {
        name,
        span,
        description,
        everyone,
        users,
        groups,
        allow: Vec::new(),
        deny: Vec::new(),
        listen,
        mode,
        expires,
        schedule,
        via,
    };
    Some((rule, allow, deny))
}

/// `via: [eth1]`: interface names as the kernel allows them (1 to 15 bytes, no `/`, no
/// whitespace, not `.` or `..`).
pub(super) fn parse_via(cx: &mut Ctx, n: &Node) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    for item in cx.seq_or_one(n, "via", "an interface name or a list of them") {
        let Some(s) = cx.string(item, "via") else {
            continue;
        };
        let valid = !s.is_empty()
            && s.len() <= 15
            && s != "."
            && s != ".."
            && !s.contains('/')
            && !s.chars().any(|c| c.is_whitespace() || c == ':');
        if valid {
            out.push((s, cx.span(item)));
        } else {
            cx.err_help(
                item,
                format!("invalid interface name `{s}`"),
                "an interface name has 1 to 15 characters, without `/`, `:` or spaces (like `eth1`)",
            );
        }
    }
    out
}
