//! `jumpctl check`: asks `explain` about a policy directory compiled here, or prints the
//! running jumpd's answer; one report and one JSON shape (`explain::CheckAnswer`) for both.

use std::{io::Write, path::Path};

use super::exit;
use crate::{
    compile,
    eval::Kind,
    explain::{self, CheckAnswer, RuleRef},
    policy,
    resolve::Directory,
    verdict::Verdict,
};

pub(crate) fn resolve_user(user: &str, directory: &dyn Directory) -> Result<u32, String> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(uid);
    }
    directory
        .uid_of(user)
        .ok_or_else(|| format!("unknown user `{user}`"))
}

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per command-line input and stream"
)]
pub(crate) fn run(
    dir: &Path,
    user: &str,
    login: Option<&str>,
    dest: &str,
    at: jiff::Timestamp,
    json: bool,
    directory: &dyn Directory,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let result = (|| {
        let dest = explain::parse_dest(dest)?;
        let uid = resolve_user(user, directory)?;
        let login = login
            .map(|l| resolve_user(l, directory).map(|u| (l.to_string(), u)))
            .transpose()?;
        let loaded = policy::load_dir(dir).map_err(|e| e.to_string())?;
        let compiled =
            compile::compile_full(&loaded.policy, directory, at).map_err(|e| e.to_string())?;
        explain::check_person(&compiled, user, uid, login, dest, at)
    })();
    let answer = match result {
        Ok(r) => CheckAnswer::offline(r),
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return exit::ERROR;
        }
    };
    print(&answer, json, out)
}

/// Prints an answer (live or offline) as JSON or as the human report; the exit code says
/// whether the connection is allowed.
pub(super) fn print(answer: &CheckAnswer, json: bool, out: &mut dyn Write) -> u8 {
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(answer).unwrap_or_default()
        );
    } else {
        let _ = write!(out, "{}", render(answer));
    }
    if answer.allowed {
        exit::OK
    } else {
        exit::FAIL
    }
}

fn describe_rule(r: &RuleRef) -> String {
    let mut s = format!("`{}`", r.name);
    if !r.location.is_empty() {
        s.push_str(&format!(" at {}", r.location));
    }
    if let Some(e) = &r.expires {
        s.push_str(&format!(", expires {e}"));
    }
    if let Some(sc) = &r.schedule {
        s.push_str(&format!(", schedule {sc}"));
    }
    s
}

/// The human-readable report.
/// Names (user, rules, files) are escaped (`crate::escape`): this is printed on a terminal.
pub fn render(answer: &CheckAnswer) -> String {
    use crate::escape::escape;
    let r = &answer.report;
    let who = if r.user == r.uid.to_string() {
        format!("uid {}", r.uid)
    } else {
        format!("{} (uid {})", escape(&r.user), r.uid)
    };
    let verdict = match r.verdict {
        Verdict::WouldDeny => "audit (allowed, logged as \"would deny\")",
        v => v.check_word(),
    };
    let mut s = format!("{verdict}: {who} → {} at {}\n", r.dest, r.at);
    if let Some(owner) = r.decided_as {
        s.push_str(&format!(
            "  uid {} is a subordinate uid of uid {owner} (/etc/subuid): decided as uid {owner}\n",
            r.uid
        ));
    }
    if let Some(l) = &r.login {
        let name = if l.user == l.uid.to_string() {
            format!("uid {}", l.uid)
        } else {
            format!("{} (uid {})", escape(&l.user), l.uid)
        };
        if r.decided_by == "login" {
            s.push_str(&format!(
                "  decided by the login uid {name} (`defaults.identity: person`): it may not reach what uid {} may\n",
                r.uid
            ));
        } else {
            s.push_str(&format!("  login uid {name}: it allows as much\n"));
        }
    }
    if r.dest.starts_with("listen:0/") {
        s.push_str(
            "  port 0 asks the kernel for an ephemeral port: binding it is always allowed\n",
        );
    } else if r.rule.id == 0 && r.dest.starts_with("listen:") {
        s.push_str("  no `listen` grant applies: binding is refused without one\n");
    } else if r.rule.id == 0 {
        s.push_str(&format!(
            "  decided by the default (`defaults.egress: {}`): no rule {}\n",
            if r.allowed { "allow" } else { "deny" },
            if r.allowed { "denies it" } else { "allows it" }
        ));
    } else {
        s.push_str(&format!(
            "  decided by rule {}\n",
            escape(&describe_rule(&r.rule))
        ));
    }
    for m in &r.matches {
        let mode = if m.audit { " (audit mode)" } else { "" };
        let kind = match m.kind {
            _ if r.dest.starts_with("listen:") => "listen",
            Kind::Allow => "allow",
            Kind::Deny => "deny",
        };
        let at = if m.entry.is_empty() {
            String::new()
        } else {
            format!(" at {}", escape(&m.entry))
        };
        s.push_str(&format!(
            "  matched: {kind}{mode} entry{at} of rule `{}`\n",
            escape(&m.rule.name)
        ));
    }
    if answer.mode.as_deref() == Some("audit") && !answer.allowed {
        s.push_str(
            "  jumpd runs in audit mode: this connection is allowed and logged as \"would deny\"\n",
        );
    }
    s
}
