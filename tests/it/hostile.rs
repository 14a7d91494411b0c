//! Hostile input at every listener, then a normal client must still be served and get its mail; and
//! authorization on every protocol: nobody reads, changes or learns of another user's messages.

use std::net::SocketAddr;

use jmail::server::Service;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Raw, TestServer, connect_from};

const LISTENERS: [Service; 7] = [
    Service::Native,
    Service::Smtp,
    Service::Submission,
    Service::Pop3,
    Service::Submissions,
    Service::Pop3s,
    Service::NativeTls,
];

async fn server() -> TestServer {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.submission_port = Some(0);
        c.pop3_port = Some(0);
        c.submissions_port = Some(0);
        c.pop3s_port = Some(0);
        c.native_tls_port = Some(0);
        // Hostile clients here all come from 127.0.0.1; the normal client uses 127.0.0.2.
        c.limits.connections_per_ip_max = 2_500;
        c.limits.connections_per_new_ip_max = 2_500;
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    s.add_user("bob", "bob-pw").await;
    s
}

/// Writes `bytes` and reads whatever comes back until the server closes or goes quiet; never fails the
/// test on a reset (closing on garbage is a fine answer).
async fn throw(addr: SocketAddr, bytes: &[u8]) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        panic!("{addr} refused a connection")
    };
    let _ = stream.write_all(bytes).await;
    let mut sink = vec![0; 64 * 1024];
    let quiet = std::time::Duration::from_millis(300);
    while let Ok(Ok(n)) = tokio::time::timeout(quiet, stream.read(&mut sink)).await {
        if n == 0 {
            break;
        }
    }
}

