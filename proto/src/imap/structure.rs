//! FETCH's ENVELOPE, BODY and BODYSTRUCTURE (RFC 9051 §7.5.2), written from the [`Summary`] stored at
//! delivery: listing never parses a body again.
//!
//! Dialect go out quoted when they can be (no CR, LF or NUL; 8-bit only to a client that enabled UTF-8,
//! RFC 9051 §6.3.1 and RFC 6855) and as literals otherwise, so any header value is carried exactly.

use crate::summary::{Address, Body, Disposition, Envelope, Part, Summary};

/// What the client understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// UTF-8 in quoted strings (IMAP4rev2, or UTF8=ACCEPT enabled).
    pub utf8: bool,
    /// `message/global` described like `message/rfc822`, with its envelope, body and lines (RFC 9051's
    /// grammar; RFC 3501's knows only RFC822 there, so a rev1 client gets it as a basic part).
    pub message_global: bool,
}

/// `ENVELOPE`'s value: `(date subject from sender reply-to to cc bcc in-reply-to message-id)`, sender and
/// reply-to defaulting to from as the RFC orders.
pub fn envelope(e: &Envelope, s: Dialect) -> Vec<u8> {
    let mut out = Vec::new();
    write_envelope(&mut out, e, s);
    out
}

/// `BODYSTRUCTURE`'s value (`extensible`: with the extension data) or `BODY`'s (without).
pub fn body_structure(summary: &Summary, extensible: bool, s: Dialect) -> Vec<u8> {
    let mut out = Vec::new();
    write_part(&mut out, &summary.structure, extensible, s);
    out
}

fn write_envelope(out: &mut Vec<u8>, e: &Envelope, s: Dialect) {
    out.push(b'(');
    nstring(out, e.date.as_deref(), s);
    out.push(b' ');
    nstring(out, e.subject.as_deref(), s);
    for list in [
        &e.from[..],
        e.sender_or_from(),
        e.reply_to_or_from(),
        &e.to,
        &e.cc,
        &e.bcc,
    ] {
        out.push(b' ');
        addresses(out, list, s);
    }
    out.push(b' ');
    nstring(out, e.in_reply_to.as_deref(), s);
    out.push(b' ');
    nstring(out, e.message_id.as_deref(), s);
    out.push(b')');
}

/// An address list, or NIL when empty. Each entry is `(name adl mailbox host)`; a group's start and end
/// markers come out as RFC 9051 writes them (`(NIL NIL "group" NIL)`, `(NIL NIL NIL NIL)`) because the
/// summary keeps them in that shape.
fn addresses(out: &mut Vec<u8>, list: &[Address], s: Dialect) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        nstring(out, a.name.as_deref(), s);
        out.push(b' ');
        nstring(out, a.route.as_deref(), s);
        out.push(b' ');
        nstring(out, a.mailbox.as_deref(), s);
        out.push(b' ');
        nstring(out, a.host.as_deref(), s);
        out.push(b')');
    }
    out.push(b')');
}

fn write_part(out: &mut Vec<u8>, part: &Part, extensible: bool, s: Dialect) {
    out.push(b'(');
    match &part.body {
        Body::Multipart(children) => {
            for child in children {
                write_part(out, child, extensible, s);
            }
            write_multipart_tail(out, part, extensible, s);
        }
        // A multipart whose parts could not be found still needs one: an empty text part, as Dovecot
        // shows it.
        Body::Opaque if part.media_type == "multipart" => {
            out.extend_from_slice(
                b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)",
            );
            write_multipart_tail(out, part, extensible, s);
        }
        body => {
            write_fields(out, part, s);
            if is_message(part, s) {
                // A message left undescribed still has the envelope and body the syntax asks for: empty.
                let empty;
                let inner = match body {
                    Body::Message(inner) => inner.as_ref(),
                    _ => {
                        empty = Summary {
                            envelope: Envelope::default(),
                            structure: Part::plain_text(0, 0, 0),
                            thread_root: None,
                            references: Vec::new(),
                        };
                        &empty
                    }
                };
                out.push(b' ');
                write_envelope(out, &inner.envelope, s);
                out.push(b' ');
                write_part(out, &inner.structure, extensible, s);
                push_number(out, part.lines.unwrap_or(0));
            } else if part.media_type == "text" {
                push_number(out, part.lines.unwrap_or(0));
            }
            if extensible {
                out.extend_from_slice(b" NIL"); // body MD5: not computed
                write_extension(out, part, s);
            }
        }
    }
    out.push(b')');
}

