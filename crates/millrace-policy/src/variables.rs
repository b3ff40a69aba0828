//! Policy variables: `${aws:username}`, `${key, 'default'}` and the escapes `${*}`, `${?}`,
//! `${$}`, replaced by values from the request in `Resource` and in string and ARN condition
//! values. Only documents with `"Version": "2012-10-17"` have variables; in older ones the text
//! is taken as written.

use crate::request::{key_values, Request};
use crate::wildcard::{self, Token};

/// A `Resource` or condition value, split into text and variables at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    /// The value as written in the policy.
    raw: String,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text as written; in a pattern its `*` and `?` are wildcards.
    Text(String),
    /// A character from `${*}`, `${?}` or `${$}`: always itself, never a wildcard.
    Escaped(char),
    /// `${key}` or `${key, 'default'}`.
    Variable {
        key: String,
        default: Option<String>,
    },
}

impl Template {
    /// Whether the template names a variable other than the principal's own (`aws:username`,
    /// `aws:userid`, `aws:PrincipalAccount`, `aws:PrincipalArn`), i.e. depends on the request.
    pub(crate) fn depends_on_request(&self) -> bool {
        self.pieces.iter().any(|piece| match piece {
            Piece::Variable { key, .. } => !matches!(
                key.to_ascii_lowercase().as_str(),
                "aws:username" | "aws:userid" | "aws:principalaccount" | "aws:principalarn"
            ),
            _ => false,
        })
    }

    /// Splits `raw` into text and variables; with `variables` false the whole value is text.
    ///
    /// A `${` that does not open a well-formed variable (no closing `}`, an empty name, a
    /// default that is not in single quotes) is kept as text.
    pub(crate) fn parse(raw: &str, variables: bool) -> Template {
        if !variables {
            return Template {
                raw: raw.to_owned(),
                pieces: vec![Piece::Text(raw.to_owned())],
            };
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = raw;
        while let Some(open) = rest.find("${") {
            let after_open = &rest[open + 2..];
            let parsed = after_open
                .find('}')
                .and_then(|close| Some((parse_variable(&after_open[..close])?, close)));
            let Some((piece, close)) = parsed else {
                text.push_str(&rest[..open + 2]);
                rest = after_open;
                continue;
            };
            text.push_str(&rest[..open]);
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
            rest = &after_open[close + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Template {
            raw: raw.to_owned(),
            pieces,
        }
    }

    /// The value as written in the policy.
    pub(crate) fn raw(&self) -> &str {
        &self.raw
    }

    /// The value with its variables replaced, as a wildcard pattern: `*` and `?` written in the
    /// policy are wildcards, those from escapes and from variable values are not. `None` when a
    /// variable has no single value in the request and no default.
    pub(crate) fn to_pattern(&self, request: &Request) -> Option<Vec<Token>> {
        let mut tokens = Vec::with_capacity(self.raw.len());
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => tokens.extend(text.chars().map(wildcard::wildcard_token)),
                Piece::Escaped(c) => tokens.push(Token::Literal(*c)),
                Piece::Variable { key, default } => {
                    let value = resolve(request, key, default.as_deref())?;
                    tokens.extend(value.chars().map(Token::Literal));
                }
            }
        }
        Some(tokens)
    }

    /// The value with its variables replaced, as plain text. `None` when a variable has no
    /// single value in the request and no default.
    pub(crate) fn to_text(&self, request: &Request) -> Option<String> {
        let mut out = String::with_capacity(self.raw.len());
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Escaped(c) => out.push(*c),
                Piece::Variable { key, default } => {
                    out.push_str(resolve(request, key, default.as_deref())?);
                }
            }
        }
        Some(out)
    }
}

/// Parses what stands between `${` and `}`.
fn parse_variable(inner: &str) -> Option<Piece> {
    match inner.trim() {
        "*" => return Some(Piece::Escaped('*')),
        "?" => return Some(Piece::Escaped('?')),
        "$" => return Some(Piece::Escaped('$')),
        _ => {}
    }
    let (key, default) = match inner.split_once(',') {
        None => (inner.trim(), None),
        Some((key, default)) => {
            let default = default.trim();
            let quoted = default
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))?;
            (key.trim(), Some(quoted.to_owned()))
        }
    };
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    Some(Piece::Variable {
        key: key.to_owned(),
        default,
    })
}

/// The value of the variable `key`: its single value in the request, else `default`.
/// A multi-valued key cannot be a variable, as in IAM.
fn resolve<'r>(request: &Request<'r>, key: &str, default: Option<&'r str>) -> Option<&'r str> {
    match key_values(request, key).as_deref() {
        Some([single]) => Some(*single),
        _ => default,
    }
}
