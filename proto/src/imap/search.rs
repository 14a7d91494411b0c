//! SEARCH (RFC 9051 §6.4.4): a command's search keys compiled once into a [`Query`] (sequence sets
//! resolved to sorted ranges, strings lower-cased, dates read), then matched against each message. A
//! message is looked at only as deeply as the query needs ([`Need`]): flags and sizes come from the
//! listing, sent dates from the stored summary, header fields and text from the stored bytes, which
//! are parsed (MIME decoded, charsets converted) at most once per message.
//!
//! Strings match as substrings, case-insensitively over Unicode (both sides lower-cased), against the
//! decoded text and, for header fields, against the raw field value too, so an address matches
//! whatever way it was encoded.

use std::cell::OnceCell;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use imap_types::core::AString;
use imap_types::search::SearchKey;
use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use mail_parser::{HeaderValue, Message, MessageParser, PartType};

use crate::flags as flag;
use crate::summary::Envelope;

/// How much of a message a query needs, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// Sequence number and UID: nothing needs reading.
    Numbers,
    /// System flags too: what a mailbox snapshot holds.
    Flags,
    /// Keywords, size, dates of arrival, modseq too.
    Listing,
    /// The stored summary (the envelope: SENT*, FROM, TO, CC, BCC, SUBJECT).
    Summary,
    /// The stored bytes (header fields, body text).
    Bytes,
}

/// How a date compares (BEFORE / ON / SINCE and the SENT forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTest {
    Before,
    On,
    Since,
}

impl DateTest {
    fn holds(self, date: NaiveDate, against: NaiveDate) -> bool {
        match self {
            DateTest::Before => date < against,
            DateTest::On => date == against,
            DateTest::Since => date >= against,
        }
    }
}

/// Inclusive ranges, sorted and merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges(Vec<(u32, u32)>);

impl Ranges {
    /// No numbers at all.
    pub const NONE: Ranges = Ranges(Vec::new());

    /// The ranges of ascending `numbers`, in one pass.
    pub fn of_ascending(numbers: &[u32]) -> Ranges {
        let mut merged: Vec<(u32, u32)> = Vec::new();
        for &n in numbers {
            match merged.last_mut() {
                Some(last) if n <= last.1.saturating_add(1) => last.1 = last.1.max(n),
                _ => merged.push((n, n)),
            }
        }
        Ranges(merged)
    }

    /// Adds `lo..=hi` (nothing when `lo > hi`), merging it with the ranges it touches.
    pub fn add(&mut self, lo: u32, hi: u32) {
        if lo > hi {
            return;
        }
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.0.len() + 1);
        let mut new = (lo, hi);
        let mut placed = false;
        for &(a, b) in &self.0 {
            if b.saturating_add(1) < new.0 {
                merged.push((a, b));
            } else if new.1.saturating_add(1) < a {
                if !placed {
                    merged.push(new);
                    placed = true;
                }
                merged.push((a, b));
            } else {
                new = (new.0.min(a), new.1.max(b));
            }
        }
        if !placed {
            merged.push(new);
        }
        self.0 = merged;
    }

    /// The ranges, ascending: each `(lo, hi)` inclusive.
    pub fn spans(&self) -> &[(u32, u32)] {
        &self.0
    }

    /// The ranges of `set`, with `*` standing for `star` (0 when the mailbox is empty, so it names
    /// nothing).
    pub fn of(set: &SequenceSet, star: u32) -> Ranges {
        let value = |x: &SeqOrUid| match x {
            SeqOrUid::Value(n) => n.get(),
            SeqOrUid::Asterisk => star,
        };
        let mut ranges: Vec<(u32, u32)> = set
            .0
            .as_ref()
            .iter()
            .map(|s| match s {
                Sequence::Single(one) => (value(one), value(one)),
                Sequence::Range(a, b) => (value(a).min(value(b)), value(a).max(value(b))),
            })
            .filter(|&(lo, _)| lo > 0 || star > 0)
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Ranges(merged)
    }

    pub fn contains(&self, n: u32) -> bool {
        let i = self.0.partition_point(|&(_, hi)| hi < n);
        self.0.get(i).is_some_and(|&(lo, _)| lo <= n)
    }
}

