//! Blobs (RFC 8620 §6): a stored message's bytes or one part of them (decoded), and uploads.
//!
//! Uploads are held in this process's memory until used or an hour has passed: at most
//! [`UPLOADS_BYTES_PER_ACCOUNT_MAX`] per account and [`UPLOADS_BYTES_MAX`] in all, so uploading cannot
//! exhaust memory. An upload is found only on the node that took it (a client uploads and then imports
//! or sends through the same node in practice; see docs/jmap.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mail_parser::MessageParser;

use super::Ctx;
use super::ids::BlobId;
use super::request::MethodError;
use crate::store::UserId;

/// Bytes of uploads held for one account, and for all together.
pub const UPLOADS_BYTES_PER_ACCOUNT_MAX: usize = 64 * 1024 * 1024;
pub const UPLOADS_BYTES_MAX: usize = 512 * 1024 * 1024;
/// How long an upload is kept.
const UPLOAD_SECS: u64 = 3600;

#[derive(Clone)]
pub struct Upload {
    pub bytes: Arc<Vec<u8>>,
    pub media_type: String,
    until: Instant,
}

#[derive(Default)]
struct Uploads {
    by_key: HashMap<(UserId, String), Upload>,
    bytes: usize,
}

impl Uploads {
    fn expire(&mut self) {
        let now = Instant::now();
        let mut freed = 0;
        self.by_key.retain(|_, u| {
            let keep = u.until > now;
            if !keep {
                freed += u.bytes.len();
            }
            keep
        });
        self.bytes -= freed;
    }

    fn account_bytes(&self, user: UserId) -> usize {
        self.by_key
            .iter()
            .filter(|((u, _), _)| *u == user)
            .map(|(_, up)| up.bytes.len())
            .sum()
    }
}

fn uploads() -> &'static Mutex<Uploads> {
    static UPLOADS: OnceLock<Mutex<Uploads>> = OnceLock::new();
    UPLOADS.get_or_init(|| Mutex::new(Uploads::default()))
}

/// Keeps an upload; its key, or `None` when the account's or the server's room for uploads is spent.
pub fn put(user: UserId, bytes: Vec<u8>, media_type: String) -> Option<String> {
    let mut all = uploads().lock().expect("uploads lock");
    all.expire();
    if all.account_bytes(user) + bytes.len() > UPLOADS_BYTES_PER_ACCOUNT_MAX
        || all.bytes + bytes.len() > UPLOADS_BYTES_MAX
    {
        return None;
    }
    let key: String = rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    all.bytes += bytes.len();
    all.by_key.insert(
        (user, key.clone()),
        Upload {
            bytes: Arc::new(bytes),
            media_type,
            until: Instant::now() + Duration::from_secs(UPLOAD_SECS),
        },
    );
    Some(key)
}

pub fn get(user: UserId, key: &str) -> Option<Upload> {
    let mut all = uploads().lock().expect("uploads lock");
    all.expire();
    all.by_key.get(&(user, key.to_string())).cloned()
}

/// A blob's bytes and its media type (a part's own, else `message/rfc822`), if the account has it.
pub async fn read_typed(
    ctx: &mut Ctx<'_>,
    blob: &BlobId,
) -> Result<Option<(Vec<u8>, String)>, MethodError> {
    let whole: Vec<u8> = match blob {
        BlobId::Message { email, .. } => {
            if ctx.mailbox(email.mailbox).await?.is_none() {
                return Ok(None);
            }
            match ctx.store().fetch(email.mailbox, email.uid, false).await? {
                Some(raw) => raw,
                None => return Ok(None),
            }
        }
        BlobId::Upload { key, part: None } => {
            return Ok(get(ctx.account.id, key).map(|u| (u.bytes.to_vec(), u.media_type)));
        }
        BlobId::Upload { key, .. } => match get(ctx.account.id, key) {
            Some(u) => u.bytes.to_vec(),
            None => return Ok(None),
        },
    };
    let Some(part) = blob.part_number() else {
        return Ok(Some((whole, "message/rfc822".into())));
    };
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
