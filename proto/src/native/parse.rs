//! Parses one complete command line (without its line end) into a command or a SEND header.

use super::tokens::{Token, tokenize};
use super::{Command, DecodeError};

/// A line parsed as far as it goes without the literal body.
#[derive(Debug)]
pub(super) enum Parsed {
    Command(Command),
    /// A SEND whose body is still to come.
    Send(SendHeader),
}

/// The line of a SEND: everything but the body.
#[derive(Debug)]
pub(super) struct SendHeader {
    pub recipients: Vec<String>,
    pub subject: String,
    pub keep_sent: bool,
    pub len: u64,
    pub sync: bool,
}

/// Why a line was rejected, and the literal it announced (which a non-synchronizing client sends anyway).
#[derive(Debug)]
pub(super) struct LineError {
    pub err: DecodeError,
    pub literal: Option<(u64, bool)>,
}

impl From<DecodeError> for LineError {
    fn from(err: DecodeError) -> Self {
        LineError { err, literal: None }
    }
}

pub(super) fn parse_line(raw: &[u8], recipients_max: usize) -> Result<Parsed, LineError> {
    // A line refused for its bytes or its form may still end in a literal whose body the client sends
    // anyway.
    let bad_bytes = |err| LineError {
        err,
        literal: trailing_literal(raw),
    };
    let line = std::str::from_utf8(raw).map_err(|_| bad_bytes(DecodeError::NotUtf8))?;
    if line.chars().any(char::is_control) {
        return Err(bad_bytes(DecodeError::ControlCharacter));
    }
    let mut tokens = tokenize(line).map_err(bad_bytes)?;
    let literal = match tokens.last() {
        Some(Token::Literal { len, sync }) => Some((*len, *sync)),
        _ => None,
    };
    let with_literal = |err| LineError { err, literal };
    if literal.is_some() {
        tokens.pop();
    }
    let Some(keyword) = tokens.first().and_then(Token::text) else {
        return Err(with_literal(DecodeError::Syntax(
            "a command starts with a keyword",
        )));
    };
    let keyword = keyword.to_ascii_uppercase();
    let args = &tokens[1..];
    if keyword == "SEND" {
        return parse_send(args, literal, recipients_max).map_err(with_literal);
    }
    if literal.is_some() {
        return Err(with_literal(DecodeError::Syntax(
            "only SEND takes a literal",
        )));
    }
    parse_simple(&keyword, args)
        .map(Parsed::Command)
        .map_err(LineError::from)
}

/// A `{n}` or `{n+}` at the very end of a raw line.
fn trailing_literal(raw: &[u8]) -> Option<(u64, bool)> {
    let open = raw.iter().rposition(|&b| b == b'{')?;
    let text = std::str::from_utf8(&raw[open..]).ok()?;
    match tokenize(text) {
        Ok(tokens) => match tokens.as_slice() {
            [Token::Literal { len, sync }] => Some((*len, *sync)),
            _ => None,
        },
        Err(_) => None,
    }
}

fn parse_send(
    args: &[Token],
    literal: Option<(u64, bool)>,
    recipients_max: usize,
) -> Result<Parsed, DecodeError> {
    const USAGE: &str = "usage: SEND <rcpt>[,<rcpt>...] [<subject> [KEEP]] {<size>}";
    let Some((len, sync)) = literal else {
        return Err(DecodeError::Syntax(USAGE));
    };
    let (rcpts, subject, keep_sent) = match args {
        [r] => (r, None, false),
        [r, s] => (r, Some(s), false),
        [r, s, k] if k.text().is_some_and(|k| k.eq_ignore_ascii_case("KEEP")) => (r, Some(s), true),
        _ => return Err(DecodeError::Syntax(USAGE)),
    };
    let rcpts = rcpts.text().ok_or(DecodeError::Syntax(USAGE))?;
    let recipients: Vec<String> = rcpts.split(',').map(str::to_string).collect();
    if recipients.iter().any(String::is_empty) {
        return Err(DecodeError::Syntax("empty recipient in list"));
    }
    if recipients.len() > recipients_max {
        return Err(DecodeError::TooManyRecipients {
            max: recipients_max,
        });
    }
    let subject = subject
        .map(|s| s.text().unwrap_or_default().to_string())
        .unwrap_or_default();
    Ok(Parsed::Send(SendHeader {
        recipients,
        subject,
        keep_sent,
        len,
        sync,
    }))
}

