//! A message read once, at delivery, into what IMAP's ENVELOPE, BODYSTRUCTURE and BODY[section] and
//! JMAP's Email/get need, so that listing and fetching never parse a body again: the store keeps this
//! [`Summary`] as JSON next to the message bytes, and every part carries byte offsets into those bytes,
//! so `BODY[1.2]`, `BODY[1.2.MIME]`, `BODY[HEADER]` and `BODY[TEXT]` are slices of what is stored.
//!
//! The MIME structure is mail-parser's, so IMAP sees the same parts as everything else that reads mail
//! with it ([`crate::mime`]). Pure and total: any bytes give a summary, never a panic or an error.

mod envelope;
pub mod invariants;

pub use envelope::{Address, Envelope};

use mail_parser::{
    ContentType, Encoding, Header, HeaderName, HeaderValue, MessageParser, PartType,
};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// How deep multiparts and encapsulated messages are described. Each level costs a stack frame here and
/// three levels of JSON nesting, and serde_json refuses to read more than 128 levels: 32 keeps a stored
/// summary readable with room to spare, and real mail (a forward of a forward of a reply) nests far less.
/// A multipart or message at this depth is left [`Body::Opaque`].
pub const DEPTH_MAX: usize = 32;

/// How many parts a summary describes, counting every part at every depth. Each costs a few hundred bytes
/// of stored JSON, read again on every BODYSTRUCTURE: 1,000 bounds that to a few hundred KB however many
/// parts a hostile message holds, and is far beyond real mail. Once they are spent, a multipart lists no
/// more children (the ones it lists keep their numbers) and a message is left [`Body::Opaque`].
pub const PARTS_MAX: usize = 1_000;

/// A message as delivery read it: the envelope of its header, and its MIME structure.
///
/// Stored as JSON ([`Summary::to_json`]) with every message, so its keys are short and nothing is written
/// for what is absent; a field added later must be `#[serde(default)]` so summaries already stored still
/// read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    #[serde(rename = "e")]
    pub envelope: Envelope,
    /// The whole message as a part, spanning exactly the message: all of the stored bytes, or the body of
    /// the message/rfc822 part it is inside.
    #[serde(rename = "s")]
    pub structure: Part,
    /// The Message-ID that names the message's conversation (JMAP's threads): the first of its
    /// References, else its In-Reply-To, else its own Message-ID; `None` for a message with none, and
    /// for a nested message. Messages stored before it was kept have none ([`Summary::thread_key_from_json`]
    /// falls back on the envelope).
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub thread_root: Option<String>,
    /// The Message-IDs of its References field, oldest first, without angle brackets: IMAP's
    /// THREAD=REFERENCES links a message to each of them. At most the last [`REFERENCES_MAX`], each at
    /// most [`MESSAGE_ID_BYTES_MAX`] long. Empty for a message without References, for a nested message,
    /// and for messages stored before it was kept (which thread by their In-Reply-To, as RFC 5256 has a
    /// message without References do).
    #[serde(rename = "rf", default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

/// How many of a References field's Message-IDs a summary keeps: the last ones, which name the
/// nearest ancestors. Each costs its length in every stored summary and in the memory of a THREAD over
/// the mailbox; 20 links a reply to its parent and 19 more generations, and a long thread's first
/// message is kept apart as [`Summary::thread_root`].
pub const REFERENCES_MAX: usize = 20;

/// The longest Message-ID a summary keeps of References. Real ones are well under 100 octets; a longer
/// one is dropped rather than stored.
pub const MESSAGE_ID_BYTES_MAX: usize = 250;

/// One MIME part, as BODYSTRUCTURE describes it, and where it lies in the message bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Lower case; `text` when there is no usable Content-Type (RFC 2045 §5.2), or `message` for a part of
    /// a multipart/digest (RFC 2046 §5.1.5).
    #[serde(rename = "t")]
    pub media_type: String,
    /// Lower case; `plain` (or `rfc822`) by the same defaults, `mixed` for a multipart that names none.
    #[serde(rename = "st")]
    pub subtype: String,
    /// Content-Type parameters in order, names lower case, values as mail-parser decodes them (RFC 2231
    /// continuations joined, RFC 2231 and 2047 encodings decoded: a value may not be ASCII). A text part
    /// that names no charset gets `charset=us-ascii` last, the default of RFC 2046 §4.1.2 that IMAP servers
    /// show and JMAP's `charset` requires (RFC 8621 §4.1.4).
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<(String, String)>,
    /// The raw Content-ID, angle brackets included.
    #[serde(rename = "id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The raw Content-Description, not decoded.
    #[serde(rename = "ds", default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Content-Transfer-Encoding, upper case; `7BIT` when absent.
    #[serde(rename = "en")]
    pub encoding: String,
    /// The number of line feeds in the body, for `text/*` and `message/rfc822` or `message/global`,
    /// which BODYSTRUCTURE gives a line count (counted as Dovecot counts).
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u64>,
    #[serde(rename = "di", default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<Disposition>,
    /// Content-Language tags, raw.
    #[serde(rename = "la", default, skip_serializing_if = "Vec::is_empty")]
    pub language: Vec<String>,
    /// The raw Content-Location.
    #[serde(rename = "lo", default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Where the part's header begins: `BODY[n.MIME]` (or `BODY[HEADER]` of a message) is
    /// `raw[header_start..body_start]`, the blank line that ends it included.
    #[serde(rename = "hs")]
    pub header_start: usize,
    /// Where the part's body begins: `BODY[n]` (or `BODY[TEXT]`) is `raw[body_start..body_end]`; the line
    /// break before a multipart's next boundary belongs to the boundary, not to the body.
    #[serde(rename = "bs")]
    pub body_start: usize,
    #[serde(rename = "be")]
    pub body_end: usize,
    #[serde(rename = "b")]
    pub body: Body,
}

