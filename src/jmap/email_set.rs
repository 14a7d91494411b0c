//! Email/set (RFC 8621 §4.6: drafts made, keywords and mailboxes changed, messages destroyed) and
//! Email/import (§4.8). An Email is a message's stored bytes with a copy in each of its mailboxes
//! (`ids.rs`): a keyword change is made on every copy, a mailbox swapped for another moves a copy
//! there (its id stays), a mailbox added copies it (no bytes written again), one taken away expunges
//! the copy there; destroying an Email expunges every copy.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address as BuiltAddress;
use serde_json::{Map, Value, json};

use super::ids::{self, BlobId, EmailId};
use super::request::{MethodError, MethodResult, OBJECTS_MAX};
use super::{Ctx, check_state, set_error};
use crate::store::email_change::{EmailChange, EmailChanged, Placement};
use crate::store::{FlagOp, Flags, MailboxId, NewMessage, StoreError};
use jmail_proto::jmap::keywords::{self, Keyword};

/// Most attachments one created Email may carry.
const ATTACHMENTS_MAX: usize = 100;

/// What the server sets of an Email: a create may not give it (RFC 8620 §5.3).
const SERVER_SET: [&str; 6] = [
    "id",
    "blobId",
    "threadId",
    "size",
    "hasAttachment",
    "preview",
];

/// Whether a client may give `key` to an Email it creates (RFC 8621 §4.6).
fn settable(key: &str) -> bool {
    key == "bodyStructure"
        || key.starts_with("header:")
        || (super::email::DEFAULT_PROPERTIES.contains(&key) && !SERVER_SET.contains(&key))
}

/// The store's flags for a JMAP keywords object (`{"$seen": true, "work": true}`).
fn flags_of(keywords_value: &Value) -> Result<Flags, Value> {
    let Some(o) = keywords_value.as_object() else {
        return Err(invalid("keywords"));
    };
    let mut flags = Flags::default();
    for (name, set) in o {
        if set != &Value::Bool(true) {
            return Err(invalid("keywords"));
        }
        match keywords::parse(name) {
            Keyword::System(bit) => flags.system |= bit,
            Keyword::Named(word) => flags.keywords.push(word),
        }
    }
    Ok(flags)
}

/// A message past `message_bytes_max` (RFC 8621 §4.6 `tooLarge`).
pub fn too_large(size_max: usize) -> Value {
    set_error(
        "tooLarge",
        format!("a message is at most {size_max} bytes here"),
    )
}

fn invalid(property: &str) -> Value {
    json!({"type": "invalidProperties", "properties": [property]})
}

fn store_error(e: StoreError) -> Value {
    match e {
        StoreError::OverQuota(_) => set_error("overQuota", "the account is over its quota"),
        StoreError::BadKeyword(k) => {
            json!({"type": "invalidProperties", "properties": ["keywords"],
            "description": format!("not a valid keyword: {k}")})
        }
        StoreError::TooManyKeywords(n) => set_error(
            "tooManyKeywords",
            format!("at most {n} keywords per mailbox"),
        ),
        // A mailbox named was checked, so it went while the change was on its way.
        StoreError::NoSuchMailbox => {
            json!({"type": "invalidProperties", "properties": ["mailboxIds"],
            "description": "no such mailbox"})
        }
        other => {
            tracing::warn!(error = %other, "Email/set failed in the store");
            set_error("serverFail", "the change was not made")
        }
    }
}

