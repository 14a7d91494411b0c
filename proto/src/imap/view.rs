//! The selected mailbox as one session sees it: its messages' UIDs in order, a message's sequence number
//! being its position. Sequence numbers are the session's own (RFC 9051 §2.3.1.2): they change only
//! when the session is told of an expunge, so this view moves only when the session reports one
//! ([`View::expunge`]) or new mail ([`View::arrive`]), never when the store changes underneath.

use imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

/// A sequence number past the messages the session knows of (RFC 9051 §6.4.8: the command gets BAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSuchMessage;

/// UIDs in ascending order; sequence number `n` is `uids[n - 1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    uids: Vec<u32>,
}

impl View {
    /// The view of a mailbox holding `uids` (any order; repeats dropped).
    pub fn new(mut uids: Vec<u32>) -> View {
        uids.sort_unstable();
        uids.dedup();
        View { uids }
    }

    /// How many messages the session knows of: its EXISTS.
    pub fn exists(&self) -> u32 {
        self.uids.len() as u32
    }

    /// The highest UID known, if any.
    pub fn last_uid(&self) -> Option<u32> {
        self.uids.last().copied()
    }

    pub fn uid_of(&self, seq: u32) -> Option<u32> {
        self.uids.get((seq as usize).checked_sub(1)?).copied()
    }

    /// How many of the messages known have a UID within `ranges`.
    pub fn count_within(&self, ranges: &crate::imap::search::Ranges) -> u32 {
        let count: usize = ranges
            .spans()
            .iter()
            .map(|&(lo, hi)| {
                self.uids.partition_point(|&u| u <= hi) - self.uids.partition_point(|&u| u < lo)
            })
            .sum();
        count as u32
    }

    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }

    /// The UIDs a set names, ascending and each once. With `uid`, the set holds UIDs: `*` is the highest
    /// (so `n:*` names it even when `n` is higher) and UIDs no message has are passed over. Without, it
    /// holds sequence numbers, and one past the messages known is [`NoSuchMessage`], as is `*` in an
    /// empty mailbox.
    pub fn select(&self, set: &SequenceSet, uid: bool) -> Result<Vec<u32>, NoSuchMessage> {
        // Positions in `uids` (start, end exclusive) of each range, merged before anything is copied,
        // so a set that names the same messages many times (`1:*,1:*,...`) costs no more than once.
        let mut spans = Vec::with_capacity(set.0.as_ref().len());
        for sequence in set.0.as_ref() {
            let (a, b) = match sequence {
                Sequence::Single(one) => (one, one),
                Sequence::Range(a, b) => (a, b),
            };
            if uid {
                let bound = |x: &SeqOrUid| match x {
                    SeqOrUid::Value(n) => n.get(),
                    SeqOrUid::Asterisk => self.last_uid().unwrap_or(u32::MAX),
                };
                let (lo, hi) = min_max(bound(a), bound(b));
                let start = self.uids.partition_point(|&u| u < lo);
                let end = self.uids.partition_point(|&u| u <= hi);
                spans.push((start, end));
            } else {
                let bound = |x: &SeqOrUid| match x {
                    SeqOrUid::Value(n) => n.get(),
                    SeqOrUid::Asterisk => self.exists(),
                };
                let (lo, hi) = min_max(bound(a), bound(b));
                if lo == 0 || hi > self.exists() {
                    return Err(NoSuchMessage);
                }
                spans.push((lo as usize - 1, hi as usize));
            }
        }
        spans.sort_unstable();
        let mut chosen = Vec::new();
        let mut done = 0; // positions below this are taken
        for (start, end) in spans {
            let start = start.max(done);
            if start < end {
                chosen.extend_from_slice(&self.uids[start..end]);
                done = end;
            }
        }
        Ok(chosen)
    }

    /// Forgets the messages whose UIDs are `gone` (those it does not know are ignored) and returns the
    /// sequence numbers to report, in order, one `* n EXPUNGE` each: each number as it is when its
    /// response is read, so the numbers after an expunged one have already moved down (RFC 9051 §7.5.1's
    /// example: expunging 3, 4, 7 and 11 reports 3, 3, 5, 8).
    pub fn expunge(&mut self, gone: &[u32]) -> Vec<u32> {
        let mut gone: Vec<u32> = gone.to_vec();
        gone.sort_unstable();
        gone.dedup();
        let mut reported = Vec::new();
        let mut kept = Vec::with_capacity(self.uids.len());
        let mut g = gone.iter().peekable();
        for (i, &uid) in self.uids.iter().enumerate() {
            while g.next_if(|&&x| x < uid).is_some() {}
            if g.next_if_eq(&&uid).is_some() {
                reported.push(i as u32 + 1 - reported.len() as u32);
            } else {
                kept.push(uid);
            }
        }
        self.uids = kept;
        reported
    }

    /// Adds newly arrived messages (UIDs above every one known; others are ignored, as a UID is never
    /// reused) and returns the new EXISTS.
    pub fn arrive(&mut self, uids: &[u32]) -> u32 {
        let mut new: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|&u| self.last_uid().is_none_or(|last| u > last))
            .collect();
        new.sort_unstable();
        new.dedup();
        self.uids.extend(new);
        self.exists()
    }
}

