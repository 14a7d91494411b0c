//! Conformance tests for the mail model: mailboxes, flags and keywords, set operations, copy and move,
//! quotas, change counters. Like tests/it/store.rs, each runs against every backend of `backends()`.

use jmail::store::{FlagOp, Flags, QuotaSetting, Role, Store, StoreError, flags, rules::Quota};

use crate::store::{backends, backends_with, count_in, message, user};

/// How many messages the named mailbox of `user` holds, by its count.
async fn messages_in(store: &dyn Store, user: jmail::store::UserId, name: &str) -> u64 {
    store.mailbox(user, name).await.unwrap().unwrap().messages
}

async fn deliver(store: &dyn Store, to: &str, n: usize) {
    for i in 0..n {
        store
            .deliver(&[to.into()], message(&format!("m{i}")), None)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_account_has_the_six_special_use_mailboxes() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let boxes = store.mailboxes(a.id).await.unwrap();
        let listed: Vec<(&str, Option<Role>, bool)> = boxes
            .iter()
            .map(|m| (m.name.as_str(), m.role, m.subscribed))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("Archive", Some(Role::Archive), true),
                ("Drafts", Some(Role::Drafts), true),
                ("INBOX", Some(Role::Inbox), true),
                ("Junk", Some(Role::Junk), true),
                ("Sent", Some(Role::Sent), true),
                ("Trash", Some(Role::Trash), true),
            ]
        );
        let inbox = store.mailbox(a.id, "inbox").await.unwrap().unwrap();
        assert_eq!(inbox.id, a.inbox, "INBOX in any case");
        // Every UIDVALIDITY differs, and none is zero.
        let mut validities: Vec<u32> = boxes.iter().map(|m| m.uid_validity).collect();
        validities.sort();
        validities.dedup();
        assert_eq!(validities.len(), 6);
        assert!(validities[0] > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_follow_every_change_without_a_scan() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        deliver(store, "a", 3).await;
        let size = message("m0").raw.len() as u64;
        let inbox = store.mailbox(a.id, "INBOX").await.unwrap().unwrap();
        assert_eq!(
            (inbox.messages, inbox.unseen, inbox.bytes),
            (3, 3, 3 * size)
        );
        assert_eq!((inbox.uid_next, inbox.highest_modseq), (4, 3));
        let seen = Flags::system(flags::SEEN);
        store
            .update_flags(a.inbox, &[1, 2], FlagOp::Add, seen.clone(), None)
            .await
            .unwrap();
        store.expunge(a.inbox, Some(&[2]), false).await.unwrap();
        let inbox = store.mailbox(a.id, "INBOX").await.unwrap().unwrap();
        assert_eq!(
            (inbox.messages, inbox.unseen, inbox.bytes),
            (2, 1, 2 * size)
        );
        let users = store.list_users().await.unwrap();
        assert_eq!(users[0].usage.messages, 2);
        assert_eq!(users[0].usage.bytes, 2 * size);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_rename_delete_and_subscribe() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        // Missing ancestors are made too.
        store
            .create_mailbox(a.id, "Work/2026/Q1", true)
            .await
            .unwrap();
        assert!(store.mailbox(a.id, "Work").await.unwrap().is_some());
        assert!(store.mailbox(a.id, "Work/2026").await.unwrap().is_some());
        assert!(matches!(
            store.create_mailbox(a.id, "Work/2026", true).await,
            Err(StoreError::MailboxExists)
        ));
        assert!(matches!(
            store.create_mailbox(a.id, "inbox", true).await,
            Err(StoreError::MailboxExists)
        ));
        assert!(matches!(
            store.create_mailbox(a.id, "a//b", true).await,
            Err(StoreError::BadMailboxName(_))
        ));
        let q1 = store.mailbox(a.id, "Work/2026/Q1").await.unwrap().unwrap();
        // Rename moves the children along and keeps ids (and so messages and UIDVALIDITY).
        store
            .rename_mailbox(a.id, "Work", "Jobs/Old")
            .await
            .unwrap();
        let moved = store
            .mailbox(a.id, "Jobs/Old/2026/Q1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((moved.id, moved.uid_validity), (q1.id, q1.uid_validity));
        let jobs = store.mailbox(a.id, "Jobs").await.unwrap().unwrap();
        assert!(!jobs.subscribed, "a parent a rename made is not subscribed");
        assert!(moved.subscribed, "a renamed mailbox keeps its subscription");
        assert!(store.mailbox(a.id, "Work").await.unwrap().is_none());
        assert!(matches!(
            store.rename_mailbox(a.id, "Jobs", "Jobs/Inner").await,
            Err(StoreError::MailboxRefused(_))
        ));
        assert!(matches!(
            store.rename_mailbox(a.id, "Jobs", "Sent").await,
            Err(StoreError::MailboxExists)
        ));
        assert!(matches!(
            store.rename_mailbox(a.id, "Nope", "X").await,
            Err(StoreError::NoSuchMailbox)
        ));
        // A descendant's new name is held to the same rule: 31 levels under p, moved 2 deeper, is 33.
        let deep: Vec<String> = (0..31).map(|i| format!("l{i}")).collect();
        let deep = format!("p/{}", deep[1..].join("/"));
        store.create_mailbox(a.id, &deep, true).await.unwrap();
        assert!(matches!(
            store.rename_mailbox(a.id, "p", "q/r/s").await,
            Err(StoreError::BadMailboxName(_))
        ));
        store.rename_mailbox(a.id, "p", "q/r").await.unwrap();
        // Delete: never INBOX; children stay.
        assert!(matches!(
            store.delete_mailbox(a.id, "INBOX").await,
            Err(StoreError::MailboxRefused(_))
        ));
        let old = store.mailbox(a.id, "Jobs/Old").await.unwrap().unwrap();
        store.delete_mailbox(a.id, "Jobs/Old").await.unwrap();
        assert!(store.mailbox(a.id, "Jobs/Old").await.unwrap().is_none());
        assert!(
            store
                .mailbox(a.id, "Jobs/Old/2026")
                .await
                .unwrap()
                .is_some()
        );
        // A mailbox made again under a deleted one's name gets a new UIDVALIDITY.
        store.create_mailbox(a.id, "Jobs/Old", true).await.unwrap();
        let again = store.mailbox(a.id, "Jobs/Old").await.unwrap().unwrap();
        assert_ne!(again.uid_validity, old.uid_validity);
        assert_ne!(again.uid_validity, 0);
        store.subscribe(a.id, "Junk", false).await.unwrap();
        assert!(
            !store
                .mailbox(a.id, "Junk")
                .await
                .unwrap()
                .unwrap()
                .subscribed
        );
        // Another account cannot see or touch these names.
        let b = user(store, "b").await;
        assert!(store.mailbox(b.id, "Jobs").await.unwrap().is_none());
        assert!(matches!(
            store.delete_mailbox(b.id, "Jobs").await,
            Err(StoreError::NoSuchMailbox)
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_mailbox_stays_subscribed_until_unsubscribed_or_made_again() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let b = user(store, "b").await;
        let kept = |user| async move { store.kept_subscriptions(user).await.unwrap() };
        store.create_mailbox(a.id, "Old", true).await.unwrap();
        store.delete_mailbox(a.id, "Old").await.unwrap();
        assert_eq!(kept(a.id).await, ["Old"], "RFC 3501 §6.3.6");
        assert!(kept(b.id).await.is_empty());
        // Subscribing needs the mailbox; made again, it carries the subscription itself.
        assert!(matches!(
            store.subscribe(a.id, "Old", true).await,
            Err(StoreError::NoSuchMailbox)
        ));
        store.create_mailbox(a.id, "Old", false).await.unwrap();
        assert!(kept(a.id).await.is_empty());
        let old = store.mailbox(a.id, "Old").await.unwrap().unwrap();
        assert!(
            old.subscribed,
            "made unsubscribed, but its name was subscribed"
        );
        store.create_mailbox(a.id, "New", false).await.unwrap();
        let new = store.mailbox(a.id, "New").await.unwrap().unwrap();
        assert!(!new.subscribed);
        // Unsubscribed first: nothing is kept.
        store.subscribe(a.id, "Old", false).await.unwrap();
        store.delete_mailbox(a.id, "Old").await.unwrap();
        assert!(kept(a.id).await.is_empty());
        // A kept name is unsubscribed like any other, once.
        store.create_mailbox(a.id, "X", true).await.unwrap();
        store.delete_mailbox(a.id, "X").await.unwrap();
        store.subscribe(a.id, "X", false).await.unwrap();
        assert!(kept(a.id).await.is_empty());
        assert!(matches!(
            store.subscribe(a.id, "X", false).await,
            Err(StoreError::NoSuchMailbox)
        ));
        // A mailbox renamed onto a kept name takes the subscription over.
        store.create_mailbox(a.id, "Y", true).await.unwrap();
        store.delete_mailbox(a.id, "Y").await.unwrap();
        store.create_mailbox(a.id, "Z", false).await.unwrap();
        store.rename_mailbox(a.id, "Z", "Y").await.unwrap();
        assert!(kept(a.id).await.is_empty());
        assert!(store.mailbox(a.id, "Y").await.unwrap().unwrap().subscribed);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_date_keeps_its_zone_through_copies_and_moves() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let archive = store.mailbox(a.id, "Archive").await.unwrap().unwrap();
        // With and without keywords: the two take different ways into the store.
        for (zone, flags) in [
            (120, Flags::default()),
            (
                -330,
                Flags {
                    system: 0,
                    keywords: vec!["$x".into()],
                },
            ),
        ] {
            let mut m = message("zoned");
            m.internal_zone_minutes = zone;
            store.append(a.inbox, m, flags).await.unwrap();
        }
        store
            .copy(a.id, a.inbox, &[1, 2], archive.id, false)
            .await
            .unwrap();
        store
            .copy(a.id, a.inbox, &[1], archive.id, true)
            .await
            .unwrap();
        let zones = |mailbox, uids: &'static [u32]| async move {
            let wanted = jmail::store::Wanted {
                summary: false,
                raw_bytes_max: 0,
            };
            let listed = store.messages(mailbox, uids, wanted).await.unwrap();
            listed
                .iter()
                .map(|l| l.meta.internal_zone_minutes)
                .collect::<Vec<_>>()
        };
        assert_eq!(zones(a.inbox, &[1, 2]).await, [-330]);
        assert_eq!(zones(archive.id, &[1, 2, 3]).await, [120, -330, 120]);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_messages_are_claimed_by_one_session_only() {
    for (store, _dir) in backends().await {
        let a = user(store.as_ref(), "a").await;
        let recent = |name: &'static str| {
            let store = store.clone();
            async move {
                let m = store.mailbox(a.id, name).await.unwrap().unwrap();
                (store.recent_count(m.id).await.unwrap(), m.first_recent_uid)
            }
        };
        // A new mailbox's mail is recent until someone claims it.
        deliver(store.as_ref(), "a", 3).await;
        assert_eq!(recent("INBOX").await, (3, 0));
        assert_eq!(store.claim_recent(a.inbox, 4).await.unwrap(), 0);
        assert_eq!(recent("INBOX").await, (0, 4));
        assert_eq!(store.first_recent_uid(a.inbox).await.unwrap(), 4);
        assert!(matches!(
            store.first_recent_uid(999_999).await,
            Err(StoreError::NoSuchMailbox)
        ));
        // A claim never lowers the mark, and claims nothing twice.
        assert_eq!(store.claim_recent(a.inbox, 4).await.unwrap(), 4);
        assert_eq!(store.claim_recent(a.inbox, 2).await.unwrap(), 4);
        assert_eq!(recent("INBOX").await, (0, 4));
        // Of sessions claiming the same new mail at once, exactly one gets it.
        deliver(store.as_ref(), "a", 2).await;
        assert_eq!(recent("INBOX").await, (2, 4));
        let claims: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.claim_recent(a.inbox, 6).await.unwrap() })
            })
            .collect();
        let mut got = Vec::new();
        for claim in claims {
            got.push(claim.await.unwrap());
        }
        got.sort();
        assert_eq!(got, [4, 6, 6, 6, 6, 6, 6, 6]);
        assert_eq!(recent("INBOX").await, (0, 6));
        assert_eq!(store.first_recent_uid(a.inbox).await.unwrap(), 6);
        // A copy is new mail in its mailbox (RFC 3501 §6.4.7: the copy is \Recent).
        let archive = store.mailbox(a.id, "Archive").await.unwrap().unwrap();
        store
            .copy(a.id, a.inbox, &[1, 2], archive.id, false)
            .await
            .unwrap();
        assert_eq!(recent("Archive").await, (2, 0));
        assert_eq!(recent("INBOX").await, (0, 6));
        assert!(matches!(
            store.claim_recent(archive.id + 1000, 1).await,
            Err(StoreError::NoSuchMailbox)
        ));
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_inbox_moves_its_messages_and_leaves_it_empty() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        deliver(store, "a", 3).await;
        store
            .rename_mailbox(a.id, "INBOX", "Old mail")
            .await
            .unwrap();
        let inbox = store.mailbox(a.id, "INBOX").await.unwrap().unwrap();
        let old = store.mailbox(a.id, "Old mail").await.unwrap().unwrap();
        assert_eq!(
            (inbox.id, inbox.messages, inbox.role),
            (a.inbox, 0, Some(Role::Inbox))
        );
        assert_eq!((old.messages, old.role), (3, None));
        let listed = store.changes(old.id, 0, 10).await.unwrap().messages;
        let subjects: Vec<&str> = listed.iter().map(|m| m.subject.as_str()).collect();
        assert_eq!(subjects, vec!["m0", "m1", "m2"]);
        assert_eq!(
            store.fetch(old.id, 1, false).await.unwrap().unwrap(),
            message("m0").raw
        );
        // INBOX keeps working: the next delivery lands there.
        deliver(store, "a", 1).await;
        assert_eq!(messages_in(store, a.id, "INBOX").await, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_keywords_and_unchanged_since() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        deliver(store, "a", 3).await;
        let with = |system, keywords: &[&str]| Flags {
            system,
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        };
        let u = store
            .update_flags(
                a.inbox,
                &[3, 1, 99],
                FlagOp::Add,
                with(flags::DELETED, &["$Label1", "Work", "$Label1"]),
                None,
            )
            .await
            .unwrap();
        let changed: Vec<(u32, u64)> = u.changed.iter().map(|c| (c.uid, c.modseq)).collect();
        assert_eq!(changed, vec![(1, 4), (3, 5)], "UID order, one modseq each");
        assert_eq!(
            u.changed[0].flags,
            with(flags::DELETED, &["$Label1", "Work"])
        );
        // UNCHANGEDSINCE: message 1 changed at modseq 4, so a condition at 3 refuses it.
        let u = store
            .update_flags(
                a.inbox,
                &[1, 2],
                FlagOp::Remove,
                with(0, &["Work"]),
                Some(3),
            )
            .await
            .unwrap();
        assert_eq!(u.refused, vec![1]);
        assert!(u.changed.is_empty(), "2 had no Work to remove");
        assert_eq!(u.unchanged.len(), 1);
        let u = store
            .update_flags(
                a.inbox,
                &[3],
                FlagOp::Replace,
                with(flags::SEEN, &["x"]),
                Some(5),
            )
            .await
            .unwrap();
        assert_eq!(u.changed[0].flags, with(flags::SEEN, &["x"]));
        let listed = store.changes(a.inbox, 5, 10).await.unwrap().messages;
        assert_eq!(listed[0].keywords, vec!["x".to_string()]);
        assert!(matches!(
            store
                .update_flags(a.inbox, &[1], FlagOp::Add, with(0, &["bad word"]), None)
                .await,
            Err(StoreError::BadKeyword(_))
        ));
        // Expunge only those flagged \Deleted.
        let gone = store.expunge(a.inbox, None, true).await.unwrap();
        assert_eq!(gone, vec![1]);
        let c = store.changes(a.inbox, 6, 10).await.unwrap();
        assert_eq!(c.gone, vec![1]);
    }
}

