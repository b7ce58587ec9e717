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
    compile::{self, Compiled},
    explain,
    policy::{self, yaml::Kind, Diagnostic, Reader, Span},
    resolve::Directory,
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

const EXPECT: &[(&str, &str)] = &[("allow", "allow"), ("deny", "deny"), ("audit", "audit")];

/// The cases of a file, read like a policy file (`policy::Reader`): every error, by position.
fn parse_cases(file: &str, text: &str) -> Result<Vec<Case>, Vec<Diagnostic>> {
    let mut cx = Reader::new(file);
    let root = match cx.parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => return Ok(vec![]),
        Err(()) => return Err(cx.into_errors()),
    };
    let Kind::Seq(items) = &root.kind else {
        cx.err(
            &root,
            format!("test cases must be a list, found {}", root.describe()),
        );
        return Err(cx.into_errors());
    };
    let mut cases = Vec::new();
    for item in items {
        let Some(fields) = cx.map(item, "test case", CASE_KEYS) else {
            continue;
        };
        let mut string = |key: &str| {
            let (_, v) = fields.get(key)?;
            cx.string(v, key)
        };
        let (user, to, rule) = (string("user"), string("to"), string("rule"));
        let expect = match fields.get("expect") {
            Some((_, v)) => cx.one_of(v, "expect", EXPECT),
            None => None,
        };
        let at = match fields.get("at") {
            Some((_, v)) => match cx.string(v, "at").map(|t| explain::parse_time(&t)) {
                Some(Ok(t)) => Some(t),
                Some(Err(e)) => {
                    cx.err(v, e);
                    None
                }
                None => None,
            },
            None => None,
        };
        for key in ["user", "to", "expect"] {
            if !fields.contains_key(key) {
                cx.err(item, format!("test case has no `{key}`"));
            }
        }
        if let (Some(user), Some(to), Some(expect)) = (user, to, expect) {
            cases.push(Case {
                span: cx.span(item),
                user,
                to,
                expect: expect.to_string(),
                at,
                rule,
            });
        }
    }
    let errors = cx.into_errors();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> String {
        match parse_cases("cases.yaml", text) {
            Ok(_) => String::new(),
            Err(errors) => errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    #[test]
    fn case_files_read_like_policy_files() {
        let got = errors(
            "- {user: alice, to: \"198.51.100.7:22\", expect: maybe}\n\
             - {usr: bob, to: \"198.51.100.7:22\", expect: deny}\n\
             - {user: carol, user: dave, to: [a], expect: allow, at: soon}\n\
             - 7\n",
        );
        let want = [
            "cases.yaml:1:48: invalid `expect` value `maybe`",
            "  help: expected one of `allow`, `deny`, `audit`",
            "cases.yaml:2:3: test case has no `user`",
            "cases.yaml:2:4: unknown key `usr` in `test case`",
            "  help: did you mean `user`?",
            "cases.yaml:3:17: duplicate key `user`: first given at cases.yaml:3:4",
            "cases.yaml:3:33: `to` must be a string, found a list",
            "cases.yaml:3:57: invalid time `soon`: write an RFC 3339 time with an offset, like \
             `2026-12-31T18:00:00Z`",
            "cases.yaml:4:3: `test case` must be a mapping, found a number",
        ];
        assert_eq!(got, want.join("\n"), "every mistake, by position");
    }

    #[test]
    fn an_empty_case_file_has_no_cases() {
        assert!(parse_cases("cases.yaml", "").is_ok_and(|c| c.is_empty()));
    }
}
