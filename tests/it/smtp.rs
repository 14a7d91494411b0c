//! SMTP inbound (port 25) and submission (port 587) with real clients, Python's smtplib and swaks, and
//! with raw sockets for exact replies to bad input. Mail that arrives by SMTP is checked through the
//! native protocol, push and the v1 view.

use std::net::SocketAddr;
use std::process::Output;

use jmail::server::Service;
use jmail_proto::native::reply::Untagged;

use crate::harness::{Raw, TestServer};
use crate::legacy::V1;

async fn server() -> TestServer {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.submission_port = Some(0);
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    s.add_user("bob", "bob-pw").await;
    s
}

/// Runs a Python script with the server's ports as arguments; the script prints what the test checks.
async fn python(script: &str, s: &TestServer) -> String {
    let port = |service| s.addr_of(service).port().to_string();
    crate::harness::python(script, &[port(Service::Smtp), port(Service::Submission)]).await
}

/// Every message in `user`'s inbox, as stored.
async fn stored(s: &TestServer, user: &str, password: &str) -> Vec<Vec<u8>> {
    let mut c = s.client(user, password).await;
    let listing = c.list(0).await.unwrap();
    let mut all = Vec::new();
    for m in listing.messages {
        all.push(c.read(m.id).await.unwrap());
    }
    all
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn smtp(addr: SocketAddr) -> Raw {
    let mut r = Raw::plain(addr).await;
    r.expect("220 localhost ESMTP Jmail ready").await;
    r
}

/// Sends one line and returns the whole (possibly multi-line) reply's last line.
async fn say(r: &mut Raw, line: &str) -> String {
    r.send(format!("{line}\r\n").as_bytes()).await;
    reply(r).await
}

async fn reply(r: &mut Raw) -> String {
    loop {
        let line = r.line().await;
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    }
}

async fn ehlo_mail_rcpt(r: &mut Raw, rcpt: &str) {
    assert!(say(r, "EHLO client.test").await.starts_with("250 "));
    assert_eq!(
        say(r, "MAIL FROM:<x@example.org>").await,
        "250 2.1.0 Sender OK"
    );
    assert_eq!(
        say(r, &format!("RCPT TO:<{rcpt}>")).await,
        "250 2.1.5 Recipient OK"
    );
}

const SMTPLIB_INBOUND: &str = r#"
import smtplib, sys, json
from email.message import EmailMessage
port = int(sys.argv[1])
s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test")
code, _ = s.ehlo()
print(json.dumps({"ehlo": code, "features": sorted(s.esmtp_features.keys()), "size": s.esmtp_features.get("size")}))
m = EmailMessage()
m["From"] = "Zoë <zoe@example.org>"
m["To"] = "alice@localhost, bob@localhost"
m["Subject"] = "Grüße aus Köln"
m.set_content("Hallo Bob,\nschöne Grüße!\n.a line that starts with a dot\n")
refused = s.send_message(m, from_addr="zoe@example.org", to_addrs=["alice@localhost", "BOB@localhost"])
print(json.dumps({"refused": refused}))
try:
    s.sendmail("zoe@example.org", ["nobody@localhost"], b"Subject: x\r\n\r\nx\r\n")
except smtplib.SMTPRecipientsRefused as e:
    print(json.dumps({"nobody": [e.recipients["nobody@localhost"][0], e.recipients["nobody@localhost"][1].decode()]}))
try:
    s.sendmail("zoe@example.org", ["someone@elsewhere.example"], b"Subject: x\r\n\r\nx\r\n")
except smtplib.SMTPRecipientsRefused as e:
    print(json.dumps({"relay": [e.recipients["someone@elsewhere.example"][0], e.recipients["someone@elsewhere.example"][1].decode()]}))
s.quit()
"#;

#[tokio::test]
async fn smtplib_delivers_utf8_mail_to_local_users_and_refuses_others() {
    let s = server().await;
    let out = python(SMTPLIB_INBOUND, &s).await;
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["ehlo"], 250);
    assert_eq!(
        lines[0]["features"],
        serde_json::json!([
            "8bitmime",
            "chunking",
            "dsn",
            "enhancedstatuscodes",
            "help",
            "pipelining",
            "size",
            "smtputf8",
            "starttls"
        ]),
        "no AUTH on the inbound port"
    );
    assert_eq!(lines[0]["size"], "10485760");
    assert_eq!(lines[1]["refused"], serde_json::json!({}));
    assert_eq!(
        lines[2]["nobody"],
        serde_json::json!([550, "5.1.1 <nobody@localhost>: no such user here"])
    );
    assert_eq!(
        lines[3]["relay"],
        serde_json::json!([550, "5.7.1 Relay access denied"])
    );

    for (user, pw) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        let mail = stored(&s, user, pw).await;
        assert_eq!(mail.len(), 2, "welcome + one copy for {user}");
        let raw = text(&mail[1]);
        assert!(raw.starts_with("Return-Path: <zoe@example.org>\r\nReceived: from client.test ([127.0.0.1])\r\n\tby localhost (Jmail) with ESMTP id "), "{raw}");
        assert!(raw.contains("\r\n\r\nHallo Bob,\r\nsch"), "{raw}");
        assert!(
            raw.contains("\r\n.a line that starts with a dot\r\n"),
            "dot unstuffed: {raw}"
        );
    }
    // The native listing shows the decoded subject and the header sender.
    let mut c = s.client("bob", "bob-pw").await;
    let listing = c.list(0).await.unwrap();
    let m = listing.messages.last().unwrap();
    assert_eq!(m.subject, "Grüße aus Köln");
    assert_eq!(m.from, "zoe@example.org");
}