/// The mailboxes a `mailboxIds` object names (at least one), each checked to be the account's.
async fn mailbox_set(ctx: &mut Ctx<'_>, value: Option<&Value>) -> Result<Vec<MailboxId>, Value> {
    let object = value.and_then(Value::as_object);
    // RFC 8621 §4.1.1: every value is `true`; a `false` is a mistake to say, not to drop.
    if object.is_some_and(|o| o.values().any(|v| *v != Value::Bool(true))) {
        return Err(
            json!({"type": "invalidProperties", "properties": ["mailboxIds"],
            "description": "every value in mailboxIds is true"}),
        );
    }
    let ids: Vec<String> = object
        .map(|o| o.keys().map(|k| ctx.resolve(k).to_string()).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(
            json!({"type": "invalidProperties", "properties": ["mailboxIds"],
            "description": "an Email is in at least one mailbox"}),
        );
    }
    let mut mailboxes = Vec::with_capacity(ids.len());
    for id in &ids {
        mailboxes.push(known_mailbox(ctx, id, "mailboxIds").await?);
    }
    mailboxes.sort_unstable();
    mailboxes.dedup();
    Ok(mailboxes)
}

fn address_list(value: Option<&Value>) -> Vec<(String, String)> {
    value
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|a| {
                    let email = a.get("email")?.as_str()?.to_string();
                    let name = a
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    Some((name, email))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn built(list: Vec<(String, String)>) -> BuiltAddress<'static> {
    BuiltAddress::new_list(
        list.into_iter()
            .map(|(name, email)| {
                if name.is_empty() {
                    BuiltAddress::new_address(None::<String>, email)
                } else {
                    BuiltAddress::new_address(Some(name), email)
                }
            })
            .collect(),
    )
}

fn id_strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The text of the one part a body list names, from `bodyValues`. RFC 8621 §4.6: `textBody` and
/// `htmlBody` name exactly one part each; a second is refused rather than silently left out.
fn body_text(object: &Map<String, Value>, list: &str) -> Result<Option<String>, Value> {
    let Some(parts) = object.get(list).and_then(Value::as_array) else {
        return Ok(None);
    };
    let first = match parts.as_slice() {
        [] => return Ok(None),
        [one] => one,
        _ => {
            return Err(json!({"type": "invalidProperties", "properties": [list],
                "description": format!("{list} names exactly one part")}));
        }
    };
    // textBody is text/plain, htmlBody text/html (RFC 8621 §4.6): another type is refused, not
    // rewritten.
    let wanted = if list == "htmlBody" {
        "text/html"
    } else {
        "text/plain"
    };
    if first
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.eq_ignore_ascii_case(wanted))
    {
        return Err(invalid(list));
    }
    let part_id = first
        .get("partId")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(list))?;
    object
        .get("bodyValues")
        .and_then(|v| v.get(part_id))
        .and_then(|v| v.get("value"))
        .and_then(Value::as_str)
        .map(|s| Some(s.to_string()))
        .ok_or_else(|| invalid("bodyValues"))
}

/// The first property of an Email object with a line break (or another control character but tab) in
/// a text that goes into the header: mail-builder writes header text as given, so `"Hi\r\nFrom: x"` as
/// a subject would add a field of its own (a second From after the checked one). Body text is
/// `bodyValues`', which may hold anything.
fn header_injection(object: &Map<String, Value>) -> Option<&str> {
    fn has_control(v: &Value) -> bool {
        let bad = |s: &str| s.chars().any(|c| c.is_control() && c != '\t');
        match v {
            Value::String(s) => bad(s),
            Value::Array(a) => a.iter().any(has_control),
            Value::Object(o) => o.iter().any(|(k, v)| bad(k) || has_control(v)),
            _ => false,
        }
    }
    object
        .iter()
        .find(|(key, value)| key.as_str() != "bodyValues" && has_control(value))
        .map(|(key, _)| key.as_str())
}

