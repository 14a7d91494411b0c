//! Running a compiled search ([`Query`], from the pure crate) over a mailbox's messages in the store:
//! shared by IMAP SEARCH and JMAP `Email/query`. Each message is read only as deeply as the query needs
//! ([`Need`]); parsing runs on the blocking pool; large messages are read one at a time against the
//! server's budget for large messages in memory.

use jmail_proto::imap::search::{Candidate, Need, Query};
use jmail_proto::summary::Summary;
use std::sync::Arc;

use crate::caps::InputBudget;
use crate::store::{MESSAGES_PER_CALL_MAX, MailStore, MailboxId, StoreError, Wanted};

pub use crate::store::Listed;

/// Messages a search reads with their bytes per store call, and the largest read inline with the
/// listing (larger ones are read one at a time): a search holds at most their product at once.
const BATCH_WITH_BYTES: usize = 32;
const RAW_INLINE_BYTES_MAX: u64 = 64 * 1024;

/// The messages among `uids` (ascending) that match `query`, in UID order, each as `keep` makes it of
/// its listing (with its stored summary when the query or `also_summary` asks, never its bytes) and
/// its sequence number. `keep` runs a batch at a time, on the blocking pool when summaries are read, so
/// a search holds what `keep` keeps of each match rather than every match's summary. `seq_of` gives a
/// UID's sequence number. `None` when the budget for large messages refused one: the search did not
/// run to its end.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate<T: Send + 'static>(
    store: &dyn MailStore,
    input: &InputBudget,
    mailbox: MailboxId,
    uids: &[u32],
    query: &Query,
    also_summary: bool,
    seq_of: &(dyn Fn(u32) -> u32 + Sync),
    keep: impl Fn(Listed, u32) -> T + Send + Sync + 'static,
) -> Result<Option<Vec<T>>, StoreError> {
    let need = query.need();
    let keep = Arc::new(keep);
    let mut found = Vec::new();
    let mut budget = input.share();
    let wanted = Wanted {
        summary: also_summary || need >= Need::Summary,
        raw_bytes_max: if need >= Need::Bytes {
            RAW_INLINE_BYTES_MAX
        } else {
            0
        },
    };
    // With bytes wanted, fewer messages a call: it holds up to the inline size of each.
    let per_call = if need >= Need::Bytes {
        BATCH_WITH_BYTES
    } else {
        MESSAGES_PER_CALL_MAX
    };
    for chunk in uids.chunks(per_call) {
        let mut rows = store.messages(mailbox, chunk, wanted).await?;
        let seqs: Vec<u32> = rows.iter().map(|r| seq_of(r.meta.uid)).collect();
        let matched = if need <= Need::Listing {
            // Cheap: matched here.
            matching(query, rows, seqs)
        } else {
            // Parsing summaries and messages is CPU work: it runs on the blocking pool, not on the
            // runtime's threads, so one search of a large mailbox does not stall other connections.
            // Messages too large to be read with the listing are read, and matched, one at a time.
            let large: Vec<usize> = if need >= Need::Bytes {
                (0..rows.len()).filter(|&i| rows[i].raw.is_none()).collect()
            } else {
                Vec::new()
            };
            let mut large_found = Vec::new();
            for &i in large.iter().rev() {
                let mut row = rows.remove(i);
                // The message and what parsing it makes are held whole: drawn from the server's
                // budget for large messages, or the search stops (it did not run to its end).
                let size = row.meta.size as usize;
                if budget.hold(size.saturating_mul(3)).is_err() {
                    return Ok(None);
                }
                row.raw = store.fetch(mailbox, row.meta.uid, false).await?;
                let query = query.clone();
                let seq = seqs[i];
                large_found
                    .extend(off_runtime(move || matching(&query, vec![row], vec![seq])).await?);
                let _ = budget.hold(0);
            }
            let seqs: Vec<u32> = seqs
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !large.contains(i))
                .map(|(_, s)| s)
                .collect();
            let query = query.clone();
            let mut matched = off_runtime(move || matching(&query, rows, seqs)).await?;
            matched.extend(large_found);
            matched.sort_unstable_by_key(|(row, _)| row.meta.uid);
            matched
        };
        if wanted.summary {
            // What `keep` makes of a summary may cost parsing it.
            let keep = keep.clone();
            let kept = off_runtime(move || {
                matched
                    .into_iter()
                    .map(|(row, seq)| keep(row, seq))
                    .collect::<Vec<T>>()
            });
            found.extend(kept.await?);
        } else {
            found.extend(matched.into_iter().map(|(row, seq)| keep(row, seq)));
        }
    }
    Ok(Some(found))
}

/// The rows that match, without their bytes, with their sequence numbers; `seqs[i]` is row `i`'s.
fn matching(query: &Query, rows: Vec<Listed>, seqs: Vec<u32>) -> Vec<(Listed, u32)> {
    let reads_envelope = query.need() >= Need::Summary;
    rows.into_iter()
        .zip(seqs)
        .filter_map(|(mut row, seq)| {
            let meta = &row.meta;
            let envelope = match reads_envelope {
                true => row.summary.as_deref().and_then(Summary::envelope_from_json),
                false => None,
            };
            let candidate = Candidate::new(
                seq,
                meta.uid,
                meta.flags,
                &meta.keywords,
                meta.size,
                meta.internal_date_micros,
                meta.modseq,
                envelope.as_ref(),
                row.raw.as_deref(),
            )
            .in_zone(meta.internal_zone_minutes);
            let matched = query.matches(&candidate);
            drop(candidate);
            row.raw = None;
            matched.then_some((row, seq))
        })
        .collect()
}

/// `f` on the blocking pool.
async fn off_runtime<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("search task failed: {e}")))
}
