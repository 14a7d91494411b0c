//! The selected state: SELECT and EXAMINE (with CONDSTORE and QRESYNC), how the session tells the
//! client of changes (EXISTS, FETCH FLAGS, EXPUNGE or VANISHED), and the commands that work on the
//! selected mailbox's messages: STORE, COPY, MOVE, EXPUNGE, SEARCH, CLOSE and UNSELECT. FETCH is in
//! `fetch.rs`.
//!
//! The session's picture of the mailbox ([`View`]) moves only when the session reports a change, so
//! sequence numbers stay what the client was told. Changes are read from the store's change log since
//! the last modseq reported: one read per command, whatever the mailbox's size.

use std::collections::HashMap;

use jmail_proto::imap::extended::{SearchReturn, is_saved_marker};
use jmail_proto::imap::imap_types::command::{CommandBody, SelectParameter};
use jmail_proto::imap::imap_types::core::Charset;
use jmail_proto::imap::imap_types::flag::{StoreResponse, StoreType};
use jmail_proto::imap::imap_types::search::SearchKey;
use jmail_proto::imap::imap_types::sequence::SequenceSet;
use jmail_proto::imap::search::{
    Candidate, KEYS_MAX, Need, Query, Ranges, SearchError, Stars, TEXT_KEYS_MAX,
};
use jmail_proto::imap::view::View;

use super::mailboxes::{mailbox_name, store_flags};
use super::respond::{self, bad, no, ok};
use super::session::{Session, State};
use crate::driver::Outcome;
use crate::store::{
    FlagOp, MESSAGES_PER_CALL_MAX, MailStore, MailboxId, MailboxInfo, MailboxWatch, MessageFlags,
    Since, StoreError, StoreResult, flags,
};

/// The selected mailbox as this session knows it.
pub struct Selected {
    pub(super) id: MailboxId,
    pub(super) name: String,
    pub(super) read_only: bool,
    pub(super) view: View,
    /// Every change up to this modseq has been read from the store.
    pub(super) since: Since,
    /// Messages expunged that the client has not been told of yet (EXPUNGE cannot be sent during FETCH,
    /// STORE or SEARCH).
    gone: Vec<u32>,
    /// Flag changes this session already reported (its own STORE, a FETCH that set `\Seen`): not told
    /// again when the change log brings them back.
    told: HashMap<u32, u64>,
    pub(super) watch: MailboxWatch,
    /// The feed woke the session (IDLE) since the last sync: the change log must be read.
    pub(super) woken: bool,
    /// The UIDs `\Recent` to this session (RFC 3501 §2.3.2): those it claimed from the store when it
    /// selected the mailbox and as new mail came (read-only, those no one had claimed). Empty under
    /// IMAP4rev2, which has no `\Recent`.
    pub(super) recent: Ranges,
    /// The saved search result `$` (SEARCHRES, RFC 5182): UIDs, ascending. Empty at SELECT; a message
    /// expunged leaves it, as it leaves the view.
    pub(super) saved: Vec<u32>,
    /// The keywords the client was told of in FLAGS: one it has not been told of is announced before
    /// the first response that carries it.
    pub(super) keywords: Vec<String>,
    /// The mailbox was deleted (by another session): the session ends (see `Session::on_event`).
    pub(super) deleted: bool,
}

/// The FLAGS and PERMANENTFLAGS responses for a mailbox whose keywords are `keywords`. FLAGS names the
/// keywords in use too, so clients offer them (Dovecot does the same); PERMANENTFLAGS names what
/// STORE may change: nothing in a read-only mailbox (RFC 9051 §7.1).
pub(super) fn flags_lines(keywords: &[String], read_only: bool) -> Vec<u8> {
    let keywords: String = keywords.iter().map(|k| format!(" {k}")).collect();
    let flags = format!("\\Answered \\Flagged \\Deleted \\Seen \\Draft{keywords}");
    let mut out = format!("* FLAGS ({flags})\r\n").into_bytes();
    out.extend_from_slice(
        match read_only {
            true => b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n".to_vec(),
            false => {
                format!("* OK [PERMANENTFLAGS ({flags} \\*)] Flags permitted\r\n").into_bytes()
            }
        }
        .as_slice(),
    );
    out
}

/// Adds to `announced` the keywords of `keywords` it lacks (in any case) and returns the FLAGS and
/// PERMANENTFLAGS responses that tell of them, or nothing when none is new. A keyword in a FETCH that
/// FLAGS never named is a protocol error to strict clients (and to imaptest).
pub(super) fn announce(
    announced: &mut Vec<String>,
    keywords: &[String],
    read_only: bool,
) -> Vec<u8> {
    let mut new = false;
    for k in keywords {
        if !announced.iter().any(|a| a.eq_ignore_ascii_case(k)) {
            announced.push(k.clone());
            new = true;
        }
    }
    match new {
        true => flags_lines(announced, read_only),
        false => Vec::new(),
    }
}

impl Selected {
    /// Remembers changes this session reported itself.
    pub(super) fn told(&mut self, changed: &[MessageFlags]) {
        for m in changed {
            self.told.insert(m.uid, m.modseq);
        }
    }
}