/// What a part holds beneath it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Nothing described: a single part, or a multipart or message whose inside is not described (no
    /// boundary, or a boundary never found; a message sent base64 or quoted-printable encoded, which
    /// RFC 2046 forbids; past [`DEPTH_MAX`] or [`PARTS_MAX`]). IMAP must show a multipart or message
    /// left opaque as something BODYSTRUCTURE allows (Dovecot, for a multipart without parts, shows an
    /// empty text/plain part).
    #[serde(rename = "o")]
    Opaque,
    /// A multipart's parts, at least one, in order.
    #[serde(rename = "mp")]
    Multipart(Vec<Part>),
    /// A `message/rfc822` or `message/global` part's message, which is exactly this part's body.
    #[serde(rename = "msg")]
    Message(Box<Summary>),
}

/// Content-Disposition: its type (lower case) and parameters (as [`Part::params`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposition {
    #[serde(rename = "k")]
    pub kind: String,
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<(String, String)>,
}

impl Summary {
    /// The summary as JSON, for the store.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a summary is strings, numbers and lists")
    }

    /// A summary [`Summary::to_json`] wrote; `None` for anything else.
    pub fn from_json(json: &str) -> Option<Summary> {
        serde_json::from_str(json).ok()
    }

    /// Only the envelope of a stored summary (SEARCH's envelope keys): the structure is skipped over,
    /// not built.
    pub fn envelope_from_json(json: &str) -> Option<Envelope> {
        #[derive(Deserialize)]
        struct EnvelopeOnly {
            #[serde(rename = "e")]
            envelope: Envelope,
        }
        serde_json::from_str::<EnvelopeOnly>(json)
            .ok()
            .map(|e| e.envelope)
    }

    /// The envelope and References of a stored summary (THREAD's input); the structure is skipped over.
    pub fn threading_from_json(json: &str) -> Option<(Envelope, Vec<String>)> {
        #[derive(Deserialize)]
        struct ThreadingOnly {
            #[serde(rename = "e")]
            envelope: Envelope,
            #[serde(rename = "rf", default)]
            references: Vec<String>,
        }
        serde_json::from_str::<ThreadingOnly>(json)
            .ok()
            .map(|t| (t.envelope, t.references))
    }

    /// The Message-ID a stored summary says names the message's conversation: its `thread_root`, or for
    /// summaries stored before that was kept, its In-Reply-To or else its Message-ID.
    pub fn thread_key_from_json(json: &str) -> Option<String> {
        Summary::envelope_and_thread_key_from_json(json)?.1
    }

    /// The envelope and [`Summary::thread_key_from_json`]'s key, from one reading of the JSON.
    pub fn envelope_and_thread_key_from_json(json: &str) -> Option<(Envelope, Option<String>)> {
        #[derive(Deserialize)]
        struct ThreadOnly {
            #[serde(rename = "e")]
            envelope: Envelope,
            #[serde(rename = "t", default)]
            thread_root: Option<String>,
        }
        let t = serde_json::from_str::<ThreadOnly>(json).ok()?;
        let envelope = t.envelope;
        let key = t
            .thread_root
            .or_else(|| first_message_id(envelope.in_reply_to.as_deref()?))
            .or_else(|| first_message_id(envelope.message_id.as_deref()?));
        Some((envelope, key))
    }

    /// The part an IMAP section number names (`[1, 2]` for `BODY[1.2]`), by RFC 9051 §6.4.5: a message's
    /// parts are its multipart's children, or its one part, numbered from 1; a `message/rfc822` part's
    /// own parts are those of the message inside. `None` when there is no such part or `section` is empty.
    pub fn part(&self, section: &[usize]) -> Option<&Part> {
        let mut found = None;
        let mut level = &self.structure;
        let mut is_message = true;
        for &number in section {
            let parts = match &level.body {
                Body::Multipart(children) => children.as_slice(),
                _ if is_message => std::slice::from_ref(level),
                _ => return None,
            };
            let part = parts.get(number.checked_sub(1)?)?;
            (level, is_message) = match &part.body {
                Body::Message(inner) => (&inner.structure, true),
                _ => (part, false),
            };
            found = Some(part);
        }
        found
    }
}

impl Part {
    /// The size BODYSTRUCTURE gives: the body's octets as stored, before any decoding.
    pub fn size(&self) -> usize {
        self.body_end.saturating_sub(self.body_start)
    }

    /// The part's header as stored (`BODY[n.MIME]`, or `BODY[HEADER]` of a message); empty when `raw`
    /// is not the message this summary was made from.
    pub fn header<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        raw.get(self.header_start..self.body_start)
            .unwrap_or_default()
    }

    /// The part's body as stored (`BODY[n]`, or `BODY[TEXT]` of a message), still transfer-encoded.
    pub fn body<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        raw.get(self.body_start..self.body_end).unwrap_or_default()
    }

    /// The value of the Content-Type parameter `name` (ASCII case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A multipart's boundary.
    pub fn boundary(&self) -> Option<&str> {
        (self.media_type == "multipart")
            .then(|| self.param("boundary"))
            .flatten()
    }
}

/// Reads `raw` once into its [`Summary`]. Bytes with no header at all are one text/plain body.
pub fn summarize_message(raw: &[u8]) -> Summary {
    // mail-parser parses only the MIME headers, which decide the structure, and the ids the thread root
    // comes from. Every other field is read raw from the bytes ([`Envelope`]), so parsing it would be
    // wasted work on every delivery: the Received fields on top of each message cost more than the rest.
    static ONLY_THESE: LazyLock<MessageParser> =
        LazyLock::new(|| MessageParser::new().with_mime_headers().with_message_ids());
    summarize_with(&ONLY_THESE, raw)
}

