//! What users are shown of any RFC 5322 message, whatever delivered it: sender, subject, date and text
//! (the first text part, HTML rendered as text), parsed with mail-parser. Pure and total: any bytes give an
//! answer, and unparsable mail shows its raw bytes.

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// What a reader is shown of a message from any source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub from: String,
    pub to: String,
    pub date: String,
    pub subject: String,
    /// The first text part (HTML rendered as text), or the decoded body bytes of a single non-HTML part.
    pub body: Vec<u8>,
}

/// Parses stored bytes for display. Never fails: unparsable mail shows its raw bytes as the body.
pub fn render(raw: &[u8]) -> Rendered {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Rendered {
            from: String::new(),
            to: String::new(),
            date: String::new(),
            subject: String::new(),
            body: raw.to_vec(),
        };
    };
    let addresses = |a: Option<&mail_parser::Address<'_>>| {
        a.map(|a| {
            a.iter()
                .filter_map(|addr| addr.address.as_deref().or(addr.name.as_deref()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
    };
    // A single part is shown as its exact (decoded) bytes, unless it is HTML, which is shown as text.
    let single_html = msg.parts.len() == 1 && matches!(msg.parts[0].body, PartType::Html(_));
    let body = if msg.parts.len() == 1 && !single_html {
        msg.parts[0].contents().to_vec()
    } else {
        msg.body_text(0)
            .map(|t| t.into_owned().into_bytes())
            .unwrap_or_default()
    };
    Rendered {
        from: addresses(msg.from()),
        to: addresses(msg.to()),
        date: msg.date().map(|d| d.to_rfc3339()).unwrap_or_default(),
        subject: msg.subject().unwrap_or_default().to_string(),
        body,
    }
}

/// True when the message's single part is declared as text (so a terminal may print it).
pub fn is_text(raw: &[u8]) -> bool {
    MessageParser::default()
        .parse(raw)
        .map(|m| {
            m.parts.len() > 1
                || m.parts[0]
                    .content_type()
                    .is_none_or(|c| c.ctype() == "text")
        })
        .unwrap_or(true)
}

/// What a list shows of a message from elsewhere (an mbox, a Maildir, later SMTP): sender, subject,
/// Message-ID and date, parsed from its headers. Unparsable headers give empty fields, never an error.
pub fn summarize(raw: &[u8]) -> (String, String, Option<String>, Option<i64>) {
    let Some(msg) = MessageParser::default().parse_headers(raw) else {
        return (String::new(), String::new(), None, None);
    };
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address.as_deref().or(a.name.as_deref()))
        .unwrap_or_default()
        .to_string();
    let subject = msg.subject().unwrap_or_default().to_string();
    let message_id = msg.message_id().map(str::to_string);
    let date = msg.date().map(|d| d.to_timestamp() * 1_000_000);
    (from, subject, message_id, date)
}

/// Who a message says it is from: every address of every `From` and `Sender` header (a message may carry
/// several, and each counts), for checking submitted mail against its sender's own addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authors {
    pub addresses: Vec<String>,
    /// How many `From` headers there are.
    pub from_headers: usize,
    /// A `From` or `Sender` header, or an entry of one, that names no readable address.
    pub unreadable: bool,
}

/// The [`Authors`] of a message, from its header block only.
pub fn authors(raw: &[u8]) -> Authors {
    use mail_parser::{HeaderName, HeaderValue};
    let mut authors = Authors::default();
    let Some(msg) = MessageParser::default().parse_headers(raw) else {
        authors.unreadable = true;
        return authors;
    };
    for header in msg.headers() {
        let is_from = matches!(header.name, HeaderName::From);
        if !is_from && !matches!(header.name, HeaderName::Sender) {
            continue;
        }
        authors.from_headers += usize::from(is_from);
        match &header.value {
            HeaderValue::Address(list) => {
                let mut any = false;
                for addr in list.iter() {
                    any = true;
                    match addr.address.as_deref() {
                        Some(a) if a.contains('@') => authors.addresses.push(a.to_string()),
                        _ => authors.unreadable = true,
                    }
                }
                authors.unreadable |= !any;
            }
            _ => authors.unreadable = true,
        }
    }
    authors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_are_every_from_and_sender_address() {
        let a = authors(
            b"From: Alice <alice@x>\r\nSender: bob@x\r\nSubject: s\r\n\r\nFrom: carol@x\r\n",
        );
        assert_eq!(a.addresses, ["alice@x", "bob@x"]);
        assert_eq!((a.from_headers, a.unreadable), (1, false));
        let two = authors(b"From: alice@x\r\nFrom: carol@x\r\n\r\n");
        assert_eq!(two.addresses, ["alice@x", "carol@x"]);
        assert_eq!(two.from_headers, 2);
        let group = authors(b"From: team: alice@x, carol@x;\r\n\r\n");
        assert_eq!(group.addresses, ["alice@x", "carol@x"]);
        assert!(authors(b"From: nobody\r\n\r\n").unreadable);
        assert!(authors(b"From:\r\n\r\n").unreadable);
        assert_eq!(authors(b"Subject: none\r\n\r\nhi").from_headers, 0);
    }
}