/// A compiled search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    All,
    /// Matches nothing.
    Nothing,
    And(Vec<Query>),
    Or(Box<Query>, Box<Query>),
    Not(Box<Query>),
    Sequence(Ranges),
    Uid(Ranges),
    /// A system flag bit set (`true`) or clear.
    Flag(i64, bool),
    /// A keyword (lower case) present or absent.
    Keyword(String, bool),
    Larger(u64),
    Smaller(u64),
    Arrived(DateTest, NaiveDate),
    Sent(DateTest, NaiveDate),
    /// An envelope field containing the text (lower case; empty: the field is there), read from the
    /// stored summary.
    Envelope(Field, String),
    /// A header field (name lower case) containing the text (lower case; empty: the field is there).
    Header(String, String),
    Body(String),
    Text(String),
    ModSeq(u64),
    /// Arrived before this instant (microseconds since the epoch): JMAP's `before`.
    ArrivedBefore(i64),
    /// Arrived at or after this instant: JMAP's `after`.
    ArrivedSince(i64),
    /// Has (`true`) or has not an attachment, as JMAP's `hasAttachment` counts them.
    HasAttachment(bool),
}

/// The header fields the summary's envelope holds (the last of each, as mail-parser reads them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    From,
    To,
    Cc,
    Bcc,
    Subject,
}

/// What a search is compiled against: what `*` stands for (the session's last sequence number and
/// highest UID), and the UIDs that are `\Recent` to the session (RECENT, NEW and OLD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stars<'a> {
    pub last_seq: u32,
    pub last_uid: u32,
    pub recent: &'a Ranges,
    /// The saved search result's UIDs when the command named `$` (SEARCHRES): a set that is
    /// [`crate::imap::extended::SAVED_MARKER`] stands for them.
    pub saved: Option<&'a Ranges>,
}

/// Most keys of one search that look at text (FROM ... SUBJECT, HEADER, BODY, TEXT). Each is a substring
/// search through every message the search reads, so this bounds what one command can cost.
pub const TEXT_KEYS_MAX: usize = 32;

/// Most keys of one search, of any kind (each `NOT`, `OR` and parenthesised list counts). Every key is
/// tested against every message a search reads: `SEARCH 1:* 1:* ...` with 12,000 keys over 20,000
/// messages held a core for 1.3 s per command. A client's real searches stay far below (an `OR` of
/// a few dozen addresses; a set of UIDs is one key), as do JMAP's filters (256 nodes).
pub const KEYS_MAX: usize = 256;

/// Why a search cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchError {
    /// A string that is not UTF-8 (the only charset taken, with US-ASCII).
    NotUtf8,
    /// More than [`TEXT_KEYS_MAX`] keys that look at text.
    TooManyTextKeys,
    /// More than [`KEYS_MAX`] keys.
    TooManyKeys,
}

