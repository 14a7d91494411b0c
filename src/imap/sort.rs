//! SORT and UID SORT (RFC 5256, with RFC 5957's DISPLAYFROM and DISPLAYTO): a search's matches put in
//! order by `jmail_proto::imap::sort`, from their listing and the envelope stored at delivery, so no
//! message is parsed again.

use jmail_proto::imap::imap_types::core::Charset;
use jmail_proto::imap::imap_types::extensions::sort::SortCriterion;
use jmail_proto::imap::imap_types::search::SearchKey;
use jmail_proto::imap::sort::{SortInput, Sortable, needs_envelope, order};
use jmail_proto::summary::Summary;

use super::respond::ok;
use super::selected::{busy_with_large_messages, refuse_charset};
use super::session::{Session, State};
use crate::driver::Outcome;

impl Session {
    pub(super) async fn sort(
        &mut self,
        tag: &str,
        criteria: &[SortCriterion],
        charset: &Charset<'_>,
        keys: &[SearchKey<'_>],
        uid: bool,
    ) -> Outcome {
        if let Some(refused) = refuse_charset(tag, Some(charset)) {
            return refused;
        }
        let query = match self.compile_search(tag, keys) {
            Ok(q) => q,
            Err(answer) => return answer,
        };
        let mut out = match query.uses_modseq() {
            true => self.enable_condstore(),
            false => Vec::new(),
        };
        let uids = self.bounded_uids(&query);
        let State::Selected(selected) = &self.state else {
            return self.protocol_error(super::respond::bad(tag, "No mailbox selected"));
        };
        let view = &selected.view;
        let seq_of = |uid: u32| view.seq_of(uid).unwrap_or_default();
        let found = crate::search::evaluate(
            &*self.store,
            &self.input,
            selected.id,
            &uids,
            &query,
            needs_envelope(criteria),
            &seq_of,
        )
        .await;
        let rows = match found {
            Ok(Some(rows)) => rows,
            Ok(None) => return busy_with_large_messages(tag),
            Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
        };
        let mut sorted: Vec<Sortable> = rows
            .iter()
            .map(|row| {
                let envelope = row.summary.as_deref().and_then(Summary::envelope_from_json);
                let input = SortInput {
                    seq: seq_of(row.meta.uid),
                    uid: row.meta.uid,
                    arrival_micros: row.meta.internal_date_micros,
                    size: row.meta.size,
                    envelope: envelope.as_ref(),
                };
                Sortable::new(criteria, &input)
            })
            .collect();
        order(criteria, &mut sorted);
        let mut line = "* SORT".to_string();
        for m in &sorted {
            line.push_str(&format!(" {}", if uid { m.uid } else { m.seq }));
        }
        // RFC 7162 §3.1.5: a sort by MODSEQ tells the highest modseq of what it found.
        let highest = rows.iter().map(|r| r.meta.modseq).max();
        if let Some(h) = highest.filter(|_| query.uses_modseq()) {
            line.push_str(&format!(" (MODSEQ {h})"));
        }
        out.extend_from_slice(format!("{line}\r\n").as_bytes());
        if let Err(e) = self.sync(&mut out, uid).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        out.extend(ok(tag, "SORT completed"));
        Outcome::go_on(out)
    }
}
