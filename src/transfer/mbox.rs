//! mbox (mboxrd) import and export.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use jmail_proto::mbox::{Split, Splitter, entry};

use super::{ImportSummary, Importer, Progress, TransferError, for_each_message, io};
use crate::store::{MailboxId, Store};

/// Longest piece of a line read at once; longer lines are fed in pieces.
const LINE_PIECE_BYTES_MAX: u64 = 64 * 1024;

pub async fn import(
    store: &dyn Store,
    owner: &str,
    path: &Path,
    message_bytes_max: usize,
    progress: Progress<'_>,
) -> Result<ImportSummary, TransferError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut read = 0u64;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut splitter = Splitter::new(message_bytes_max);
    let mut importer = Importer::new(store, owner);
    let mut line = Vec::new();
    let mut at_line_start = true;
    loop {
        line.clear();
        let n = (&mut reader)
            .take(LINE_PIECE_BYTES_MAX)
            .read_until(b'\n', &mut line)
            .map_err(io(path))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        progress(read);
        let split = if at_line_start {
            splitter.push_line(&line)
        } else {
            splitter.push_more(&line);
            None
        };
        at_line_start = line.ends_with(b"\n");
        take(&mut importer, split).await?;
    }
    take(&mut importer, splitter.finish()).await?;
    importer.finish().await
}

/// Hands a finished message to the importer, or counts it as too large.
async fn take(importer: &mut Importer<'_>, split: Option<Split>) -> Result<(), TransferError> {
    match split {
        Some(Split::Message(raw)) => importer.add(raw, false).await,
        Some(Split::TooLarge) => {
            importer.too_large();
            Ok(())
        }
        None => Ok(()),
    }
}

pub async fn export(
    store: &dyn Store,
    inbox: MailboxId,
    path: &Path,
) -> Result<u64, TransferError> {
    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut out = BufWriter::new(file);
    let count = for_each_message(store, inbox, |meta, raw| {
        let date =
            chrono::DateTime::from_timestamp_micros(meta.internal_date_micros).unwrap_or_default();
        let asctime = date.format("%a %b %e %H:%M:%S %Y").to_string();
        out.write_all(&entry(&meta.from, &asctime, raw))
            .map_err(io(path))
    })
    .await?;
    out.flush().map_err(io(path))?;
    out.get_ref().sync_all().map_err(io(path))?;
    Ok(count)
}