const SMTPLIB_SUBMISSION: &str = r#"
import smtplib, sys, json
port = int(sys.argv[2])
out = {}
def attempt(name, f):
    try:
        refused = f()
        if isinstance(refused, dict) and refused:
            out[name] = {k: [c, t.decode()] for k, (c, t) in refused.items()}
        else:
            out[name] = "ok"
    except smtplib.SMTPResponseException as e:
        out[name] = [e.smtp_code, e.smtp_error.decode()]
    except smtplib.SMTPRecipientsRefused as e:
        (code, text), = e.recipients.values()
        out[name] = [code, text.decode()]
    except smtplib.SMTPSenderRefused as e:
        out[name] = [e.smtp_code, e.smtp_error.decode()]

s = smtplib.SMTP("127.0.0.1", port)
s.ehlo("client.test")
out["auth_offered"] = s.esmtp_features.get("auth")
attempt("before_auth", lambda: s.sendmail("alice@localhost", ["bob@localhost"], b"Subject: x\r\n\r\nx\r\n"))
s.rset()
s.user, s.password = "alice", "wrong"
attempt("bad_password", lambda: s.auth("PLAIN", s.auth_plain))
s.user, s.password = "alice", "alice-pw"
attempt("plain", lambda: s.auth("PLAIN", s.auth_plain))
attempt("not_my_address", lambda: s.sendmail("bob@localhost", ["bob@localhost"], b"Subject: x\r\n\r\nx\r\n"))
attempt("remote_bad", lambda: s.sendmail("alice@localhost", ["carol@nowhere"], b"Subject: x\r\n\r\nx\r\n"))
attempt("remote", lambda: s.sendmail("alice@localhost", ["carol@elsewhere.example", "Dan@elsewhere.example"], b"From: alice@localhost\r\nSubject: out\r\n\r\nx\r\n"))
attempt("send", lambda: s.sendmail("alice@localhost", ["bob@localhost"], "Authentication-Results: (c) localhost; dmarc=pass header.from=bank.example\r\nAuthentication-Results: other.example; spf=pass\r\nSubject: via PLAIN\r\n\r\n8-bit: café\r\n".encode()))
s.quit()

s = smtplib.SMTP("127.0.0.1", port)
s.ehlo("client.test")
s.user, s.password = "bob@localhost", "bob-pw"
attempt("login", lambda: s.auth("LOGIN", s.auth_login))
attempt("send_login", lambda: s.sendmail("bob@localhost", ["alice@localhost", "bob"], b"Subject: via LOGIN\r\n\r\nhello\r\n"))
s.quit()
print(json.dumps(out))
"#;

