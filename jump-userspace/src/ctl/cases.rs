//! `jumpctl test`: policy unit tests for an admin's CI.
//!
//! ```yaml
//! - {user: alice, to: "198.51.100.130:5432", expect: allow}
//! - {user: bob, to: "169.254.169.254:80", expect: deny, rule: no-metadata}
//! - {user: carol, to: "198.51.100.7:22", expect: allow, at: "2026-11-23T09:00:00+01:00"}
//! ```
//! `expect: allow` passes when the connection goes through (`audit` included); `audit` and
//! `deny` must match exactly. `rule`, when given, must name the deciding rule (`default` for
//! none).

use std::{collections::HashMap, io::Write, path::Path};

use super::{check, exit};
use crate::{
    compile::{self, Compiled, Directory},
    explain,
    policy::{
        self,
        yaml::{self, Kind, Node},
        Diagnostic, Span,
    },
    verdict::Verdict,
};

struct Case {
    span: Span,
    user: String,
    to: String,
    expect: String,
    at: Option<jiff::Timestamp>,
    rule: Option<String>,
}

const CASE_KEYS: &[&str] = &["user", "to", "expect", "at", "rule"];

fn parse_cases(file: &str, text: &str) -> Result<Vec<Case>, Vec<Diagnostic>> {
    let span = |n: &Node| Span::new(&file.into(), n.pos.line, n.pos.col);
    let root = yaml::parse(text).map_err(|e| {
        vec![Diagnostic::error(
            Span::new(&file.into(), e.pos.line, e.pos.col),
            format!("invalid YAML: {}", e.message),
        )]
    })?;
    let Some(root) = root else { return Ok(vec![]) };
    let Kind::Seq(items) = &root.kind else {
        return Err(vec![Diagnostic::error(
            span(&root),
            format!("test cases must be a list, found {}", root.describe()),
        )]);
    };
    let mut errors = Vec::new();
    let mut cases = Vec::new();
    for item in items {
        let Kind::Map(fields) = &item.kind else {
            errors.push(Diagnostic::error(
                span(item),
                format!("a test case must be a mapping, found {}", item.describe()),
            ));
            continue;
        };
        let mut get = HashMap::new();
        for (k, v) in fields {
            match k.as_str() {
                Some(key) if CASE_KEYS.contains(&key) => match v.as_str() {
                    Some(val) => {
                        get.insert(key, (val.to_string(), span(v)));
                    }
                    None => errors.push(Diagnostic::error(
                        span(v),
                        format!("`{key}` must be a string, found {}", v.describe()),
                    )),
                },
                other => errors.push(
                    Diagnostic::error(
                        span(k),
                        format!("unknown key `{}` in test case", other.unwrap_or("?")),
                    )
                    .with_help("expected `user`, `to`, `expect`, `at` or `rule`"),
                ),
            }
        }
        let mut need = |key: &str| match get.remove(key) {
            Some((v, _)) => Some(v),
            None => {
                errors.push(Diagnostic::error(
                    span(item),
                    format!("test case has no `{key}`"),
                ));
                None
            }
        };
        let (user, to, expect) = (need("user"), need("to"), need("expect"));
        let at = match get.remove("at") {
            Some((v, s)) => match explain::parse_time(&v) {
                Ok(t) => Some(t),
                Err(e) => {
                    errors.push(Diagnostic::error(s, e));
                    continue;
                }
            },
            None => None,
        };
        if let Some((e, s)) = expect.as_ref().zip(Some(span(item))) {
            if !["allow", "deny", "audit"].contains(&e.as_str()) {
                errors.push(
                    Diagnostic::error(s, format!("invalid `expect` value `{e}`"))
                        .with_help("expected `allow`, `deny` or `audit`"),
                );
                continue;
            }
        }
        if let (Some(user), Some(to), Some(expect)) = (user, to, expect) {
            cases.push(Case {
                span: span(item),
                user,
                to,
                expect,
                at,
                rule: get.remove("rule").map(|r| r.0),
            });
        }
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    }
}

/// How `run_cases` reports: text, `--json` on stdout, and/or `--junit FILE`.
#[derive(Clone, Debug, Default)]
pub struct CaseOutput {
    pub json: bool,
    pub junit: Option<std::path::PathBuf>,
}

