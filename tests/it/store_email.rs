//! Conformance tests for whole-Email writes (JMAP's Email/set): a create in several mailboxes and a change
//! of every copy of an Email are each one transaction, all or nothing, on every backend.

use jmail::store::email_change::{EmailChange, EmailChanged, Placement};
use jmail::store::{FlagOp, Flags, MailboxId, ModelLimits, QuotaSetting, Store, StoreError, flags};

use crate::store::{backends_with, count_in, message, user};

fn kw(words: &[&str]) -> Flags {
    Flags {
        system: 0,
        keywords: words.iter().map(|s| s.to_string()).collect(),
    }
}

/// Where the account holds copies of `blob`: (mailbox, UID), in order.
async fn places(store: &dyn Store, user: i64, blob: i64) -> Vec<(MailboxId, u32)> {
    let found = store.locate(user, &[blob]).await.unwrap();
    found.iter().map(|l| (l.mailbox, l.uid)).collect()
}

fn sorted(mut places: Vec<(MailboxId, u32)>) -> Vec<(MailboxId, u32)> {
    places.sort_unstable();
    places
}

/// The system flags and keywords of every copy of `blob` in the account, in order.
async fn flags_of(store: &dyn Store, user: i64, blob: i64) -> Vec<(i64, Vec<String>)> {
    let mut out = Vec::new();
    for (mailbox, uid) in places(store, user, blob).await {
        let listed = store
            .messages(mailbox, &[uid], jmail::store::Wanted::default())
            .await
            .unwrap();
        out.push((listed[0].meta.flags, listed[0].meta.keywords.clone()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_is_created_in_every_mailbox_at_once_or_not_at_all() {
    for (store, dir) in backends_with(ModelLimits::default()).await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let b = user(store, "b").await;
        let id = |name: &'static str| async move {
            store.mailbox(a.id, name).await.unwrap().unwrap().id
        };
        let (drafts, archive) = (id("Drafts").await, id("Archive").await);
        let seen = Flags::system(flags::SEEN);
        let blob = store
            .create_email(a.id, &[drafts, archive], message("two"), seen.clone())
            .await
            .unwrap();
        assert_eq!(
            places(store, a.id, blob).await,
            sorted(vec![(drafts, 1), (archive, 1)])
        );
        assert_eq!(
            count_in(
                dir.path(),
                &format!("SELECT count(*) FROM blobs WHERE id = {blob}")
            )
            .await,
            1,
            "its bytes stored once"
        );
        let blobs_before = count_in(dir.path(), "SELECT count(*) FROM blobs").await;
        // Another account's mailbox, anywhere in the list, and nothing is stored.
        assert!(matches!(
            store
                .create_email(a.id, &[drafts, b.inbox], message("x"), Flags::default())
                .await,
            Err(StoreError::NoSuchMailbox)
        ));
        assert!(matches!(
            store
                .create_email(a.id, &[b.inbox], message("x"), Flags::default())
                .await,
            Err(StoreError::NoSuchMailbox)
        ));
        // Room for one copy of three: none is kept.
        store
            .set_quota("a", None, Some(QuotaSetting::Limit(3)))
            .await
            .unwrap();
        assert!(matches!(
            store
                .create_email(
                    a.id,
                    &[a.inbox, drafts, archive],
                    message("y"),
                    Flags::default()
                )
                .await,
            Err(StoreError::OverQuota(_))
        ));
        assert_eq!(
            count_in(dir.path(), "SELECT count(*) FROM blobs").await,
            blobs_before
        );
        let drafts_now = store.mailbox(a.id, "Drafts").await.unwrap().unwrap();
        assert_eq!((drafts_now.messages, drafts_now.uid_next), (1, 2));
        assert_eq!(
            store
                .mailbox(a.id, "INBOX")
                .await
                .unwrap()
                .unwrap()
                .messages,
            0
        );
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_changes_as_one_and_a_refusal_anywhere_changes_nothing() {
    let limits = ModelLimits {
        keywords_per_mailbox_max: 2,
        ..ModelLimits::default()
    };
    for (store, _dir) in backends_with(limits).await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let b = user(store, "b").await;
        let id = |name: &'static str| async move {
            store.mailbox(a.id, name).await.unwrap().unwrap().id
        };
        let (archive, trash, junk) = (id("Archive").await, id("Trash").await, id("Junk").await);
        store
            .deliver(&["a".into()], message("m"), None)
            .await
            .unwrap();
        let blob = store.changes(a.inbox, 0, 10).await.unwrap().messages[0].blob;
        let apply = move |placement: Placement, keywords: Vec<(FlagOp, Flags)>| {
            store.change_email(
                a.id,
                blob,
                EmailChange {
                    placement,
                    keywords,
                },
            )
        };
        let junk_for_archive = || Placement::Patched {
            add: vec![junk],
            remove: vec![archive],
        };
        // Joined Archive and Trash, left INBOX: a move and a copy, keywords on both.
        let both = Placement::Exactly(vec![archive, trash]);
        let done = apply(both, vec![(FlagOp::Add, kw(&["work"]))]).await;
        assert_eq!(done.unwrap(), EmailChanged::Done);
        let archive_and_trash = sorted(vec![(archive, 1), (trash, 1)]);
        assert_eq!(places(store, a.id, blob).await, archive_and_trash);
        let work = (0, vec!["work".to_string()]);
        let both_work = vec![work.clone(), work];
        assert_eq!(flags_of(store, a.id, blob).await, both_work);
        // Trash's keyword room is full: adding one more to the Email is refused in Trash, and Archive's
        // copy is left as it was too, as is the patch's move into Junk.
        store
            .deliver(&["a".into()], message("other"), None)
            .await
            .unwrap();
        store.copy(a.id, a.inbox, &[2], trash, true).await.unwrap();
        store
            .update_flags(trash, &[2], FlagOp::Add, kw(&["full"]), None)
            .await
            .unwrap();
        let refused = apply(junk_for_archive(), vec![(FlagOp::Add, kw(&["new"]))]).await;
        assert!(
            matches!(refused, Err(StoreError::TooManyKeywords(2))),
            "{refused:?}"
        );
        assert_eq!(places(store, a.id, blob).await, archive_and_trash);
        assert_eq!(flags_of(store, a.id, blob).await, both_work);
        // A patch is resolved against the copies as they are: Junk joined, Archive left.
        let seen = Flags::system(flags::SEEN);
        let done = apply(junk_for_archive(), vec![(FlagOp::Replace, seen)]).await;
        assert_eq!(done.unwrap(), EmailChanged::Done);
        let trash_and_junk = sorted(vec![(trash, 1), (junk, 1)]);
        assert_eq!(places(store, a.id, blob).await, trash_and_junk);
        let seen = (flags::SEEN, Vec::new());
        assert_eq!(flags_of(store, a.id, blob).await, vec![seen.clone(), seen]);
        // Nowhere to be: refused, nothing done.
        let nowhere = Placement::Patched {
            add: vec![],
            remove: vec![trash, junk],
        };
        assert_eq!(
            apply(nowhere, vec![]).await.unwrap(),
            EmailChanged::NoMailbox
        );
        assert_eq!(places(store, a.id, blob).await, trash_and_junk);
        // Another account's mailbox as a target: refused whole.
        let theirs = apply(Placement::Exactly(vec![trash, b.inbox]), vec![]).await;
        assert!(
            matches!(theirs, Err(StoreError::NoSuchMailbox)),
            "{theirs:?}"
        );
        assert_eq!(places(store, a.id, blob).await, trash_and_junk);
        // Another account cannot touch it: to b the Email does not exist.
        let destroy = EmailChange {
            placement: Placement::Nowhere,
            keywords: Vec::new(),
        };
        let by_b = store.change_email(b.id, blob, destroy.clone()).await;
        assert_eq!(by_b.unwrap(), EmailChanged::NotFound);
        // A destroy takes every copy, and then there is nothing to find.
        let done = store.change_email(a.id, blob, destroy).await.unwrap();
        assert_eq!(done, EmailChanged::Done);
        assert!(places(store, a.id, blob).await.is_empty());
        let gone = apply(Placement::Unchanged, vec![(FlagOp::Add, kw(&["x"]))]).await;
        assert_eq!(gone.unwrap(), EmailChanged::NotFound);
        let trash_now = store.mailbox(a.id, "Trash").await.unwrap().unwrap();
        assert_eq!(trash_now.messages, 1, "the other message stays");
        store.close().await;
    }
}