fn min_max(a: u32, b: u32) -> (u32, u32) {
    if a <= b { (a, b) } else { (b, a) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_known_uids_within_ranges() {
        let view = View::new(vec![2, 4, 6, 8, 10]);
        let mut ranges = crate::imap::search::Ranges::NONE;
        assert_eq!(view.count_within(&ranges), 0);
        ranges.add(3, 6);
        assert_eq!(view.count_within(&ranges), 2);
        ranges.add(10, 40);
        assert_eq!(view.count_within(&ranges), 3);
        ranges.add(1, 1);
        assert_eq!(view.count_within(&ranges), 3);
    }

    #[test]
    fn a_set_naming_messages_many_times_gives_each_once() {
        let view = View::new((1..=1000).map(|n| n * 2).collect());
        let many = vec!["1:*"; 500].join(",");
        let set = SequenceSet::try_from(many.as_str()).unwrap();
        assert_eq!(view.select(&set, false).unwrap().len(), 1000);
        assert_eq!(view.select(&set, true).unwrap().len(), 1000);
        let set = SequenceSet::try_from("5:3,4,10:12,1").unwrap();
        assert_eq!(
            view.select(&set, false).unwrap(),
            vec![2, 6, 8, 10, 20, 22, 24]
        );
    }
    use std::num::NonZeroU32;

    fn set(text: &str) -> SequenceSet {
        let one = |s: &str| match s {
            "*" => SeqOrUid::Asterisk,
            n => SeqOrUid::Value(NonZeroU32::new(n.parse().unwrap()).unwrap()),
        };
        let items: Vec<Sequence> = text
            .split(',')
            .map(|item| match item.split_once(':') {
                Some((a, b)) => Sequence::Range(one(a), one(b)),
                None => Sequence::Single(one(item)),
            })
            .collect();
        SequenceSet(items.try_into().unwrap())
    }

    #[test]
    fn sequence_numbers_and_uids() {
        let v = View::new(vec![10, 3, 7, 12, 7]);
        assert_eq!(v.exists(), 4);
        assert_eq!(
            (v.uid_of(1), v.uid_of(4), v.uid_of(5)),
            (Some(3), Some(12), None)
        );
        assert_eq!((v.seq_of(7), v.seq_of(8)), (Some(2), None));
        assert_eq!(v.select(&set("2:*"), false), Ok(vec![7, 10, 12]));
        assert_eq!(v.select(&set("4:2,1"), false), Ok(vec![3, 7, 10, 12]));
        assert_eq!(v.select(&set("5"), false), Err(NoSuchMessage));
        assert_eq!(v.select(&set("4:11"), true), Ok(vec![7, 10]));
        assert_eq!(
            v.select(&set("100:*"), true),
            Ok(vec![12]),
            "n:* names the last UID"
        );
        assert_eq!(
            v.select(&set("13"), true),
            Ok(vec![]),
            "a UID no message has"
        );
        let empty = View::default();
        assert_eq!(empty.select(&set("*"), false), Err(NoSuchMessage));
        assert_eq!(empty.select(&set("1:*"), true), Ok(vec![]));
    }

    #[test]
    fn expunges_are_reported_as_rfc_9051_shows() {
        let mut v = View::new((1..=11).collect());
        assert_eq!(v.expunge(&[11, 3, 4, 7, 99]), vec![3, 3, 5, 8]);
        assert_eq!(v.exists(), 7);
        assert_eq!(v.select(&set("1:*"), true), Ok(vec![1, 2, 5, 6, 8, 9, 10]));
        assert!(v.expunge(&[4]).is_empty(), "one it never knew");
    }

    #[test]
    fn reported_expunges_replay_to_the_new_view() {
        super::super::invariants::check_view(&[1, 2, 3, 9, 200, 5, 2, 9, 9, 0, 200, 77]);
    }

    #[test]
    fn arrivals_only_above_the_last_uid() {
        let mut v = View::new(vec![5]);
        assert_eq!(v.arrive(&[9, 6, 3, 9]), 3);
        assert_eq!(v.select(&set("1:*"), false), Ok(vec![5, 6, 9]));
    }
}
