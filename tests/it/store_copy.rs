//! `jmail store copy`: a SQLite data dir into PostgreSQL and back, everything kept (UIDs, UIDVALIDITY,
//! modseqs, flags, keywords, quotas, passwords, shared bytes), resumable, verified.

use std::sync::Arc;

use jmail::store::postgres::PgStore;
use jmail::store::sqlite::SqliteStore;
use jmail::store::{
    AccountStore, CopyStore, FlagOp, Flags, MailStore, MailboxInfo, ModelLimits, QuotaSetting,
    Store, flags,
};
use tempfile::TempDir;

use crate::cli::{jmail, text};
use crate::store::{count_in, message};

/// Everything a client sees of an account: its id, its mailboxes and each one's messages, with the ids
/// JMAP names them by.
async fn picture(store: &dyn Store, user: &str) -> Vec<(MailboxInfo, Vec<String>)> {
    let account = jmail::accounts::authenticate(store, user, "pw")
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    for mailbox in store.mailboxes(account.id).await.unwrap() {
        let snapshot = store.snapshot(mailbox.id).await.unwrap();
        let uids: Vec<u32> = snapshot.messages.iter().map(|m| m.0).collect();
        let wanted = jmail::store::Wanted {
            summary: true,
            raw_bytes_max: u64::MAX,
        };
        let listed = store.messages(mailbox.id, &uids, wanted).await.unwrap();
        let mut lines: Vec<String> = listed
            .iter()
            // With the blob id: JMAP's Email id, which the copy keeps.
            .map(|l| format!("{:?} {:?} {:?}", l.meta, l.summary, l.raw))
            .collect();
        // What QRESYNC tells a client that was away: the tombstones.
        let changes = store.changes(mailbox.id, 0, 100_000).await.unwrap();
        lines.push(format!("gone {:?} {:?}", changes.gone, changes.gone_blobs));
        out.push((mailbox, lines));
    }
    let usage = store.usage(account.id).await.unwrap();
    out.push((
        MailboxInfo {
            id: 0,
            name: format!(
                "account {} usage {usage:?} modseq {:?} away {:?}",
                account.id,
                store.account_modseq(account.id).await.unwrap(),
                store.vacation(account.id).await.unwrap().0
            ),
            role: None,
            subscribed: false,
            uid_validity: 0,
            uid_next: 0,
            highest_modseq: 0,
            messages: 0,
            unseen: 0,
            bytes: 0,
            first_recent_uid: 0,
        },
        Vec::new(),
    ));
    out
}