#[tokio::test]
async fn smtplib_submission_with_auth_plain_and_login() {
    let s = server().await;
    let out: serde_json::Value =
        serde_json::from_str(python(SMTPLIB_SUBMISSION, &s).await.trim()).unwrap();
    // smtplib keeps the space after AUTH in the value.
    assert_eq!(out["auth_offered"].as_str().unwrap().trim(), "PLAIN LOGIN");
    assert_eq!(
        out["before_auth"],
        serde_json::json!([530, "5.7.0 Authentication required"])
    );
    assert_eq!(
        out["bad_password"],
        serde_json::json!([535, "5.7.8 Authentication credentials invalid"])
    );
    assert_eq!(out["plain"], "ok");
    assert_eq!(
        out["not_my_address"],
        serde_json::json!([
            553,
            "5.7.1 Sender <bob@localhost> is not yours; use alice@localhost"
        ])
    );
    assert_eq!(
        out["remote_bad"],
        serde_json::json!([553, "5.1.3 <carol@nowhere>: not a deliverable address"])
    );
    // Mail for another domain is queued, one entry per domain, signed for the sender's domain.
    assert_eq!(out["remote"], "ok");
    let queue = jmail::store::QueueStore::queue_list(s.store.as_ref())
        .await
        .unwrap();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0].domain, "elsewhere.example");
    assert_eq!(queue[0].sender, "alice@localhost");
    assert_eq!(
        queue[0].recipients,
        vec!["carol@elsewhere.example", "Dan@elsewhere.example"]
    );
    assert_eq!(out["send"], "ok");
    assert_eq!(out["login"], "ok");
    // Delivered to alice; a bare local part is not an address (only postmaster may go without a domain).
    assert_eq!(
        out["send_login"],
        serde_json::json!({"bob": [501, "5.1.3 Bad address syntax"]})
    );

    let bob = stored(&s, "bob", "bob-pw").await;
    assert_eq!(bob.len(), 2, "welcome and alice's message");
    let from_alice = text(&bob[1]);
    assert!(from_alice.contains("with ESMTPA id "), "{from_alice}");
    assert!(
        from_alice.contains("\r\nDate: ") && from_alice.contains("\r\nMessage-ID: <"),
        "submission adds them: {from_alice}"
    );
    // A "pass" in this server's name is dropped (a user cannot vouch for a bank to a colleague);
    // another server's is kept.
    assert!(
        from_alice.ends_with(
            "\r\nAuthentication-Results: other.example; spf=pass\r\nSubject: via PLAIN\r\n\r\n8-bit: café\r\n"
        ),
        "{from_alice}"
    );
    assert!(!from_alice.contains("bank.example"), "{from_alice}");
    let alice = stored(&s, "alice", "alice-pw").await;
    assert_eq!(alice.len(), 2);
    assert!(text(&alice[1]).ends_with("Subject: via LOGIN\r\n\r\nhello\r\n"));
}

/// swaks from `from` to `to` through `server`, with more arguments.
async fn swaks(server: &str, from: &str, to: &str, extra: &[&str]) -> Output {
    tokio::process::Command::new("swaks")
        .args(["--server", server, "--from", from, "--to", to])
        .args(extra)
        .output()
        .await
        .expect("swaks is installed (.ci/run installs it)")
}