/// A normal client, from another address, sends and reads mail on the native protocol and SMTP.
async fn still_served(s: &TestServer, round: usize) {
    let mut native = Raw::over(connect_from([127, 0, 0, 2], s.addr).await).await;
    native.send(b"JMAIL 2.0\r\nLOGIN alice alice-pw\r\n").await;
    native.expect_prefix("OK JMAIL").await;
    native.expect("OK LOGIN welcome").await;
    let body = format!("round {round}");
    native
        .send(format!("SEND bob \"hello\" {{{}+}}\r\n{body}\r\n", body.len()).as_bytes())
        .await;
    native.expect_prefix("OK SENT").await;
    let smtp = connect_from([127, 0, 0, 2], s.addr_of(Service::Smtp)).await;
    let mut smtp = Raw {
        stream: tokio::io::BufReader::new(smtp),
    };
    smtp.expect_prefix("220 ").await;
    smtp.send(b"HELO ok\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n")
        .await;
    for want in ["250 ", "250 ", "250 ", "354 "] {
        smtp.expect_prefix(want).await;
    }
    smtp.send(format!("Subject: smtp {round}\r\n\r\nhi\r\n.\r\n").as_bytes())
        .await;
    smtp.expect_prefix("250 2.0.0 OK").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_floods_and_half_open_connections_at_every_listener() {
    let s = server().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut round = 0;
    for service in LISTENERS {
        let addr = s.addr_of(service);
        let random: Vec<u8> = (0..64 * 1024).map(|_| rng.r#gen()).collect();
        let mut long_line = vec![b'A'; 1024 * 1024];
        long_line.extend_from_slice(b"\r\n");
        let mut bad_text =
            b"EHLO \xff\xfe\0\0\r\nUSER \0bob\r\nJMAIL 2.0\r\nLOGIN \xc3\x28 x\r\n".to_vec();
        bad_text.extend(std::iter::repeat_n(0u8, 4096));
        for bytes in [&random, &long_line, &bad_text] {
            throw(addr, bytes).await;
        }
        // 2,000 connections from one address, half-open (they say nothing and keep their slot).
        let mut held = Vec::with_capacity(2000);
        for _ in 0..2000 {
            held.push(
                TcpStream::connect(addr)
                    .await
                    .expect("connection accepted or refused cleanly"),
            );
        }
        round += 1;
        still_served(&s, round).await;
        drop(held);
    }
    // Every delivery of every round is there, exactly once.
    let mut bob = s.client("bob", "bob-pw").await;
    let listing = bob.list(0).await.unwrap();
    assert_eq!(listing.messages.len(), 1 + 2 * LISTENERS.len());
}

#[tokio::test]
async fn nobody_reaches_another_users_mail_on_any_protocol() {
    let s = server().await;
    let mut alice = s.client("alice", "alice-pw").await;
    alice
        .send(&["bob".into()], "private", b"for bob only")
        .await
        .unwrap();
    let mut bob = s.client("bob", "bob-pw").await;
    let bobs = bob.list(0).await.unwrap().messages;
    let alices = alice.list(0).await.unwrap().messages;
    let bob_ids: Vec<u32> = bobs.iter().map(|m| m.id).collect();
    let alice_ids: Vec<u32> = alices.iter().map(|m| m.id).collect();

    // Native: every id of bob's, and ids around them, look to alice exactly like ids that never existed.
    let mut raw = s.raw_login("alice", "alice-pw").await;
    let probes: Vec<u32> = (1..=20).chain(bob_ids.iter().copied()).collect();
    for id in probes.iter().filter(|id| !alice_ids.contains(id)) {
        for command in [
            format!("READ {id}"),
            format!("MARK {id} SEEN"),
            format!("DELETE {id}"),
        ] {
            raw.send(format!("{command}\r\n").as_bytes()).await;
            raw.expect(&format!("NO NOTFOUND no message {id}")).await;
        }
    }
    // Bob's mail is untouched: still there, still unread.
    let after = bob.list(0).await.unwrap().messages;
    assert_eq!(after, bobs);

    // POP3: alice's maildrop holds only her own messages.
    let mut pop3 = Raw::plain(s.addr_of(Service::Pop3)).await;
    pop3.expect("+OK Jmail POP3 ready").await;
    pop3.send(b"USER alice\r\nPASS alice-pw\r\nSTAT\r\n").await;
    pop3.expect("+OK send PASS").await;
    pop3.expect_prefix("+OK alice has 1 message").await;
    pop3.expect_prefix("+OK 1 ").await;
    pop3.send(b"RETR 2\r\nDELE 2\r\n").await;
    pop3.expect("-ERR no such message").await;
    pop3.expect("-ERR no such message").await;

    // SMTP: VRFY says nothing about who exists.
    let mut smtp = Raw::plain(s.addr_of(Service::Smtp)).await;
    smtp.expect_prefix("220 ").await;
    for who in ["bob", "nobody"] {
        smtp.send(format!("VRFY {who}\r\n").as_bytes()).await;
        smtp.expect("252 2.5.0 Cannot verify users; send mail and it will be delivered")
            .await;
    }

    // v1: alice's mailbox shows only her welcome message.
    let mut v1 = crate::legacy::V1::login(&s, "alice", "alice-pw", false).await;
    v1.expect(b"1969").await;
    let mailbox = v1.mailbox().await;
    assert_eq!(mailbox.len(), 1, "{mailbox:?}");
    assert!(!format!("{mailbox:?}").contains("for bob only"));
}

/// A client that trickles a command line a byte at a time keeps its idle timer alive but is closed once
/// the line has taken `line_secs_max`; a normal client is served meanwhile.
#[tokio::test]
async fn slowloris_lines_are_cut_off() {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.pop3_port = Some(0);
        c.limits.line_secs_max = 1;
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    let cases = [
        (Service::Native, "BYE TIMEOUT idle too long"),
        (
            Service::Smtp,
            "421 4.4.2 localhost timeout waiting for input; closing",
        ),
        (
            Service::Pop3,
            "-ERR idle too long; closing, no messages were deleted",
        ),
    ];
    for (service, farewell) in cases {
        let stream = TcpStream::connect(s.addr_of(service)).await.unwrap();
        let mut slow = if service == Service::Native {
            Raw::over(stream).await
        } else {
            let mut r = Raw {
                stream: tokio::io::BufReader::new(stream),
            };
            r.line().await; // greeting
            r
        };
        // One byte every 200 ms: never idle for long, but the line never ends. Stop once the server speaks.
        let mut heard = Vec::new();
        let trickle = async {
            for _ in 0..100 {
                if slow.stream.get_mut().write_all(b"N").await.is_err() {
                    break;
                }
                let mut chunk = [0u8; 256];
                let wait = std::time::Duration::from_millis(200);
                match tokio::time::timeout(wait, slow.stream.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => {
                        heard.extend_from_slice(&chunk[..n]);
                        if heard.ends_with(b"\n") {
                            break;
                        }
                    }
                    Err(_) => {}
                }
            }
        };
        let mut peer = TcpStream::connect(s.addr_of(service)).await.unwrap();
        tokio::join!(trickle, async {
            // Meanwhile a normal client on the same listener is answered.
            let mut greeting = [0u8; 8];
            peer.read_exact(&mut greeting).await.unwrap();
        });
        let rest = String::from_utf8_lossy(&heard);
        assert!(rest.contains(farewell), "{service:?}: {rest:?}");
    }
}