fn copy(from: &str, to: &str) -> String {
    let scratch = TempDir::new().unwrap();
    let out = jmail(
        &["store", "copy", "--from", from, "--to", to],
        scratch.path(),
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_moves_to_postgresql_and_back_unchanged() {
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let source = TempDir::new().unwrap();
    {
        let store = SqliteStore::open(source.path()).unwrap();
        let hash = jmail::auth::hash_password("pw");
        for name in ["ann", "bob"] {
            store
                .create_user(name, &hash, Some(message("welcome")))
                .await
                .unwrap();
        }
        let ann = jmail::accounts::authenticate(&store, "ann", "pw")
            .await
            .unwrap()
            .unwrap();
        store
            .set_quota(
                "bob",
                Some(QuotaSetting::Limit(1 << 20)),
                Some(QuotaSetting::Unlimited),
            )
            .await
            .unwrap();
        for i in 0..30 {
            // To both: one blob shared by two accounts.
            store
                .deliver(
                    &["ann".into(), "bob".into()],
                    message(&format!("m{i}")),
                    None,
                )
                .await
                .unwrap();
        }
        let away = jmail::store::Vacation {
            enabled: true,
            from_micros: Some(1),
            to_micros: Some(2_000_000_000_000_000),
            subject: Some("Away".into()),
            text_body: Some("Back soon".into()),
            html_body: Some("<p>Back soon</p>".into()),
        };
        store.set_vacation(ann.id, &away).await.unwrap();
        // Deleted while subscribed: its name stays subscribed, and is copied as such.
        store.create_mailbox(ann.id, "Gone", true).await.unwrap();
        store.delete_mailbox(ann.id, "Gone").await.unwrap();
        let made = store
            .create_mailbox(ann.id, "Work/2026", true)
            .await
            .unwrap();
        store.delete_mailbox(ann.id, "Work/2026").await.unwrap();
        let remade = store
            .create_mailbox(ann.id, "Work/2026", true)
            .await
            .unwrap();
        assert_ne!(made, remade);
        let keyword = Flags {
            system: flags::FLAGGED,
            keywords: vec!["$Important".into()],
        };
        store
            .update_flags(ann.inbox, &[2, 3, 4], FlagOp::Add, keyword, None)
            .await
            .unwrap();
        store
            .copy(ann.id, ann.inbox, &[2, 3, 9], remade, false)
            .await
            .unwrap();
        store
            .expunge(ann.inbox, Some(&[5, 6]), false)
            .await
            .unwrap();
        // The newest account and the newest bytes deleted: the copy's counters must still pass them,
        // or it would hand their ids (JMAP account and Email ids a client may hold) out again.
        store.create_user("cy", &hash, None).await.unwrap();
        store.delete_user("cy").await.unwrap();
        let last = store
            .deliver(&["ann".into()], message("last"), None)
            .await
            .unwrap();
        store
            .expunge(ann.inbox, Some(&[last[0].uid]), false)
            .await
            .unwrap();
        store.close().await;
    }
    let src = source.path().to_str().unwrap();
    let said = copy(src, &url);
    assert!(
        said.contains("copied 2 users, 14 mailboxes, 63 messages"),
        "{said}"
    );
    assert!(said.contains("verified 63 messages"), "{said}");

    let sqlite = SqliteStore::open(source.path()).unwrap();
    let pg = PgStore::open(&url, ModelLimits::default()).await.unwrap();
    for user in ["ann", "bob"] {
        assert_eq!(
            picture(&sqlite, user).await,
            picture(&pg, user).await,
            "{user}"
        );
    }
    let ann = sqlite.credentials("ann").await.unwrap().unwrap().id;
    assert_eq!(pg.kept_subscriptions(ann).await.unwrap(), ["Gone"]);
    let counters = sqlite.copy_counters().await.unwrap();
    assert_eq!(counters, pg.copy_counters().await.unwrap());
    assert_eq!((counters.users, counters.blobs), (3, 2 + 30 + 1));
    let blobs = "SELECT count(*) FROM blobs";
    let target = TempDir::new().unwrap();
    std::fs::write(target.path().join(crate::pg::URL_FILE), &url).unwrap();
    assert_eq!(
        count_in(target.path(), blobs).await,
        count_in(source.path(), blobs).await,
        "bytes shared there are shared here"
    );

    // An interrupted copy resumes: as if the run had stopped after bob's first pages, the target
    // lacks his newest messages (gone row by row, as a rolled-back page leaves it); a second run
    // copies just those and verifies everything.
    pg.close().await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let cut = client
        .execute(
            "DELETE FROM messages WHERE uid > 24 AND mailbox_id = (SELECT m.id FROM mailboxes m \
             JOIN users u ON u.id = m.user_id WHERE u.name = 'bob' AND m.name = 'INBOX')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(cut, 7);
    let said = copy(src, &url);
    assert!(
        said.contains("copied 2 users, 14 mailboxes, 7 messages") && said.contains("verified 63"),
        "{said}"
    );
    let pg = PgStore::open(&url, ModelLimits::default()).await.unwrap();
    assert_eq!(picture(&sqlite, "bob").await, picture(&pg, "bob").await);
    assert_eq!(pg.copy_counters().await.unwrap(), counters);

    // A target that differs (a flag changed there) fails the comparison, and says where.
    let bob = jmail::accounts::authenticate(&pg, "bob", "pw")
        .await
        .unwrap()
        .unwrap();
    let seen = Flags::system(flags::SEEN);
    pg.update_flags(bob.inbox, &[3], FlagOp::Add, seen, None)
        .await
        .unwrap();
    pg.close().await;
    let scratch = TempDir::new().unwrap();
    let out = jmail(
        &["store", "copy", "--from", src, "--to", &url],
        scratch.path(),
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("verification failed") && said.contains("bob's mailbox INBOX"),
        "{said}"
    );

    // Copied back to a new data dir: the same picture as the original.
    let fresh = crate::pg::fresh_database().await.unwrap();
    copy(src, &fresh);
    let back = TempDir::new().unwrap();
    let said = copy(&fresh, back.path().to_str().unwrap());
    assert!(said.contains("verified 63 messages"), "{said}");
    let returned = Arc::new(SqliteStore::open(back.path()).unwrap());
    for user in ["ann", "bob"] {
        assert_eq!(
            picture(&sqlite, user).await,
            picture(returned.as_ref(), user).await,
            "{user}"
        );
    }
    assert_eq!(returned.copy_counters().await.unwrap(), counters);
    // New mail there gets bytes numbered past every id the source handed out.
    let ann = jmail::accounts::authenticate(returned.as_ref(), "ann", "pw")
        .await
        .unwrap()
        .unwrap();
    let new = returned
        .deliver(&["ann".into()], message("after"), None)
        .await
        .unwrap();
    let listed = returned
        .messages(ann.inbox, &[new[0].uid], jmail::store::Wanted::default())
        .await
        .unwrap();
    assert_eq!(listed[0].meta.blob, counters.blobs + 1);
    // A target holding an account of the same name that is not a copy is refused, untouched.
    let occupied = crate::pg::fresh_database().await.unwrap();
    let other = PgStore::open(&occupied, ModelLimits::default())
        .await
        .unwrap();
    other
        .create_user("bob", &jmail::auth::hash_password("pw"), None)
        .await
        .unwrap();
    other.close().await;
    let scratch = TempDir::new().unwrap();
    let out = jmail(
        &["store", "copy", "--from", src, "--to", &occupied],
        scratch.path(),
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let said = text(&out.stderr);
    // Its bob took the id the source's ann has: the copy stops at the first account.
    assert!(
        said.contains("account ann (or its id) that is not a copy"),
        "{said}"
    );

    // And a run on a finished copy adds nothing and verifies.
    let said = copy(src, &fresh);
    assert!(
        said.contains("63 messages") && said.contains("copied 2 users, 14 mailboxes, 0 messages"),
        "{said}"
    );
}
