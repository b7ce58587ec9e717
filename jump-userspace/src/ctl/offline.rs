//! `jumpctl validate|check|test` away from the target host: the accounts to compile against
//! (`--passwd/--group/--subuid`, else the host's with NSS), `validate`'s report (every error at
//! once, as text or `--json`), and `test`'s machine output (`--json`, `--junit FILE`).
//!
//! Exit codes: 0 valid / passed, 1 invalid / failed, 2 when the question cannot be answered
//! (a missing or unreadable policy directory, account file or case file).

use std::{io::Write, path::Path};

use clap::Args;
use serde::Serialize;

use super::exit;
use crate::{
    compile,
    policy::{self, Diagnostic, Severity},
    resolve::{self, AccountFiles, Accounts, Directory},
};

/// The accounts the policy names, when they are not this host's.
#[derive(Clone, Debug, Default, Args)]
pub struct AccountArgs {
    /// The target host's passwd(5) file: its users replace this host's (and NSS's)
    #[arg(long, value_name = "FILE")]
    pub passwd: Option<std::path::PathBuf>,
    /// The target host's group(5) file: its groups replace this host's (and NSS's)
    #[arg(long, value_name = "FILE")]
    pub group: Option<std::path::PathBuf>,
    /// The target host's subuid(5) file [default: /etc/subuid]
    #[arg(long, value_name = "FILE")]
    pub subuid: Option<std::path::PathBuf>,
}

impl AccountArgs {
    /// The accounts, or (after saying why on `err`) `None`: exit 2.
    pub fn load(&self, err: &mut dyn Write) -> Option<Accounts> {
        let files = AccountFiles {
            passwd: self.passwd.clone(),
            group: self.group.clone(),
            subuid: self.subuid.clone(),
        };
        match Accounts::load(&files) {
            Ok(a) => Some(a),
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                None
            }
        }
    }
}

/// Whether the policy directory can be read at all: when not, nothing about the policy is
/// known (exit 2), which is not the same as an invalid policy (exit 1).
pub fn readable_dir(dir: &Path, err: &mut dyn Write) -> bool {
    match std::fs::read_dir(dir) {
        Ok(_) => true,
        Err(e) => {
            let _ = writeln!(
                err,
                "error: cannot read policy directory `{}`: {e}",
                dir.display()
            );
            false
        }
    }
}

/// One diagnostic, for `--json`.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub severity: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl From<&Diagnostic> for JsonDiagnostic {
    fn from(d: &Diagnostic) -> Self {
        Self {
            file: d.span.file.to_string(),
            line: d.span.line,
            col: d.span.col,
            severity: match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            message: d.message.clone(),
            help: d.help.clone(),
        }
    }
}

/// `validate --json`: the one shape, valid or not.
#[derive(Debug, Serialize)]
pub struct ValidateReport {
    pub dir: String,
    pub valid: bool,
    pub errors: Vec<JsonDiagnostic>,
    pub warnings: Vec<JsonDiagnostic>,
    /// Present when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
}

#[derive(Debug, Serialize)]
pub struct Counts {
    pub rules: usize,
    pub profiles: usize,
    pub destination_entries: usize,
    pub port_entries: usize,
}

/// Loads and compiles `dir`; every error at once. When the files have errors of their own, the
/// rules that parsed are still resolved, so an unknown user is reported with a syntax error
/// elsewhere rather than after it is fixed.
pub fn validate_report(
    dir: &Path,
    directory: &dyn Directory,
    now: jiff::Timestamp,
) -> (Vec<Diagnostic>, Vec<Diagnostic>, Option<Counts>) {
    match policy::load_dir(dir) {
        Err(e) => {
            let (mut warnings, mut errors): (Vec<_>, Vec<_>) = e
                .errors
                .into_iter()
                .partition(|d| d.severity == Severity::Warning);
            if let Some(partial) = policy::load_dir_partial(dir) {
                if let Err(more) = resolve::resolve(&partial, directory) {
                    errors.extend(more.errors);
                }
            }
            let errors = policy::PolicyErrors::new(errors).errors;
            warnings.sort_by(|a, b| a.span.cmp(&b.span));
            (errors, warnings, None)
        }
        Ok(loaded) => match compile::compile_full(&loaded.policy, directory, now) {
            Ok(c) => {
                let mut warnings = loaded.warnings;
                warnings.extend(c.warnings);
                let counts = Counts {
                    rules: c.image.rules.len() - 1,
                    profiles: c
                        .image
                        .users
                        .values()
                        .collect::<std::collections::BTreeSet<_>>()
                        .len(),
                    destination_entries: c.image.dests.len(),
                    port_entries: c.image.ports.len(),
                };
                (Vec::new(), warnings, Some(counts))
            }
            Err(e) => (e.errors, loaded.warnings, None),
        },
    }
}

