//! Conformance tests for the storage trait. Every backend must pass them; each test takes a
//! `&dyn Store`, so a new backend only adds a line to `backends()`.

use std::sync::Arc;

use jmail::store::postgres::PgStore;
use jmail::store::sqlite::SqliteStore;
use jmail::store::{FlagOp, FlagUpdate, Flags, ModelLimits, NewMessage, Store, StoreError, flags};

pub async fn backends() -> Vec<(Arc<dyn Store>, tempfile::TempDir)> {
    backends_with(ModelLimits::default()).await
}

/// Every backend, each with a store of its own: SQLite in a temp dir, and PostgreSQL in a new database
/// when the tests have a server (its URL then written in the temp dir, `pg::URL_FILE`).
pub async fn backends_with(limits: ModelLimits) -> Vec<(Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open_with(dir.path(), limits).unwrap());
    let mut all = vec![(sqlite, dir)];
    if let Some(url) = crate::pg::fresh_database().await {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(crate::pg::URL_FILE), &url).unwrap();
        let pg: Arc<dyn Store> = Arc::new(PgStore::open(&url, limits).await.unwrap());
        all.push((pg, dir));
    }
    all
}

/// The count a query (of SQL both backends take) gives in the store of a test dir of `backends()`.
pub async fn count_in(dir: &std::path::Path, sql: &str) -> i64 {
    match std::fs::read_to_string(dir.join(crate::pg::URL_FILE)) {
        Ok(url) => crate::pg::count(&url, sql).await,
        Err(_) => rusqlite::Connection::open(dir.join("jmail.db"))
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap(),
    }
}

pub fn message(subject: &str) -> NewMessage {
    NewMessage::new(
        format!("From: a@x\r\nSubject: {subject}\r\n\r\nbody\r\n").into_bytes(),
        "a@x".into(),
        subject.into(),
        None,
        1_700_000_000_000_000,
    )
}

pub async fn user(store: &dyn Store, name: &str) -> jmail::store::Account {
    let hash = jmail::auth::hash_password("pw");
    store.create_user(name, &hash, None).await.unwrap();
    jmail::accounts::authenticate(store, name, "pw")
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let hash = jmail::auth::hash_password("pw");
        store
            .create_user("ann", &hash, Some(message("welcome")))
            .await
            .unwrap();
        assert!(matches!(
            store.create_user("ann", &hash, None).await,
            Err(StoreError::UserExists(_))
        ));
        let acct = jmail::accounts::authenticate(store, "ann", "pw")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(acct.name, "ann");
        assert!(
            jmail::accounts::authenticate(store, "ann", "nope")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            jmail::accounts::authenticate(store, "nobody", "pw")
                .await
                .unwrap()
                .is_none()
        );
        store
            .set_password("ann", &jmail::auth::hash_password("new"))
            .await
            .unwrap();
        assert!(
            jmail::accounts::authenticate(store, "ann", "pw")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            jmail::accounts::authenticate(store, "ann", "new")
                .await
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            store.set_password("zed", &hash).await,
            Err(StoreError::NoSuchUser(_))
        ));
        let users = store.list_users().await.unwrap();
        assert_eq!(
            (users[0].name.as_str(), users[0].usage.messages),
            ("ann", 1)
        );
        store.delete_user("ann").await.unwrap();
        assert!(store.list_users().await.unwrap().is_empty());
        assert!(
            store
                .changes(acct.inbox, 0, 10)
                .await
                .unwrap()
                .messages
                .is_empty()
        );
        assert!(matches!(
            store.delete_user("ann").await,
            Err(StoreError::NoSuchUser(_))
        ));
    }
}

