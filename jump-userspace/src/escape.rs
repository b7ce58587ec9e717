//! User-controlled text made safe for human output. A command name is whatever a process set
//! with `prctl(PR_SET_NAME)`, and user, rule and file names come from files others write: in a
//! log line or on a terminal, a newline in them forges a line, an escape sequence (`\e[2K`, `\e[1A`)
//! erases or rewrites one, and a bidi override reorders one. Every human output (the message of
//! a log record, the text sink, `jumpctl`'s tables and event lines) goes through here; the
//! structured fields of journald and JSON keep the exact text.

use std::{borrow::Cow, fmt::Write};

/// Escapes `\`, control characters (C0, DEL, C1) and invisible format characters (bidi
/// controls, zero-width characters): `\\`, `\n`, `\r`, `\t`, `\e`, else `\xNN` or `\u{NNNN}`.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_with(s, false)
}

/// `escape`, and every space too (`\x20`, and any other white space such as a no-break space
/// as `\u{a0}`): for a value inside a `key=value` line (`comm=…`), so a command name such as
/// `x login=root(0)` cannot pass for another field.
pub fn escape_word(s: &str) -> Cow<'_, str> {
    escape_with(s, true)
}

fn needs(c: char, spaces: bool) -> bool {
    c == '\\' || c.is_control() || invisible(c) || (spaces && c.is_whitespace())
}

/// Format characters that change how a line reads without showing themselves, and the line and
/// paragraph separators, which log viewers and terminals may break a line at.
fn invisible(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

fn escape_with(s: &str, spaces: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs(c, spaces)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x1b' => out.push_str("\\e"),
            c if (c as u32) < 0x80 && needs(c, spaces) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs(c, spaces) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_escape_sequences_are_shown_not_obeyed() {
        assert_eq!(escape("curl"), "curl");
        assert!(matches!(escape("curl"), Cow::Borrowed(_)));
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("\x1b[2Kx"), "\\e[2Kx");
        assert_eq!(escape("a\r\tb\\"), "a\\r\\tb\\\\");
        assert_eq!(escape("\x00\x07\x7f"), "\\x00\\x07\\x7f");
        assert_eq!(
            escape("\u{85}\u{9b}"),
            "\\u{85}\\u{9b}",
            "C1 controls (CSI)"
        );
        assert_eq!(
            escape("abc\u{202e}gpj.exe"),
            "abc\\u{202e}gpj.exe",
            "a bidi override"
        );
        assert_eq!(escape("a b"), "a b");
        assert_eq!(escape("müller"), "müller", "printable non-ASCII stays");
    }

    #[test]
    fn a_word_cannot_pass_for_another_field() {
        assert_eq!(escape_word("x login=root(0)"), "x\\x20login=root(0)");
        assert_eq!(escape_word("a\nb c"), "a\\nb\\x20c");
        // 15 bytes, which prctl(PR_SET_NAME) takes: a no-break space before the fake field.
        assert_eq!(escape_word("\u{a0}login=root(0)"), "\\u{a0}login=root(0)");
        assert_eq!(
            escape_word("a\u{2003}b\u{3000}c\u{202f}d"),
            "a\\u{2003}b\\u{3000}c\\u{202f}d",
            "every white space"
        );
        assert_eq!(
            escape("a\u{a0}b"),
            "a\u{a0}b",
            "outside a word, a space is a space"
        );
        assert_eq!(
            escape("a\u{2028}b\u{2029}c"),
            "a\\u{2028}b\\u{2029}c",
            "line and paragraph separators break no line"
        );
    }
}