impl Session {
    pub(super) fn selected_mut(&mut self) -> Option<&mut Selected> {
        match &mut self.state {
            State::Selected(s) => Some(s),
            _ => None,
        }
    }

    /// Turns CONDSTORE on, at the first command that enables it (RFC 7162 §3.1): from then on every
    /// untagged FETCH a STORE, a `\Seen`-setting FETCH or another session causes carries UID and MODSEQ.
    /// Enabled with a mailbox selected, the client is told that mailbox's HIGHESTMODSEQ, which its
    /// SELECT did not say: the untagged line returned, to go before the command's own responses.
    pub(super) fn enable_condstore(&mut self) -> Vec<u8> {
        if std::mem::replace(&mut self.condstore, true) {
            return Vec::new();
        }
        match &self.state {
            State::Selected(s) => {
                format!("* OK [HIGHESTMODSEQ {}] Highest\r\n", s.since.modseq.max(1)).into_bytes()
            }
            _ => Vec::new(),
        }
    }

    /// One untagged FETCH of flags (an unsolicited update or STORE's answer).
    pub(super) fn flags_response(&self, seq: u32, m: &MessageFlags, uid: bool) -> Vec<u8> {
        let recent = matches!(&self.state, State::Selected(s) if s.recent.contains(m.uid));
        let mut items = vec![format!(
            "FLAGS {}",
            respond::flag_list(m.flags.system, &m.flags.keywords, recent)
        )];
        if uid || self.condstore {
            items.push(format!("UID {}", m.uid));
        }
        if self.condstore {
            items.push(format!("MODSEQ ({})", m.modseq));
        }
        format!("* {seq} FETCH ({})\r\n", items.join(" ")).into_bytes()
    }