/// A sign-out's mark: from when an account's bearer tokens count; it never moves back and goes with the
/// account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_count_from_the_last_sign_out() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let b = user(store, "b").await;
        assert_eq!(store.tokens_from(a.id).await.unwrap(), Some(0));
        store.end_tokens(a.id, 2_000).await.unwrap();
        store.end_tokens(a.id, 1_000).await.unwrap();
        assert_eq!(store.tokens_from(a.id).await.unwrap(), Some(2_000));
        assert_eq!(store.tokens_from(b.id).await.unwrap(), Some(0));
        store.delete_user("a").await.unwrap();
        assert_eq!(store.tokens_from(a.id).await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_is_all_or_nothing() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let b = user(store, "b").await;
        let r = store
            .deliver(&["a".into(), "ghost".into()], message("x"), None)
            .await;
        assert!(matches!(r, Err(StoreError::UnknownRecipient(n)) if n == "ghost"));
        assert!(
            store
                .changes(a.inbox, 0, 10)
                .await
                .unwrap()
                .messages
                .is_empty()
        );
        let d = store
            .deliver(&["a".into(), "b".into(), "a".into()], message("y"), None)
            .await
            .unwrap();
        assert_eq!(d.len(), 2, "a named twice gets one copy");
        assert_eq!(
            store.changes(b.inbox, 0, 10).await.unwrap().messages[0].subject,
            "y"
        );
        assert_eq!(
            store.fetch(a.inbox, 1, false).await.unwrap().unwrap(),
            message("y").raw
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_flags_expunge_and_isolation() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let b = user(store, "b").await;
        for i in 0..3 {
            store
                .deliver(&["a".into()], message(&format!("m{i}")), None)
                .await
                .unwrap();
        }
        let all = store.changes(a.inbox, 0, 100).await.unwrap();
        assert_eq!(
            all.messages
                .iter()
                .map(|m| (m.uid, m.modseq))
                .collect::<Vec<_>>(),
            vec![(1, 1), (2, 2), (3, 3)]
        );
        assert_eq!((all.through_modseq, all.more), (3, false));
        let page = store.changes(a.inbox, 0, 2).await.unwrap();
        assert_eq!(
            (page.messages.len(), page.through_modseq, page.more),
            (2, 2, true)
        );

        let seen_flagged = Flags::system(flags::SEEN | flags::FLAGGED);
        let u = store
            .update_flags(a.inbox, &[2], FlagOp::Add, seen_flagged, None)
            .await
            .unwrap();
        assert_eq!(u.changed.len(), 1);
        assert_eq!(
            store.expunge(a.inbox, Some(&[1]), false).await.unwrap(),
            vec![1]
        );
        assert!(
            store
                .expunge(a.inbox, Some(&[1]), false)
                .await
                .unwrap()
                .is_empty()
        );
        let u = store
            .update_flags(a.inbox, &[1], FlagOp::Add, Flags::system(flags::SEEN), None)
            .await
            .unwrap();
        assert_eq!(u, FlagUpdate::default(), "no such message");
        let c = store.changes(a.inbox, 3, 100).await.unwrap();
        assert_eq!(c.messages.len(), 1);
        assert_eq!(
            (c.messages[0].uid, c.messages[0].flags),
            (2, flags::SEEN | flags::FLAGGED)
        );
        assert_eq!((c.gone.clone(), c.through_modseq), (vec![1], 5));
        // Setting a flag that is already set changes nothing.
        let u = store
            .update_flags(a.inbox, &[2], FlagOp::Add, Flags::system(flags::SEEN), None)
            .await
            .unwrap();
        assert_eq!((u.changed.len(), u.unchanged.len()), (0, 1));
        assert_eq!(
            store.changes(a.inbox, 5, 100).await.unwrap().through_modseq,
            5
        );
        // fetch with mark_seen flags durably.
        store.fetch(a.inbox, 3, true).await.unwrap().unwrap();
        assert_eq!(
            store.changes(a.inbox, 5, 100).await.unwrap().messages[0].flags,
            flags::SEEN
        );

        // b's mailbox id cannot see or touch a's messages.
        assert!(store.fetch(b.inbox, 2, false).await.unwrap().is_none());
        let u = store
            .update_flags(b.inbox, &[2], FlagOp::Add, Flags::system(flags::SEEN), None)
            .await
            .unwrap();
        assert_eq!(u, FlagUpdate::default());
        assert!(
            store
                .expunge(b.inbox, Some(&[2]), false)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .changes(b.inbox, 0, 100)
                .await
                .unwrap()
                .messages
                .is_empty()
        );
    }
}

