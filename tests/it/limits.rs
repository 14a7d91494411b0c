//! Connection caps and idle timeouts.

use crate::harness::{Raw, TestServer, connect_from};
use tokio::io::AsyncReadExt;

async fn refusal(source: [u8; 4], addr: std::net::SocketAddr) -> String {
    let mut stream = connect_from(source, addr).await;
    let mut out = String::new();
    tokio::time::timeout(crate::harness::REPLY_WAIT, stream.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_and_global_caps_refuse_clearly_and_free_up() {
    let s = TestServer::start_with(|c| {
        c.limits.connections_per_ip_max = 2;
        c.limits.connections_max = Some(3);
    })
    .await;
    let a = Raw::connect(s.addr).await;
    let _b = Raw::connect(s.addr).await;
    assert_eq!(
        refusal([127, 0, 0, 1], s.addr).await,
        "BYE LIMIT too many connections from your address\r\n"
    );
    // Another loopback address is another IP.
    let _c = Raw::over(connect_from([127, 0, 0, 2], s.addr).await).await;
    assert_eq!(
        refusal([127, 0, 0, 3], s.addr).await,
        "BYE LIMIT server is at its connection limit; try again later\r\n"
    );
    drop(a);
    // The slot frees once the server has seen the close.
    let mut tries = 0;
    loop {
        let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let mut greeting = [0u8; 28];
        stream.read_exact(&mut greeting).await.unwrap();
        if &greeting == b"You have connected to Jmail." {
            break;
        }
        tries += 1;
        assert!(tries < 100, "slot never freed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_nobody_logged_in_from_gets_fewer_connections() {
    let s = TestServer::start_with(|c| {
        c.limits.connections_per_ip_max = 4;
        c.limits.connections_per_new_ip_max = 2;
    })
    .await;
    s.add_user("alice", "pa").await;
    let _a = connect_from([127, 0, 0, 5], s.addr).await;
    let _b = connect_from([127, 0, 0, 5], s.addr).await;
    assert_eq!(
        refusal([127, 0, 0, 5], s.addr).await,
        "BYE LIMIT too many connections from your address\r\n"
    );
    // Once an account has logged in from it (here from 127.0.0.1), an address gets the full cap.
    let _alice = s.raw_login("alice", "pa").await;
    let _c = Raw::connect(s.addr).await;
    let _d = Raw::connect(s.addr).await;
    let _e = Raw::connect(s.addr).await;
    assert_eq!(
        refusal([127, 0, 0, 1], s.addr).await,
        "BYE LIMIT too many connections from your address\r\n"
    );
    // The other address is still a stranger.
    assert_eq!(
        refusal([127, 0, 0, 5], s.addr).await,
        "BYE LIMIT too many connections from your address\r\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_sooner_before_login() {
    let s = TestServer::start_with(|c| {
        c.limits.idle_secs_unauth = 1;
        c.limits.idle_secs_auth = 3600;
    })
    .await;
    s.add_user("alice", "pa").await;
    let mut idle = s.raw().await;
    let mut logged_in = s.raw_login("alice", "pa").await;
    idle.expect("BYE TIMEOUT idle too long").await;
    assert!(idle.closed().await.0);
    logged_in.send(b"NOOP\r\n").await;
    logged_in.expect("OK NOOP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_do_not_keep_a_silent_watcher_alive() {
    let s = TestServer::start_with(|c| c.limits.idle_secs_watch = 1).await;
    s.add_user("alice", "pa").await;
    let mut w = s.raw_login("alice", "pa").await;
    w.send(b"WATCH\r\n").await;
    w.expect("+ WATCHING send DONE to stop").await;
    let mut sender = s.client("alice", "pa").await;
    let started = std::time::Instant::now();
    let mut pushed = 0;
    loop {
        sender.send(&["alice".into()], "tick", b"x").await.unwrap();
        let line = w.line().await;
        if line == "BYE TIMEOUT idle too long" {
            break;
        }
        assert!(line.starts_with("* MSG "), "{line}");
        pushed += 1;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "never timed out"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(pushed >= 1);
}

/// Every limit at the top of its range, then every one at the bottom: the config is valid, the server
/// starts, and a whole session (login, send, list, read; SMTP delivery) is served without a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_at_either_end_of_its_range_serves() {
    for top in [true, false] {
        let text: String = jmail::config::Limits::default()
            .ranges()
            .into_iter()
            .map(|(name, _, min, max)| format!("{name} = {}\n", if top { max } else { min }))
            .collect();
        let file: jmail::config::FileConfig = toml::from_str(&format!("[limits]\n{text}")).unwrap();
        file.limits.validate().unwrap();
        let mut limits = file.limits.clone();
        // At its top the disk reserve is more than any disk here has free, so no mail would be taken;
        // `a_nearly_full_disk_stops_new_mail_but_not_what_frees_space` shows that.
        limits.disk_free_bytes_min = limits.disk_free_bytes_min.min(1 << 20);
        let s = TestServer::start_with(|c| {
            c.limits = limits;
            c.smtp_port = Some(0);
        })
        .await;
        s.add_user("alice", "alice-pw").await;
        let mut a = s.raw_login("alice", "alice-pw").await;
        a.send(b"SEND alice \"bounds\" {5}\r\n").await;
        a.expect("+ send 5 bytes").await;
        a.send(b"hello\r\n").await;
        a.expect_prefix("OK SENT 1 <").await;
        a.send(b"READ 2\r\n").await;
        let mut lines = Vec::new();
        loop {
            let line = a.line().await;
            let done = line.starts_with("OK READ");
            lines.push(line);
            if done {
                break;
            }
        }
        assert!(lines.iter().any(|l| l == "hello"), "top {top}: {lines:?}");
        a.send(b"LOGOUT\r\n").await;
        a.expect("BYE LOGOUT goodbye").await;
        drop(a);

        let mut smtp = None;
        for _ in 0..100 {
            // At the bottom only one connection is allowed: wait until the native one is gone.
            let mut r = Raw::plain(s.addr_of(jmail::server::Service::Smtp)).await;
            let greeting = r.line().await;
            if greeting.starts_with("220 ") {
                smtp = Some(r);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut smtp = smtp.expect("an SMTP slot");
        smtp.send(b"HELO x\r\n").await;
        smtp.expect_prefix("250 ").await;
        smtp.send(b"MAIL FROM:<x@example.org>\r\n").await;
        smtp.expect_prefix("250 ").await;
        smtp.send(b"RCPT TO:<alice@localhost>\r\n").await;
        smtp.expect_prefix("250 ").await;
        smtp.send(b"DATA\r\n").await;
        smtp.expect_prefix("354 ").await;
        smtp.send(b"Subject: in\r\n\r\nbody\r\n.\r\n").await;
        smtp.expect_prefix("250 2.0.0 OK").await;
    }
}

const NEARLY_FULL: &str = r##"
import sys, smtplib, imaplib
smtp, imap = map(int, sys.argv[1:3])
s = smtplib.SMTP("127.0.0.1", smtp)
# Refused at MAIL (RFC 1870), before the data is sent.
try:
    s.sendmail("a@example.org", ["bob@localhost"], "Subject: new\r\n\r\nhi\r\n")
    raise SystemExit("a delivery was taken")
except smtplib.SMTPSenderRefused as e:
    assert e.smtp_code == 452, e
    assert e.smtp_error == b"4.3.1 Insufficient system storage; nothing was stored; try again later", e
s.quit()
m = imaplib.IMAP4("127.0.0.1", imap)
m.login("bob", "bob-pw")
assert m.select("INBOX") == ("OK", [b"1"])
typ, data = m.append("INBOX", None, None, b"Subject: appended\r\n\r\nhi\r\n")
assert (typ, data) == ("NO", [b"[UNAVAILABLE] The server's disk is nearly full; try again later"]), (typ, data)
# What frees space still goes through.
assert m.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
assert m.expunge() == ("OK", [b"1"])
assert m.select("INBOX") == ("OK", [b"0"])
m.logout()
print("ok")
"##;

/// A data dir whose disk has less free than `disk_free_bytes_min` takes no new mail (SMTP `452 4.3.1`
/// at MAIL, IMAP APPEND `NO [UNAVAILABLE]`), while flag changes and expunges, which free space, go through. (A
/// disk filled to the last byte refused even the expunge, found on a 30 MB tmpfs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nearly_full_disk_stops_new_mail_but_not_what_frees_space() {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.imap_port = Some(0);
        // More than any disk has free.
        c.limits.disk_free_bytes_min = 1 << 50;
    })
    .await;
    s.add_user("bob", "bob-pw").await;
    let port = |service| s.addr_of(service).port().to_string();
    let out = crate::harness::python(
        NEARLY_FULL,
        &[
            port(jmail::server::Service::Smtp),
            port(jmail::server::Service::Imap),
        ],
    )
    .await;
    assert_eq!(out.trim(), "ok");
}
