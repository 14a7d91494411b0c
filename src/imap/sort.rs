//! SORT and UID SORT (RFC 5256, with RFC 5957's DISPLAYFROM and DISPLAYTO, and RFC 5267's RETURN
//! options, ESORT), and THREAD with RFC 5256's
//! ORDEREDSUBJECT and REFERENCES: a search's matches put in order by `jmail_proto::imap::sort` and
//! `jmail_proto::imap::thread`, from their listing and what delivery stored of them, so no message is
//! parsed again. Each match is reduced to its keys as the search reads it, a batch at a time, so a
//! mailbox's summaries are never all held at once.

use jmail_proto::imap::extended::SearchReturn;
use jmail_proto::imap::imap_types::core::Charset;
use jmail_proto::imap::imap_types::extensions::sort::SortCriterion;
use jmail_proto::imap::imap_types::extensions::thread::ThreadingAlgorithm;
use jmail_proto::imap::imap_types::search::SearchKey;
use jmail_proto::imap::search::{Candidate, Need};
use jmail_proto::imap::sort::{SortInput, SortKeys, Sortable, needs_envelope, order};
use jmail_proto::imap::thread::{self, ThreadInput, ThreadKeys};
use jmail_proto::summary::{Envelope, Summary};
use std::collections::HashMap;
use std::sync::Arc;

use super::SortCache;
use super::respond::{bad, no, ok, uid_set};
use super::selected::{busy_with_large_messages, refuse_charset};
use super::session::{Session, State};
use crate::driver::Outcome;
use crate::store::{Listed, MESSAGES_PER_CALL_MAX, Wanted};

/// What the kept sort keys made of a search's matches.
enum Kept<T> {
    Found(Vec<T>),
    /// The command's answer already (a refusal, a failure).
    Answer(Outcome),
    /// The search reads more than numbers: the general way sorts it.
    ReadsMore,
}

/// What a search found, each match as a `T`.
struct Found<T> {
    /// Untagged responses to go first (CONDSTORE turned on by a MODSEQ key).
    head: Vec<u8>,
    matches: Vec<T>,
    /// RFC 7162 §3.1.5: with a MODSEQ search key, the highest modseq found.
    highest_modseq: Option<u64>,
}

/// What sorting and threading read of a match: its listing, and the envelope stored at delivery.
fn sort_input<'a>(row: &Listed, seq: u32, envelope: Option<&'a Envelope>) -> SortInput<'a> {
    SortInput {
        seq,
        uid: row.meta.uid,
        arrival_micros: row.meta.internal_date_micros,
        size: row.meta.size,
        envelope,
    }
}

/// Every sort key of a listed message, from its stored summary; with `threading`, what THREAD=REFERENCES
/// reads too.
fn keys_of(row: &Listed, threading: bool) -> SortKeys {
    let summary = row.summary.as_deref();
    match threading {
        false => {
            let envelope = summary.and_then(Summary::envelope_from_json);
            SortKeys::new(&sort_input(row, 0, envelope.as_ref()))
        }
        true => {
            let (envelope, references) = summary.and_then(Summary::threading_from_json).unzip();
            let input = sort_input(row, 0, envelope.as_ref());
            let thread = ThreadKeys::new(&input, references.unwrap_or_default());
            SortKeys::new(&input).with_thread(thread)
        }
    }
}

/// `f` on the blocking pool: ordering a whole mailbox is CPU work that must not hold up the runtime's
/// threads. `None` if it panicked.
async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