/// The RFC 5322 bytes of an Email object a client made (a draft, or mail to send).
async fn build(ctx: &mut Ctx<'_>, object: &Map<String, Value>) -> Result<Vec<u8>, Value> {
    if let Some(property) = header_injection(object) {
        return Err(
            json!({"type": "invalidProperties", "properties": [property],
            "description": "header text may not hold line breaks or control characters"}),
        );
    }
    if object.contains_key("headers") {
        return Err(
            json!({"type": "invalidProperties", "properties": ["headers"],
            "description": "give header: properties instead"}),
        );
    }
    let structured = super::email_body::given(object)?;
    let host = ctx.shared.config.hostname().to_string();
    let message_id = id_strings(object.get("messageId"))
        .into_iter()
        .next()
        .unwrap_or_else(|| format!("{:032x}@{host}", rand::random::<u128>()));
    let mut b = MessageBuilder::new().message_id(message_id);
    for (key, field) in [
        ("from", 0),
        ("to", 1),
        ("cc", 2),
        ("bcc", 3),
        ("replyTo", 4),
        ("sender", 5),
    ] {
        let list = address_list(object.get(key));
        if list.is_empty() {
            continue;
        }
        let a = built(list);
        b = match field {
            0 => b.from(a),
            1 => b.to(a),
            2 => b.cc(a),
            3 => b.bcc(a),
            4 => b.reply_to(a),
            _ => b.sender(a),
        };
    }
    if let Some(s) = object.get("subject").and_then(Value::as_str) {
        b = b.subject(s.to_string());
    }
    b = super::email_headers::add(b, object)?;
    let in_reply_to = id_strings(object.get("inReplyTo"));
    if !in_reply_to.is_empty() {
        b = b.in_reply_to(in_reply_to);
    }
    let references = id_strings(object.get("references"));
    if !references.is_empty() {
        b = b.references(references);
    }
    // The Date field keeps the zone the client gave (`sentAt` is RFC 3339 with its offset).
    let sent = object
        .get("sentAt")
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| chrono::Utc::now().fixed_offset());
    b = b.header(
        "Date",
        mail_builder::headers::raw::Raw::new(sent.to_rfc2822()),
    );
    if structured {
        let structure = object.get("bodyStructure").expect("given");
        let tree = super::email_body::tree(ctx, structure, object.get("bodyValues")).await?;
        return b
            .body(tree)
            .write_to_vec()
            .map_err(|_| set_error("serverFail", "the message could not be built"));
    }
    let text = body_text(object, "textBody")?;
    let html = body_text(object, "htmlBody")?;
    match (&text, &html) {
        (None, None) => b = b.text_body(String::new()),
        _ => {
            if let Some(t) = text {
                b = b.text_body(t);
            }
            if let Some(h) = html {
                b = b.html_body(h);
            }
        }
    }
    let attachments = object
        .get("attachments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if attachments.len() > ATTACHMENTS_MAX {
        return Err(
            json!({"type": "invalidProperties", "properties": ["attachments"],
            "description": format!("at most {ATTACHMENTS_MAX} attachments")}),
        );
    }
    // The blobs are held while the message is built: no more of them than a message may hold.
    let mut held = 0usize;
    let size_max = ctx.shared.config.limits.message_bytes_max;
    for a in attachments {
        let blob = a
            .get("blobId")
            .and_then(Value::as_str)
            .and_then(ids::parse_blob)
            .ok_or_else(|| invalid("attachments"))?;
        let (bytes, stored_type) = match super::blobs::read_typed(ctx, &blob).await {
            Ok(Some(found)) => found,
            _ => return Err(json!({"type": "blobNotFound", "notFound": [blob.to_string()]})),
        };
        held += bytes.len();
        if held > size_max {
            return Err(too_large(size_max));
        }
        let media = a
            .get("type")
            .and_then(Value::as_str)
            .map_or(stored_type, str::to_string);
        let name = a
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("attachment")
            .to_string();
        let inline_cid = match (
            a.get("disposition").and_then(Value::as_str),
            a.get("cid").and_then(Value::as_str),
        ) {
            (Some("inline"), Some(cid)) => Some(cid.to_string()),
            _ => None,
        };
        b = match inline_cid {
            Some(cid) => b.inline(media, cid, bytes),
            None => b.attachment(media, name, bytes),
        };
    }
    b.write_to_vec()
        .map_err(|_| set_error("serverFail", "the message could not be built"))
}

