//! SORT (RFC 5256) and SORT=DISPLAY (RFC 5957): each matched message's sort keys, and their order;
//! the base subject and sent date THREAD also uses.
//! Pure: the session hands in what the store listed of each message (with its stored envelope) and
//! gets the order back.

use std::cmp::Ordering;

use imap_types::extensions::sort::{SortCriterion, SortKey};

use super::thread::ThreadKeys;
use crate::summary::{Address, Envelope};

/// What a message is sorted by: its listing, and its envelope when a key needs it.
pub struct SortInput<'a> {
    pub seq: u32,
    pub uid: u32,
    pub arrival_micros: i64,
    pub size: u64,
    pub envelope: Option<&'a Envelope>,
}

/// One key's value. Texts are compared as their comparators say (RFC 5256 §2.2's i;ascii-casemap:
/// letters mapped to upper case, then octet by octet), so they are stored already mapped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyValue {
    Number(i64),
    Text(String),
}

/// A message ready to be put in order: its numbers and its keys, in the criteria's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sortable {
    pub seq: u32,
    pub uid: u32,
    keys: Vec<KeyValue>,
}

/// Whether any of the criteria reads the envelope (all but ARRIVAL and SIZE).
pub fn needs_envelope(criteria: &[SortCriterion]) -> bool {
    criteria
        .iter()
        .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Size))
}

impl Sortable {
    pub fn new(criteria: &[SortCriterion], m: &SortInput<'_>) -> Sortable {
        let keys = criteria.iter().map(|c| key_value(&c.key, m)).collect();
        Sortable {
            seq: m.seq,
            uid: m.uid,
            keys,
        }
    }
}

/// Every key a message can be sorted by, worked out once: what a cache keeps of it, so that sorting it
/// again reads and parses nothing. All of it is fixed for a message (its bytes never change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKeys {
    pub arrival_micros: i64,
    pub size: u64,
    pub sent_micros: i64,
    subject: std::sync::Arc<str>,
    from: Box<str>,
    to: Box<str>,
    cc: Box<str>,
    display_from: Box<str>,
    display_to: Box<str>,
    /// What THREAD=REFERENCES reads too, when it was read.
    pub thread: Option<Box<ThreadKeys>>,
}

impl SortKeys {
    pub fn new(m: &SortInput<'_>) -> SortKeys {
        let text = |key| match key_value(&key, m) {
            KeyValue::Text(t) => t.into_boxed_str(),
            KeyValue::Number(_) => unreachable!("a text key"),
        };
        SortKeys {
            arrival_micros: m.arrival_micros,
            size: m.size,
            sent_micros: sent_date(m),
            subject: text(SortKey::Subject).into(),
            from: text(SortKey::From),
            to: text(SortKey::To),
            cc: text(SortKey::Cc),
            display_from: text(SortKey::DisplayFrom),
            display_to: text(SortKey::DisplayTo),
            thread: None,
        }
    }

    /// The same, with what THREAD=REFERENCES reads.
    pub fn with_thread(mut self, thread: ThreadKeys) -> SortKeys {
        self.thread = Some(Box::new(thread));
        self
    }

    /// Bytes it holds, roughly: what a cache of them costs.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.subject.len()
            + 16
            + [
                &self.from,
                &self.to,
                &self.cc,
                &self.display_from,
                &self.display_to,
            ]
            .iter()
            .map(|t| t.len())
            .sum::<usize>()
            + self
                .thread
                .as_ref()
                .map_or(0, |t| std::mem::size_of::<ThreadKeys>() + t.bytes())
    }

    /// The base subject, upper-cased (SUBJECT's key, and THREAD's), shared.
    pub fn subject_shared(&self) -> std::sync::Arc<str> {
        self.subject.clone()
    }

    fn value(&self, key: &SortKey) -> KeyValue {
        let text = |t: &str| KeyValue::Text(t.to_string());
        match key {
            SortKey::Arrival => KeyValue::Number(self.arrival_micros),
            SortKey::Size => KeyValue::Number(i64::try_from(self.size).unwrap_or(i64::MAX)),
            SortKey::Date => KeyValue::Number(self.sent_micros),
            SortKey::From => text(&self.from),
            SortKey::To => text(&self.to),
            SortKey::Cc => text(&self.cc),
            SortKey::Subject => text(&self.subject),
            SortKey::DisplayFrom => text(&self.display_from),
            SortKey::DisplayTo => text(&self.display_to),
        }
    }
}

