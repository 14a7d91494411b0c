//! The rules of the mail model that are not SQL: mailbox names, keywords, quota arithmetic. Every backend
//! calls these, inside its transaction where a rule depends on stored state, so a second backend writes
//! only its queries.

use super::{Changes, FlagOp, FlagUpdate, Flags, MessageFlags, MessageMeta, StoreError, flags};

/// The hierarchy separator of mailbox names (IMAP's delimiter, JMAP's parent chain).
pub const SEPARATOR: char = '/';
/// Longest mailbox name in bytes, all levels together. IMAP clients put names in one command line, and a
/// name is a key in every mailbox lookup.
pub const MAILBOX_NAME_BYTES_MAX: usize = 512;
/// Deepest hierarchy. Renaming a mailbox renames each descendant; this bounds the prefix arithmetic.
pub const MAILBOX_DEPTH_MAX: usize = 32;
/// Longest keyword in bytes. Keywords are stored with every message that carries one.
pub const KEYWORD_BYTES_MAX: usize = 128;
/// Senders an account's automatic reply remembers having answered within its interval (one row each).
/// Past it, no one new is answered until the oldest are forgotten: a flood of forged senders costs at
/// most this many replies and rows per account per interval.
pub const VACATION_SENDERS_MAX: i64 = 10_000;

/// JMAP EmailSubmissions an account keeps after sending (its latest; one row each, up to a few KB).
pub const SUBMISSIONS_KEPT_MAX: i64 = 200;
/// How long a kept submission lasts at least before a newer one's storing may drop it (RFC 8621 §7:
/// the server may delete them after a while).
pub const SUBMISSION_KEPT_MICROS: i64 = 7 * 86_400 * 1_000_000;

/// A mailbox name made canonical: `INBOX` in any case (as a whole or as the first level) is `INBOX`, as
/// IMAP requires; anything else is kept as given. Refuses names no client could use safely: empty levels,
/// control characters, IMAP's wildcards `*` and `%`, a leading or trailing separator, over-long names.
pub fn mailbox_name(name: &str) -> Result<String, StoreError> {
    let bad = |why: &'static str| Err(StoreError::BadMailboxName(why));
    if name.is_empty() {
        return bad("a mailbox name cannot be empty");
    }
    if name.len() > MAILBOX_NAME_BYTES_MAX {
        return bad("a mailbox name is at most 512 bytes");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("a mailbox name cannot contain control characters");
    }
    if name.contains(['*', '%']) {
        return bad("a mailbox name cannot contain * or %");
    }
    let levels: Vec<&str> = name.split(SEPARATOR).collect();
    if levels.iter().any(|l| l.is_empty()) {
        return bad("a mailbox name cannot have an empty level (// or a / at either end)");
    }
    if levels.len() > MAILBOX_DEPTH_MAX {
        return bad("a mailbox name has at most 32 levels");
    }
    if levels[0].eq_ignore_ascii_case("INBOX") {
        let rest = &name[levels[0].len()..];
        return Ok(format!("INBOX{rest}"));
    }
    Ok(name.to_string())
}

/// Every ancestor of a (canonical) name, outermost first: `a/b/c` gives `a`, `a/b`.
pub fn ancestors(name: &str) -> Vec<&str> {
    name.match_indices(SEPARATOR)
        .map(|(i, _)| &name[..i])
        .collect()
}

/// `name` renamed when its ancestor (or itself) `from` becomes `to`; `None` when `from` is neither.
pub fn renamed(name: &str, from: &str, to: &str) -> Option<String> {
    if name == from {
        return Some(to.to_string());
    }
    let rest = name.strip_prefix(from)?.strip_prefix(SEPARATOR)?;
    Some(format!("{to}{SEPARATOR}{rest}"))
}

/// A keyword as IMAP allows it (an atom, not starting with `\`, which marks system flags) and JMAP too.
/// Keywords are case-insensitive in IMAP; they are kept as first given and compared as stored.
pub fn keyword(word: &str) -> Result<(), StoreError> {
    let ok = !word.is_empty()
        && word.len() <= KEYWORD_BYTES_MAX
        && !word.starts_with('\\')
        && word.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        });
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadKeyword(word.chars().take(64).collect()))
    }
}

