//! What users are shown of any RFC 5322 message, whatever delivered it: sender, subject, date and text
//! (the first text part, HTML rendered as text), parsed with mail-parser. Pure and total: any bytes give an
//! answer, and unparsable mail shows its raw bytes.

use std::sync::LazyLock;

use mail_parser::{HeaderName, MessageParser, MimeHeaders, PartType};

/// What a reader is shown of a message from any source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Each sender as `Name <address>`, or the bare address when there is no name.
    pub from: String,
    pub to: String,
    pub date: String,
    pub subject: String,
    /// The first text part (HTML rendered as text), or the decoded body bytes of a single non-HTML part.
    pub body: Vec<u8>,
    /// The body is text a terminal may print (not the bytes of a single binary part).
    pub body_is_text: bool,
    /// Every attachment, in order; [`attachment_contents`] gives the bytes of one.
    pub attachments: Vec<Attachment>,
    /// What the receiving server found of the sender's authenticity (its Authentication-Results),
    /// in words; `None` for mail it did not check (a local user's).
    pub verified: Option<String>,
}

/// What a list of attachments shows of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name the sender gave, if any.
    pub name: Option<String>,
    /// `type/subtype`, `application/octet-stream` when undeclared.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: usize,
}

impl Rendered {
    /// The message as a terminal shows it: a few headers, a blank line, the text with LF line ends, and
    /// a numbered list of attachments. Control characters, which could drive the terminal (escape
    /// sequences in a stranger's mail), are shown as U+FFFD; tabs and line ends are kept.
    pub fn to_terminal_text(&self) -> String {
        let mut out = format!("From: {}\n", printable(&self.from));
        if let Some(verified) = &self.verified {
            out.push_str(&format!("Verified: {}\n", printable(verified)));
        }
        out.push_str(&format!(
            "To: {}\nDate: {}\nSubject: {}\n\n",
            printable(&self.to),
            printable(&self.date),
            printable(&self.subject)
        ));
        if self.body_is_text {
            let body = String::from_utf8_lossy(&self.body).replace("\r\n", "\n");
            out.push_str(&printable(&body));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        } else {
            out.push_str(&format!(
                "({} bytes of binary content; see --raw)\n",
                self.body.len()
            ));
        }
        if !self.attachments.is_empty() {
            out.push_str("\nAttachments:\n");
            for (i, a) in self.attachments.iter().enumerate() {
                out.push_str(&format!(
                    "  {}. {} ({}, {} bytes)\n",
                    i + 1,
                    printable(a.name.as_deref().unwrap_or("(no name)")),
                    printable(&a.content_type),
                    a.size
                ));
            }
        }
        out
    }
}

/// `text` with every control character but line feed and tab replaced by U+FFFD.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

fn attachment_of(part: &mail_parser::MessagePart<'_>) -> Attachment {
    Attachment {
        name: part.attachment_name().map(str::to_string),
        content_type: part.content_type().map_or_else(
            || "application/octet-stream".to_string(),
            |c| match c.subtype() {
                Some(sub) => format!("{}/{}", c.ctype(), sub),
                None => c.ctype().to_string(),
            },
        ),
        size: part.contents().len(),
    }
}