/// [`summarize_message`] with mail-parser set up as `parser`.
fn summarize_with(parser: &MessageParser, raw: &[u8]) -> Summary {
    let Some(message) = parser.parse(raw) else {
        return Summary {
            envelope: Envelope::default(),
            structure: Part {
                lines: Some(count_lines(raw)),
                ..Part::plain_text(0, 0, raw.len())
            },
            thread_root: None,
            references: Vec::new(),
        };
    };
    let mut walk = Walk {
        raw,
        parts_left: PARTS_MAX,
    };
    let mut summary = walk.message(&message.parts, (0, raw.len()), 0);
    summary.thread_root = thread_root(&message);
    summary.references = references(&message);
    summary
}

/// The last [`REFERENCES_MAX`] Message-IDs of References that are no longer than
/// [`MESSAGE_ID_BYTES_MAX`], oldest first.
fn references(message: &mail_parser::Message<'_>) -> Vec<String> {
    let ids: Vec<&str> = match message.references() {
        mail_parser::HeaderValue::Text(t) => vec![t.as_ref()],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.as_ref()).collect(),
        _ => Vec::new(),
    };
    let kept: Vec<&str> = ids
        .into_iter()
        .filter(|id| !id.is_empty() && id.len() <= MESSAGE_ID_BYTES_MAX)
        .collect();
    let skip = kept.len().saturating_sub(REFERENCES_MAX);
    kept[skip..].iter().map(|id| id.to_string()).collect()
}

/// The first of References, else of In-Reply-To, else the Message-ID (RFC 5322 §3.6.4: References
/// keeps the conversation's first message first).
fn thread_root(message: &mail_parser::Message<'_>) -> Option<String> {
    let first = |v: &mail_parser::HeaderValue<'_>| match v {
        mail_parser::HeaderValue::Text(t) => Some(t.to_string()),
        mail_parser::HeaderValue::TextList(l) => l.first().map(|t| t.to_string()),
        _ => None,
    };
    first(message.references())
        .or_else(|| first(message.in_reply_to()))
        .or_else(|| message.message_id().map(str::to_string))
        .filter(|id| !id.is_empty() && id.len() <= 998)
}

/// The first `<...>` of a raw field value, without its brackets (or the whole trimmed value).
pub fn first_message_id(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let id = match raw.find('<') {
        Some(start) => raw[start + 1..].split('>').next().unwrap_or(""),
        None => raw.split_whitespace().next().unwrap_or(""),
    };
    (!id.is_empty()).then(|| id.to_string())
}

/// One pass over mail-parser's parts, turning them into [`Part`]s within the bounds.
struct Walk<'a> {
    raw: &'a [u8],
    parts_left: usize,
}

type Parts<'x> = [mail_parser::MessagePart<'x>];

impl Walk<'_> {
    /// The message whose parts are `parts` (its root first), which is exactly `raw[range]`.
    fn message(&mut self, parts: &Parts<'_>, range: (usize, usize), depth: usize) -> Summary {
        let structure = self.part(parts, 0, range, true, false, depth);
        let headers = parts.first().map_or(&[][..], |p| &p.headers);
        Summary {
            envelope: Envelope::read(self.raw, headers, structure.body_start),
            structure,
            thread_root: None,
            references: Vec::new(),
        }
    }

    /// `parts[id]`, which lies within `raw[range]` (and is exactly that when `whole`). mail-parser's
    /// offsets are clamped into the range, so a part never strays outside its parent however broken the
    /// message. The caller has checked that a part is left in the budget.
    fn part(
        &mut self,
        parts: &Parts<'_>,
        id: usize,
        (low, high): (usize, usize),
        whole: bool,
        in_digest: bool,
        depth: usize,
    ) -> Part {
        self.parts_left = self.parts_left.saturating_sub(1);
        let Some(p) = parts.get(id) else {
            return Part::plain_text(low, low, high);
        };
        let header_start = if whole {
            low
        } else {
            (p.offset_header as usize).clamp(low, high)
        };
        let body_start = (p.offset_body as usize).clamp(header_start, high);
        let body_end = if whole {
            high
        } else {
            (p.offset_end as usize).clamp(body_start, high)
        };
        let mut part = Part::plain_text(header_start, body_start, body_end);
        part.describe(self.raw, &p.headers, in_digest);
        let is_message = part.media_type == "message";
        part.lines = (part.media_type == "text"
            || is_message && matches!(part.subtype.as_str(), "rfc822" | "global"))
        .then(|| count_lines(part.body(self.raw)));

        let room = depth < DEPTH_MAX;
        part.body = match &p.body {
            PartType::Multipart(ids) if room && part.media_type == "multipart" => {
                let digest = part.subtype == "digest";
                let mut children: Vec<Part> = Vec::new();
                // mail-parser numbers a part's children after it; anything else would loop.
                for child in ids.iter().map(|&c| c as usize).filter(|&c| c > id) {
                    if self.parts_left == 0 {
                        break;
                    }
                    // Each part starts where the one before it ended, so none overlap.
                    let low = children.last().map_or(body_start, |c| c.body_end);
                    let range = (low, body_end);
                    children.push(self.part(parts, child, range, false, digest, depth + 1));
                }
                if children.is_empty() {
                    Body::Opaque
                } else {
                    Body::Multipart(children)
                }
            }
            // mail-parser reads an encoded message from its decoded bytes, where its offsets point: only
            // a message read in place has offsets into `raw`.
            PartType::Message(inner)
                if room
                    && is_message
                    && p.encoding == Encoding::None
                    && self.parts_left > 0
                    && !inner.parts.is_empty() =>
            {
                let range = (body_start, body_end);
                Body::Message(Box::new(self.message(&inner.parts, range, depth + 1)))
            }
            _ => Body::Opaque,
        };
        part
    }
}