/// A new message for the store, arriving now (or at `receivedAt`).
fn new_message(raw: Vec<u8>, received: Option<&Value>) -> NewMessage {
    let mut m = crate::message::imported(raw);
    m.internal_date_micros = received
        .and_then(Value::as_str)
        .and_then(jmail_proto::jmap::filter::utc_date_micros)
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
    m
}

/// What a created Email reports (RFC 8621 §4.6: id, blobId, threadId, size).
fn created_object(user: i64, id: EmailId, summary: &str, size: usize) -> Value {
    json!({
        "id": id.to_string(),
        "blobId": BlobId::Message { email: id, part: None }.to_string(),
        "threadId": super::email::thread_of(user, id, Some(summary)),
        "size": size,
    })
}

/// Stores one message the client gave, in each mailbox it names (one store transaction); its id.
async fn store_new(
    ctx: &mut Ctx<'_>,
    object: &Map<String, Value>,
    raw: Vec<u8>,
) -> Result<Value, Value> {
    let size_max = ctx.shared.config.limits.message_bytes_max;
    if raw.len() > size_max {
        return Err(too_large(size_max));
    }
    let mailboxes = mailbox_set(ctx, object.get("mailboxIds")).await?;
    let flags = match object.get("keywords") {
        Some(k) => flags_of(k)?,
        None => Flags::default(),
    };
    let message = new_message(raw, object.get("receivedAt"));
    let (summary, size) = (message.summary.clone(), message.raw.len());
    ctx.changed();
    let blob = ctx
        .store()
        .create_email(ctx.account.id, &mailboxes, message, flags)
        .await
        .map_err(store_error)?;
    Ok(created_object(
        ctx.account.id,
        EmailId { blob },
        &summary,
        size,
    ))
}

/// Reads an update patch of `email`: its keyword steps, and where the Email is to be. Any other
/// property may be named only with the value it has (RFC 8620 §5.3).
async fn read_patch(
    ctx: &mut Ctx<'_>,
    email: &str,
    patch: &Map<String, Value>,
) -> Result<EmailChange, Value> {
    let mut replace = None;
    let (mut add, mut remove) = (Flags::default(), Flags::default());
    let mut placement = Placement::Unchanged;
    let (mut joined, mut left) = (Vec::new(), Vec::new());
    let mut unchangeable = Map::new();
    for (path, value) in patch {
        // A pointer deeper than `keywords/<name>` or `mailboxIds/<id>` points inside a boolean.
        if let Some((_, rest)) = path.split_once('/')
            && rest.contains('/')
        {
            return Err(set_error(
                "invalidPatch",
                format!("{path} points inside a value"),
            ));
        }
        if path == "keywords" {
            replace = Some(flags_of(value)?);
        } else if let Some(k) = path.strip_prefix("keywords/") {
            let target = match value {
                Value::Bool(true) => &mut add,
                Value::Null => &mut remove,
                _ => return Err(invalid(path)),
            };
            match keywords::parse(&k.replace("~1", "/").replace("~0", "~")) {
                Keyword::System(bit) => target.system |= bit,
                Keyword::Named(word) => target.keywords.push(word),
            }
        } else if path == "mailboxIds" {
            if !value.is_object() {
                return Err(invalid(path));
            }
            placement = Placement::Exactly(mailbox_set(ctx, Some(value)).await?);
        } else if let Some(m) = path.strip_prefix("mailboxIds/") {
            let m = ctx.resolve(m).to_string();
            match value {
                Value::Bool(true) => joined.push(known_mailbox(ctx, &m, path).await?),
                // One the account no longer has holds no copy: nothing to take away.
                Value::Null => left.extend(ids::parse_mailbox(&m)),
                _ => return Err(invalid(path)),
            }
        } else if path.contains('/') {
            return Err(invalid(path));
        } else {
            unchangeable.insert(path.clone(), value.clone());
        }
    }
    if !unchangeable.is_empty() {
        unchanged_or_refused(ctx, email, &unchangeable).await?;
    }
    if !joined.is_empty() || !left.is_empty() {
        if placement != Placement::Unchanged {
            // RFC 8620 §5.3: no path of a patch may be a prefix of another.
            return Err(set_error(
                "invalidPatch",
                "mailboxIds is set whole and patched both",
            ));
        }
        placement = Placement::Patched {
            add: joined,
            remove: left,
        };
    }
    if replace.is_some() && (add != Flags::default() || remove != Flags::default()) {
        // RFC 8620 §5.3: no path of a patch may be a prefix of another.
        return Err(set_error(
            "invalidPatch",
            "keywords is set whole and patched both",
        ));
    }
    let keywords = match replace {
        Some(flags) => vec![(FlagOp::Replace, flags)],
        None => [(FlagOp::Add, add), (FlagOp::Remove, remove)]
            .into_iter()
            .filter(|(_, f)| *f != Flags::default())
            .collect(),
    };
    Ok(EmailChange {
        placement,
        keywords,
    })
}

