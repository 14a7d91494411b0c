//! The mailbox as a v1 client sees it: mail from any source as `"<sender> At:<timestamp>": "<text>"`.

use jmail_proto::legacy::{Entry, REPLY_BYTES_MAX, mailbox_json};

use crate::config::Config;
use crate::message::render;
use crate::store::{MailStore, MailboxId, MessageMeta, StoreResult};

/// Messages read for one view. Every entry takes at least ~40 bytes of the 1,024 a v1 client reads, so
/// more could never be shown.
const VIEW_MESSAGES_MAX: usize = 32;

/// Bytes read of each message for the view: headers and the start of the text, never a whole large
/// message for a 1,024-byte answer.
const VIEW_MESSAGE_BYTES_MAX: usize = 16 * 1024;

/// The v1 sender name: the local part for our own domains (as v1 users knew each other), else the address.
fn sender(from: &str, config: &Config) -> String {
    match from.rsplit_once('@') {
        Some((local, domain))
            if config
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain)) =>
        {
            local.to_string()
        }
        _ => from.to_string(),
    }
}

fn timestamp(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

fn entry(meta: &MessageMeta, raw: &[u8], config: &Config) -> Entry {
    let body = render(raw).body;
    let text = String::from_utf8_lossy(&body).replace("\r\n", "\n");
    Entry {
        sender: sender(&meta.from, config),
        timestamp: timestamp(meta.internal_date_micros),
        text: text.trim_end().to_string(),
    }
}

/// A notice shown in this view only (never stored), e.g. why a send failed.
pub fn notice(text: &str) -> Entry {
    Entry {
        sender: "JMailServer".to_string(),
        timestamp: timestamp(chrono::Utc::now().timestamp_micros()),
        text: text.to_string(),
    }
}

/// The mailbox JSON: the newest messages that fit a v1 client's 1,024-byte read, `notice` (if any) last.
pub async fn mailbox(
    store: &dyn MailStore,
    inbox: MailboxId,
    config: &Config,
    notice: Option<Entry>,
) -> StoreResult<Vec<u8>> {
    let newest = store
        .newest(inbox, VIEW_MESSAGES_MAX, VIEW_MESSAGE_BYTES_MAX)
        .await?;
    let entries: Vec<Entry> = notice
        .into_iter()
        .chain(newest.iter().map(|(meta, raw)| entry(meta, raw, config)))
        .collect();
    Ok(mailbox_json(&entries, REPLY_BYTES_MAX).into_bytes())
}
