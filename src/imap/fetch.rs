//! FETCH and UID FETCH (RFC 9051 §6.4.5), with CONDSTORE's CHANGEDSINCE and QRESYNC's VANISHED.
//!
//! The response is a [`Pieces`] stream: messages are read from the store a batch at a time and each
//! message's response is made only when the connection has written the one before, so `FETCH 1:*
//! (BODY.PEEK[])` of a 100,000-message mailbox holds one batch of metadata and one 64 KiB piece of a
//! body, however large the messages. A message at most [`STREAM_BYTES_MIN`] is read whole; a larger one
//! has its sections located from the stored summary and streamed from its stored bytes.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use jmail_proto::imap::imap_types::command::FetchModifier;
use jmail_proto::imap::imap_types::core::AString;
use jmail_proto::imap::imap_types::fetch::{Macro, MacroOrMessageDataItemNames};
use jmail_proto::imap::imap_types::fetch::{MessageDataItemName, Part, Section as WireSection};
use jmail_proto::imap::imap_types::sequence::SequenceSet;
use jmail_proto::imap::search::Ranges;
use jmail_proto::imap::section::{self, Located, Section, Text};
use jmail_proto::imap::structure::{self, Dialect};
use jmail_proto::summary::Summary;

use super::respond::{self, bad, no, ok};
use super::session::Session;
use crate::driver::Outcome;
use crate::reply_stream::{Pieces, STREAM_BYTES_MIN, STREAM_CHUNK_BYTES};
use crate::store::{
    BodyRef, FlagOp, Flags, Listed, MailStore, MailboxId, Since, StoreError, Wanted, flags,
};

/// Messages whose metadata one step of a FETCH reads at once.
const FETCH_BATCH_MESSAGES: usize = 100;
/// With bytes wanted, messages one step reads, and the largest read inline with the listing (larger ones
/// are read alone, or streamed): one step holds at most their product.
const FETCH_BATCH_WITH_BYTES: usize = 32;
const FETCH_RAW_INLINE_BYTES_MAX: u64 = 64 * 1024;

/// One item of a FETCH, as the response names it.
#[derive(Debug, Clone)]
enum Item {
    Uid,
    Flags,
    InternalDate,
    Size,
    Envelope,
    /// BODY (`false`) or BODYSTRUCTURE (`true`).
    Structure(bool),
    ModSeq,
    /// BINARY[part]<partial> (RFC 3516): the part's body, its transfer encoding undone; with
    /// `size_only`, BINARY.SIZE.
    Binary {
        label: String,
        part: Vec<usize>,
        partial: Option<(u32, u32)>,
        size_only: bool,
    },
    /// `label` is what precedes the value (`BODY[HEADER]<0>`, `RFC822`).
    Bytes {
        label: String,
        section: Section,
        partial: Option<(u32, u32)>,
    },
}

/// What a FETCH asks, worked out once.
struct Plan {
    items: Vec<Item>,
    /// Reading a body section sets `\Seen` (BODY[...] without PEEK, RFC822, RFC822.TEXT).
    sets_seen: bool,
    needs_summary: bool,
    needs_bytes: bool,
}

fn astring_text(s: &AString<'_>) -> String {
    String::from_utf8_lossy(s.as_ref()).into_owned()
}

/// A header field name as the response repeats it: an atom when it is one, quoted otherwise.
fn field_label(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()\"\\{%*]".contains(&b))
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// How the response names a section item (`BODY[1.2]<0>`: the origin only), and its partial range.
fn labelled(
    what: &str,
    inside: &str,
    partial: Option<(u32, std::num::NonZeroU32)>,
) -> (String, Option<(u32, u32)>) {
    let partial = partial.map(|(origin, count)| (origin, count.get()));
    let label = match partial {
        Some((origin, _)) => format!("{what}[{inside}]<{origin}>"),
        None => format!("{what}[{inside}]"),
    };
    (label, partial)
}

