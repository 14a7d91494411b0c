//! WATCH pushes new mail the moment it is stored, with no polling.

use jmail_proto::native::reply::Untagged;

use crate::harness::{REPLY_WAIT, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_pushes_new_mail_and_done_ends_it() {
    let s = TestServer::start().await;
    s.add_user("alice", "pa").await;
    s.add_user("bob", "pb").await;
    let mut b = s.raw_login("bob", "pb").await;
    b.send(b"WATCH\r\n").await;
    b.expect("+ WATCHING send DONE to stop").await;

    let mut a = s.client("alice", "pa").await;
    a.send(&["bob".into()], "ping", b"are you there?")
        .await
        .unwrap();
    let pushed = b.expect_prefix("* MSG 2 2 UNSEEN ").await;
    assert!(pushed.ends_with("\"alice@localhost\" \"ping\""), "{pushed}");

    // Only DONE is accepted while watching.
    b.send(b"LIST\r\n").await;
    b.expect("BAD STATE only DONE or LOGOUT while watching")
        .await;
    b.send(b"DONE\r\n").await;
    b.expect("OK WATCH 2").await;
    b.send(b"LIST 2\r\n").await;
    b.expect("OK LIST 2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_modseq_catches_up_first_and_sees_other_sessions_changes() {
    let s = TestServer::start().await;
    s.add_user("bob", "pb").await;
    let mut other = s.client("bob", "pb").await;
    let mut w = s.client("bob", "pb").await;
    let start = w.list(0).await.unwrap().modseq;
    // A change between LIST and WATCH is not lost.
    other.send(&["bob".into()], "between", b"1").await.unwrap();
    w.watch(start).await.unwrap();
    let first = tokio::time::timeout(REPLY_WAIT, w.next_change())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&first, Untagged::Msg(m) if m.subject == "between"),
        "{first:?}"
    );
    other.delete(1).await.unwrap();
    let gone = tokio::time::timeout(REPLY_WAIT, w.next_change())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone, Untagged::Gone(1));
    other.mark(2, true).await.unwrap();
    let flagged = tokio::time::timeout(REPLY_WAIT, w.next_change())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&flagged, Untagged::Msg(m) if m.id == 2 && m.seen),
        "{flagged:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_catch_up_is_pushed_in_batches_to_the_end() {
    let s = TestServer::start_with(|c| c.limits.list_batch_max = 2).await;
    s.add_user("bob", "pb").await;
    let mut sender = s.client("bob", "pb").await;
    for i in 0..5 {
        sender
            .send(&["bob".into()], &format!("n{i}"), b"x")
            .await
            .unwrap();
    }
    let mut w = s.raw_login("bob", "pb").await;
    w.send(b"WATCH 1\r\n").await;
    w.expect("+ WATCHING send DONE to stop").await;
    for id in 2..=6 {
        w.expect_prefix(&format!("* MSG {id} {id} UNSEEN ")).await;
    }
    w.send(b"DONE\r\n").await;
    w.expect("OK WATCH 6").await;
}

/// Mail stored by another process (`jmail deliver`) is pushed to a watcher within about a second, and
/// `jmail user del` from another process ends a watching session at once, without a command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_processs_writes_reach_watchers() {
    let s = TestServer::start().await;
    s.add_user("bob", "pb").await;
    let mut b = s.raw_login("bob", "pb").await;
    b.send(b"WATCH\r\n").await;
    b.expect("+ WATCHING send DONE to stop").await;
    let started = std::time::Instant::now();
    crate::cli::deliver_from_another_process(s.dir.path(), "bob", "from outside").await;
    let pushed = b.expect_prefix("* MSG 2 ").await;
    assert!(pushed.ends_with("\"from outside\""), "{pushed}");
    println!(
        "pushed {:?} after jmail deliver was started",
        started.elapsed()
    );

    crate::cli::delete_user_from_another_process(s.dir.path(), "bob").await;
    b.expect("BYE REVOKED the account was deleted or its password changed; log in again")
        .await;
}