#[tokio::test]
async fn swaks_inbound_and_submission() {
    let s = server().await;
    let inbound = s.addr_of(Service::Smtp).to_string();
    let out = swaks(
        &inbound,
        "x@example.org",
        "bob@localhost",
        &["--header", "Subject: by swaks", "--body", "inbound body"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("<-  250 2.0.0 OK: stored as "));

    let submission = s.addr_of(Service::Submission).to_string();
    for (mechanism, subject) in [("PLAIN", "swaks plain"), ("LOGIN", "swaks login")] {
        let header = format!("Subject: {subject}");
        let out = swaks(
            &submission,
            "alice@localhost",
            "bob@localhost",
            &[
                "-a", mechanism, "-au", "alice", "-ap", "alice-pw", "--header", &header,
            ],
        )
        .await;
        assert!(out.status.success(), "{}", text(&out.stdout));
        assert!(text(&out.stdout).contains("<-  235 2.7.0 Authentication successful"));
    }
    // Without AUTH the submission port refuses the sender.
    let out = swaks(&submission, "alice@localhost", "bob@localhost", &[]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("<** 530 5.7.0 Authentication required"),
        "{}",
        text(&out.stdout)
    );

    let mut c = s.client("bob", "bob-pw").await;
    let subjects: Vec<String> = c
        .list(0)
        .await
        .unwrap()
        .messages
        .into_iter()
        .map(|m| m.subject)
        .collect();
    assert_eq!(
        subjects,
        ["Welcome to Jmail", "by swaks", "swaks plain", "swaks login"]
    );
}

#[tokio::test]
async fn smtp_mail_reaches_native_push_and_the_v1_view() {
    let s = server().await;
    let mut watcher = s.client("bob", "bob-pw").await;
    let listing = watcher.list(0).await.unwrap();
    watcher.watch(listing.modseq).await.unwrap();

    // HTML-only MIME with an encoded subject: the native and v1 views show text.
    let mut r = smtp(s.addr_of(Service::Smtp)).await;
    ehlo_mail_rcpt(&mut r, "bob@localhost").await;
    assert_eq!(
        say(&mut r, "DATA").await,
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    r.send(b"From: =?UTF-8?B?Wm/Dqw==?= <zoe@example.org>\r\nSubject: =?UTF-8?Q?R=C3=A9sum=C3=A9?=\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Hello <b>Bob</b></p></body></html>\r\n.\r\n").await;
    assert!(reply(&mut r).await.starts_with("250 2.0.0 OK: stored as "));

    let Untagged::Msg(pushed) = watcher.next_change().await.unwrap() else {
        panic!("a MSG push")
    };
    assert_eq!(pushed.subject, "Résumé");
    assert_eq!(pushed.from, "zoe@example.org");

    let mut v1 = V1::login(&s, "bob", "bob-pw", false).await;
    v1.expect(b"1969").await;
    let mailbox = v1.mailbox().await;
    let shown: Vec<&str> = mailbox.values().filter_map(|v| v.as_str()).collect();
    assert!(
        shown
            .iter()
            .any(|t| t.contains("Hello Bob") && !t.contains('<')),
        "{mailbox:?}"
    );
    assert!(
        mailbox.keys().any(|k| k.starts_with("zoe@example.org At:")),
        "{mailbox:?}"
    );
}

#[tokio::test]
async fn replies_to_bad_input() {
    let s = server().await;
    let mut r = smtp(s.addr_of(Service::Smtp)).await;
    let long = "NOOP ".to_string() + &"x".repeat(5000);
    dialog(
        &mut r,
        &[
            ("MAIL FROM:<x@example.org>", "503 5.5.1 Send EHLO first"),
            ("FROB", "500 5.5.2 Command not recognized"),
            ("HELO client.test", "250 localhost greets client.test"),
            ("DATA", "503 5.5.1 Send MAIL first"),
            ("RCPT TO:<bob@localhost>", "503 5.5.1 Send MAIL first"),
            ("MAIL FROM:<x@example.org>", "250 2.1.0 Sender OK"),
            ("DATA", "503 5.5.1 No valid recipients; send RCPT first"),
            (
                "RCPT TO:bob",
                "501 5.5.4 Syntax: RCPT TO:<forward-path> [parameters]",
            ),
            (
                "VRFY bob",
                "252 2.5.0 Cannot verify users; send mail and it will be delivered",
            ),
            (
                "AUTH PLAIN AGJvYgBib2ItcHc=",
                "503 5.5.1 AUTH is offered on the submission port",
            ),
            ("RSET", "250 2.0.0 OK"),
            (
                "MAIL FROM:<x@example.org> SIZE=999999999",
                "552 5.3.4 Message too big; the limit is 10485760 bytes",
            ),
            // Over-long line, then NUL: errors, and the session goes on.
            (&long, "500 5.5.2 Line too long"),
            ("NO\0OP", "500 5.5.2 Command not recognized"),
            ("NOOP", "250 2.0.0 OK"),
            ("QUIT", "221 2.0.0 localhost closing"),
        ],
    )
    .await;
    assert!(r.closed().await.0);

    // AUTH with malformed base64, and a cancelled AUTH, on submission.
    let mut r = smtp(s.addr_of(Service::Submission)).await;
    dialog(
        &mut r,
        &[
            ("EHLO c", "250 HELP"),
            (
                "AUTH PLAIN !!notbase64!!",
                "501 5.5.2 Cannot decode the response (base64 expected)",
            ),
            ("AUTH LOGIN", "334 VXNlcm5hbWU6"),
            ("*", "501 5.0.0 Authentication cancelled"),
            (
                "AUTH CRAM-MD5",
                "504 5.5.4 Unrecognized authentication mechanism",
            ),
            (
                "MAIL FROM:<alice@localhost>",
                "530 5.7.0 Authentication required",
            ),
        ],
    )
    .await;
}

/// What RFC 5321, RFC 3207 and RFC 6531 ask that a compliance suite checks: no `<>` recipient, address
/// literals read, no argument to RSET, QUIT or STARTTLS, no STARTTLS inside a transaction, non-ASCII
/// addresses only with SMTPUTF8, an honest HELP, echoes that never name another address, and the null
/// sender on submission (read receipts), the host's own address literal taken as itself.
#[tokio::test]
async fn what_the_rfcs_ask_of_commands_and_addresses() {
    let s = server().await;
    let mut r = smtp(s.addr_of(Service::Smtp)).await;
    dialog(
        &mut r,
        &[
            ("EHLO c", "250 HELP"),
            (
                "HELP",
                "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS",
            ),
            ("RSET x", "501 5.5.4 Syntax: RSET"),
            ("STARTTLS foo", "501 5.5.4 Syntax: STARTTLS"),
            ("MAIL FROM:<x@[192.0.2.1]>", "250 2.1.0 Sender OK"),
            ("RCPT TO:<>", "501 5.1.3 Bad address syntax"),
            (
                "RCPT TO:<\"al ice\"@localhost>",
                "550 5.1.1 <\"al ice\"@localhost>: no such user here",
            ),
            ("RCPT TO:<böb@localhost>", "553 5.6.7 Must declare SMTPUTF8 to send a non-ASCII address"),
            // This host's own address literal is this host (RFC 1123 §5.2.17); another is not.
            ("RCPT TO:<bob@[127.0.0.1]>", "250 2.1.5 Recipient OK"),
            ("RCPT TO:<bob@[127.0.0.2]>", "550 5.7.1 Relay access denied"),
            ("STARTTLS", "503 5.5.1 A transaction is open; RSET first"),
            ("RSET", "250 2.0.0 OK"),
            ("MAIL FROM:<josé@example.org>", "553 5.6.7 Must declare SMTPUTF8 to send a non-ASCII address"),
            ("MAIL FROM:<x@[IPv6:2001:db8::1]> SMTPUTF8", "250 2.1.0 Sender OK"),
            ("RCPT TO:<böb@localhost>", "550 5.1.1 <b?b@localhost>: no such user here"),
            ("QUIT now", "501 5.5.4 Syntax: QUIT"),
            ("QUIT", "221 2.0.0 localhost closing"),
        ],
    )
    .await;
    // A read receipt from a logged-in user, with the null sender.
    let mut r = smtp(s.addr_of(Service::Submission)).await;
    dialog(
        &mut r,
        &[
            ("EHLO c", "250 HELP"),
            (
                "AUTH PLAIN AGFsaWNlAGFsaWNlLXB3",
                "235 2.7.0 Authentication successful",
            ),
            ("MAIL FROM:<>", "250 2.1.0 Sender OK"),
            ("RCPT TO:<bob@localhost>", "250 2.1.5 Recipient OK"),
            ("DATA", "354 Start mail input; end with <CRLF>.<CRLF>"),
        ],
    )
    .await;
    let receipt =
        "From: alice@localhost\r\nSubject: Read: lunch\r\n\r\nYour message was read.\r\n.";
    let stored_reply = say(&mut r, receipt).await;
    assert!(stored_reply.starts_with("250 2.0.0 OK"), "{stored_reply}");
    let bob = stored(&s, "bob", "bob-pw").await;
    assert!(text(bob.last().unwrap()).contains("Subject: Read: lunch\r\n"));
}

/// CHUNKING (RFC 3030): a message in BDAT chunks is stored as one, bare LFs made CRLF like DATA's; a
/// refused BDAT's bytes are read, never taken for commands; DATA and RCPT cannot join a message BDAT has
/// begun; chunks past the size limit are read and the message refused at LAST.
#[tokio::test]
async fn bdat_chunks_make_one_message_and_refused_chunks_are_still_read() {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.limits.message_bytes_max = 100_000;
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    let mut r = smtp(s.addr_of(Service::Smtp)).await;
    // Refused (no MAIL yet), and the chunk that says QUIT is data, not a command.
    r.send(b"BDAT 6\r\nQUIT\r\n").await;
    assert_eq!(reply(&mut r).await, "503 5.5.1 Send MAIL first");
    ehlo_mail_rcpt(&mut r, "alice@localhost").await;
    let first = b"Subject: chunked\r\nX-Bare: lf\n\r\nfirst ";
    r.send(format!("BDAT {}\r\n", first.len()).as_bytes()).await;
    r.send(first).await;
    assert_eq!(
        reply(&mut r).await,
        format!("250 2.0.0 {} octets received", first.len())
    );
    dialog(
        &mut r,
        &[
            (
                "DATA",
                "503 5.5.1 BDAT has begun this message; end it with BDAT LAST",
            ),
            (
                "RCPT TO:<alice@localhost>",
                "503 5.5.1 BDAT has begun this message; no more recipients",
            ),
        ],
    )
    .await;
    // The last chunk and a command after it, in one write (pipelined), then an empty LAST of its own.
    r.send(b"BDAT 8\r\nsecond\r\nBDAT 0 LAST\r\nNOOP\r\n").await;
    assert_eq!(reply(&mut r).await, "250 2.0.0 8 octets received");
    assert!(reply(&mut r).await.starts_with("250 2.0.0 OK: stored as "));
    assert_eq!(reply(&mut r).await, "250 2.0.0 OK");
    let inbox = stored(&s, "alice", "alice-pw").await;
    let last = text(inbox.last().unwrap());
    assert!(
        last.ends_with("Subject: chunked\r\nX-Bare: lf\r\n\r\nfirst second\r\n"),
        "{last}"
    );
    assert!(
        last.starts_with("Return-Path: <x@example.org>\r\nReceived: from client.test"),
        "{last}"
    );

    // Past the limit: the chunk is read to its end and the message refused at once; a chunk sent
    // after that is read too, and refused; the session goes on.
    ehlo_mail_rcpt(&mut r, "alice@localhost").await;
    let chunk = vec![b'x'; 60_000];
    r.send(b"BDAT 60000\r\n").await;
    r.send(&chunk).await;
    assert_eq!(reply(&mut r).await, "250 2.0.0 60000 octets received");
    r.send(b"BDAT 60000\r\n").await;
    r.send(&chunk).await;
    assert_eq!(
        reply(&mut r).await,
        "552 5.3.4 Message too big; the limit is 100000 bytes"
    );
    r.send(b"BDAT 5 LAST\r\nNOOP\n").await;
    assert_eq!(reply(&mut r).await, "503 5.5.1 Send MAIL first");
    assert_eq!(say(&mut r, "NOOP").await, "250 2.0.0 OK");
    assert_eq!(stored(&s, "alice", "alice-pw").await.len(), inbox.len());
}

/// Each command in turn, with the last line of the reply it must get.
async fn dialog(r: &mut Raw, steps: &[(&str, &str)]) {
    for (command, want) in steps {
        assert_eq!(say(r, command).await, *want, "reply to {command:?}");
    }
}

#[tokio::test]
async fn recipients_size_limit_and_data_rules() {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.limits.message_bytes_max = 64 * 1024;
    })
    .await;
    s.add_user("bob", "bob-pw").await;
    let addr = s.addr_of(Service::Smtp);

    // 1,000 recipients, pipelined: the first 100 are taken, the rest get 452 (RFC 5321 §4.5.3.1.10).
    let mut r = smtp(addr).await;
    assert!(say(&mut r, "EHLO c").await.starts_with("250 "));
    assert_eq!(
        say(&mut r, "MAIL FROM:<x@example.org>").await,
        "250 2.1.0 Sender OK"
    );
    r.send("RCPT TO:<bob@localhost>\r\n".repeat(1000).as_bytes())
        .await;
    for i in 0..1000 {
        let want = if i < 100 {
            "250 2.1.5 Recipient OK"
        } else {
            "452 4.5.3 Too many recipients; send the rest in another message"
        };
        assert_eq!(r.line().await, want, "recipient {i}");
    }
    // Bare LFs become CRLF; only CRLF.CRLF ends the message; lines over 1,000 octets are kept.
    assert_eq!(
        say(&mut r, "DATA").await,
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    let long_line = "y".repeat(3000);
    r.send(format!("Subject: rules\r\n\r\nbare\nlf\n.\n..dot\r\n{long_line}\r\n.\r\n").as_bytes())
        .await;
    assert!(reply(&mut r).await.starts_with("250 2.0.0 OK"));
    let mail = stored(&s, "bob", "bob-pw").await;
    assert_eq!(mail.len(), 2, "one copy although bob was named 100 times");
    assert!(
        mail[1].ends_with(
            format!("Subject: rules\r\n\r\nbare\r\nlf\r\n\r\n.dot\r\n{long_line}\r\n").as_bytes()
        ),
        "{}",
        text(&mail[1])
    );

    // Over the size limit: read to the end, refused, nothing stored, the session goes on.
    ehlo_mail_rcpt(&mut r, "bob@localhost").await;
    assert_eq!(
        say(&mut r, "DATA").await,
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    r.send(format!("Subject: big\r\n\r\n{}\r\n.\r\n", "z".repeat(70 * 1024)).as_bytes())
        .await;
    assert_eq!(
        reply(&mut r).await,
        "552 5.3.4 Message too big; the limit is 65536 bytes"
    );
    assert_eq!(say(&mut r, "NOOP").await, "250 2.0.0 OK");

    // A disconnect in the middle of DATA stores nothing.
    let mut cut = smtp(addr).await;
    ehlo_mail_rcpt(&mut cut, "bob@localhost").await;
    assert_eq!(
        say(&mut cut, "DATA").await,
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    cut.send(b"Subject: half\r\n\r\nnever finished\r\n").await;
    drop(cut);
    // 10,000 pipelined commands in one write get 10,000 replies, in order.
    r.send("NOOP\r\n".repeat(10_000).as_bytes()).await;
    for _ in 0..10_000 {
        assert_eq!(r.line().await, "250 2.0.0 OK");
    }
    assert_eq!(
        stored(&s, "bob", "bob-pw").await.len(),
        2,
        "nothing of the big or the cut message"
    );
}

#[tokio::test]
async fn a_store_failure_before_durability_is_a_4xx_and_stores_nothing() {
    let s = server().await;
    let mut r = smtp(s.addr_of(Service::Smtp)).await;
    ehlo_mail_rcpt(&mut r, "bob@localhost").await;
    assert_eq!(
        say(&mut r, "DATA").await,
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    // The store stops (as when its disk fails) before the message is complete.
    jmail::store::MailStore::close(s.store.as_ref()).await;
    r.send(b"Subject: lost\r\n\r\nbody\r\n.\r\n").await;
    assert_eq!(
        reply(&mut r).await,
        "451 4.3.0 Temporary failure; nothing was stored; try again later"
    );
    let reopened = jmail::store::sqlite::SqliteStore::open(s.dir.path()).unwrap();
    let users = jmail::store::AccountStore::list_users(&reopened)
        .await
        .unwrap();
    let bob = users.iter().find(|u| u.name == "bob").unwrap();
    assert_eq!(bob.usage.messages, 1, "only the welcome message");
}

/// Guessing recipients costs errors: the `bad_commands_max`-th unknown one closes the connection.
#[tokio::test]
async fn guessing_recipients_is_cut_off() {
    let s = server().await;
    let mut r = smtp(s.addr_of(Service::Smtp)).await;
    assert!(say(&mut r, "EHLO c").await.starts_with("250 "));
    assert_eq!(
        say(&mut r, "MAIL FROM:<x@example.org>").await,
        "250 2.1.0 Sender OK"
    );
    for i in 0..19 {
        assert_eq!(
            say(&mut r, &format!("RCPT TO:<guess{i}@localhost>")).await,
            format!("550 5.1.1 <guess{i}@localhost>: no such user here")
        );
    }
    assert_eq!(
        say(&mut r, "RCPT TO:<bob@localhost>").await,
        "250 2.1.5 Recipient OK"
    );
    assert_eq!(
        say(&mut r, "RCPT TO:<guess19@localhost>").await,
        "421 4.7.0 Too many errors; closing"
    );
    assert!(r.closed().await.0);
}

/// Messages from strangers are held in memory while they arrive, so only `smtp_data_unauth_max` are
/// received at once; the next gets a temporary refusal at DATA and succeeds once a slot is free.
#[tokio::test]
async fn unauthenticated_messages_in_progress_are_bounded() {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.limits.smtp_data_unauth_max = 1;
    })
    .await;
    s.add_user("bob", "bob-pw").await;
    let addr = s.addr_of(Service::Smtp);
    let mut first = smtp(addr).await;
    ehlo_mail_rcpt(&mut first, "bob@localhost").await;
    assert_eq!(
        say(&mut first, "DATA").await,
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    first.send(b"Subject: slow\r\n\r\nstill coming").await;

    let mut second = smtp(addr).await;
    ehlo_mail_rcpt(&mut second, "bob@localhost").await;
    assert_eq!(
        say(&mut second, "DATA").await,
        "452 4.3.1 Too many messages are being received; try again later"
    );
    first.send(b"\r\n.\r\n").await;
    assert!(reply(&mut first).await.starts_with("250 2.0.0 OK"));
    assert_eq!(
        say(&mut second, "DATA").await,
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    second.send(b"Subject: next\r\n\r\nhi\r\n.\r\n").await;
    assert!(reply(&mut second).await.starts_with("250 2.0.0 OK"));
}

/// Every SMTP server takes mail for postmaster, in any case, with or without a local domain (RFC 5321
/// §4.5.1): the configured user gets it, else a user named postmaster, else the first user created.
#[tokio::test]
async fn postmaster_is_always_accepted() {
    let send_to_postmaster = async |s: &TestServer, rcpt: &str| {
        let mut r = smtp(s.addr_of(Service::Smtp)).await;
        ehlo_mail_rcpt(&mut r, rcpt).await;
        assert!(say(&mut r, "DATA").await.starts_with("354 "));
        let reply = say(&mut r, &format!("Subject: to {rcpt}\r\n\r\nhello\r\n.")).await;
        assert!(reply.starts_with("250 2.0.0 OK"), "{reply}");
    };
    // No postmaster account: the first user created (alice) gets it.
    let s = server().await;
    for rcpt in ["postmaster", "Postmaster@localhost", "POSTMASTER@LOCALHOST"] {
        send_to_postmaster(&s, rcpt).await;
    }
    let mail = stored(&s, "alice", "alice-pw").await;
    assert_eq!(mail.len(), 4, "the welcome and three");
    assert!(text(&mail[3]).contains("Subject: to POSTMASTER@LOCALHOST\r\n"));
    // Another domain's postmaster is not ours.
    let mut r = smtp(s.addr_of(Service::Smtp)).await;
    say(&mut r, "EHLO client.test").await;
    say(&mut r, "MAIL FROM:<x@example.org>").await;
    assert_eq!(
        say(&mut r, "RCPT TO:<postmaster@example.org>").await,
        "550 5.7.1 Relay access denied"
    );

    // A user named postmaster gets it.
    s.add_user("postmaster", "pm-pw").await;
    send_to_postmaster(&s, "postmaster@localhost").await;
    assert_eq!(stored(&s, "postmaster", "pm-pw").await.len(), 2);

    // The configured user gets it.
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.postmaster = Some("Bob".into());
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    s.add_user("bob", "bob-pw").await;
    send_to_postmaster(&s, "postmaster").await;
    assert_eq!(stored(&s, "bob", "bob-pw").await.len(), 2);
    assert_eq!(stored(&s, "alice", "alice-pw").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_going_round_in_circles_is_refused() {
    refused_past_a_header_bound(
        "Received: from somewhere\r\n",
        50,
        "554 5.4.6 Too many hops (50 Received fields): a mail loop? Nothing was stored",
    )
    .await;
}

/// Sends bob a message whose header repeats `field` `refused` times before its Subject, which gets
/// `reply`, then one with a single repeat fewer, which is stored.
async fn refused_past_a_header_bound(field: &str, refused: usize, reply: &str) {
    let s = server().await;
    let mut r = smtp(s.addr_of(Service::Smtp)).await;
    for (repeats, subject) in [(refused, "over"), (refused - 1, "fine")] {
        ehlo_mail_rcpt(&mut r, "bob@localhost").await;
        assert!(say(&mut r, "DATA").await.starts_with("354"));
        let mut message = field.repeat(repeats);
        message.push_str(&format!("Subject: {subject}\r\n\r\nbody\r\n."));
        let answer = say(&mut r, &message).await;
        match subject {
            "over" => assert_eq!(answer, reply),
            _ => assert!(answer.starts_with("250 2.0.0 OK: stored as "), "{answer}"),
        }
    }
    assert_eq!(
        stored(&s, "bob", "bob-pw").await.len(),
        2,
        "welcome and the fine one"
    );
}

/// Checking who sent a stranger's message holds some 50 bytes per header field, so a header of
/// countless tiny fields is refused rather than parsed (before, 10 MB of them cost 130 MB there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_of_countless_fields_is_refused() {
    refused_past_a_header_bound(
        "X:1\r\n",
        10_000,
        "552 5.3.4 Too many header fields (more than 10000); nothing was stored",
    )
    .await;
}

/// On port 25 a stranger may not say it is a local user: they log in on submission to send, and a local
/// script or filter connects from this machine. Bounces (`<>`) and other domains are strangers' to use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_send_as_a_local_user() {
    let s = server().await;
    let addr = s.addr_of(Service::Smtp);
    let mut stranger = Raw {
        stream: tokio::io::BufReader::new(crate::harness::connect_from([127, 0, 0, 2], addr).await),
    };
    stranger.expect("220 localhost ESMTP Jmail ready").await;
    assert!(
        say(&mut stranger, "EHLO evil.example")
            .await
            .starts_with("250 ")
    );
    for forged in ["alice@localhost", "Bob@LOCALHOST"] {
        assert_eq!(
            say(&mut stranger, &format!("MAIL FROM:<{forged}>")).await,
            format!(
                "550 5.7.1 Sender <{forged}> is an address of this server; its users log in on the submission port to send"
            )
        );
    }
    assert_eq!(
        say(&mut stranger, "MAIL FROM:<>").await,
        "250 2.1.0 Sender OK"
    );
    assert_eq!(say(&mut stranger, "RSET").await, "250 2.0.0 OK");
    assert_eq!(
        say(&mut stranger, "MAIL FROM:<alice@example.org>").await,
        "250 2.1.0 Sender OK"
    );
    // From this machine (127.0.0.1) a local sender is taken.
    let mut local = smtp(addr).await;
    assert!(say(&mut local, "EHLO localhost").await.starts_with("250 "));
    assert_eq!(
        say(&mut local, "MAIL FROM:<alice@localhost>").await,
        "250 2.1.0 Sender OK"
    );
}

/// Strangers may have only so much stored from one address in an hour (a full disk stops mail for
/// everyone); another address, and this host itself, are counted apart.
#[tokio::test]
async fn strangers_store_only_so_much_an_hour_from_one_address() {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.limits.smtp_unauth_bytes_per_ip_hour_max = 1 << 20;
    })
    .await;
    s.add_user("bob", "bob-pw").await;
    let addr = s.addr_of(Service::Smtp);
    let body = format!("Subject: big\r\n\r\n{}\r\n.", "x".repeat(600_000));
    let send = async |source: [u8; 4]| {
        let mut r = Raw {
            stream: tokio::io::BufReader::new(crate::harness::connect_from(source, addr).await),
        };
        r.expect("220 localhost ESMTP Jmail ready").await;
        assert!(say(&mut r, "EHLO client.test").await.starts_with("250 "));
        let mail = say(&mut r, "MAIL FROM:<x@example.org> SIZE=600020").await;
        if !mail.starts_with("250") {
            return mail;
        }
        assert_eq!(
            say(&mut r, "RCPT TO:<bob@localhost>").await,
            "250 2.1.5 Recipient OK"
        );
        assert!(say(&mut r, "DATA").await.starts_with("354"));
        say(&mut r, &body).await
    };
    assert!(send([127, 0, 0, 2]).await.starts_with("250 2.0.0 OK"));
    assert_eq!(
        send([127, 0, 0, 2]).await,
        "452 4.7.1 Too much mail from your address this hour; try again later"
    );
    assert!(send([127, 0, 0, 3]).await.starts_with("250 2.0.0 OK"));
    assert!(send([127, 0, 0, 1]).await.starts_with("250 2.0.0 OK"));
    assert!(send([127, 0, 0, 1]).await.starts_with("250 2.0.0 OK"));
}