/// How many keys `keys` holds, counted through their nesting, stopping past [`KEYS_MAX`] (the count
/// is made before anything is compiled).
fn key_count(keys: &[SearchKey<'_>]) -> usize {
    fn count(key: &SearchKey<'_>, total: &mut usize) {
        *total += 1;
        if *total > KEYS_MAX {
            return;
        }
        match key {
            SearchKey::And(keys) => keys.as_ref().iter().for_each(|k| count(k, total)),
            SearchKey::Not(inner) => count(inner, total),
            SearchKey::Or(a, b) => {
                count(a, total);
                count(b, total);
            }
            _ => {}
        }
    }
    let mut total = 0;
    keys.iter().for_each(|k| count(k, &mut total));
    total
}

fn text(s: &AString<'_>) -> Result<String, SearchError> {
    let bytes: &[u8] = s.as_ref();
    std::str::from_utf8(bytes)
        .map(str::to_lowercase)
        .map_err(|_| SearchError::NotUtf8)
}

fn date(d: &imap_types::datetime::NaiveDate) -> NaiveDate {
    *d.as_ref()
}

impl Query {
    /// Compiles a command's search keys (ANDed).
    pub fn compile(keys: &[SearchKey<'_>], stars: Stars<'_>) -> Result<Query, SearchError> {
        if key_count(keys) > KEYS_MAX {
            return Err(SearchError::TooManyKeys);
        }
        let query = Query::compile_all(keys, stars)?;
        if query.text_keys() > TEXT_KEYS_MAX {
            return Err(SearchError::TooManyTextKeys);
        }
        Ok(query)
    }

    fn compile_all(keys: &[SearchKey<'_>], stars: Stars<'_>) -> Result<Query, SearchError> {
        let mut all = keys
            .iter()
            .map(|k| Query::compile_one(k, stars))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Query::And(all)
        })
    }

    /// How many keys look at text.
    pub(crate) fn text_keys(&self) -> usize {
        match self {
            Query::And(all) => all.iter().map(Query::text_keys).sum(),
            Query::Or(a, b) => a.text_keys() + b.text_keys(),
            Query::Not(a) => a.text_keys(),
            Query::Envelope(..) | Query::Header(..) | Query::Body(_) | Query::Text(_) => 1,
            _ => 0,
        }
    }

    fn compile_one(key: &SearchKey<'_>, stars: Stars<'_>) -> Result<Query, SearchError> {
        use SearchKey as K;
        let envelope = |field: Field, value: &AString<'_>| Ok(Query::Envelope(field, text(value)?));
        Ok(match key {
            K::And(keys) => Query::compile_all(keys.as_ref(), stars)?,
            K::SequenceSet(set) | K::Uid(set)
                if stars.saved.is_some() && crate::imap::extended::is_saved_marker(set) =>
            {
                Query::Uid(stars.saved.cloned().unwrap_or(Ranges::NONE))
            }
            K::SequenceSet(set) => Query::Sequence(Ranges::of(set, stars.last_seq)),
            K::Uid(set) => Query::Uid(Ranges::of(set, stars.last_uid)),
            K::All => Query::All,
            K::Answered => Query::Flag(flag::ANSWERED, true),
            K::Unanswered => Query::Flag(flag::ANSWERED, false),
            K::Deleted => Query::Flag(flag::DELETED, true),
            K::Undeleted => Query::Flag(flag::DELETED, false),
            K::Draft => Query::Flag(flag::DRAFT, true),
            K::Undraft => Query::Flag(flag::DRAFT, false),
            K::Flagged => Query::Flag(flag::FLAGGED, true),
            K::Unflagged => Query::Flag(flag::FLAGGED, false),
            K::Seen => Query::Flag(flag::SEEN, true),
            K::Unseen => Query::Flag(flag::SEEN, false),
            K::Keyword(word) => Query::Keyword(word.as_ref().to_ascii_lowercase(), true),
            K::Unkeyword(word) => Query::Keyword(word.as_ref().to_ascii_lowercase(), false),
            K::Recent => Query::Uid(stars.recent.clone()),
            K::New => Query::And(vec![
                Query::Uid(stars.recent.clone()),
                Query::Flag(flag::SEEN, false),
            ]),
            K::Old => Query::Not(Box::new(Query::Uid(stars.recent.clone()))),
            K::Larger(n) => Query::Larger(u64::from(*n)),
            K::Smaller(n) => Query::Smaller(u64::from(*n)),
            K::Before(d) => Query::Arrived(DateTest::Before, date(d)),
            K::On(d) => Query::Arrived(DateTest::On, date(d)),
            K::Since(d) => Query::Arrived(DateTest::Since, date(d)),
            K::SentBefore(d) => Query::Sent(DateTest::Before, date(d)),
            K::SentOn(d) => Query::Sent(DateTest::On, date(d)),
            K::SentSince(d) => Query::Sent(DateTest::Since, date(d)),
            K::Bcc(v) => envelope(Field::Bcc, v)?,
            K::Cc(v) => envelope(Field::Cc, v)?,
            K::From(v) => envelope(Field::From, v)?,
            K::To(v) => envelope(Field::To, v)?,
            K::Subject(v) => envelope(Field::Subject, v)?,
            K::Header(name, v) => {
                let name = text(name)?;
                Query::Header(name, text(v)?)
            }
            K::Body(v) => Query::Body(text(v)?),
            K::Text(v) => Query::Text(text(v)?),
            K::Not(inner) => Query::Not(Box::new(Query::compile_one(inner, stars)?)),
            K::Or(a, b) => Query::Or(
                Box::new(Query::compile_one(a, stars)?),
                Box::new(Query::compile_one(b, stars)?),
            ),
            K::ModSequence { modseq, .. } => Query::ModSeq(*modseq),
        })
    }

    /// How much of a message this query needs.
    pub fn need(&self) -> Need {
        match self {
            Query::And(all) => all.iter().map(Query::need).max().unwrap_or(Need::Numbers),
            Query::Or(a, b) => a.need().max(b.need()),
            Query::Not(a) => a.need(),
            Query::All | Query::Nothing | Query::Sequence(_) | Query::Uid(_) => Need::Numbers,
            Query::Flag(..) => Need::Flags,
            Query::Keyword(..)
            | Query::Larger(_)
            | Query::Smaller(_)
            | Query::Arrived(..)
            | Query::ArrivedBefore(_)
            | Query::ArrivedSince(_)
            | Query::ModSeq(_) => Need::Listing,
            Query::Sent(..) | Query::Envelope(..) => Need::Summary,
            Query::Header(..) | Query::Body(_) | Query::Text(_) | Query::HasAttachment(_) => {
                Need::Bytes
            }
        }
    }

    /// The sequence-number and UID ranges every match must lie in (the query's own top-level sets), so
    /// a search looks only at the messages they name.
    pub fn bounds(&self) -> (Option<&Ranges>, Option<&Ranges>) {
        let top: &[Query] = match self {
            Query::And(all) => all,
            one => std::slice::from_ref(one),
        };
        let seq = top.iter().find_map(|q| match q {
            Query::Sequence(r) => Some(r),
            _ => None,
        });
        let uid = top.iter().find_map(|q| match q {
            Query::Uid(r) => Some(r),
            _ => None,
        });
        (seq, uid)
    }

    /// Whether the query uses MODSEQ (CONDSTORE: the response then carries the highest modseq).
    pub fn uses_modseq(&self) -> bool {
        match self {
            Query::And(all) => all.iter().any(Query::uses_modseq),
            Query::Or(a, b) => a.uses_modseq() || b.uses_modseq(),
            Query::Not(a) => a.uses_modseq(),
            Query::ModSeq(_) => true,
            _ => false,
        }
    }

    /// Whether `m` matches.
    pub fn matches(&self, m: &Candidate<'_>) -> bool {
        match self {
            Query::All => true,
            Query::Nothing => false,
            Query::And(all) => all.iter().all(|q| q.matches(m)),
            Query::Or(a, b) => a.matches(m) || b.matches(m),
            Query::Not(a) => !a.matches(m),
            Query::Sequence(r) => r.contains(m.seq),
            Query::Uid(r) => r.contains(m.uid),
            Query::Flag(bit, set) => (m.flags & bit != 0) == *set,
            Query::Keyword(word, set) => {
                m.keywords.iter().any(|k| k.eq_ignore_ascii_case(word)) == *set
            }
            Query::Larger(n) => m.size > *n,
            Query::Smaller(n) => m.size < *n,
            Query::Arrived(test, d) => m.arrival_date().is_some_and(|t| test.holds(t, *d)),
            // No (readable) Date field: the arrival stands in, as for SORT's DATE and in Dovecot.
            Query::Sent(test, d) => (m.sent_date().or_else(|| m.arrival_date()))
                .is_some_and(|sent| test.holds(sent, *d)),
            Query::Envelope(field, needle) => m.envelope_contains(*field, needle),
            Query::Header(name, needle) => m.header_contains(name, needle),
            Query::Body(needle) => m.body_contains(needle),
            Query::Text(needle) => m.header_contains_any(needle) || m.body_contains(needle),
            Query::ModSeq(n) => m.modseq >= *n,
            Query::ArrivedBefore(t) => m.internal_date_micros < *t,
            Query::ArrivedSince(t) => m.internal_date_micros >= *t,
            Query::HasAttachment(wanted) => {
                m.parsed().is_some_and(|p| p.attachment_count() > 0) == *wanted
            }
        }
    }
}

/// One message as a search sees it. `envelope` (from the stored summary) must be there when the query
/// needs the summary, `raw` when it needs the bytes (a message without them matches no key that looks
/// at them).
pub struct Candidate<'a> {
    pub seq: u32,
    pub uid: u32,
    pub flags: i64,
    pub keywords: &'a [String],
    pub size: u64,
    pub internal_date_micros: i64,
    /// The zone the arrival time is told in, minutes east of UTC ([`Candidate::in_zone`]).
    pub internal_zone_minutes: i32,
    pub modseq: u64,
    pub envelope: Option<&'a Envelope>,
    pub raw: Option<&'a [u8]>,
    parsed: OnceCell<Option<Message<'a>>>,
    /// The text parts, lower case, joined: made once however many BODY and TEXT keys look at them.
    body_text: OnceCell<String>,
    /// The header, raw and decoded, lower case: made once for every TEXT key.
    header_text: OnceCell<String>,
}

