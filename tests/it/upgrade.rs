//! Upgrades never break data: a data dir written by the release of 2026-12-03 (schema 4,
//! tests/fixtures/schema4/, made by its make.sh) opens under this version with every user, password,
//! message, flag, date, UID and deletion intact and every message's bytes identical, and new mail
//! continues the UIDs.

use jmail::store::sqlite::SqliteStore;
use jmail::store::{AccountStore, MailStore};
use sha2::{Digest, Sha256};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema4");

#[tokio::test]
async fn a_schema_4_data_dir_opens_with_everything_intact() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{FIXTURE}/jmail.db"),
        dir.path().join(jmail::store::sqlite::DB_FILE),
    )
    .unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURE}/expected.json")).unwrap())
            .unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    for (name, want) in expected.as_object().unwrap() {
        let password = want["password"].as_str().unwrap();
        let account = jmail::accounts::authenticate(&store, name, password)
            .await
            .unwrap();
        let account = account.unwrap_or_else(|| panic!("{name} logs in with the old password"));
        let changes = store.changes(account.inbox, 0, 10_000).await.unwrap();
        assert_eq!(
            changes.through_modseq,
            want["highest_modseq"].as_u64().unwrap(),
            "{name}"
        );
        let gone: Vec<u64> = changes.gone.iter().map(|&u| u64::from(u)).collect();
        let want_gone: Vec<u64> = want["expunged"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(gone, want_gone, "{name}: deletions");
        let want_messages = want["messages"].as_array().unwrap();
        assert_eq!(changes.messages.len(), want_messages.len(), "{name}");
        for (got, want) in changes.messages.iter().zip(want_messages) {
            let place = format!("{name} uid {}", got.uid);
            assert_eq!(u64::from(got.uid), want["uid"].as_u64().unwrap(), "{place}");
            assert_eq!(got.flags, want["flags"].as_i64().unwrap(), "{place}");
            assert_eq!(got.size, want["size"].as_u64().unwrap(), "{place}");
            assert_eq!(
                got.internal_date_micros,
                want["internal_micros"].as_i64().unwrap(),
                "{place}"
            );
            let raw = store
                .fetch(account.inbox, got.uid, false)
                .await
                .unwrap()
                .unwrap();
            let digest: String = Sha256::digest(&raw)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(digest, want["sha256"].as_str().unwrap(), "{place}: bytes");
            // The summary made at upgrade is the one delivery makes today, of the same bytes.
            let summary = store.summary(account.inbox, got.uid).await.unwrap();
            assert_eq!(
                summary
                    .as_deref()
                    .and_then(jmail_proto::summary::Summary::from_json),
                Some(jmail_proto::summary::summarize_message(&raw)),
                "{place}: summary"
            );
        }
        // The upgrade gave the account the mail model: the six special-use mailboxes, counts that match
        // the messages, usage, and a summary of every message stored before.
        let boxes = store.mailboxes(account.id).await.unwrap();
        let roles: Vec<&str> = boxes
            .iter()
            .filter_map(|m| m.role.map(|r| r.as_str()))
            .collect();
        assert_eq!(
            roles,
            ["archive", "drafts", "inbox", "junk", "sent", "trash"],
            "{name}"
        );
        let inbox = boxes.iter().find(|m| m.name == "INBOX").unwrap();
        let unseen = want_messages
            .iter()
            .filter(|m| m["flags"].as_i64().unwrap() & jmail::store::flags::SEEN == 0)
            .count() as u64;
        let bytes: u64 = want_messages
            .iter()
            .map(|m| m["size"].as_u64().unwrap())
            .sum();
        assert_eq!(
            (inbox.messages, inbox.unseen, inbox.bytes),
            (want_messages.len() as u64, unseen, bytes),
            "{name}: counts"
        );
        assert_eq!(
            inbox.highest_modseq,
            want["highest_modseq"].as_u64().unwrap()
        );
        // Mail from before \Recent was kept is recent to no one.
        assert_eq!(
            (
                store.recent_count(inbox.id).await.unwrap(),
                inbox.first_recent_uid
            ),
            (0, inbox.uid_next),
            "{name}: nothing recent"
        );
        assert!(store.account_modseq(account.id).await.unwrap().unwrap() >= inbox.highest_modseq);
        let listed = store.list_users().await.unwrap();
        let me = listed.iter().find(|u| &u.name == name).unwrap();
        assert_eq!(
            (me.usage.messages, me.usage.bytes),
            (inbox.messages, bytes),
            "{name}: usage"
        );
        // New mail continues the UIDs: none is ever reused.
        let message = jmail::message::build_native(&jmail::message::NativeSend {
            from: "x@localhost",
            message_id: None,
            date_micros: None,
            from_name: None,
            to: &[format!("{name}@localhost")],
            subject: "after the upgrade",
            body: b"hi",
            domain: "localhost",
        });
        let delivered = store
            .deliver(std::slice::from_ref(name), message, None)
            .await
            .unwrap();
        assert_eq!(
            u64::from(delivered[0].uid),
            want["uid_next"].as_u64().unwrap(),
            "{name}: the next UID"
        );
    }
    store.close().await;
}
