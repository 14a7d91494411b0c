//! The defects an attack on the open internet found, each shown closed: slowloris after an over-long line
//! and inside bodies, one address holding every inbound DATA slot, sender forgery on submission, sessions
//! outliving their account or password, two servers on one data dir, mail readable by other local users,
//! a typo'd data dir turned into an empty store, and memory that failed logins could grow.

use std::time::Duration;

use jmail::server::Service;
use jmail::store::{AccountStore, MailStore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cli::{add_user, jmail, run_with_stdin, serve_with, text};
use crate::harness::{Raw, TestServer, connect_from};

/// Writes `prefix`, then a byte every 200 ms for 20 s or until the server closes; returns what it said.
async fn trickle_after(stream: &mut TcpStream, prefix: &[u8]) -> String {
    stream.write_all(prefix).await.unwrap();
    trickle(stream, b"x").await
}

/// Writes `step` every 200 ms (however soon the server answers) for 20 s or until the server closes;
/// returns what it said.
async fn trickle(stream: &mut TcpStream, step: &[u8]) -> String {
    let mut heard = Vec::new();
    for _ in 0..100 {
        let due = tokio::time::Instant::now() + Duration::from_millis(200);
        if stream.write_all(step).await.is_err() {
            break;
        }
        let mut chunk = [0u8; 512];
        match tokio::time::timeout_at(due, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => heard.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        tokio::time::sleep_until(due).await;
    }
    String::from_utf8_lossy(&heard).into_owned()
}

/// Reads one line (the greeting of a line protocol).
async fn greeting(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    loop {
        stream.read_exact(&mut byte).await.unwrap();
        if byte[0] == b'\n' {
            return;
        }
    }
}

#[tokio::test]
async fn an_overlong_line_does_not_restart_the_line_clock() {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.pop3_port = Some(0);
        c.limits.line_secs_max = 1;
        c.limits.line_bytes_max = 512;
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    let pop3_long = vec![b'N'; jmail_proto::pop3::LINE_BYTES_MAX + 200];
    let cases: [(Service, Vec<u8>, &str); 3] = [
        (
            Service::Native,
            [b"JMAIL 2.0\r\n".to_vec(), vec![b'N'; 600]].concat(),
            "BYE TIMEOUT idle too long",
        ),
        (
            Service::Smtp,
            vec![b'N'; 2100],
            "421 4.4.2 localhost timeout waiting for input; closing",
        ),
        (
            Service::Pop3,
            pop3_long,
            "-ERR idle too long; closing, no messages were deleted",
        ),
    ];
    for (service, prefix, farewell) in cases {
        let mut stream = TcpStream::connect(s.addr_of(service)).await.unwrap();
        if service == Service::Native {
            let mut hello = [0u8; 28];
            stream.read_exact(&mut hello).await.unwrap();
        } else {
            greeting(&mut stream).await;
        }
        let heard = trickle_after(&mut stream, &prefix).await;
        assert!(heard.contains(farewell), "{service:?}: {heard:?}");
    }
    // After LOGIN, a half-sent command is held to the same deadline.
    let mut logged_in = s.raw_login("alice", "alice-pw").await;
    let heard = trickle_after(logged_in.stream.get_mut(), b"LIS").await;
    assert!(heard.contains("BYE TIMEOUT idle too long"), "{heard:?}");
}

#[tokio::test]
async fn a_trickled_message_body_is_cut_off() {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.limits.line_secs_max = 1;
        c.limits.data_bytes_per_sec_min = 1_000_000;
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    s.add_user("bob", "bob-pw").await;
    let mut native = s.raw_login("alice", "alice-pw").await;
    native.send(b"SEND bob \"slow\" {100000}\r\n").await;
    native.expect("+ send 100000 bytes").await;
    let heard = trickle_after(native.stream.get_mut(), b"").await;
    assert!(
        heard.contains("BYE TIMEOUT idle too long"),
        "native: {heard:?}"
    );

    let mut r = smtp_to_bob(&s).await;
    r.send(b"DATA\r\n").await;
    while !r.line().await.starts_with("354") {}
    let heard = trickle_after(r.stream.get_mut(), b"Subject: slow\r\n\r\n").await;
    assert!(heard.contains("421 4.4.2"), "SMTP: {heard:?}");

    // The same message in BDAT chunks of one byte, each answered at once: the chunks and the commands
    // between them are one body to the clock, so the message is cut off as DATA's is.
    let mut r = smtp_to_bob(&s).await;
    let heard = trickle(r.stream.get_mut(), b"BDAT 1\r\nx").await;
    assert!(heard.contains("421 4.4.2"), "SMTP BDAT: {heard:?}");
    assert_eq!(
        s.store
            .changes(bob_inbox(&s).await, 0, 10)
            .await
            .unwrap()
            .messages
            .len(),
        1,
        "only the welcome"
    );
}

/// A stranger's message holds one of the few port-25 slots while it arrives: once half of them are
/// taken it must come faster than a logged-in user's. The same trickle (about 1.5 KB a second) is taken
/// from a stranger alone, cut off for a stranger while another holds the second of four slots, and
/// taken from alice on submission meanwhile.
#[tokio::test]
async fn a_strangers_message_must_arrive_faster_once_slots_run_short() {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.submission_port = Some(0);
        c.limits.line_secs_max = 1;
        c.limits.data_bytes_per_sec_min = 1024;
        c.limits.smtp_data_unauth_bytes_per_sec_min = 4096;
        c.limits.smtp_data_unauth_max = 4;
        c.limits.smtp_data_unauth_per_ip_max = 4;
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    s.add_user("bob", "bob-pw").await;
    let step = [b'y'; 300];

    let mut alone = smtp_to_bob(&s).await;
    alone.send(b"DATA\r\n").await;
    while !alone.line().await.starts_with("354") {}
    alone.send(b"Subject: slow, alone\r\n\r\n").await;
    for _ in 0..15 {
        alone.send(&step).await;
        alone.send(b"\r\n").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    alone.send(b".\r\n").await;
    let reply = alone.line().await;
    assert!(
        reply.starts_with("250 2.0.0"),
        "one slot of four: {reply:?}"
    );

    // A second stranger takes another slot and sends at 10 KB/s, above even a stranger's rate.
    let mut brisk = smtp_to_bob(&s).await;
    brisk.send(b"DATA\r\n").await;
    while !brisk.line().await.starts_with("354") {}
    let brisk = tokio::spawn(async move {
        brisk.send(b"Subject: brisk\r\n\r\n").await;
        for _ in 0..200 {
            brisk.send(&[b'z'; 500]).await;
            brisk.send(b"\r\n").await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        brisk.send(b".\r\n").await;
        brisk.line().await
    });
    let mut stranger = smtp_to_bob(&s).await;
    stranger.send(b"DATA\r\n").await;
    while !stranger.line().await.starts_with("354") {}
    stranger.send(b"Subject: slow\r\n\r\n").await;
    let heard = trickle(stranger.stream.get_mut(), &step).await;
    assert!(
        heard.contains("421 4.4.2 localhost message arriving too slowly; closing"),
        "two slots of four: {heard:?}"
    );

    let mut sub = TcpStream::connect(s.addr_of(Service::Submission))
        .await
        .unwrap();
    greeting(&mut sub).await;
    let mut alice = Raw {
        stream: tokio::io::BufReader::new(sub),
    };
    alice
        .send(b"EHLO x\r\nAUTH PLAIN AGFsaWNlAGFsaWNlLXB3\r\nMAIL FROM:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n")
        .await;
    while !alice.line().await.starts_with("354") {}
    alice.send(b"Subject: slow but hers\r\n\r\n").await;
    for _ in 0..15 {
        alice.send(&step).await;
        alice.send(b"\r\n").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    alice.send(b".\r\n").await;
    assert!(
        alice.line().await.starts_with("250 2.0.0"),
        "alice's message taken"
    );
    let reply = brisk.await.unwrap();
    assert!(reply.starts_with("250 2.0.0"), "brisk stranger: {reply:?}");
}

/// An SMTP session with a transaction open for bob (EHLO, MAIL, RCPT answered).
async fn smtp_to_bob(s: &TestServer) -> Raw {
    let mut smtp = TcpStream::connect(s.addr_of(Service::Smtp)).await.unwrap();
    greeting(&mut smtp).await;
    let mut r = Raw {
        stream: tokio::io::BufReader::new(smtp),
    };
    r.send(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@localhost>\r\n")
        .await;
    while !r.line().await.starts_with("250 2.1.5") {}
    r
}

async fn bob_inbox(s: &TestServer) -> i64 {
    s.store.inbox_of("bob").await.unwrap().unwrap()
}

#[tokio::test]
async fn one_address_cannot_take_every_inbound_data_slot() {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.limits.smtp_data_unauth_max = 4;
        c.limits.smtp_data_unauth_per_ip_max = 2;
    })
    .await;
    s.add_user("bob", "bob-pw").await;
    let addr = s.addr_of(Service::Smtp);
    let open_data = |source: [u8; 4]| async move {
        let mut stream = connect_from(source, addr).await;
        greeting(&mut stream).await;
        let mut r = Raw {
            stream: tokio::io::BufReader::new(stream),
        };
        r.send(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n")
            .await;
        let mut last = String::new();
        for _ in 0..20 {
            last = r.line().await;
            if !last.starts_with("250") {
                break;
            }
        }
        (r, last)
    };
    let (_a1, first) = open_data([127, 0, 0, 1]).await;
    let (_a2, second) = open_data([127, 0, 0, 1]).await;
    let (_a3, third) = open_data([127, 0, 0, 1]).await;
    assert!(
        first.starts_with("354") && second.starts_with("354"),
        "{first} / {second}"
    );
    assert_eq!(
        third,
        "452 4.3.1 Too many messages at once from your address; try again later"
    );
    let (mut other, answer) = open_data([127, 0, 0, 2]).await;
    assert!(
        answer.starts_with("354"),
        "another address is served: {answer}"
    );
    other.send(b"Subject: hi\r\n\r\nhello\r\n.\r\n").await;
    assert!(other.line().await.starts_with("250 2.0.0 OK"));
}

/// Submission as alice: every From and Sender must be alice's.
#[tokio::test]
async fn submission_refuses_a_from_or_sender_that_is_not_the_users() {
    let s = TestServer::start_with(|c| c.submission_port = Some(0)).await;
    s.add_user("alice", "alice-pw").await;
    s.add_user("bob", "bob-pw").await;
    let script = r#"
import smtplib, sys, json
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]))
s.login("alice", "alice-pw")
out = {}
cases = {
    "forged_from": "From: Carol <carol@localhost>\r\nSubject: x\r\n\r\nhi\r\n",
    "forged_sender": "From: alice@localhost\r\nSender: carol@localhost\r\nSubject: x\r\n\r\nhi\r\n",
    "two_froms": "From: alice@localhost\r\nFrom: carol@localhost\r\nSubject: x\r\n\r\nhi\r\n",
    "group": "From: us: alice@localhost, carol@localhost;\r\nSubject: x\r\n\r\nhi\r\n",
    "own": "From: Alice <ALICE@localhost>\r\nSubject: mine\r\n\r\nhi\r\n",
    "none": "Subject: no from\r\n\r\nhi\r\n",
}
for name, msg in cases.items():
    try:
        s.sendmail("alice@localhost", ["bob@localhost"], msg)
        out[name] = "ok"
    except smtplib.SMTPDataError as e:
        out[name] = [e.smtp_code, e.smtp_error.decode()]
print(json.dumps(out))
"#;
    let addr = s.addr_of(Service::Submission);
    let out = tokio::process::Command::new("python3")
        .args([
            "-c",
            script,
            &addr.ip().to_string(),
            &addr.port().to_string(),
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let refused = |named: &str| {
        serde_json::json!([
            553,
            format!(
                "5.7.1 From and Sender must be your own address, alice@localhost{named}; nothing was stored"
            )
        ])
    };
    assert_eq!(got["forged_from"], refused(" (<carol@localhost>)"));
    assert_eq!(got["forged_sender"], refused(" (<carol@localhost>)"));
    assert_eq!(got["two_froms"], refused(" (<carol@localhost>)"));
    assert_eq!(got["group"], refused(" (<carol@localhost>)"));
    assert_eq!(got["own"], "ok");
    assert_eq!(got["none"], "ok");
    let inbox = bob_inbox(&s).await;
    let stored = s.store.changes(inbox, 0, 10).await.unwrap().messages;
    assert_eq!(stored.len(), 3, "the welcome and the two of alice's own");
    let raw = s
        .store
        .fetch(inbox, stored[2].uid, false)
        .await
        .unwrap()
        .unwrap();
    assert!(
        text(&raw).contains("\r\nFrom: <alice@localhost>\r\n"),
        "a From is added: {}",
        text(&raw)
    );
}

/// `jmail user del` and `passwd`, run as separate processes, end the sessions they concern at their next
/// command, on every protocol; a new account of the same name is another account.
#[tokio::test]
async fn sessions_lose_their_rights_when_the_account_goes_or_its_password_changes() {
    let s = TestServer::start_with(|c| {
        c.submission_port = Some(0);
        c.pop3_port = Some(0);
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    s.add_user("bob", "bob-pw").await;
    let dir = s.dir.path().to_path_buf();
    let cli = move |args: &'static [&'static str], input: &'static str| {
        let dir = dir.clone();
        async move {
            tokio::task::spawn_blocking(move || run_with_stdin(jmail(args, &dir), input))
                .await
                .unwrap()
        }
    };

    // A password change ends alice's native session.
    let mut native = s.raw_login("alice", "alice-pw").await;
    let out = cli(&["user", "passwd", "alice", "--password-stdin"], "new-pw\n").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    native.send(b"LIST 0\r\n").await;
    native
        .expect("BYE REVOKED the account was deleted or its password changed; log in again")
        .await;
    assert!(native.closed().await.0);

    // Deleting alice ends her native, submission and POP3 sessions, even once a new alice exists.
    let mut native = s.raw_login("alice", "new-pw").await;
    let mut pop3 = Raw::plain(s.pop3_addr()).await;
    pop3.line().await;
    pop3.send(b"USER alice\r\nPASS new-pw\r\n").await;
    pop3.expect("+OK send PASS").await;
    pop3.expect_prefix("+OK").await;
    let mut submission = Raw::plain(s.addr_of(Service::Submission)).await;
    submission.line().await;
    let plain = "AGFsaWNlAG5ldy1wdw=="; // \0alice\0new-pw
    submission
        .send(format!("EHLO x\r\nAUTH PLAIN {plain}\r\n").as_bytes())
        .await;
    while !submission.line().await.starts_with("235") {}
    let out = cli(&["user", "del", "alice", "--yes"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cli(&["user", "add", "alice", "--password-stdin"], "new-pw\n").await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    native.send(b"SEND bob \"still me?\" {2}\r\nhi\r\n").await;
    native.expect("+ send 2 bytes").await;
    native
        .expect("BYE REVOKED the account was deleted or its password changed; log in again")
        .await;
    submission.send(b"MAIL FROM:<alice@localhost>\r\n").await;
    submission
        .expect("421 4.7.0 Your login is no longer valid (account deleted or password changed); closing")
        .await;
    pop3.send(b"STAT\r\n").await;
    pop3.expect("-ERR [AUTH] the account was deleted or its password changed")
        .await;
    let bob = s
        .store
        .changes(bob_inbox(&s).await, 0, 10)
        .await
        .unwrap()
        .messages;
    assert_eq!(bob.len(), 1, "nothing was sent as the deleted alice");
}

#[test]
fn a_second_server_on_one_data_dir_is_refused_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Started with a umask that keeps nothing private, the command still makes the store its own.
    let mut add = jmail(&["user", "add", "alice", "--password-stdin"], &data);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: umask is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            add.pre_exec(|| {
                rustix::process::umask(rustix::fs::Mode::empty());
                Ok(())
            });
        }
    }
    let out = run_with_stdin(add, "pw\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let db = data.join("jmail.db");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600, "private from the start");
    // Made readable by someone else: the server narrows it again.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();

    let first = serve_with(&data, &[]);
    assert_eq!(mode(&data), 0o700);
    for entry in walk(&data) {
        let want = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&entry), want, "{}", entry.display());
    }
    let second = jmail(
        &[
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--smtp-port",
            "0",
            "--submission-port",
            "0",
            "--pop3-port",
            "0",
            "--submissions-port",
            "0",
            "--pop3s-port",
            "0",
            "--native-tls-port",
            "0",
        ],
        &data,
    )
    .stdin(std::process::Stdio::null())
    .output()
    .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("another jmail serve is already running on the data dir"),
        "{}",
        text(&second.stderr)
    );
    // The user commands still work beside the running server.
    let out = jmail(&["user", "list"], &data).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    drop(first);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn commands_other_than_serve_and_add_do_not_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo");
    for args in [
        &["user", "list"][..],
        &["user", "del", "bob", "--yes"],
        &["deliver", "--to", "bob", "--from", "x"],
    ] {
        let out = run_with_stdin(jmail(args, &typo), "hi\n");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).starts_with(&format!(
                "jmail: there is no Jmail store in {}",
                typo.display()
            )),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
}

/// 1,000 failed logins from 100 addresses (the throttle's penalty off, so they come fast) leave the
/// server's memory near where it started: password checks hold a small constant, whatever the rate.
#[test]
fn failed_logins_do_not_grow_the_servers_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("jmail.toml"),
        "[limits]\nlogin_penalty_secs_max = 0\nlogin_block_failures = 1000\n",
    )
    .unwrap();
    add_user(d, "alice", "pw");
    let served = serve_with(d, &["--config", d.join("jmail.toml").to_str().unwrap()]);
    let pid = served.child.id();
    let rss_kib = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let addr: std::net::SocketAddr = served.addr.parse().unwrap();
    let before = rss_kib();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let failures = runtime.block_on(async {
        let mut tasks = Vec::new();
        for host in 0..100u8 {
            tasks.push(tokio::spawn(async move {
                let mut failed = 0;
                while failed < 10 {
                    let mut r = Raw::over(connect_from([127, 0, 1, host + 1], addr).await).await;
                    r.send(b"JMAIL 2.0\r\n").await;
                    r.expect_prefix("OK JMAIL").await;
                    for _ in 0..3.min(10 - failed) {
                        r.send(b"LOGIN alice wrong\r\n").await;
                        let reply = r.line().await;
                        assert!(reply.starts_with("NO AUTH"), "{reply}");
                        failed += 1;
                        if reply.contains("closing") {
                            break;
                        }
                    }
                }
                failed
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    assert_eq!(failures, 1000);
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kib();
    println!(
        "server RSS: {before} KiB idle, {after} KiB after 1,000 failed logins from 100 addresses"
    );
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

/// Opens an SMTP session to `addr`, starts a message, and sends `body_bytes` of it without ending it; a
/// reader beside the writer catches what the server says meanwhile. Returns the session and that line
/// (empty if the server said nothing within a second of the last byte).
async fn half_sent_message(addr: std::net::SocketAddr, body_bytes: usize) -> (Raw, String) {
    let mut r = Raw {
        stream: tokio::io::BufReader::new(TcpStream::connect(addr).await.unwrap()),
    };
    r.send(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n")
        .await;
    let mut line = r.line().await;
    while line.starts_with("250") || line.starts_with("220") {
        line = r.line().await;
    }
    assert!(line.starts_with("354"), "{line}");
    let chunk = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n".repeat(256);
    // The first line of the first chunk is a header and the empty line after it, as long as a line.
    let header = format!("Subject: {}\r\n\r\n", "x".repeat(51));
    let mut first = chunk.clone();
    first[..64].copy_from_slice(header.as_bytes());
    // read_until keeps what it read when its wait is cut short, so no part of a reply is lost.
    let mut said = Vec::new();
    let mut sent = 0;
    while sent < body_bytes && !said.ends_with(b"\n") {
        let bytes = if sent == 0 { &first } else { &chunk };
        if r.stream.get_mut().write_all(bytes).await.is_err() {
            break;
        }
        sent += chunk.len();
        let wait = Duration::from_millis(5);
        let _ = tokio::time::timeout(wait, r.stream.read_until(b'\n', &mut said)).await;
    }
    if !said.ends_with(b"\n") {
        let wait = Duration::from_secs(1);
        let _ = tokio::time::timeout(wait, r.stream.read_until(b'\n', &mut said)).await;
    }
    (r, String::from_utf8_lossy(&said).trim_end().to_string())
}

/// Large messages arriving at once are bounded by one budget for the whole server: the connection that
/// would pass it is told to come back later and closed, those within it finish, and once they have the
/// budget serves the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_arriving_at_once_share_one_budget() {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.limits.message_bytes_max = 1 << 20;
        c.limits.input_bytes_max = 2 << 20;
    })
    .await;
    s.add_user("bob", "bob-pw").await;
    let addr = s.addr_of(Service::Smtp);
    // Each body's buffer has grown to 1 MiB: about 0.8 MiB of budget each beyond the free 256 KiB.
    let (mut first, said) = half_sent_message(addr, 700 << 10).await;
    assert_eq!(said, "", "the first fits");
    let (mut second, said) = half_sent_message(addr, 700 << 10).await;
    assert_eq!(said, "", "the second fits");
    let (_third, said) = half_sent_message(addr, 700 << 10).await;
    assert_eq!(
        said,
        "421 4.3.2 localhost receiving too much mail at once; try again later"
    );
    for session in [&mut first, &mut second] {
        session.send(b"\r\n.\r\n").await;
        let reply = session.line().await;
        assert!(reply.starts_with("250 2.0.0 OK"), "{reply}");
    }
    drop((first, second));
    let (mut next, said) = half_sent_message(addr, 700 << 10).await;
    assert_eq!(said, "", "the budget is back once those messages are in");
    next.send(b"\r\n.\r\n").await;
    assert!(next.line().await.starts_with("250 2.0.0 OK"));
    let inbox = bob_inbox(&s).await;
    assert_eq!(
        s.store.changes(inbox, 0, 10).await.unwrap().messages.len(),
        4,
        "the welcome and the three messages that fit; nothing of the one cut off"
    );
}

/// The same budget holds for native SENDs of logged-in users: of three large SENDs arriving at once where
/// the budget holds two, one is answered `BYE TRYLATER` and sends nothing, and the other two are sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_send_past_the_input_budget_is_told_to_try_later() {
    let s = TestServer::start_with(|c| {
        c.limits.message_bytes_max = 1 << 20;
        c.limits.input_bytes_max = 2 << 20;
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    s.add_user("bob", "bob-pw").await;
    let part = vec![b'x'; 700 << 10];
    let mut sessions = Vec::new();
    for subject in ["one", "two", "three"] {
        let mut r = s.raw_login("alice", "alice-pw").await;
        r.send(format!("SEND bob \"{subject}\" {{1000000+}}\r\n").as_bytes())
            .await;
        // The server may close while a body is still being written: what it says is what counts.
        let _ = r.stream.get_mut().write_all(&part).await;
        // Time for the server to take the bytes out of the socket's buffers: only what it holds counts.
        tokio::time::sleep(Duration::from_millis(300)).await;
        sessions.push(r);
    }
    let mut answers = Vec::new();
    for r in &mut sessions {
        let rest = vec![b'y'; 1_000_000 - part.len()];
        let _ = r.stream.get_mut().write_all(&rest).await;
        let _ = r.stream.get_mut().write_all(b"\r\n").await;
        answers.push(r.line().await);
    }
    let refused: Vec<&String> = answers.iter().filter(|a| a.starts_with("BYE")).collect();
    assert_eq!(
        refused,
        ["BYE TRYLATER server is receiving too much mail at once; nothing was sent; try again"],
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|a| a.starts_with("OK SENT")).count(),
        2,
        "{answers:?}"
    );
    let inbox = bob_inbox(&s).await;
    let stored = s.store.changes(inbox, 0, 10).await.unwrap().messages;
    assert_eq!(stored.len(), 3, "the welcome and the two sent");
}
