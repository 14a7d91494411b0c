//! Malformed, oversized and out-of-order input gets a clear error or a clean close; nothing half-written is
//! stored; other clients keep being served.

use tokio::io::AsyncWriteExt;

use crate::harness::TestServer;

async fn inbox_ids(s: &TestServer, user: &str, password: &str) -> Vec<u32> {
    let mut c = s.client(user, password).await;
    c.list(0)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| m.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bytes_get_bad_replies_and_the_session_goes_on() {
    let s = TestServer::start().await;
    s.add_user("alice", "pa").await;
    let mut r = s.raw_login("alice", "pa").await;
    r.send(b"LIST\xff\xfe\r\n").await;
    r.expect("BAD ENCODING command is not valid UTF-8").await;
    r.send(b"LI\0ST\r\n").await;
    r.expect("BAD ENCODING command contains a control character")
        .await;
    r.send(b"FROBNICATE now\r\n").await;
    r.expect("BAD UNKNOWN unknown command").await;
    r.send(b"READ banana\r\n").await;
    r.expect("BAD SYNTAX expected a decimal number").await;
    r.send(b"LOGIN \"unterminated\r\n").await;
    r.expect("BAD SYNTAX unterminated quoted string").await;
    r.send(b"DONE\r\n").await;
    r.expect("BAD STATE DONE ends WATCH; not watching").await;
    r.send(b"NOOP\r\n").await;
    r.expect("OK NOOP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_line_is_refused_once_and_the_session_resyncs() {
    let s = TestServer::start().await;
    s.add_user("alice", "pa").await;
    let mut r = s.raw_login("alice", "pa").await;
    let mut line = vec![b'A'; 100_000];
    line.extend_from_slice(b"\r\nNOOP\r\n");
    r.send(&line).await;
    r.expect("BAD LINETOOLONG line longer than 8192 bytes")
        .await;
    r.expect("OK NOOP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_before_the_handshake_is_refused_then_closed() {
    let s = TestServer::start_with(|c| c.limits.bad_commands_max = 3).await;
    let mut r = s.raw().await;
    r.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01\x02\r\nhello\r\n")
        .await;
    r.expect("BAD UNKNOWN unknown command").await;
    r.expect("BAD UNKNOWN unknown command").await;
    r.expect("BAD ENCODING command contains a control character")
        .await;
    r.expect("BYE TOOMANYERRORS too many bad commands").await;
    assert!(r.closed().await.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_before_login_cannot_make_the_server_buffer_a_body() {
    let s = TestServer::start().await;
    let mut r = s.raw().await;
    r.send(b"JMAIL 2.0\r\nSEND bob {5000000}\r\n").await;
    r.expect_prefix("OK JMAIL").await;
    r.expect("BAD STATE log in first").await;
    let mut r = s.raw().await;
    r.send(b"JMAIL 2.0\r\nSEND bob {5000000+}\r\n").await;
    r.expect_prefix("OK JMAIL").await;
    r.expect("BYE STATE log in first").await;
    assert!(r.closed().await.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_and_recipient_limits() {
    let s = TestServer::start_with(|c| {
        c.limits.message_bytes_max = 65536;
        c.limits.recipients_max = 2;
    })
    .await;
    s.add_user("alice", "pa").await;
    let mut r = s.raw_login("alice", "pa").await;
    r.send(b"SEND alice {65537}\r\n").await;
    r.expect("BAD TOOBIG message larger than 65536 bytes").await;
    r.send(b"SEND alice,alice,alice {3}\r\n").await;
    r.expect("BAD TOOMANYRCPTS more than 2 recipients").await;
    // A rejected non-synchronizing SEND has its body skipped, not run as commands.
    r.send(b"SEND a,b,c {6+}\r\nLOGOUT\r\nNOOP\r\n").await;
    r.expect("BAD TOOMANYRCPTS more than 2 recipients").await;
    r.expect("OK NOOP").await;
    // An oversized non-synchronizing body cannot be skipped safely: the connection closes.
    r.send(b"SEND alice {65537+}\r\n").await;
    r.expect("BYE TOOBIG message larger than 65536 bytes").await;
    assert!(r.closed().await.0);
    assert_eq!(inbox_ids(&s, "alice", "pa").await, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_in_the_middle_of_a_body_stores_nothing() {
    let s = TestServer::start().await;
    s.add_user("alice", "pa").await;
    s.add_user("bob", "pb").await;
    let mut r = s.raw_login("alice", "pa").await;
    r.send(b"SEND bob \"half\" {1000+}\r\nonly part of the body")
        .await;
    r.stream.get_mut().shutdown().await.unwrap();
    drop(r);
    // A body followed by the wrong bytes instead of its line end is refused too.
    let mut r = s.raw_login("alice", "pa").await;
    r.send(b"SEND bob {3+}\r\nabcdef\r\n").await;
    r.expect("BAD SYNTAX a literal must be followed by a line end")
        .await;
    r.send(b"NOOP\r\n").await;
    r.expect("OK NOOP").await;
    assert_eq!(inbox_ids(&s, "bob", "pb").await, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_clients_does_not_stop_a_good_one() {
    // The flood and the good client share 127.0.0.1: room for all of them from one new address.
    let s = TestServer::start_with(|c| c.limits.connections_per_new_ip_max = 100).await;
    s.add_user("alice", "pa").await;
    let mut floods = Vec::new();
    for i in 0..50u8 {
        let addr = s.addr;
        floods.push(tokio::spawn(async move {
            let mut r = crate::harness::Raw::connect(addr).await;
            let junk: Vec<u8> = (0..20_000u32).map(|j| (j as u8).wrapping_mul(i)).collect();
            let _ = r.stream.get_mut().write_all(&junk).await;
            // Half-close: the server answers what it got, sees the end, and closes its side.
            let _ = r.stream.get_mut().shutdown().await;
            assert!(r.closed().await.0);
        }));
    }
    let mut c = s.client("alice", "pa").await;
    c.send(&["alice".into()], "still here", b"yes")
        .await
        .unwrap();
    assert_eq!(c.list(0).await.unwrap().messages.len(), 2);
    for f in floods {
        f.await.unwrap();
    }
}