impl Session {
    pub(super) async fn sort(
        &mut self,
        tag: &str,
        criteria: &[SortCriterion],
        charset: &Charset<'_>,
        keys: &[SearchKey<'_>],
        uid: bool,
        returns: Option<Vec<SearchReturn>>,
    ) -> Outcome {
        if let Some(cache) = self.sort_cache.clone().filter(|c| c.keeps()) {
            let by = criteria.to_vec();
            let make =
                move |seq, uid, keys: &SortKeys| Some(Sortable::from_keys(&by, seq, uid, keys));
            match self
                .matches_kept(tag, &cache, charset, keys, false, make)
                .await
            {
                Kept::Found(mut sortable) => {
                    let criteria = criteria.to_vec();
                    let sorted = off_runtime(move || {
                        order(&criteria, &mut sortable);
                        sortable
                    });
                    let Some(sorted) = sorted.await else {
                        return Outcome::go_on(no(tag, Some("SERVERBUG"), "The sort failed"));
                    };
                    return self
                        .sort_answer(tag, Vec::new(), &sorted, uid, returns, None)
                        .await;
                }
                Kept::Answer(answer) => return answer,
                Kept::ReadsMore => {}
            }
        }
        let with_envelope = needs_envelope(criteria);
        let keys_of = {
            let criteria = criteria.to_vec();
            move |row: Listed, seq| {
                let envelope = row.summary.as_deref().and_then(Summary::envelope_from_json);
                Sortable::new(&criteria, &sort_input(&row, seq, envelope.as_ref()))
            }
        };
        let found = match self.found(tag, charset, keys, with_envelope, keys_of).await {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let criteria = criteria.to_vec();
        let mut sorted = found.matches;
        let sorted = off_runtime(move || {
            order(&criteria, &mut sorted);
            sorted
        })
        .await;
        let Some(sorted) = sorted else {
            return Outcome::go_on(no(tag, Some("SERVERBUG"), "The sort failed"));
        };
        let (head, highest) = (found.head, found.highest_modseq);
        self.sort_answer(tag, head, &sorted, uid, returns, highest)
            .await
    }

    /// SORT's response (or ESORT's) for messages in order, and the tagged OK.
    async fn sort_answer(
        &mut self,
        tag: &str,
        head: Vec<u8>,
        sorted: &[Sortable],
        uid: bool,
        returns: Option<Vec<SearchReturn>>,
        highest_modseq: Option<u64>,
    ) -> Outcome {
        let numbers: Vec<u32> = sorted
            .iter()
            .map(|m| if uid { m.uid } else { m.seq })
            .collect();
        let line = match returns {
            Some(returns) => esort(tag, uid, &numbers, &returns, highest_modseq),
            None => {
                let mut line = "* SORT".to_string();
                for n in &numbers {
                    line.push_str(&format!(" {n}"));
                }
                if let Some(h) = highest_modseq {
                    line.push_str(&format!(" (MODSEQ {h})"));
                }
                line
            }
        };
        self.finish(tag, head, line, uid, "SORT").await
    }

    /// The matches of a search that reads nothing of the messages (ALL, sequence and UID sets, and
    /// their combinations), each as `make` makes it of its numbers and sort keys: the keys the server
    /// keeps, read from the store (and kept) only for messages not kept yet. A search that reads more
    /// goes the general way.
    async fn matches_kept<T: Send + 'static>(
        &mut self,
        tag: &str,
        cache: &Arc<SortCache>,
        charset: &Charset<'_>,
        keys: &[SearchKey<'_>],
        threading: bool,
        make: impl Fn(u32, u32, &SortKeys) -> Option<T> + Clone + Send + 'static,
    ) -> Kept<T> {
        if let Some(refused) = refuse_charset(tag, Some(charset)) {
            return Kept::Answer(refused);
        }
        let query = match self.compile_search(tag, keys) {
            Ok(query) if query.need() == Need::Numbers => query,
            Ok(_) => return Kept::ReadsMore,
            Err(answer) => return Kept::Answer(answer),
        };
        let uids = self.bounded_uids(&query);
        let State::Selected(selected) = &self.state else {
            return Kept::Answer(self.protocol_error(bad(tag, "No mailbox selected")));
        };
        let (mailbox, view) = (selected.id, &selected.view);
        let matched: Vec<(u32, u32)> = uids
            .iter()
            .map(|&uid| (view.seq_of(uid).unwrap_or_default(), uid))
            .filter(|&(seq, uid)| {
                let candidate = Candidate::new(seq, uid, 0, &[], 0, 0, 0, None, None);
                query.matches(&candidate)
            })
            .collect();
        let failed = || {
            Kept::Answer(Outcome::go_on(no(
                tag,
                Some("SERVERBUG"),
                "The sort failed",
            )))
        };
        let kept = off_runtime({
            let (cache, matched, make) = (cache.clone(), matched.clone(), make.clone());
            move || cache.kept(mailbox, &matched, make)
        });
        let Some((mut found, missing)) = kept.await else {
            return failed();
        };
        let seq_of: HashMap<u32, u32> = match missing.is_empty() {
            true => HashMap::new(),
            false => matched.iter().map(|&(seq, uid)| (uid, seq)).collect(),
        };
        // A message the store no longer has (expunged by another session meanwhile) is left out, as
        // the general way leaves it out.
        for chunk in missing.chunks(MESSAGES_PER_CALL_MAX) {
            let wanted = Wanted {
                summary: true,
                raw_bytes_max: 0,
            };
            let rows = match self.store.messages(mailbox, chunk, wanted).await {
                Ok(rows) => rows,
                Err(e) => return Kept::Answer(Outcome::go_on(self.store_failure(tag, &e))),
            };
            let made = off_runtime(move || {
                rows.iter()
                    .map(|row| (row.meta.uid, keys_of(row, threading)))
                    .collect::<Vec<_>>()
            });
            let Some(made) = made.await else {
                return failed();
            };
            found.extend(
                made.iter()
                    .filter_map(|(uid, k)| make(seq_of[uid], *uid, k)),
            );
            cache.put(mailbox, made);
        }
        Kept::Found(found)
    }

    pub(super) async fn thread(
        &mut self,
        tag: &str,
        algorithm: &ThreadingAlgorithm<'_>,
        charset: &Charset<'_>,
        keys: &[SearchKey<'_>],
        uid: bool,
    ) -> Outcome {
        let threading: fn(&[ThreadInput]) -> thread::Forest = match algorithm {
            ThreadingAlgorithm::OrderedSubject => thread::ordered_subject,
            ThreadingAlgorithm::References => thread::references,
            _ => {
                return self
                    .protocol_error(bad(tag, "Threading is by ORDEREDSUBJECT or REFERENCES"));
            }
        };
        if let Some(cache) = self.sort_cache.clone().filter(|c| c.keeps()) {
            // ORDEREDSUBJECT reads sort keys only; REFERENCES the Message-IDs too.
            let references = matches!(algorithm, ThreadingAlgorithm::References);
            let make = move |seq, number, keys: &SortKeys| {
                let number = if uid { number } else { seq };
                match references {
                    true => ThreadInput::from_keys(keys, seq, number),
                    false => Some(ThreadInput::for_ordered_subject(keys, seq, number)),
                }
            };
            match self
                .matches_kept(tag, &cache, charset, keys, references, make)
                .await
            {
                Kept::Found(mut inputs) => {
                    let threads = off_runtime(move || {
                        // REFERENCES takes them in mailbox order.
                        inputs.sort_unstable_by_key(|m| m.seq);
                        threading(&inputs).response()
                    });
                    let Some(threads) = threads.await else {
                        return Outcome::go_on(no(tag, Some("SERVERBUG"), "The threading failed"));
                    };
                    let line = format!("* THREAD {threads}").trim_end().to_string();
                    return self.finish(tag, Vec::new(), line, uid, "THREAD").await;
                }
                Kept::Answer(answer) => return answer,
                Kept::ReadsMore => {}
            }
        }
        let input_of = move |row: Listed, seq| {
            let (envelope, references) = row
                .summary
                .as_deref()
                .and_then(Summary::threading_from_json)
                .unzip();
            let input = sort_input(&row, seq, envelope.as_ref());
            ThreadInput::new(&input, references.unwrap_or_default(), uid)
        };
        let found = match self.found(tag, charset, keys, true, input_of).await {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let matches = found.matches;
        let threads = off_runtime(move || threading(&matches).response()).await;
        let Some(threads) = threads else {
            return Outcome::go_on(no(tag, Some("SERVERBUG"), "The threading failed"));
        };
        let line = format!("* THREAD {threads}");
        let line = line.trim_end().to_string();
        self.finish(tag, found.head, line, uid, "THREAD").await
    }

    /// The matches of a search, each as `keep` makes it of its listing (with its summary when
    /// `summaries`) and sequence number; or the command's answer.
    async fn found<T: Send + 'static>(
        &mut self,
        tag: &str,
        charset: &Charset<'_>,
        keys: &[SearchKey<'_>],
        summaries: bool,
        keep: impl Fn(Listed, u32) -> T + Send + Sync + 'static,
    ) -> Result<Found<T>, Outcome> {
        if let Some(refused) = refuse_charset(tag, Some(charset)) {
            return Err(refused);
        }
        let query = self.compile_search(tag, keys)?;
        let uses_modseq = query.uses_modseq();
        let head = match uses_modseq {
            true => self.enable_condstore(),
            false => Vec::new(),
        };
        let uids = self.bounded_uids(&query);
        let State::Selected(selected) = &self.state else {
            return Err(self.protocol_error(bad(tag, "No mailbox selected")));
        };
        let view = &selected.view;
        let seq_of = |uid: u32| view.seq_of(uid).unwrap_or_default();
        let rows = crate::search::evaluate(
            &*self.store,
            &self.input,
            selected.id,
            &uids,
            &query,
            summaries,
            &seq_of,
            move |row, seq| (row.meta.modseq, keep(row, seq)),
        )
        .await;
        let rows = match rows {
            Ok(Some(rows)) => rows,
            Ok(None) => return Err(busy_with_large_messages(tag)),
            Err(e) => return Err(Outcome::go_on(self.store_failure(tag, &e))),
        };
        let highest = rows.iter().map(|(modseq, _)| *modseq).max();
        Ok(Found {
            head,
            matches: rows.into_iter().map(|(_, m)| m).collect(),
            highest_modseq: highest.filter(|_| uses_modseq),
        })
    }

    /// The response line, the mailbox's news, and the tagged OK.
    async fn finish(
        &mut self,
        tag: &str,
        mut out: Vec<u8>,
        line: String,
        uid: bool,
        verb: &str,
    ) -> Outcome {
        out.extend_from_slice(format!("{line}\r\n").as_bytes());
        if let Err(e) = self.sync(&mut out, uid).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        out.extend(ok(tag, &format!("{verb} completed")));
        Outcome::go_on(out)
    }
}

/// ESORT's answer (RFC 5267 §3.2): an ESEARCH response for `numbers` in the sort's order, whose MIN and
/// MAX are the first and last in that order and whose ALL keeps it (ascending runs become ranges). No
/// options asked for is ALL. With a MODSEQ search key, the highest modseq of all the matches (RFC 7162
/// §3.1.5 asks for that of those returned; for MIN or MAX alone this may be higher).
fn esort(
    tag: &str,
    uid: bool,
    numbers: &[u32],
    returns: &[SearchReturn],
    modseq: Option<u64>,
) -> String {
    let returns = match returns.is_empty() {
        true => &[SearchReturn::All][..],
        false => returns,
    };
    let mut line = format!("* ESEARCH (TAG \"{tag}\")");
    if uid {
        line.push_str(" UID");
    }
    for option in returns {
        match (option, numbers.first(), numbers.last()) {
            (SearchReturn::Min, Some(first), _) => line.push_str(&format!(" MIN {first}")),
            (SearchReturn::Max, _, Some(last)) => line.push_str(&format!(" MAX {last}")),
            (SearchReturn::Count, ..) => line.push_str(&format!(" COUNT {}", numbers.len())),
            (SearchReturn::All, Some(_), _) => line.push_str(&format!(" ALL {}", uid_set(numbers))),
            _ => {}
        }
    }
    if let Some(h) = modseq.filter(|_| !numbers.is_empty()) {
        line.push_str(&format!(" MODSEQ {h}"));
    }
    line
}