/// Keywords are one in any case (IMAP compares flags so; JMAP shows them in lower case): a mailbox keeps
/// the spelling it saw first, adding or removing in another case finds it, and the per-mailbox limit
/// counts it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keywords_are_the_same_in_any_case() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        deliver(store, "a", 2).await;
        let with = |keywords: &[&str]| Flags {
            system: 0,
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        };
        let add = |uids: &'static [u32], f: Flags| {
            store.update_flags(a.inbox, uids, FlagOp::Add, f, None)
        };
        let u = add(&[1], with(&["$Forwarded", "$forwarded"]))
            .await
            .unwrap();
        assert_eq!(u.changed[0].flags, with(&["$Forwarded"]), "one keyword");
        let u = add(&[2], with(&["$FORWARDED", "NonJunk"])).await.unwrap();
        assert_eq!(
            u.changed[0].flags,
            with(&["$Forwarded", "NonJunk"]),
            "the mailbox's first spelling"
        );
        let u = add(&[2], with(&["nonjunk"])).await.unwrap();
        assert!(u.changed.is_empty(), "already there in another case");
        let u = store
            .update_flags(
                a.inbox,
                &[1, 2],
                FlagOp::Remove,
                with(&["$forwarded"]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(u.changed.len(), 2, "removed in any case");
        assert_eq!(u.changed[1].flags, with(&["NonJunk"]));
        // Copies keep their spelling; the destination then knows it, in any case.
        let archive = store.mailbox(a.id, "Archive").await.unwrap().unwrap().id;
        store
            .copy(a.id, a.inbox, &[2], archive, false)
            .await
            .unwrap();
        let u = store
            .update_flags(
                archive,
                &[1],
                FlagOp::Replace,
                with(&["NONJUNK", "x"]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(u.changed[0].flags, with(&["NonJunk", "x"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_and_move_return_uid_maps_and_share_bytes() {
    for (store, dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        deliver(store, "a", 4).await;
        let archive = store.mailbox(a.id, "Archive").await.unwrap().unwrap();
        let map = store
            .copy(a.id, a.inbox, &[4, 2, 77], archive.id, false)
            .await
            .unwrap();
        assert_eq!(map.uid_validity, archive.uid_validity);
        assert_eq!(map.uids, vec![(2, 1), (4, 2)]);
        assert_eq!(
            store.fetch(archive.id, 2, false).await.unwrap().unwrap(),
            message("m3").raw
        );
        let trash = store.mailbox(a.id, "Trash").await.unwrap().unwrap();
        let moved = store
            .copy(a.id, a.inbox, &[1, 2], trash.id, true)
            .await
            .unwrap();
        assert_eq!(moved.uids, vec![(1, 1), (2, 2)]);
        let inbox = store.changes(a.inbox, 0, 10).await.unwrap();
        assert_eq!(
            inbox.messages.iter().map(|m| m.uid).collect::<Vec<_>>(),
            vec![3, 4]
        );
        // Six copies of four messages, four blobs.
        let d = dir.path();
        const BLOBS: &str = "SELECT count(*) FROM blobs";
        // Counts of copies that are wrong; on SQLite (counts in a table of their own) also blobs
        // without a count, or counts without a blob.
        let wrong = match d.join(crate::pg::URL_FILE).exists() {
            true => {
                "SELECT count(*) FROM blobs b \
                     WHERE refs <> (SELECT count(*) FROM messages WHERE blob_id = b.id)"
            }
            false => {
                "SELECT (SELECT count(*) FROM blob_refs r \
                      WHERE refs <> (SELECT count(*) FROM messages WHERE blob_id = r.blob_id)) \
                      + (SELECT count(*) FROM blobs b WHERE b.id NOT IN (SELECT blob_id FROM blob_refs)) \
                      + (SELECT count(*) FROM blob_refs WHERE blob_id NOT IN (SELECT id FROM blobs))"
            }
        };
        assert_eq!(
            count_in(d, BLOBS).await,
            4,
            "`user()` adds no welcome message"
        );
        // Deleting the last copy frees the bytes.
        store.expunge(archive.id, None, false).await.unwrap();
        store.expunge(trash.id, None, false).await.unwrap();
        store.expunge(a.inbox, Some(&[4]), false).await.unwrap();
        assert_eq!(count_in(d, BLOBS).await, 1, "only m2 is left");
        // One delivery to two users with a third's Sent copy: one blob, counted three times, freed with
        // the last.
        user(store, "b").await;
        let c = user(store, "c").await;
        store
            .deliver(&["a".into(), "b".into()], message("shared"), Some(c.id))
            .await
            .unwrap();
        assert_eq!(count_in(d, wrong).await, 0);
        assert_eq!(count_in(d, BLOBS).await, 2);
        store.delete_user("b").await.unwrap();
        store.delete_user("c").await.unwrap();
        assert_eq!(
            (count_in(d, BLOBS).await, count_in(d, wrong).await),
            (2, 0),
            "a still holds it"
        );
        store.expunge(a.inbox, None, false).await.unwrap();
        assert_eq!(count_in(d, BLOBS).await, 0);
        // Another account's mailbox is not a destination, nor a source.
        let b = user(store, "b2").await;
        assert!(matches!(
            store.copy(a.id, a.inbox, &[3], b.inbox, false).await,
            Err(StoreError::NoSuchMailbox)
        ));
        assert!(matches!(
            store.copy(a.id, b.inbox, &[1], a.inbox, false).await,
            Err(StoreError::NoSuchMailbox)
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_what_would_pass_them_and_store_nothing() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let _b = user(store, "b").await;
        store
            .set_quota("a", None, Some(QuotaSetting::Limit(2)))
            .await
            .unwrap();
        let has_room = async |name| store.recipient(name).await.unwrap().map(|r| r.has_room);
        assert_eq!(has_room("a").await, Some(true));
        deliver(store, "a", 2).await;
        assert_eq!(has_room("a").await, Some(false));
        assert_eq!(has_room("ghost").await, None);
        let full = store
            .deliver(&["b".into(), "a".into()], message("third"), None)
            .await;
        assert!(matches!(full, Err(StoreError::OverQuota(n)) if n == "a"));
        let b_inbox = store.credentials("b").await.unwrap().unwrap().inbox;
        assert!(
            store
                .changes(b_inbox, 0, 10)
                .await
                .unwrap()
                .messages
                .is_empty(),
            "all or nothing"
        );
        let drafts = store.mailbox(a.id, "Drafts").await.unwrap().unwrap();
        assert!(matches!(
            store
                .append(drafts.id, message("d"), Flags::default())
                .await,
            Err(StoreError::OverQuota(_))
        ));
        assert!(matches!(
            store.copy(a.id, a.inbox, &[1], drafts.id, false).await,
            Err(StoreError::OverQuota(_))
        ));
        // A move takes no more room.
        store
            .copy(a.id, a.inbox, &[1], drafts.id, true)
            .await
            .unwrap();
        let listed = store.list_users().await.unwrap();
        assert_eq!(
            listed[0].quota,
            Quota {
                bytes: None,
                messages: Some(2)
            }
        );
        assert_eq!(listed[0].usage.messages, 2);
        // Bytes too; then back to the default (none).
        let size = message("x").raw.len() as u64;
        store
            .set_quota(
                "a",
                Some(QuotaSetting::Limit(3 * size - 1)),
                Some(QuotaSetting::Default),
            )
            .await
            .unwrap();
        assert!(matches!(
            store.deliver(&["a".into()], message("x"), None).await,
            Err(StoreError::OverQuota(_))
        ));
        store
            .set_quota("a", Some(QuotaSetting::Unlimited), None)
            .await
            .unwrap();
        deliver(store, "a", 1).await;
        assert!(matches!(
            store
                .set_quota("ghost", Some(QuotaSetting::Unlimited), None)
                .await,
            Err(StoreError::NoSuchUser(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_keeps_a_seen_copy_in_the_senders_sent_mailbox() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let b = user(store, "b").await;
        store
            .deliver(&["b".into()], message("hello"), Some(a.id))
            .await
            .unwrap();
        let sent = store.mailbox(a.id, "Sent").await.unwrap().unwrap();
        assert_eq!((sent.messages, sent.unseen), (1, 0));
        let copy = store.changes(sent.id, 0, 10).await.unwrap().messages;
        assert_eq!(
            (copy[0].subject.as_str(), copy[0].flags),
            ("hello", flags::SEEN)
        );
        assert_eq!(messages_in(store, b.id, "INBOX").await, 1);
        // Without a Sent mailbox the send still goes out.
        store.delete_mailbox(a.id, "Sent").await.unwrap();
        store
            .deliver(&["b".into()], message("again"), Some(a.id))
            .await
            .unwrap();
        assert_eq!(messages_in(store, b.id, "INBOX").await, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_change_counter_answers_what_changed_since() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let start = store.account_modseq(a.id).await.unwrap().unwrap();
        assert_eq!(
            store.mailboxes_changed(a.id, start).await.unwrap(),
            (vec![], vec![])
        );
        deliver(store, "a", 1).await;
        let after_delivery = store.account_modseq(a.id).await.unwrap().unwrap();
        assert!(after_delivery > start);
        assert_eq!(
            store.mailboxes_changed(a.id, start).await.unwrap(),
            (vec![a.inbox], vec![])
        );
        let junk = store.mailbox(a.id, "Junk").await.unwrap().unwrap();
        store.delete_mailbox(a.id, "Junk").await.unwrap();
        let (changed, gone) = store.mailboxes_changed(a.id, after_delivery).await.unwrap();
        assert_eq!((changed, gone), (vec![], vec![junk.id]));
        // Another account's changes do not move this one's counter.
        let _b = user(store, "b").await;
        let now = store.account_modseq(a.id).await.unwrap().unwrap();
        deliver(store, "b", 2).await;
        assert_eq!(store.account_modseq(a.id).await.unwrap().unwrap(), now);
        assert_eq!(store.account_modseq(9_999).await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_and_keyword_limits_hold() {
    let limits = jmail::store::ModelLimits {
        mailboxes_per_account_max: 8,
        keywords_per_mailbox_max: 2,
        quota_default: Quota::default(),
        ..Default::default()
    };
    for (store, _dir) in backends_with(limits).await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        store.create_mailbox(a.id, "one", true).await.unwrap();
        assert!(matches!(
            store.create_mailbox(a.id, "two/three", true).await,
            Err(StoreError::TooManyMailboxes(8))
        ));
        store.create_mailbox(a.id, "two", true).await.unwrap();
        assert!(matches!(
            store.create_mailbox(a.id, "three", true).await,
            Err(StoreError::TooManyMailboxes(8))
        ));
        deliver(store, "a", 1).await;
        let kw = |k: &[&str]| Flags {
            system: 0,
            keywords: k.iter().map(|s| s.to_string()).collect(),
        };
        store
            .update_flags(a.inbox, &[1], FlagOp::Add, kw(&["a", "b"]), None)
            .await
            .unwrap();
        assert!(matches!(
            store
                .update_flags(a.inbox, &[1], FlagOp::Add, kw(&["c"]), None)
                .await,
            Err(StoreError::TooManyKeywords(2))
        ));
        // Keywords already in use stay usable.
        store
            .update_flags(a.inbox, &[1], FlagOp::Replace, kw(&["b"]), None)
            .await
            .unwrap();
        // Names kept subscribed after a delete are as many as mailboxes may be, however many go.
        store.delete_mailbox(a.id, "one").await.unwrap();
        store.delete_mailbox(a.id, "two").await.unwrap();
        for i in 0..10 {
            store
                .create_mailbox(a.id, &format!("k{i}"), true)
                .await
                .unwrap();
            store.delete_mailbox(a.id, &format!("k{i}")).await.unwrap();
        }
        assert_eq!(store.kept_subscriptions(a.id).await.unwrap().len(), 8);
        store.close().await;
    }
}

/// The performance floor of the set operations: 10,000 messages copied, moved, flagged, each in one call.
/// Timing is the benchmark's job; this proves the calls work at that size, in one transaction each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_operations_on_ten_thousand_messages() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let batch = jmail::store::ImportBatch {
            users: vec![],
            messages: (0..10_000)
                .map(|i| {
                    let mut m = message(&format!("bulk {i}"));
                    m.message_id = Some(format!("<{i}@bulk>"));
                    jmail::store::ImportedMessage {
                        owner: "a".into(),
                        message: m,
                        flags: 0,
                    }
                })
                .collect(),
            match_content: false,
        };
        store.import(batch).await.unwrap();
        let uids: Vec<u32> = (1..=10_000).collect();
        let u = store
            .update_flags(
                a.inbox,
                &uids,
                FlagOp::Add,
                Flags::system(flags::FLAGGED),
                None,
            )
            .await
            .unwrap();
        assert_eq!(u.changed.len(), 10_000);
        let archive = store.mailbox(a.id, "Archive").await.unwrap().unwrap();
        let map = store
            .copy(a.id, a.inbox, &uids, archive.id, false)
            .await
            .unwrap();
        assert_eq!(map.uids.len(), 10_000);
        let trash = store.mailbox(a.id, "Trash").await.unwrap().unwrap();
        let map = store
            .copy(a.id, a.inbox, &uids, trash.id, true)
            .await
            .unwrap();
        assert_eq!(map.uids.last(), Some(&(10_000, 10_000)));
        let boxes = store.mailboxes(a.id).await.unwrap();
        let count = |name: &str| boxes.iter().find(|m| m.name == name).unwrap().messages;
        assert_eq!(
            (count("INBOX"), count("Archive"), count("Trash")),
            (0, 10_000, 10_000)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_tells_each_commit_of_the_account_or_to_resync() {
    use jmail::store::FeedEvent;
    use std::time::Duration;
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let _b = user(store, "b").await;
        let mut feed = store.feed(a.id);
        let next = async |feed: &mut jmail::store::AccountFeed| {
            tokio::time::timeout(Duration::from_secs(5), feed.next())
                .await
                .expect("an event in time")
        };
        deliver(store, "b", 1).await; // another account: not on a's feed
        deliver(store, "a", 1).await;
        assert_eq!(
            next(&mut feed).await,
            FeedEvent::Changed {
                mailbox: a.inbox,
                modseq: 1
            }
        );
        let made = store.create_mailbox(a.id, "Feeds", true).await.unwrap();
        assert_eq!(
            next(&mut feed).await,
            FeedEvent::Changed {
                mailbox: made,
                modseq: 0
            }
        );
        store.copy(a.id, a.inbox, &[1], made, true).await.unwrap();
        let mut seen = vec![next(&mut feed).await, next(&mut feed).await];
        seen.sort_by_key(|e| format!("{e:?}"));
        assert!(
            seen.contains(&FeedEvent::Changed {
                mailbox: made,
                modseq: 1
            }),
            "{seen:?}"
        );
        assert!(
            seen.contains(&FeedEvent::Changed {
                mailbox: a.inbox,
                modseq: 2
            }),
            "{seen:?}"
        );
        store.delete_mailbox(a.id, "Feeds").await.unwrap();
        assert_eq!(
            next(&mut feed).await,
            FeedEvent::Changed {
                mailbox: made,
                modseq: u64::MAX
            }
        );
        // A subscriber that falls behind is told to resync instead of being fed without bound.
        deliver(store, "a", jmail::store::notify::FEED_EVENTS_MAX + 5).await;
        assert_eq!(next(&mut feed).await, FeedEvent::Resync);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_read_in_pieces_and_the_summary_stored_at_delivery() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let b = user(store, "b").await;
        let raw = b"From: Ann <ann@x.org>\r\nSubject: pieces\r\nContent-Type: text/plain\r\n\r\n0123456789";
        let m = jmail::store::NewMessage::new(
            raw.to_vec(),
            "ann@x.org".into(),
            "pieces".into(),
            None,
            0,
        );
        store.deliver(&["a".into()], m, None).await.unwrap();
        let body = store.body_ref(a.inbox, 1).await.unwrap().unwrap();
        assert_eq!(body.len, raw.len() as u64);
        let mut got = Vec::new();
        while (got.len() as u64) < body.len {
            got.extend(store.body_chunk(body, got.len() as u64, 7).await.unwrap());
        }
        assert_eq!(got, raw);
        assert!(
            store
                .body_chunk(body, body.len, 7)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store.body_ref(b.inbox, 1).await.unwrap().is_none(),
            "not another account's"
        );
        let summary = store.summary(a.inbox, 1).await.unwrap().unwrap();
        let summary = jmail_proto::summary::Summary::from_json(&summary).unwrap();
        assert_eq!(summary.envelope.subject.as_deref(), Some("pieces"));
        let part = &summary.structure;
        assert_eq!(
            &raw[part.body_start as usize..part.body_end as usize],
            b"0123456789"
        );
        // Once the message is gone, a piece of it cannot be read.
        store.expunge(a.inbox, None, false).await.unwrap();
        assert!(store.body_chunk(body, 0, 7).await.is_err());
        assert!(store.summary(a.inbox, 1).await.unwrap().is_none());
    }
}

/// On SQLite, a copy and a move write rows, not the message's bytes again: after a 4 MiB message is
/// copied and then moved, the WAL (emptied before) holds a few pages. The count of copies once sat in
/// the bytes' row, and a change of it from 1 to 2 or back rewrote them all (12 MiB here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_and_moving_a_large_message_writes_no_bytes_again() {
    let dir = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(
        jmail::store::sqlite::SqliteStore::open_with(
            dir.path(),
            jmail::store::ModelLimits::default(),
        )
        .unwrap(),
    );
    let a = user(store.as_ref(), "a").await;
    let raw = format!(
        "From: a@x\r\nSubject: big\r\n\r\n{}\r\n",
        "x".repeat(4 << 20)
    );
    let big = jmail::store::NewMessage::new(raw.into_bytes(), "a@x".into(), "big".into(), None, 0);
    store.deliver(&["a".into()], big, None).await.unwrap();
    let wal = dir.path().join("jmail.db-wal");
    let conn = rusqlite::Connection::open(dir.path().join("jmail.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    // The store's own threads may be reading for a moment: until a checkpoint gets the WAL empty.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        if busy == 0 && std::fs::metadata(&wal).unwrap().len() == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL never emptied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let archive = store.mailbox(a.id, "Archive").await.unwrap().unwrap().id;
    let trash = store.mailbox(a.id, "Trash").await.unwrap().unwrap().id;
    store
        .copy(a.id, a.inbox, &[1], archive, false)
        .await
        .unwrap();
    store.copy(a.id, archive, &[1], trash, true).await.unwrap();
    let written = std::fs::metadata(&wal).unwrap().len();
    assert!(written < 256 << 10, "{written} bytes of WAL");
    assert_eq!(
        store.fetch(trash, 1, false).await.unwrap().unwrap().len(),
        (4 << 20) + 29
    );
}