/// Every copy of a message shares its bytes' id (JMAP's Email id): a copy and a move keep it, `locate`
/// finds the copies an account holds and no other account's, `shared_copies` those it holds more than
/// once, and each tombstone keeps it (`tombstones` finds them by it).
/// A Sent copy shares the bytes of what other accounts received, but mail to oneself is two messages
/// (JMAP: two Emails, each with its own keywords): the copy in Sent keeps bytes of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_to_oneself_is_two_messages() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let b = user(store, "b").await;
        let sent = store.mailbox(a.id, "Sent").await.unwrap().unwrap().id;
        let blob_of = |mailbox, uid| async move {
            let listed = store
                .messages(mailbox, &[uid], jmail::store::Wanted::default())
                .await
                .unwrap();
            listed[0].meta.blob
        };
        store
            .deliver(&["b".into()], message("to b"), Some(a.id))
            .await
            .unwrap();
        let to_b = blob_of(b.inbox, 1).await;
        assert_eq!(blob_of(sent, 1).await, to_b, "sent to another: one blob");
        store
            .deliver(&["a".into(), "b".into()], message("to both"), Some(a.id))
            .await
            .unwrap();
        let (received, kept) = (blob_of(a.inbox, 1).await, blob_of(sent, 2).await);
        assert_ne!(
            received, kept,
            "to oneself: the Sent copy is a message of its own"
        );
        assert_eq!(blob_of(b.inbox, 2).await, received);
        assert_eq!(
            store.shared_copies(a.id, 10).await.unwrap(),
            vec![],
            "a holds nothing twice"
        );
        let raw =
            |mailbox, uid| async move { store.fetch(mailbox, uid, false).await.unwrap().unwrap() };
        assert_eq!(raw(a.inbox, 1).await, raw(sent, 2).await, "the same bytes");
        // Removing either leaves the other whole.
        store.expunge(sent, None, false).await.unwrap();
        assert_eq!(raw(a.inbox, 1).await, raw(b.inbox, 2).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_keep_their_bytes_id_and_are_located_by_it() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let c = user(store, "c").await;
        store
            .deliver(&["a".into()], message("m"), None)
            .await
            .unwrap();
        let blob = store.changes(a.inbox, 0, 10).await.unwrap().messages[0].blob;
        let mailbox = |name: &'static str| async move {
            store.mailbox(a.id, name).await.unwrap().unwrap().id
        };
        let (archive, trash) = (mailbox("Archive").await, mailbox("Trash").await);
        store
            .copy(a.id, a.inbox, &[1], archive, false)
            .await
            .unwrap();
        let at = |mailbox, uid| jmail::store::Located { blob, mailbox, uid };
        assert_eq!(
            store.locate(a.id, &[blob, blob + 1000]).await.unwrap(),
            vec![at(a.inbox, 1), at(archive, 1)]
        );
        assert!(
            store.locate(c.id, &[blob]).await.unwrap().is_empty(),
            "not c's"
        );
        store
            .deliver(&["a".into(), "c".into()], message("single"), None)
            .await
            .unwrap();
        assert_eq!(
            store.shared_copies(a.id, 10).await.unwrap(),
            vec![at(a.inbox, 1), at(archive, 1)],
            "what a holds twice, not what it holds once (though c holds it too)"
        );
        assert_eq!(
            store.shared_copies(a.id, 1).await.unwrap(),
            vec![at(a.inbox, 1)]
        );
        assert!(store.shared_copies(c.id, 10).await.unwrap().is_empty());
        let listed = store
            .messages(archive, &[1], jmail::store::Wanted::default())
            .await
            .unwrap();
        assert_eq!(listed[0].meta.blob, blob, "a copy shares the bytes' id");
        store.copy(a.id, archive, &[1], trash, true).await.unwrap();
        assert_eq!(
            store.locate(a.id, &[blob]).await.unwrap(),
            vec![at(a.inbox, 1), at(trash, 1)]
        );
        let lost = store.tombstones(a.id, &[blob, blob + 1000]).await.unwrap();
        assert_eq!(
            lost.iter()
                .map(|t| (t.blob, t.mailbox, t.uid))
                .collect::<Vec<_>>(),
            vec![(blob, archive, 1)],
            "the move left a tombstone where it came from"
        );
        assert_eq!(
            lost[0].modseq,
            store
                .mailbox(a.id, "Archive")
                .await
                .unwrap()
                .unwrap()
                .highest_modseq
        );
        assert!(store.tombstones(c.id, &[blob]).await.unwrap().is_empty());
        let moved_from = store.changes(archive, 0, 10).await.unwrap();
        assert_eq!(
            (moved_from.gone, moved_from.gone_blobs),
            (vec![1], vec![Some(blob)])
        );
        assert_eq!(
            store.changes(trash, 0, 10).await.unwrap().messages[0].blob,
            blob
        );
        store.expunge(a.inbox, None, false).await.unwrap();
        store.expunge(trash, None, false).await.unwrap();
        assert!(store.locate(a.id, &[blob]).await.unwrap().is_empty());
        assert!(store.shared_copies(a.id, 10).await.unwrap().is_empty());
        let places: Vec<_> = store
            .tombstones(a.id, &[blob])
            .await
            .unwrap()
            .iter()
            .map(|t| (t.mailbox, t.uid))
            .collect();
        let mut expected = vec![(a.inbox, 1), (archive, 1), (trash, 1)];
        expected.sort();
        assert_eq!(places, expected);
        let gone = store.changes(a.inbox, 0, 10).await.unwrap();
        assert_eq!(
            (gone.gone, &gone.gone_blobs[..1]),
            (vec![1, 2], &[Some(blob)][..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_get_distinct_uids_and_wake_watchers() {
    for (store, _dir) in backends().await {
        let a = user(store.as_ref(), "a").await;
        let mut watch = jmail::store::MailboxWatch::new(store.feed(a.id), a.inbox);
        let mut tasks = Vec::new();
        for i in 0..300 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .deliver(&["a".into()], message(&format!("c{i}")), None)
                    .await
                    .unwrap()[0]
                    .uid
            }));
        }
        let mut uids = Vec::new();
        for t in tasks {
            uids.push(t.await.unwrap());
        }
        uids.sort();
        assert_eq!(uids, (1..=300).collect::<Vec<u32>>());
        tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed())
            .await
            .unwrap();
        store.close().await;
        assert!(matches!(
            store.deliver(&["a".into()], message("late"), None).await,
            Err(StoreError::Closed)
        ));
    }
}

