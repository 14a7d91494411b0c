//! What the queue writes to another server: a recipient's quoted local part stays quoted (its words
//! never become command parameters), no Return-Path (only a final delivery adds one), and a bare CR in
//! a submitted body sent as the line end it was signed as.

use jmail::server::Service;

use crate::federation::{TwoHosts, arrives, auth_results, header, two_hosts};
use crate::harness::Raw;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relayed_mail_is_sent_as_signed_with_its_paths_quoted() {
    let TwoHosts {
        dns: _dns, a, b, ..
    } = two_hosts().await;
    let mut r = Raw::plain(a.addr_of(Service::Submission)).await;
    r.expect_prefix("220 ").await;
    let plain = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "\0alice\0alice-pw",
    );
    for (line, want) in [
        ("EHLO c.test".to_string(), "250 "),
        (format!("AUTH PLAIN {plain}"), "235 "),
        ("MAIL FROM:<alice@a.test>".into(), "250 "),
        ("RCPT TO:<bob@b.test>".into(), "250 "),
        // Unquoted on the wire this was `RCPT TO:<bob@b.test> NOTIFY=NEVER@b.test>`.
        (
            "RCPT TO:<\"bob@b.test> NOTIFY=NEVER\"@b.test>".into(),
            "250 ",
        ),
        ("DATA".into(), "354 "),
    ] {
        r.send(format!("{line}\r\n").as_bytes()).await;
        let mut reply = r.line().await;
        while reply.as_bytes().get(3) == Some(&b'-') {
            reply = r.line().await;
        }
        assert!(reply.starts_with(want), "{line}: {reply}");
    }
    r.send(b"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: bare cr\r\n\r\nbare CR here\rsame line\r\n.\r\n")
        .await;
    r.expect_prefix("250 ").await;

    let got = arrives(&b, "bob", "bob-pw", "INBOX", "bare cr").await;
    let results = auth_results(&got);
    assert!(results.contains("dkim=pass"), "{results}");
    assert!(got.contains("bare CR here\r\nsame line\r\n"), "{got}");
    assert_eq!(
        header(&got, "Return-Path").len(),
        1,
        "b.test's own only: {got}"
    );
    // b.test was asked for the quoted address, which it does not have: alice is told, naming it.
    let dsn = arrives(&a, "alice", "alice-pw", "INBOX", "Undelivered Mail").await;
    assert!(
        dsn.contains("Final-Recipient: rfc822; \"bob@b.test> NOTIFY=NEVER\"@b.test\r\nAction: failed\r\nStatus: 5.1.1"),
        "{dsn}"
    );
    a.stop().await;
    b.stop().await;
}
