//! What the queue writes to another server: a recipient's quoted local part stays quoted (its words
//! never become command parameters), no Return-Path (only a final delivery adds one), and a bare CR in
//! a submitted body sent as the line end it was signed as; mail needing SMTPUTF8 or 8BITMIME only to a
//! server offering it.

use std::sync::Mutex;

use jmail::server::Service;
use jmail::store::QueueStore;

use crate::dsn::{alice_and_c_test, plain_mx, quit, scripted_mx};
use crate::federation::{TwoHosts, arrives, auth_results, header, submit_with, two_hosts};
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

/// Mail that needs more than plain ASCII to travel (RFC 6531, RFC 6152): a non-ASCII recipient goes with
/// SMTPUTF8 to a server that offers it; to one that does not, it comes back (`5.6.7`) while its ASCII
/// co-recipient is sent; and 8-bit mail to a server without 8BITMIME comes back (`5.6.3`) while ASCII
/// mail goes, without a BODY parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn international_and_8bit_mail_go_only_where_they_are_taken() {
    let (_dns, a, ip_c, port) = alice_and_c_test().await;
    let alice = ("alice", "alice-pw", "alice@a.test");
    let mail_line = |said: &Mutex<Vec<String>>| {
        said.lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with("MAIL"))
            .cloned()
            .unwrap_or_default()
    };

    let (mx, said) = plain_mx(
        ip_c,
        port,
        b"250-mx.c.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
    )
    .await;
    let taken = submit_with(&a, alice, &["jösé@c.test"], "to josé", (&[], &[])).await;
    assert_eq!(taken, "{}");
    quit(&said).await;
    assert_eq!(
        mail_line(&said),
        "MAIL FROM:<alice@a.test> BODY=8BITMIME SMTPUTF8"
    );
    assert!(
        said.lock()
            .unwrap()
            .contains(&"RCPT TO:<jösé@c.test>".to_string()),
        "{said:?}"
    );
    mx.abort();
    let _ = mx.await;

    let (mx, said) = plain_mx(ip_c, port, b"250-mx.c.test\r\n250 8BITMIME\r\n").await;
    let taken = submit_with(
        &a,
        alice,
        &["jösé@c.test", "plain@c.test"],
        "to both",
        (&[], &[]),
    )
    .await;
    assert_eq!(taken, "{}");
    quit(&said).await;
    let lines = said.lock().unwrap().clone();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("RCPT"))
            .collect::<Vec<_>>(),
        ["RCPT TO:<plain@c.test>"],
        "{lines:?}"
    );
    let report = arrives(&a, "alice", "alice-pw", "INBOX", "Status: 5.6.7").await;
    assert!(
        report.contains("mx.c.test does not take a non-ASCII recipient address"),
        "{report}"
    );
    // RFC 6533's global report, naming the address as it is.
    assert!(
        report.contains("report-type=global-delivery-status")
            && report.contains("Content-Type: message/global-delivery-status\r\n")
            && report.contains(
                "Final-Recipient: utf-8; jösé@c.test\r\nAction: failed\r\nStatus: 5.6.7\r\n"
            ),
        "{report}"
    );
    // With no recipient that can go, no transaction is begun.
    said.lock().unwrap().clear();
    let taken = submit_with(&a, alice, &["zoë@c.test"], "only one", (&[], &[])).await;
    assert_eq!(taken, "{}");
    let report = arrives(&a, "alice", "alice-pw", "INBOX", "Subject: only one").await;
    assert!(report.contains("Status: 5.6.7"), "{report}");
    assert!(
        !said.lock().unwrap().iter().any(|l| l.starts_with("MAIL")),
        "{said:?}"
    );
    mx.abort();
    let _ = mx.await;

    let (mx, said) = plain_mx(ip_c, port, b"250 mx.c.test\r\n").await;
    let taken = submit_with(&a, alice, &["x@c.test"], "plain ascii", (&[], &[])).await;
    assert_eq!(taken, "{}");
    quit(&said).await;
    assert_eq!(mail_line(&said), "MAIL FROM:<alice@a.test>");
    said.lock().unwrap().clear();
    let taken = submit_with(&a, alice, &["y@c.test"], "naïve café", (&[], &[])).await;
    assert_eq!(taken, "{}");
    let report = arrives(&a, "alice", "alice-pw", "INBOX", "Status: 5.6.3").await;
    assert!(
        report.contains("mx.c.test does not take 8-bit mail"),
        "{report}"
    );
    assert!(
        !said.lock().unwrap().iter().any(|l| l.starts_with("MAIL")),
        "{said:?}"
    );
    mx.abort();
    a.stop().await;
}

