//! What IMAP (ENVELOPE, BODYSTRUCTURE, BODY[section]) and JMAP (Email/get) list of a message, parsed once
//! at delivery and stored with it, so listing never parses a body again. Every part carries the byte
//! offsets of its header and body in the stored message: a section is served by slicing.
//!
//! Pure and total: any bytes give an answer (unparsable mail is one text/plain part). Parsed with
//! mail-parser; nesting is cut at [`DEPTH_MAX`] and the part count at [`PARTS_MAX`], beyond which a part
//! is listed without its children.

use mail_parser::{
    Address as ParsedAddress, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders,
    PartType,
};
use serde::{Deserialize, Serialize};

/// Deepest nesting of multiparts and attached messages described. Each level is a recursion step here
/// and in every client's BODYSTRUCTURE parser.
pub const DEPTH_MAX: usize = 32;
/// Most parts described in one message. Each costs a few hundred bytes of stored summary.
pub const PARTS_MAX: usize = 1000;

/// A message's envelope and MIME structure. Stored with every message, so its JSON form is terse: short
/// keys, nothing written for what is absent (a delivery writes it to disk with the message).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    #[serde(rename = "e")]
    pub envelope: Envelope,
    #[serde(rename = "s")]
    pub structure: Part,
}

/// RFC 9051 §7.5.2's ENVELOPE: what the headers say, absent ones empty. Text fields are the header
/// values unfolded, not MIME-decoded (as IMAP sends them); names in addresses are decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(rename = "f", default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Address>,
    #[serde(rename = "se", default, skip_serializing_if = "Vec::is_empty")]
    pub sender: Vec<Address>,
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub reply_to: Vec<Address>,
    #[serde(rename = "t", default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Address>,
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<Address>,
    #[serde(rename = "b", default, skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<Address>,
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

impl Envelope {
    /// IMAP's sender: the Sender header, or From without one.
    pub fn sender_or_from(&self) -> &[Address] {
        if self.sender.is_empty() {
            &self.from
        } else {
            &self.sender
        }
    }

    /// IMAP's reply-to: the Reply-To header, or From without one.
    pub fn reply_to_or_from(&self) -> &[Address] {
        if self.reply_to.is_empty() {
            &self.from
        } else {
            &self.reply_to
        }
    }
}

/// One address as IMAP lists it. A group is a start marker (`mailbox` the group's name, `host` none), its
/// members, and an end marker (all none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One MIME part (BODYSTRUCTURE's fields) and where it lies in the stored bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Lower case: `text`, `multipart`, `message` ...
    #[serde(rename = "t", default)]
    pub media_type: String,
    #[serde(rename = "st", default)]
    pub media_subtype: String,
    /// Content-Type parameters in order, names lower case (`charset`, `boundary`, `name` ...).
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<(String, String)>,
    #[serde(rename = "id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "ds", default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Content-Transfer-Encoding, upper case; `7BIT` when absent.
    #[serde(rename = "e", default)]
    pub encoding: String,
    /// Octets of the body as stored (`body_end - body_start`).
    #[serde(rename = "z", default)]
    pub size: u64,
    /// Lines of the body, for `text/*` and `message/rfc822`.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u64>,
    /// Content-Disposition: its value (lower case) and parameters.
    #[serde(rename = "di", default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<(String, Vec<(String, String)>)>,
    #[serde(rename = "la", default, skip_serializing_if = "Vec::is_empty")]
    pub language: Vec<String>,
    #[serde(rename = "lo", default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Where the part's header starts, its body starts, and its body ends, in the stored message.
    #[serde(rename = "hs", default)]
    pub header_start: u64,
    #[serde(rename = "bs", default)]
    pub body_start: u64,
    #[serde(rename = "be", default)]
    pub body_end: u64,
    /// A multipart's parts.
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Part>,
    /// An attached message's own summary (`message/rfc822`, `message/global`).
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Box<Summary>>,
}

impl Summary {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Option<Summary> {
        serde_json::from_str(text).ok()
    }
}

/// Parses `raw` once into its summary.
pub fn summarize_message(raw: &[u8]) -> Summary {
    let mut budget = PARTS_MAX;
    match MessageParser::default().parse(raw) {
        Some(message) => summarize(&message, raw, 0, &mut budget),
        None => Summary {
            envelope: Envelope::default(),
            structure: plain_part(raw, 0, raw.len()),
        },
    }
}

/// The summary of `message`; its offsets (a nested message's too) count from the start of `raw`.
fn summarize(message: &Message<'_>, raw: &[u8], depth: usize, budget: &mut usize) -> Summary {
    Summary {
        envelope: envelope(message, raw),
        structure: part(message, 0, raw, depth, budget),
    }
}

