//! Blobs (RFC 8620 §6): a stored message's bytes or one part of them (decoded), and uploads.
//!
//! Uploads are kept in the store (any node behind a balancer finds them) until used or an hour has
//! passed, at most [`UPLOADS_BYTES_PER_ACCOUNT_MAX`] per account.

use mail_parser::MessageParser;
use serde_json::{Map, Value, json};

use super::email::charge_parsed;
use super::ids::{self, BlobId};
use super::request::{MethodError, MethodResult};
use super::{Ctx, id_list};
use crate::store::{MailStore, NewUpload, StoreError, UserId};

/// Bytes of unexpired uploads one account may hold.
pub const UPLOADS_BYTES_PER_ACCOUNT_MAX: u64 = 64 * 1024 * 1024;
/// How long an upload is kept.
const UPLOAD_SECS: i64 = 3600;

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Keeps an upload; its key, or `None` when the account's room for uploads is spent.
pub async fn put(
    store: &dyn MailStore,
    user: UserId,
    bytes: Vec<u8>,
    media_type: &str,
) -> Result<Option<String>, StoreError> {
    let key: String = rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let now = now_micros();
    let kept = store
        .upload_put(NewUpload {
            user,
            key: key.clone(),
            media_type: media_type.to_string(),
            bytes,
            now_micros: now,
            expires_micros: now + UPLOAD_SECS * 1_000_000,
            account_bytes_max: UPLOADS_BYTES_PER_ACCOUNT_MAX,
        })
        .await?;
    Ok(kept.then_some(key))
}

/// A blob's bytes and its media type (a part's own, else `message/rfc822`), if the account has it.
pub async fn read_typed(
    ctx: &mut Ctx<'_>,
    blob: &BlobId,
) -> Result<Option<(Vec<u8>, String)>, MethodError> {
    let whole: Vec<u8> = match blob {
        BlobId::Message { email, .. } => {
            let Some(copy) = ctx.first_copy(*email).await? else {
                return Ok(None);
            };
            match ctx.store().fetch(copy.mailbox, copy.uid, false).await? {
                Some(raw) => raw,
                None => return Ok(None),
            }
        }
        BlobId::Upload { key, part } => {
            let upload = ctx
                .store()
                .upload_get(ctx.account.id, key, now_micros())
                .await?;
            match (upload, part) {
                (None, _) => return Ok(None),
                (Some(whole), None) => return Ok(Some(whole)),
                (Some((bytes, _)), Some(_)) => bytes,
            }
        }
    };
    let Some(part) = blob.part_number() else {
        return Ok(Some((whole, "message/rfc822".into())));
    };
    // A part is found by parsing its message: drawn from the request's parse budget.
    super::email::charge_parsed(&mut ctx.parsed_bytes, whole.len() as u64)?;
    let Some(message) = MessageParser::default().parse(&whole[..]) else {
        return Ok(None);
    };
    Ok(message.parts.get(part as usize).map(|p| {
        use mail_parser::MimeHeaders;
        let media = p.content_type().map_or_else(
            || "application/octet-stream".to_string(),
            |ct| match &ct.c_subtype {
                Some(sub) => format!("{}/{}", ct.c_type, sub).to_lowercase(),
                None => ct.c_type.to_lowercase(),
            },
        );
        (super::email::part_bytes(p).into_owned(), media)
    }))
}

pub async fn read(ctx: &mut Ctx<'_>, blob: &BlobId) -> Result<Option<Vec<u8>>, MethodError> {
    Ok(read_typed(ctx, blob).await?.map(|(bytes, _)| bytes))
}

/// Blob/copy (RFC 8620 §6.3). A login has one account, and a blob id names the same bytes for as long
/// as the account keeps them, so a copy within it is the id itself; no other account can be reached.
pub async fn copy(ctx: &mut Ctx<'_>, args: Map<String, Value>) -> MethodResult {
    match args.get("fromAccountId").and_then(Value::as_str) {
        Some(from) if from == ctx.account_id() => {}
        _ => return Err(MethodError::new("fromAccountNotFound")),
    }
    let ids = id_list(&args, "blobIds")?.unwrap_or_default();
    let (mut copied, mut not_copied) = (Map::new(), Map::new());
    for id in ids {
        let found = match ids::parse_blob(&id) {
            // A whole message is there while a copy of it is; a part or an upload is read to be sure.
            Some(BlobId::Message { email, part: None }) => ctx.first_copy(email).await?.is_some(),
            Some(blob) => match read(ctx, &blob).await? {
                Some(bytes) => {
                    charge_parsed(&mut ctx.parsed_bytes, bytes.len() as u64)?;
                    true
                }
                None => false,
            },
            None => false,
        };
        match found {
            true => copied.insert(id.clone(), json!(id)),
            false => not_copied.insert(id, json!({"type": "notFound"})),
        };
    }
    let or_null = |m: Map<String, Value>| match m.is_empty() {
        true => Value::Null,
        false => Value::Object(m),
    };
    Ok(json!({
        "fromAccountId": ctx.account_id(),
        "accountId": ctx.account_id(),
        "copied": or_null(copied),
        "notCopied": or_null(not_copied),
    }))
}