fn is_message(part: &Part, s: Dialect) -> bool {
    part.media_type == "message"
        && (part.subtype == "rfc822" || (s.message_global && part.subtype == "global"))
}

/// A single part's fields: `type subtype params id description encoding size`.
fn write_fields(out: &mut Vec<u8>, part: &Part, s: Dialect) {
    string(out, &part.media_type, s);
    out.push(b' ');
    string(out, &part.subtype, s);
    out.push(b' ');
    params(out, &part.params, s);
    out.push(b' ');
    nstring(out, part.id.as_deref(), s);
    out.push(b' ');
    nstring(out, part.description.as_deref(), s);
    out.push(b' ');
    string(out, &part.encoding, s);
    push_number(out, part.size() as u64);
}

/// After a multipart's children: its subtype and, extensible, `params disposition language location`.
fn write_multipart_tail(out: &mut Vec<u8>, part: &Part, extensible: bool, s: Dialect) {
    out.push(b' ');
    string(out, &part.subtype, s);
    if extensible {
        out.push(b' ');
        params(out, &part.params, s);
        write_extension(out, part, s);
    }
}

/// ` disposition language location`.
fn write_extension(out: &mut Vec<u8>, part: &Part, s: Dialect) {
    out.push(b' ');
    match &part.disposition {
        Some(Disposition { kind, params: p }) => {
            out.push(b'(');
            string(out, kind, s);
            out.push(b' ');
            params(out, p, s);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match part.language.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        [one] => string(out, one, s),
        many => {
            out.push(b'(');
            for (i, tag) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, tag, s);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    nstring(out, part.location.as_deref(), s);
}

/// `("name" "value" ...)`, or NIL when there are none.
fn params(out: &mut Vec<u8>, params: &[(String, String)], s: Dialect) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, name, s);
        out.push(b' ');
        string(out, value, s);
    }
    out.push(b')');
}

fn push_number(out: &mut Vec<u8>, n: u64) {
    out.push(b' ');
    out.extend_from_slice(n.to_string().as_bytes());
}

