//! Moving a user's mail in and out as mbox or Maildir, streaming: memory holds one message (plus one
//! store batch), whatever the size of the file or folder.

pub mod maildir;
pub mod mbox;
pub mod store_copy;

use crate::message::imported;
use crate::store::{
    ImportBatch, ImportedMessage, MailboxId, MessageMeta, Store, StoreError, flags,
};

/// Told how far an import has got: bytes read (mbox) or files read (Maildir).
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Messages stored per transaction while importing.
const IMPORT_BATCH_MESSAGES_MAX: usize = 500;
/// Bytes held per import batch before it is stored.
const IMPORT_BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Messages read from the store per step while exporting.
const EXPORT_BATCH_MAX: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no such user: {0}")]
    NoSuchUser(String),
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub imported: u64,
    pub present: u64,
    pub too_large: u64,
}

/// Collects messages into batches and stores each batch in one transaction.
struct Importer<'a> {
    store: &'a dyn Store,
    owner: String,
    batch: ImportBatch,
    bytes: usize,
    summary: ImportSummary,
}

impl<'a> Importer<'a> {
    fn new(store: &'a dyn Store, owner: &str) -> Self {
        Importer {
            store,
            owner: owner.to_string(),
            batch: ImportBatch {
                match_content: true,
                ..ImportBatch::default()
            },
            bytes: 0,
            summary: ImportSummary::default(),
        }
    }

    async fn add(&mut self, raw: Vec<u8>, seen: bool) -> Result<(), TransferError> {
        self.bytes += raw.len();
        self.batch.messages.push(ImportedMessage {
            owner: self.owner.clone(),
            message: imported(raw),
            flags: if seen { flags::SEEN } else { 0 },
        });
        if self.batch.messages.len() >= IMPORT_BATCH_MESSAGES_MAX
            || self.bytes >= IMPORT_BATCH_BYTES_MAX
        {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransferError> {
        if self.batch.messages.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(
            &mut self.batch,
            ImportBatch {
                match_content: true,
                ..ImportBatch::default()
            },
        );
        self.bytes = 0;
        let counts = self.store.import(batch).await?;
        self.summary.imported += counts.messages_imported;
        self.summary.present += counts.messages_present;
        Ok(())
    }

    /// Counts a message skipped for being over the size limit.
    fn too_large(&mut self) {
        self.summary.too_large += 1;
    }

    async fn finish(mut self) -> Result<ImportSummary, TransferError> {
        self.flush().await?;
        Ok(self.summary)
    }
}

/// A user's INBOX, or the error that names them.
pub async fn inbox(store: &dyn Store, user: &str) -> Result<MailboxId, TransferError> {
    store
        .inbox_of(user)
        .await?
        .ok_or_else(|| TransferError::NoSuchUser(user.to_string()))
}

/// Calls `each` with every message of the mailbox and its bytes, in batches, oldest change first.
async fn for_each_message(
    store: &dyn Store,
    inbox: MailboxId,
    mut each: impl FnMut(&MessageMeta, &[u8]) -> Result<(), TransferError>,
) -> Result<u64, TransferError> {
    let mut since = 0;
    let mut count = 0;
    loop {
        let changes = store.changes(inbox, since, EXPORT_BATCH_MAX).await?;
        let mut messages = changes.messages;
        messages.sort_by_key(|m| m.uid);
        for meta in &messages {
            if let Some(raw) = store.fetch(inbox, meta.uid, false).await? {
                each(meta, &raw)?;
                count += 1;
            }
        }
        since = changes.through_modseq;
        if !changes.more {
            return Ok(count);
        }
    }
}