    /// Tells the client what changed in the selected mailbox since it was last told: flag changes
    /// (FETCH), new messages (EXISTS), and, when `expunges` allows, expunged ones (EXPUNGE, or VANISHED
    /// under QRESYNC). Does nothing when no mailbox is selected.
    pub(super) async fn sync(&mut self, out: &mut Vec<u8>, expunges: bool) -> StoreResult<()> {
        let (condstore, qresync, rev2) = (self.condstore, self.qresync, self.rev2);
        let batch = self.config.limits.list_batch_max;
        let store = self.store.clone();
        let State::Selected(selected) = &mut self.state else {
            return Ok(());
        };
        // The feed hears of every commit to this mailbox before its writer is answered (and of other
        // processes' within a quarter second): when it is quiet, the change log has nothing new, and
        // the read is skipped. Held-back expunges are told all the same.
        let news = std::mem::take(&mut selected.woken) | selected.watch.take_changed();
        if !news && (selected.gone.is_empty() || !expunges) {
            return Ok(());
        }
        let mut arrived = Vec::new();
        let mut updates = Vec::new();
        let mut more = news;
        while more {
            let changes = match store.changes_from(selected.id, selected.since, batch).await {
                Ok(changes) => changes,
                Err(e) => {
                    selected.woken = true; // read again next time
                    return Err(e);
                }
            };
            // A mailbox that is no more reads as one with no next UID: another session deleted it.
            if changes.stored_from == 0 {
                selected.deleted = true;
                return Ok(());
            }
            let next = changes.next();
            for m in changes.messages {
                if selected.view.last_uid().is_none_or(|last| m.uid > last) {
                    arrived.push(m.uid);
                } else if selected.told.get(&m.uid) != Some(&m.modseq) {
                    updates.push(m);
                }
            }
            selected.gone.extend(changes.gone);
            if next.modseq >= selected.since.modseq {
                selected.since = next;
            }
            more = changes.more;
        }
        if news {
            // Everything this session told of itself has now come back through the log.
            selected.told.clear();
        }
        for m in updates {
            // A message expunged meanwhile (and not yet reported) has no news worth telling.
            let Some(seq) = selected.view.seq_of(m.uid) else {
                continue;
            };
            if selected.gone.contains(&m.uid) {
                continue;
            }
            out.extend(announce(
                &mut selected.keywords,
                &m.keywords,
                selected.read_only,
            ));
            let mut items = vec![format!(
                "FLAGS {}",
                respond::flag_list(m.flags, &m.keywords, selected.recent.contains(m.uid))
            )];
            if condstore {
                items.push(format!("UID {}", m.uid));
                items.push(format!("MODSEQ ({})", m.modseq));
            }
            out.extend_from_slice(format!("* {seq} FETCH ({})\r\n", items.join(" ")).as_bytes());
        }
        if expunges && !selected.gone.is_empty() {
            let mut gone = std::mem::take(&mut selected.gone);
            gone.sort_unstable();
            gone.dedup();
            gone.retain(|&uid| selected.view.seq_of(uid).is_some());
            if qresync {
                selected.view.expunge(&gone);
                if !gone.is_empty() {
                    out.extend_from_slice(
                        format!("* VANISHED {}\r\n", respond::uid_set(&gone)).as_bytes(),
                    );
                }
            } else {
                for seq in selected.view.expunge(&gone) {
                    out.extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes());
                }
            }
        }
        if !arrived.is_empty() {
            let exists = selected.view.arrive(&arrived);
            out.extend_from_slice(format!("* {exists} EXISTS\r\n").as_bytes());
            if !rev2 {
                // The change log lists them by modseq, not always by UID.
                let first = arrived.iter().copied().min().unwrap_or_default();
                let last = arrived.iter().copied().max().unwrap_or_default();
                let from = match selected.read_only {
                    // EXAMINE must not take `\Recent` from anyone (RFC 3501 §6.3.2).
                    true => first,
                    false => claim_recent(&*store, selected.id, last.saturating_add(1)).await,
                };
                // Only what this report brings: below `first` the session already told what was
                // recent (a mark lower than that, from a claim that failed earlier, adds nothing).
                selected.recent.add(from.max(first), last);
                let recent = selected.view.count_within(&selected.recent);
                out.extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
            }
        }
        Ok(())
    }

    /// SELECT and EXAMINE.
    pub(super) async fn select(
        &mut self,
        tag: &str,
        name: &str,
        read_only: bool,
        parameters: Vec<SelectParameter>,
    ) -> Outcome {
        let mut out = Vec::new();
        if matches!(self.state, State::Selected(_)) {
            // RFC 9051 §6.3.2: leaving the old mailbox is announced before anything of the new one.
            self.state = State::Authenticated;
            out.extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
        }
        let account = self.account.clone().expect("logged in");
        let info = match self.store.mailbox(account.id, name).await {
            Ok(Some(info)) => info,
            Ok(None) => {
                out.extend(no(tag, Some("NONEXISTENT"), "No such mailbox"));
                return Outcome::go_on(out);
            }
            Err(e) => {
                out.extend(self.store_failure(tag, &e));
                return Outcome::go_on(out);
            }
        };
        let mut qresync = None;
        for parameter in parameters {
            match parameter {
                SelectParameter::CondStore => self.condstore = true,
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    if !self.qresync {
                        out.extend(bad(tag, "QRESYNC must be enabled first"));
                        return self.protocol_error(out);
                    }
                    qresync = Some((uid_validity.get(), mod_sequence_value.get(), known_uids));
                }
            }
        }
        // Subscribe before the snapshot: nothing committed after it can be missed.
        let watch = MailboxWatch::new(self.store.feed(account.id), info.id);
        let snapshot = match self.store.snapshot(info.id).await {
            Ok(s) => s,
            Err(e) => {
                out.extend(self.store_failure(tag, &e));
                return Outcome::go_on(out);
            }
        };
        let uids: Vec<u32> = snapshot.messages.iter().map(|(uid, _)| *uid).collect();
        // Whatever is stored next takes a UID above the last one listed.
        let stored_from = uids.last().map_or(0, |last| last.saturating_add(1));
        let first_unseen = snapshot
            .messages
            .iter()
            .position(|(_, f)| f & flags::SEEN == 0)
            .map(|i| i + 1);
        // What no session has claimed yet is recent to this one: SELECT claims it, EXAMINE only looks.
        let mut recent = Ranges::NONE;
        if !self.rev2 && stored_from > info.first_recent_uid {
            let from = match read_only {
                true => info.first_recent_uid,
                false => claim_recent(&*self.store, info.id, stored_from).await,
            };
            recent.add(from, stored_from - 1);
        }
        let selected = Selected {
            id: info.id,
            name: info.name.clone(),
            read_only,
            view: View::new(uids),
            since: Since {
                modseq: snapshot.highest_modseq,
                stored_from,
            },
            gone: Vec::new(),
            told: HashMap::new(),
            watch,
            woken: true,
            recent,
            saved: Vec::new(),
            keywords: snapshot.keywords.clone(),
            deleted: false,
        };
        out.extend(flags_lines(&snapshot.keywords, read_only));
        out.extend_from_slice(format!("* {} EXISTS\r\n", selected.view.exists()).as_bytes());
        if !self.rev2 {
            let recent = selected.view.count_within(&selected.recent);
            out.extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
            if let Some(seq) = first_unseen {
                out.extend_from_slice(
                    format!("* OK [UNSEEN {seq}] First unseen message\r\n").as_bytes(),
                );
            }
        }
        out.extend_from_slice(
            format!(
                "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n\
                 * OK [HIGHESTMODSEQ {}] Highest\r\n",
                info.uid_validity,
                info.uid_next,
                snapshot.highest_modseq.max(1)
            )
            .as_bytes(),
        );
        if self.rev2 {
            out.extend_from_slice(b"* LIST () \"/\" ");
            respond::mailbox_name(&mut out, &info.name, self.dialect());
            out.extend_from_slice(b"\r\n");
        }
        if let Some((validity, since, known)) = qresync
            && validity == info.uid_validity
            && let Err(e) = self
                .resync_since(&mut out, &info, since, known.as_ref(), &selected)
                .await
        {
            out.extend(self.store_failure(tag, &e));
            return Outcome::go_on(out);
        }
        self.state = State::Selected(Box::new(selected));
        let (code, verb) = if read_only {
            ("READ-ONLY", "EXAMINE")
        } else {
            ("READ-WRITE", "SELECT")
        };
        out.extend(respond::status(
            tag,
            "OK",
            Some(code),
            &format!("{verb} completed"),
        ));
        Outcome::go_on(out)
    }

    /// QRESYNC's catch-up in SELECT (RFC 7162 §3.2.5): what vanished since `since` (of the UIDs the
    /// client knows, when it said), then the flags of what changed since.
    async fn resync_since(
        &self,
        out: &mut Vec<u8>,
        info: &MailboxInfo,
        since: u64,
        known: Option<&SequenceSet>,
        selected: &Selected,
    ) -> StoreResult<()> {
        // The client's known UIDs, as ranges (never as a list: UIDNEXT may be in the millions).
        let known_ranges = known.map(|set| Ranges::of(set, info.uid_next.saturating_sub(1)));
        let mut since = Since::modseq(since);
        let mut vanished = Vec::new();
        let mut changed = Vec::new();
        loop {
            let changes = self
                .store
                .changes_from(info.id, since, self.config.limits.list_batch_max)
                .await?;
            since = changes.next();
            vanished.extend(changes.gone);
            changed.extend(changes.messages);
            if !changes.more {
                break;
            }
        }
        vanished.sort_unstable();
        vanished.dedup();
        if let Some(known) = &known_ranges {
            vanished.retain(|&uid| known.contains(uid));
        }
        if !vanished.is_empty() {
            out.extend_from_slice(
                format!("* VANISHED (EARLIER) {}\r\n", respond::uid_set(&vanished)).as_bytes(),
            );
        }
        changed.sort_by_key(|m| m.uid);
        for m in changed {
            let Some(seq) = selected.view.seq_of(m.uid) else {
                continue;
            };
            let flags = respond::flag_list(m.flags, &m.keywords, selected.recent.contains(m.uid));
            out.extend_from_slice(
                format!(
                    "* {seq} FETCH (UID {} FLAGS {flags} MODSEQ ({}))\r\n",
                    m.uid, m.modseq
                )
                .as_bytes(),
            );
        }
        Ok(())
    }

    /// Commands of the selected state.
    pub(super) async fn on_selected_command(
        &mut self,
        tag: &str,
        body: CommandBody<'static>,
    ) -> Outcome {
        if !matches!(self.state, State::Selected(_)) {
            return match body {
                CommandBody::Close
                | CommandBody::Unselect
                | CommandBody::Expunge
                | CommandBody::ExpungeUid { .. }
                | CommandBody::Search { .. }
                | CommandBody::Sort { .. }
                | CommandBody::Thread { .. }
                | CommandBody::Fetch { .. }
                | CommandBody::Store { .. }
                | CommandBody::Copy { .. }
                | CommandBody::Move { .. } => self.protocol_error(bad(tag, "No mailbox selected")),
                _ => self.protocol_error(bad(tag, "Command not supported")),
            };
        }
        match body {
            CommandBody::Close => self.close(tag, true).await,
            CommandBody::Unselect => self.close(tag, false).await,
            CommandBody::Expunge => self.expunge(tag, None).await,
            CommandBody::ExpungeUid { sequence_set } => {
                self.expunge(tag, Some(&sequence_set)).await
            }
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => {
                self.search_command(tag, charset, criteria.as_ref(), uid, None)
                    .await
            }
            CommandBody::Sort {
                sort_criteria,
                charset,
                search_criteria,
                uid,
            } => {
                self.sort(
                    tag,
                    sort_criteria.as_ref(),
                    &charset,
                    search_criteria.as_ref(),
                    uid,
                    None,
                )
                .await
            }
            CommandBody::Thread {
                algorithm,
                charset,
                search_criteria,
                uid,
            } => {
                self.thread(tag, &algorithm, &charset, search_criteria.as_ref(), uid)
                    .await
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                self.fetch(tag, &sequence_set, macro_or_item_names, uid, modifiers)
                    .await
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                let unchanged_since = modifiers
                    .iter()
                    .map(|m| match m {
                        jmail_proto::imap::imap_types::command::StoreModifier::UnchangedSince(
                            n,
                        ) => *n,
                    })
                    .next();
                self.store_flags(
                    tag,
                    &sequence_set,
                    kind,
                    response,
                    &flags,
                    uid,
                    unchanged_since,
                )
                .await
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => match mailbox_name(&mailbox, self.utf8()) {
                Some(to) => self.copy(tag, &sequence_set, &to, uid, false).await,
                None => self.protocol_error(bad(tag, "Bad mailbox name")),
            },
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => match mailbox_name(&mailbox, self.utf8()) {
                Some(to) => self.copy(tag, &sequence_set, &to, uid, true).await,
                None => self.protocol_error(bad(tag, "Bad mailbox name")),
            },
            _ => self.protocol_error(bad(tag, "Command not supported")),
        }
    }

    /// The UIDs a command's set names, or its BAD reply.
    pub(super) fn chosen(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        uid: bool,
    ) -> Result<Vec<u32>, Outcome> {
        let using_saved = self.using_saved;
        let selected = self.selected_mut().expect("selected");
        if using_saved && is_saved_marker(set) {
            let view = &selected.view;
            return Ok(selected
                .saved
                .iter()
                .copied()
                .filter(|&u| view.seq_of(u).is_some())
                .collect());
        }
        match selected.view.select(set, uid) {
            Ok(uids) => Ok(uids),
            Err(_) => Err(self.protocol_error(bad(tag, "Invalid sequence number"))),
        }
    }

    /// The tagged OK of a command that expunged: under QRESYNC it carries the mailbox's HIGHESTMODSEQ
    /// as the session now knows it (RFC 7162 §3.2.10; as Dovecot), so the client can store a modseq
    /// past the expunges it was told of instead of hearing of them again at its next resync.
    fn ok_with_modseq(&mut self, tag: &str, text: &str) -> Vec<u8> {
        let modseq = self.selected_mut().map(|s| s.since.modseq);
        match modseq.filter(|_| self.qresync) {
            Some(m) => respond::status(tag, "OK", Some(&format!("HIGHESTMODSEQ {m}")), text),
            None => ok(tag, text),
        }
    }

    /// CLOSE (expunging what is flagged `\Deleted`, silently, unless read-only) and UNSELECT.
    async fn close(&mut self, tag: &str, expunge: bool) -> Outcome {
        let State::Selected(selected) = std::mem::replace(&mut self.state, State::Authenticated)
        else {
            unreachable!("checked by the caller");
        };
        if expunge
            && !selected.read_only
            && let Err(e) = self.store.expunge(selected.id, None, true).await
        {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        let verb = if expunge { "CLOSE" } else { "UNSELECT" };
        Outcome::go_on(ok(tag, &format!("{verb} completed")))
    }

    /// EXPUNGE and UID EXPUNGE: what is flagged `\Deleted` (of the set) goes; the client hears of each.
    async fn expunge(&mut self, tag: &str, set: Option<&SequenceSet>) -> Outcome {
        let uids = match set {
            Some(set) => match self.chosen(tag, set, true) {
                Ok(uids) => Some(uids),
                Err(reply) => return reply,
            },
            None => None,
        };
        let selected = self.selected_mut().expect("selected");
        if selected.read_only {
            return Outcome::go_on(no(tag, Some("READ-ONLY"), "Mailbox is read-only"));
        }
        let id = selected.id;
        if let Err(e) = self.store.expunge(id, uids.as_deref(), true).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        let mut out = Vec::new();
        if let Err(e) = self.sync(&mut out, true).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        out.extend(self.ok_with_modseq(tag, "EXPUNGE completed"));
        Outcome::go_on(out)
    }

    /// STORE and UID STORE, with CONDSTORE's UNCHANGEDSINCE.
    #[allow(clippy::too_many_arguments)]
    async fn store_flags(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flag_list: &[jmail_proto::imap::imap_types::flag::Flag<'_>],
        uid: bool,
        unchanged_since: Option<u64>,
    ) -> Outcome {
        let uids = match self.chosen(tag, set, uid) {
            Ok(uids) => uids,
            Err(reply) => return reply,
        };
        let new_flags = match store_flags(flag_list) {
            Ok(f) => f,
            Err(text) => return self.protocol_error(bad(tag, text)),
        };
        let enabled = match unchanged_since {
            Some(_) => self.enable_condstore(),
            None => Vec::new(),
        };
        let selected = self.selected_mut().expect("selected");
        if selected.read_only {
            return Outcome::go_on(no(tag, Some("READ-ONLY"), "Mailbox is read-only"));
        }
        let id = selected.id;
        let op = match kind {
            StoreType::Add => FlagOp::Add,
            StoreType::Remove => FlagOp::Remove,
            StoreType::Replace => FlagOp::Replace,
        };
        let mut done = Vec::new();
        for chunk in uids.chunks(MESSAGES_PER_CALL_MAX) {
            match self
                .store
                .update_flags(id, chunk, op, new_flags.clone(), unchanged_since)
                .await
            {
                Ok(update) => done.push(update),
                Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
            }
        }
        let mut out = enabled;
        let selected = self.selected_mut().expect("selected");
        out.extend(announce(
            &mut selected.keywords,
            &new_flags.keywords,
            selected.read_only,
        ));
        let mut refused = Vec::new();
        let silent = response == StoreResponse::Silent;
        for update in &done {
            self.selected_mut().expect("selected").told(&update.changed);
            refused.extend_from_slice(&update.refused);
            let mut shown: Vec<&MessageFlags> = update.changed.iter().collect();
            if !silent {
                shown.extend(update.unchanged.iter());
                shown.sort_by_key(|m| m.uid);
            } else if !self.condstore {
                continue;
            }
            for m in shown {
                let seq = self
                    .selected_mut()
                    .and_then(|s| s.view.seq_of(m.uid))
                    .unwrap_or_default();
                if seq == 0 {
                    continue;
                }
                if silent {
                    // RFC 7162 §3.1.3: a silent STORE still reports the new MODSEQ.
                    let uid_item = if uid || self.condstore {
                        format!("UID {} ", m.uid)
                    } else {
                        String::new()
                    };
                    out.extend_from_slice(
                        format!("* {seq} FETCH ({uid_item}MODSEQ ({}))\r\n", m.modseq).as_bytes(),
                    );
                } else {
                    out.extend(self.flags_response(seq, m, uid));
                }
            }
        }
        if let Err(e) = self.sync(&mut out, uid).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        if refused.is_empty() {
            out.extend(ok(tag, "STORE completed"));
        } else {
            refused.sort_unstable();
            let set = if uid {
                respond::uid_set(&refused)
            } else {
                let selected = self.selected_mut().expect("selected");
                let seqs: Vec<u32> = refused
                    .iter()
                    .filter_map(|&u| selected.view.seq_of(u))
                    .collect();
                respond::uid_set(&seqs)
            };
            out.extend(respond::status(
                tag,
                "OK",
                Some(&format!("MODIFIED {set}")),
                "Conditional STORE failed for some messages",
            ));
        }
        Outcome::go_on(out)
    }

    /// COPY and MOVE (and their UID forms), with COPYUID (UIDPLUS).
    async fn copy(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        to: &str,
        uid: bool,
        remove_source: bool,
    ) -> Outcome {
        let uids = match self.chosen(tag, set, uid) {
            Ok(uids) => uids,
            Err(reply) => return reply,
        };
        let user = self.account.as_ref().expect("logged in").id;
        let target = match self.store.mailbox(user, to).await {
            Ok(Some(info)) => info,
            Ok(None) => return Outcome::go_on(no(tag, Some("TRYCREATE"), "No such mailbox")),
            Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
        };
        let selected = self.selected_mut().expect("selected");
        if remove_source && selected.read_only {
            return Outcome::go_on(no(tag, Some("READ-ONLY"), "Mailbox is read-only"));
        }
        let from = selected.id;
        let verb = if remove_source { "MOVE" } else { "COPY" };
        let map = match self
            .store
            .copy(user, from, &uids, target.id, remove_source)
            .await
        {
            Ok(map) => map,
            Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
        };
        let code = (!map.uids.is_empty()).then(|| {
            format!(
                "COPYUID {} {} {}",
                map.uid_validity,
                // Runs as ranges, each list in the same order, so the two expand pair by pair
                // (RFC 4315); 100,000 messages copied make a short code, not 1.3 MB.
                respond::uid_set(&map.uids.iter().map(|p| p.0).collect::<Vec<_>>()),
                respond::uid_set(&map.uids.iter().map(|p| p.1).collect::<Vec<_>>()),
            )
        });
        let mut out = Vec::new();
        if remove_source {
            // RFC 6851: COPYUID comes untagged, before the expunges.
            if let Some(code) = &code {
                out.extend(respond::status("*", "OK", Some(code), "Moved"));
            }
            if let Err(e) = self.sync(&mut out, true).await {
                return Outcome::go_on(self.store_failure(tag, &e));
            }
            out.extend(self.ok_with_modseq(tag, "MOVE completed"));
        } else {
            if let Err(e) = self.sync(&mut out, uid).await {
                return Outcome::go_on(self.store_failure(tag, &e));
            }
            out.extend(respond::status(
                tag,
                "OK",
                code.as_deref(),
                &format!("{verb} completed"),
            ));
        }
        Outcome::go_on(out)
    }

    /// SEARCH and UID SEARCH, with ESEARCH's RETURN options when given.
    pub(super) async fn search_command(
        &mut self,
        tag: &str,
        charset: Option<Charset<'_>>,
        keys: &[SearchKey<'_>],
        uid: bool,
        returns: Option<Vec<SearchReturn>>,
    ) -> Outcome {
        if let Some(refused) = refuse_charset(tag, charset.as_ref()) {
            if returns
                .as_ref()
                .is_some_and(|r| r.contains(&SearchReturn::Save))
            {
                // A SEARCH that saves and fails leaves `$` empty (RFC 5182 §2.1).
                self.selected_mut().expect("selected").saved.clear();
            }
            return refused;
        }
        self.search(tag, keys, uid, returns).await
    }

    /// A search's keys compiled against the session's view, or the command's answer when they
    /// cannot be (text that is not UTF-8, too many text keys).
    pub(super) fn compile_search(
        &mut self,
        tag: &str,
        keys: &[SearchKey<'_>],
    ) -> Result<Query, Outcome> {
        let using_saved = self.using_saved;
        let selected = self.selected_mut().expect("selected");
        let saved = using_saved.then(|| Ranges::of_ascending(&selected.saved));
        let stars = Stars {
            last_seq: selected.view.exists(),
            last_uid: selected.view.last_uid().unwrap_or(0),
            recent: &selected.recent,
            saved: saved.as_ref(),
        };
        match Query::compile(keys, stars) {
            Ok(q) => Ok(q),
            Err(SearchError::NotUtf8) => Err(Outcome::go_on(no(
                tag,
                Some("BADCHARSET (UTF-8 US-ASCII)"),
                "Search text is not UTF-8",
            ))),
            Err(SearchError::TooManyTextKeys) => Err(Outcome::go_on(no(
                tag,
                Some("LIMIT"),
                &format!("At most {TEXT_KEYS_MAX} text keys in one search"),
            ))),
            Err(SearchError::TooManyKeys) => Err(Outcome::go_on(no(
                tag,
                Some("LIMIT"),
                &format!("At most {KEYS_MAX} keys in one search"),
            ))),
        }
    }

    /// The UIDs a query can match: those its own top-level sets name (all, without any).
    pub(super) fn bounded_uids(&mut self, query: &Query) -> Vec<u32> {
        let selected = self.selected_mut().expect("selected");
        let (seq_bound, uid_bound) = query.bounds();
        (1..=selected.view.exists())
            .filter(|&seq| seq_bound.is_none_or(|r| r.contains(seq)))
            .filter_map(|seq| selected.view.uid_of(seq))
            .filter(|&uid| uid_bound.is_none_or(|r| r.contains(uid)))
            .collect()
    }

    /// SEARCH and UID SEARCH: rev1's `* SEARCH`, or ESEARCH for rev2 and whenever RETURN was given.
    async fn search(
        &mut self,
        tag: &str,
        keys: &[SearchKey<'_>],
        uid: bool,
        returns: Option<Vec<SearchReturn>>,
    ) -> Outcome {
        let id = self.selected_mut().expect("selected").id;
        let compiled = self.compile_search(tag, keys);
        let save = returns
            .as_ref()
            .is_some_and(|r| r.contains(&SearchReturn::Save));
        if save {
            // A SEARCH that saves empties `$` first: if it fails, `$` is empty (RFC 5182 §2.1). Its
            // own keys read the `$` before it (compiled above).
            self.selected_mut().expect("selected").saved.clear();
        }
        let query = match compiled {
            Ok(q) => q,
            Err(answer) => return answer,
        };
        let enabled = match query.uses_modseq() {
            true => self.enable_condstore(),
            false => Vec::new(),
        };
        // Only the messages the query's own top-level sets name are looked at.
        let uids = self.bounded_uids(&query);
        let found = match self.evaluate(id, &uids, &query).await {
            Ok(Some(found)) => found,
            Ok(None) => return busy_with_large_messages(tag),
            Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
        };
        let selected = self.selected_mut().expect("selected");
        if let Some(returns) = returns.as_ref().filter(|_| save) {
            selected.saved = saved_of(&found, returns);
        }
        // Each hit as the client numbers it, with its modseq.
        let hits: Vec<(u32, u64)> = found
            .iter()
            .map(|&(u, modseq)| match uid {
                true => (u, modseq),
                false => (selected.view.seq_of(u).unwrap_or_default(), modseq),
            })
            .collect();
        let with_modseq = query.uses_modseq();
        let mut out = enabled;
        match returns {
            // SAVE alone answers nothing but the tagged OK (RFC 5182 §2.4).
            Some(returns) if returns.iter().all(|r| *r == SearchReturn::Save) && save => {}
            Some(returns) => out.extend(esearch(tag, uid, hits, &returns, with_modseq)),
            None if self.rev2 => out.extend(esearch(tag, uid, hits, &[], with_modseq)),
            None => {
                let mut line = "* SEARCH".to_string();
                for (n, _) in &hits {
                    line.push_str(&format!(" {n}"));
                }
                let highest = hits.iter().map(|&(_, m)| m).max();
                if let Some(h) = highest.filter(|_| with_modseq) {
                    line.push_str(&format!(" (MODSEQ {h})"));
                }
                out.extend_from_slice(format!("{line}\r\n").as_bytes());
            }
        }
        if let Err(e) = self.sync(&mut out, uid).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        out.extend(ok(tag, "SEARCH completed"));
        Outcome::go_on(out)
    }

    /// The (UID, modseq) of the messages among `uids` that match, reading each only as deeply as the
    /// query needs; `None` when the server's budget for large messages in memory refused one.
    async fn evaluate(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        query: &Query,
    ) -> Result<Option<Vec<(u32, u64)>>, StoreError> {
        let need = query.need();
        let selected = match &self.state {
            State::Selected(s) => s,
            _ => return Ok(Some(Vec::new())),
        };
        let mut found = Vec::new();
        if need == Need::Numbers {
            // Sets of numbers alone (`UID 1000:*`, RECENT): answered from the view, nothing read, but
            // for messages known expunged and not yet reported (as a read would leave them out).
            let view = &selected.view;
            let mut gone = selected.gone.clone();
            gone.sort_unstable();
            for (n, &uid) in uids.iter().enumerate() {
                yield_every_so_often(n).await;
                if gone.binary_search(&uid).is_ok() {
                    continue;
                }
                let seq = view.seq_of(uid).unwrap_or_default();
                if query.matches(&Candidate::new(seq, uid, 0, &[], 0, 0, 0, None, None)) {
                    found.push((uid, 0));
                }
            }
            return Ok(Some(found));
        }
        if need <= Need::Flags && uids.len() > MESSAGES_PER_CALL_MAX {
            // Flags and numbers of many messages: one read of the mailbox's (UID, flags). (A few are
            // cheaper to read by themselves, below.)
            let snapshot = self.store.snapshot(mailbox).await?;
            let no_keywords: Vec<String> = Vec::new();
            for (n, (uid, flags)) in snapshot.messages.into_iter().enumerate() {
                yield_every_so_often(n).await;
                if uids.binary_search(&uid).is_err() {
                    continue;
                }
                let seq = selected.view.seq_of(uid).unwrap_or_default();
                let candidate = Candidate::new(seq, uid, flags, &no_keywords, 0, 0, 0, None, None);
                if query.matches(&candidate) {
                    found.push((uid, 0));
                }
            }
            return Ok(Some(found));
        }
        let view = &selected.view;
        let seq_of = |uid: u32| view.seq_of(uid).unwrap_or_default();
        crate::search::evaluate(
            &*self.store,
            &self.input,
            mailbox,
            uids,
            query,
            false,
            &seq_of,
            |row, _| (row.meta.uid, row.meta.modseq),
        )
        .await
    }
}

/// What SAVE keeps of a search's matches (RFC 5182 §2.4): with MIN or MAX and neither ALL nor COUNT,
/// only those; otherwise all. UIDs, ascending.
fn saved_of(found: &[(u32, u64)], returns: &[SearchReturn]) -> Vec<u32> {
    let mut uids: Vec<u32> = found.iter().map(|&(u, _)| u).collect();
    uids.sort_unstable();
    let has = |r: SearchReturn| returns.contains(&r);
    if has(SearchReturn::All) || has(SearchReturn::Count) {
        return uids;
    }
    match (has(SearchReturn::Min), has(SearchReturn::Max)) {
        (false, false) => uids,
        (min, max) => {
            let mut kept: Vec<u32> = Vec::new();
            kept.extend(uids.first().filter(|_| min));
            kept.extend(uids.last().filter(|_| max));
            kept.dedup();
            kept
        }
    }
}

/// An ESEARCH response (RFC 4731, RFC 9051 §7.3.4): the RETURN options asked for (none: ALL), and with
/// `with_modseq` the MODSEQ of what it reports (RFC 7162 §3.1.5): the highest of all hits when ALL or
/// COUNT is asked for, else the highest of the MIN and MAX messages.
fn esearch(
    tag: &str,
    uid: bool,
    mut hits: Vec<(u32, u64)>,
    returns: &[SearchReturn],
    with_modseq: bool,
) -> Vec<u8> {
    hits.sort_unstable();
    let returns = if returns.is_empty() {
        &[SearchReturn::All][..]
    } else {
        returns
    };
    let mut line = format!("* ESEARCH (TAG \"{tag}\")");
    if uid {
        line.push_str(" UID");
    }
    let mut reported: Option<u64> = None;
    let mut report = |modseq: u64| reported = reported.max(Some(modseq));
    for option in returns {
        match option {
            SearchReturn::Min => {
                if let Some(&(n, modseq)) = hits.first() {
                    line.push_str(&format!(" MIN {n}"));
                    report(modseq);
                }
            }
            SearchReturn::Max => {
                if let Some(&(n, modseq)) = hits.last() {
                    line.push_str(&format!(" MAX {n}"));
                    report(modseq);
                }
            }
            SearchReturn::Count => {
                line.push_str(&format!(" COUNT {}", hits.len()));
                hits.iter().for_each(|&(_, m)| report(m));
            }
            SearchReturn::Save => {}
            SearchReturn::All => {
                if !hits.is_empty() {
                    let numbers: Vec<u32> = hits.iter().map(|&(n, _)| n).collect();
                    line.push_str(&format!(" ALL {}", respond::uid_set(&numbers)));
                    hits.iter().for_each(|&(_, m)| report(m));
                }
            }
        }
    }
    if let Some(h) = reported.filter(|_| with_modseq) {
        line.push_str(&format!(" MODSEQ {h}"));
    }
    format!("{line}\r\n").into_bytes()
}

/// Claims the messages below `below` as `\Recent` ([`MailStore::claim_recent`]) and returns the first
/// UID claimed. A claim that fails claims nothing (returns `below`): they stay `\Recent` for the next
/// session, and the command goes on.
///
/// The mark is read first: when many sessions watch a mailbox, one of them claims each new message and
/// the others, told of it a moment later, find it taken and write nothing. (The mark only rises, so a
/// read that finds it at `below` or above is the claim's own answer, however old the read.)
async fn claim_recent(store: &dyn MailStore, mailbox: MailboxId, below: u32) -> u32 {
    if let Ok(mark) = store.first_recent_uid(mailbox).await
        && mark >= below
    {
        return mark;
    }
    match store.claim_recent(mailbox, below).await {
        Ok(from) => from,
        Err(e) => {
            tracing::warn!(mailbox, "claiming \\Recent failed: {e}");
            below
        }
    }
}

/// `NO [BADCHARSET]` for a charset other than UTF-8 and US-ASCII (the only ones searches take).
pub(super) fn refuse_charset(tag: &str, charset: Option<&Charset<'_>>) -> Option<Outcome> {
    let charset = charset?;
    let known = ["UTF-8", "US-ASCII"]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(charset.as_ref()));
    (!known).then(|| {
        Outcome::go_on(no(
            tag,
            Some("BADCHARSET (UTF-8 US-ASCII)"),
            "Unsupported charset",
        ))
    })
}

/// `NO [UNAVAILABLE]` for a search the budget for large messages in memory cut short.
pub(super) fn busy_with_large_messages(tag: &str) -> Outcome {
    Outcome::go_on(no(
        tag,
        Some("UNAVAILABLE"),
        "Server is busy with large messages; try again later",
    ))
}

/// Lets the runtime's other tasks run every so many messages of a search answered in memory: a query
/// of many keys over a large mailbox is long work, and other connections share the thread.
async fn yield_every_so_often(n: usize) {
    const MESSAGES_BETWEEN_YIELDS: usize = 2048;
    if n > 0 && n.is_multiple_of(MESSAGES_BETWEEN_YIELDS) {
        tokio::task::yield_now().await;
    }
}
