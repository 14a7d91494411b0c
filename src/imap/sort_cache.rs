//! Sort keys kept in memory, server-wide, by mailbox and UID: a second SORT of a mailbox reads nothing
//! from the store, as Dovecot's cache file spares it. A UID names the same message for the life of its
//! mailbox (UIDs and mailbox ids are never reused), and a message's bytes never change, so a kept key is
//! never stale; expunged messages are simply not asked for again, and go with their mailbox's keys.
//!
//! Each mailbox's keys are one array in UID order, walked in step with the UIDs asked for (mail is
//! sorted a mailbox at a time, and new mail has the highest UIDs). Bounded by bytes
//! (`limits.sort_cache_bytes_max`): past it, the mailboxes sorted longest ago are dropped whole.

use std::collections::HashMap;
use std::sync::Mutex;

use jmail_proto::imap::sort::SortKeys;

use crate::store::MailboxId;

/// Bytes a kept message costs beyond its keys: its UID and its slot.
const ENTRY_OVERHEAD_BYTES: usize = 8;

struct MailboxKeys {
    /// Ascending, one per entry of `keys`.
    uids: Vec<u32>,
    keys: Vec<SortKeys>,
    bytes: usize,
    /// When it was last used, on the cache's clock.
    used: u64,
}

impl MailboxKeys {
    /// Adds `items`, keeping UID order and each UID once (the newer keys of a UID kept twice: they may
    /// hold more).
    fn add(&mut self, mut items: Vec<(u32, SortKeys)>) {
        items.sort_unstable_by_key(|(uid, _)| *uid);
        let appended = match (self.uids.last(), items.first()) {
            (Some(&last), Some(&(first, _))) => last < first,
            _ => true,
        };
        if !appended {
            // Keys of older UIDs (read after newer ones were kept): merged in.
            let old = std::mem::take(&mut self.uids)
                .into_iter()
                .zip(std::mem::take(&mut self.keys));
            items = items.into_iter().chain(old).collect();
            // Stable: of two keys of one UID, the newer (first) stays.
            items.sort_by_key(|(uid, _)| *uid);
            items.dedup_by_key(|(uid, _)| *uid);
            self.bytes = 0;
        }
        for (uid, k) in items {
            self.bytes += cost_of(&k);
            self.uids.push(uid);
            self.keys.push(k);
        }
    }
}

fn cost_of(keys: &SortKeys) -> usize {
    keys.bytes() + ENTRY_OVERHEAD_BYTES
}

#[derive(Default)]
struct Kept {
    mailboxes: HashMap<MailboxId, MailboxKeys>,
    bytes: usize,
    clock: u64,
}

pub struct SortCache {
    bytes_max: usize,
    kept: Mutex<Kept>,
}

impl SortCache {
    /// A cache of at most `bytes_max` bytes of keys; 0 keeps nothing.
    pub fn new(bytes_max: usize) -> SortCache {
        SortCache {
            bytes_max,
            kept: Mutex::new(Kept::default()),
        }
    }

    /// Whether it keeps anything: without room, sorting the general way (only the keys asked for)
    /// costs less.
    pub fn keeps(&self) -> bool {
        self.bytes_max > 0
    }

    /// The messages of `mailbox` among `matched` ((sequence number, UID), ascending) whose keys are
    /// kept, each as `make` makes it of its numbers and keys; and the UIDs of the others, ascending,
    /// those `make` found wanting (`None`: kept without what it needs) among them.
    pub fn kept<T>(
        &self,
        mailbox: MailboxId,
        matched: &[(u32, u32)],
        make: impl Fn(u32, u32, &SortKeys) -> Option<T>,
    ) -> (Vec<T>, Vec<u32>) {
        let mut kept = self.kept.lock().expect("sort cache lock");
        kept.clock += 1;
        let now = kept.clock;
        let Some(keys) = kept.mailboxes.get_mut(&mailbox) else {
            return (Vec::new(), matched.iter().map(|&(_, uid)| uid).collect());
        };
        keys.used = now;
        let (mut found, mut missing) = (Vec::with_capacity(matched.len()), Vec::new());
        let mut at = 0;
        for &(seq, uid) in matched {
            // Both ascending: one walk.
            while at < keys.uids.len() && keys.uids[at] < uid {
                at += 1;
            }
            match keys.uids.get(at) {
                Some(&kept_uid) if kept_uid == uid => match make(seq, uid, &keys.keys[at]) {
                    Some(made) => found.push(made),
                    None => missing.push(uid),
                },
                _ => missing.push(uid),
            }
        }
        (found, missing)
    }

