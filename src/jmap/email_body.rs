//! An Email's body given as `bodyStructure` on create (RFC 8621 §4.6), made into a MIME tree:
//! multiparts with `subParts`, and leaves that are text from `bodyValues` (`partId`) or bytes of an
//! upload or a stored part (`blobId`), with their disposition, name, cid, language and location.
//! Bounded: at most [`PARTS_MAX`] parts, [`DEPTH_MAX`] levels deep.

use std::future::Future;
use std::pin::Pin;

use mail_builder::headers::content_type::ContentType;
use mail_builder::mime::{BodyPart, MimePart};
use serde_json::{Map, Value, json};

use super::Ctx;
use super::ids;

/// Most parts one bodyStructure may have.
pub const PARTS_MAX: usize = 100;
/// Deepest a bodyStructure's multiparts may nest.
pub const DEPTH_MAX: usize = 8;

fn refused(why: impl Into<String>) -> Value {
    json!({"type": "invalidProperties", "properties": ["bodyStructure"], "description": why.into()})
}

/// The MIME tree of `structure`, an EmailBodyPart, with texts from `body_values`.
pub async fn tree(
    ctx: &mut Ctx<'_>,
    structure: &Value,
    body_values: Option<&Value>,
) -> Result<MimePart<'static>, Value> {
    let mut left = Left {
        parts: PARTS_MAX,
        bytes: ctx.shared.config.limits.message_bytes_max,
    };
    part(ctx, structure, body_values, 0, &mut left).await
}

/// What a bodyStructure may still take: parts, and bytes of blobs and texts held while the message
/// is built (no more than a message may hold).
struct Left {
    parts: usize,
    bytes: usize,
}

impl Left {
    fn take_bytes(&mut self, n: usize, size_max: usize) -> Result<(), Value> {
        self.bytes = self
            .bytes
            .checked_sub(n)
            .ok_or_else(|| super::email_set::too_large(size_max))?;
        Ok(())
    }
}

type Made<'a> = Pin<Box<dyn Future<Output = Result<MimePart<'static>, Value>> + Send + 'a>>;

fn part<'a>(
    ctx: &'a mut Ctx<'_>,
    node: &'a Value,
    body_values: Option<&'a Value>,
    depth: usize,
    left: &'a mut Left,
) -> Made<'a> {
    Box::pin(async move {
        let Some(node) = node.as_object() else {
            return Err(refused("a part is an object"));
        };
        if left.parts == 0 || depth > DEPTH_MAX {
            return Err(refused(format!(
                "at most {PARTS_MAX} parts, {DEPTH_MAX} levels deep"
            )));
        }
        left.parts -= 1;
        let size_max = ctx.shared.config.limits.message_bytes_max;
        let media = node.get("type").and_then(Value::as_str);
        if let Some(media) = media
            && (media.len() > 255 || !media.contains('/') || media.chars().any(char::is_control))
        {
            return Err(refused("type is a media type"));
        }
        let mut made = match (node.get("subParts"), node.get("partId"), node.get("blobId")) {
            (Some(Value::Array(children)), None, None) => {
                let media = media.unwrap_or("multipart/mixed").to_ascii_lowercase();
                if !media.starts_with("multipart/") {
                    return Err(refused("a part with subParts is multipart/*"));
                }
                let mut made = Vec::with_capacity(children.len());
                for child in children {
                    made.push(part(ctx, child, body_values, depth + 1, left).await?);
                }
                MimePart::new(ContentType::new(media), BodyPart::Multipart(made))
            }
            (None, Some(Value::String(id)), None) => {
                let media = media.unwrap_or("text/plain").to_ascii_lowercase();
                if !media.starts_with("text/") {
                    return Err(refused("a part given by partId is text/*"));
                }
                let text = body_values
                    .and_then(|v| v.get(id))
                    .and_then(|v| v.get("value"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| refused(format!("no bodyValues for partId {id}")))?;
                left.take_bytes(text.len(), size_max)?;
                MimePart::new(ContentType::new(media), text.to_string())
            }
            (None, None, Some(Value::String(blob))) => {
                let blob = ids::parse_blob(blob).ok_or_else(|| refused("not a blobId"))?;
                let (bytes, stored_type) = match super::blobs::read_typed(ctx, &blob).await {
                    Ok(Some(found)) => found,
                    _ => {
                        return Err(
                            json!({"type": "blobNotFound", "notFound": [blob.to_string()]}),
                        );
                    }
                };
                left.take_bytes(bytes.len(), size_max)?;
                let media = media.map_or(stored_type, str::to_ascii_lowercase);
                MimePart::new(ContentType::new(media), bytes)
            }
            _ => return Err(refused("a part has subParts, a partId or a blobId")),
        };
        let text = |key: &str| node.get(key).and_then(Value::as_str).map(str::to_string);
        made = match (text("disposition").as_deref(), text("name")) {
            (Some("inline"), _) => made.inline(),
            (Some("attachment"), name) | (None, name @ Some(_)) => {
                made.attachment(name.unwrap_or_else(|| "attachment".to_string()))
            }
            (None, None) => made,
            (Some(_), _) => return Err(refused("disposition is inline or attachment")),
        };
        if let Some(cid) = text("cid") {
            made = made.cid(cid);
        }
        if let Some(location) = text("location") {
            made = made.location(location);
        }
        if let Some(Value::Array(languages)) = node.get("language") {
            let list: Vec<&str> = languages.iter().filter_map(Value::as_str).collect();
            made = made.language(list.join(", "));
        }
        Ok(made)
    })
}

/// Whether `object` gives its body as `bodyStructure` (then not as textBody, htmlBody or
/// attachments: RFC 8621 §4.6 takes one way or the other).
pub fn given(object: &Map<String, Value>) -> Result<bool, Value> {
    let structure = object.get("bodyStructure").is_some_and(|v| !v.is_null());
    let lists = ["textBody", "htmlBody", "attachments"]
        .iter()
        .any(|k| object.get(*k).is_some_and(|v| !v.is_null()));
    match (structure, lists) {
        (true, true) => Err(refused(
            "bodyStructure, or textBody, htmlBody and attachments: not both",
        )),
        (structure, _) => Ok(structure),
    }
}
