//! Failed logins are counted per IP across every protocol; past the threshold the IP is refused everywhere
//! until the block ends. Time is a hand-moved clock, never a sleep.

use std::sync::Arc;
use std::time::Duration;

use jmail::server::Service;
use jmail::throttle::{LoginThrottle, ManualClock};

use crate::harness::{Raw, TestServer, connect_from};

#[tokio::test]
async fn failures_on_any_protocol_block_the_ip_on_all_until_the_block_ends() {
    let clock = Arc::new(ManualClock::new());
    let throttle = Arc::new(LoginThrottle::new(clock.clone()));
    let s = TestServer::start_with_throttle(tempfile::tempdir().unwrap(), throttle, |c| {
        c.smtp_port = Some(0);
        c.submission_port = Some(0);
        c.pop3_port = Some(0);
        c.limits.login_block_failures = 4;
        c.limits.login_block_secs = 600;
        c.limits.login_penalty_secs_max = 0; // the penalty schedule is unit-tested in src/throttle.rs
    })
    .await;
    s.add_user("bob", "bob-pw").await;

    // Two failures on the native protocol, one on POP3, one on SMTP submission: four from 127.0.0.1.
    let mut native = s.raw().await;
    native.send(b"JMAIL 2.0\r\n").await;
    native.expect_prefix("OK JMAIL").await;
    for _ in 0..2 {
        native.send(b"LOGIN bob wrong\r\n").await;
        native.expect("NO AUTH invalid user name or password").await;
    }
    let mut pop3 = Raw::plain(s.addr_of(Service::Pop3)).await;
    pop3.expect("+OK Jmail POP3 ready").await;
    pop3.send(b"USER bob\r\nPASS wrong\r\n").await;
    pop3.expect("+OK send PASS").await;
    pop3.expect("-ERR [AUTH] invalid user name or password")
        .await;
    let mut smtp = Raw::plain(s.addr_of(Service::Submission)).await;
    smtp.expect_prefix("220 ").await;
    smtp.send(b"EHLO t\r\n").await;
    while smtp.line().await.starts_with("250-") {}
    // AUTH PLAIN \0bob\0wrong
    smtp.send(b"AUTH PLAIN AGJvYgB3cm9uZw==\r\n").await;
    smtp.expect("535 5.7.8 Authentication credentials invalid")
        .await;

    // Now even the right password is refused, on every protocol, and the connection is closed.
    smtp.send(b"AUTH PLAIN AGJvYgBib2ItcHc=\r\n").await;
    smtp.expect("421 4.7.0 Too many failed logins; try again later")
        .await;
    native.send(b"LOGIN bob bob-pw\r\n").await;
    native
        .expect("BYE AUTH too many failed logins; try again later")
        .await;
    pop3.send(b"USER bob\r\nPASS bob-pw\r\n").await;
    pop3.expect("+OK send PASS").await;
    pop3.expect("-ERR [AUTH] too many failed logins; try again later")
        .await;

    // Another address is not affected.
    let mut other = Raw::over(connect_from([127, 0, 0, 2], s.addr).await).await;
    other.send(b"JMAIL 2.0\r\nLOGIN bob bob-pw\r\n").await;
    other.expect_prefix("OK JMAIL").await;
    other.expect("OK LOGIN welcome").await;

    // When the block ends, 127.0.0.1 may log in again.
    clock.advance(Duration::from_secs(601));
    let mut again = s.raw().await;
    again.send(b"JMAIL 2.0\r\nLOGIN bob bob-pw\r\n").await;
    again.expect_prefix("OK JMAIL").await;
    again.expect("OK LOGIN welcome").await;
}

/// Guesses at one account from many addresses: past `login_block_failures` of them the account is
/// guarded. An address it logged in from still gets straight in; a new one waits its turn, a penalty
/// after the last failure, and then logs in (which lifts the guard).
#[tokio::test]
async fn guesses_from_many_addresses_make_new_addresses_take_turns() {
    let clock = Arc::new(ManualClock::new());
    let throttle = Arc::new(LoginThrottle::new(clock.clone()));
    let s = TestServer::start_with_throttle(tempfile::tempdir().unwrap(), throttle, |c| {
        c.limits.login_block_failures = 3;
        c.limits.login_penalty_secs_max = 1;
    })
    .await;
    s.add_user("bob", "bob-pw").await;
    let login = async |source: u8, password: &str| {
        let mut c = Raw::over(connect_from([127, 0, 0, source], s.addr).await).await;
        c.send(b"JMAIL 2.0\r\n").await;
        c.expect_prefix("OK JMAIL").await;
        c.send(format!("LOGIN bob {password}\r\n").as_bytes()).await;
        c
    };
    // bob's own address, then one guess from each of three others.
    login(9, "bob-pw").await.expect("OK LOGIN welcome").await;
    for source in 2..5 {
        (login(source, "guess").await)
            .expect("NO AUTH invalid user name or password")
            .await;
    }
    // A fourth address, with the right password, is held: its turn is a penalty after the last guess.
    let mut waiting = login(5, "bob-pw").await;
    let early = tokio::time::timeout(Duration::from_millis(700), waiting.line()).await;
    assert!(early.is_err(), "answered before its turn: {early:?}");
    // Meanwhile bob's own address is not held back.
    login(9, "bob-pw").await.expect("OK LOGIN welcome").await;
    clock.advance(Duration::from_secs(1));
    waiting.expect("OK LOGIN welcome").await;
    // That good login ended the guard.
    login(6, "bob-pw").await.expect("OK LOGIN welcome").await;
}
