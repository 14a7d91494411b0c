//! The one message model: every message is RFC 5322 bytes. This module builds them for native sends and
//! reads back what users see (sender, subject, text) from any message, whatever protocol delivered it.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::mime::{BodyPart, MimePart};
use mail_parser::{MessageParser, MimeHeaders, PartType};

use crate::store::NewMessage;

/// What a native SEND says, with addresses already resolved.
pub struct NativeSend<'a> {
    /// `alice@example.org`.
    pub from: &'a str,
    /// A fixed Message-ID (without angle brackets), e.g. one derived from imported content.
    pub message_id: Option<&'a str>,
    /// When it was written (microseconds since the Unix epoch); `None` for now. Also the arrival time.
    pub date_micros: Option<i64>,
    /// A display name for the From header; lists then show it instead of the address (system messages).
    pub from_name: Option<&'a str>,
    /// Full addresses of every recipient, as the To header lists them.
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: &'a [u8],
    /// The host part of the Message-ID.
    pub domain: &'a str,
}

/// Builds the RFC 5322 message for a native send.
///
/// The body must come back byte for byte. UTF-8 text whose line ends are all CRLF is stored as readable
/// text (7bit or quoted-printable, as mail-builder picks); text with bare LF or CR is stored base64 as
/// `text/plain` (RFC 5322 would otherwise turn its line ends into CRLF); other bytes are stored base64 as
/// `application/octet-stream`.
pub fn build_native(send: &NativeSend<'_>) -> NewMessage {
    let now = send
        .date_micros
        .and_then(chrono::DateTime::from_timestamp_micros)
        .unwrap_or_else(chrono::Utc::now);
    let message_id = match send.message_id {
        Some(id) => id.to_string(),
        None => format!("{:032x}@{}", rand::random::<u128>(), send.domain),
    };
    let to: Vec<Address<'_>> = send
        .to
        .iter()
        .map(|a| Address::new_address(None::<&str>, a.as_str()))
        .collect();
    let builder = MessageBuilder::new()
        .from(Address::new_address(send.from_name, send.from))
        .to(Address::new_list(to))
        .subject(send.subject)
        .date(now.timestamp())
        .message_id(message_id.as_str());
    let builder = match std::str::from_utf8(send.body) {
        Ok(text) if is_canonical_text(text) => builder.text_body(text),
        Ok(text) => builder.body(
            MimePart::new("text/plain", BodyPart::Text(base64(text.as_bytes()).into()))
                .transfer_encoding("base64"),
        ),
        Err(_) => builder.body(MimePart::new(
            "application/octet-stream",
            BodyPart::Binary(send.body.into()),
        )),
    };
    let raw = builder
        .write_to_vec()
        .expect("writing a message to memory cannot fail");
    NewMessage {
        raw,
        from: send.from_name.unwrap_or(send.from).to_string(),
        subject: send.subject.to_string(),
        message_id: Some(message_id),
        internal_date_micros: now.timestamp_micros(),
    }
}

/// True when every line end is CRLF, so 7bit/quoted-printable keeps the text exactly.
fn is_canonical_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && bytes[i - 1] == b'\r',
        _ => true,
    })
}

fn base64(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    mail_builder::encoders::base64::base64_encode_mime(bytes, &mut out, false)
        .expect("encoding to memory cannot fail");
    String::from_utf8(out).expect("base64 is ASCII")
}

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

/// A message from elsewhere, stored as its exact bytes.
pub fn imported(raw: Vec<u8>) -> NewMessage {
    let (from, subject, message_id, date) = summarize(&raw);
    // Without a Message-ID, one made from the content keeps re-imports idempotent.
    let message_id =
        message_id.unwrap_or_else(|| format!("{:016x}@content.jmail", content_digest(&raw)));
    NewMessage {
        internal_date_micros: date.unwrap_or_else(|| chrono::Utc::now().timestamp_micros()),
        raw,
        from,
        subject,
        message_id: Some(message_id),
    }
}

/// FNV-1a, 64 bits: stable across Rust versions (unlike std's hasher), for ids derived from content.
pub fn content_digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(body: &[u8]) {
        let to = vec![
            "bob@example.org".to_string(),
            "carol@example.org".to_string(),
        ];
        let m = build_native(&NativeSend {
            from: "alice@example.org",
            date_micros: None,
            message_id: None,
            from_name: None,
            to: &to,
            subject: "Grüße, \"friends\"",
            body,
            domain: "example.org",
        });
        let r = render(&m.raw);
        assert_eq!(
            r.body,
            body,
            "body of {:?}",
            String::from_utf8_lossy(&m.raw)
        );
        assert_eq!(r.from, "alice@example.org");
        assert_eq!(r.to, "bob@example.org, carol@example.org");
        assert_eq!(r.subject, "Grüße, \"friends\"");
        assert_eq!(m.subject, r.subject);
        let text = String::from_utf8_lossy(&m.raw);
        assert!(text.contains("Message-ID: <"), "{text}");
        assert!(text.contains("Date: "), "{text}");
    }

    #[test]
    fn bodies_round_trip_exactly() {
        round_trip(b"hello");
        round_trip(b"line one\r\nline two\r\n");
        round_trip(b"bare\nlf\n\nand cr\r");
        round_trip("ünïcödé\r\n".as_bytes());
        round_trip(&[0, 159, 146, 150, 255, b'\n']);
        round_trip(&b"x".repeat(5000));
        round_trip(b"trailing space \r\n.\r\n..dots\r\nFrom me\r\n");
        round_trip(b"");
    }

    #[test]
    fn unparsable_input_renders_raw() {
        assert_eq!(render(b"").body, b"");
    }
}