/// Part numbers as a section names them: `1.2`.
fn dotted(part: &[usize]) -> String {
    part.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

fn part_numbers(part: &Option<Part>) -> Vec<usize> {
    part.as_ref()
        .map(|p| p.0.as_ref().iter().map(|n| n.get() as usize).collect())
        .unwrap_or_default()
}

/// The section as the stored-message code reads it, and its label inside `[...]`.
fn section_of(wire: &Option<WireSection<'_>>) -> (Section, String) {
    let with_prefix = |part: &[usize], what: &str| {
        if part.is_empty() {
            what.to_string()
        } else {
            format!("{}.{what}", dotted(part))
        }
    };
    let fields =
        |names: &[AString<'_>]| -> Vec<String> { names.iter().map(astring_text).collect() };
    match wire {
        None => (
            Section {
                part: vec![],
                text: None,
            },
            String::new(),
        ),
        Some(WireSection::Part(p)) => {
            let part = part_numbers(&Some(p.clone()));
            let label = dotted(&part);
            (Section { part, text: None }, label)
        }
        Some(WireSection::Header(p)) => {
            let part = part_numbers(p);
            let label = with_prefix(&part, "HEADER");
            (
                Section {
                    part,
                    text: Some(Text::Header),
                },
                label,
            )
        }
        Some(WireSection::Text(p)) => {
            let part = part_numbers(p);
            let label = with_prefix(&part, "TEXT");
            (
                Section {
                    part,
                    text: Some(Text::Text),
                },
                label,
            )
        }
        Some(WireSection::Mime(p)) => {
            let part = part_numbers(&Some(p.clone()));
            let label = with_prefix(&part, "MIME");
            (
                Section {
                    part,
                    text: Some(Text::Mime),
                },
                label,
            )
        }
        Some(WireSection::HeaderFields(p, names))
        | Some(WireSection::HeaderFieldsNot(p, names)) => {
            let not = matches!(wire, Some(WireSection::HeaderFieldsNot(..)));
            let part = part_numbers(p);
            let names = fields(names.as_ref());
            let what = if not {
                "HEADER.FIELDS.NOT"
            } else {
                "HEADER.FIELDS"
            };
            let list: Vec<String> = names.iter().map(|n| field_label(n)).collect();
            let label = format!("{} ({})", with_prefix(&part, what), list.join(" "));
            (
                Section {
                    part,
                    text: Some(Text::HeaderFields { names, not }),
                },
                label,
            )
        }
    }
}

fn plan(names: MacroOrMessageDataItemNames<'_>, uid: bool) -> Result<Plan, &'static str> {
    let names: Vec<MessageDataItemName<'_>> = match names {
        MacroOrMessageDataItemNames::Macro(m) => m.expand().into_iter().collect(),
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => names,
    };
    // The grammar asks for at least one item (RFC 9051 §9, `fetch-att`).
    if names.is_empty() {
        return Err("Empty FETCH item list");
    }
    let mut plan = Plan {
        items: Vec::new(),
        sets_seen: false,
        needs_summary: false,
        needs_bytes: false,
    };
    let mut asked = HashSet::new();
    if uid {
        asked.insert(format!("{:?}", Item::Uid));
        plan.items.push(Item::Uid);
    }
    for name in names {
        let whole = |text: Option<Text>| Section { part: vec![], text };
        let item = match name {
            MessageDataItemName::Uid if uid => continue,
            MessageDataItemName::Uid => Item::Uid,
            MessageDataItemName::Flags => Item::Flags,
            MessageDataItemName::InternalDate => Item::InternalDate,
            MessageDataItemName::Rfc822Size => Item::Size,
            MessageDataItemName::Envelope => Item::Envelope,
            MessageDataItemName::Body => Item::Structure(false),
            MessageDataItemName::BodyStructure => Item::Structure(true),
            MessageDataItemName::ModSeq => Item::ModSeq,
            MessageDataItemName::Rfc822 => {
                plan.sets_seen = true;
                Item::Bytes {
                    label: "RFC822".into(),
                    section: whole(None),
                    partial: None,
                }
            }
            MessageDataItemName::Rfc822Header => Item::Bytes {
                label: "RFC822.HEADER".into(),
                section: whole(Some(Text::Header)),
                partial: None,
            },
            MessageDataItemName::Rfc822Text => {
                plan.sets_seen = true;
                Item::Bytes {
                    label: "RFC822.TEXT".into(),
                    section: whole(Some(Text::Text)),
                    partial: None,
                }
            }
            MessageDataItemName::BodyExt {
                section,
                partial,
                peek,
            } => {
                plan.sets_seen |= !peek;
                let (section, inside) = section_of(&section);
                let (label, partial) = labelled("BODY", &inside, partial);
                Item::Bytes {
                    label,
                    section,
                    partial,
                }
            }
            MessageDataItemName::Binary {
                section,
                partial,
                peek,
            } => {
                plan.sets_seen |= !peek;
                let part: Vec<usize> = section.iter().map(|n| n.get() as usize).collect();
                let (label, partial) = labelled("BINARY", &dotted(&part), partial);
                Item::Binary {
                    label,
                    part,
                    partial,
                    size_only: false,
                }
            }
            MessageDataItemName::BinarySize { section } => {
                let part: Vec<usize> = section.iter().map(|n| n.get() as usize).collect();
                Item::Binary {
                    label: format!("BINARY.SIZE[{}]", dotted(&part)),
                    part,
                    partial: None,
                    size_only: true,
                }
            }
        };
        match &item {
            Item::Envelope | Item::Structure(_) => plan.needs_summary = true,
            Item::Binary { .. } => {
                plan.needs_bytes = true;
                plan.needs_summary = true;
            }
            Item::Bytes { section, .. } => {
                plan.needs_bytes = true;
                if !section.part.is_empty() || section.text.is_some() {
                    plan.needs_summary = true;
                }
            }
            _ => {}
        }
        // Each item once (`FETCH 1 (FLAGS FLAGS)` answers FLAGS once, as Dovecot does).
        if asked.insert(format!("{item:?}")) {
            plan.items.push(item);
        }
    }
    Ok(plan)
}

/// Expands FAST, ALL and FULL (RFC 9051 §6.4.5).
trait Expand {
    fn expand(self) -> Vec<MessageDataItemName<'static>>;
}

impl Expand for Macro {
    fn expand(self) -> Vec<MessageDataItemName<'static>> {
        use MessageDataItemName as N;
        let mut names = vec![N::Flags, N::InternalDate, N::Rfc822Size];
        if matches!(self, Macro::All | Macro::Full) {
            names.push(N::Envelope);
        }
        if matches!(self, Macro::Full) {
            names.push(N::Body);
        }
        names
    }
}

impl Session {
    /// FETCH and UID FETCH.
    pub(super) async fn fetch(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        names: MacroOrMessageDataItemNames<'static>,
        uid: bool,
        modifiers: Vec<FetchModifier>,
    ) -> Outcome {
        let mut plan = match plan(names, uid) {
            Ok(plan) => plan,
            Err(text) => return self.protocol_error(bad(tag, text)),
        };
        let mut changed_since = None;
        let mut vanished = false;
        for modifier in modifiers {
            match modifier {
                FetchModifier::ChangedSince(n) => changed_since = Some(n.get()),
                FetchModifier::Vanished => vanished = true,
            }
        }
        if vanished && (!uid || !self.qresync || changed_since.is_none()) {
            return self.protocol_error(bad(
                tag,
                "VANISHED needs UID FETCH, QRESYNC enabled and CHANGEDSINCE",
            ));
        }
        // RFC 7162 §3.1: CHANGEDSINCE, and asking for MODSEQ, enable CONDSTORE.
        let enabled =
            if changed_since.is_some() || plan.items.iter().any(|i| matches!(i, Item::ModSeq)) {
                self.enable_condstore()
            } else {
                Vec::new()
            };
        if (changed_since.is_some()
            || (self.condstore && plan.items.iter().any(|i| matches!(i, Item::Flags))))
            && !plan.items.iter().any(|i| matches!(i, Item::ModSeq))
        {
            plan.items.push(Item::ModSeq);
        }
        // News first (no expunges during FETCH, RFC 9051 §7.5.1; UID FETCH may have them), so the
        // sequence numbers below are the ones the client now knows.
        let mut head = enabled;
        if let Err(e) = self.sync(&mut head, uid).await {
            return Outcome::go_on(self.store_failure(tag, &e));
        }
        let uids = match self.chosen(tag, set, uid) {
            Ok(uids) => uids,
            Err(reply) => return reply,
        };
        let selected = self.selected_mut().expect("selected");
        let (mailbox, read_only) = (selected.id, selected.read_only);
        let recent = selected.recent.clone();
        // The stream tells of new keywords from its own copy; the session may tell of them again.
        let announced = selected.keywords.clone();
        let last_uid = selected.view.last_uid().unwrap_or(0);
        let seqs: Vec<u32> = uids
            .iter()
            .map(|&u| selected.view.seq_of(u).unwrap_or_default())
            .collect();
        if let (true, Some(since)) = (vanished, changed_since) {
            match self
                .vanished_since(mailbox, since, &Ranges::of(set, last_uid))
                .await
            {
                Ok(gone) if !gone.is_empty() => head.extend_from_slice(
                    format!("* VANISHED (EARLIER) {}\r\n", respond::uid_set(&gone)).as_bytes(),
                ),
                Ok(_) => {}
                Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
            }
        }
        let mut seen_now = HashSet::new();
        if plan.sets_seen && !read_only {
            for chunk in uids.chunks(crate::store::MESSAGES_PER_CALL_MAX) {
                let seen = Flags::system(flags::SEEN);
                match self
                    .store
                    .update_flags(mailbox, chunk, FlagOp::Add, seen, None)
                    .await
                {
                    Ok(update) => {
                        seen_now.extend(update.changed.iter().map(|m| m.uid));
                        self.selected_mut().expect("selected").told(&update.changed);
                    }
                    Err(e) => return Outcome::go_on(self.store_failure(tag, &e)),
                }
            }
        }
        let stream = FetchStream {
            store: self.store.clone(),
            mailbox,
            tag: tag.to_string(),
            items: plan.items,
            needs_summary: plan.needs_summary,
            needs_bytes: plan.needs_bytes,
            dialect: self.dialect(),
            todo: uids.into_iter().zip(seqs).collect(),
            batch: VecDeque::new(),
            seen_now,
            condstore: self.condstore,
            recent,
            changed_since,
            missing: false,
            unknown_encoding: false,
            budget: self.input.share(),
            over_budget: false,
            queue: VecDeque::new(),
            done: false,
            announced,
            read_only,
        };
        Outcome::streaming(head, stream)
    }

    /// UIDs in `set` expunged after `since` (QRESYNC's VANISHED (EARLIER) in UID FETCH).
    async fn vanished_since(
        &self,
        mailbox: MailboxId,
        since: u64,
        set: &Ranges,
    ) -> Result<Vec<u32>, StoreError> {
        let mut since = Since::modseq(since);
        let mut gone = Vec::new();
        loop {
            let changes = self
                .store
                .changes_from(mailbox, since, self.config.limits.list_batch_max)
                .await?;
            since = changes.next();
            gone.extend(changes.gone.into_iter().filter(|&u| set.contains(u)));
            if !changes.more {
                break;
            }
        }
        gone.sort_unstable();
        gone.dedup();
        Ok(gone)
    }
}

/// A piece of the response still to write.
/// Appends a plain literal's bytes with each NUL as 0x80: a literal is CHAR8, %x01-ff (RFC 9051 §9),
/// and a strict client fails on the response otherwise (Dovecot does the same). Same length, so sizes
/// hold; `BINARY[]` sends the bytes as they are, in a literal8.
fn extend_without_nul(out: &mut Vec<u8>, bytes: &[u8]) {
    if !bytes.contains(&0) {
        out.extend_from_slice(bytes);
    } else {
        out.extend(bytes.iter().map(|&b| if b == 0 { 0x80 } else { b }));
    }
}

enum Piece {
    Bytes(Vec<u8>),
    /// `len` bytes of a stored message from `offset`.
    Stored {
        body: BodyRef,
        offset: u64,
        len: u64,
    },
}

/// The FETCH response, made a message at a time as the connection writes it.
struct FetchStream {
    store: Arc<dyn MailStore>,
    mailbox: MailboxId,
    tag: String,
    items: Vec<Item>,
    needs_summary: bool,
    needs_bytes: bool,
    dialect: Dialect,
    /// (UID, sequence number) still to read, ascending.
    todo: VecDeque<(u32, u32)>,
    /// Read, not yet answered, with their sequence numbers.
    batch: VecDeque<(u32, Listed)>,
    /// Messages this FETCH marked `\Seen`: their FLAGS go with them.
    seen_now: HashSet<u32>,
    /// CONDSTORE is on: a message marked `\Seen` also reports its UID and MODSEQ.
    condstore: bool,
    /// The UIDs `\Recent` to the session (its FLAGS say so).
    recent: Ranges,
    changed_since: Option<u64>,
    /// A message was expunged before it could be sent.
    missing: bool,
    /// A BINARY part had a transfer encoding that cannot be undone (RFC 3516's UNKNOWN-CTE).
    unknown_encoding: bool,
    /// This FETCH's draw on the server's budget for large messages in memory (BINARY decodes a part
    /// whole), and whether the budget refused a part.
    budget: crate::caps::InputShare,
    over_budget: bool,
    queue: VecDeque<Piece>,
    done: bool,
    /// The keywords the client has been told of in FLAGS (see `selected::announce`).
    announced: Vec<String>,
    read_only: bool,
}

#[async_trait]
impl Pieces for FetchStream {
    async fn next(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        loop {
            if out.len() >= STREAM_CHUNK_BYTES {
                return Ok(Some(out));
            }
            if let Some(piece) = self.queue.pop_front() {
                match piece {
                    Piece::Bytes(bytes) => out.extend_from_slice(&bytes),
                    Piece::Stored { body, offset, len } => {
                        let take = len.min(STREAM_CHUNK_BYTES as u64) as usize;
                        let chunk = self.store.body_chunk(body, offset, take).await?;
                        if chunk.len() != take {
                            return Err(StoreError::Backend(
                                "message shorter than announced".into(),
                            ));
                        }
                        extend_without_nul(&mut out, &chunk);
                        if len > take as u64 {
                            self.queue.push_front(Piece::Stored {
                                body,
                                offset: offset + take as u64,
                                len: len - take as u64,
                            });
                        }
                    }
                }
                continue;
            }
            if let Some((seq, listed)) = self.batch.pop_front() {
                self.respond(seq, listed).await?;
                continue;
            }
            if !self.todo.is_empty() {
                self.read_batch().await?;
                continue;
            }
            if self.done {
                return Ok((!out.is_empty()).then_some(out));
            }
            self.done = true;
            out.extend(if self.over_budget {
                no(
                    &self.tag,
                    Some("UNAVAILABLE"),
                    "Server is busy with large messages; try again later",
                )
            } else if self.unknown_encoding {
                no(
                    &self.tag,
                    Some("UNKNOWN-CTE"),
                    "A part's transfer encoding cannot be decoded",
                )
            } else if self.missing {
                no(
                    &self.tag,
                    Some("EXPUNGEISSUED"),
                    "Some of the requested messages no longer exist",
                )
            } else {
                ok(&self.tag, "FETCH completed")
            });
        }
    }
}

impl FetchStream {
    async fn read_batch(&mut self) -> Result<(), StoreError> {
        // With bytes wanted, fewer messages a call: it holds up to the inline size of each.
        let per_call = if self.needs_bytes {
            FETCH_BATCH_WITH_BYTES
        } else {
            FETCH_BATCH_MESSAGES
        };
        let take = self.todo.len().min(per_call);
        let wanted: Vec<(u32, u32)> = self.todo.drain(..take).collect();
        let uids: Vec<u32> = wanted.iter().map(|(u, _)| *u).collect();
        let parts = Wanted {
            summary: self.needs_summary,
            raw_bytes_max: if self.needs_bytes {
                FETCH_RAW_INLINE_BYTES_MAX
            } else {
                0
            },
        };
        let rows = self.store.messages(self.mailbox, &uids, parts).await?;
        if rows.len() < uids.len() {
            if self.items.iter().all(|i| matches!(i, Item::Uid)) {
                // A message expunged by another session, not yet reported: its UID is the session's
                // own knowledge, so a FETCH of UID alone still answers it (RFC 2180 §4.1.3), as
                // Dovecot does.
                for &(uid, seq) in &wanted {
                    if !rows.iter().any(|r| r.meta.uid == uid) {
                        let line = format!("* {seq} FETCH (UID {uid})\r\n");
                        self.queue.push_back(Piece::Bytes(line.into_bytes()));
                    }
                }
            } else {
                self.missing = true;
            }
        }
        for listed in rows {
            if self
                .changed_since
                .is_some_and(|since| listed.meta.modseq <= since)
            {
                continue;
            }
            let seq = wanted
                .iter()
                .find(|(u, _)| *u == listed.meta.uid)
                .map(|(_, s)| *s)
                .unwrap_or_default();
            self.batch.push_back((seq, listed));
        }
        Ok(())
    }

    /// Queues one message's `* n FETCH (...)`.
    async fn respond(&mut self, seq: u32, listed: Listed) -> Result<(), StoreError> {
        let meta = &listed.meta;
        let summary = listed.summary.as_deref().and_then(Summary::from_json);
        if self.needs_summary && summary.is_none() {
            self.missing = true;
            return Ok(());
        }
        let raw = if listed.raw.is_some() {
            listed.raw
        } else if self.needs_bytes && meta.size <= STREAM_BYTES_MIN {
            match self.store.fetch(self.mailbox, meta.uid, false).await? {
                Some(raw) => Some(raw),
                None => {
                    self.missing = true;
                    return Ok(());
                }
            }
        } else {
            None
        };
        let body = if self.needs_bytes && raw.is_none() {
            match self.store.body_ref(self.mailbox, meta.uid).await? {
                Some(body) => Some(body),
                None => {
                    self.missing = true;
                    return Ok(());
                }
            }
        } else {
            None
        };
        let mut line = format!("* {seq} FETCH (").into_bytes();
        let mut first = true;
        let mut items = self.items.clone();
        if items.iter().any(|i| matches!(i, Item::Flags)) || self.seen_now.contains(&meta.uid) {
            let news =
                super::selected::announce(&mut self.announced, &meta.keywords, self.read_only);
            if !news.is_empty() {
                self.queue.push_back(Piece::Bytes(news));
            }
        }
        if self.seen_now.contains(&meta.uid) {
            // RFC 7162 §3.1: under CONDSTORE, a FETCH that sets `\Seen` reports UID and MODSEQ too.
            let mut implied = vec![Item::Flags];
            if self.condstore {
                implied.extend([Item::Uid, Item::ModSeq]);
            }
            for item in implied {
                let kind = std::mem::discriminant(&item);
                if !items.iter().any(|i| std::mem::discriminant(i) == kind) {
                    items.push(item);
                }
            }
        }
        for item in &items {
            // Where this item starts, to take it back (BINARY.SIZE that cannot be known).
            let (item_start, was_first) = (line.len(), first);
            if !first {
                line.push(b' ');
            }
            first = false;
            match item {
                Item::Uid => line.extend_from_slice(format!("UID {}", meta.uid).as_bytes()),
                Item::Flags => line.extend_from_slice(
                    format!(
                        "FLAGS {}",
                        respond::flag_list(
                            meta.flags,
                            &meta.keywords,
                            self.recent.contains(meta.uid)
                        )
                    )
                    .as_bytes(),
                ),
                Item::InternalDate => line.extend_from_slice(
                    format!(
                        "INTERNALDATE {}",
                        respond::internal_date(
                            meta.internal_date_micros,
                            meta.internal_zone_minutes
                        )
                    )
                    .as_bytes(),
                ),
                Item::Size => {
                    line.extend_from_slice(format!("RFC822.SIZE {}", meta.size).as_bytes())
                }
                Item::ModSeq => {
                    line.extend_from_slice(format!("MODSEQ ({})", meta.modseq).as_bytes())
                }
                Item::Envelope => {
                    line.extend_from_slice(b"ENVELOPE ");
                    let summary = summary.as_ref().expect("checked above");
                    line.extend(structure::envelope(&summary.envelope, self.dialect));
                }
                Item::Structure(extensible) => {
                    line.extend_from_slice(if *extensible {
                        b"BODYSTRUCTURE "
                    } else {
                        b"BODY "
                    });
                    let summary = summary.as_ref().expect("checked above");
                    line.extend(structure::body_structure(
                        summary,
                        *extensible,
                        self.dialect,
                    ));
                }
                Item::Binary {
                    label,
                    part,
                    partial,
                    size_only,
                } => {
                    line.extend_from_slice(label.as_bytes());
                    line.push(b' ');
                    let whole = Section {
                        part: part.clone(),
                        text: None,
                    };
                    // The part and its decoded form are held whole: drawn from the server's budget.
                    let part_len = match section_bytes(meta.size as usize, summary.as_ref(), &whole)
                    {
                        Some(Located::Stored(range)) => range.len(),
                        _ => 0,
                    };
                    // BINARY can be NIL; BINARY.SIZE must be a number (RFC 3516 §4.2), so one that
                    // cannot be known is left out, as Dovecot does, and the tagged NO says why.
                    let leave_out = |line: &mut Vec<u8>, first: &mut bool| match *size_only {
                        true => {
                            line.truncate(item_start);
                            *first = was_first;
                        }
                        false => line.extend_from_slice(b"NIL"),
                    };
                    if self.budget.hold(part_len.saturating_mul(2)).is_err() {
                        self.over_budget = true;
                        leave_out(&mut line, &mut first);
                        continue;
                    }
                    let stored = match (&raw, body) {
                        (Some(raw), _) => {
                            match section_bytes(raw.len(), summary.as_ref(), &whole) {
                                Some(Located::Stored(range)) => raw[range].to_vec(),
                                _ => Vec::new(),
                            }
                        }
                        (None, Some(body)) => {
                            match section_bytes(body.len as usize, summary.as_ref(), &whole) {
                                Some(Located::Stored(range)) => {
                                    self.store
                                        .body_chunk(body, range.start as u64, range.len())
                                        .await?
                                }
                                _ => Vec::new(),
                            }
                        }
                        (None, None) => Vec::new(),
                    };
                    // The whole message (`BINARY[]`) is sent as it is.
                    let encoding = match summary.as_ref().and_then(|s| s.part(part)) {
                        Some(p) if !part.is_empty() => p.encoding.as_str(),
                        _ => "7BIT",
                    };
                    match section::decode_transfer(encoding, &stored) {
                        Ok(decoded) if *size_only => {
                            line.extend_from_slice(decoded.len().to_string().as_bytes())
                        }
                        Ok(decoded) => {
                            let range = clip(decoded.len(), *partial);
                            let bytes = &decoded[range];
                            // A literal8 (`~{n}`) only where a plain literal cannot carry the bytes.
                            if bytes.contains(&0) {
                                line.push(b'~');
                            }
                            literal_head(&mut line, bytes.len());
                            line.extend_from_slice(bytes);
                        }
                        Err(_) => {
                            self.unknown_encoding = true;
                            leave_out(&mut line, &mut first);
                        }
                    }
                    let _ = self.budget.hold(0);
                }
                Item::Bytes {
                    label,
                    section,
                    partial,
                } => {
                    line.extend_from_slice(label.as_bytes());
                    line.push(b' ');
                    match (&raw, body) {
                        (Some(raw), _) => {
                            let bytes = match section_bytes(raw.len(), summary.as_ref(), section) {
                                Some(Located::Stored(range)) => raw[range].to_vec(),
                                Some(Located::Fields { header, names, not }) => {
                                    section::header_fields(&raw[header], &names, not)
                                }
                                None => Vec::new(),
                            };
                            let range = clip(bytes.len(), *partial);
                            literal_head(&mut line, range.len());
                            extend_without_nul(&mut line, &bytes[range]);
                        }
                        (None, Some(body)) => {
                            let len = body.len as usize;
                            match section_bytes(len, summary.as_ref(), section) {
                                Some(Located::Stored(range)) => {
                                    let within = clip(range.len(), *partial);
                                    literal_head(&mut line, within.len());
                                    self.queue
                                        .push_back(Piece::Bytes(std::mem::take(&mut line)));
                                    self.queue.push_back(Piece::Stored {
                                        body,
                                        offset: (range.start + within.start) as u64,
                                        len: within.len() as u64,
                                    });
                                }
                                Some(Located::Fields { header, names, not }) => {
                                    let bytes = self
                                        .store
                                        .body_chunk(body, header.start as u64, header.len())
                                        .await?;
                                    let made = section::header_fields(&bytes, &names, not);
                                    let range = clip(made.len(), *partial);
                                    literal_head(&mut line, range.len());
                                    extend_without_nul(&mut line, &made[range]);
                                }
                                None => literal_head(&mut line, 0),
                            }
                        }
                        (None, None) => literal_head(&mut line, 0),
                    }
                }
            }
        }
        if first {
            // Every item was left out: no response for this message (`msg-att` needs one item).
            return Ok(());
        }
        line.extend_from_slice(b")\r\n");
        self.queue.push_back(Piece::Bytes(line));
        Ok(())
    }
}

/// Where a section's bytes are; the whole message needs no summary.
fn section_bytes(len: usize, summary: Option<&Summary>, section: &Section) -> Option<Located> {
    if section.part.is_empty() && section.text.is_none() {
        return Some(Located::Stored(0..len));
    }
    section::locate_in(len, summary?, section)
}

fn clip(len: usize, partial: Option<(u32, u32)>) -> std::ops::Range<usize> {
    match partial {
        Some((origin, count)) => section::partial(len, origin, count),
        None => 0..len,
    }
}

/// `{n}\r\n`: a literal of `n` bytes follows.
fn literal_head(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(format!("{{{n}}}\r\n").as_bytes());
}
