//! Reply lines of the native protocol: how a server writes them and how a client reads them back.

use super::tokens::{Token, quote, tokenize};

/// One message as LIST and WATCH describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The message's id in the mailbox (its UID): stable, never reused.
    pub id: u32,
    /// The change sequence number of the message's last change.
    pub modseq: u64,
    pub seen: bool,
    /// Size in bytes of the stored RFC 5322 message: what READ sends.
    pub size: u64,
    /// When it arrived, RFC 3339 in UTC (`2026-11-30T12:00:00Z`).
    pub date: String,
    pub from: String,
    pub subject: String,
}

/// Writes `* MSG <id> <modseq> SEEN|UNSEEN <size> <date> "<from>" "<subject>"` with its line end.
pub fn summary_line(s: &Summary) -> String {
    let mut line = format!(
        "* MSG {} {} {} {} {} ",
        s.id,
        s.modseq,
        if s.seen { "SEEN" } else { "UNSEEN" },
        s.size,
        s.date
    );
    quote(&s.from, &mut line);
    line.push(' ');
    quote(&s.subject, &mut line);
    line.push_str("\r\n");
    line
}

/// One folder as FOLDERS lists it (2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// Its full name, levels separated by `/`.
    pub name: String,
    /// Its special use (`inbox`, `sent`, `drafts`, `trash`, `junk`, `archive`), if any.
    pub role: Option<String>,
    pub messages: u64,
    pub unseen: u64,
    /// Stored bytes of its messages.
    pub bytes: u64,
}

/// Writes `* FOLDER "<name>" <role|-> <messages> <unseen> <bytes>` with its line end.
pub fn folder_line(f: &Folder) -> String {
    let mut line = String::from("* FOLDER ");
    quote(&f.name, &mut line);
    line.push_str(&format!(
        " {} {} {} {}\r\n",
        f.role.as_deref().unwrap_or("-"),
        f.messages,
        f.unseen,
        f.bytes
    ));
    line
}

/// An untagged (`* `) line, as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untagged {
    Msg(Summary),
    /// `* GONE <id>`: the message was deleted.
    Gone(u32),
    /// `* MESSAGE <id> {<n>}`: `n` bytes of message follow, then a line end.
    Message {
        id: u32,
        len: u64,
    },
    /// `* CAPA <name> [<value>]`.
    Capa(String, String),
    Folder(Folder),
}

/// Status of a final reply line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
    Bye,
}

/// A line from the server, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Untagged(Untagged),
    /// `+ <text>`: a continuation (send the literal, or WATCH has started).
    Continue(String),
    /// `OK|NO|BAD|BYE [<CODE>] <text>`. `code` is empty on OK.
    Final {
        status: Status,
        code: String,
        text: String,
    },
}

/// Parses one server line (without its line end). `None` when it is not a well-formed reply.
pub fn parse_line(line: &str) -> Option<Line> {
    if let Some(rest) = line
        .strip_prefix("+ ")
        .or(line.strip_prefix("+").filter(|r| r.is_empty()))
    {
        return Some(Line::Continue(rest.to_string()));
    }
    if let Some(rest) = line.strip_prefix("* ") {
        return parse_untagged(rest).map(Line::Untagged);
    }
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let status = match word {
        "OK" => Status::Ok,
        "NO" => Status::No,
        "BAD" => Status::Bad,
        "BYE" => Status::Bye,
        _ => return None,
    };
    let (code, text) = if status == Status::Ok {
        (String::new(), rest.to_string())
    } else {
        let (c, t) = rest.split_once(' ').unwrap_or((rest, ""));
        (c.to_string(), t.to_string())
    };
    Some(Line::Final { status, code, text })
}

fn parse_untagged(rest: &str) -> Option<Untagged> {
    let tokens = tokenize(rest).ok()?;
    let text = |i: usize| tokens.get(i).and_then(Token::text);
    match text(0)? {
        "MSG" if tokens.len() == 8 => Some(Untagged::Msg(Summary {
            id: text(1)?.parse().ok()?,
            modseq: text(2)?.parse().ok()?,
            seen: match text(3)? {
                "SEEN" => true,
                "UNSEEN" => false,
                _ => return None,
            },
            size: text(4)?.parse().ok()?,
            date: text(5)?.to_string(),
            from: text(6)?.to_string(),
            subject: text(7)?.to_string(),
        })),
        "GONE" => Some(Untagged::Gone(text(1)?.parse().ok()?)),
        "MESSAGE" => match tokens.get(2)? {
            Token::Literal { len, .. } => Some(Untagged::Message {
                id: text(1)?.parse().ok()?,
                len: *len,
            }),
            _ => None,
        },
        "FOLDER" if tokens.len() == 6 => Some(Untagged::Folder(Folder {
            name: text(1)?.to_string(),
            role: Some(text(2)?).filter(|r| *r != "-").map(str::to_string),
            messages: text(3)?.parse().ok()?,
            unseen: text(4)?.parse().ok()?,
            bytes: text(5)?.parse().ok()?,
        })),
        "CAPA" => Some(Untagged::Capa(
            text(1)?.to_string(),
            text(2).unwrap_or_default().to_string(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_round_trips() {
        let s = Summary {
            id: 7,
            modseq: 19,
            seen: false,
            size: 321,
            date: "2026-11-30T12:00:00Z".into(),
            from: "alice@localhost".into(),
            subject: "say \"hi\"".into(),
        };
        let line = summary_line(&s);
        assert_eq!(
            line,
            "* MSG 7 19 UNSEEN 321 2026-11-30T12:00:00Z \"alice@localhost\" \"say \\\"hi\\\"\"\r\n"
        );
        assert_eq!(
            parse_line(line.trim_end()),
            Some(Line::Untagged(Untagged::Msg(s)))
        );
    }

    #[test]
    fn folder_round_trips() {
        let f = Folder {
            name: "Work/\"Q1\" plans".into(),
            role: None,
            messages: 3,
            unseen: 1,
            bytes: 2048,
        };
        let line = folder_line(&f);
        assert_eq!(line, "* FOLDER \"Work/\\\"Q1\\\" plans\" - 3 1 2048\r\n");
        assert_eq!(
            parse_line(line.trim_end()),
            Some(Line::Untagged(Untagged::Folder(f)))
        );
        let inbox = "* FOLDER \"INBOX\" inbox 0 0 0";
        let Some(Line::Untagged(Untagged::Folder(f))) = parse_line(inbox) else {
            panic!("not a folder line")
        };
        assert_eq!(f.role.as_deref(), Some("inbox"));
    }

    #[test]
    fn finals_and_continuations() {
        assert_eq!(
            parse_line("NO AUTH invalid user name or password"),
            Some(Line::Final {
                status: Status::No,
                code: "AUTH".into(),
                text: "invalid user name or password".into()
            })
        );
        assert_eq!(
            parse_line("OK LIST 5"),
            Some(Line::Final {
                status: Status::Ok,
                code: String::new(),
                text: "LIST 5".into()
            })
        );
        assert_eq!(
            parse_line("+ go ahead"),
            Some(Line::Continue("go ahead".into()))
        );
        assert_eq!(
            parse_line("* MESSAGE 3 {120}"),
            Some(Line::Untagged(Untagged::Message { id: 3, len: 120 }))
        );
        assert_eq!(parse_line("hello"), None);
    }
}