fn nstring(out: &mut Vec<u8>, value: Option<&str>, s: Dialect) {
    match value {
        Some(v) => string(out, v, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A quoted string when the value allows one, else a literal (`{n}` CRLF and the bytes). IMAP carries
/// a NUL in neither (only in BINARY's literal8), so a NUL becomes U+FFFD.
pub fn string(out: &mut Vec<u8>, value: &str, s: Dialect) {
    let cleaned;
    let value = if value.contains('\0') {
        cleaned = value.replace('\0', "\u{fffd}");
        cleaned.as_str()
    } else {
        value
    };
    let quotable = value
        .bytes()
        .all(|b| !matches!(b, b'\r' | b'\n' | 0) && (s.utf8 || b.is_ascii()));
    if quotable {
        out.push(b'"');
        for b in value.bytes() {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
        out.extend_from_slice(value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::summarize_message;

    const ASCII: Dialect = Dialect {
        utf8: false,
        message_global: false,
    };

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn envelope_of_a_plain_message() {
        let raw = b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nFrom: Fred Foobar <foobar@Blurdybloop.example>\r\n\
Subject: afternoon meeting\r\nTo: mooch@owatagu.siam.edu.example\r\n\
Message-Id: <B27397-0100000@Blurdybloop.example>\r\n\r\nHello Joe\r\n";
        let s = summarize_message(raw);
        assert_eq!(
            text(envelope(&s.envelope, ASCII)),
            "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"afternoon meeting\" \
((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) \
((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) \
((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) \
((NIL NIL \"mooch\" \"owatagu.siam.edu.example\")) NIL NIL NIL \"<B27397-0100000@Blurdybloop.example>\")"
        );
        assert_eq!(
            text(body_structure(&s, true, ASCII)),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 11 1 NIL NIL NIL NIL)"
        );
        assert_eq!(
            text(body_structure(&s, false, ASCII)),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 11 1)"
        );
    }

    #[test]
    fn a_source_route_is_the_adl_and_comments_are_not_the_address() {
        let raw = "From: <@route:user@domain>\r\nTo: <u (c)@ (c) d.org>\r\n\r\nbody\r\n";
        let e = text(envelope(&summarize_message(raw.as_bytes()).envelope, ASCII));
        assert!(e.contains("((NIL \"@route\" \"user\" \"domain\"))"), "{e}");
        assert!(e.contains("((NIL NIL \"u\" \"d.org\"))"), "{e}");
    }

    #[test]
    fn groups_quotes_and_strings_that_need_a_literal() {
        let raw = "From: \"A \\\"B\\\"\" <a@x>\r\nTo: team: b@x, c@x;\r\nSubject: caf\u{e9}\r\n\r\nbody\r\n";
        let s = summarize_message(raw.as_bytes());
        let e = text(envelope(&s.envelope, ASCII));
        assert!(e.contains("((\"A \\\"B\\\"\" NIL \"a\" \"x\"))"), "{e}");
        assert!(
            e.contains("((NIL NIL \"team\" NIL)(NIL NIL \"b\" \"x\")(NIL NIL \"c\" \"x\")(NIL NIL NIL NIL))"),
            "{e}"
        );
        assert!(
            e.contains("{5}\r\ncaf\u{e9}"),
            "8-bit goes as a literal: {e}"
        );
        let e = text(envelope(
            &s.envelope,
            Dialect {
                utf8: true,
                message_global: true,
            },
        ));
        assert!(e.contains("\"caf\u{e9}\""), "quoted to a UTF-8 client: {e}");
    }

    #[test]
    fn multipart_with_an_attached_message() {
        let raw = b"From: a@x\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee below.\r\n\
--b\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=m.eml\r\n\r\n\
From: d@y\r\nSubject: inner\r\n\r\nhi\r\n\
--b--\r\n";
        let s = summarize_message(raw);
        let b = text(body_structure(&s, true, ASCII));
        assert!(
            b.starts_with("((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7BIT\" 10 0 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" "),
            "{b}"
        );
        assert!(b.contains(" (NIL \"inner\" ((NIL NIL \"d\" \"y\"))"), "{b}");
        assert!(
            b.contains("(\"attachment\" (\"filename\" \"m.eml\"))"),
            "{b}"
        );
        assert!(
            b.ends_with(" \"mixed\" (\"boundary\" \"b\") NIL NIL NIL)"),
            "{b}"
        );
        let plain = text(body_structure(&s, false, ASCII));
        assert!(
            plain.ends_with(" \"mixed\")"),
            "BODY has no extension data: {plain}"
        );
    }

    #[test]
    fn message_global_has_an_envelope_only_for_a_client_that_knows_it() {
        let raw = b"Content-Type: message/global\r\n\r\nSubject: inner\r\n\r\nhi\r\n";
        let s = summarize_message(raw);
        let rev1 = text(body_structure(&s, false, ASCII));
        assert_eq!(rev1, "(\"message\" \"global\" NIL NIL NIL \"7BIT\" 22)");
        let rev2 = Dialect {
            utf8: true,
            message_global: true,
        };
        let b = text(body_structure(&s, false, rev2));
        assert!(
            b.contains(" (NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) ("),
            "{b}"
        );
    }

    /// Messages whose structure is unusual: no header, groups and 8-bit, a NUL in a header, multiparts
    /// without a boundary, an encoded message/rfc822, languages and locations.
    const SAMPLES: &[&[u8]] = &[
        b"",
        b"From: a@x\r\nTo: g: b@x;\r\nSubject: caf\xc3\xa9 \"q\" \\\r\n\r\nhi\r\n",
        b"Content-Type: multipart/mixed\r\n\r\nno boundary",
        b"From:UT\0: =",
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA",
        b"Content-Type: multipart/alternative; boundary=z\r\nContent-Language: en, fr\r\n\r\n--z\r\n\r\na\r\n--z\r\nContent-Type: text/html\r\nContent-Location: http://x/\r\n\r\n<p>\r\n--z--\r\n",
    ];

    #[test]
    fn imap_codec_reads_what_is_written() {
        for raw in SAMPLES {
            super::super::invariants::check_structure(raw);
        }
    }

    #[test]
    fn parentheses_balance_for_any_message() {
        for raw in SAMPLES {
            let s = summarize_message(raw);
            for rendered in [
                body_structure(&s, true, ASCII),
                body_structure(&s, false, ASCII),
                envelope(&s.envelope, ASCII),
            ] {
                let mut depth = 0i32;
                let mut quoted = false;
                let mut escaped = false;
                for &c in &rendered {
                    match c {
                        _ if escaped => escaped = false,
                        b'\\' if quoted => escaped = true,
                        b'"' => quoted = !quoted,
                        b'(' if !quoted => depth += 1,
                        b')' if !quoted => depth -= 1,
                        _ => {}
                    }
                    assert!(depth >= 0, "{}", String::from_utf8_lossy(&rendered));
                }
                assert_eq!(depth, 0, "{}", String::from_utf8_lossy(&rendered));
            }
        }
    }
}