/// Lists carry each message's POP3 size: CRLF line ends, last line ended, whatever the stored form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_crlf_size_counts_bare_lf_and_an_unended_last_line() {
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let ann = user(store, "ann").await;
        let canonical = message("crlf");
        let canonical_len = canonical.raw.len() as u64;
        let bare = NewMessage::new(
            b"Subject: lf\n\nline\n.dot\nlast".to_vec(),
            "a@x".into(),
            "lf".into(),
            None,
            1_700_000_000_000_000,
        );
        store
            .deliver(&["ann".into()], canonical, None)
            .await
            .unwrap();
        store.deliver(&["ann".into()], bare, None).await.unwrap();
        let listed = store.changes(ann.inbox, 0, 10).await.unwrap().messages;
        let sizes: Vec<(u64, u64)> = listed.iter().map(|m| (m.size, m.crlf_size)).collect();
        assert_eq!(
            sizes,
            vec![(canonical_len, canonical_len), (27, 27 + 4 + 2)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_listing_and_usage() {
    use jmail::store::{Quota, QuotaSetting, Wanted};
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "ann").await;
        let b = user(store, "bob").await;
        for i in 0..40 {
            store
                .append(a.inbox, message(&format!("m{i}")), Flags::default())
                .await
                .unwrap();
        }
        let big = NewMessage::new(
            vec![b'x'; 5000],
            String::new(),
            String::new(),
            None,
            1_700_000_000_000_000,
        );
        store.append(a.inbox, big, Flags::default()).await.unwrap(); // UID 41
        let kw = Flags {
            system: flags::SEEN,
            keywords: vec!["$Work".into()],
        };
        store
            .update_flags(a.inbox, &[3], FlagOp::Add, kw, None)
            .await
            .unwrap();
        store.expunge(a.inbox, Some(&[5]), false).await.unwrap();

        // Snapshot: every UID with its flags, the highest modseq, the keywords seen.
        let snap = store.snapshot(a.inbox).await.unwrap();
        assert_eq!(snap.messages.len(), 40);
        assert_eq!(snap.messages[2], (3, flags::SEEN));
        assert!(!snap.messages.iter().any(|(uid, _)| *uid == 5));
        assert_eq!(snap.keywords, vec!["$Work".to_string()]);
        let info = store.mailbox(a.id, "INBOX").await.unwrap().unwrap();
        assert_eq!(snap.highest_modseq, info.highest_modseq);
        // Another user's mailbox shows nothing of ann's.
        assert!(store.snapshot(b.inbox).await.unwrap().messages.is_empty());

        // Listing: sparse and dense sets, absent UIDs skipped, summary and bytes only as asked.
        let sparse = store
            .messages(a.inbox, &[1, 5, 41, 99], Wanted::default())
            .await
            .unwrap();
        let uids: Vec<u32> = sparse.iter().map(|l| l.meta.uid).collect();
        assert_eq!(uids, vec![1, 41]);
        assert!(
            sparse
                .iter()
                .all(|l| l.summary.is_none() && l.raw.is_none())
        );
        let dense: Vec<u32> = (1..=41).collect();
        let wanted = Wanted {
            summary: true,
            raw_bytes_max: 1000,
        };
        let listed = store.messages(a.inbox, &dense, wanted).await.unwrap();
        assert_eq!(listed.len(), 40);
        assert_eq!(listed[2].meta.keywords, vec!["$Work".to_string()]);
        assert!(listed.iter().all(|l| l.summary.is_some()));
        let raw_of = |uid: u32| {
            listed
                .iter()
                .find(|l| l.meta.uid == uid)
                .unwrap()
                .raw
                .clone()
        };
        assert_eq!(
            raw_of(1).unwrap(),
            b"From: a@x\r\nSubject: m0\r\n\r\nbody\r\n".to_vec()
        );
        assert_eq!(raw_of(41), None, "larger than raw_bytes_max");
        // Only the mailbox asked about: bob asking with ann's UIDs in his INBOX gets nothing.
        assert!(
            store
                .messages(b.inbox, &dense, wanted)
                .await
                .unwrap()
                .is_empty()
        );

        // Usage against the quota in force.
        store
            .set_quota("ann", Some(QuotaSetting::Limit(1 << 20)), None)
            .await
            .unwrap();
        let (usage, quota) = store.usage(a.id).await.unwrap().unwrap();
        assert_eq!(usage.messages, 40);
        assert!(usage.bytes > 5000);
        assert_eq!(
            quota,
            Quota {
                bytes: Some(1 << 20),
                messages: None
            }
        );
        assert_eq!(store.usage(-1).await.unwrap(), None);
    }
}

