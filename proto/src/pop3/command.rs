//! POP3 commands: keyword (case-insensitive), then arguments separated by spaces.

use super::COMMAND_BYTES_MAX;
use crate::sasl::Mechanism;

/// One client command. Message numbers are 1-based, as the client sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    /// The password is the rest of the line: it may contain spaces (RFC 1939 §7).
    Pass(String),
    /// `mechanism` is `None` for a mechanism Jmail does not know; `initial` is the initial response (RFC
    /// 5034), still base64.
    Auth {
        mechanism: Option<Mechanism>,
        initial: Option<Vec<u8>>,
    },
    /// `AUTH` alone: the mechanisms, one a line (as the draft before RFC 5034 had it, and older
    /// clients still ask).
    AuthMechanisms,
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Top {
        msg: u32,
        lines: u32,
    },
    Uidl(Option<u32>),
    Quit,
    Capa,
    Stls,
}

/// Why a line is not a command. Each becomes an `-ERR` reply; the session goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("command line longer than {COMMAND_BYTES_MAX} bytes")]
    TooLong,
    #[error("command contains a control character")]
    ControlCharacter,
    #[error("command is not valid UTF-8")]
    NotUtf8,
    #[error("unknown command")]
    Unknown,
    #[error("{0}")]
    Syntax(&'static str),
}

/// Parses one line (line end removed). AUTH may be longer than [`COMMAND_BYTES_MAX`] (its initial response
/// is bounded by the decoder's line limit and by [`crate::sasl::RESPONSE_BYTES_MAX`]); nothing else may.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    if line.iter().any(|&b| b < b' ' || b == 0x7f) {
        return Err(CommandError::ControlCharacter);
    }
    let text = std::str::from_utf8(line).map_err(|_| CommandError::NotUtf8)?;
    let (keyword, rest) = text.split_once(' ').unwrap_or((text, ""));
    let keyword = keyword.to_ascii_uppercase();
    if keyword != "AUTH" && line.len() + 2 > COMMAND_BYTES_MAX {
        return Err(CommandError::TooLong);
    }
    let args: Vec<&str> = rest.split(' ').filter(|a| !a.is_empty()).collect();
    let none = |c: Command| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err(CommandError::Syntax("this command takes no arguments"))
        }
    };
    match keyword.as_str() {
        "USER" => match args.as_slice() {
            [name] => Ok(Command::User((*name).to_string())),
            _ => Err(CommandError::Syntax("expected USER name")),
        },
        "PASS" if !rest.is_empty() => Ok(Command::Pass(rest.to_string())),
        "PASS" => Err(CommandError::Syntax("expected PASS password")),
        "AUTH" => match args.as_slice() {
            [] => Ok(Command::AuthMechanisms),
            [mechanism] => Ok(auth(mechanism, None)),
            [mechanism, initial] => Ok(auth(mechanism, Some(initial))),
            _ => Err(CommandError::Syntax(
                "expected AUTH mechanism [initial-response]",
            )),
        },
        "STAT" => none(Command::Stat),
        "LIST" => optional_msg(&args).map(Command::List),
        "RETR" => msg_only(&args).map(Command::Retr),
        "DELE" => msg_only(&args).map(Command::Dele),
        "NOOP" => none(Command::Noop),
        "RSET" => none(Command::Rset),
        "TOP" => match args.as_slice() {
            [msg, lines] => Ok(Command::Top {
                msg: msg_number(msg)?,
                lines: number(lines).ok_or(CommandError::Syntax("expected a number of lines"))?,
            }),
            _ => Err(CommandError::Syntax("expected TOP msg lines")),
        },
        "UIDL" => optional_msg(&args).map(Command::Uidl),
        "QUIT" => none(Command::Quit),
        "CAPA" => none(Command::Capa),
        "STLS" => none(Command::Stls),
        _ => Err(CommandError::Unknown),
    }
}