fn parse_simple(keyword: &str, args: &[Token]) -> Result<Command, DecodeError> {
    let texts: Vec<&str> = args.iter().filter_map(Token::text).collect();
    let command = match (keyword, texts.as_slice()) {
        ("JMAIL", [version, ..]) => {
            let (major, minor) = parse_version(version)?;
            Command::Hello { major, minor }
        }
        ("JMAIL", []) => return Err(DecodeError::Syntax("usage: JMAIL <major>.<minor>")),
        ("LOGIN", [user, password]) => Command::Login {
            user: user.to_string(),
            password: password.to_string(),
        },
        ("LOGIN", _) => return Err(DecodeError::Syntax("usage: LOGIN <user> <password>")),
        ("LIST", []) => Command::List { since: 0 },
        ("LIST", [since]) => Command::List {
            since: modseq(since)?,
        },
        ("WATCH", []) => Command::Watch { since: 0 },
        ("WATCH", [since]) => Command::Watch {
            since: modseq(since)?,
        },
        ("READ", [id]) => Command::Read { id: id_number(id)? },
        ("DELETE", [id]) => Command::Delete { id: id_number(id)? },
        ("MARK", [id, flag]) => Command::Mark {
            id: id_number(id)?,
            seen: match flag.to_ascii_uppercase().as_str() {
                "SEEN" => true,
                "UNSEEN" => false,
                _ => return Err(DecodeError::Syntax("usage: MARK <id> SEEN|UNSEEN")),
            },
        },
        ("FOLDERS", []) => Command::Folders,
        ("SELECT", [folder]) => Command::Select {
            folder: folder.to_string(),
        },
        ("CREATE", [folder]) => Command::Create {
            folder: folder.to_string(),
        },
        ("RENAME", [from, to]) => Command::Rename {
            from: from.to_string(),
            to: to.to_string(),
        },
        ("REMOVE", [folder]) => Command::Remove {
            folder: folder.to_string(),
        },
        ("COPY", [id, folder]) => Command::Copy {
            id: id_number(id)?,
            folder: folder.to_string(),
        },
        ("MOVE", [id, folder]) => Command::Move {
            id: id_number(id)?,
            folder: folder.to_string(),
        },
        ("DONE", []) => Command::Done,
        ("NOOP", []) => Command::Noop,
        ("CAPA", []) => Command::Capa,
        ("STARTTLS", []) => Command::StartTls,
        ("LOGOUT", []) => Command::Logout,
        (
            "LIST" | "WATCH" | "READ" | "DELETE" | "MARK" | "DONE" | "NOOP" | "CAPA" | "LOGOUT"
            | "STARTTLS" | "FOLDERS" | "SELECT" | "CREATE" | "RENAME" | "REMOVE" | "COPY" | "MOVE",
            _,
        ) => {
            return Err(DecodeError::Syntax(
                "wrong arguments; see CAPA or docs/protocol.md",
            ));
        }
        _ => return Err(DecodeError::UnknownCommand),
    };
    Ok(command)
}

fn parse_version(v: &str) -> Result<(u32, u32), DecodeError> {
    const BAD: DecodeError = DecodeError::Syntax("a version is <major>.<minor>, e.g. 2.0");
    let (major, minor) = v.split_once('.').ok_or(BAD)?;
    Ok((
        major.parse().map_err(|_| BAD)?,
        minor.parse().map_err(|_| BAD)?,
    ))
}

fn number(s: &str) -> Result<u64, DecodeError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeError::Syntax("expected a decimal number"));
    }
    s.parse()
        .map_err(|_| DecodeError::Syntax("number out of range"))
}

/// Modseqs are stored as signed 64-bit integers, so they stop at 2^63 - 1.
fn modseq(s: &str) -> Result<u64, DecodeError> {
    number(s)?
        .try_into()
        .ok()
        .filter(|&n: &i64| n >= 0)
        .map(|n| n as u64)
        .ok_or(DecodeError::Syntax("a modseq is 0 to 9223372036854775807"))
}