/// Uploads (JMAP's blobs before use): kept per account, found by no other account, gone once expired
/// or their account is deleted, and refused past the account's room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_per_account_expire_and_have_a_ceiling() {
    for (store, dir) in backends().await {
        let store = store.as_ref();
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let put = |user, key: &str, bytes: &[u8], now_micros, expires_micros| {
            store.upload_put(jmail::store::NewUpload {
                user,
                key: key.to_string(),
                media_type: "text/plain".to_string(),
                bytes: bytes.to_vec(),
                now_micros,
                expires_micros,
                account_bytes_max: 10,
            })
        };
        assert!(put(alice.id, "k1", b"hello", 100, 200).await.unwrap());
        assert_eq!(
            store.upload_get(alice.id, "k1", 150).await.unwrap(),
            Some((b"hello".to_vec(), "text/plain".to_string()))
        );
        assert_eq!(store.upload_get(bob.id, "k1", 150).await.unwrap(), None);
        assert_eq!(store.upload_get(alice.id, "k1", 200).await.unwrap(), None);
        // Room: 10 bytes an account; an expired upload no longer counts (and is removed).
        assert!(!put(alice.id, "k2", b"too much!", 150, 300).await.unwrap());
        assert!(put(bob.id, "k2", b"bob's", 150, 300).await.unwrap());
        assert!(put(alice.id, "k3", b"fits now", 250, 400).await.unwrap());
        assert_eq!(
            count_in(dir.path(), "SELECT count(*) FROM uploads").await,
            2
        );
        store.delete_user("alice").await.unwrap();
        assert_eq!(
            count_in(dir.path(), "SELECT count(*) FROM uploads").await,
            1
        );
    }
}

