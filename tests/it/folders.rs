//! Native protocol 2.1 (folders) over real sockets, what a 2.0 client still sees, quotas as each protocol
//! says them, and the CLI's folder commands.

use jmail::store::{AccountStore, MailStore, QuotaSetting};

use crate::cli::{add_user, as_user, jmail, serve_with, text};
use crate::harness::TestServer;

/// A raw 2.1 session logged in as `user`.
async fn raw21(s: &TestServer, user: &str, password: &str) -> crate::harness::Raw {
    let mut r = s.raw().await;
    r.send(b"JMAIL 2.1 test\r\n").await;
    r.expect_prefix("OK JMAIL 2.1 jmail/").await;
    r.send(format!("LOGIN {user} {password}\r\n").as_bytes())
        .await;
    r.expect("OK LOGIN welcome").await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_select_copy_move_and_their_errors() {
    let s = TestServer::start().await;
    s.add_user("ann", "ann-pw").await;
    s.add_user("bob", "bob-pw").await;
    let mut r = raw21(&s, "ann", "ann-pw").await;
    r.send(b"SEND bob hi KEEP {5+}\r\nhello\r\n").await;
    r.expect_prefix("OK SENT 1 <").await;
    r.send(b"FOLDERS\r\n").await;
    // The welcome message is in INBOX; the send left a seen copy in Sent.
    let ann = s.store.credentials("ann").await.unwrap().unwrap();
    let welcome_bytes = s.store.changes(ann.inbox, 0, 9).await.unwrap().messages[0].size;
    let sent = s.store.mailbox(ann.id, "Sent").await.unwrap().unwrap();
    r.expect("* FOLDER \"Archive\" archive 0 0 0").await;
    r.expect("* FOLDER \"Drafts\" drafts 0 0 0").await;
    r.expect(&format!("* FOLDER \"INBOX\" inbox 1 1 {welcome_bytes}"))
        .await;
    r.expect("* FOLDER \"Junk\" junk 0 0 0").await;
    r.expect(&format!("* FOLDER \"Sent\" sent 1 0 {}", sent.bytes))
        .await;
    r.expect("* FOLDER \"Trash\" trash 0 0 0").await;
    r.expect("OK FOLDERS 6").await;

    r.send(b"CREATE \"Work/2026 plans\"\r\nCREATE Work\r\nCREATE a//b\r\n")
        .await;
    r.expect("OK CREATE").await;
    r.expect("NO EXISTS a folder of that name exists").await;
    r.expect_prefix("NO BADNAME a mailbox name cannot have an empty level")
        .await;

    // COPY and MOVE from INBOX; the new id is in the new folder.
    r.send(b"COPY 1 Archive\r\nMOVE 1 \"Work/2026 plans\"\r\nMOVE 1 Archive\r\nCOPY 2 Nowhere\r\n")
        .await;
    r.expect("OK COPY 1").await;
    r.expect("OK MOVE 1").await;
    r.expect("NO NOTFOUND no message 1").await;
    r.expect("NO NOFOLDER no such folder").await;
    r.send(b"LIST\r\n").await;
    r.expect("OK LIST 2").await; // INBOX is empty: the welcome message (modseq 1) moved out (2)

    // SELECT another folder: LIST, READ, MARK, DELETE work there.
    r.send(b"SELECT \"work/2026 plans\"\r\n").await;
    r.expect("NO NOFOLDER no such folder").await;
    r.send(b"SELECT \"Work/2026 plans\"\r\n").await;
    let selected = r.expect_prefix("OK SELECT ").await;
    let plans = s
        .store
        .mailbox(ann.id, "Work/2026 plans")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(selected, format!("OK SELECT {} 1", plans.uid_validity));
    r.send(b"LIST\r\n").await;
    r.expect_prefix("* MSG 1 1 UNSEEN ").await;
    r.expect("OK LIST 1").await;
    r.send(b"READ 1\r\nMARK 1 UNSEEN\r\nDELETE 1\r\nDELETE 1\r\n")
        .await;
    r.expect_prefix("* MESSAGE 1 {").await;
    let mut line = r.line().await;
    while line != "OK READ" {
        line = r.line().await;
    }
    r.expect("OK MARK").await;
    r.expect("OK DELETE").await;
    r.expect("NO NOTFOUND no message 1").await;

    // The selected folder cannot be removed; INBOX never; others can.
    r.send(b"REMOVE \"Work/2026 plans\"\r\nREMOVE INBOX\r\nRENAME Work Jobs\r\nREMOVE Nope\r\n")
        .await;
    r.expect("NO REFUSED the selected folder cannot be removed; SELECT another first")
        .await;
    r.expect("NO REFUSED INBOX cannot be deleted").await;
    r.expect("OK RENAME").await;
    r.expect("NO NOFOLDER no such folder").await;
    r.send(b"SELECT inbox\r\nREMOVE Jobs\r\nFOLDERS\r\n").await;
    r.expect_prefix("OK SELECT ").await;
    r.expect("OK REMOVE").await;
    let mut names = Vec::new();
    loop {
        let line = r.line().await;
        if line.starts_with("OK FOLDERS") {
            break;
        }
        names.push(line.split('"').nth(1).unwrap().to_string());
    }
    assert_eq!(
        names,
        [
            "Archive",
            "Drafts",
            "INBOX",
            "Jobs/2026 plans",
            "Junk",
            "Sent",
            "Trash"
        ]
    );

    // bob cannot reach ann's folders by name: names are per account.
    let mut b = raw21(&s, "bob", "bob-pw").await;
    b.send(b"SELECT Archive\r\nLIST\r\n").await;
    b.expect_prefix("OK SELECT ").await;
    b.expect("OK LIST 0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_0_client_sees_what_it_saw_before() {
    let s = TestServer::start().await;
    s.add_user("ann", "ann-pw").await;
    let mut r = s.raw_login("ann", "ann-pw").await;
    r.send(b"CAPA\r\n").await;
    r.expect("* CAPA VERSION 2.0").await;
    r.expect("* CAPA LITERAL+").await;
    r.expect("* CAPA WATCH").await;
    r.expect_prefix("* CAPA MESSAGE-BYTES-MAX ").await;
    let mut line = r.line().await;
    while line != "OK CAPA" {
        assert!(!line.contains("FOLDERS"), "{line}");
        line = r.line().await;
    }
    for command in [
        "FOLDERS",
        "SELECT Sent",
        "CREATE x",
        "MOVE 1 Trash",
        "COPY 1 Trash",
    ] {
        r.send(format!("{command}\r\n").as_bytes()).await;
        r.expect("BAD UNKNOWN unknown command").await;
    }
    // A 2.0 client's send is as before (no Sent copy: KEEP is 2.1), and so is its listing.
    r.send(b"SEND ann me {2+}\r\nhi\r\nSEND ann me KEEP {2+}\r\nhi\r\nLIST\r\n")
        .await;
    r.expect_prefix("OK SENT 1").await;
    r.expect("BAD UNKNOWN unknown command").await;
    r.expect_prefix("* MSG 1 ").await;
    r.expect_prefix("* MSG 2 ").await;
    r.expect("OK LIST 2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quota_is_refused_in_each_protocols_words() {
    let s = TestServer::start_with(|c| c.smtp_port = Some(0)).await;
    s.add_user("ann", "ann-pw").await;
    s.add_user("bob", "bob-pw").await;
    // ann holds her welcome message; one message is her limit.
    s.store
        .set_quota("ann", None, Some(QuotaSetting::Limit(1)))
        .await
        .unwrap();
    let mut r = raw21(&s, "bob", "bob-pw").await;
    r.send(b"SEND ann full {2+}\r\nhi\r\n").await;
    r.expect("NO OVERQUOTA ann's mailbox is full; nothing was stored")
        .await;
    // SMTP: a full mailbox is said at RCPT (452 4.2.2); a message that would pass a quota that still has
    // room gets 552 5.2.2 after DATA. Nothing is stored either way.
    let smtp = s.addr_of(jmail::server::Service::Smtp);
    let session = |port: u16| {
        let script = format!(
            r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port})
s.ehlo("client.example")
s.mail("x@example.org")
code, text = s.rcpt("ann@localhost")
print(code, text.decode())
if code == 250:
    code, text = s.data(b"Subject: hi\r\n\r\n" + b"x" * 200 + b"\r\n")
    print(code, text.decode())
s.quit()
"#
        );
        let out = std::process::Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(
        session(smtp.port()).trim(),
        "452 4.2.2 <ann@localhost>: mailbox full; try again later"
    );
    let used = s.store.list_users().await.unwrap()[0].usage.bytes;
    s.store
        .set_quota(
            "ann",
            Some(QuotaSetting::Limit(used + 100)),
            Some(QuotaSetting::Unlimited),
        )
        .await
        .unwrap();
    assert_eq!(
        session(smtp.port()).trim(),
        "250 2.1.5 Recipient OK\n552 5.2.2 <ann>: mailbox full; nothing was stored"
    );
    let users = s.store.list_users().await.unwrap();
    let ann = users.iter().find(|u| u.name == "ann").unwrap();
    assert_eq!(ann.usage.messages, 1);
    // Bob's own Sent copy (KEEP) fails the same way when he is full: nothing is sent then.
    s.store
        .set_quota("bob", None, Some(QuotaSetting::Limit(1)))
        .await
        .unwrap();
    s.store
        .set_quota(
            "ann",
            Some(QuotaSetting::Unlimited),
            Some(QuotaSetting::Unlimited),
        )
        .await
        .unwrap();
    r.send(b"SEND ann again KEEP {2+}\r\nhi\r\n").await;
    r.expect("NO OVERQUOTA bob's mailbox is full; nothing was stored")
        .await;
    let users = s.store.list_users().await.unwrap();
    let bob = users.iter().find(|u| u.name == "bob").unwrap();
    assert_eq!(bob.usage.messages, 1, "no Sent copy");
    let ann = users.iter().find(|u| u.name == "ann").unwrap();
    assert_eq!(ann.usage.messages, 1, "and nothing delivered");
}

#[test]
fn cli_folders_move_copy_and_folder_options() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, "ann", "ann-pw-123");
    add_user(d, "bob", "bob-pw-123");
    let served = serve_with(d, &[]);
    let addr = served.addr.clone();
    let ann = |args: &[&str]| {
        let out = as_user(d, &addr, "ann", "ann-pw-123", args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let bob = |args: &[&str]| {
        let out = as_user(d, &addr, "bob", "bob-pw-123", args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    ann(&["send", "bob", "--subject", "plans", "--message", "see you"]);
    // jmail send kept a copy in ann's Sent.
    let folders: serde_json::Value = serde_json::from_str(&ann(&["folders", "--json"])).unwrap();
    let sent = folders
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Sent")
        .unwrap();
    assert_eq!(
        (
            sent["role"].as_str(),
            sent["messages"].as_u64(),
            sent["unseen"].as_u64()
        ),
        (Some("sent"), Some(1), Some(0))
    );
    let listed: serde_json::Value =
        serde_json::from_str(&ann(&["inbox", "--folder", "Sent", "--json"])).unwrap();
    assert_eq!(listed["messages"][0]["subject"], "plans");
    // bob files it away: move to a new folder, read and mark it there.
    assert_eq!(
        bob(&["folder", "create", "Friends/Ann"]).trim(),
        "created folder Friends/Ann"
    );
    let inbox: serde_json::Value = serde_json::from_str(&bob(&["inbox", "--json"])).unwrap();
    let id = inbox["messages"][1]["id"].as_u64().unwrap().to_string();
    assert_eq!(
        bob(&["move", &id, "Friends/Ann"]).trim(),
        format!("moved message {id} to Friends/Ann as 1")
    );
    assert!(bob(&["read", "--folder", "Friends/Ann", "1"]).contains("see you"));
    bob(&["mark", "--folder", "Friends/Ann", "1", "--unread"]);
    let there: serde_json::Value =
        serde_json::from_str(&bob(&["inbox", "--folder", "Friends/Ann", "--json"])).unwrap();
    assert_eq!(
        (
            there["messages"][0]["id"].as_u64(),
            there["messages"][0]["seen"].as_bool()
        ),
        (Some(1), Some(false))
    );
    assert_eq!(
        bob(&["copy", "--folder", "Friends/Ann", "1", "Archive"]).trim(),
        "copied message 1 to Archive as 1"
    );
    bob(&["delete", "--folder", "Friends/Ann", "1"]);
    bob(&["folder", "rename", "Friends", "People"]);
    let table = bob(&["folders"]);
    assert!(table.contains("People/Ann"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("Archive") && l.contains(" 1 ")),
        "{table}"
    );
    bob(&["folder", "remove", "People/Ann"]);
    // Errors are plain: an unknown folder, INBOX removal.
    let out = as_user(
        d,
        &addr,
        "bob",
        "bob-pw-123",
        &["inbox", "--folder", "Nope"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no such folder"),
        "{}",
        text(&out.stderr)
    );
    let out = as_user(
        d,
        &addr,
        "bob",
        "bob-pw-123",
        &["folder", "remove", "INBOX"],
    );
    assert!(
        text(&out.stderr).contains("INBOX cannot be deleted"),
        "{}",
        text(&out.stderr)
    );
    // Quotas from the CLI: set, shown by user list, enforced on the next send.
    let out = jmail(
        &["user", "quota", "bob", "--messages", "2", "--storage", "1M"],
        d,
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let users = jmail(&["user", "list", "--json"], d).output().unwrap();
    let users: serde_json::Value = serde_json::from_slice(&users.stdout).unwrap();
    let b = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "bob")
        .unwrap();
    assert_eq!(
        (
            b["messages"].as_u64(),
            b["quota_messages"].as_u64(),
            b["quota_bytes"].as_u64()
        ),
        (Some(2), Some(2), Some(1 << 20))
    );
    let plain = text(&jmail(&["user", "list"], d).output().unwrap().stdout);
    assert!(
        plain
            .lines()
            .any(|l| l.starts_with("bob") && l.contains("2/2 messages") && l.contains("/1.0 MiB")),
        "{plain}"
    );
    let out = as_user(
        d,
        &addr,
        "ann",
        "ann-pw-123",
        &["send", "bob", "--message", "one more"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("mailbox is full"),
        "{}",
        text(&out.stderr)
    );
    let out = jmail(&["user", "quota", "bob", "--messages", "lots"], d)
        .output()
        .unwrap();
    assert!(!out.status.success());
    drop(served);
}
