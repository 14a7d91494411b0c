//! FETCH's `BODY[section]<partial>` (RFC 9051 §6.4.5): which bytes of the stored message a section names,
//! found from the summary's offsets, so a section is a slice of the stored bytes and never a parse.
//! Only `HEADER.FIELDS` (`.NOT`) builds new bytes: the chosen fields of a header, in their order.

use std::ops::Range;

use crate::summary::{Body, Summary};

/// What follows a section's part numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    /// `HEADER`: the header of the message (or of the message a part holds), blank line included.
    Header,
    /// `HEADER.FIELDS (names)`, or with `not` `HEADER.FIELDS.NOT (names)`; names match in any case.
    HeaderFields { names: Vec<String>, not: bool },
    /// `TEXT`: the body of the message (or of the message a part holds).
    Text,
    /// `MIME`: a part's own MIME header.
    Mime,
}

/// A section: part numbers (`1.2`: `[1, 2]`; none for the whole message) and what of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub part: Vec<usize>,
    pub text: Option<Text>,
}

/// The bytes a section names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bytes {
    /// These bytes of the stored message.
    Stored(Range<usize>),
    /// Bytes made from it (the fields `HEADER.FIELDS` chose).
    Made(Vec<u8>),
}

impl Bytes {
    /// The bytes themselves, given the stored message.
    pub fn of<'a>(&'a self, raw: &'a [u8]) -> &'a [u8] {
        match self {
            Bytes::Stored(range) => raw.get(range.clone()).unwrap_or_default(),
            Bytes::Made(bytes) => bytes,
        }
    }
}

/// Where the bytes a section names are, found without the message's bytes (from its length and
/// summary), so a large message's section can be streamed from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// These bytes of the stored message.
    Stored(Range<usize>),
    /// The chosen fields ([`header_fields`]) of the header at this range.
    Fields {
        header: Range<usize>,
        names: Vec<String>,
        not: bool,
    },
}

/// The bytes `section` names in `raw`, whose summary is `summary`; `None` when the message has no such
/// section (a part number past its parts, `MIME` without a part, `HEADER` of a part that is not a
/// message). The session answers those with an empty string, as Dovecot does.
pub fn locate(raw: &[u8], summary: &Summary, section: &Section) -> Option<Bytes> {
    Some(match locate_in(raw.len(), summary, section)? {
        Located::Stored(range) => Bytes::Stored(range),
        Located::Fields { header, names, not } => {
            Bytes::Made(header_fields(raw.get(header)?, &names, not))
        }
    })
}

/// Where the bytes `section` names are in a stored message of `len` bytes whose summary is `summary`
/// (see [`locate`]).
pub fn locate_in(len: usize, summary: &Summary, section: &Section) -> Option<Located> {
    let whole = &summary.structure;
    let (message, part) = if section.part.is_empty() {
        (Some(whole), None)
    } else {
        let part = summary.part(&section.part)?;
        let message = match &part.body {
            Body::Message(inner) => Some(&inner.structure),
            _ => None,
        };
        (message, Some(part))
    };
    let range = |start: usize, end: usize| start.min(end).min(len)..end.min(len);
    let stored = |start: usize, end: usize| Some(Located::Stored(range(start, end)));
    match (&section.text, part) {
        (None, None) => stored(0, len),
        (None, Some(p)) => stored(p.body_start, p.body_end),
        (Some(Text::Mime), Some(p)) => stored(p.header_start, p.body_start),
        (Some(Text::Mime), None) => None,
        (Some(Text::Header), _) => message.and_then(|m| stored(m.header_start, m.body_start)),
        (Some(Text::Text), _) => message.and_then(|m| stored(m.body_start, m.body_end)),
        (Some(Text::HeaderFields { names, not }), _) => {
            let m = message?;
            Some(Located::Fields {
                header: range(m.header_start, m.body_start),
                names: names.clone(),
                not: *not,
            })
        }
    }
}

/// The fields of `header` whose names are (or with `not`, are not) among `names`, each with its folded
/// lines, in the header's order, and the blank line that ends a header.
pub fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break; // the blank line ending the header
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let name = name.trim_ascii_end();
            let listed = names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name));
            keep = listed != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A Content-Transfer-Encoding BINARY cannot undo (RFC 3516's UNKNOWN-CTE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownEncoding;

/// A part's body with its Content-Transfer-Encoding undone (FETCH BINARY, RFC 3516): base64 and
/// quoted-printable decoded, 7bit, 8bit and binary as they are. `encoding` is upper case, as the
/// summary keeps it.
pub fn decode_transfer(encoding: &str, body: &[u8]) -> Result<Vec<u8>, UnknownEncoding> {
    match encoding {
        "7BIT" | "8BIT" | "BINARY" | "" => Ok(body.to_vec()),
        "BASE64" => mail_parser::decoders::base64::base64_decode(body).ok_or(UnknownEncoding),
        "QUOTED-PRINTABLE" => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(body)
                .ok_or(UnknownEncoding)
        }
        _ => Err(UnknownEncoding),
    }
}