/// The decoded bytes of the `index`th attachment (from 0, as [`Rendered::attachments`] lists them).
pub fn attachment_contents(raw: &[u8], index: usize) -> Option<Vec<u8>> {
    let msg = MessageParser::default().parse(raw)?;
    msg.attachments()
        .nth(index)
        .map(|part| part.contents().to_vec())
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
            body_is_text: std::str::from_utf8(raw).is_ok(),
            attachments: Vec::new(),
            verified: None,
        };
    };
    let addresses = |a: Option<&mail_parser::Address<'_>>| {
        a.map(|a| {
            a.iter()
                .filter_map(
                    |addr| match (addr.name.as_deref(), addr.address.as_deref()) {
                        (Some(name), Some(address)) if !name.is_empty() => {
                            Some(format!("{name} <{address}>"))
                        }
                        (_, Some(address)) => Some(address.to_string()),
                        (name, None) => name.map(str::to_string),
                    },
                )
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
    let body_is_text = msg.parts.len() > 1
        || msg.parts[0]
            .content_type()
            .is_none_or(|c| c.ctype() == "text")
        || std::str::from_utf8(&body).is_ok();
    Rendered {
        from: addresses(msg.from()),
        to: addresses(msg.to()),
        date: msg.date().map(|d| d.to_rfc3339()).unwrap_or_default(),
        subject: msg.subject().unwrap_or_default().to_string(),
        body,
        body_is_text,
        attachments: msg.attachments().map(attachment_of).collect(),
        verified: verification(raw),
    }
}

/// The verdict of the topmost Authentication-Results field (RFC 8601), the one the receiving server
/// added (it removes any that claim its name from the sender), in words: DMARC's result for the From
/// domain, else DKIM's and SPF's.
pub fn verification(raw: &[u8]) -> Option<String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut field = None;
    for line in head.split("\r\n") {
        match (&mut field, line.starts_with([' ', '\t'])) {
            (Some(f), true) => {
                let f: &mut String = f;
                f.push(' ');
                f.push_str(line.trim());
            }
            (Some(_), false) => break,
            (None, false) => {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("Authentication-Results")
                {
                    field = Some(value.trim().to_string());
                }
            }
            (None, true) => {}
        }
    }
    let field = field?;
    let result = |method: &str| {
        field.split(';').skip(1).find_map(|r| {
            let r = r.trim();
            let rest = r.strip_prefix(method)?.strip_prefix('=')?;
            let verdict = rest.split_whitespace().next().unwrap_or("");
            let domain = r
                .split_whitespace()
                .find_map(|w| {
                    w.strip_prefix("header.from=")
                        .or(w.strip_prefix("header.d="))
                })
                .unwrap_or("");
            Some((verdict.to_ascii_lowercase(), domain.to_string()))
        })
    };
    let said = |m: &str| result(m).map(|(v, _)| v).unwrap_or_else(|| "none".into());
    Some(match result("dmarc") {
        Some((v, domain)) if v == "pass" => format!("yes, the sender is {domain} (DMARC pass)"),
        Some((v, domain)) if v == "fail" => format!(
            "NO: not really from {domain} (DMARC fail; DKIM {}, SPF {})",
            said("dkim"),
            said("spf")
        ),
        _ => format!(
            "not proven (no DMARC policy; DKIM {}, SPF {})",
            said("dkim"),
            said("spf")
        ),
    })
}

/// What a list shows of a message from elsewhere (an mbox, a Maildir, later SMTP): sender, subject,
/// Message-ID and date, parsed from its headers. Unparsable headers give empty fields, never an error.
/// Only these four fields are parsed (it runs on every delivery; the rest would be wasted work).
pub fn summarize(raw: &[u8]) -> (String, String, Option<String>, Option<i64>) {
    static ONLY_THESE: LazyLock<MessageParser> = LazyLock::new(|| {
        MessageParser::new()
            .header_address(HeaderName::From)
            .header_text(HeaderName::Subject)
            .header_id(HeaderName::MessageId)
            .header_date(HeaderName::Date)
            .default_header_ignore()
    });
    summarize_with(&ONLY_THESE, raw)
}