/// A part with no structure: text/plain over `raw[start..end]`, its header up to the first blank line.
fn plain_part(raw: &[u8], start: usize, end: usize) -> Part {
    let slice = &raw[start..end];
    let body = find_body(slice).map_or(end, |b| start + b);
    let mut p = Part {
        media_type: "text".into(),
        media_subtype: "plain".into(),
        params: vec![("charset".into(), "us-ascii".into())],
        encoding: "7BIT".into(),
        header_start: start as u64,
        body_start: body as u64,
        body_end: end as u64,
        ..Part::default()
    };
    p.size = p.body_end - p.body_start;
    p.lines = Some(count_lines(&raw[body..end]));
    p
}

fn find_body(bytes: &[u8]) -> Option<usize> {
    let crlf = memchr::memmem::find(bytes, b"\r\n\r\n").map(|i| i + 4);
    let lf = memchr::memmem::find(bytes, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn count_lines(body: &[u8]) -> u64 {
    let lf = memchr::memchr_iter(b'\n', body).count() as u64;
    // A last line without its line end is a line too.
    lf + u64::from(body.last().is_some_and(|&b| b != b'\n'))
}

fn part(message: &Message<'_>, index: usize, raw: &[u8], depth: usize, budget: &mut usize) -> Part {
    *budget = budget.saturating_sub(1);
    let Some(mp) = message.parts.get(index) else {
        return plain_part(raw, 0, 0);
    };
    let within = |offset: u32| (offset as usize).min(raw.len());
    let (header_start, body_start) = (within(mp.offset_header), within(mp.offset_body));
    let body_end = within(mp.offset_end).max(body_start);
    let header_start = header_start.min(body_start);
    let (media_type, media_subtype, params) = match mp.content_type() {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("plain").to_ascii_lowercase(),
            attributes(ct.attributes()),
        ),
        None => (
            "text".into(),
            "plain".into(),
            vec![("charset".into(), "us-ascii".into())],
        ),
    };
    let mut p = Part {
        id: mp.content_id().map(|id| format!("<{id}>")),
        description: mp.content_description().map(str::to_string),
        encoding: mp
            .content_transfer_encoding()
            .map_or_else(|| "7BIT".to_string(), str::to_ascii_uppercase),
        disposition: mp
            .content_disposition()
            .map(|d| (d.ctype().to_ascii_lowercase(), attributes(d.attributes()))),
        language: match mp.content_language() {
            HeaderValue::Text(t) => vec![t.to_string()],
            HeaderValue::TextList(list) => list.iter().map(|t| t.to_string()).collect(),
            _ => Vec::new(),
        },
        location: mp.content_location().map(str::to_string),
        header_start: header_start as u64,
        body_start: body_start as u64,
        body_end: body_end as u64,
        size: (body_end - body_start) as u64,
        media_type,
        media_subtype,
        params,
        ..Part::default()
    };
    let deeper = depth < DEPTH_MAX && *budget > 0;
    match &mp.body {
        PartType::Multipart(ids) if deeper => {
            for &id in ids {
                if *budget == 0 {
                    break;
                }
                p.children
                    .push(part(message, id as usize, raw, depth + 1, budget));
            }
        }
        PartType::Message(inner) if deeper => {
            // mail-parser gives a nested message's offsets in the outer message's bytes. Described only
            // when its bytes are the stored ones (not a decoded base64 copy), so that they hold.
            let start = offset_in(raw, inner.raw_message());
            let first = inner.parts.first().map(|q| q.offset_header as usize);
            if start.is_some() && first >= start {
                p.message = Some(Box::new(summarize(inner, raw, depth + 1, budget)));
            }
        }
        _ => {}
    }
    if p.media_type == "text" || p.message.is_some() {
        p.lines = Some(count_lines(&raw[body_start..body_end]));
    }
    p
}

/// Where `inner` starts in `raw`, when it is a slice of it.
fn offset_in(raw: &[u8], inner: &[u8]) -> Option<usize> {
    let start = (inner.as_ptr() as usize).checked_sub(raw.as_ptr() as usize)?;
    (start + inner.len() <= raw.len()).then_some(start)
}

fn attributes(list: Option<&[mail_parser::Attribute<'_>]>) -> Vec<(String, String)> {
    list.unwrap_or_default()
        .iter()
        .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
        .collect()
}

fn envelope(message: &Message<'_>, raw: &[u8]) -> Envelope {
    let text = |name: HeaderName<'_>| raw_header(message, raw, name);
    Envelope {
        date: text(HeaderName::Date),
        subject: text(HeaderName::Subject),
        from: addresses(message.from()),
        sender: addresses(message.sender()),
        reply_to: addresses(message.reply_to()),
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        bcc: addresses(message.bcc()),
        in_reply_to: text(HeaderName::InReplyTo),
        message_id: text(HeaderName::MessageId),
    }
}

/// A top-level header's value as it stands in the message: unfolded, trimmed, not decoded.
fn raw_header(message: &Message<'_>, raw: &[u8], name: HeaderName<'_>) -> Option<String> {
    let header = message
        .parts
        .first()?
        .headers
        .iter()
        .find(|h| h.name == name)?;
    let start = (header.offset_start as usize).min(raw.len());
    let end = (header.offset_end as usize).clamp(start, raw.len());
    let value = String::from_utf8_lossy(&raw[start..end]);
    let unfolded: String = value.replace("\r\n", "").replace('\n', "");
    Some(unfolded.trim().to_string())
}

fn addresses(parsed: Option<&ParsedAddress<'_>>) -> Vec<Address> {
    let one = |a: &mail_parser::Addr<'_>| {
        let (mailbox, host) = match a.address.as_deref() {
            Some(addr) => match addr.rsplit_once('@') {
                Some((local, domain)) => (Some(local.to_string()), Some(domain.to_string())),
                None => (Some(addr.to_string()), None),
            },
            None => (None, None),
        };
        Address {
            name: a.name.as_deref().map(str::to_string),
            mailbox,
            host,
        }
    };
    match parsed {
        None => Vec::new(),
        Some(ParsedAddress::List(list)) => list.iter().map(one).collect(),
        Some(ParsedAddress::Group(groups)) => {
            let mut out = Vec::new();
            for g in groups {
                match &g.name {
                    // A group: start marker, members, end marker (RFC 9051 §7.5.2).
                    Some(name) => {
                        out.push(Address {
                            name: None,
                            mailbox: Some(name.to_string()),
                            host: None,
                        });
                        out.extend(g.addresses.iter().map(one));
                        out.push(Address::default());
                    }
                    None => out.extend(g.addresses.iter().map(one)),
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(raw: &[u8], from: u64, to: u64) -> &[u8] {
        &raw[from as usize..to as usize]
    }

    #[test]
    fn a_plain_message_takes_the_defaults() {
        let raw = b"From: Ann <ann@example.org>\r\nTo: bob@x.org, Carol <carol@y.org>\r\nSubject: Hi\r\n \
                    there\r\nDate: Mon, 30 Nov 2026 12:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nline 1\r\nline 2\r\n";
        let s = summarize_message(raw);
        assert_eq!(s.envelope.subject.as_deref(), Some("Hi there"));
        assert_eq!(
            s.envelope.date.as_deref(),
            Some("Mon, 30 Nov 2026 12:00:00 +0000")
        );
        assert_eq!(s.envelope.message_id.as_deref(), Some("<1@x>"));
        assert_eq!(
            s.envelope.from,
            vec![Address {
                name: Some("Ann".into()),
                mailbox: Some("ann".into()),
                host: Some("example.org".into())
            }]
        );
        assert_eq!(s.envelope.to.len(), 2);
        assert_eq!(s.envelope.sender_or_from(), s.envelope.from.as_slice());
        assert!(s.envelope.in_reply_to.is_none());
        let p = &s.structure;
        assert_eq!(
            (p.media_type.as_str(), p.media_subtype.as_str()),
            ("text", "plain")
        );
        assert_eq!(
            p.params,
            vec![("charset".to_string(), "us-ascii".to_string())]
        );
        assert_eq!(p.encoding, "7BIT");
        assert_eq!(
            slice(raw, p.body_start, p.body_end),
            b"line 1\r\nline 2\r\n"
        );
        assert_eq!((p.size, p.lines), (16, Some(2)));
        assert_eq!(p.header_start, 0);
        assert_eq!(Summary::from_json(&s.to_json()), Some(s));
    }

    #[test]
    fn nested_multiparts_attachments_and_an_attached_message() {
        let raw = concat!(
            "From: a@x\r\nSubject: mixed\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n",
            "preamble\r\n--outer\r\n",
            "Content-Type: multipart/alternative; boundary=inner\r\n\r\n",
            "--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n",
            "--inner\r\nContent-Type: text/html\r\n\r\n<p>hello</p>\r\n--inner--\r\n",
            "--outer\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n",
            "Content-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n",
            "Content-ID: <pdf1>\r\n\r\nJVBERi0=\r\n",
            "--outer\r\nContent-Type: message/rfc822\r\n\r\n",
            "From: Inner <in@z.org>\r\nSubject: inside\r\n\r\ninner body\r\n",
            "--outer--\r\n"
        )
        .as_bytes();
        let s = summarize_message(raw);
        let root = &s.structure;
        assert_eq!(
            (root.media_type.as_str(), root.media_subtype.as_str()),
            ("multipart", "mixed")
        );
        assert_eq!(
            root.params,
            vec![("boundary".to_string(), "outer".to_string())]
        );
        assert_eq!(root.children.len(), 3);
        let alt = &root.children[0];
        assert_eq!(alt.media_subtype, "alternative");
        assert_eq!(alt.children.len(), 2);
        let text = &alt.children[0];
        assert_eq!(slice(raw, text.body_start, text.body_end), b"hello");
        assert_eq!(
            slice(raw, text.header_start, text.body_start),
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        );
        assert_eq!(
            text.params,
            vec![("charset".to_string(), "utf-8".to_string())]
        );
        let html = &alt.children[1];
        assert_eq!(slice(raw, html.body_start, html.body_end), b"<p>hello</p>");
        let pdf = &root.children[1];
        assert_eq!(
            (pdf.media_type.as_str(), pdf.encoding.as_str()),
            ("application", "BASE64")
        );
        assert_eq!(pdf.id.as_deref(), Some("<pdf1>"));
        assert_eq!(
            pdf.disposition,
            Some((
                "attachment".to_string(),
                vec![("filename".to_string(), "a.pdf".to_string())]
            ))
        );
        assert_eq!(slice(raw, pdf.body_start, pdf.body_end), b"JVBERi0=");
        assert_eq!(pdf.lines, None);
        let attached = &root.children[2];
        assert_eq!(
            (
                attached.media_type.as_str(),
                attached.media_subtype.as_str()
            ),
            ("message", "rfc822")
        );
        let inner = attached
            .message
            .as_ref()
            .expect("the attached message is described");
        assert_eq!(inner.envelope.subject.as_deref(), Some("inside"));
        assert_eq!(inner.envelope.from[0].name.as_deref(), Some("Inner"));
        assert_eq!(
            slice(raw, inner.structure.body_start, inner.structure.body_end),
            b"inner body"
        );
        assert_eq!(inner.structure.header_start, attached.body_start);
        for part in [alt, text, html, pdf, attached] {
            assert!(part.header_start <= part.body_start && part.body_start <= part.body_end);
            assert!(part.body_end as usize <= raw.len());
        }
        assert_eq!(Summary::from_json(&s.to_json()), Some(s));
    }

    #[test]
    fn groups_are_marked_as_imap_lists_them() {
        let raw = b"From: a@x\r\nTo: Friends: ann@x.org, bob@y.org;, carol@z.org\r\n\r\nbody";
        let to = summarize_message(raw).envelope.to;
        let mailboxes: Vec<Option<&str>> = to.iter().map(|a| a.mailbox.as_deref()).collect();
        assert_eq!(
            mailboxes,
            vec![
                Some("Friends"),
                Some("ann"),
                Some("bob"),
                None,
                Some("carol")
            ]
        );
        assert_eq!(to[0].host, None);
        assert_eq!(to[3], Address::default());
    }

    #[test]
    fn any_bytes_give_a_summary_within_the_message() {
        for raw in [
            &b""[..],
            b"no header at all",
            b"Subject: lf only\n\nbody\nmore",
            b"\xff\xfe\x00garbage\r\n\r\n\x00",
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n--x--",
            b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nRnJvbTogYUB4DQoNCmhp\r\n",
        ] {
            let s = summarize_message(raw);
            let mut stack = vec![&s.structure];
            while let Some(p) = stack.pop() {
                assert!(p.header_start <= p.body_start && p.body_start <= p.body_end, "{raw:?}");
                assert!(p.body_end as usize <= raw.len(), "{raw:?}");
                stack.extend(p.children.iter());
                if let Some(m) = &p.message {
                    stack.push(&m.structure);
                }
            }
            assert_eq!(Summary::from_json(&s.to_json()), Some(s));
        }
        let lf = summarize_message(b"Subject: lf only\n\nbody\nmore");
        assert_eq!(lf.structure.lines, Some(2));
    }

    #[test]
    fn deep_nesting_is_cut_at_the_limit() {
        let mut raw = String::new();
        for i in 0..(DEPTH_MAX + 5) {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
            ));
        }
        raw.push_str("\r\ntext\r\n");
        let s = summarize_message(raw.as_bytes());
        let mut depth = 0;
        let mut p = &s.structure;
        while let Some(child) = p.children.first() {
            depth += 1;
            p = child;
        }
        assert!(depth <= DEPTH_MAX, "{depth}");
    }
}
