//! SORT and UID SORT (RFC 5256, with RFC 5957's DISPLAYFROM and DISPLAYTO), and THREAD with RFC 5256's
//! ORDEREDSUBJECT: a search's matches put in order by `jmail_proto::imap::sort`, from their listing and
//! the envelope stored at delivery, so no message is parsed again.

use jmail_proto::imap::imap_types::core::Charset;
use jmail_proto::imap::imap_types::extensions::sort::SortCriterion;
use jmail_proto::imap::imap_types::extensions::thread::ThreadingAlgorithm;
use jmail_proto::imap::imap_types::search::SearchKey;
use jmail_proto::imap::sort::{
    SortInput, Sortable, needs_envelope, order, ordered_subject_response, ordered_subject_threads,
};
use jmail_proto::summary::{Envelope, Summary};

use super::respond::{bad, no, ok};
use super::selected::{busy_with_large_messages, refuse_charset};
use super::session::{Session, State};
use crate::driver::Outcome;

/// What a search found, ready to be ordered.
struct Found {
    /// Untagged responses to go first (CONDSTORE turned on by a MODSEQ key).
    head: Vec<u8>,
    matches: Vec<Match>,
    uses_modseq: bool,
}

/// One match: its numbers, arrival, size and modseq, and its stored summary (JSON) when asked for.
struct Match {
    seq: u32,
    uid: u32,
    arrival_micros: i64,
    size: u64,
    modseq: u64,
    summary: Option<String>,
}

impl Found {
    /// RFC 7162 §3.1.5: with a MODSEQ search key, the highest modseq of what was found.
    fn modseq_suffix(&self) -> String {
        let highest = self.matches.iter().map(|m| m.modseq).max();
        match highest.filter(|_| self.uses_modseq) {
            Some(h) => format!(" (MODSEQ {h})"),
            None => String::new(),
        }
    }
}

/// Runs `f` over the matches' sort inputs on the blocking pool: reading envelopes and base subjects
/// of a whole mailbox is CPU work that must not hold up the runtime's threads. `None` if it panicked.
async fn over_inputs<T: Send + 'static>(
    matches: Vec<Match>,
    f: impl FnOnce(&[SortInput<'_>]) -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(move || {
        let envelopes: Vec<Option<Envelope>> = matches
            .iter()
            .map(|m| m.summary.as_deref().and_then(Summary::envelope_from_json))
            .collect();
        let inputs: Vec<SortInput<'_>> = matches
            .iter()
            .zip(&envelopes)
            .map(|(m, envelope)| SortInput {
                seq: m.seq,
                uid: m.uid,
                arrival_micros: m.arrival_micros,
                size: m.size,
                envelope: envelope.as_ref(),
            })
            .collect();
        f(&inputs)
    })
    .await
    .ok()
}

impl Session {
    pub(super) async fn sort(
        &mut self,
        tag: &str,
        criteria: &[SortCriterion],
        charset: &Charset<'_>,
        keys: &[SearchKey<'_>],
        uid: bool,
    ) -> Outcome {
        let found = match self
            .found(tag, charset, keys, needs_envelope(criteria))
            .await
        {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let suffix = found.modseq_suffix();
        let criteria = criteria.to_vec();
        let sorted = over_inputs(found.matches, move |inputs| {
            let mut sorted: Vec<Sortable> =
                inputs.iter().map(|m| Sortable::new(&criteria, m)).collect();
            order(&criteria, &mut sorted);
            sorted
        })
        .await;
        let Some(sorted) = sorted else {
            return Outcome::go_on(no(tag, Some("SERVERBUG"), "The sort failed"));
        };
        let mut line = "* SORT".to_string();
        for m in &sorted {
            line.push_str(&format!(" {}", if uid { m.uid } else { m.seq }));
        }
        line.push_str(&suffix);
        self.finish(tag, found.head, line, uid, "SORT").await
    }

    pub(super) async fn thread(
        &mut self,
        tag: &str,
        algorithm: &ThreadingAlgorithm<'_>,
        charset: &Charset<'_>,
        keys: &[SearchKey<'_>],
        uid: bool,
    ) -> Outcome {
        if !matches!(algorithm, ThreadingAlgorithm::OrderedSubject) {
            return self.protocol_error(bad(tag, "Only ORDEREDSUBJECT threading is offered"));
        }
        let found = match self.found(tag, charset, keys, true).await {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let threads = over_inputs(found.matches, move |inputs| {
            ordered_subject_threads(inputs, uid)
        })
        .await;
        let Some(threads) = threads else {
            return Outcome::go_on(no(tag, Some("SERVERBUG"), "The threading failed"));
        };
        let line = format!("* THREAD {}", ordered_subject_response(&threads));
        let line = line.trim_end().to_string();
        self.finish(tag, found.head, line, uid, "THREAD").await
    }

    /// The matches of a search, with envelopes when asked, or the command's answer.
    async fn found(
        &mut self,
        tag: &str,
        charset: &Charset<'_>,
        keys: &[SearchKey<'_>],
        envelopes: bool,
    ) -> Result<Found, Outcome> {
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
            envelopes,
            &seq_of,
        )
        .await;
        let rows = match rows {
            Ok(Some(rows)) => rows,
            Ok(None) => return Err(busy_with_large_messages(tag)),
            Err(e) => return Err(Outcome::go_on(self.store_failure(tag, &e))),
        };
        let matches = rows
            .into_iter()
            .map(|row| Match {
                seq: seq_of(row.meta.uid),
                uid: row.meta.uid,
                arrival_micros: row.meta.internal_date_micros,
                size: row.meta.size,
                modseq: row.meta.modseq,
                summary: row.summary,
            })
            .collect();
        Ok(Found {
            head,
            matches,
            uses_modseq,
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
