//! Splits one command line into tokens: atoms, quoted strings and a trailing literal marker.

use super::DecodeError;

/// One lexical token of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A run of printable characters without spaces or quotes.
    Atom(String),
    /// A `"..."` string with `\"` and `\\` escapes removed.
    Quoted(String),
    /// `{n}` (synchronizing) or `{n+}` (non-synchronizing); only valid as the last token.
    Literal { len: u64, sync: bool },
}

impl Token {
    /// The token's text when it is an atom or a quoted string.
    pub fn text(&self) -> Option<&str> {
        match self {
            Token::Atom(s) | Token::Quoted(s) => Some(s),
            Token::Literal { .. } => None,
        }
    }
}

/// Tokenizes a line that has already been checked for UTF-8 and control characters.
pub fn tokenize(line: &str) -> Result<Vec<Token>, DecodeError> {
    let mut tokens = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            return Ok(tokens);
        }
        if let Some(literal) = parse_literal(rest)? {
            tokens.push(literal);
            return Ok(tokens);
        }
        let (token, after) = if let Some(body) = rest.strip_prefix('"') {
            quoted(body)?
        } else {
            let end = rest.find([' ', '"']).unwrap_or(rest.len());
            (Token::Atom(rest[..end].to_string()), &rest[end..])
        };
        tokens.push(token);
        if !(after.is_empty() || after.starts_with(' ')) {
            return Err(DecodeError::Syntax("tokens must be separated by a space"));
        }
        rest = after;
    }
}

/// A literal marker must end the line: `{123}` or `{123+}`.
fn parse_literal(rest: &str) -> Result<Option<Token>, DecodeError> {
    let Some(inner) = rest.strip_prefix('{') else {
        return Ok(None);
    };
    let Some(inner) = inner.strip_suffix('}') else {
        return Err(DecodeError::Syntax("a literal {n} must end the line"));
    };
    let (digits, sync) = match inner.strip_suffix('+') {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeError::Syntax("a literal length is 1 to 19 digits"));
    }
    let len = digits
        .parse()
        .map_err(|_| DecodeError::Syntax("literal length out of range"))?;
    Ok(Some(Token::Literal { len, sync }))
}

/// Reads a quoted string whose opening quote is already consumed.
fn quoted(body: &str) -> Result<(Token, &str), DecodeError> {
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((Token::Quoted(out), &body[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                _ => return Err(DecodeError::Syntax("only \\\" and \\\\ may be escaped")),
            },
            c => out.push(c),
        }
    }
    Err(DecodeError::Syntax("unterminated quoted string"))
}

/// Writes `s` as a quoted string, escaping `"` and `\`; line breaks become spaces.
pub fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' | '\0' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoms_quoted_and_literal() {
        let t = tokenize(r#"SEND bob,carol "hi \"there\"" {12+}"#).unwrap();
        assert_eq!(
            t,
            vec![
                Token::Atom("SEND".into()),
                Token::Atom("bob,carol".into()),
                Token::Quoted("hi \"there\"".into()),
                Token::Literal {
                    len: 12,
                    sync: false
                },
            ]
        );
    }

    #[test]
    fn literal_must_end_line() {
        assert!(tokenize("SEND {3} x").is_err());
        assert!(tokenize("SEND {}").is_err());
        assert!(tokenize("SEND {99999999999999999999}").is_err());
    }

    #[test]
    fn unterminated_and_glued_quotes_fail() {
        assert!(tokenize(r#"LOGIN "bob"#).is_err());
        assert!(tokenize(r#"LOGIN "bob"x"#).is_err());
        assert!(tokenize(r#"LOGIN "a\b""#).is_err());
    }

    #[test]
    fn quote_round_trips() {
        let mut s = String::new();
        quote("a \"b\" \\ c\r\nd", &mut s);
        assert_eq!(s, r#""a \"b\" \\ c  d""#);
        assert_eq!(
            tokenize(&s).unwrap(),
            vec![Token::Quoted("a \"b\" \\ c  d".into())]
        );
    }
}