impl Part {
    /// Fills in what the part's Content-* headers say (`headers`, the part's, as mail-parser read
    /// them), with the defaults of RFC 2045 and RFC 2046 for what they leave out.
    fn describe(&mut self, raw: &[u8], headers: &[Header<'_>], in_digest: bool) {
        // The last Content-Type, as mail-parser reads it to decide the structure.
        let content_type = last(headers, HeaderName::ContentType).and_then(|v| v.as_content_type());
        match content_type {
            Some(ct) if ct.subtype().is_some() || ct.ctype().eq_ignore_ascii_case("multipart") => {
                self.media_type = ct.ctype().to_ascii_lowercase();
                self.subtype = ct.subtype().unwrap_or("mixed").to_ascii_lowercase();
                self.params = params(ct);
            }
            None if in_digest => {
                (self.media_type, self.subtype) = ("message".into(), "rfc822".into());
                self.params.clear();
            }
            _ => {}
        }
        if self.media_type == "text" && self.param("charset").is_none() {
            self.params.push(("charset".into(), "us-ascii".into()));
        }
        let value = |name| envelope::last_value(raw, headers, &name, self.body_start);
        self.id = value(HeaderName::ContentId);
        self.description = value(HeaderName::ContentDescription);
        self.location = value(HeaderName::ContentLocation);
        self.language = value(HeaderName::ContentLanguage)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(encoding) = value(HeaderName::ContentTransferEncoding).filter(|e| !e.is_empty())
        {
            self.encoding = encoding.to_ascii_uppercase();
        }
        self.disposition = last(headers, HeaderName::ContentDisposition)
            .and_then(|v| v.as_content_type())
            .map(|d| Disposition {
                kind: d.ctype().to_ascii_lowercase(),
                params: params(d),
            });
    }

    /// A part with every default of RFC 2045: text/plain, US-ASCII, 7bit.
    pub(crate) fn plain_text(header_start: usize, body_start: usize, body_end: usize) -> Part {
        Part {
            media_type: "text".into(),
            subtype: "plain".into(),
            params: vec![("charset".into(), "us-ascii".into())],
            id: None,
            description: None,
            encoding: "7BIT".into(),
            lines: None,
            disposition: None,
            language: Vec::new(),
            location: None,
            header_start,
            body_start,
            body_end,
            body: Body::Opaque,
        }
    }
}

/// The value of the last `name` header, the one mail-parser's `header_value` gives.
fn last<'a, 'x>(headers: &'a [Header<'x>], name: HeaderName<'_>) -> Option<&'a HeaderValue<'x>> {
    headers
        .iter()
        .rev()
        .find(|h| h.name == name)
        .map(|h| &h.value)
}

fn params(content_type: &ContentType<'_>) -> Vec<(String, String)> {
    content_type
        .attributes()
        .unwrap_or_default()
        .iter()
        .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
        .collect()
}

