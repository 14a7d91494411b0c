//! Maildir import (`new/` and `cur/`, the `S` flag for seen) and export (into `cur/`, through `tmp/`).

use std::path::Path;

use super::{ImportSummary, Importer, Progress, TransferError, for_each_message, io};
use crate::store::{MailboxId, Store, flags};

/// How many message files a Maildir holds (for a progress bar's total).
pub fn count(path: &Path) -> u64 {
    ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(path.join(sub)).ok())
        .map(|d| d.count() as u64)
        .sum()
}

/// True when a Maildir file name's info part (`:2,FLAGS`) has the seen flag.
fn seen(name: &str) -> bool {
    name.rsplit_once(":2,")
        .is_some_and(|(_, f)| f.contains('S'))
}

pub async fn import(
    store: &dyn Store,
    owner: &str,
    path: &Path,
    message_bytes_max: usize,
    progress: Progress<'_>,
) -> Result<ImportSummary, TransferError> {
    let mut importer = Importer::new(store, owner);
    let mut done = 0u64;
    for sub in ["new", "cur"] {
        let dir = path.join(sub);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            done += 1;
            progress(done);
            let file = dir.join(&name);
            let size = std::fs::metadata(&file).map_err(io(&file))?.len();
            if size > message_bytes_max as u64 {
                importer.too_large();
                continue;
            }
            let raw = std::fs::read(&file).map_err(io(&file))?;
            importer.add(raw, seen(&name.to_string_lossy())).await?;
        }
    }
    importer.finish().await
}

/// Writes each message to `cur/` under a name made from its arrival time and UID, so exporting again
/// rewrites the same files instead of adding copies.
pub async fn export(
    store: &dyn Store,
    inbox: MailboxId,
    path: &Path,
) -> Result<u64, TransferError> {
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(path.join(sub)).map_err(io(path))?;
    }
    let count = for_each_message(store, inbox, |meta, raw| {
        let secs = meta.internal_date_micros.div_euclid(1_000_000);
        let flag = if meta.flags & flags::SEEN != 0 {
            "S"
        } else {
            ""
        };
        let name = format!("{secs}.jmail{}.{}:2,{flag}", meta.uid, inbox);
        let tmp = path.join("tmp").join(&name);
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        std::io::Write::write_all(&mut file, raw).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        let done = path.join("cur").join(&name);
        std::fs::rename(&tmp, &done).map_err(io(&done))
    })
    .await?;
    // The renames are durable once the folder itself is synced.
    let cur = path.join("cur");
    std::fs::File::open(&cur)
        .and_then(|d| d.sync_all())
        .map_err(io(&cur))?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    #[test]
    fn seen_flag_from_name() {
        assert!(super::seen("1.2.host:2,FS"));
        assert!(!super::seen("1.2.host:2,F"));
        assert!(!super::seen("1.2.host"));
    }
}