/// `validate [--json]`: exit 0 when valid (warnings allowed), 1 when not, 2 when the directory
/// cannot be read.
pub fn validate(
    dir: &Path,
    directory: &dyn Directory,
    now: jiff::Timestamp,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    if !readable_dir(dir, err) {
        return exit::ERROR;
    }
    let (errors, warnings, counts) = validate_report(dir, directory, now);
    let code = if errors.is_empty() {
        exit::OK
    } else {
        exit::FAIL
    };
    if json {
        let report = ValidateReport {
            dir: dir.display().to_string(),
            valid: errors.is_empty(),
            errors: errors.iter().map(JsonDiagnostic::from).collect(),
            warnings: warnings.iter().map(JsonDiagnostic::from).collect(),
            counts,
        };
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return code;
    }
    // Text: in position order, warnings and errors interleaved as they appear in the files.
    let mut all: Vec<&Diagnostic> = warnings.iter().chain(&errors).collect();
    all.sort_by(|a, b| a.span.cmp(&b.span));
    for d in all {
        let _ = writeln!(err, "{d}");
    }
    match counts {
        Some(c) => {
            let _ = writeln!(
                out,
                "{}: valid policy, {} rules, {} profiles, {} destination and {} port entries ({} warning{})",
                dir.display(),
                c.rules,
                c.profiles,
                c.destination_entries,
                c.port_entries,
                warnings.len(),
                if warnings.len() == 1 { "" } else { "s" },
            );
        }
        None => {
            let _ = writeln!(err, "{}", super::summary(errors.len(), warnings.len()));
        }
    }
    code
}

/// One `jumpctl test` case's result, for `--json` and `--junit`.
#[derive(Debug, Serialize)]
pub struct CaseResult {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub user: String,
    pub to: String,
    pub expect: String,
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// `test --json`.
#[derive(Debug, Serialize)]
pub struct TestReport {
    pub passed: usize,
    pub failed: usize,
    pub cases: Vec<CaseResult>,
}

/// JUnit XML as CI systems (GitLab, Jenkins, GitHub reporters) read it: one testsuite, a
/// testcase per case named by its position, a `<failure>` for each failed one. Small enough not
/// to need a crate; every attribute and text goes through `xml_escape`.
pub fn junit(report: &TestReport, cases_file: &str) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites tests=\"{}\" failures=\"{}\">\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\">\n",
        report.cases.len(),
        report.failed,
        xml_escape(cases_file),
        report.cases.len(),
        report.failed
    ));
    for c in &report.cases {
        let name = format!(
            "{}:{}:{}: {} → {} {}",
            c.file, c.line, c.col, c.user, c.to, c.expect
        );
        x.push_str(&format!(
            "    <testcase classname=\"jumpctl test\" name=\"{}\"",
            xml_escape(&name)
        ));
        match &c.failure {
            None => x.push_str("/>\n"),
            Some(f) => x.push_str(&format!(
                ">\n      <failure message=\"{}\"/>\n    </testcase>\n",
                xml_escape(f)
            )),
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Escapes text for an XML attribute or element; drops the control characters XML 1.0 cannot
/// hold at all (a user name or destination in a case file could carry one).
fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push_str(&format!("&#{};", ch as u32)),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_what_a_case_file_controls() {
        let r = TestReport {
            passed: 0,
            failed: 1,
            cases: vec![CaseResult {
                file: "c.yaml".into(),
                line: 1,
                col: 3,
                user: "a\"<b>&\u{1}".into(),
                to: "198.51.100.1:22".into(),
                expect: "allow".into(),
                passed: false,
                failure: Some("expected allow, got deny by rule `default`".into()),
            }],
        };
        let x = junit(&r, "c.yaml");
        assert_eq!(
            x,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"1\" failures=\"1\">\n  <testsuite name=\"c.yaml\" tests=\"1\" failures=\"1\">\n    <testcase classname=\"jumpctl test\" name=\"c.yaml:1:3: a&quot;&lt;b&gt;&amp; → 198.51.100.1:22 allow\">\n      <failure message=\"expected allow, got deny by rule `default`\"/>\n    </testcase>\n  </testsuite>\n</testsuites>\n"
        );
    }
}
