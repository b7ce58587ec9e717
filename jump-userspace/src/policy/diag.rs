//! Diagnostics: a position, a message, an optional `help:` line.

use std::{fmt, sync::Arc};

/// Where something was written: `file:line:col`, 1-based. `line == 0` means the whole file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl Span {
    pub fn new(file: &Arc<str>, line: u32, col: u32) -> Self {
        Span {
            file: file.clone(),
            line,
            col,
        }
    }

    /// The whole file (I/O errors, size limit).
    pub fn file(name: &str) -> Self {
        Span {
            file: name.into(),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.col)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: message` (`warning: ` before the message for warnings), then an indented
    /// `help:` line when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        if self.span.file.is_empty() {
            // About the policy as a whole (capacity limits).
            write!(f, "{kind}{}", self.message)?;
        } else {
            write!(f, "{}: {kind}{}", self.span, self.message)?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Every error found, sorted by position. Never empty when returned as an `Err`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyErrors {
    pub errors: Vec<Diagnostic>,
}

impl PolicyErrors {
    pub fn new(mut errors: Vec<Diagnostic>) -> Self {
        errors.sort_by(|a, b| a.span.cmp(&b.span).then_with(|| a.message.cmp(&b.message)));
        errors.dedup();
        PolicyErrors { errors }
    }
}

impl From<Diagnostic> for PolicyErrors {
    fn from(d: Diagnostic) -> Self {
        PolicyErrors { errors: vec![d] }
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// Words longer than this get no suggestion: a typo is in a short name, and the distance costs
/// the product of the two lengths.
const SUGGEST_MAX_CHARS: usize = 64;
/// At most this many candidates are compared for one word.
const SUGGEST_MAX_CANDIDATES: usize = 1024;

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo. Bounded:
/// at most `SUGGEST_MAX_CANDIDATES` comparisons of at most `SUGGEST_MAX_CHARS` characters each.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = word.chars().count();
    if len > SUGGEST_MAX_CHARS {
        return None;
    }
    let limit = (len / 3).clamp(1, 3);
    candidates
        .into_iter()
        // Cheap first: a length difference beyond the limit is a distance beyond it.
        .filter(|c| c.len() <= 4 * SUGGEST_MAX_CHARS && c.chars().count().abs_diff(len) <= limit)
        .take(SUGGEST_MAX_CANDIDATES)
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}
