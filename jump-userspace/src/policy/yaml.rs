//! A YAML document as a small tree with a position on every node, built from yaml-rust2's event
//! parser. serde would lose the positions, and every policy error must say `file:line:col`.

use yaml_rust2::{parser::Parser, scanner::TScalarStyle, Event};

/// 1-based line and column of a node's first character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `plain` is false for quoted and block scalars, which are always strings.
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

/// Deeper documents are refused: nothing in the policy format nests this deep, and a bounded
/// depth keeps dropping the tree (which recurses) safe on hostile input.
const MAX_DEPTH: usize = 32;

impl Node {
    /// `null`, `~` and the empty plain scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { value, plain: true } if value.is_empty() || value == "~" || value == "null" || value == "Null" || value == "NULL")
    }

    /// How the node reads in an error message ("found a mapping").
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Scalar { .. } if self.is_null() => "nothing",
            Kind::Scalar { value, plain: true } if value.parse::<i64>().is_ok() => "a number",
            Kind::Scalar { value, plain: true }
                if matches!(
                    value.as_str(),
                    "true" | "false" | "True" | "False" | "TRUE" | "FALSE"
                ) =>
            {
                "a boolean"
            }
            Kind::Scalar { .. } => "a string",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { value, .. } if !self.is_null() => Some(value),
            _ => None,
        }
    }
}

/// A syntax error: position and the parser's message.
#[derive(Debug)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

enum Frame {
    Seq(Pos, Vec<Node>),
    Map(Pos, Vec<(Node, Node)>, Option<Node>),
}

fn pos(m: &yaml_rust2::scanner::Marker) -> Pos {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Pos {
        line: m.line() as u32,
        col: m.col() as u32 + 1,
    }
}

/// Parses one YAML document (an empty input is `None`).
pub fn parse(src: &str) -> Result<Option<Node>, SyntaxError> {
    let mut parser = Parser::new_from_str(src);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    loop {
        let (event, marker) = parser.next_token().map_err(|e| SyntaxError {
            pos: pos(e.marker()),
            message: e.info().to_string(),
        })?;
        let at = pos(&marker);
        // A tag (`!!null root`, `!!bool allow`, `!custom`) changes what a value means without
        // changing how it reads: refused, so every value means what it says.
        let tag = match &event {
            Event::Scalar(_, _, _, t) | Event::SequenceStart(_, t) | Event::MappingStart(_, t) => {
                t.as_ref()
            }
            _ => None,
        };
        if let Some(t) = tag {
            return Err(SyntaxError {
                pos: at,
                message: format!(
                    "YAML tags (`{}{}`) are not supported in policies",
                    // The parser expands `!!` to the standard prefix; show it as written.
                    if t.handle == "tag:yaml.org,2002:" {
                        "!!"
                    } else {
                        &t.handle
                    },
                    t.suffix
                ),
            });
        }
        let node = match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        pos: at,
                        message: "a policy file holds one YAML document, found a second".into(),
                    });
                }
                continue;
            }
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => continue,
            Event::Alias(_) => {
                return Err(SyntaxError {
                    pos: at,
                    message: "YAML aliases (`*name`) are not supported in policies".into(),
                })
            }
            Event::Scalar(value, style, _, _) => Node {
                kind: Kind::Scalar {
                    value,
                    plain: style == TScalarStyle::Plain,
                },
                pos: at,
            },
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError {
                        pos: at,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq(at, Vec::new())
                } else {
                    Frame::Map(at, Vec::new(), None)
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(p, items)) => Node {
                    kind: Kind::Seq(items),
                    pos: p,
                },
                // yaml-rust2 marks a block mapping where its first `:` is; a reader looks at
                // the first key (a flow mapping's `{` comes before it).
                Some(Frame::Map(p, items, _)) => {
                    let p = items.first().map_or(p, |(k, _)| k.pos.min(p));
                    Node {
                        kind: Kind::Map(items),
                        pos: p,
                    }
                }
                None => continue,
            },
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, items, key)) => match key.take() {
                None => *key = Some(node),
                Some(k) => items.push((k, node)),
            },
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let n = parse("a: 1\nb:\n  - x\n").unwrap().unwrap();
        let Kind::Map(items) = &n.kind else {
            panic!("a mapping")
        };
        assert_eq!(items[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(items[1].0.pos, Pos { line: 2, col: 1 });
        let Kind::Seq(seq) = &items[1].1.kind else {
            panic!("a list")
        };
        assert_eq!(seq[0].pos, Pos { line: 3, col: 5 });
    }

    #[test]
    fn tags_are_refused() {
        for (src, tag) in [
            ("a: !!null root\n", "!!null"),
            ("a: !!bool allow\n", "!!bool"),
            ("a: !!str 22\n", "!!str"),
            ("a: !x [1]\n", "!x"),
            ("!!map {a: 1}\n", "!!map"),
        ] {
            let e = parse(src).unwrap_err();
            assert_eq!(
                e.message,
                format!("YAML tags (`{tag}`) are not supported in policies"),
                "{src}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let src = "[".repeat(10_000);
        assert!(
            parse(&src).is_err(),
            "10,000 nested lists should be refused"
        );
        let src = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        assert_eq!(
            parse(&src).unwrap_err().message,
            "nesting deeper than 32 levels"
        );
    }
}