impl Sortable {
    /// What [`Sortable::new`] makes of the message whose keys are `keys`.
    pub fn from_keys(criteria: &[SortCriterion], seq: u32, uid: u32, keys: &SortKeys) -> Sortable {
        Sortable {
            seq,
            uid,
            keys: criteria.iter().map(|c| keys.value(&c.key)).collect(),
        }
    }
}

/// Puts messages in the criteria's order; messages equal on every key stay in sequence-number order
/// (RFC 5256 §3).
pub fn order(criteria: &[SortCriterion], messages: &mut [Sortable]) {
    messages.sort_by(|a, b| {
        for (i, criterion) in criteria.iter().enumerate() {
            let by = a.keys[i].cmp(&b.keys[i]);
            let by = if criterion.reverse { by.reverse() } else { by };
            if by != Ordering::Equal {
                return by;
            }
        }
        a.seq.cmp(&b.seq)
    });
}

/// The sent date (RFC 5256 §2.2), in microseconds: the Date header's instant, or without one that
/// parses, the arrival time.
pub fn sent_date(m: &SortInput<'_>) -> i64 {
    m.envelope
        .and_then(|e| e.date.as_deref())
        .and_then(mail_parser::DateTime::parse_rfc822)
        .filter(|d| d.is_valid())
        .map(|d| d.to_timestamp().saturating_mul(1_000_000))
        .unwrap_or(m.arrival_micros)
}

fn key_value(key: &SortKey, m: &SortInput<'_>) -> KeyValue {
    let envelope = m.envelope;
    let first_mailbox = |pick: fn(&Envelope) -> &[Address]| {
        let first = envelope.and_then(|e| pick(e).iter().find(|a| a.host.is_some()));
        KeyValue::Text(
            first
                .and_then(|a| a.mailbox.as_deref())
                .unwrap_or("")
                .to_ascii_uppercase(),
        )
    };
    let display = |pick: fn(&Envelope) -> &[Address]| {
        let first = envelope.and_then(|e| pick(e).iter().find(|a| a.host.is_some()));
        KeyValue::Text(first.map(display_name).unwrap_or_default().to_uppercase())
    };
    match key {
        SortKey::Arrival => KeyValue::Number(m.arrival_micros),
        SortKey::Size => KeyValue::Number(i64::try_from(m.size).unwrap_or(i64::MAX)),
        SortKey::Date => KeyValue::Number(sent_date(m)),
        SortKey::From => first_mailbox(|e| &e.from),
        SortKey::To => first_mailbox(|e| &e.to),
        SortKey::Cc => first_mailbox(|e| &e.cc),
        SortKey::Subject => KeyValue::Text(
            base_subject(envelope.and_then(|e| e.subject.as_deref()).unwrap_or(""))
                .to_ascii_uppercase(),
        ),
        SortKey::DisplayFrom => display(|e| &e.from),
        SortKey::DisplayTo => display(|e| &e.to),
    }
}

/// RFC 5957 §2: the display name, decoded, when it is not empty; else the address itself.
fn display_name(a: &Address) -> String {
    let name = a
        .name
        .as_deref()
        .map(super::search::decoded_words)
        .unwrap_or_default();
    if name.trim().is_empty() {
        format!(
            "{}@{}",
            a.mailbox.as_deref().unwrap_or(""),
            a.host.as_deref().unwrap_or("")
        )
    } else {
        name
    }
}

/// The base subject (RFC 5256 §2.1): the subject without the `Re:`, `Fwd:`, `[list]` and `(fwd)`
/// that replies and forwards add, decoded, its white space collapsed. Linear in the subject's length
/// (the subject is a stranger's text): each step only moves the ends of one slice.
pub fn base_subject(raw: &str) -> String {
    base_subject_and_reply(raw).0
}