/// The automatic reply: the default is off; each change raises its version and forgets whom it
/// answered; RCPT's lookup says who is away; a sender is answered once per interval; the account's
/// deletion takes all of it along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacation_settings_versions_and_whom_it_answered() {
    use jmail::store::Vacation;
    for (store, dir) in backends().await {
        let store = store.as_ref();
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        assert_eq!(
            store.vacation(alice.id).await.unwrap(),
            (Vacation::default(), 0)
        );
        let away = |name| async move { store.recipient(name).await.unwrap().unwrap().away };
        assert!(!away("alice").await);
        let on = Vacation {
            enabled: true,
            from_micros: Some(100),
            to_micros: None,
            subject: Some("Away".into()),
            text_body: Some("Back soon".into()),
            html_body: None,
        };
        assert_eq!(store.set_vacation(alice.id, &on).await.unwrap(), 1);
        assert_eq!(store.vacation(alice.id).await.unwrap(), (on.clone(), 1));
        assert_eq!(
            store.recipient("alice").await.unwrap().unwrap().user,
            alice.id
        );
        assert!(away("alice").await);
        assert!(!away("bob").await, "another account's setting is its own");
        assert_eq!(store.vacation(bob.id).await.unwrap().1, 0);

        let day = 86_400_000_000;
        let due =
            |user, sender: &'static str, now| store.vacation_reply_due(user, sender, now, day);
        assert!(due(alice.id, "ann@else.test", 1_000).await.unwrap());
        assert!(!due(alice.id, "ann@else.test", 2_000).await.unwrap());
        assert!(due(alice.id, "joe@else.test", 2_000).await.unwrap());
        assert!(
            due(bob.id, "ann@else.test", 2_000).await.unwrap(),
            "per account"
        );
        assert!(!due(alice.id, "ann@else.test", 999 + day).await.unwrap());
        assert!(due(alice.id, "ann@else.test", 2_000 + day).await.unwrap());
        // Only the answered within the interval are kept: joe's row went with that check.
        assert_eq!(
            count_in(dir.path(), "SELECT count(*) FROM vacation_replies").await,
            2
        );

        let off = Vacation {
            enabled: false,
            ..on
        };
        assert_eq!(store.set_vacation(alice.id, &off).await.unwrap(), 2);
        assert!(!away("alice").await);
        assert_eq!(
            count_in(dir.path(), "SELECT count(*) FROM vacation_replies").await,
            1,
            "a change forgets whom the old reply answered"
        );
        store.set_vacation(bob.id, &off).await.unwrap();
        store.delete_user("alice").await.unwrap();
        store.delete_user("bob").await.unwrap();
        assert_eq!(
            count_in(dir.path(), "SELECT count(*) FROM vacations").await,
            0
        );
    }
}

