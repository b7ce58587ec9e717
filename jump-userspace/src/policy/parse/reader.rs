//! The reader every policy check reports through: spans for `file:line:col`, errors
//! collected (at most `MAX_ERRORS` kept) and typed accessors over the YAML tree. Policy files
//! and `jumpctl test`'s case files (`ctl::cases`) both read through it, so their errors read
//! alike.

use super::*;

pub(crate) struct Ctx {
    pub(super) file: Arc<str>,
    pub(super) errors: Vec<Diagnostic>,
    /// Errors beyond `MAX_ERRORS`, counted only.
    pub(super) dropped: usize,
}

impl Ctx {
    pub(crate) fn new(file: &str) -> Ctx {
        Ctx {
            file: file.into(),
            errors: Vec::new(),
            dropped: 0,
        }
    }

    /// The file's YAML tree (`None` for an empty file), or `Err` with the syntax error kept.
    pub(crate) fn parse(&mut self, text: &str) -> Result<Option<Node>, ()> {
        yaml::parse(text).map_err(|e| {
            let span = Span::new(&self.file, e.pos.line, e.pos.col);
            self.push(Diagnostic::error(
                span,
                format!("invalid YAML: {}", e.message),
            ));
        })
    }

    /// Every error, sorted by position, and a last line counting those not kept.
    pub(crate) fn into_errors(mut self) -> Vec<Diagnostic> {
        self.errors.sort_by(|a, b| a.span.cmp(&b.span));
        if self.dropped > 0 {
            self.errors.push(Diagnostic::error(
                Span::default(),
                format!(
                    "{} more errors not shown (at most {MAX_ERRORS} are)",
                    self.dropped
                ),
            ));
        }
        self.errors
    }

    pub(crate) fn span(&self, n: &Node) -> Span {
        Span::new(&self.file, n.pos.line, n.pos.col)
    }

    pub(crate) fn push(&mut self, d: Diagnostic) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(d);
        } else {
            self.dropped += 1;
        }
    }

    pub(crate) fn err(&mut self, n: &Node, msg: impl Into<String>) {
        let span = self.span(n);
        self.push(Diagnostic::error(span, msg));
    }

    pub(crate) fn err_help(&mut self, n: &Node, msg: impl Into<String>, help: impl Into<String>) {
        let span = self.span(n);
        self.push(Diagnostic::error(span, msg).with_help(help));
    }

    pub(crate) fn wrong_type(&mut self, n: &Node, what: &str, expected: &str) {
        let found = n.describe();
        self.err(n, format!("`{what}` must be {expected}, found {found}"));
    }

    /// The entries of a mapping, reporting unknown keys (with a suggestion) and duplicate keys.
    pub(crate) fn map<'n>(
        &mut self,
        n: &'n Node,
        what: &str,
        known: &[&str],
    ) -> Option<BTreeMap<&'n str, (&'n Node, &'n Node)>> {
        let Kind::Map(items) = &n.kind else {
            self.wrong_type(n, what, "a mapping");
            return None;
        };
        let mut out: BTreeMap<&str, (&Node, &Node)> = BTreeMap::new();
        for (k, v) in items {
            let Some(key) = k.as_str() else {
                self.err(
                    k,
                    format!("keys in `{what}` must be strings, found {}", k.describe()),
                );
                continue;
            };
            if !known.contains(&key) {
                let msg = format!("unknown key `{key}` in `{what}`");
                match suggest(key, known.iter().copied()) {
                    Some(s) => self.err_help(k, msg, format!("did you mean `{s}`?")),
                    None => self.err_help(
                        k,
                        msg,
                        format!(
                            "expected one of {}",
                            known
                                .iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                }
                continue;
            }
            if let Some((first, _)) = out.get(key) {
                let first = self.span(first);
                self.err(k, format!("duplicate key `{key}`: first given at {first}"));
                continue;
            }
            out.insert(key, (k, v));
        }
        Some(out)
    }

    /// A list, or a single item standing for a list of one.
    pub(crate) fn seq_or_one<'n>(
        &mut self,
        n: &'n Node,
        what: &str,
        expected: &str,
    ) -> Vec<&'n Node> {
        match &n.kind {
            Kind::Seq(items) => items.iter().collect(),
            Kind::Scalar { .. } if !n.is_null() => vec![n],
            _ => {
                self.wrong_type(n, what, expected);
                vec![]
            }
        }
    }

    pub(crate) fn string(&mut self, n: &Node, what: &str) -> Option<String> {
        match &n.kind {
            Kind::Scalar { value, .. } if !n.is_null() => Some(value.clone()),
            _ => {
                self.wrong_type(n, what, "a string");
                None
            }
        }
    }

    pub(crate) fn one_of<T: Copy>(
        &mut self,
        n: &Node,
        what: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let s = self.string(n, what)?;
        if let Some((_, v)) = options.iter().find(|(k, _)| *k == s) {
            return Some(*v);
        }
        let list = options
            .iter()
            .map(|(k, _)| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.err_help(
            n,
            format!("invalid `{what}` value `{s}`"),
            format!("expected one of {list}"),
        );
        None
    }
}
