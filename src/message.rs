//! The one message model: every message is RFC 5322 bytes. This module builds them for native sends and
//! reads back what users see (sender, subject, text) from any message, whatever protocol delivered it.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::mime::{BodyPart, MimePart};

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
    // The sender's own words go into header fields: a line break in them would start a field of its
    // own (`Subject: hi\r\nAuthentication-Results: ...`), so control characters become spaces.
    let one_line = |text: &str| -> String {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let (subject, from_name) = (one_line(send.subject), send.from_name.map(one_line));
    let builder = MessageBuilder::new()
        .from(Address::new_address(from_name.as_deref(), send.from))
        .to(Address::new_list(to))
        .subject(subject.as_str())
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
    NewMessage::new(
        raw,
        from_name.unwrap_or_else(|| send.from.to_string()),
        subject,
        Some(message_id),
        now.timestamp_micros(),
    )
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

pub use jmail_proto::mime::{Rendered, render, summarize};

/// A message from elsewhere, stored as its exact bytes.
pub fn imported(raw: Vec<u8>) -> NewMessage {
    let (from, subject, message_id, date) = summarize(&raw);
    // Without a Message-ID, one made from the content keeps re-imports idempotent.
    let message_id =
        message_id.unwrap_or_else(|| format!("{:016x}@content.jmail", content_digest(&raw)));
    let internal_date_micros = date.unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
    NewMessage::new(raw, from, subject, Some(message_id), internal_date_micros)
}

/// FNV-1a, 64 bits: stable across Rust versions (unlike std's hasher), for ids derived from content.
pub fn content_digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where the header ends (the start of the blank line), or the whole length.
pub fn header_end(raw: &[u8]) -> usize {
    let mut at = 0;
    while at < raw.len() {
        let end = raw[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| at + i + 1);
        let line = &raw[at..end];
        if line == b"\r\n" || line == b"\n" {
            return at;
        }
        at = end;
    }
    raw.len()
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
    fn the_senders_words_stay_on_their_line() {
        let to = vec!["bob@example.org".to_string()];
        let m = build_native(&NativeSend {
            from: "alice@example.org",
            date_micros: None,
            message_id: None,
            from_name: Some("Alice\r\nBcc: x@evil.example"),
            to: &to,
            subject: "hi\r\nAuthentication-Results: example.org; dmarc=pass",
            body: b"x",
            domain: "example.org",
        });
        let text = String::from_utf8_lossy(&m.raw);
        for line in text.split("\r\n") {
            assert!(
                !line.starts_with("Authentication-Results") && !line.starts_with("Bcc"),
                "{text}"
            );
        }
        assert_eq!(
            m.subject,
            "hi  Authentication-Results: example.org; dmarc=pass"
        );
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