/// Identity settings: none at first (version 0); a change is made only at the version it read, raises
/// it, and is the account's own; the account's deletion takes them along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_settings_change_only_at_the_version_read() {
    for (store, dir) in backends().await {
        let store = store.as_ref();
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        assert_eq!(store.identity_settings(alice.id).await.unwrap(), (None, 0));
        let set =
            |user, text: &'static str, version| store.set_identity_settings(user, text, version);
        assert_eq!(set(alice.id, "{\"a\":1}", 0).await.unwrap(), Some(1));
        assert_eq!(
            set(alice.id, "{\"a\":2}", 0).await.unwrap(),
            None,
            "another change came first"
        );
        assert_eq!(set(alice.id, "{\"a\":3}", 1).await.unwrap(), Some(2));
        assert_eq!(set(alice.id, "{\"a\":4}", 1).await.unwrap(), None);
        assert_eq!(
            store.identity_settings(alice.id).await.unwrap(),
            (Some("{\"a\":3}".to_string()), 2)
        );
        assert_eq!(store.identity_settings(bob.id).await.unwrap(), (None, 0));
        assert_eq!(set(bob.id, "{}", 0).await.unwrap(), Some(1));
        store.delete_user("alice").await.unwrap();
        assert_eq!(
            count_in(dir.path(), "SELECT count(*) FROM identity_settings").await,
            1,
            "bob's only"
        );
    }
}

/// Kept submissions: numbered upwards, never twice; the account's own; the latest
/// `SUBMISSIONS_KEPT_MAX` kept, and none older than `SUBMISSION_KEPT_MICROS` once another is stored;
/// one forgotten on request; all gone with the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_are_kept_a_while_and_numbered_once() {
    use jmail::store::rules::{SUBMISSION_KEPT_MICROS, SUBMISSIONS_KEPT_MAX};
    for (store, dir) in backends().await {
        let store = store.as_ref();
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        assert!(store.submissions(alice.id).await.unwrap().is_empty());
        let first = store
            .add_submission(alice.id, "{\"n\":0}", 1_000)
            .await
            .unwrap();
        let bobs = store.add_submission(bob.id, "{}", 1_000).await.unwrap();
        assert!(bobs > first);
        assert_eq!(
            store.submissions(alice.id).await.unwrap(),
            vec![(first, "{\"n\":0}".to_string())]
        );
        // A week later, the next one's storing drops the first.
        let later = 1_000 + SUBMISSION_KEPT_MICROS + 1;
        let mut ids = Vec::new();
        for n in 0..SUBMISSIONS_KEPT_MAX + 3 {
            ids.push(
                store
                    .add_submission(alice.id, &format!("{{\"n\":{n}}}"), later)
                    .await
                    .unwrap(),
            );
        }
        let kept: Vec<u64> = store
            .submissions(alice.id)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(kept, ids[3..].to_vec(), "the latest, in order");
        assert!(
            !store.destroy_submission(alice.id, bobs).await.unwrap(),
            "bob's is not hers"
        );
        assert!(store.destroy_submission(alice.id, ids[5]).await.unwrap());
        assert!(!store.destroy_submission(alice.id, ids[5]).await.unwrap());
        assert_eq!(
            store.submissions(alice.id).await.unwrap().len() as i64,
            SUBMISSIONS_KEPT_MAX - 1
        );
        let last = *ids.last().unwrap();
        store.destroy_submission(alice.id, last).await.unwrap();
        let next = store.add_submission(alice.id, "{}", later).await.unwrap();
        assert!(next > last, "a number is never given twice");
        store.delete_user("alice").await.unwrap();
        assert_eq!(
            count_in(dir.path(), "SELECT count(*) FROM submissions").await,
            1,
            "bob's only"
        );
    }
}