/// [`base_subject`], and whether the subject marked a reply or forward: it had a `Re:`, `Fwd:`,
/// `(fwd)` or `[fwd: ...]` taken off (RFC 5256 §3, REFERENCES step 5).
pub fn base_subject_and_reply(raw: &str) -> (String, bool) {
    let mut reply = false;
    // (1) Decoded, white space runs made one space.
    let decoded = super::search::decoded_words(raw);
    let normalized: String = decoded
        .split([' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut s = normalized.as_str();
    loop {
        // (2) Trailing "(fwd)" and white space.
        loop {
            s = s.trim_end_matches([' ', '\t']);
            let tail = s.len().checked_sub(5).and_then(|at| s.get(at..));
            if tail.is_some_and(|t| t.eq_ignore_ascii_case("(fwd)")) {
                s = &s[..s.len() - 5];
                reply = true;
            } else {
                break;
            }
        }
        // (3)-(5) Leading "Re:", "Fw:", "Fwd:" (each with blobs before it and one inside), white
        // space, and a leading blob that leaves something behind.
        loop {
            let mut changed = false;
            while let Some((rest, refwd)) = strip_leader(s) {
                s = rest;
                reply |= refwd;
                changed = true;
            }
            // A blob no "Re:" follows: strip_leader walked the blobs that follow it too and found none
            // after any of them, so they go at once, the last kept if nothing comes after it.
            while let Some(rest) = strip_blob(s)
                && !rest.is_empty()
            {
                s = rest;
                changed = true;
            }
            if !changed {
                break;
            }
        }
        // (6) "[fwd: ...]" around it all: unwrapped, and again from (2).
        if s.len() >= 6
            && s.get(..5).is_some_and(|h| h.eq_ignore_ascii_case("[fwd:"))
            && s.ends_with(']')
        {
            s = &s[5..s.len() - 1];
            reply = true;
            continue;
        }
        return (s.to_string(), reply);
    }
}

/// subj-leader: `*subj-blob subj-refwd`, or white space; and whether it was the former.
fn strip_leader(s: &str) -> Option<(&str, bool)> {
    if s.starts_with([' ', '\t']) {
        return Some((s.trim_start_matches([' ', '\t']), false));
    }
    let mut rest = s;
    loop {
        if let Some(after) = strip_refwd(rest) {
            return Some((after, true));
        }
        rest = strip_blob(rest)?;
    }
}

/// subj-refwd: `("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`.
fn strip_refwd(s: &str) -> Option<&str> {
    let lower = s.get(..3).unwrap_or(s).to_ascii_lowercase();
    let word = ["fwd", "fw", "re"]
        .into_iter()
        .find(|w| lower.starts_with(w))?;
    let mut rest = s[word.len()..].trim_start_matches([' ', '\t']);
    if let Some(after) = strip_blob(rest) {
        rest = after;
    }
    rest.strip_prefix(':')
}

/// subj-blob: `"[" *BLOBCHAR "]" *WSP`, BLOBCHAR being anything but `[` and `]`.
fn strip_blob(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let close = inner.find([']', '['])?;
    if inner.as_bytes()[close] != b']' {
        return None;
    }
    Some(inner[close + 1..].trim_start_matches([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_subjects_of_leaders_and_blobs_cost_their_length() {
        // Quadratic work here would take minutes; linear takes milliseconds.
        let many = "[x] ".repeat(200_000) + "y";
        assert_eq!(base_subject(&many), "y");
        let replies = "Re: ".repeat(200_000) + "z (fwd)".repeat(100_000).as_str();
        assert!(base_subject(&replies).starts_with("z (fwd)z"));
        let blobs_only = "[a]".repeat(200_000);
        assert_eq!(base_subject(&blobs_only), "[a]");
        let nested = "[fwd:".repeat(100_000) + "w" + &"]".repeat(100_000);
        assert_eq!(base_subject(&nested), "w");
    }

    #[test]
    fn base_subjects_as_rfc_5256_makes_them() {
        for (subject, base) in [
            ("Hello", "Hello"),
            ("Re: Hello", "Hello"),
            ("RE:   re: Fwd: Hello", "Hello"),
            ("Re[2]: Hello", "Hello"),
            ("[list] Re: Hello (fwd)", "Hello"),
            ("Hello (fwd) (FWD)  ", "Hello"),
            ("[fwd: Re: Hello]", "Hello"),
            ("[Fwd: [list] Hello (fwd)]", "Hello"),
            ("[only a blob]", "[only a blob]"),
            ("Fw : Hello", "Hello"),
            ("Ref: Hello", "Ref: Hello"),
            ("Hello\t  world", "Hello world"),
            ("=?UTF-8?Q?Re=3A_Gr=C3=BC=C3=9Fe?=", "Grüße"),
            ("", ""),
            ("Re:", ""),
            ("[a][b] Re: x", "x"),
            ("Grüße (fwd)", "Grüße"),
            ("ßßßß", "ßßßß"),
            ("[fwd:ß]", "ß"),
            ("ré: x", "ré: x"),
            ("fwß: x", "fwß: x"),
            ("[é] ü", "ü"),
        ] {
            assert_eq!(base_subject(subject), base, "{subject:?}");
        }
    }

    fn criteria(text: &str) -> Vec<SortCriterion> {
        text.split_whitespace()
            .fold((Vec::new(), false), |(mut out, reverse), word| {
                let key = match word {
                    "REVERSE" => return (out, true),
                    "ARRIVAL" => SortKey::Arrival,
                    "SIZE" => SortKey::Size,
                    "DATE" => SortKey::Date,
                    "FROM" => SortKey::From,
                    "SUBJECT" => SortKey::Subject,
                    "DISPLAYFROM" => SortKey::DisplayFrom,
                    other => panic!("{other}"),
                };
                out.push(SortCriterion { reverse, key });
                (out, false)
            })
            .0
    }

    fn sorted(keys: &str, messages: &[(u64, Option<&str>, &str)]) -> Vec<u32> {
        let criteria = criteria(keys);
        let envelopes: Vec<Envelope> = messages
            .iter()
            .map(|(_, date, from)| {
                let raw = format!(
                    "From: {from}\r\nSubject: s\r\n{}\r\n",
                    date.map(|d| format!("Date: {d}\r\n")).unwrap_or_default()
                );
                crate::summary::summarize_message(raw.as_bytes()).envelope
            })
            .collect();
        let mut all: Vec<Sortable> = messages
            .iter()
            .enumerate()
            .map(|(i, (size, ..))| {
                Sortable::new(
                    &criteria,
                    &SortInput {
                        seq: i as u32 + 1,
                        uid: i as u32 + 10,
                        arrival_micros: 1_000_000 * (10 - i as i64),
                        size: *size,
                        envelope: Some(&envelopes[i]),
                    },
                )
            })
            .collect();
        order(&criteria, &mut all);
        all.iter().map(|s| s.seq).collect()
    }

    #[test]
    fn keys_reverse_and_ties_in_sequence_order() {
        let messages = [
            (30, Some("Mon, 1 Jan 2024 10:00:00 +0000"), "bob@x"),
            (10, Some("Mon, 1 Jan 2024 12:00:00 +0300"), "Zed <alice@y>"),
            (20, None, "Ann <carol@z>"),
            (10, Some("not a date"), "_x@z"),
        ];
        assert_eq!(sorted("SIZE", &messages), [2, 4, 3, 1]);
        assert_eq!(sorted("REVERSE SIZE", &messages), [1, 3, 2, 4]);
        assert_eq!(sorted("ARRIVAL", &messages), [4, 3, 2, 1]);
        // 12:00 +0300 is before 10:00 UTC; no date or a bad one: the arrival time (seconds 8 and 7).
        assert_eq!(sorted("DATE", &messages), [4, 3, 2, 1]);
        // Mailbox parts, upper-cased: ALICE < BOB < CAROL < _X.
        assert_eq!(sorted("FROM", &messages), [2, 1, 3, 4]);
        // Display names, else the address: ANN < BOB@X < ZED < _X@Z.
        assert_eq!(sorted("DISPLAYFROM", &messages), [3, 1, 2, 4]);
        assert_eq!(sorted("SUBJECT SIZE", &messages), [2, 4, 3, 1]);
        assert_eq!(sorted("SUBJECT", &messages), [1, 2, 3, 4]);
    }

    #[test]
    fn kept_keys_sort_as_the_envelope_does() {
        let raw = b"From: Zed <alice@y>\r\nTo: =?utf-8?q?J=C3=B6rg?= <j@x>\r\nCc: c@z\r\n\
                    Subject: Re: [list] Hello\r\nDate: Mon, 1 Jan 2024 12:00:00 +0300\r\n\r\n";
        let envelope = crate::summary::summarize_message(raw).envelope;
        let input = SortInput {
            seq: 3,
            uid: 7,
            arrival_micros: 5,
            size: 99,
            envelope: Some(&envelope),
        };
        let keys = SortKeys::new(&input);
        let all = criteria("ARRIVAL SIZE DATE FROM SUBJECT DISPLAYFROM");
        let mut every = all.clone();
        for key in [SortKey::To, SortKey::Cc, SortKey::DisplayTo] {
            every.push(SortCriterion {
                reverse: false,
                key,
            });
        }
        assert_eq!(
            Sortable::from_keys(&every, 3, 7, &keys),
            Sortable::new(&every, &input)
        );
        assert!(keys.bytes() > std::mem::size_of::<SortKeys>());
    }
}