impl<'a> Candidate<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        seq: u32,
        uid: u32,
        flags: i64,
        keywords: &'a [String],
        size: u64,
        internal_date_micros: i64,
        modseq: u64,
        envelope: Option<&'a Envelope>,
        raw: Option<&'a [u8]>,
    ) -> Candidate<'a> {
        Candidate {
            seq,
            uid,
            flags,
            keywords,
            size,
            internal_date_micros,
            internal_zone_minutes: 0,
            modseq,
            envelope,
            raw,
            parsed: OnceCell::new(),
            body_text: OnceCell::new(),
            header_text: OnceCell::new(),
        }
    }

    /// The arrival time told in `minutes` east of UTC (an IMAP APPEND's zone; UTC when not set).
    pub fn in_zone(mut self, minutes: i32) -> Candidate<'a> {
        self.internal_zone_minutes = minutes;
        self
    }

    /// The arrival date in the arrival time's own zone: SEARCH BEFORE, ON and SINCE compare it
    /// "disregarding time and timezone" (RFC 9051 §6.4.4), as the client wrote it at APPEND.
    fn arrival_date(&self) -> Option<NaiveDate> {
        let t = DateTime::<Utc>::from_timestamp_micros(self.internal_date_micros)?;
        Some(
            t.with_timezone(&zone(self.internal_zone_minutes))
                .date_naive(),
        )
    }

    fn parsed(&self) -> Option<&Message<'a>> {
        self.parsed
            .get_or_init(|| self.raw.and_then(|raw| MessageParser::new().parse(raw)))
            .as_ref()
    }

    /// The Date header's date, in the header's own time zone (RFC 9051: "disregarding time and
    /// timezone").
    fn sent_date(&self) -> Option<NaiveDate> {
        let value = self.envelope?.date.as_deref()?;
        let d = mail_parser::DateTime::parse_rfc822(value)?;
        NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
    }

    fn envelope_contains(&self, field: Field, needle: &str) -> bool {
        let Some(e) = self.envelope else {
            return false;
        };
        let list = match field {
            Field::Subject => {
                return e.subject.as_deref().is_some_and(|raw| {
                    needle.is_empty()
                        || decoded_words(raw).to_lowercase().contains(needle)
                        || raw.to_lowercase().contains(needle)
                });
            }
            Field::From => &e.from,
            Field::To => &e.to,
            Field::Cc => &e.cc,
            Field::Bcc => &e.bcc,
        };
        !list.is_empty()
            && (needle.is_empty()
                || list.iter().any(|a| {
                    let name = a.name.as_deref().map(decoded_words).unwrap_or_default();
                    let address = format!(
                        "{} <{}@{}>",
                        name,
                        a.mailbox.as_deref().unwrap_or(""),
                        a.host.as_deref().unwrap_or("")
                    );
                    address.to_lowercase().contains(needle)
                        || a.name
                            .as_deref()
                            .is_some_and(|raw| raw.to_lowercase().contains(needle))
                }))
    }

    fn header_contains(&self, name: &str, needle: &str) -> bool {
        let (Some(message), Some(raw)) = (self.parsed(), self.raw) else {
            return false;
        };
        message
            .headers()
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .any(|h| {
                needle.is_empty()
                    || header_text(&h.value).to_lowercase().contains(needle)
                    || raw
                        .get(h.offset_start as usize..h.offset_end as usize)
                        .is_some_and(|v| String::from_utf8_lossy(v).to_lowercase().contains(needle))
            })
    }

    fn header_contains_any(&self, needle: &str) -> bool {
        let text = self.header_text.get_or_init(|| {
            let (Some(message), Some(raw)) = (self.parsed(), self.raw) else {
                return String::new();
            };
            let end = message.root_part().offset_body as usize;
            let mut text = String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).into_owned();
            for h in message.headers() {
                text.push('\n');
                text.push_str(&header_text(&h.value));
            }
            text.to_lowercase()
        });
        text.contains(needle)
    }

    fn body_contains(&self, needle: &str) -> bool {
        let text = self.body_text.get_or_init(|| {
            let mut text = String::new();
            if let Some(m) = self.parsed() {
                message_text(m, &mut text);
            }
            text.to_lowercase()
        });
        text.contains(needle)
    }
}

