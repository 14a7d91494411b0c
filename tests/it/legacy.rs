//! Unmodified Jmail v1.0 clients: the exact v1 exchange (docs/protocol-v1.md) on the native port.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{REPLY_WAIT, TestServer};

/// A v1 client: one `send()` per message, one `recv(1024)` per reply.
pub struct V1 {
    pub stream: TcpStream,
}

impl V1 {
    pub async fn connect(s: &TestServer) -> V1 {
        let stream = TcpStream::connect(s.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut v1 = V1 { stream };
        assert_eq!(v1.recv().await, b"You have connected to Jmail.");
        v1
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    pub async fn recv(&mut self) -> Vec<u8> {
        let mut buf = vec![0; 1024];
        let n = tokio::time::timeout(REPLY_WAIT, self.stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        buf.truncate(n);
        buf
    }

    /// A fixed reply. Read by its length: the server writes each reply on its own with a pause between,
    /// but a busy test machine may still find two in one read, which says nothing about the server.
    pub async fn expect(&mut self, want: &[u8]) {
        let mut buf = vec![0; want.len()];
        tokio::time::timeout(REPLY_WAIT, self.stream.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf, want, "{:?}", String::from_utf8_lossy(&buf));
    }

    pub async fn mailbox(&mut self) -> serde_json::Map<String, serde_json::Value> {
        let raw = self.recv().await;
        assert!(raw.len() <= 1024);
        serde_json::from_slice(&raw)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&raw)))
    }

    /// Version and credentials, with the name and password as two sends or one.
    pub async fn login(s: &TestServer, user: &str, password: &str, coalesced: bool) -> V1 {
        let mut v1 = V1::connect(s).await;
        v1.send(b"1.0").await;
        assert_eq!(v1.recv().await, b"good boi UWU");
        if coalesced {
            v1.send(format!("{user}{password}").as_bytes()).await;
        } else {
            v1.send(user.as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            v1.send(password.as_bytes()).await;
        }
        v1
    }
}

async fn users(s: &TestServer) {
    s.add_user("alice", "wonderland").await;
    s.add_user("bob", "builder").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_separate_and_coalesced_credentials() {
    let s = TestServer::start().await;
    users(&s).await;
    for coalesced in [false, true] {
        let mut v1 = V1::login(&s, "alice", "wonderland", coalesced).await;
        v1.expect(b"1969").await;
        let mailbox = v1.mailbox().await;
        assert_eq!(mailbox.len(), 1);
        let (key, text) = mailbox.iter().next().unwrap();
        assert!(key.starts_with("postmaster At:"), "{key}");
        assert!(
            text.as_str()
                .unwrap()
                .starts_with("Welcome to Jmail, alice!"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_bad_version_and_unknown_user() {
    let s = TestServer::start().await;
    users(&s).await;
    for (user, password, coalesced) in [
        ("alice", "nope", false),
        ("ghost", "x", false),
        ("alice", "nope", true),
    ] {
        let mut v1 = V1::login(&s, user, password, coalesced).await;
        v1.expect(b"1234").await;
        v1.expect(b"Logon failed").await;
        assert_eq!(v1.recv().await, b"", "the server closes");
    }
    let mut v1 = V1::connect(&s).await;
    v1.send(b"0.9").await;
    assert_eq!(v1.recv().await, b"badver");
    assert_eq!(v1.recv().await, b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_refresh_share_mail_with_the_native_protocol() {
    let s = TestServer::start().await;
    users(&s).await;
    let mut alice = V1::login(&s, "alice", "wonderland", false).await;
    alice.expect(b"1969").await;
    alice.mailbox().await;
    alice.send(b"(bob) hi bob\\nsecond line").await;
    assert_eq!(
        alice.mailbox().await.len(),
        1,
        "alice's own view after sending"
    );

    // bob reads it natively: a proper RFC 5322 message whose text has the line break.
    let mut bob = s.client("bob", "builder").await;
    let listing = bob.list(0).await.unwrap();
    let sent = listing
        .messages
        .iter()
        .find(|m| m.from == "alice@localhost")
        .unwrap();
    let raw = bob.read(sent.id).await.unwrap();
    assert_eq!(jmail::message::render(&raw).body, b"hi bob\nsecond line");

    // bob answers natively; alice sees it on refresh, as v1 shows mail.
    bob.send(&["alice".into()], "Re: hi", b"hello\r\nalice")
        .await
        .unwrap();
    alice.send(b"Banky").await;
    let view = alice.mailbox().await;
    let (key, text) = view.iter().find(|(k, _)| k.starts_with("bob At:")).unwrap();
    assert!(
        key.len() == "bob At:2026-11-30 12:00:00.000000".len(),
        "{key}"
    );
    assert_eq!(text, "hello\nalice");

    // An unknown recipient is refused: a notice in this view, nothing stored.
    alice.send(b"(ghost) boo").await;
    let view = alice.mailbox().await;
    let notice = view
        .iter()
        .find(|(k, _)| k.starts_with("JMailServer At:"))
        .unwrap()
        .1;
    assert_eq!(notice, "Not sent: no such user ghost");
    assert_eq!(s.user_names().await, vec!["alice", "bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_too_large_for_1024_bytes_shows_the_newest_that_fit() {
    let s = TestServer::start().await;
    users(&s).await;
    let mut bob = s.client("bob", "builder").await;
    for i in 0..60 {
        bob.send(
            &["alice".into()],
            "",
            format!("message number {i:02}").as_bytes(),
        )
        .await
        .unwrap();
    }
    let mut alice = V1::login(&s, "alice", "wonderland", true).await;
    alice.expect(b"1969").await;
    let raw = alice.recv().await;
    assert!(raw.len() <= 1024 && raw.len() > 900, "{}", raw.len());
    let text = String::from_utf8(raw).unwrap();
    assert!(
        text.ends_with("\"message number 59\"}"),
        "newest last: {text}"
    );
    let view: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let first = view.values().next().unwrap().as_str().unwrap();
    assert!(first > "message number 40", "only the newest: {first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_legacy_turns_v1_off() {
    let s = TestServer::start_with(|c| c.legacy_v1 = false).await;
    users(&s).await;
    let mut v1 = V1::connect(&s).await;
    v1.send(b"1.0").await;
    let quiet =
        tokio::time::timeout(Duration::from_millis(500), v1.stream.read(&mut [0u8; 64])).await;
    assert!(quiet.is_err(), "no v1 reply when the mode is off");
    v1.send(b"\r\n").await;
    assert_eq!(v1.recv().await, b"BAD UNKNOWN unknown command\r\n");
}
