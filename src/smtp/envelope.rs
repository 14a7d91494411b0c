//! What an SMTP server adds to a message it accepts: Return-Path and Received (RFC 5321 §4.4), and for
//! submission a Date and Message-ID when the client left them out (RFC 6409 §8).

use std::net::SocketAddr;

use rand::Rng;

use crate::message::summarize;
use crate::store::NewMessage;

/// Facts about the transaction that the trace headers record.
pub struct Trace<'a> {
    pub helo: &'a str,
    /// EHLO (ESMTP) rather than HELO.
    pub extended: bool,
    pub authenticated: bool,
    /// The message came over TLS.
    pub tls: bool,
    pub smtputf8: bool,
    pub peer: SocketAddr,
    /// This server's name.
    pub by: &'a str,
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub submission: bool,
}

/// Received fields a message may carry when it arrives (Postfix's `hopcount_limit`; RFC 5321 §6.3 asks
/// for a limit of at least 100 for the ones a server counts, this one counts all).
pub const HOPS_MAX: usize = 50;

/// Header fields a message may carry when it arrives. Real mail carries dozens. Checking who sent it
/// (DKIM, DMARC) holds some 50 bytes per field, so 10 MB of tiny fields would cost 130 MB at once for
/// one message; past this number it is refused instead (Gmail refuses outsized headers too).
pub const HEADER_FIELDS_MAX: usize = 10_000;

/// What a message's header holds, counted.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldCounts {
    pub fields: usize,
    /// Received fields: one per hop.
    pub received: usize,
}

/// Counts the fields of the message's header (its body is not looked at). A line that is no field
/// (`name:`) counts too: mail-auth's parser and mail-parser read on past it as the header goes on.
pub fn count_fields(message: &[u8]) -> FieldCounts {
    let head_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(message.len());
    let head = &message[..head_end];
    let line_starts = std::iter::once(0).chain(
        head.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1),
    );
    let mut counts = FieldCounts {
        fields: 0,
        received: 0,
    };
    for line in line_starts.map(|i| &head[i..]) {
        // A line that begins with white space continues the field before it.
        if line
            .first()
            .is_some_and(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            counts.fields += 1;
            if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
                counts.received += 1;
            }
        }
    }
    counts
}

/// The message as stored, and the id its Received header names (also quoted in the 250 reply).
pub fn stamp(trace: &Trace<'_>, body: Vec<u8>) -> (NewMessage, String) {
    let id = format!("{:016x}", rand::thread_rng().r#gen::<u64>());
    let now = chrono::Utc::now();
    // RFC 3848 / RFC 6531 names for the "with" clause: base, then S for TLS, then A for AUTH.
    let base = match (trace.smtputf8, trace.extended) {
        (true, _) => "UTF8SMTP",
        (false, true) => "ESMTP",
        (false, false) => "SMTP",
    };
    let protocol = format!(
        "{base}{}{}",
        if trace.tls && base != "SMTP" { "S" } else { "" },
        if trace.authenticated && base != "SMTP" {
            "A"
        } else {
            ""
        }
    );
    let recipient = match trace.recipients {
        [one] => format!(
            "\r\n\tfor <{}>",
            header_safe(&jmail_proto::smtp_client::path_address(one))
        ),
        _ => String::new(),
    };
    let mut head = format!(
        "Return-Path: <{}>\r\nReceived: from {} ([{}])\r\n\tby {} (Jmail) with {protocol} id {id}{recipient};\r\n\t{}\r\n",
        header_safe(&jmail_proto::smtp_client::path_address(trace.sender)),
        header_safe(trace.helo),
        trace.peer.ip(),
        trace.by,
        now.to_rfc2822(),
    );
    if trace.submission {
        let (from, _, message_id, date) = summarize(&body);
        if from.is_empty() {
            head.push_str(&format!("From: <{}>\r\n", header_safe(trace.sender)));
        }
        if date.is_none() {
            head.push_str(&format!("Date: {}\r\n", now.to_rfc2822()));
        }
        if message_id.is_none() {
            head.push_str(&format!(
                "Message-ID: <{id}.{}@{}>\r\n",
                now.timestamp(),
                trace.by
            ));
        }
    }
    let mut raw = head.into_bytes();
    raw.extend_from_slice(&body);
    let (from, subject, message_id, _) = summarize(&raw);
    let from = if from.is_empty() {
        trace.sender.to_string()
    } else {
        from
    };
    let message = NewMessage::new(raw, from, subject, message_id, now.timestamp_micros());
    (message, id)
}

/// Client-given text placed in a header: no line breaks, no angle brackets, no control characters.
fn header_safe(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() && !matches!(c, '<' | '>' | '(' | ')'))
        .take(256)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace<'a>(recipients: &'a [String], submission: bool) -> Trace<'a> {
        Trace {
            helo: "client.example\r\nX-Evil: 1",
            extended: true,
            authenticated: submission,
            tls: false,
            smtputf8: false,
            peer: "127.0.0.1:4000".parse().unwrap(),
            by: "localhost",
            sender: "a@example.org",
            recipients,
            submission,
        }
    }

    #[test]
    fn inbound_adds_trace_headers_only() {
        let rcpts = vec!["bob@localhost".to_string()];
        let body =
            b"From: A <a@example.org>\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\nhi\r\n".to_vec();
        let (m, id) = stamp(&trace(&rcpts, false), body.clone());
        let text = String::from_utf8(m.raw.clone()).unwrap();
        assert!(text.starts_with("Return-Path: <a@example.org>\r\nReceived: from client.exampleX-Evil: 1 ([127.0.0.1])\r\n\tby localhost (Jmail) with ESMTP id "), "{text}");
        assert!(text.contains(&format!("id {id}\r\n\tfor <bob@localhost>;")));
        assert!(m.raw.ends_with(&body));
        assert!(!text.contains("Message-ID"), "inbound mail is not changed");
        assert_eq!(m.subject, "café");
        assert_eq!(m.from, "a@example.org");
    }

    #[test]
    fn fields_and_hops_are_counted_in_the_header_only() {
        let m =
            b"Received: a\r\nRECEIVED: b\r\n\tfolded\r\nX-Received: no\r\n\r\nReceived: body\r\n";
        let counts = FieldCounts {
            fields: 3,
            received: 2,
        };
        assert_eq!(count_fields(m), counts);
        let none = FieldCounts {
            fields: 0,
            received: 0,
        };
        assert_eq!(count_fields(b""), none);
        let header_only = FieldCounts {
            fields: 1,
            received: 0,
        };
        assert_eq!(count_fields(b"Subject: x\r\n"), header_only);
        // Without an empty line every line is the header's, as DKIM verification reads it.
        let no_body = FieldCounts {
            fields: 3,
            received: 0,
        };
        assert_eq!(count_fields(b"Subject: x\r\nno colon\r\nX: y\r\n"), no_body);
    }

    #[test]
    fn submission_adds_missing_date_and_message_id() {
        let rcpts = vec!["b@localhost".to_string(), "c@localhost".to_string()];
        let (m, _) = stamp(&trace(&rcpts, true), b"Subject: x\r\n\r\nhi\r\n".to_vec());
        let text = String::from_utf8(m.raw).unwrap();
        assert!(text.contains("with ESMTPA id"));
        assert!(!text.contains("\tfor <"));
        assert!(text.contains("\r\nDate: ") && text.contains("\r\nMessage-ID: <"));
        assert!(text.contains("\r\nFrom: <a@example.org>\r\n"), "{text}");
        assert!(m.message_id.is_some());
    }
}