/// The part of `len` bytes that `<origin.count>` asks for (RFC 9051 §6.4.5): empty when it starts past
/// the end.
pub fn partial(len: usize, origin: u32, count: u32) -> Range<usize> {
    let start = (origin as usize).min(len);
    start..start.saturating_add(count as usize).min(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_encodings_are_undone() {
        assert_eq!(decode_transfer("BASE64", b"aG\r\nkA\r\n").unwrap(), b"hi\0");
        assert_eq!(
            decode_transfer("QUOTED-PRINTABLE", b"a=3Db=\r\nc").unwrap(),
            b"a=bc"
        );
        assert_eq!(decode_transfer("8BIT", b"\xff").unwrap(), b"\xff");
        assert_eq!(decode_transfer("X-UUENCODE", b"x"), Err(UnknownEncoding));
    }
    use crate::summary::summarize_message;

    const RAW: &[u8] = b"From: a@x\r\nSubject: fwd\r\n  folded\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: d@y\r\nSubject: inner\r\n\r\nhi\r\n\
--b--\r\n";

    fn fetch(part: &[usize], text: Option<Text>) -> Option<String> {
        let summary = summarize_message(RAW);
        let section = Section {
            part: part.to_vec(),
            text,
        };
        locate(RAW, &summary, &section).map(|b| String::from_utf8(b.of(RAW).to_vec()).unwrap())
    }

    #[test]
    fn sections_of_a_message_with_a_message_inside() {
        assert_eq!(fetch(&[], None).unwrap().len(), RAW.len());
        assert_eq!(
            fetch(&[], Some(Text::Header)).unwrap(),
            "From: a@x\r\nSubject: fwd\r\n  folded\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        );
        assert!(fetch(&[], Some(Text::Text)).unwrap().starts_with("--b\r\n"));
        assert_eq!(fetch(&[1], None).unwrap(), "See below.");
        assert_eq!(
            fetch(&[1], Some(Text::Mime)).unwrap(),
            "Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(
            fetch(&[2], None).unwrap(),
            "From: d@y\r\nSubject: inner\r\n\r\nhi",
            "the line break before a boundary is the boundary's"
        );
        assert_eq!(
            fetch(&[2], Some(Text::Header)).unwrap(),
            "From: d@y\r\nSubject: inner\r\n\r\n"
        );
        assert_eq!(fetch(&[2], Some(Text::Text)).unwrap(), "hi");
        assert_eq!(
            fetch(&[2, 1], None).unwrap(),
            "hi",
            "the inner message's part 1"
        );
        assert_eq!(fetch(&[1], Some(Text::Header)), None, "not a message");
        assert_eq!(fetch(&[3], None), None);
        assert_eq!(fetch(&[], Some(Text::Mime)), None);
    }

    #[test]
    fn header_fields_in_any_case_with_their_folds() {
        let fields = |names: &[&str], not| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            fetch(&[], Some(Text::HeaderFields { names, not })).unwrap()
        };
        assert_eq!(
            fields(&["SUBJECT", "from"], false),
            "From: a@x\r\nSubject: fwd\r\n  folded\r\n\r\n"
        );
        assert_eq!(
            fields(&["subject", "from"], true),
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        );
        assert_eq!(fields(&["X-None"], false), "\r\n");
    }

    #[test]
    fn a_single_part_message_is_its_own_part_one() {
        let raw = b"Subject: s\r\n\r\nbody\r\n";
        let summary = summarize_message(raw);
        let one = Section {
            part: vec![1],
            text: None,
        };
        assert_eq!(locate(raw, &summary, &one).unwrap().of(raw), b"body\r\n");
    }

    #[test]
    fn every_section_lies_within_the_message() {
        for raw in [RAW, b"", b"x", b"Content-Type: message/rfc822\r\n\r\n"] {
            super::super::invariants::check_sections(raw);
        }
    }

    #[test]
    fn partial_ranges() {
        assert_eq!(partial(10, 0, 4), 0..4);
        assert_eq!(partial(10, 8, 4), 8..10);
        assert_eq!(partial(10, 12, 4), 10..10);
        assert_eq!(partial(10, 2, u32::MAX), 2..10);
    }
}