fn id_number(s: &str) -> Result<u32, DecodeError> {
    let n = number(s)?;
    u32::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .ok_or(DecodeError::Syntax("a message id is 1 to 4294967295"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: &str) -> Result<Command, DecodeError> {
        match parse_line(line.as_bytes(), 10) {
            Ok(Parsed::Command(c)) => Ok(c),
            Ok(Parsed::Send(_)) => panic!("unexpected send"),
            Err(e) => Err(e.err),
        }
    }

    #[test]
    fn every_simple_command() {
        assert_eq!(
            cmd("jmail 2.1 jmail-cli/0.1"),
            Ok(Command::Hello { major: 2, minor: 1 })
        );
        assert_eq!(
            cmd(r#"LOGIN bob "pa ss""#),
            Ok(Command::Login {
                user: "bob".into(),
                password: "pa ss".into()
            })
        );
        assert_eq!(cmd("LIST"), Ok(Command::List { since: 0 }));
        assert_eq!(cmd("LIST 42"), Ok(Command::List { since: 42 }));
        assert_eq!(cmd("WATCH 7"), Ok(Command::Watch { since: 7 }));
        assert_eq!(cmd("READ 3"), Ok(Command::Read { id: 3 }));
        assert_eq!(
            cmd("MARK 3 unseen"),
            Ok(Command::Mark { id: 3, seen: false })
        );
        assert_eq!(cmd("DELETE 9"), Ok(Command::Delete { id: 9 }));
        assert_eq!(cmd("DONE"), Ok(Command::Done));
        assert_eq!(cmd("CAPA"), Ok(Command::Capa));
        assert_eq!(cmd("starttls"), Ok(Command::StartTls));
        assert_eq!(cmd("LOGOUT"), Ok(Command::Logout));
        assert_eq!(cmd("folders"), Ok(Command::Folders));
        assert_eq!(
            cmd(r#"SELECT "Work/2026 plans""#),
            Ok(Command::Select {
                folder: "Work/2026 plans".into()
            })
        );
        assert_eq!(
            cmd("RENAME a b/c"),
            Ok(Command::Rename {
                from: "a".into(),
                to: "b/c".into()
            })
        );
        assert_eq!(
            cmd("MOVE 7 Archive"),
            Ok(Command::Move {
                id: 7,
                folder: "Archive".into()
            })
        );
        assert_eq!(
            cmd("COPY 7 Trash"),
            Ok(Command::Copy {
                id: 7,
                folder: "Trash".into()
            })
        );
        assert!(matches!(cmd("COPY x Trash"), Err(DecodeError::Syntax(_))));
        assert!(matches!(cmd("SELECT"), Err(DecodeError::Syntax(_))));
    }

    #[test]
    fn bad_arguments() {
        assert_eq!(cmd("FROB"), Err(DecodeError::UnknownCommand));
        assert!(matches!(cmd("READ 0"), Err(DecodeError::Syntax(_))));
        assert!(matches!(cmd("READ -1"), Err(DecodeError::Syntax(_))));
        assert!(matches!(
            cmd("READ 99999999999"),
            Err(DecodeError::Syntax(_))
        ));
        assert!(matches!(cmd("LIST 1 2"), Err(DecodeError::Syntax(_))));
        assert!(matches!(cmd("JMAIL two"), Err(DecodeError::Syntax(_))));
        assert!(matches!(cmd("NOOP {3}"), Err(DecodeError::Syntax(_))));
        assert!(matches!(
            cmd("LIST 9223372036854775808"),
            Err(DecodeError::Syntax(_))
        ));
        assert_eq!(
            cmd("LIST 9223372036854775807"),
            Ok(Command::List {
                since: i64::MAX as u64
            })
        );
        assert_eq!(cmd("NO\tOP"), Err(DecodeError::ControlCharacter));
    }

    #[test]
    fn send_header() {
        let Ok(Parsed::Send(h)) = parse_line(b"send bob,carol@x.org \"Lunch?\" {12+}", 10) else {
            panic!("not a send")
        };
        assert_eq!(h.recipients, vec!["bob", "carol@x.org"]);
        assert_eq!((h.subject.as_str(), h.len, h.sync), ("Lunch?", 12, false));
        assert!(!h.keep_sent);
        let Ok(Parsed::Send(h)) = parse_line(b"SEND bob \"\" keep {1}", 10) else {
            panic!("not a send")
        };
        assert!(h.keep_sent);
        let err = parse_line(b"SEND bob hi KEPT {1}", 10).unwrap_err();
        assert!(matches!(err.err, DecodeError::Syntax(_)));
        let err = parse_line(b"SEND a,,b {1}", 10).unwrap_err();
        assert_eq!(err.literal, Some((1, true)));
        let err = parse_line(b"SEND \xff {12+}", 10).unwrap_err();
        assert_eq!(
            (err.err, err.literal),
            (DecodeError::NotUtf8, Some((12, false)))
        );
    }
}