/// Every text part of `message` (and of the messages it holds), one after another, parts apart by a
/// line end so no match spans two. Reports written as text under a `message/` type (a delivery status
/// notification's `message/delivery-status`, a read receipt's `message/disposition-notification`, an
/// abuse report's `message/feedback-report`) count as text: their fields are what a user searches for.
fn message_text(message: &Message<'_>, out: &mut String) {
    for part in &message.parts {
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => {
                out.push_str(t);
                out.push('\n');
            }
            PartType::Message(inner) => message_text(inner, out),
            PartType::Binary(b) | PartType::InlineBinary(b) if is_textual_report(part) => {
                out.push_str(&String::from_utf8_lossy(b));
                out.push('\n');
            }
            _ => {}
        }
    }
}

/// A `message/` part that is text in all but name (RFC 3464, RFC 8098, RFC 5965).
fn is_textual_report(part: &mail_parser::MessagePart<'_>) -> bool {
    use mail_parser::MimeHeaders;
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("message")
            && ct.subtype().is_some_and(|s| {
                [
                    "delivery-status",
                    "global-delivery-status",
                    "disposition-notification",
                    "feedback-report",
                ]
                .iter()
                .any(|r| s.eq_ignore_ascii_case(r))
            })
    })
}

/// A header value's encoded words (RFC 2047) decoded, as mail-parser reads an unstructured field.
/// The zone `minutes` east of UTC that an internal date is told in; UTC for a value out of range.
pub fn zone(minutes: i32) -> FixedOffset {
    FixedOffset::east_opt(minutes.saturating_mul(60))
        .unwrap_or(FixedOffset::east_opt(0).expect("UTC"))
}