/// Runs every case; prints each failure with its position and a `N passed, M failed` line.
pub fn run_cases(
    dir: &Path,
    cases_path: &Path,
    directory: &dyn Directory,
    now: jiff::Timestamp,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    run_cases_as(
        dir,
        cases_path,
        directory,
        now,
        &CaseOutput::default(),
        out,
        err,
    )
}

/// `run_cases` with machine output.
pub fn run_cases_as(
    dir: &Path,
    cases_path: &Path,
    directory: &dyn Directory,
    now: jiff::Timestamp,
    how: &CaseOutput,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let file = cases_path.display().to_string();
    let text = match std::fs::metadata(cases_path)
        .map_err(|e| e.to_string())
        .and_then(|m| {
            if m.len() > policy::MAX_FILE_BYTES {
                Err(format!(
                    "file is more than the limit of {} bytes",
                    policy::MAX_FILE_BYTES
                ))
            } else {
                std::fs::read_to_string(cases_path).map_err(|e| e.to_string())
            }
        }) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "{file}: cannot read test cases: {e}");
            return exit::ERROR;
        }
    };
    let cases = match parse_cases(&file, &text) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                let _ = writeln!(err, "{e}");
            }
            return exit::ERROR;
        }
    };
    if !super::offline::readable_dir(dir, err) {
        return exit::ERROR;
    }
    let loaded = match policy::load_dir(dir) {
        Ok(l) => l,
        Err(e) => {
            // An invalid policy fails every case: 1, as `validate` says.
            let _ = writeln!(err, "{e}");
            return exit::FAIL;
        }
    };
    let mut compiled: HashMap<jiff::Timestamp, Compiled> = HashMap::new();
    let (mut passed, mut failed) = (0, 0);
    let mut results = Vec::new();
    for case in &cases {
        let at = case.at.unwrap_or(now);
        let c = match compiled.entry(at) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                match compile::compile_full(&loaded.policy, directory, at) {
                    Ok(c) => v.insert(c),
                    Err(e) => {
                        let _ = writeln!(err, "{e}");
                        return exit::ERROR;
                    }
                }
            }
        };
        let result = explain::parse_dest(&case.to)
            .and_then(|dest| Ok((dest, check::resolve_user(&case.user, directory)?)))
            .and_then(|(dest, uid)| explain::check(c, &case.user, uid, dest, at));
        let failure = match result {
            Err(e) => Some(e),
            Ok(report) => {
                // `expect: allow` holds for anything let through, audited or not.
                let verdict_ok = match case.expect.parse() {
                    Ok(Verdict::Allow) => report.allowed,
                    v => v == Ok(report.verdict),
                };
                let rule_ok = case.rule.as_ref().is_none_or(|r| *r == report.rule.name);
                (!verdict_ok || !rule_ok).then(|| {
                    let wanted = match &case.rule {
                        Some(r) => format!("{} by rule `{r}`", case.expect),
                        None => case.expect.clone(),
                    };
                    format!(
                        "{} → {}: expected {wanted}, got {} by rule `{}`",
                        case.user,
                        report.dest,
                        report.verdict.check_word(),
                        report.rule.name
                    )
                })
            }
        };
        match &failure {
            None => passed += 1,
            Some(msg) => {
                failed += 1;
                if !how.json {
                    let _ = writeln!(out, "{}: {msg}", case.span);
                }
            }
        }
        results.push(super::offline::CaseResult {
            file: case.span.file.to_string(),
            line: case.span.line,
            col: case.span.col,
            user: case.user.clone(),
            to: case.to.clone(),
            expect: case.expect.clone(),
            passed: failure.is_none(),
            failure,
        });
    }
    let report = super::offline::TestReport {
        passed,
        failed,
        cases: results,
    };
    if let Some(path) = &how.junit {
        if let Err(e) = std::fs::write(path, super::offline::junit(&report, &file)) {
            let _ = writeln!(err, "error: cannot write `{}`: {e}", path.display());
            return exit::ERROR;
        }
    }
    if how.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let _ = writeln!(out, "{passed} passed, {failed} failed");
    }
    if failed == 0 {
        exit::OK
    } else {
        exit::FAIL
    }
}
