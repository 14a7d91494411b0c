//! Email/get and Email/parse (RFC 8621 §4.2, §4.9): a stored message as a JMAP Email object. What
//! the listing holds (keywords, size, arrival) is read without the bytes; anything from the header or
//! body parses the message (mail-parser, whose text/html/attachment split is RFC 8621's own algorithm).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use mail_parser::parsers::MessageStream;
use mail_parser::{
    Address, Header, HeaderForm, HeaderValue, Message, MessageParser, MimeHeaders, PartType,
};
use serde_json::{Map, Value, json};

use super::ids::{self, BlobId, EmailId};
use super::request::{MethodError, MethodResult, OBJECTS_MAX};
use super::{Ctx, get_ids, id_list, properties};
use crate::store::{MailboxId, MessageMeta};
use jmail_proto::summary::{DEPTH_MAX, PARTS_MAX};

/// What an Email shows when `properties` is not given (RFC 8621 §4.2).
pub const DEFAULT_PROPERTIES: [&str; 24] = [
    "id",
    "blobId",
    "threadId",
    "mailboxIds",
    "keywords",
    "size",
    "receivedAt",
    "messageId",
    "inReplyTo",
    "references",
    "sender",
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "sentAt",
    "hasAttachment",
    "preview",
    "bodyValues",
    "textBody",
    "htmlBody",
    "attachments",
];
/// What a body part shows when `bodyProperties` is not given.
const DEFAULT_BODY_PROPERTIES: [&str; 10] = [
    "partId",
    "blobId",
    "size",
    "name",
    "type",
    "charset",
    "disposition",
    "cid",
    "language",
    "location",
];
/// The first of the defaults (id to receivedAt) are what the store's listing answers without the bytes.
const LISTING_PROPERTIES: usize = 7;
/// The defaults after the listing's, up to this one (messageId to preview), are what a message's first
/// [`PREFIX_BYTES`] answer: its header fields, and the preview and whether it has attachments (a long
/// message is long for its attachments, whose headers come early; its text comes first). A mail list
/// (the webmail's) asks for these: reading all of 50 large messages for them made a few strangers'
/// 10 MB messages break their recipient's inbox page.
const PREFIX_PROPERTIES_END: usize = 20;
const PREFIX_BYTES: u64 = 256 * 1024;
/// Most message bytes one Email/get or Email/parse (or SearchSnippet/get) parses for what it shows,
/// and most bytes of JSON its reply may hold: past either, the call fails with `requestTooLarge`
/// rather than hold them all. (The reply is counted too: a message's description can be far larger
/// than the message, as with 100,000 addresses or headers of a few bytes each.)
const GET_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Counts `bytes` more of messages parsed by one call; `requestTooLarge` once past [`GET_BYTES_MAX`].
pub fn charge_parsed(parsed: &mut u64, bytes: u64) -> Result<(), MethodError> {
    *parsed = parsed.saturating_add(bytes);
    match *parsed > GET_BYTES_MAX {
        true => Err(MethodError::with(
            "requestTooLarge",
            "ask for fewer emails at once, or fewer of their properties",
        )),
        false => Ok(()),
    }
}
/// How long `value` is as JSON, counted without writing it anywhere.
fn json_len(value: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
/// Most addresses, message ids, header fields or values of one field listed in one property. A
/// description can be far larger than what it describes (100,000 addresses in 1.6 MB took 230 MB as
/// JSON values); no real message comes near this.
const LIST_ITEMS_MAX: usize = 1_000;
/// Largest message read with the listing (500 of them at most per call: 32 MiB).
const RAW_INLINE_BYTES_MAX: u64 = 64 * 1024;
/// The properties that need the body parsed, not only the header.
const BODY_PROPERTIES: [&str; 7] = [
    "preview",
    "hasAttachment",
    "bodyStructure",
    "textBody",
    "htmlBody",
    "attachments",
    "bodyValues",
];
/// Characters of a preview (RFC 8621: at most 256).
const PREVIEW_CHARS: usize = 256;

/// How a body is shown: which parts' values, cut where.
#[derive(Debug, Clone)]
pub struct BodyOptions {
    pub body_properties: Vec<String>,
    pub text_values: bool,
    pub html_values: bool,
    pub all_values: bool,
    pub max_value_bytes: usize,
}

impl BodyOptions {
    pub fn from_args(args: &Map<String, Value>) -> Result<BodyOptions, MethodError> {
        let flag = |k: &str| args.get(k).and_then(Value::as_bool).unwrap_or(false);
        let body_properties = properties(args, "bodyProperties")?.unwrap_or_else(|| {
            DEFAULT_BODY_PROPERTIES
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        // RFC 8620 §5.1: a property that does not exist is an error, not a null.
        const MORE: [&str; 2] = ["headers", "subParts"];
        if let Some(bad) = body_properties.iter().find(|p| {
            !DEFAULT_BODY_PROPERTIES.contains(&p.as_str())
                && !MORE.contains(&p.as_str())
                && !super::email_headers::form_allowed(p)
        }) {
            return Err(MethodError::invalid(format!(
                "unknown body part property {bad}, or a header form its field cannot take"
            )));
        }
        Ok(BodyOptions {
            body_properties,
            text_values: flag("fetchTextBodyValues"),
            html_values: flag("fetchHTMLBodyValues"),
            all_values: flag("fetchAllBodyValues"),
            max_value_bytes: args
                .get("maxBodyValueBytes")
                .and_then(Value::as_u64)
                .filter(|&n| n > 0)
                .map_or(usize::MAX, |n| n as usize),
        })
    }
}

/// The listing side of an Email: what the store knows without parsing.
pub struct Stored<'a> {
    pub id: EmailId,
    /// The copy it is read from.
    pub meta: &'a MessageMeta,
    pub thread: String,
    /// Every mailbox holding a copy.
    pub mailboxes: Vec<MailboxId>,
    /// The keywords of all its copies together.
    pub keywords: BTreeSet<String>,
}

pub(super) fn utc(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The thread id of a message from its stored summary (its conversation's root Message-ID).
pub fn thread_of(user: i64, id: EmailId, summary: Option<&str>) -> String {
    let root = summary.and_then(jmail_proto::summary::Summary::thread_key_from_json);
    thread_by_root(user, id, root.as_deref())
}

/// [`thread_of`], from the Message-ID a summary names the conversation by.
pub fn thread_by_root(user: i64, id: EmailId, root: Option<&str>) -> String {
    match root {
        Some(root) => ids::thread(user, root),
        None => ids::thread(user, &id.to_string()),
    }
}

/// The Email object of one message, with only `props`.
pub fn render(
    stored: Option<&Stored<'_>>,
    blob: &BlobId,
    raw: Option<&[u8]>,
    props: &[String],
    body: &BodyOptions,
) -> Value {
    // The header alone when nothing of the body is asked for (a list of subjects and senders).
    let body_wanted = props.iter().any(|p| BODY_PROPERTIES.contains(&p.as_str()));
    let parsed = raw.and_then(|r| match body_wanted {
        true => MessageParser::default().parse(r),
        false => MessageParser::default().parse_headers(r),
    });
    let mut o = Map::new();
    for prop in props {
        let value = match (prop.as_str(), stored) {
            ("id", Some(s)) => json!(s.id.to_string()),
            ("blobId", _) => json!(blob.to_string()),
            ("threadId", Some(s)) => json!(s.thread),
            ("mailboxIds", Some(s)) => Value::Object(
                s.mailboxes
                    .iter()
                    .map(|&m| (ids::mailbox(m), Value::Bool(true)))
                    .collect(),
            ),
            ("keywords", Some(s)) => Value::Object(
                s.keywords
                    .iter()
                    .map(|k| (k.clone(), Value::Bool(true)))
                    .collect(),
            ),
            ("size", Some(s)) => json!(s.meta.size),
            ("size", None) => json!(raw.map_or(0, <[u8]>::len)),
            ("receivedAt", Some(s)) => json!(utc(s.meta.internal_date_micros)),
            ("id" | "threadId" | "mailboxIds" | "keywords" | "receivedAt", None) => Value::Null,
            (p, _) => match &parsed {
                Some(m) => from_message(m, p, blob, body),
                None => Value::Null,
            },
        };
        o.insert(prop.clone(), value);
    }
    Value::Object(o)
}

/// The start of the text, whitespace runs made single spaces (a line of a list, not a layout).
fn preview(m: &Message<'_>) -> String {
    let text = m.body_preview(PREVIEW_CHARS * 2).unwrap_or_default();
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(PREVIEW_CHARS).collect()
}

/// One EmailAddress (RFC 8621 §4.1.2.3): `email` is always a string, empty when the field had none.
fn email_address(x: &mail_parser::Addr<'_>) -> Value {
    json!({"name": x.name(), "email": x.address().unwrap_or("")})
}

fn addresses(a: Option<&Address<'_>>) -> Value {
    match a {
        None => Value::Null,
        Some(a) => Value::Array(a.iter().take(LIST_ITEMS_MAX).map(email_address).collect()),
    }
}

/// The GroupedAddresses form (RFC 8621 §4.1.2.4): addresses outside any group make a group of no
/// name; each group, empty ones too, keeps its name.
fn grouped_addresses(a: &Address<'_>) -> Value {
    let group = |name: Option<&str>, list: &[mail_parser::Addr<'_>]| {
        let list: Vec<Value> = list
            .iter()
            .take(LIST_ITEMS_MAX)
            .map(email_address)
            .collect();
        json!({"name": name, "addresses": list})
    };
    match a {
        Address::List(list) => json!([group(None, list)]),
        Address::Group(groups) => Value::Array(
            groups
                .iter()
                .take(LIST_ITEMS_MAX)
                .map(|g| group(g.name.as_deref(), &g.addresses))
                .collect(),
        ),
    }
}

/// A raw header value as RFC 8621 §4.1.2.1 has it: without the CRLF that ends the field.
fn raw_value(value: &str) -> &str {
    let value = value.strip_suffix('\n').unwrap_or(value);
    value.strip_suffix('\r').unwrap_or(value)
}

fn message_ids(v: &HeaderValue<'_>) -> Value {
    match v {
        HeaderValue::Text(t) => json!([t]),
        HeaderValue::TextList(l) => json!(l.iter().take(LIST_ITEMS_MAX).collect::<Vec<_>>()),
        _ => Value::Null,
    }
}

/// A property read from the parsed message.
fn from_message(m: &Message<'_>, prop: &str, blob: &BlobId, body: &BodyOptions) -> Value {
    match prop {
        "messageId" => m.message_id().map_or(Value::Null, |id| json!([id])),
        "inReplyTo" => message_ids(m.in_reply_to()),
        "references" => message_ids(m.references()),
        "sender" => addresses(m.sender()),
        "from" => addresses(m.from()),
        "to" => addresses(m.to()),
        "cc" => addresses(m.cc()),
        "bcc" => addresses(m.bcc()),
        "replyTo" => addresses(m.reply_to()),
        "subject" => m.subject().map_or(Value::Null, |s| json!(s)),
        "sentAt" => m.date().map_or(Value::Null, |d| json!(d.to_rfc3339())),
        "hasAttachment" => json!(m.attachment_count() > 0),
        "preview" => json!(preview(m)),
        "bodyStructure" => {
            let mut parts_left = PARTS_MAX;
            part(m, 0, blob, body, DEPTH_MAX, &mut parts_left)
        }
        "textBody" => parts(m, &m.text_body, blob, body),
        "htmlBody" => parts(m, &m.html_body, blob, body),
        "attachments" => parts(m, &attachments(m), blob, body),
        "bodyValues" => body_values(m, body),
        "headers" => headers(m),
        p if p.starts_with("header:") => {
            header_property(&m.raw_message, m.headers(), &p["header:".len()..])
        }
        _ => Value::Null,
    }
}

fn headers(m: &Message<'_>) -> Value {
    Value::Array(
        m.headers_raw()
            .take(LIST_ITEMS_MAX)
            .map(|(name, value)| json!({"name": name, "value": raw_value(value)}))
            .collect(),
    )
}

/// `header:Name[:asForm][:all]` (RFC 8621 §4.1.3) of a message's or a body part's `fields`, whose
/// offsets point into `raw`.
fn header_property(raw: &[u8], fields: &[Header<'_>], spec: &str) -> Value {
    let mut pieces = spec.split(':');
    let name = pieces.next().unwrap_or("");
    let mut form = HeaderForm::Raw;
    let mut all = false;
    for f in pieces {
        match f {
            "all" => all = true,
            "asRaw" => form = HeaderForm::Raw,
            "asText" => form = HeaderForm::Text,
            "asAddresses" => form = HeaderForm::Addresses,
            "asGroupedAddresses" => form = HeaderForm::GroupedAddresses,
            "asMessageIds" => form = HeaderForm::MessageIds,
            "asDate" => form = HeaderForm::Date,
            "asURLs" => form = HeaderForm::URLs,
            _ => return Value::Null,
        }
    }
    let as_json = |v: &HeaderValue<'_>| -> Value {
        match (form, v) {
            (HeaderForm::Raw, HeaderValue::Text(t)) => json!(t),
            (HeaderForm::Text, HeaderValue::Text(t)) => json!(t.trim()),
            (HeaderForm::Addresses, HeaderValue::Address(a)) => addresses(Some(a)),
            (HeaderForm::GroupedAddresses, HeaderValue::Address(a)) => grouped_addresses(a),
            (HeaderForm::MessageIds, v) => message_ids(v),
            (HeaderForm::Date, HeaderValue::DateTime(d)) => json!(d.to_rfc3339()),
            (HeaderForm::URLs, HeaderValue::Address(a)) => Value::Array(
                a.iter()
                    .filter_map(|x| x.address())
                    .take(LIST_ITEMS_MAX)
                    .map(|u| json!(u))
                    .collect(),
            ),
            _ => Value::Null,
        }
    };
    let values = fields_as(raw, fields, name, form);
    if all {
        Value::Array(values.iter().take(LIST_ITEMS_MAX).map(as_json).collect())
    } else {
        values.last().map_or(Value::Null, as_json)
    }
}

/// The fields of `fields` named `name` (in any case), each read from its bytes in `raw` as `form`.
/// Raw is the bytes after the colon exactly, but for the CRLF that ends the field (RFC 8621 §4.1.2.1):
/// the parser's own value is trimmed.
fn fields_as<'r>(
    raw: &'r [u8],
    fields: &[Header<'_>],
    name: &str,
    form: HeaderForm,
) -> Vec<HeaderValue<'r>> {
    fields
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(|h| {
            let bytes = raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            let mut stream = MessageStream::new(bytes);
            match form {
                HeaderForm::Raw => HeaderValue::Text(
                    raw_value(&String::from_utf8_lossy(bytes))
                        .to_string()
                        .into(),
                ),
                HeaderForm::Text => stream.parse_unstructured(),
                HeaderForm::MessageIds => stream.parse_id(),
                HeaderForm::Date => stream.parse_date(),
                HeaderForm::Addresses | HeaderForm::GroupedAddresses | HeaderForm::URLs => {
                    stream.parse_address()
                }
            }
        })
        .collect()
}

/// The attachments as RFC 8621 §4.1.4's algorithm lists them: an inline image, audio or video part
/// shown in both the text and the HTML body is no attachment (mail-parser lists it as one too); one
/// shown in only one of them (inside a multipart/alternative) is.
fn attachments(m: &Message<'_>) -> Vec<u32> {
    let text: std::collections::HashSet<u32> = m.text_body.iter().copied().collect();
    let html: std::collections::HashSet<u32> = m.html_body.iter().copied().collect();
    m.attachments
        .iter()
        .copied()
        .filter(|i| !(text.contains(i) && html.contains(i)))
        .collect()
}

/// The first [`PARTS_MAX`] of `list` (as IMAP's BODYSTRUCTURE shows at most that many).
fn parts(m: &Message<'_>, list: &[u32], blob: &BlobId, body: &BodyOptions) -> Value {
    let mut parts_left = PARTS_MAX;
    Value::Array(
        list.iter()
            .take(PARTS_MAX)
            .map(|&i| part(m, i, blob, body, 0, &mut parts_left))
            .collect(),
    )
}

/// One EmailBodyPart; multiparts carry their `subParts` (bodyStructure) `levels` deep, and at most
/// `parts_left` parts are described in all. A stranger's message may nest multiparts as deep, and hold
/// as many parts, as its size allows: past the stored summary's bounds (which IMAP's BODYSTRUCTURE
/// shows) a multipart's `subParts` is empty, and nothing recurses further. (150,000 parts in 1.5 MB
/// took 1.6 GB to describe.)
fn part(
    m: &Message<'_>,
    index: u32,
    blob: &BlobId,
    body: &BodyOptions,
    levels: usize,
    parts_left: &mut usize,
) -> Value {
    *parts_left = parts_left.saturating_sub(1);
    let Some(p) = m.parts.get(index as usize) else {
        return Value::Null;
    };
    let content_type = p.content_type();
    let media = content_type.map_or_else(
        || "text/plain".to_string(),
        |ct| match &ct.c_subtype {
            Some(sub) => format!("{}/{}", ct.c_type, sub).to_lowercase(),
            None => ct.c_type.to_lowercase(),
        },
    );
    let multipart = matches!(p.body, PartType::Multipart(_));
    let mut o = Map::new();
    for prop in &body.body_properties {
        let value = match prop.as_str() {
            "partId" if !multipart => json!(index.to_string()),
            "blobId" if !multipart => json!(blob.part(index).to_string()),
            "size" => json!(if multipart { 0 } else { part_bytes(p).len() }),
            "name" => p.attachment_name().map_or(Value::Null, |n| json!(n)),
            "type" => json!(media),
            "charset" => match content_type.and_then(|ct| ct.attribute("charset")) {
                Some(c) => json!(c),
                None if media.starts_with("text/") => json!("us-ascii"),
                None => Value::Null,
            },
            "disposition" => p
                .content_disposition()
                .map_or(Value::Null, |d| json!(d.c_type.to_lowercase())),
            "cid" => p.content_id().map_or(Value::Null, |c| json!(c)),
            "language" => match p.content_language() {
                HeaderValue::Text(t) => json!([t]),
                HeaderValue::TextList(l) => json!(l),
                _ => Value::Null,
            },
            "location" => p.content_location().map_or(Value::Null, |l| json!(l)),
            "headers" => Value::Array(
                p.headers
                    .iter()
                    .take(LIST_ITEMS_MAX)
                    .map(|h| {
                        let raw = m
                            .raw_message
                            .get(h.offset_start as usize..h.offset_end as usize)
                            .map(String::from_utf8_lossy)
                            .unwrap_or_default();
                        json!({"name": h.name.as_str(), "value": raw_value(&raw)})
                    })
                    .collect(),
            ),
            spec if spec.starts_with("header:") => {
                header_property(&m.raw_message, &p.headers, &spec["header:".len()..])
            }
            _ => Value::Null,
        };
        o.insert(prop.clone(), value);
    }
    // (Flat lists, levels 0, never hold a multipart: mail-parser lists leaves there.)
    if let PartType::Multipart(children) = &p.body {
        let mut sub = Vec::new();
        for &c in children {
            if levels == 0 || *parts_left == 0 {
                break;
            }
            sub.push(part(m, c, blob, body, levels - 1, parts_left));
        }
        o.insert("subParts".into(), Value::Array(sub));
    }
    Value::Object(o)
}

/// A part's content, decoded (a nested message: its bytes).
pub fn part_bytes<'p>(p: &'p mail_parser::MessagePart<'_>) -> std::borrow::Cow<'p, [u8]> {
    match &p.body {
        // An attached message's own bytes: a message inside the same bytes shares them with the
        // outer one (its root part says where it is); one that was encoded holds its decoded bytes.
        PartType::Message(inner) => {
            let root = inner.root_part();
            let (start, end) = (root.raw_header_offset(), root.raw_end_offset());
            let raw = inner.raw_message.as_ref();
            std::borrow::Cow::Borrowed(raw.get(start as usize..end as usize).unwrap_or(raw))
        }
        _ => std::borrow::Cow::Borrowed(p.contents()),
    }
}

fn body_values(m: &Message<'_>, body: &BodyOptions) -> Value {
    let mut wanted: BTreeMap<u32, ()> = BTreeMap::new();
    if body.text_values || body.all_values {
        wanted.extend(m.text_body.iter().map(|&i| (i, ())));
    }
    if body.html_values || body.all_values {
        wanted.extend(m.html_body.iter().map(|&i| (i, ())));
    }
    let mut o = Map::new();
    for index in wanted.keys() {
        let Some(p) = m.parts.get(*index as usize) else {
            continue;
        };
        let text = match &p.body {
            PartType::Text(t) | PartType::Html(t) => t.as_ref(),
            _ => continue,
        };
        let mut cut = text.len().min(body.max_value_bytes);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        // A charset no decoder knows was read as if it were another: that is an encoding problem
        // too (RFC 8621 §4.1.4).
        let unknown_charset = p
            .content_type()
            .and_then(|ct| ct.attribute("charset"))
            .is_some_and(|c| {
                mail_parser::decoders::charsets::map::charset_decoder(c.as_bytes()).is_none()
                    && !["us-ascii", "utf-8", "utf8", "ascii"]
                        .iter()
                        .any(|known| c.eq_ignore_ascii_case(known))
            });
        o.insert(
            index.to_string(),
            json!({"value": &text[..cut], "isEncodingProblem": p.is_encoding_problem || unknown_charset,
                   "isTruncated": cut < text.len()}),
        );
    }
    Value::Object(o)
}

/// The properties asked for, checked: an unknown one is an error, not silence.
pub fn email_properties(args: &Map<String, Value>) -> Result<Vec<String>, MethodError> {
    let props = properties(args, "properties")?
        .unwrap_or_else(|| DEFAULT_PROPERTIES.iter().map(|s| s.to_string()).collect());
    // Beyond the defaults, only the whole structure and the raw header fields can be asked for.
    const MORE: [&str; 2] = ["bodyStructure", "headers"];
    if let Some(bad) = props.iter().find(|p| {
        !DEFAULT_PROPERTIES.contains(&p.as_str())
            && !MORE.contains(&p.as_str())
            && !super::email_headers::form_allowed(p)
    }) {
        return Err(MethodError::invalid(format!(
            "unknown property {bad}, or a header form its field cannot take"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    Ok(props
        .into_iter()
        .filter(|p| seen.insert(p.clone()))
        .collect())
}

/// A message's keywords as JMAP names them.
fn keyword_names(meta: &MessageMeta) -> Vec<String> {
    jmail_proto::jmap::keywords::names(meta.flags, &meta.keywords)
}

/// Every Email of the account (for `ids: null`), each once however many copies it has.
async fn all_emails(ctx: &mut Ctx<'_>) -> Result<Vec<String>, MethodError> {
    let total: u64 = ctx.mailboxes().await?.iter().map(|m| m.messages).sum();
    if total > OBJECTS_MAX as u64 {
        return Err(MethodError::new("requestTooLarge"));
    }
    let (mut all, mut seen) = (Vec::new(), HashSet::new());
    for m in ctx.mailboxes().await?.to_vec() {
        let uids = ctx.uids(m.id).await?;
        for row in ctx.listed(m.id, &uids, 0).await? {
            let id = EmailId {
                blob: row.meta.blob,
            };
            if seen.insert(id) {
                all.push(id.to_string());
            }
        }
    }
    Ok(all)
}

pub async fn get(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let mut props = email_properties(&args)?;
    if !props.iter().any(|p| p == "id") {
        props.insert(0, "id".into());
    }
    let body = BodyOptions::from_args(&args)?;
    let state = super::state::email_state(ctx).await?;
    let wanted: Vec<String> = match get_ids(&args)? {
        Some(w) => w,
        None => all_emails(ctx).await?,
    };
    let needs_bytes = props
        .iter()
        .any(|p| !DEFAULT_PROPERTIES[..LISTING_PROPERTIES].contains(&p.as_str()));
    let prefix_only = props.iter().all(|p| {
        DEFAULT_PROPERTIES[..PREFIX_PROPERTIES_END].contains(&p.as_str())
            || p.starts_with("header:")
    });
    let emails: Vec<EmailId> = wanted
        .iter()
        .filter_map(|id| ids::parse_email(ctx.resolve(id)))
        .collect();
    let copies = ctx.copies(&emails).await?;
    // An Email is read from its first copy; the others add their mailboxes and keywords.
    let mut first: BTreeMap<MailboxId, Vec<u32>> = BTreeMap::new();
    let mut others: BTreeMap<MailboxId, Vec<u32>> = BTreeMap::new();
    for list in copies.values() {
        if let Some((head, rest)) = list.split_first() {
            first.entry(head.mailbox).or_default().push(head.uid);
            for c in rest {
                others.entry(c.mailbox).or_default().push(c.uid);
            }
        }
    }
    let mut more_keywords: BTreeMap<EmailId, Vec<String>> = BTreeMap::new();
    if props.iter().any(|p| p == "keywords") {
        for (mailbox, uids) in &mut others {
            uids.sort_unstable();
            for row in ctx.listed(*mailbox, uids, 0).await? {
                let id = EmailId {
                    blob: row.meta.blob,
                };
                more_keywords
                    .entry(id)
                    .or_default()
                    .extend(keyword_names(&row.meta));
            }
        }
    }
    let mut rendered: BTreeMap<EmailId, Value> = BTreeMap::new();
    let user = ctx.account.id;
    for (mailbox, mut uids) in first {
        uids.sort_unstable();
        uids.dedup();
        // Small messages come with the listing, in one read; larger ones are read one at a time.
        let inline = if needs_bytes { RAW_INLINE_BYTES_MAX } else { 0 };
        for row in ctx.listed(mailbox, &uids, inline).await? {
            let id = EmailId {
                blob: row.meta.blob,
            };
            let read = match prefix_only {
                true => row.meta.size.min(PREFIX_BYTES),
                false => row.meta.size,
            };
            if needs_bytes {
                charge_parsed(&mut ctx.parsed_bytes, read)?;
            }
            let raw = match (needs_bytes, row.raw) {
                (true, Some(raw)) => Some(raw),
                (true, None) if prefix_only => {
                    let body = crate::store::BodyRef {
                        blob: row.meta.blob,
                        len: row.meta.size,
                    };
                    Some(ctx.store().body_chunk(body, 0, read as usize).await?)
                }
                (true, None) => ctx.store().fetch(mailbox, row.meta.uid, false).await?,
                (false, _) => None,
            };
            let mut mailboxes: Vec<MailboxId> = copies
                .get(&id)
                .map(|l| l.iter().map(|c| c.mailbox).collect())
                .unwrap_or_default();
            mailboxes.dedup();
            let mut keywords: BTreeSet<String> = keyword_names(&row.meta).into_iter().collect();
            keywords.extend(more_keywords.remove(&id).unwrap_or_default());
            let stored = Stored {
                id,
                meta: &row.meta,
                thread: thread_of(user, id, row.summary.as_deref()),
                mailboxes,
                keywords,
            };
            let blob = BlobId::Message {
                email: id,
                part: None,
            };
            let email = render(Some(&stored), &blob, raw.as_deref(), &props, &body);
            charge_parsed(&mut ctx.reply_bytes, json_len(&email))?;
            rendered.insert(id, email);
        }
    }
    let (mut list, mut not_found) = (Vec::new(), Vec::new());
    for id in wanted {
        match ids::parse_email(ctx.resolve(&id)).and_then(|e| rendered.get(&e)) {
            Some(v) => list.push(v.clone()),
            None if !not_found.contains(&id) => not_found.push(id),
            None => {}
        }
    }
    Ok(json!({"accountId": ctx.account_id(), "state": state, "list": list, "notFound": not_found}))
}

pub async fn parse(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let blob_ids = id_list(&args, "blobIds")?.unwrap_or_default();
    let mut props = email_properties(&args)?;
    // A blob is no Email of a mailbox: these are null (RFC 8621 §4.9), when asked for.
    const NOT_STORED: [&str; 5] = ["id", "threadId", "mailboxIds", "keywords", "receivedAt"];
    let nulls: Vec<String> = props
        .iter()
        .filter(|p| NOT_STORED.contains(&p.as_str()))
        .cloned()
        .collect();
    props.retain(|p| !NOT_STORED.contains(&p.as_str()));
    let body = BodyOptions::from_args(&args)?;
    let (mut parsed, mut not_parsable, mut not_found) = (Map::new(), Vec::new(), Vec::new());
    for id in blob_ids {
        let Some(blob) = ids::parse_blob(&id) else {
            not_found.push(id);
            continue;
        };
        match super::blobs::read(ctx, &blob).await? {
            None => not_found.push(id),
            Some(bytes) => {
                charge_parsed(&mut ctx.parsed_bytes, bytes.len() as u64)?;
                if MessageParser::default().parse(&bytes[..]).is_none() {
                    not_parsable.push(id);
                } else {
                    let mut email = render(None, &blob, Some(&bytes), &props, &body);
                    if let Some(o) = email.as_object_mut() {
                        o.extend(nulls.iter().map(|p| (p.clone(), Value::Null)));
                    }
                    charge_parsed(&mut ctx.reply_bytes, json_len(&email))?;
                    parsed.insert(id, email);
                }
            }
        }
    }
    Ok(
        json!({"accountId": ctx.account_id(), "parsed": parsed, "notParsable": not_parsable, "notFound": not_found}),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_prefix_properties_end_at_preview() {
        let prefix =
            &super::DEFAULT_PROPERTIES[super::LISTING_PROPERTIES..super::PREFIX_PROPERTIES_END];
        assert_eq!(
            (prefix[0], prefix[prefix.len() - 1]),
            ("messageId", "preview")
        );
    }
}