pub(crate) fn decoded_words(raw: &str) -> String {
    if !raw.contains("=?") {
        return raw.to_string();
    }
    let header = format!("Subject: {raw}\r\n\r\n");
    MessageParser::default()
        .parse_headers(header.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| raw.to_string())
}

/// A decoded header value as text: what a user would read.
fn header_text(value: &HeaderValue<'_>) -> String {
    match value {
        HeaderValue::Text(t) => t.to_string(),
        HeaderValue::TextList(list) => list.join(" "),
        HeaderValue::Address(address) => address
            .iter()
            .map(|a| {
                format!(
                    "{} <{}>",
                    a.name.as_deref().unwrap_or(""),
                    a.address.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        HeaderValue::DateTime(d) => d.to_rfc822(),
        HeaderValue::ContentType(c) => match &c.c_subtype {
            Some(sub) => format!("{}/{}", c.c_type, sub),
            None => c.c_type.to_string(),
        },
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::summarize_message;
    use imap_codec::CommandCodec;
    use imap_codec::decode::Decoder as _;
    use imap_types::command::CommandBody;

    fn keys(text: &str) -> Vec<SearchKey<'static>> {
        let input = format!("a SEARCH {text}\r\n");
        let (_, command) = CommandCodec::default()
            .decode(input.as_bytes())
            .expect("search command");
        match imap_types::IntoStatic::into_static(command).body {
            CommandBody::Search { criteria, .. } => criteria.into_inner(),
            other => panic!("not a search: {other:?}"),
        }
    }

    fn query(text: &str) -> Query {
        Query::compile(
            &keys(text),
            Stars {
                last_seq: 3,
                last_uid: 30,
                recent: &Ranges::NONE,
                saved: None,
            },
        )
        .expect("compiles")
    }

    const RAW: &[u8] = b"From: =?UTF-8?Q?J=C3=BCrgen?= <jurgen@example.org>\r\nTo: bob@example.org\r\n\
Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\nDate: Tue, 1 Dec 2026 23:30:00 -0800\r\nX-Tag: Blue\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nDie STRA=C3=9FE ist lang.\r\n";

    fn matches(q: &str) -> bool {
        let summary = summarize_message(RAW);
        let keywords = vec!["$Important".to_string()];
        let m = Candidate::new(
            2,
            20,
            flag::SEEN | flag::FLAGGED,
            &keywords,
            RAW.len() as u64,
            1_764_633_600_000_000, // 2025-12-02 00:00 UTC
            7,
            Some(&summary.envelope),
            Some(RAW),
        );
        query(q).matches(&m)
    }

    #[test]
    fn flags_keywords_and_sets() {
        assert!(matches("SEEN"));
        assert!(!matches("UNSEEN"));
        assert!(matches("FLAGGED UNDELETED"));
        assert!(matches("KEYWORD $important"));
        assert!(!matches("UNKEYWORD $IMPORTANT"));
        assert!(matches("2"));
        assert!(!matches("3:*"));
        assert!(matches("UID 15:25"));
        assert!(matches("UID 20:*"));
        assert!(!matches("UID 21:*"));
        assert!(matches("OR DELETED SEEN"));
        assert!(matches("NOT DELETED"));
        assert!(!matches("NEW"));
        assert!(matches("OLD"));
        assert!(matches("MODSEQ 7"));
        assert!(!matches("MODSEQ 8"));
    }

    #[test]
    fn decoded_headers_and_body_match_in_any_case() {
        assert!(matches("FROM \"jürgen\""));
        assert!(matches("FROM JURGEN@EXAMPLE"));
        assert!(matches("SUBJECT \"GRÜßE\""));
        assert!(!matches("SUBJECT \"grüsse\""));
        assert!(matches("HEADER X-Tag blue"));
        assert!(matches("HEADER X-Tag \"\""));
        assert!(!matches("HEADER X-Other \"\""));
        assert!(matches("BODY \"straße\""));
        assert!(!matches("BODY \"jürgen\""));
        assert!(matches("TEXT \"jürgen\""));
        assert!(matches("TEXT lang"));
    }

    #[test]
    fn a_delivery_report_is_searched_as_text() {
        let raw = b"From: MAILER-DAEMON@a.test\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nIt failed.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n\
Original-Envelope-Id: QQ314159\r\nReporting-MTA: dns; a.test\r\n\r\nFinal-Recipient: rfc822; x@b.test\r\n\
Action: failed\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\nQQ999\r\n--b--\r\n";
        let m = Candidate::new(1, 1, 0, &[], raw.len() as u64, 0, 1, None, Some(raw));
        assert!(query("BODY qq314159").matches(&m));
        assert!(query("TEXT \"action: failed\"").matches(&m));
        assert!(
            !query("BODY qq999").matches(&m),
            "binary parts are not text"
        );
    }

    #[test]
    fn dates_and_sizes() {
        assert!(matches("ON 2-Dec-2025"));
        assert!(matches("SINCE 1-Dec-2025"));
        assert!(!matches("BEFORE 2-Dec-2025"));
        // The Date header's own day, not UTC's (that would be 2 Dec).
        assert!(matches("SENTON 1-Dec-2026"));
        assert!(matches("SENTBEFORE 2-Dec-2026"));
        assert!(!matches("SENTSINCE 2-Dec-2026"));
        // Without a Date field, the arrival stands in.
        let undated = b"From: a@example.org\r\nSubject: no date\r\n\r\nhi\r\n";
        let summary = summarize_message(undated);
        let arrived_2_dec_2025 = Candidate::new(
            1,
            1,
            0,
            &[],
            undated.len() as u64,
            1_764_633_600_000_000,
            1,
            Some(&summary.envelope),
            None,
        );
        assert!(query("SENTON 2-Dec-2025").matches(&arrived_2_dec_2025));
        assert!(!query("SENTBEFORE 2-Dec-2025").matches(&arrived_2_dec_2025));
        assert!(matches(&format!("LARGER {}", RAW.len() - 1)));
        assert!(!matches(&format!("LARGER {}", RAW.len())));
        assert!(matches(&format!("SMALLER {}", RAW.len() + 1)));
    }

    #[test]
    fn needs_follow_the_keys() {
        assert_eq!(query("SEEN 1:2").need(), Need::Flags);
        assert_eq!(query("UID 1:* NOT 2").need(), Need::Numbers);
        assert_eq!(query("OR RECENT ALL").need(), Need::Numbers);
        assert_eq!(query("SEEN KEYWORD x").need(), Need::Listing);
        assert_eq!(query("OR SEEN SENTON 1-Jan-2020").need(), Need::Summary);
        assert_eq!(query("FROM x").need(), Need::Summary);
        assert_eq!(query("HEADER From x").need(), Need::Bytes);
        assert_eq!(query("NOT BODY x").need(), Need::Bytes);
        assert!(query("NOT MODSEQ 3").uses_modseq());
    }

    #[test]
    fn recent_new_and_old_follow_the_sessions_recent_uids() {
        let mut recent = Ranges::NONE;
        recent.add(18, 20);
        let with = |text: &str, recent: &Ranges| {
            let summary = summarize_message(RAW);
            let q = Query::compile(
                &keys(text),
                Stars {
                    last_seq: 3,
                    last_uid: 30,
                    recent,
                    saved: None,
                },
            )
            .expect("compiles");
            let seen = Candidate::new(
                2,
                20,
                flag::SEEN,
                &[],
                1,
                0,
                1,
                Some(&summary.envelope),
                None,
            );
            let unseen = Candidate::new(3, 21, 0, &[], 1, 0, 1, Some(&summary.envelope), None);
            (q.matches(&seen), q.matches(&unseen))
        };
        assert_eq!(with("RECENT", &recent), (true, false));
        assert_eq!(with("OLD", &recent), (false, true));
        assert_eq!(with("NEW", &recent), (false, false));
        recent.add(21, 21);
        assert_eq!(with("NEW", &recent), (false, true));
        assert_eq!(with("NOT OLD", &recent), (true, true));
        assert_eq!(with("RECENT", &Ranges::NONE), (false, false));
    }

    #[test]
    fn ranges_added_merge_with_those_they_touch() {
        let mut r = Ranges::NONE;
        r.add(10, 12);
        r.add(1, 3);
        r.add(20, 25);
        assert_eq!(r.spans(), &[(1, 3), (10, 12), (20, 25)]);
        r.add(4, 9);
        assert_eq!(r.spans(), &[(1, 12), (20, 25)]);
        r.add(5, 5);
        r.add(13, 19);
        assert_eq!(r.spans(), &[(1, 25)]);
        r.add(30, 29);
        r.add(u32::MAX, u32::MAX);
        assert_eq!(r.spans(), &[(1, 25), (u32::MAX, u32::MAX)]);
        assert!(r.contains(25) && !r.contains(26) && r.contains(u32::MAX));
    }

    #[test]
    fn keys_are_capped_whatever_their_kind() {
        let none = Ranges::NONE;
        let stars = || Stars {
            last_seq: 1,
            last_uid: 1,
            recent: &none,
            saved: None,
        };
        let many = vec!["1:*"; KEYS_MAX + 1].join(" ");
        assert_eq!(
            Query::compile(&keys(&many), stars()),
            Err(SearchError::TooManyKeys)
        );
        let nested = format!("({})", vec!["(ALL)"; KEYS_MAX / 2].join(" "));
        assert_eq!(
            Query::compile(&keys(&nested), stars()),
            Err(SearchError::TooManyKeys)
        );
        let enough = vec!["1:*"; KEYS_MAX].join(" ");
        assert!(Query::compile(&keys(&enough), stars()).is_ok());
    }

    #[test]
    fn text_keys_are_capped() {
        let many = vec!["BODY x"; TEXT_KEYS_MAX + 1].join(" ");
        assert_eq!(
            Query::compile(
                &keys(&many),
                Stars {
                    last_seq: 1,
                    last_uid: 1,
                    recent: &Ranges::NONE,
                    saved: None,
                }
            ),
            Err(SearchError::TooManyTextKeys)
        );
        let enough = vec!["BODY x"; TEXT_KEYS_MAX].join(" ");
        assert!(
            Query::compile(
                &keys(&enough),
                Stars {
                    last_seq: 1,
                    last_uid: 1,
                    recent: &Ranges::NONE,
                    saved: None,
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn bounds_are_the_top_level_sets() {
        let q = query("UID 5:7 SEEN 1:2");
        let (seq, uid) = q.bounds();
        assert!(seq.is_some_and(|r| r.contains(2) && !r.contains(3)));
        assert!(uid.is_some_and(|r| r.contains(5) && !r.contains(8)));
        assert_eq!(query("OR UID 5 SEEN").bounds(), (None, None));
    }

    #[test]
    fn ranges_merge_and_star_names_the_last() {
        let r = Ranges::of(&SequenceSet::try_from("5:3,1,4:9,12,*").expect("set"), 20);
        assert_eq!(r, Ranges(vec![(1, 1), (3, 9), (12, 12), (20, 20)]));
        assert!(r.contains(20) && r.contains(3) && !r.contains(2) && !r.contains(13));
        assert_eq!(
            Ranges::of(&SequenceSet::try_from("*").expect("set"), 0),
            Ranges(vec![])
        );
    }
}