/// A receiving server that answers out of turn or oddly does not get mail taken for delivered, nor
/// one recipient's fate mixed up with another's (found by an audit with a hostile server): an early
/// `250` behind `354`, a `354` to the end of the data, a refused RSET after a deferred recipient, a
/// `SIZE` smaller than the message, and a failure whose text claims success (`550 2.1.5`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_answering_out_of_turn_gets_no_mail_counted_as_delivered() {
    let (_dns, a, ip_c, port) = alice_and_c_test().await;
    let alice = ("alice", "alice-pw", "alice@a.test");
    // Each: the server's odd replies, the recipient, and what the deferral must say.
    type Scenario<'a> = (&'a [(&'static str, &'static [u8])], &'a str, &'a str);
    let scenarios: [Scenario; 3] = [
        (
            &[
                ("DATA", b"354 go on\r\n250 2.0.0 early\r\n"),
                ("END", b"550 5.7.1 refused\r\n"),
            ],
            "early@c.test",
            "out of step",
        ),
        (&[("END", b"354 more?\r\n")], "more@c.test", "354 more?"),
        (
            &[
                ("RCPT", b"450 4.2.0 greylisted\r\n"),
                ("RSET", b"502 5.5.1 no\r\n"),
            ],
            "grey@c.test",
            "greylisted",
        ),
    ];
    for (replies, to, deferred_for) in scenarios {
        let (mx, _said) = scripted_mx(ip_c, port, replies).await;
        let taken = submit_with(&a, alice, &[to], to, (&[], &[])).await;
        assert_eq!(taken, "{}");
        // Deferred, not delivered and not bounced: the entry stays, saying why.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let queue = a.store.queue_list().await.unwrap();
            let why = queue.first().and_then(|e| e.last_error.clone());
            if why.as_deref().is_some_and(|w| w.contains(deferred_for)) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{to}: {queue:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        mx.abort();
        let _ = mx.await;
        while let Some(entry) = a.store.queue_list().await.unwrap().first() {
            a.store.queue_drop(entry.id).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let inbox = crate::dsn::inbox(&a, "alice", "alice-pw").await;
    assert!(
        !inbox.iter().any(|m| m.contains("Undelivered")),
        "nothing bounced: {inbox:?}"
    );

    // A server that takes 100 bytes at most is not sent more; a failure is a failure whatever it says.
    let (mx, said) = scripted_mx(
        ip_c,
        port,
        &[
            ("EHLO", b"250-mx.c.test\r\n250 SIZE 100\r\n"),
            ("RCPT", b"550 2.1.5 odd\r\n"),
        ],
    )
    .await;
    submit_with(&a, alice, &["big@c.test"], "too big", (&[], &[])).await;
    let report = arrives(&a, "alice", "alice-pw", "INBOX", "Subject: too big").await;
    assert!(report.contains("Status: 5.3.4"), "{report}");
    assert!(
        !said.lock().unwrap().iter().any(|l| l.starts_with("MAIL")),
        "{said:?}"
    );
    mx.abort();
    let _ = mx.await;
    let (mx, _said) = scripted_mx(ip_c, port, &[("RCPT", b"550 2.1.5 odd\r\n")]).await;
    submit_with(&a, alice, &["odd@c.test"], "odd reply", (&[], &[])).await;
    let report = arrives(&a, "alice", "alice-pw", "INBOX", "Subject: odd reply").await;
    assert!(
        report.contains("Action: failed\r\nStatus: 5.1.5\r\n"),
        "{report}"
    );
    mx.abort();
    a.stop().await;
}