/// Keywords are matched without regard to ASCII case, as IMAP compares flags and JMAP (which shows them in
/// lower case) expects: `$Forwarded` and `$forwarded` are one keyword. A mailbox keeps the spelling it
/// saw first.
pub fn same_keyword(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Sorts keywords (by their lower-case form) and drops repeats in any case, keeping the first spelling.
pub fn sort_keywords(keywords: &mut Vec<String>) {
    keywords.sort_by_cached_key(|k| k.to_ascii_lowercase());
    keywords.dedup_by(|a, b| same_keyword(a, b));
}

/// Keywords as stored: sorted, without repeats, space-separated.
pub fn join_keywords(keywords: &[String]) -> String {
    keywords.join(" ")
}

pub fn split_keywords(stored: &str) -> Vec<String> {
    stored.split_whitespace().map(str::to_string).collect()
}

/// Flags made canonical: only known system bits, keywords valid, sorted and without repeats.
pub fn canonical(mut f: Flags) -> Result<Flags, StoreError> {
    for k in &f.keywords {
        keyword(k)?;
    }
    sort_keywords(&mut f.keywords);
    f.system &= flags::ALL;
    Ok(f)
}

/// A message's flags after a flag update `op` with `given`.
pub fn flags_after(old: &Flags, op: FlagOp, given: &Flags) -> Flags {
    match op {
        FlagOp::Replace => given.clone(),
        FlagOp::Add => {
            // The message's own spelling of a keyword it has stays; sort_keywords keeps the first.
            let mut keywords = old.keywords.clone();
            keywords.extend(given.keywords.iter().cloned());
            sort_keywords(&mut keywords);
            Flags {
                system: old.system | given.system,
                keywords,
            }
        }
        FlagOp::Remove => Flags {
            system: old.system & !given.system,
            keywords: old
                .keywords
                .iter()
                .filter(|k| !given.keywords.iter().any(|g| same_keyword(g, k)))
                .cloned()
                .collect(),
        },
    }
}

/// UIDs sorted, without repeats: every write walks them in this order (and so takes row locks in it).
pub fn sorted_uids(uids: &[u32]) -> Vec<u32> {
    let mut v = uids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// How many UIDs below UIDNEXT a known start ([`crate::store::Since::stored_from`]) may lie and still be
/// taken without a search: listing from it reads at most this many rows that turn out old.
const HINT_TAKEN_WITHIN: u32 = 64;

/// Finds where a mailbox's mail stored after a modseq begins, so that listing it needs no modseq index.
/// Every message keeps the modseq it was stored with (`created_modseq`; 0 for mail from before it was
/// kept), and those never fall as UIDs rise: a delivery, append, copy or move takes the mailbox's next UID
/// and next modseq together. So the last message at or before a UID tells on which side of the start that
/// UID lies. The search gallops down from the newest message, then bisects: what is new is usually a few
/// messages at the end (one probe when nothing is, two when one is, about 2 log2(n) for n new), a run of
/// expunged UIDs is crossed in one step, and it takes at most about 64 probes whatever the mailbox. Pure:
/// a backend runs each [`FirstNewUid::probe`] as one index seek.
#[derive(Debug, Clone, Copy)]
pub struct FirstNewUid {
    /// Every message below `lo` is old.
    lo: u32,
    /// The message at `hi`, if any, and every one above it is new.
    hi: u32,
    since: u64,
    /// While galloping, how far below `hi` the next probe lies; 0 once bisecting.
    step: u32,
    probed: bool,
}

impl FirstNewUid {
    /// Mail stored after modseq `since`, in a mailbox whose next UID is `uid_next`, where no message below
    /// `stored_from` is new (see [`crate::store::Since`]; 0 when unknown).
    pub fn new(since: u64, uid_next: u32, stored_from: u32) -> FirstNewUid {
        let lo = stored_from.min(uid_next);
        // A start known to lie a few UIDs from the end is taken as it is: the few old rows the listing
        // may then read cost less than a probe (an idler told of one new message probes nothing).
        let hi = if stored_from > 0 && uid_next - lo <= HINT_TAKEN_WITHIN {
            lo
        } else {
            uid_next
        };
        FirstNewUid {
            lo,
            hi,
            since,
            step: 1,
            probed: false,
        }
    }

    /// The UID to look at next (the last message at or before it), or `None` once [`Self::start`] is
    /// known. The first probe finds the newest message.
    pub fn probe(&self) -> Option<u32> {
        if self.lo >= self.hi {
            return None;
        }
        Some(match self.step {
            0 => self.lo + (self.hi - self.lo) / 2,
            step => self.hi.saturating_sub(step).max(self.lo),
        })
    }

    /// What the probe at `at` found: the last message at or before it, `(uid, created_modseq)`, if any.
    pub fn found(&mut self, at: u32, last: Option<(u32, u64)>) {
        match last {
            // Stored after `since`: the start is at or below it (and nothing lies between it and `at`).
            Some((uid, created)) if created > self.since => {
                self.hi = uid.clamp(self.lo, self.hi);
                // The first probe found the newest message: the next looks just below it, and each
                // after that twice as far.
                self.step = match self.probed {
                    false => 1,
                    true => self.step.saturating_mul(2),
                };
            }
            // Old, or no message at all up to `at`: everything up to `at` is old; bisect what is left.
            _ => {
                self.lo = at.saturating_add(1).min(self.hi);
                self.step = 0;
            }
        }
        self.probed = true;
    }

    /// Every message from this UID on was stored after `since`; none before it was.
    pub fn start(&self) -> u32 {
        self.lo
    }
}

/// The `fetch` changes with the lowest modseqs, in modseq order, from the two ways a mailbox finds them:
/// `changed`, messages whose modseq moved on since they were stored (from the modseq index, in modseq
/// order), and `stored`, messages stored after the point asked about and unchanged since (from the UID
/// key, in UID order, which is their modseq order). No message is in both.
pub fn merge_changed_and_stored(
    changed: Vec<MessageMeta>,
    stored: Vec<MessageMeta>,
    fetch: usize,
) -> Vec<MessageMeta> {
    let mut all = changed;
    all.extend(stored);
    all.sort_by_key(|m| m.modseq);
    all.truncate(fetch);
    all
}

/// Where a change-log read stood: the mailbox's highest modseq and UIDNEXT in its snapshot, and where
/// the mail stored after the point asked about begins ([`FirstNewUid::start`]).
#[derive(Debug, Clone, Copy)]
pub struct ReadAt {
    pub highest_modseq: u64,
    pub uid_next: u32,
    pub new_from: u32,
}

impl ReadAt {
    /// A snapshot at `highest_modseq` with nothing stored after the point asked about yet known.
    pub fn nothing_new(highest_modseq: u64, uid_next: u32) -> ReadAt {
        ReadAt {
            highest_modseq,
            uid_next,
            new_from: uid_next,
        }
    }

    /// The same snapshot, with mail stored after the point asked about beginning at `new_from`.
    pub fn new_from(self, new_from: u32) -> ReadAt {
        ReadAt { new_from, ..self }
    }
}

/// Merges a mailbox's changed messages and its tombstones (each `(uid, modseq, blob)`, oldest first,
/// read in one snapshot with up to `limit + 1` of each) into one answer of the `limit` oldest changes;
/// `through_modseq` is then the newest one kept, or the mailbox's highest when all fit.
pub fn merge_changes(
    mut messages: Vec<MessageMeta>,
    mut gone: Vec<(u32, u64, Option<i64>)>,
    at: ReadAt,
    limit: usize,
) -> Changes {
    let all_fit = messages.len() + gone.len() <= limit;
    let (through, more, stored_from) = if all_fit {
        // Everything stored up to the highest modseq lies below UIDNEXT.
        (at.highest_modseq, false, at.uid_next)
    } else {
        let mut modseqs: Vec<u64> = messages
            .iter()
            .map(|m| m.modseq)
            .chain(gone.iter().map(|g| g.1))
            .collect();
        modseqs.sort_unstable();
        let through = modseqs[limit - 1];
        messages.retain(|m| m.modseq <= through);
        gone.retain(|g| g.1 <= through);
        // Mail stored after `through` was stored after the point asked about too.
        (through, true, at.new_from)
    };
    Changes {
        messages,
        gone_blobs: gone.iter().map(|g| g.2).collect(),
        gone: gone.into_iter().map(|g| g.0).collect(),
        through_modseq: through,
        more,
        stored_from,
    }
}

/// What a flag update does, worked out from the messages' flags as stored (`present`: UID, flags, modseq,
/// in UID order) before any is written: which are refused (changed after `unchanged_since`), which
/// already are as asked, and which change to what, with the change in the mailbox's unseen count.
pub struct FlagPlan {
    pub update: FlagUpdate,
    /// (UID, new flags), in UID order: each takes the next modseq.
    pub changes: Vec<(u32, Flags)>,
    pub unseen_delta: i64,
}

pub fn plan_flags(
    present: impl IntoIterator<Item = (u32, Flags, u64)>,
    op: FlagOp,
    given: &Flags,
    unchanged_since: Option<u64>,
) -> FlagPlan {
    let mut plan = FlagPlan {
        update: FlagUpdate::default(),
        changes: Vec::new(),
        unseen_delta: 0,
    };
    let seen = |f: &Flags| i64::from(f.system & flags::SEEN != 0);
    for (uid, old, old_modseq) in present {
        if unchanged_since.is_some_and(|since| old_modseq > since) {
            plan.update.refused.push(uid);
            continue;
        }
        let new = flags_after(&old, op, given);
        if new == old {
            plan.update.unchanged.push(MessageFlags {
                uid,
                modseq: old_modseq,
                flags: old,
            });
            continue;
        }
        plan.unseen_delta += seen(&old) - seen(&new);
        plan.changes.push((uid, new));
    }
    plan
}

/// Whether an account whose usage after a change is `after` (its stored counts, the change included)
/// stays within `quota`; the change added `bytes` and `messages` (negative: took away).
pub fn within_quota(quota: Quota, after: (i64, i64), bytes: i64, messages: i64) -> bool {
    let before = Usage {
        bytes: (after.0 - bytes).max(0) as u64,
        messages: (after.1 - messages).max(0) as u64,
    };
    let adding = Usage {
        bytes: bytes.max(0) as u64,
        messages: messages.max(0) as u64,
    };
    quota.admits(before, adding)
}

/// Bytes and messages: an account's usage, or what an operation adds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub messages: u64,
}

/// The most an account may hold; `None` on either side means no limit on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub bytes: Option<u64>,
    pub messages: Option<u64>,
}

