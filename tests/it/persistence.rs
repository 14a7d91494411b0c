//! Mail and accounts survive a restart; shutdown tells connected clients.

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_flags_and_deletions_survive_a_restart() {
    let s = TestServer::start().await;
    s.add_user("alice", "pa").await;
    s.add_user("bob", "pb").await;
    let mut a = s.client("alice", "pa").await;
    for i in 0..3 {
        a.send(
            &["bob".into()],
            &format!("n{i}"),
            format!("body {i}").as_bytes(),
        )
        .await
        .unwrap();
    }
    let mut b = s.client("bob", "pb").await;
    b.mark(2, true).await.unwrap();
    b.delete(3).await.unwrap();
    let before = b.list(0).await.unwrap();
    let mut watcher = s.raw_login("bob", "pb").await;
    watcher.send(b"WATCH\r\n").await;
    watcher.expect("+ WATCHING send DONE to stop").await;

    let dir = s.stop().await;
    watcher.expect("BYE SHUTDOWN server is shutting down").await;
    assert!(watcher.closed().await.0);

    let s = TestServer::start_in(dir, |_| {}).await;
    let mut b = s.client("bob", "pb").await;
    let after = b.list(0).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(
        after
            .messages
            .iter()
            .map(|m| (m.id, m.seen))
            .collect::<Vec<_>>(),
        vec![(1, false), (2, true), (4, false)]
    );
    let raw = b.read(4).await.unwrap();
    assert_eq!(jmail::message::render(&raw).body, b"body 2");
    // UIDs are never reused after a restart.
    a = s.client("alice", "pa").await;
    a.send(&["bob".into()], "after", b"restart").await.unwrap();
    let newest = b.list(after.modseq).await.unwrap();
    assert_eq!(
        newest.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![4, 5]
    );
}
