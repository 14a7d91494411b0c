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

use super::respond::{bad, ok};
use super::selected::{busy_with_large_messages, refuse_charset};
use super::session::{Session, State};
use crate::driver::Outcome;

/// What a search found, ready to be ordered: each match's listing, sequence number and envelope.
struct Found {
    /// Untagged responses to go first (CONDSTORE turned on by a MODSEQ key).
    head: Vec<u8>,
    /// (sequence number, UID, arrival, size, modseq, envelope) of each match.
    matches: Vec<(u32, u32, i64, u64, u64, Option<Envelope>)>,
    uses_modseq: bool,
}

impl Found {
    fn inputs(&self) -> Vec<SortInput<'_>> {
        self.matches
            .iter()
            .map(|(seq, uid, arrival, size, _, envelope)| SortInput {
                seq: *seq,
                uid: *uid,
                arrival_micros: *arrival,
                size: *size,
                envelope: envelope.as_ref(),
            })
            .collect()
    }

    /// RFC 7162 §3.1.5: with a MODSEQ search key, the highest modseq of what was found.
    fn modseq_suffix(&self) -> String {
        let highest = self.matches.iter().map(|m| m.4).max();
        match highest.filter(|_| self.uses_modseq) {
            Some(h) => format!(" (MODSEQ {h})"),
            None => String::new(),
        }
    }
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
        let mut sorted: Vec<Sortable> = found
            .inputs()
            .iter()
            .map(|m| Sortable::new(criteria, m))
            .collect();
        order(criteria, &mut sorted);
        let mut line = "* SORT".to_string();
        for m in &sorted {
            line.push_str(&format!(" {}", if uid { m.uid } else { m.seq }));
        }
        line.push_str(&found.modseq_suffix());
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
        let threads = ordered_subject_threads(&found.inputs(), uid);
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
            .iter()
            .map(|row| {
                let m = &row.meta;
                let envelope = row.summary.as_deref().and_then(Summary::envelope_from_json);
                let at = m.internal_date_micros;
                (seq_of(m.uid), m.uid, at, m.size, m.modseq, envelope)
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