fn summarize_with(
    parser: &MessageParser,
    raw: &[u8],
) -> (String, String, Option<String>, Option<i64>) {
    let Some(msg) = parser.parse_headers(raw) else {
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

/// The [`Authors`] of a message, from its header block only (where only `From` and `Sender` are parsed).
pub fn authors(raw: &[u8]) -> Authors {
    static ONLY_THESE: LazyLock<MessageParser> = LazyLock::new(|| {
        MessageParser::new()
            .header_address(HeaderName::From)
            .header_address(HeaderName::Sender)
            .default_header_ignore()
    });
    authors_with(&ONLY_THESE, raw)
}

fn authors_with(parser: &MessageParser, raw: &[u8]) -> Authors {
    use mail_parser::HeaderValue;
    let mut authors = Authors::default();
    let Some(msg) = parser.parse_headers(raw) else {
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

/// Why a message's From field names no one domain whose owner could be asked who wrote it (DMARC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorProblem {
    NoFrom,
    SeveralFromFields,
    /// An entry that is no address (`From: ceo@rej.test <`, a name alone), or a domain that is no
    /// domain (`rej.test.`).
    Unreadable,
    SeveralDomains,
}

impl AuthorProblem {
    /// The reply's words.
    pub fn reason(self) -> &'static str {
        match self {
            AuthorProblem::NoFrom => "it has no From field (RFC 5322 3.6)",
            AuthorProblem::SeveralFromFields => "it has more than one From field (RFC 5322 3.6)",
            AuthorProblem::Unreadable => "its From field names no readable address",
            AuthorProblem::SeveralDomains => "its From field names more than one domain",
        }
    }
}

/// The one domain (lower case) a message's From field names, read as a reader reads it: exactly one
/// From field (RFC 5322 §3.6), every entry an address, one domain for all (RFC 7489 §6.6.1 leaves
/// a receiver free to refuse what DMARC cannot judge). Each of the other cases was a way to show a
/// reader an author whose domain's policy was never asked.
pub fn author_domain(raw: &[u8]) -> Result<String, AuthorProblem> {
    static ONLY_FROM: LazyLock<MessageParser> = LazyLock::new(|| {
        MessageParser::new()
            .header_address(HeaderName::From)
            .default_header_ignore()
    });
    author_domain_with(&ONLY_FROM, raw)
}

fn author_domain_with(parser: &MessageParser, raw: &[u8]) -> Result<String, AuthorProblem> {
    use mail_parser::HeaderValue;
    let msg = parser.parse_headers(raw).ok_or(AuthorProblem::NoFrom)?;
    let mut fields = msg
        .headers()
        .iter()
        .filter(|h| matches!(h.name, HeaderName::From));
    let field = fields.next().ok_or(AuthorProblem::NoFrom)?;
    if fields.next().is_some() {
        return Err(AuthorProblem::SeveralFromFields);
    }
    let HeaderValue::Address(list) = &field.value else {
        return Err(AuthorProblem::Unreadable);
    };
    let mut domain: Option<String> = None;
    for entry in list.iter() {
        let this = entry
            .address
            .as_deref()
            .and_then(|a| a.rsplit_once('@'))
            .filter(|(local, domain)| !local.is_empty() && well_formed_domain(domain))
            .map(|(_, d)| d.to_lowercase())
            .ok_or(AuthorProblem::Unreadable)?;
        match &domain {
            Some(seen) if *seen != this => return Err(AuthorProblem::SeveralDomains),
            _ => domain = Some(this),
        }
    }
    domain.ok_or(AuthorProblem::Unreadable)
}

/// Labels separated by dots, none empty; or an address literal (`[192.0.2.1]`).
fn well_formed_domain(domain: &str) -> bool {
    if domain.starts_with('[') {
        return domain.len() > 2 && domain.ends_with(']');
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && !label.contains(|c: char| c.is_whitespace() || "<>()[]\\,;:\"@".contains(c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_author_domain_is_one_domain_of_one_from_field() {
        let domain =
            |head: &str| author_domain(format!("{head}Subject: x\r\n\r\nbody\r\n").as_bytes());
        assert_eq!(
            domain("From: CEO <ceo@Rej.Test>\r\n"),
            Ok("rej.test".into())
        );
        assert_eq!(
            domain("From: a@x.test, \"B\" <b@X.TEST>\r\n"),
            Ok("x.test".into())
        );
        assert_eq!(domain("From: Staff: a@x.test;\r\n"), Ok("x.test".into()));
        assert_eq!(
            domain("From: bob@[192.0.2.1]\r\n"),
            Ok("[192.0.2.1]".into())
        );
        assert_eq!(
            domain("From: ceo@rej.test (CEO)\r\n"),
            Ok("rej.test".into())
        );
        assert_eq!(domain(""), Err(AuthorProblem::NoFrom));
        assert_eq!(
            domain("From: x@evil.test\r\nFrom: ceo@rej.test\r\n"),
            Err(AuthorProblem::SeveralFromFields)
        );
        assert_eq!(
            domain("From: x@evil.test, ceo@rej.test\r\n"),
            Err(AuthorProblem::SeveralDomains)
        );
        for unreadable in [
            "From: ceo@rej.test <\r\n",
            "From: ceo@rej.test.\r\n",
            "From: Name Only\r\n",
            "From: \r\n",
            "From: <>\r\n",
            "From: Staff: ;\r\n",
        ] {
            assert_eq!(
                domain(unreadable),
                Err(AuthorProblem::Unreadable),
                "{unreadable:?}"
            );
        }
        // A full parse reads the same.
        let raw = b"From: a@x.test\r\nReceived: by b\r\nFrom: b@y.test\r\n\r\n";
        assert_eq!(
            author_domain_with(&MessageParser::default(), raw),
            author_domain(raw)
        );
    }

    #[test]
    fn parsing_only_the_fields_used_reads_what_a_full_parse_reads() {
        let messages: [&[u8]; 7] = [
            b"Received: from a ([1.2.3.4]) by b with ESMTP id x;\r\n\tThu, 3 Dec 2026 10:00:00 +0000\r\nFrom: \"A, B\" <a@x.test>, c@y.test\r\nSender: s@x.test\r\nSubject: =?UTF-8?Q?caf=C3=A9?= ok\r\nMessage-ID: <1@x.test>\r\nDate: Thu, 3 Dec 2026 10:00:00 +0100\r\n\r\nbody\r\n",
            b"From: group: a@x.test, b@y.test;\r\nFrom: second@z.test\r\nSubject: two\r\n lines\r\n\r\n",
            b"Subject: no from\r\nMessage-ID: bare-id\r\nDate: not a date\r\n\r\n",
            b"From: Name Only\r\nSender: <>\r\nSUBJECT: upper\r\n\r\n",
            b"no header at all",
            b"",
            b"From: a@x.test\nReceived: by b; Thu, 3 Dec 2026 10:00:00 +0000\nFrom: (comment) b@x.test\n\nbare LF\n",
        ];
        for raw in messages {
            let full = MessageParser::default();
            assert_eq!(summarize(raw), summarize_with(&full, raw), "{raw:?}");
            assert_eq!(authors(raw), authors_with(&full, raw), "{raw:?}");
        }
    }

    #[test]
    fn the_topmost_results_are_read() {
        let pass = b"Authentication-Results: mx.b.test;\r\n\tdkim=pass header.d=a.test header.s=x;\r\n\tspf=pass smtp.mailfrom=a@a.test;\r\n\tdmarc=pass header.from=a.test\r\nAuthentication-Results: other; dmarc=fail\r\nSubject: x\r\n\r\nbody";
        assert_eq!(
            verification(pass).unwrap(),
            "yes, the sender is a.test (DMARC pass)"
        );
        let fail = b"Authentication-Results: mx.b.test; spf=fail smtp.mailfrom=a@a.test; dmarc=fail header.from=a.test\r\n\r\n";
        assert_eq!(
            verification(fail).unwrap(),
            "NO: not really from a.test (DMARC fail; DKIM none, SPF fail)"
        );
        assert_eq!(verification(b"Subject: local\r\n\r\nx"), None);
        let rendered = render(pass).to_terminal_text();
        assert!(
            rendered.contains("\nVerified: yes, the sender is a.test (DMARC pass)\n"),
            "{rendered}"
        );
    }

    const WITH_ATTACHMENT: &[u8] = b"From: Alice Example <alice@x>\r\nTo: bob@x\r\nSubject: report\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\nBye \x1b[31mred\r\n\
--b\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n";

    #[test]
    fn a_terminal_is_shown_names_text_with_lf_and_attachments_without_escapes() {
        let r = render(WITH_ATTACHMENT);
        assert_eq!(r.from, "Alice Example <alice@x>");
        assert_eq!(
            r.attachments,
            [Attachment {
                name: Some("r.pdf".into()),
                content_type: "application/pdf".into(),
                size: 9
            }]
        );
        assert_eq!(
            r.to_terminal_text(),
            "From: Alice Example <alice@x>\nTo: bob@x\nDate: \nSubject: report\n\n\
See attached.\nBye \u{fffd}[31mred\n\nAttachments:\n  1. r.pdf (application/pdf, 9 bytes)\n"
        );
        assert_eq!(
            attachment_contents(WITH_ATTACHMENT, 0).unwrap(),
            b"%PDF-1.4\n"
        );
        assert_eq!(attachment_contents(WITH_ATTACHMENT, 1), None);
    }

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