fn auth(mechanism: &str, initial: Option<&str>) -> Command {
    Command::Auth {
        mechanism: Mechanism::parse(mechanism),
        initial: initial.map(|i| i.as_bytes().to_vec()),
    }
}

/// A decimal number of ASCII digits only (no sign), that fits a u32.
fn number(arg: &str) -> Option<u32> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    arg.parse().ok()
}

fn msg_number(arg: &str) -> Result<u32, CommandError> {
    match number(arg) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(CommandError::Syntax("expected a message number")),
    }
}

fn msg_only(args: &[&str]) -> Result<u32, CommandError> {
    match args {
        [msg] => msg_number(msg),
        _ => Err(CommandError::Syntax("expected a message number")),
    }
}

fn optional_msg(args: &[&str]) -> Result<Option<u32>, CommandError> {
    match args {
        [] => Ok(None),
        [msg] => msg_number(msg).map(Some),
        _ => Err(CommandError::Syntax("expected at most a message number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_case_insensitive_and_arguments_checked() {
        assert_eq!(parse_command(b"stat"), Ok(Command::Stat));
        assert_eq!(parse_command(b"StAt "), Ok(Command::Stat));
        assert_eq!(parse_command(b"USER bob"), Ok(Command::User("bob".into())));
        assert_eq!(
            parse_command(b"pass  two words "),
            Ok(Command::Pass(" two words ".into()))
        );
        assert_eq!(parse_command(b"LIST"), Ok(Command::List(None)));
        assert_eq!(parse_command(b"list 007"), Ok(Command::List(Some(7))));
        assert_eq!(
            parse_command(b"RETR 4294967295"),
            Ok(Command::Retr(u32::MAX))
        );
        assert_eq!(
            parse_command(b"TOP 1 0"),
            Ok(Command::Top { msg: 1, lines: 0 })
        );
        assert_eq!(parse_command(b"uidl 2"), Ok(Command::Uidl(Some(2))));
        let bad_msg = Err(CommandError::Syntax("expected a message number"));
        for line in [
            &b"RETR 0"[..],
            b"RETR +1",
            b"RETR -1",
            b"RETR 4294967296",
            b"DELE",
            b"DELE 1 2",
            b"RETR x",
            b"TOP 0 1",
        ] {
            assert_eq!(parse_command(line), bad_msg, "{:?}", line);
        }
        assert_eq!(
            parse_command(b"TOP 1 -3"),
            Err(CommandError::Syntax("expected a number of lines"))
        );
        assert_eq!(
            parse_command(b"STAT 1"),
            Err(CommandError::Syntax("this command takes no arguments"))
        );
        assert_eq!(parse_command(b"APOP bob x"), Err(CommandError::Unknown));
        assert_eq!(parse_command(b""), Err(CommandError::Unknown));
        assert_eq!(
            parse_command(b"ST\0AT"),
            Err(CommandError::ControlCharacter)
        );
        assert_eq!(parse_command(b"USER \xff"), Err(CommandError::NotUtf8));
    }

    #[test]
    fn auth_and_the_length_limit() {
        assert_eq!(
            parse_command(b"auth plain"),
            Ok(Command::Auth {
                mechanism: Some(Mechanism::Plain),
                initial: None
            })
        );
        let long = format!("AUTH PLAIN {}", "A".repeat(600));
        assert_eq!(
            parse_command(long.as_bytes()),
            Ok(Command::Auth {
                mechanism: Some(Mechanism::Plain),
                initial: Some(vec![b'A'; 600])
            })
        );
        assert_eq!(
            parse_command(b"AUTH X-OTHER"),
            Ok(Command::Auth {
                mechanism: None,
                initial: None
            })
        );
        let fits = format!("USER {}", "a".repeat(COMMAND_BYTES_MAX - 7));
        assert!(parse_command(fits.as_bytes()).is_ok());
        let over = format!("USER {}", "a".repeat(COMMAND_BYTES_MAX - 6));
        assert_eq!(parse_command(over.as_bytes()), Err(CommandError::TooLong));
    }
}
