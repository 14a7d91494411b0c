//! The native protocol over real sockets: exact replies for every command.

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_accepts_major_2_and_refuses_others() {
    let s = TestServer::start().await;
    let mut r = s.raw().await;
    r.send(b"JMAIL 2.7 some-client/1.0\r\n").await;
    let ok = r.expect_prefix("OK JMAIL 2.1 jmail/").await;
    assert!(ok.ends_with(" ready"), "{ok}");

    let mut r = s.raw().await;
    r.send(b"JMAIL 3.0\r\n").await;
    r.expect("BYE VERSION this server speaks 2.x; your client speaks 3.0")
        .await;
    assert!(r.closed().await.0);

    let mut r = s.raw().await;
    r.send(b"jmail 1.9\r\n").await;
    r.expect("BYE VERSION this server speaks 2.x; your client speaks 1.9")
        .await;
    assert!(r.closed().await.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_good_and_bad_look_the_same_for_unknown_users() {
    let s = TestServer::start().await;
    s.add_user("alice", "correct horse").await;
    let mut r = s.raw().await;
    r.send(b"JMAIL 2.0\r\n").await;
    r.expect_prefix("OK JMAIL").await;
    r.send(b"LOGIN alice wrong\r\n").await;
    let wrong_password = r.line().await;
    r.send(b"LOGIN nobody wrong\r\n").await;
    let unknown_user = r.line().await;
    r.send(b"LOGIN \"not a valid name\" wrong\r\n").await;
    let invalid_name = r.line().await;
    assert_eq!(wrong_password, "NO AUTH invalid user name or password");
    assert_eq!(unknown_user, wrong_password);
    assert_eq!(invalid_name, wrong_password);
    // The third failure also closes the connection.
    r.expect("BYE AUTH too many failed logins").await;
    assert!(r.closed().await.0);

    let mut r = s.raw().await;
    r.send(b"JMAIL 2.0\r\nLOGIN Alice \"correct horse\"\r\n")
        .await;
    r.expect_prefix("OK JMAIL").await;
    r.expect("OK LOGIN welcome").await;
    r.send(b"LOGIN alice x\r\n").await;
    r.expect("BAD STATE already logged in").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_list_read_mark_delete() {
    let s = TestServer::start().await;
    s.add_user("alice", "pa").await;
    s.add_user("bob", "pb").await;
    let mut a = s.raw_login("alice", "pa").await;
    // Synchronizing literal: the server invites the body.
    a.send(b"SEND bob,alice@localhost \"Lunch?\" {13}\r\n")
        .await;
    a.expect("+ send 13 bytes").await;
    a.send(b"noon\nat the\r\n\r\n").await;
    let sent = a.expect_prefix("OK SENT 2 <").await;
    assert!(sent.ends_with("@localhost>"), "{sent}");
    // Non-synchronizing literal, no subject.
    a.send(b"SEND BOB@LOCALHOST {2+}\r\nhi\r\n").await;
    a.expect_prefix("OK SENT 1 <").await;

    let mut b = s.raw_login("bob", "pb").await;
    b.send(b"LIST\r\n").await;
    let welcome = b.expect_prefix("* MSG 1 1 UNSEEN ").await;
    assert!(
        welcome.ends_with(" \"postmaster@localhost\" \"Welcome to Jmail\""),
        "{welcome}"
    );
    let lunch = b.expect_prefix("* MSG 2 2 UNSEEN ").await;
    assert!(
        lunch.ends_with(" \"alice@localhost\" \"Lunch?\""),
        "{lunch}"
    );
    let hi = b.expect_prefix("* MSG 3 3 UNSEEN ").await;
    assert!(hi.ends_with(" \"alice@localhost\" \"\""), "{hi}");
    b.expect("OK LIST 3").await;
    // Nothing new: an empty answer at the same modseq.
    b.send(b"LIST 3\r\n").await;
    b.expect("OK LIST 3").await;

    // READ returns the stored bytes, whose size LIST announced, and marks the message seen.
    let size: usize = lunch.split(' ').nth(5).unwrap().parse().unwrap();
    b.send(b"READ 2\r\n").await;
    b.expect(&format!("* MESSAGE 2 {{{size}}}")).await;
    let raw = b.bytes(size).await;
    assert_eq!(b.line().await, "");
    b.expect("OK READ").await;
    let shown = jmail::message::render(&raw);
    assert_eq!(shown.body, b"noon\nat the\r\n");
    assert_eq!(shown.subject, "Lunch?");
    assert_eq!(shown.from, "alice@localhost");
    assert_eq!(shown.to, "bob@localhost, alice@localhost");
    let headers = String::from_utf8_lossy(&raw);
    for h in [
        "From: ",
        "To: ",
        "Date: ",
        "Message-ID: <",
        "Subject: Lunch?",
    ] {
        assert!(headers.contains(h), "missing {h} in {headers}");
    }

    b.send(b"LIST 3\r\n").await;
    b.expect_prefix("* MSG 2 4 SEEN ").await;
    b.expect("OK LIST 4").await;
    b.send(b"MARK 2 UNSEEN\r\nMARK 99 SEEN\r\nDELETE 3\r\nDELETE 3\r\nREAD 3\r\n")
        .await;
    b.expect("OK MARK").await;
    b.expect("NO NOTFOUND no message 99").await;
    b.expect("OK DELETE").await;
    b.expect("NO NOTFOUND no message 3").await;
    b.expect("NO NOTFOUND no message 3").await;
    b.send(b"LIST 4\r\n").await;
    b.expect_prefix("* MSG 2 5 UNSEEN ").await;
    b.expect("* GONE 3").await;
    b.expect("OK LIST 6").await;
    b.send(b"LOGOUT\r\n").await;
    b.expect("BYE LOGOUT goodbye").await;
    assert!(b.closed().await.0);

    // Alice got her own copy; bob's flags and deletions did not touch it.
    a.send(b"LIST\r\n").await;
    a.expect_prefix("* MSG 1 1 UNSEEN ").await;
    a.expect_prefix("* MSG 2 2 UNSEEN ").await;
    a.expect("OK LIST 2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_unknown_or_remote_recipient_stores_nothing() {
    let s = TestServer::start().await;
    s.add_user("alice", "pa").await;
    s.add_user("bob", "pb").await;
    let mut a = s.raw_login("alice", "pa").await;
    a.send(b"SEND bob,ghost {1+}\r\nx\r\n").await;
    a.expect("NO NOUSER no such user: ghost; nothing was sent")
        .await;
    a.send(b"SEND \"bad name\" {1+}\r\nx\r\n").await;
    a.expect("NO NOUSER no such user: bad name; nothing was sent")
        .await;
    a.send(b"SEND bob,carol@example {1+}\r\nx\r\n").await;
    a.expect("NO NOUSER carol@example: not a deliverable address; nothing was sent")
        .await;
    // bob still has only his welcome message, and no mailbox appeared for ghost.
    let mut b = s.client("bob", "pb").await;
    let listing = b.list(0).await.unwrap();
    assert_eq!(listing.messages.len(), 1);
    assert_eq!(s.user_names().await, vec!["alice", "bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capa_noop_and_commands_before_login() {
    let s = TestServer::start().await;
    let mut r = s.raw().await;
    r.send(b"LOGOUT\r\n").await;
    r.expect("BYE LOGOUT goodbye").await;
    let mut r = s.raw().await;
    r.send(b"NOOP\r\n").await;
    r.expect("BAD STATE say \"JMAIL 2.1\" first").await;
    r.send(b"JMAIL 2.0\r\nCAPA\r\n").await;
    r.expect_prefix("OK JMAIL").await;
    r.expect("* CAPA VERSION 2.0").await;
    r.expect("* CAPA LITERAL+").await;
    r.expect("* CAPA WATCH").await;
    r.expect("* CAPA MESSAGE-BYTES-MAX 10485760").await;
    r.expect("* CAPA RECIPIENTS-MAX 100").await;
    r.expect("* CAPA LINE-BYTES-MAX 8192").await;
    r.expect("* CAPA LIST-BATCH-MAX 1000").await;
    r.expect("* CAPA DOMAIN localhost").await;
    r.expect("* CAPA STARTTLS").await;
    r.expect("OK CAPA").await;
    r.send(b"LIST\r\nREAD 1\r\nNOOP\r\nJMAIL 2.0\r\n").await;
    r.expect("BAD STATE log in first").await;
    r.expect("BAD STATE log in first").await;
    r.expect("OK NOOP").await;
    r.expect("BAD STATE version already agreed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_comes_in_batches() {
    let s = TestServer::start_with(|c| c.limits.list_batch_max = 2).await;
    s.add_user("alice", "pa").await;
    let mut c = s.client("alice", "pa").await;
    for i in 0..4 {
        c.send(&["alice".into()], &format!("m{i}"), b"x")
            .await
            .unwrap();
    }
    let mut r = s.raw_login("alice", "pa").await;
    r.send(b"LIST\r\n").await;
    r.expect_prefix("* MSG 1 1 ").await;
    r.expect_prefix("* MSG 2 2 ").await;
    r.expect("OK LIST 2 MORE").await;
    r.send(b"LIST 2\r\n").await;
    r.expect_prefix("* MSG 3 3 ").await;
    r.expect_prefix("* MSG 4 4 ").await;
    r.expect("OK LIST 4 MORE").await;
    r.send(b"LIST 4\r\n").await;
    r.expect_prefix("* MSG 5 5 ").await;
    r.expect("OK LIST 5").await;
    // The client library follows MORE to the end.
    let all = c.list(0).await.unwrap();
    assert_eq!(
        all.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(all.modseq, 5);
}