    /// Keeps `items` ((UID, keys)) as those of `mailbox`'s messages, making room by dropping the
    /// mailboxes used longest ago; what would not fit even then is not kept.
    pub fn put(&self, mailbox: MailboxId, items: Vec<(u32, SortKeys)>) {
        let cost: usize = items.iter().map(|(_, k)| cost_of(k)).sum();
        if items.is_empty() || cost > self.bytes_max {
            return;
        }
        let mut kept = self.kept.lock().expect("sort cache lock");
        while kept.bytes + cost > self.bytes_max {
            let oldest = kept
                .mailboxes
                .iter()
                .filter(|(id, _)| **id != mailbox)
                .min_by_key(|(_, m)| m.used)
                .map(|(id, _)| *id);
            let Some(oldest) = oldest else { break };
            let dropped = kept.mailboxes.remove(&oldest).expect("just found");
            kept.bytes -= dropped.bytes;
        }
        if kept.bytes + cost > self.bytes_max {
            return;
        }
        kept.clock += 1;
        let now = kept.clock;
        let keys = kept
            .mailboxes
            .entry(mailbox)
            .or_insert_with(|| MailboxKeys {
                uids: Vec::new(),
                keys: Vec::new(),
                bytes: 0,
                used: now,
            });
        keys.used = now;
        let before = keys.bytes;
        keys.add(items);
        let after = keys.bytes;
        kept.bytes = kept.bytes - before + after;
    }

    /// Bytes of keys held.
    pub fn bytes(&self) -> usize {
        self.kept.lock().expect("sort cache lock").bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jmail_proto::imap::sort::SortInput;
    use jmail_proto::imap::thread::ThreadKeys;

    fn keys(size: u64) -> SortKeys {
        SortKeys::new(&SortInput {
            seq: 1,
            uid: 1,
            arrival_micros: 0,
            size,
            envelope: None,
        })
    }

    fn sizes(cache: &SortCache, mailbox: MailboxId, uids: &[u32]) -> (Vec<u32>, Vec<u32>) {
        let matched: Vec<(u32, u32)> = uids.iter().map(|&u| (u, u)).collect();
        let (found, missing) = cache.kept(mailbox, &matched, |_, uid, keys| {
            assert_eq!(keys.size, u64::from(uid) * 10, "uid {uid}'s own keys");
            Some(uid)
        });
        (found, missing)
    }

    #[test]
    fn kept_keys_are_found_by_mailbox_and_uid_and_the_bound_holds() {
        let one = cost_of(&keys(1));
        let cache = SortCache::new(10 * one);
        cache.put(1, vec![(6, keys(60)), (5, keys(50))]);
        assert_eq!(sizes(&cache, 1, &[4, 5, 6, 7]), (vec![5, 6], vec![4, 7]));
        assert_eq!(
            sizes(&cache, 2, &[5]),
            (vec![], vec![5]),
            "another mailbox's UID 5 is another message"
        );
        // Older UIDs read later are merged in order.
        cache.put(1, vec![(4, keys(40)), (7, keys(70)), (5, keys(50))]);
        assert_eq!(sizes(&cache, 1, &[4, 5, 6, 7]), (vec![4, 5, 6, 7], vec![]));
        assert_eq!(cache.bytes(), 4 * one);
        // Keys kept without what a caller needs count as missing for it; read again with it, the newer
        // keys replace the older.
        let threaded = |cache: &SortCache| {
            let matched = [(5, 5), (6, 6)];
            cache.kept(1, &matched, |_, uid, k| k.thread.as_ref().map(|_| uid))
        };
        assert_eq!(threaded(&cache), (vec![], vec![5, 6]));
        let input = SortInput {
            seq: 1,
            uid: 5,
            arrival_micros: 0,
            size: 50,
            envelope: None,
        };
        let thread = ThreadKeys::new(&input, vec!["root@x".into()]);
        let with_thread = SortKeys::new(&input).with_thread(thread);
        let bigger = cost_of(&with_thread);
        cache.put(1, vec![(5, with_thread)]);
        assert_eq!(threaded(&cache), (vec![5], vec![6]));
        assert_eq!(sizes(&cache, 1, &[4, 5, 6, 7]), (vec![4, 5, 6, 7], vec![]));
        assert_eq!(cache.bytes(), 3 * one + bigger);
        cache.put(1, vec![(5, keys(50))]);
        assert_eq!(cache.bytes(), 4 * one);
        // Mailbox 2 takes five; mailbox 1 is used again, so mailbox 2 is the one dropped for mailbox 3.
        cache.put(2, (1..=5).map(|u| (u, keys(u64::from(u) * 10))).collect());
        assert_eq!(cache.bytes(), 9 * one);
        sizes(&cache, 1, &[4]);
        cache.put(3, vec![(1, keys(10)), (2, keys(20))]);
        assert_eq!(sizes(&cache, 2, &[1]), (vec![], vec![1]), "dropped whole");
        assert_eq!(sizes(&cache, 1, &[4]), (vec![4], vec![]));
        assert_eq!(cache.bytes(), 6 * one);
        // More than the whole bound is not kept.
        cache.put(4, (1..=11).map(|u| (u, keys(u64::from(u) * 10))).collect());
        assert_eq!(sizes(&cache, 4, &[1]), (vec![], vec![1]));
        assert!(cache.bytes() <= 10 * one);
        let none = SortCache::new(0);
        none.put(1, vec![(1, keys(10))]);
        assert_eq!(sizes(&none, 1, &[1]), (vec![], vec![1]));
    }
}