impl Quota {
    /// Whether an account using `usage` may take `adding` more. Saturating: no stored value can overflow
    /// the check into a yes.
    pub fn admits(&self, usage: Usage, adding: Usage) -> bool {
        let fits = |limit: Option<u64>, used: u64, more: u64| {
            limit.is_none_or(|limit| used.saturating_add(more) <= limit)
        };
        fits(self.bytes, usage.bytes, adding.bytes)
            && fits(self.messages, usage.messages, adding.messages)
    }

    /// A user's own setting where there is one, else the server's default.
    pub fn or_default(own: (Option<i64>, Option<i64>), default: Quota) -> Quota {
        // Stored as -1 for "no limit" set explicitly, NULL for "the default".
        let pick = |own: Option<i64>, default: Option<u64>| match own {
            None => default,
            Some(n) if n < 0 => None,
            Some(n) => Some(n as u64),
        };
        Quota {
            bytes: pick(own.0, default.bytes),
            messages: pick(own.1, default.messages),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the bisection over a mailbox of `(uid, created_modseq)`, as a backend would.
    fn start_of(mailbox: &[(u32, u64)], since: u64, uid_next: u32) -> (u32, usize) {
        start_knowing(mailbox, since, uid_next, 0)
    }

    fn start_knowing(
        mailbox: &[(u32, u64)],
        since: u64,
        uid_next: u32,
        stored_from: u32,
    ) -> (u32, usize) {
        let mut search = FirstNewUid::new(since, uid_next, stored_from);
        let mut probes = 0;
        while let Some(at) = search.probe() {
            probes += 1;
            search.found(at, mailbox.iter().rev().copied().find(|m| m.0 <= at));
        }
        (search.start(), probes)
    }

    #[test]
    fn the_first_new_uid_is_found_in_a_few_probes() {
        // Mail from before created modseqs were kept (0), then stored mail with gaps from expunges.
        let mailbox = [(1, 0), (2, 0), (4, 5), (6, 7), (7, 9)];
        let first = |since| {
            let (start, _) = start_of(&mailbox, since, 8);
            mailbox.iter().find(|m| m.0 >= start).map(|m| m.0)
        };
        assert_eq!(first(0), Some(4));
        assert_eq!(first(5), Some(6));
        assert_eq!(first(6), Some(6));
        assert_eq!(first(8), Some(7));
        assert_eq!(first(9), None);
        assert_eq!(start_of(&[], 3, 1), (1, 1), "an empty mailbox");
        let big: Vec<(u32, u64)> = (1..=100_000).map(|u| (u, u64::from(u) + 10)).collect();
        let (start, probes) = start_of(&big, 99_990, 100_001);
        assert_eq!(start, 99_981);
        assert!(
            probes <= 10,
            "{probes} probes for 30 new of 100,000 messages"
        );
        assert_eq!(
            start_of(&big, 100_010, 100_001),
            (100_001, 1),
            "nothing new: one probe"
        );
        assert_eq!(
            start_of(&big, 100_009, 100_001),
            (100_000, 2),
            "one new: two probes"
        );
        // A run of expunged UIDs between the old mail and the new is crossed in one probe.
        let gap = [(1, 3), (2, 4), (9_000, 9), (9_001, 10)];
        assert_eq!(start_of(&gap, 8, 9_002), (9_000, 4));
        let (start, probes) = start_of(&big, 10, 100_001);
        assert_eq!(start, 1, "all new");
        assert!(probes <= 40, "{probes} probes when all 100,000 are new");
        for since in [0, 11, 500, 5_000, 77_777, 99_999] {
            let (start, probes) = start_of(&big, since, 100_001);
            let first = big.iter().find(|m| m.0 >= start).map(|m| m.1);
            assert!(first.is_none_or(|c| c > since), "since {since}");
            assert!(
                start <= 1 || big[start as usize - 2].1 <= since,
                "since {since}"
            );
            assert!(probes <= 40, "{probes} probes, since {since}");
        }
    }

    #[test]
    fn a_known_start_spares_the_search() {
        let big: Vec<(u32, u64)> = (1..=100_000).map(|u| (u, u64::from(u) + 10)).collect();
        // An idler that read through modseq 100,009 (UIDNEXT 100,000 then), told of one new message.
        assert_eq!(start_knowing(&big, 100_009, 100_001, 100_000), (100_000, 0));
        // Nothing new, or a start given above UIDNEXT: nothing to list.
        assert_eq!(start_knowing(&big, 100_010, 100_001, 100_001), (100_001, 0));
        assert_eq!(
            start_knowing(&big, 100_010, 100_001, u32::MAX),
            (100_001, 0)
        );
        // A start a little low is taken as it is (the listing skips the few old rows)...
        let (start, probes) = start_knowing(&big, 100_009, 100_001, 100_001 - HINT_TAKEN_WITHIN);
        assert_eq!((start, probes), (100_001 - HINT_TAKEN_WITHIN, 0));
        // ...one far below bounds the search, which finds the same start as without it.
        for known in [1, 50_000, 99_000, 99_900] {
            let (start, probes) = start_knowing(&big, 99_990, 100_001, known);
            assert_eq!(start, 99_981, "knowing {known}");
            assert!(probes <= 10, "{probes} probes knowing {known}");
        }
    }

    #[test]
    fn keywords_sort_and_repeat_in_any_case() {
        let mut k: Vec<String> = ["NonJunk", "$forwarded", "nonjunk", "$Forwarded", "a"]
            .map(String::from)
            .to_vec();
        sort_keywords(&mut k);
        assert_eq!(k, ["$forwarded", "a", "NonJunk"]);
        assert!(same_keyword("$MDNSent", "$mdnsent"));
        assert!(!same_keyword("Junk", "NonJunk"));
    }

    #[test]
    fn inbox_is_canonical_in_any_case_and_other_names_are_kept() {
        assert_eq!(mailbox_name("inbox").unwrap(), "INBOX");
        assert_eq!(mailbox_name("InBox/Sub").unwrap(), "INBOX/Sub");
        assert_eq!(mailbox_name("Inboxes").unwrap(), "Inboxes");
        assert_eq!(mailbox_name("Résumés/2026").unwrap(), "Résumés/2026");
        for bad in ["", "/a", "a/", "a//b", "a*", "b%", "a\tb", "x\u{7f}"] {
            assert!(mailbox_name(bad).is_err(), "{bad:?}");
        }
        assert!(mailbox_name("a/".repeat(32).trim_end_matches('/')).is_ok());
        assert!(mailbox_name("a/".repeat(33).trim_end_matches('/')).is_err());
        assert!(mailbox_name(&"x".repeat(513)).is_err());
    }

    #[test]
    fn renames_move_descendants_only() {
        assert_eq!(renamed("a", "a", "b").as_deref(), Some("b"));
        assert_eq!(renamed("a/x/y", "a", "b/c").as_deref(), Some("b/c/x/y"));
        assert_eq!(renamed("ab", "a", "b"), None);
        assert_eq!(ancestors("a/b/c"), vec!["a", "a/b"]);
        assert!(ancestors("a").is_empty());
    }

    #[test]
    fn keywords_are_atoms_not_system_flags() {
        assert!(keyword("$Forwarded").is_ok());
        assert!(keyword("NonJunk").is_ok());
        for bad in [
            "",
            "\\Seen",
            "a b",
            "a(",
            "a]",
            "é",
            "a\"",
            &"k".repeat(129),
        ] {
            assert!(keyword(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quotas_admit_up_to_the_limit_and_never_overflow() {
        let q = Quota {
            bytes: Some(100),
            messages: Some(2),
        };
        let used = Usage {
            bytes: 60,
            messages: 1,
        };
        assert!(q.admits(
            used,
            Usage {
                bytes: 40,
                messages: 1
            }
        ));
        assert!(!q.admits(
            used,
            Usage {
                bytes: 41,
                messages: 1
            }
        ));
        assert!(!q.admits(
            used,
            Usage {
                bytes: 1,
                messages: 2
            }
        ));
        assert!(!q.admits(
            Usage {
                bytes: u64::MAX,
                messages: 0
            },
            Usage {
                bytes: u64::MAX,
                messages: 0
            }
        ));
        assert!(Quota::default().admits(
            used,
            Usage {
                bytes: u64::MAX,
                messages: u64::MAX
            }
        ));
        let d = Quota {
            bytes: Some(5),
            messages: None,
        };
        assert_eq!(
            Quota::or_default((None, Some(3)), d),
            Quota {
                bytes: Some(5),
                messages: Some(3)
            }
        );
        assert_eq!(
            Quota::or_default((Some(-1), None), d),
            Quota {
                bytes: None,
                messages: None
            }
        );
    }

    fn meta(uid: u32, modseq: u64) -> MessageMeta {
        MessageMeta {
            uid,
            modseq,
            flags: 0,
            size: 1,
            crlf_size: 3,
            internal_date_micros: 0,
            internal_zone_minutes: 0,
            from: String::new(),
            subject: String::new(),
            keywords: Vec::new(),
            blob: i64::from(uid),
        }
    }

    #[test]
    fn merge_cuts_at_limit_in_modseq_order() {
        let at = ReadAt {
            highest_modseq: 9,
            uid_next: 6,
            new_from: 2,
        };
        let c = merge_changes(
            vec![meta(1, 1), meta(3, 4)],
            vec![(2, 3, Some(7)), (1, 5, None)],
            at,
            2,
        );
        assert_eq!(c.messages, vec![meta(1, 1)]);
        assert_eq!((c.gone, c.gone_blobs), (vec![2], vec![Some(7)]));
        assert_eq!((c.through_modseq, c.more, c.stored_from), (3, true, 2));
        let c = merge_changes(vec![meta(1, 1)], vec![(2, 3, None)], at, 2);
        assert_eq!((c.through_modseq, c.more, c.stored_from), (9, false, 6));
    }
}