fn count_lines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use super::invariants::{self, check};
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    fn mailbox(name: Option<&str>, mailbox: &str, host: &str) -> Address {
        Address {
            name: name.map(str::to_string),
            ..Address::mailbox(mailbox, host)
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn children(part: &Part) -> &[Part] {
        match &part.body {
            Body::Multipart(children) => children,
            other => panic!("not a multipart: {other:?}"),
        }
    }

    #[test]
    fn a_plain_text_message_has_every_default() {
        let header = "From: Alice <alice@x>\r\nTo: bob@y\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <m1@x>\r\nIn-Reply-To: <m0@x>\r\n\r\n";
        let raw = format!("{header}Hello\r\nworld\r\n");
        let summary = check(raw.as_bytes());
        assert_eq!(
            summary,
            Summary {
                envelope: Envelope {
                    date: some("Mon, 1 Jan 2024 10:00:00 +0000"),
                    subject: some("=?utf-8?q?Gr=C3=BC=C3=9Fe?="),
                    from: vec![mailbox(Some("Alice"), "alice", "x")],
                    to: vec![mailbox(None, "bob", "y")],
                    in_reply_to: some("<m0@x>"),
                    message_id: some("<m1@x>"),
                    ..Envelope::default()
                },
                structure: Part {
                    media_type: "text".into(),
                    subtype: "plain".into(),
                    params: pairs(&[("charset", "us-ascii")]),
                    id: None,
                    description: None,
                    encoding: "7BIT".into(),
                    lines: Some(2),
                    disposition: None,
                    language: vec![],
                    location: None,
                    header_start: 0,
                    body_start: header.len(),
                    body_end: raw.len(),
                    body: Body::Opaque,
                },
                thread_root: Some("m0@x".into()),
                references: Vec::new(),
            }
        );
        // A summary stored before thread roots were kept falls back on the envelope.
        let old = summary.to_json().replace(r#","t":"m0@x""#, "");
        assert_eq!(Summary::thread_key_from_json(&old).as_deref(), Some("m0@x"));
        let threaded =
            summarize_message(b"References: <a@x> <b@x>\r\nIn-Reply-To: <b@x>\r\n\r\nhi");
        assert_eq!(threaded.thread_root.as_deref(), Some("a@x"));
        assert_eq!(threaded.references, ["a@x", "b@x"]);
        let (_, references) = Summary::threading_from_json(&threaded.to_json()).unwrap();
        assert_eq!(references, ["a@x", "b@x"]);
        // Only the last REFERENCES_MAX are kept, and none too long to be a real Message-ID.
        let long = format!("<{}@x>", "a".repeat(MESSAGE_ID_BYTES_MAX));
        let many: Vec<String> = (0..30).map(|i| format!("<r{i}@x>")).collect();
        let message = format!("References: {long} {}\r\n\r\nhi", many.join(" "));
        let kept = summarize_message(message.as_bytes()).references;
        assert_eq!(kept.len(), REFERENCES_MAX);
        assert_eq!((kept[0].as_str(), kept[19].as_str()), ("r10@x", "r29@x"));
        let part = &summary.structure;
        assert_eq!(part.header(raw.as_bytes()), header.as_bytes());
        assert_eq!(part.body(raw.as_bytes()), b"Hello\r\nworld\r\n");
        assert_eq!(part.size(), 14);
        // No Sender or Reply-To: IMAP shows From in their place.
        let from = [mailbox(Some("Alice"), "alice", "x")];
        assert_eq!(summary.envelope.sender_or_from(), from);
        assert_eq!(summary.envelope.reply_to_or_from(), from);
        // A single-part message is its own part 1, and has nothing beneath.
        assert_eq!(summary.part(&[1]), Some(part));
        assert_eq!(summary.part(&[]), None);
        assert_eq!(summary.part(&[0]), None);
        assert_eq!(summary.part(&[2]), None);
        assert_eq!(summary.part(&[1, 1]), None);
    }

    const MIXED: &[u8] = b"From: a@x\r\nSubject: report\r\nMIME-Version: 1.0\r\n\
Content-Type: Multipart/Mixed; boundary=\"b1\"\r\n\r\nThis is a preamble.\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
See attached.\r\nBye\r\n\
--b1\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\n\
Content-Disposition: attachment;\r\n filename=\"r.pdf\"; size=9\r\nContent-Transfer-Encoding: base64\r\n\
Content-ID: <pdf1@x>\r\nContent-Description: The =?utf-8?q?r=C3=A9port?=\r\nContent-Language: en, fr\r\n\
Content-Location: http://x/r.pdf\r\n\r\nJVBERi0xLjQK\r\n\
--b1--\r\nepilogue\r\n";

    #[test]
    fn a_mixed_message_lists_its_text_and_its_attachment() {
        let summary = check(MIXED);
        let root = &summary.structure;
        assert_eq!(
            (root.media_type.as_str(), root.subtype.as_str()),
            ("multipart", "mixed")
        );
        assert_eq!(root.params, pairs(&[("boundary", "b1")]));
        assert_eq!(root.boundary(), Some("b1"));
        assert_eq!(root.lines, None);
        assert!(
            root.body(MIXED)
                .starts_with(b"This is a preamble.\r\n--b1\r\n")
        );
        assert!(root.body(MIXED).ends_with(b"--b1--\r\nepilogue\r\n"));
        assert_eq!(root.body_end, MIXED.len());

        let [text, pdf] = children(root) else {
            panic!("two parts")
        };
        assert_eq!(
            text.header(MIXED),
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        );
        // The line break before the boundary is the boundary's.
        assert_eq!(text.body(MIXED), b"See attached.\r\nBye");
        assert_eq!(text.params, pairs(&[("charset", "utf-8")]));
        assert_eq!(text.encoding, "QUOTED-PRINTABLE");
        assert_eq!((text.lines, text.size()), (Some(1), 18));

        assert!(
            pdf.header(MIXED)
                .starts_with(b"Content-Type: application/pdf")
        );
        assert!(
            pdf.header(MIXED)
                .ends_with(b"Content-Location: http://x/r.pdf\r\n\r\n")
        );
        assert_eq!(pdf.body(MIXED), b"JVBERi0xLjQK");
        assert_eq!(
            (pdf.media_type.as_str(), pdf.subtype.as_str()),
            ("application", "pdf")
        );
        assert_eq!(pdf.params, pairs(&[("name", "r.pdf")]));
        assert_eq!(
            pdf.disposition,
            Some(Disposition {
                kind: "attachment".into(),
                params: pairs(&[("filename", "r.pdf"), ("size", "9")]),
            })
        );
        assert_eq!(pdf.encoding, "BASE64");
        assert_eq!(pdf.id, some("<pdf1@x>"));
        assert_eq!(pdf.description, some("The =?utf-8?q?r=C3=A9port?="));
        assert_eq!(pdf.language, ["en", "fr"]);
        assert_eq!(pdf.location, some("http://x/r.pdf"));
        assert_eq!(
            (pdf.lines, pdf.size(), &pdf.body),
            (None, 12, &Body::Opaque)
        );

        assert_eq!(summary.part(&[1]), Some(text));
        assert_eq!(summary.part(&[2]), Some(pdf));
        assert_eq!(summary.part(&[3]), None);
        assert_eq!(summary.part(&[2, 1]), None);

        let raw =
            b"Content-Type: text/plain; a=1; name*1=\"b\"; name*0=\"a\"; t*=utf-8''%C3%A9\r\n\r\nx";
        assert_eq!(
            check(raw).structure.params,
            pairs(&[
                ("a", "1"),
                ("name", "ab"),
                ("t", "\u{e9}"),
                ("charset", "us-ascii")
            ])
        );
    }

    const NESTED: &[u8] =
        b"Subject: nested\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n\
--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n\
--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n\
--inner\r\nContent-Type: text/html; charset=\"UTF-8\"\r\n\r\n<p>html</p>\r\n\
--inner--\r\n\r\n\
--outer\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw==\r\n\
--outer--\r\n";

    #[test]
    fn an_alternative_inside_mixed_is_numbered_as_imap_numbers_it() {
        let summary = check(NESTED);
        let alternative = summary.part(&[1]).unwrap();
        assert_eq!(alternative.subtype, "alternative");
        assert_eq!(
            alternative.header(NESTED),
            b"Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
        );
        // The epilogue's line break (empty here) is inside; the outer boundary's is not.
        assert!(alternative.body(NESTED).starts_with(b"--inner\r\n"));
        assert!(
            alternative
                .body(NESTED)
                .ends_with(b"<p>html</p>\r\n--inner--\r\n")
        );

        let plain = summary.part(&[1, 1]).unwrap();
        assert_eq!(plain.header(NESTED), b"Content-Type: text/plain\r\n\r\n");
        assert_eq!(plain.body(NESTED), b"plain");
        // A text part that names no charset is US-ASCII.
        assert_eq!(plain.params, pairs(&[("charset", "us-ascii")]));

        let html = summary.part(&[1, 2]).unwrap();
        assert_eq!(html.body(NESTED), b"<p>html</p>");
        assert_eq!(html.params, pairs(&[("charset", "UTF-8")]));

        let png = summary.part(&[2]).unwrap();
        assert_eq!(
            (png.media_type.as_str(), png.subtype.as_str()),
            ("image", "png")
        );
        assert_eq!(png.body(NESTED), b"iVBORw==");
        assert_eq!(png.params, []);
        assert_eq!(summary.part(&[1, 3]), None);
        assert_eq!(summary.part(&[3]), None);
    }

    const FORWARD: &[u8] =
        b"From: a@x\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n\
--b\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n\
From: Carol <carol@z>\r\nSender: list@z\r\nReply-To: replies@z\r\nSubject: inner\r\n\
Message-ID: <inner@z>\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n\
--c\r\n\r\nI1\r\n--c\r\nContent-Type: text/html\r\n\r\n<b>I2</b>\r\n--c--\r\n\
\r\n--b--\r\n";

    #[test]
    fn an_attached_message_has_its_own_envelope_and_structure() {
        let summary = check(FORWARD);
        let attached = summary.part(&[2]).unwrap();
        assert_eq!(
            (attached.media_type.as_str(), attached.subtype.as_str()),
            ("message", "rfc822")
        );
        assert_eq!(attached.params, []);
        let inner_raw: &[u8] =
            b"From: Carol <carol@z>\r\nSender: list@z\r\nReply-To: replies@z\r\n\
Subject: inner\r\nMessage-ID: <inner@z>\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n\
--c\r\n\r\nI1\r\n--c\r\nContent-Type: text/html\r\n\r\n<b>I2</b>\r\n--c--\r\n";
        // BODY[2] is the whole message inside, and it has as many lines.
        assert_eq!(attached.body(FORWARD), inner_raw);
        assert_eq!(attached.lines, Some(15));
        let Body::Message(inner) = &attached.body else {
            panic!("not described: {:?}", attached.body)
        };
        assert_eq!(
            inner.envelope,
            Envelope {
                subject: some("inner"),
                from: vec![mailbox(Some("Carol"), "carol", "z")],
                sender: vec![mailbox(None, "list", "z")],
                reply_to: vec![mailbox(None, "replies", "z")],
                message_id: some("<inner@z>"),
                ..Envelope::default()
            }
        );
        assert_eq!(inner.envelope.sender_or_from(), inner.envelope.sender);
        // BODY[2.HEADER] and BODY[2.TEXT].
        let (header, text) =
            inner_raw.split_at(inner_raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4);
        assert_eq!(inner.structure.header(FORWARD), header);
        assert_eq!(inner.structure.body(FORWARD), text);
        // BODY[2.1] and BODY[2.2] are the inner multipart's parts.
        assert_eq!(summary.part(&[2, 1]).unwrap().body(FORWARD), b"I1");
        let i2 = summary.part(&[2, 2]).unwrap();
        assert_eq!(i2.header(FORWARD), b"Content-Type: text/html\r\n\r\n");
        assert_eq!(i2.body(FORWARD), b"<b>I2</b>");
        assert_eq!(summary.part(&[2, 3]), None);
        assert_eq!(summary.part(&[1]).unwrap().body(FORWARD), b"See below.");

        // A message/rfc822 whose message is a single part: that part is BODY[1.1].
        let single = b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nbody\r\n";
        let summary = check(single);
        assert_eq!(summary.part(&[1]), Some(&summary.structure));
        assert_eq!(summary.part(&[1, 1]).unwrap().body(single), b"body\r\n");
        assert_eq!(summary.part(&[1, 2]), None);
    }

    #[test]
    fn groups_are_marked_as_imap_marks_them() {
        let raw = b"From: Alice <alice@x>\r\nTo: Team: bob@y, \"Carol C\" <carol@z>;, dave@w\r\n\
Cc: undisclosed-recipients:;\r\nBcc: (hidden) eve@v\r\n\r\n";
        let envelope = check(raw).envelope;
        let end = Address {
            name: None,
            mailbox: None,
            host: None,
            route: None,
        };
        let start = |name: &str| Address {
            mailbox: some(name),
            ..end.clone()
        };
        assert_eq!(
            envelope.to,
            [
                start("Team"),
                mailbox(None, "bob", "y"),
                mailbox(Some("Carol C"), "carol", "z"),
                end.clone(),
                mailbox(None, "dave", "w"),
            ]
        );
        assert_eq!(envelope.cc, [start("undisclosed-recipients"), end]);
        assert_eq!(envelope.bcc, [mailbox(Some("hidden"), "eve", "v")]);
    }

    #[test]
    fn missing_headers_are_absent_and_not_made_up() {
        let raw = b"X-Note: nothing else\r\n\r\nbody";
        let summary = check(raw);
        assert_eq!(summary.envelope, Envelope::default());
        assert_eq!(summary.envelope.sender_or_from(), []);
        assert_eq!(summary.structure.body(raw), b"body");
        assert_eq!(summary.structure.lines, Some(0));

        // Only a header, without even the blank line: the body is empty, at the end.
        let raw = b"Subject: just this\r\nFrom: a@b\r\n";
        let summary = check(raw);
        assert_eq!(summary.envelope.subject, some("just this"));
        assert_eq!(summary.structure.header(raw), raw);
        assert_eq!(
            (summary.structure.body_start, summary.structure.body_end),
            (raw.len(), raw.len())
        );

        // Present but empty is `Some("")`.
        assert_eq!(check(b"Subject:\r\n\r\n").envelope.subject, some(""));
    }

    #[test]
    fn a_bare_lf_message_has_offsets_as_exact() {
        let raw = b"Subject: lf\nContent-Type: multipart/mixed;\n boundary=\"x y\"\n\n\
--x y\n\nfirst\nline\n--x y\nContent-Type: text/plain; charset=iso-8859-1\n\nsecond\n\n--x y--\n";
        let summary = check(raw);
        let root = &summary.structure;
        assert_eq!(root.boundary(), Some("x y"));
        assert_eq!(
            root.header(raw),
            b"Subject: lf\nContent-Type: multipart/mixed;\n boundary=\"x y\"\n\n"
        );
        let [first, second] = children(root) else {
            panic!("two parts")
        };
        assert_eq!(first.header(raw), b"\n");
        assert_eq!(first.body(raw), b"first\nline");
        assert_eq!(first.lines, Some(1));
        assert_eq!(
            second.header(raw),
            b"Content-Type: text/plain; charset=iso-8859-1\n\n"
        );
        assert_eq!(second.body(raw), b"second\n");
        assert_eq!(second.lines, Some(1));
    }

    #[test]
    fn garbage_and_empty_input_give_a_summary() {
        let empty = check(b"");
        assert_eq!(empty.envelope, Envelope::default());
        assert_eq!(
            empty.structure,
            Part {
                lines: Some(0),
                ..Part::plain_text(0, 0, 0)
            }
        );
        for raw in [
            &b"garbage"[..],
            b"\r\n",
            b"\n\nbody",
            b"   ",
            b"\xff\xfe\x00\x01\r\n\r\n\xff",
            b": x\r\n\r\nbody",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--",
            b"Content-Type: message/rfc822\r\n\r\n",
            b"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n",
            b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n----\r\n\r\nx\r\n------\r\n",
            b"From: \"\\\r\nTo: <<<@@@>>>, (((, :;:;:;\r\nSubject: \xc3\r\n\r\n",
        ] {
            check(raw);
        }
    }

    #[test]
    fn what_cannot_be_described_in_place_is_opaque() {
        // A multipart whose boundary never comes.
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\nno boundary here\r\n";
        let summary = check(raw);
        assert_eq!(summary.structure.subtype, "mixed");
        assert_eq!(summary.structure.body, Body::Opaque);
        assert_eq!(summary.structure.body(raw), b"no boundary here\r\n");
        // A base64 message/rfc822: mail-parser reads it from the decoded bytes, not from the stored ones.
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\
Content-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogaQ0KDQpoaQ0K\r\n--b--\r\n";
        let attached = check(raw).part(&[1]).unwrap().clone();
        assert_eq!(
            (attached.subtype.as_str(), attached.lines),
            ("rfc822", Some(0))
        );
        assert_eq!(attached.body, Body::Opaque);
        assert_eq!(attached.body(raw), b"U3ViamVjdDogaQ0KDQpoaQ0K");
    }

    #[test]
    fn a_digest_part_without_a_type_is_a_message() {
        let raw = b"Content-Type: multipart/digest; boundary=b\r\n\r\n\
--b\r\n\r\nSubject: d1\r\n\r\nD1\r\n--b--\r\n";
        let summary = check(raw);
        let part = summary.part(&[1]).unwrap();
        assert_eq!(
            (part.media_type.as_str(), part.subtype.as_str()),
            ("message", "rfc822")
        );
        assert_eq!(part.params, []);
        assert_eq!(part.body(raw), b"Subject: d1\r\n\r\nD1");
        assert_eq!(summary.part(&[1, 1]).unwrap().body(raw), b"D1");
    }

    #[test]
    fn depth_and_part_count_are_bounded() {
        let mut deep = b"Subject: leaf\r\n\r\nleaf\r\n".to_vec();
        for _ in 0..DEPTH_MAX + 8 {
            deep.splice(
                0..0,
                b"Content-Type: message/rfc822\r\n\r\n".iter().copied(),
            );
        }
        let summary = check(&deep);
        let mut depth = 0;
        let mut part = &summary.structure;
        while let Body::Message(inner) = &part.body {
            depth += 1;
            part = &inner.structure;
        }
        assert_eq!(depth, DEPTH_MAX);
        // The deepest part described still gives its bytes.
        assert!(part.body(&deep).ends_with(b"Subject: leaf\r\n\r\nleaf\r\n"));

        let mut wide = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
        for _ in 0..PARTS_MAX + 10 {
            wide.extend_from_slice(b"--b\r\n\r\nx\r\n");
        }
        wide.extend_from_slice(b"--b--\r\n");
        let summary = check(&wide);
        assert_eq!(children(&summary.structure).len(), PARTS_MAX - 1);
        assert_eq!(summary.part(&[PARTS_MAX - 1]).unwrap().body(&wide), b"x");
        assert_eq!(summary.part(&[PARTS_MAX]), None);
    }

    /// How deep mail-parser's tree for `raw` goes (multiparts and messages), walked without recursion.
    fn parsed_depth(raw: &[u8]) -> usize {
        let message = MessageParser::default().parse(raw).unwrap();
        let mut deepest = 0;
        let mut stack = vec![(&message, 0, 0u32, 0)];
        while let Some((m, part, levels, depth)) = stack.pop() {
            deepest = deepest.max(depth + levels as usize);
            match &m.parts[part].body {
                PartType::Message(inner) => stack.push((inner, 0, 0, depth + levels as usize + 1)),
                PartType::Multipart(ids) => {
                    stack.extend(ids.iter().map(|&i| (m, i as usize, levels + 1, depth)))
                }
                _ => {}
            }
        }
        deepest
    }

    /// A stranger's message nested as deep as its size allows: mail-parser (patched, see
    /// vendor/mail-parser) builds a tree at most 64 levels deep, so neither it nor anything walking or
    /// dropping its tree recurses past that. Before, the 50,000 nested messages (1.6 MB) overflowed a 2 MB
    /// stack when the tree was dropped, aborting the server, and 5,000 inside one base64 part did in
    /// mail-parser's own `into_owned`.
    #[test]
    fn nesting_as_deep_as_a_message_allows_is_cut_at_a_bound() {
        let nested = |levels: usize, level: &str, leaf: &str| {
            let mut raw = b"From: a@example.org\r\nMIME-Version: 1.0\r\n".to_vec();
            for k in 0..levels {
                raw.extend_from_slice(level.replace("{k}", &k.to_string()).as_bytes());
            }
            raw.extend_from_slice(leaf.as_bytes());
            raw
        };
        let messages = nested(
            50_000,
            "Content-Type: message/rfc822\r\n\r\n",
            "\r\nleaf\r\n",
        );
        let encoded = {
            use base64::Engine;
            let inner = nested(
                5_000,
                "Content-Type: message/rfc822\r\n\r\n",
                "\r\nleaf\r\n",
            );
            let mut raw =
                b"From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\
                Content-Transfer-Encoding: base64\r\n\r\n"
                    .to_vec();
            raw.extend(
                base64::engine::general_purpose::STANDARD
                    .encode(inner)
                    .into_bytes(),
            );
            raw
        };
        let multiparts = nested(
            100_000,
            "Content-Type: multipart/mixed; boundary=b{k}\r\n\r\n--b{k}\r\n",
            "Content-Type: text/plain\r\n\r\nleaf\r\n",
        );
        // On a stack the size of a tokio worker's.
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                for raw in [&messages, &encoded, &multiparts] {
                    let depth = parsed_depth(raw);
                    assert!((32..=65).contains(&depth), "{depth}");
                    check(raw);
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// Header fields and parts in a parsed message, nested ones included.
    fn pieces(message: &mail_parser::Message<'_>) -> (usize, usize) {
        let mut fields = 0;
        let mut parts = 0;
        let mut stack = vec![message];
        while let Some(m) = stack.pop() {
            for part in &m.parts {
                fields += part.headers.len();
                parts += 1;
                if let PartType::Message(inner) = &part.body {
                    stack.push(inner);
                }
            }
        }
        (fields, parts)
    }

    /// The vendored mail-parser builds at most `ITEMS_MAX` pieces per message (header fields, parts,
    /// addresses, tokens), nested encoded messages included, and at most 1,000 parameters per
    /// Content-Type. Before, 10 MB of tiny header fields took 490 MB to parse, of tiny parts 176 MB,
    /// and a Content-Type of a million RFC 2231 continuations 75 s of CPU (each one copied the value
    /// so far).
    #[test]
    fn a_message_of_countless_tiny_pieces_is_parsed_into_a_bounded_number() {
        let items_max = mail_parser::parsers::ITEMS_MAX;
        let parse = |raw: &[u8]| {
            let message = MessageParser::default().parse(raw).unwrap();
            let counted = pieces(&message);
            invariants::check_structure(raw);
            (message.subject().map(str::to_string), counted)
        };

        let fields = format!(
            "Subject: first\r\n{}\r\nbody\r\n",
            "X:1\r\n".repeat(2 * items_max)
        );
        let (subject, (fields_kept, _)) = parse(fields.as_bytes());
        assert_eq!(subject.as_deref(), Some("first"));
        assert!(fields_kept <= items_max, "{fields_kept}");

        let parts = format!(
            "Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n{}--b--\r\n",
            "--b\r\n\r\nx\r\n".repeat(2 * items_max)
        );
        let (_, (_, parts_kept)) = parse(parts.as_bytes());
        assert!(
            (items_max / 2..=items_max + 1).contains(&parts_kept),
            "{parts_kept}"
        );

        let addresses = format!(
            "To: {}z@x\r\nSubject: after\r\n\r\nbody\r\n",
            "a@x,".repeat(2 * items_max)
        );
        let message = MessageParser::default()
            .parse(addresses.as_bytes())
            .unwrap();
        let to = message.to().unwrap().as_list().unwrap();
        assert_eq!(to[0].address(), Some("a@x"));
        assert!(to.len() < items_max, "{}", to.len());
        // The budget is spent, so later fields are skipped, but whole: nothing is half read.
        assert_eq!(message.subject(), None);
        invariants::check_structure(addresses.as_bytes());

        // Encoded messages inside draw on the one budget: 30 with 10,000 fields each.
        let inner = {
            use base64::Engine;
            let inner = format!("Subject: inner\r\n{}\r\nx\r\n", "X:1\r\n".repeat(10_000));
            base64::engine::general_purpose::STANDARD.encode(inner)
        };
        let encoded = format!(
            "Subject: encoded\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n{}--b--\r\n",
            format!(
                "--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{inner}\r\n"
            )
            .repeat(30)
        );
        let (_, (fields_kept, _)) = parse(encoded.as_bytes());
        assert!(fields_kept <= items_max, "{fields_kept}");

        let continuations = format!(
            "Subject: long name\r\nContent-Type: text/plain; {}name*0*=x\r\n\r\nbody\r\n",
            "name*1*=b;".repeat(300_000)
        );
        let message = MessageParser::default()
            .parse(continuations.as_bytes())
            .unwrap();
        let parameters = mail_parser::MimeHeaders::content_type(&message.parts[0])
            .unwrap()
            .attributes()
            .unwrap();
        assert!(parameters.len() <= 1_000, "{}", parameters.len());
        invariants::check_structure(continuations.as_bytes());
    }

    #[test]
    fn every_prefix_of_the_examples_keeps_the_invariants() {
        for example in [MIXED, NESTED, FORWARD] {
            let bare_lf = String::from_utf8_lossy(example).replace("\r\n", "\n");
            for raw in [example, bare_lf.as_bytes()] {
                for end in 0..=raw.len() {
                    check(&raw[..end]);
                }
            }
        }
    }

    #[test]
    fn json_round_trips_and_anything_else_is_refused() {
        let summary = check(FORWARD);
        assert_eq!(Summary::from_json(&summary.to_json()), Some(summary));
        assert_eq!(Summary::from_json(""), None);
        assert_eq!(Summary::from_json("{\"envelope\":{}}"), None);
    }
}