/// `changes` against the truth, after a random mix of deliveries, appends, flag changes, expunges, copies
/// and moves both ways: for every modseq, all at once and page by page, and as an idler follows it, each
/// read starting where the last one said (`Changes::next`, which tells where new mail begins). Stored
/// mail is found by its UID (its modseq rises with it) and changed mail by a modseq index of changed mail
/// only: a message either way must appear exactly once, at its current modseq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_since_every_modseq_match_a_full_listing() {
    use jmail::store::Wanted;
    use rand::{Rng, SeedableRng};
    for (store, _dir) in backends().await {
        let store = store.as_ref();
        let a = user(store, "a").await;
        let other = store.create_mailbox(a.id, "Other", true).await.unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        // What an idler following INBOX's log after every step knows: UID -> modseq.
        let mut follower = std::collections::BTreeMap::new();
        let mut followed = jmail::store::Since::default();
        for step in 0..160 {
            let (inbox_uids, other_uids) =
                (uids_in(store, a.inbox).await, uids_in(store, other).await);
            let some = |uids: &[u32], rng: &mut rand::rngs::StdRng| -> Vec<u32> {
                uids.iter().copied().filter(|_| rng.gen_bool(0.3)).collect()
            };
            match rng.gen_range(0..7) {
                0 | 1 => {
                    store
                        .deliver(&["a".into()], message(&format!("m{step}")), None)
                        .await
                        .unwrap();
                }
                2 => {
                    store
                        .append(other, message(&format!("o{step}")), Flags::default())
                        .await
                        .unwrap();
                }
                3 => {
                    let op = match rng.gen_bool(0.5) {
                        true => FlagOp::Add,
                        false => FlagOp::Remove,
                    };
                    let pick = some(&inbox_uids, &mut rng);
                    store
                        .update_flags(a.inbox, &pick, op, Flags::system(flags::SEEN), None)
                        .await
                        .unwrap();
                }
                4 => {
                    let pick = some(&inbox_uids, &mut rng);
                    store.expunge(a.inbox, Some(&pick), false).await.unwrap();
                }
                5 => {
                    let pick = some(&other_uids, &mut rng);
                    let moved = rng.gen_bool(0.5);
                    store
                        .copy(a.id, other, &pick, a.inbox, moved)
                        .await
                        .unwrap();
                }
                _ => {
                    let pick = some(&inbox_uids, &mut rng);
                    let moved = rng.gen_bool(0.5);
                    store
                        .copy(a.id, a.inbox, &pick, other, moved)
                        .await
                        .unwrap();
                }
            }
            loop {
                let page = store.changes_from(a.inbox, followed, 4).await.unwrap();
                follower.extend(page.messages.iter().map(|m| (m.uid, m.modseq)));
                for uid in &page.gone {
                    follower.remove(uid);
                }
                followed = page.next();
                if !page.more {
                    break;
                }
            }
            let uids = uids_in(store, a.inbox).await;
            let mut truth: Vec<(u64, u32)> = store
                .messages(a.inbox, &uids, Wanted::default())
                .await
                .unwrap()
                .iter()
                .map(|l| (l.meta.modseq, l.meta.uid))
                .collect();
            truth.sort();
            let mut followed_all: Vec<(u64, u32)> =
                follower.iter().map(|(u, m)| (*m, *u)).collect();
            followed_all.sort();
            assert_eq!(followed_all, truth, "step {step}, following the log");
            if step % 40 != 39 {
                continue;
            }
            let highest = store.snapshot(a.inbox).await.unwrap().highest_modseq;
            for since in 0..=highest {
                let expected: Vec<(u64, u32)> =
                    truth.iter().copied().filter(|t| t.0 > since).collect();
                let all = store.changes(a.inbox, since, 100_000).await.unwrap();
                let got: Vec<(u64, u32)> = all.messages.iter().map(|m| (m.modseq, m.uid)).collect();
                assert_eq!(got, expected, "step {step}, since {since}, all at once");
                if since % 13 != 0 {
                    continue;
                }
                let mut paged = Vec::new();
                let mut from = jmail::store::Since::modseq(since);
                loop {
                    let page = store.changes_from(a.inbox, from, 3).await.unwrap();
                    paged.extend(page.messages.iter().map(|m| (m.modseq, m.uid)));
                    from = page.next();
                    if !page.more {
                        break;
                    }
                }
                paged.sort();
                assert_eq!(paged, expected, "step {step}, since {since}, in pages of 3");
            }
        }
    }
}

async fn uids_in(store: &dyn Store, mailbox: jmail::store::MailboxId) -> Vec<u32> {
    let snapshot = store.snapshot(mailbox).await.unwrap();
    snapshot.messages.iter().map(|m| m.0).collect()
}