/// Passes when each of `values` (properties no update changes) is what the Email has now, as Email/get
/// would show it; otherwise `invalidProperties` naming those that differ or do not exist.
async fn unchanged_or_refused(
    ctx: &mut Ctx<'_>,
    email: &str,
    values: &Map<String, Value>,
) -> Result<(), Value> {
    let refused = |names: Vec<&String>| {
        json!({"type": "invalidProperties", "properties": names,
            "description": "only keywords and mailboxIds can change"})
    };
    let args = json!({"ids": [email], "properties": values.keys().collect::<Vec<_>>()});
    let Value::Object(args) = args else {
        unreachable!("json! of an object")
    };
    let reply = match super::email::get(ctx, args).await {
        Ok(reply) => reply,
        Err(_) => return Err(refused(values.keys().collect())),
    };
    let Some(now) = reply["list"].get(0) else {
        return Err(set_error("notFound", "no such email"));
    };
    let differ: Vec<&String> = values
        .iter()
        .filter(|(k, v)| now.get(k.as_str()) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    match differ.is_empty() {
        true => Ok(()),
        false => Err(refused(differ)),
    }
}

/// A mailbox id a patch names, checked to be one of the account's.
async fn known_mailbox(ctx: &mut Ctx<'_>, id: &str, path: &str) -> Result<MailboxId, Value> {
    match ids::parse_mailbox(id) {
        Some(m) if ctx.mailbox(m).await.ok().flatten().is_some() => Ok(m),
        _ => Err(invalid(path)),
    }
}

/// Changes one Email as the store's one transaction: a refusal anywhere changes nothing.
async fn change(ctx: &mut Ctx<'_>, email: EmailId, change: EmailChange) -> Result<Value, Value> {
    let done = ctx
        .store()
        .change_email(ctx.account.id, email.blob, change)
        .await
        .map_err(store_error)?;
    match done {
        EmailChanged::Done => Ok(Value::Null),
        EmailChanged::NotFound => Err(set_error("notFound", "no such email")),
        EmailChanged::NoMailbox => Err(
            json!({"type": "invalidProperties", "properties": ["mailboxIds"],
            "description": "an Email is in at least one mailbox"}),
        ),
    }
}

pub async fn set(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let old_state = super::state::email_state(ctx).await?;
    check_state(&args, &old_state)?;
    let super::SetArgs {
        create,
        update,
        destroy,
    } = super::SetArgs::read(&args)?;
    let (mut created, mut not_created) = (Map::new(), Map::new());
    for (cid, object) in create {
        let Some(object) = object.as_object() else {
            not_created.insert(cid, invalid("create"));
            continue;
        };
        if let Some(bad) = object.keys().find(|k| !settable(k)) {
            // Unknown, or set by the server (id, blobId, threadId, size, preview ...).
            not_created.insert(cid, invalid(bad));
            continue;
        }
        let result = match build(ctx, object).await {
            Ok(raw) => store_new(ctx, object, raw).await,
            Err(e) => Err(e),
        };
        super::record_creation(ctx, cid, result, &mut created, &mut not_created);
    }
    let (mut updated, mut not_updated) = (Map::new(), Map::new());
    for (id, patch) in update {
        // Answered under the id it names (RFC 8620 §5.3), a `#creationId` resolved.
        let id = ctx.resolve(&id).to_string();
        let email = ids::parse_email(ctx.resolve(&id));
        let result = match (email, patch.as_object()) {
            (Some(e), Some(p)) => match read_patch(ctx, &id, p).await {
                Ok(c) => change(ctx, e, c).await,
                Err(e) => Err(e),
            },
            (_, None) => Err(set_error("invalidPatch", "a patch is an object")),
            (None, _) => Err(set_error("notFound", "no such email")),
        };
        ctx.changed();
        match result {
            Ok(v) => {
                updated.insert(id, v);
            }
            Err(e) => {
                not_updated.insert(id, e);
            }
        }
    }
    let (mut destroyed, mut not_destroyed) = (Vec::new(), Map::new());
    for id in destroy {
        let id = ctx.resolve(&id).to_string();
        let result = match ids::parse_email(ctx.resolve(&id)) {
            Some(e) => {
                let everywhere = EmailChange {
                    placement: Placement::Nowhere,
                    keywords: Vec::new(),
                };
                change(ctx, e, everywhere).await
            }
            None => Err(set_error("notFound", "no such email")),
        };
        ctx.changed();
        match result {
            Ok(_) => destroyed.push(id),
            Err(e) => {
                not_destroyed.insert(id, e);
            }
        }
    }
    let new_state = super::state::email_state(ctx).await?;
    Ok(json!({
        "accountId": ctx.account_id(), "oldState": old_state, "newState": new_state,
        "created": created, "updated": updated, "destroyed": destroyed,
        "notCreated": not_created, "notUpdated": not_updated, "notDestroyed": not_destroyed,
    }))
}

pub async fn import(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    let old_state = super::state::email_state(ctx).await?;
    check_state(&args, &old_state)?;
    let emails = args
        .get("emails")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| MethodError::invalid("emails is an object"))?;
    if emails.len() > OBJECTS_MAX {
        return Err(MethodError::new("requestTooLarge"));
    }
    let (mut created, mut not_created) = (Map::new(), Map::new());
    for (cid, object) in emails {
        let Some(object) = object.as_object() else {
            not_created.insert(cid, invalid("emails"));
            continue;
        };
        let blob = object
            .get("blobId")
            .and_then(Value::as_str)
            .and_then(ids::parse_blob);
        let raw = match &blob {
            Some(b) => super::blobs::read(ctx, b).await?,
            None => None,
        };
        let Some(raw) = raw else {
            not_created.insert(cid, json!({"type": "blobNotFound"}));
            continue;
        };
        let result = store_new(ctx, object, raw).await;
        super::record_creation(ctx, cid, result, &mut created, &mut not_created);
    }
    let new_state = super::state::email_state(ctx).await?;
    Ok(
        json!({"accountId": ctx.account_id(), "oldState": old_state, "newState": new_state,
        "created": created, "notCreated": not_created}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_with_a_line_break_is_refused_body_text_is_not() {
        let object = |v: Value| v.as_object().unwrap().clone();
        let fine = object(
            json!({"subject": "Hi\tthere", "from": [{"name": "Ann", "email": "a@x"}],
            "bodyValues": {"1": {"value": "line one\r\nline two"}}}),
        );
        assert_eq!(header_injection(&fine), None);
        for (bad, property) in [
            (json!({"subject": "Hi\r\nFrom: ceo@bank.test"}), "subject"),
            (
                json!({"from": [{"name": "Ann\nBcc: x@y", "email": "a@x"}]}),
                "from",
            ),
            (json!({"messageId": ["a@b\r"]}), "messageId"),
            (
                json!({"attachments": [{"blobId": "b", "name": "a\u{0}.txt"}]}),
                "attachments",
            ),
        ] {
            assert_eq!(header_injection(&object(bad)), Some(property));
        }
    }
}
