//! Delivery status notifications as the sender asks for them (RFC 3461): NOTIFY, ORCPT, RET and ENVID
//! given to smtplib on submission; two Jmail hosts (each offers DSN, so the first passes the parameters
//! on and the second reports delivery), and a plain receiving server of the test's own that offers no
//! DSN (the first host then reports the message relayed) or does (it gets the parameters verbatim).

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jmail::store::QueueStore;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::dns::TestDns;
use crate::federation::{TwoHosts, addresses, arrives, publish, tune, two_hosts};
use crate::harness::TestServer;

/// Sends one message over `s`'s submission port with these MAIL and RCPT options.
async fn send(
    s: &TestServer,
    sender: (&str, &str, &str),
    to: &str,
    subject: &str,
    mail_options: &[&str],
    rcpt_options: &[&str],
) -> String {
    crate::federation::submit_with(s, sender, &[to], subject, (mail_options, rcpt_options)).await
}

/// Waits until `s`'s queue is empty.
pub async fn queue_drained(s: &TestServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !s.store.queue_list().await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message in `user`'s INBOX, as text.
pub async fn inbox(s: &TestServer, user: &str, password: &str) -> Vec<String> {
    let mut c = s.client(user, password).await;
    c.select("INBOX").await.unwrap();
    let mut out = Vec::new();
    for m in c.list(0).await.unwrap().messages {
        out.push(String::from_utf8_lossy(&c.read(m.id).await.unwrap()).into_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_follow_what_the_sender_asked() {
    // `_dns` keeps the test's DNS server running.
    let TwoHosts {
        a, b, dns: _dns, ..
    } = two_hosts().await;
    a.add_user("carol", "carol-pw").await;
    let alice = ("alice", "alice-pw", "alice@a.test");

    // To another Jmail: a.test passes the parameters on, and b.test reports the delivery to alice
    // (null sender, proven by SPF), naming her envelope id and the recipient as she wrote it.
    let taken = send(
        &a,
        alice,
        "bob@b.test",
        "to bob",
        &["RET=HDRS", "ENVID=QQ+20314159"],
        &["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Bob@B.test"],
    )
    .await;
    assert_eq!(taken, "{}");
    arrives(&b, "bob", "bob-pw", "INBOX", "the body of to bob").await;
    let report = arrives(
        &a,
        "alice",
        "alice-pw",
        "INBOX",
        "Original-Envelope-Id: QQ 314159",
    )
    .await;
    assert!(
        report.contains("Subject: Successful Mail Delivery Report\r\n"),
        "{report}"
    );
    assert!(
        report.contains("From: Mail Delivery System <MAILER-DAEMON@mx.b.test>\r\n"),
        "{report}"
    );
    assert!(
        report.contains("Original-Envelope-Id: QQ 314159\r\nReporting-MTA: dns; mx.b.test\r\n"),
        "{report}"
    );
    assert!(
        report.contains(
            "Original-Recipient: rfc822; Bob@B.test\r\nFinal-Recipient: rfc822; bob@b.test\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
        ),
        "{report}"
    );
    assert!(
        report.contains("Subject: to bob\r\n"),
        "the header is quoted: {report}"
    );
    assert!(!report.contains("the body of"), "not the body: {report}");
    assert!(report.contains("dkim=pass"), "signed by b.test: {report}");

    // To a local user: a.test reports itself.
    let taken = send(
        &a,
        alice,
        "carol@a.test",
        "to carol",
        &["ENVID=LOCAL1"],
        &["NOTIFY=SUCCESS"],
    )
    .await;
    assert_eq!(taken, "{}");
    let report = arrives(
        &a,
        "alice",
        "alice-pw",
        "INBOX",
        "Original-Envelope-Id: LOCAL1",
    )
    .await;
    assert!(
        report.contains("Reporting-MTA: dns; mx.a.test\r\n")
            && report
                .contains("\r\nFinal-Recipient: rfc822; carol@a.test\r\nAction: delivered\r\n"),
        "{report}"
    );
    arrives(&a, "carol", "carol-pw", "INBOX", "the body of to carol").await;

    // NOTIFY=NEVER: no report of the failure. NOTIFY=FAILURE with RET=FULL: the whole message back.
    let never = send(
        &a,
        alice,
        "nobody@b.test",
        "never tell",
        &["ENVID=NEVER1"],
        &["NOTIFY=NEVER"],
    )
    .await;
    assert_eq!(never, "{}");
    let full = send(
        &a,
        alice,
        "nobody2@b.test",
        "tell all",
        &["RET=FULL", "ENVID=FULL1"],
        &["NOTIFY=FAILURE"],
    )
    .await;
    assert_eq!(full, "{}");
    let report = arrives(
        &a,
        "alice",
        "alice-pw",
        "INBOX",
        "Original-Envelope-Id: FULL1",
    )
    .await;
    assert!(
        report.contains("Subject: Undelivered Mail Returned to Sender\r\n"),
        "{report}"
    );
    assert!(
        report
            .contains("Final-Recipient: rfc822; nobody2@b.test\r\nAction: failed\r\nStatus: 5.1.1"),
        "{report}"
    );
    assert!(
        report.contains("Content-Type: message/rfc822\r\n"),
        "{report}"
    );
    assert!(
        report.contains("the body of tell all"),
        "RET=FULL returns the body: {report}"
    );
    queue_drained(&a).await;
    let all = inbox(&a, "alice", "alice-pw").await;
    assert!(
        !all.iter()
            .any(|m| m.contains("NEVER1") || m.contains("never tell")),
        "NOTIFY=NEVER was reported: {all:?}"
    );
    let reports = all.iter().filter(|m| m.contains("MAILER-DAEMON@")).count();
    assert_eq!(reports, 3, "two delivered, one failed: {all:?}");

    // Parameters that would forge report fields, or contradict themselves, are refused.
    let refused = send(
        &a,
        alice,
        "bob@b.test",
        "forged",
        &["ENVID=x+0D+0AX-Evil:+201"],
        &[],
    )
    .await;
    assert_eq!(
        refused,
        "501 5.5.4 ENVID must be 1 to 100 printable characters"
    );
    let refused = send(
        &a,
        alice,
        "bob@b.test",
        "forged",
        &[],
        &["ORCPT=rfc822;a+0Ab"],
    )
    .await;
    assert_eq!(
        refused,
        r#"{"bob@b.test": [501, "5.5.4 ORCPT must be 1 to 500 printable characters"]}"#
    );
    let refused = send(
        &a,
        alice,
        "bob@b.test",
        "odd",
        &[],
        &["NOTIFY=NEVER,SUCCESS"],
    )
    .await;
    assert_eq!(
        refused,
        r#"{"bob@b.test": [501, "5.5.4 NOTIFY=NEVER cannot be combined with other values"]}"#
    );
    a.stop().await;
    b.stop().await;
}

/// EHLO replies of a receiving server with and without DSN.
const EHLO_DSN: &[u8] = b"250-mx.c.test\r\n250-8BITMIME\r\n250 DSN\r\n";
const EHLO_PLAIN: &[u8] = b"250-mx.c.test\r\n250 8BITMIME\r\n";

/// A receiving server of the test's own on `ip:port` for `c.test`: it answers EHLO with `ehlo`, takes
/// every message, and records every command line it is sent.
pub async fn plain_mx(
    ip: Ipv4Addr,
    port: u16,
    ehlo: &'static [u8],
) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<String>>>) {
    scripted_mx(ip, port, &[("EHLO", ehlo)]).await
}

/// [`plain_mx`] answering as `replies` say: by verb (`EHLO`, `MAIL`, `RCPT`, `DATA`, `RSET`), and
/// `END` for the end of the data; anything else `250 2.0.0 ok`, DATA `354`, END `250 2.0.0 taken`.
pub async fn scripted_mx(
    ip: Ipv4Addr,
    port: u16,
    replies: &[(&'static str, &'static [u8])],
) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<String>>>) {
    let replies: std::collections::HashMap<&'static str, &'static [u8]> =
        replies.iter().copied().collect();
    let listener = tokio::net::TcpListener::bind((ip, port)).await.unwrap();
    let said = Arc::new(Mutex::new(Vec::new()));
    let log = said.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (log, replies) = (log.clone(), replies.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 mx.c.test ESMTP\r\n").await.unwrap();
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            let end = replies
                                .get("END")
                                .copied()
                                .unwrap_or(b"250 2.0.0 taken\r\n");
                            let _ = write.write_all(end).await;
                        }
                        continue;
                    }
                    log.lock().unwrap().push(line.clone());
                    let verb = line
                        .split([' ', ':'])
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let scripted = replies.get(verb.as_str()).copied();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => scripted.unwrap_or(b"250 mx.c.test\r\n"),
                        "DATA" => {
                            in_data = true;
                            scripted.unwrap_or(b"354 go on\r\n")
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => scripted.unwrap_or(b"250 2.0.0 ok\r\n"),
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (task, said)
}

/// Waits until the server was sent QUIT.
pub async fn quit(said: &Mutex<Vec<String>>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !said.lock().unwrap().iter().any(|l| l == "QUIT") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            said.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Jmail for a.test with alice, and the DNS naming `c.test`'s MX, which [`plain_mx`] plays on the
/// returned address and port.
pub async fn alice_and_c_test() -> (TestDns, TestServer, Ipv4Addr, u16) {
    let dns = TestDns::start().await;
    let (ip_a, ip_c, _, port) = addresses();
    let dir_a = TempDir::new().unwrap();
    publish(&dns, "a.test", ip_a, &dir_a, "p=none");
    dns.mx("c.test", "mx.c.test");
    dns.a("mx.c.test", ip_c);
    let a = TestServer::start_in(dir_a, |c| tune(c, "a.test", ip_a, port, dns.addr)).await;
    a.add_user("alice", "alice-pw").await;
    (dns, a, ip_c, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_without_dsn_gets_no_parameters_and_the_sender_hears_relayed() {
    let (_dns, a, ip_c, port) = alice_and_c_test().await;
    let alice = ("alice", "alice-pw", "alice@a.test");

    // No DSN there: nothing passed on, and alice hears it was relayed, to where.
    let (mx, said) = plain_mx(ip_c, port, EHLO_PLAIN).await;
    let taken = send(
        &a,
        alice,
        "x@c.test",
        "to x",
        &["ENVID=R1"],
        &["NOTIFY=SUCCESS", "ORCPT=rfc822;X@c.test"],
    )
    .await;
    assert_eq!(taken, "{}");
    let report = arrives(&a, "alice", "alice-pw", "INBOX", "Original-Envelope-Id: R1").await;
    assert!(
        report.contains(
            "Original-Recipient: rfc822; X@c.test\r\nFinal-Recipient: rfc822; x@c.test\r\nAction: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; mx.c.test\r\n"
        ),
        "{report}"
    );
    // The worker keeps its connection a moment for more mail; it must end before the next server.
    quit(&said).await;
    let lines = said.lock().unwrap().clone();
    let mail = lines.iter().find(|l| l.starts_with("MAIL")).unwrap();
    assert!(
        !mail.contains("ENVID") && !mail.contains("RET"),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"RCPT TO:<x@c.test>".to_string()),
        "{lines:?}"
    );
    mx.abort();
    let _ = mx.await;

    // DSN there: the parameters go on as given, and the report is that server's to make.
    let (mx, said) = plain_mx(ip_c, port, EHLO_DSN).await;
    let taken = send(
        &a,
        alice,
        "y@c.test",
        "to y",
        &["RET=HDRS", "ENVID=R+2B2"],
        &["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Y@c.test"],
    )
    .await;
    assert_eq!(taken, "{}");
    quit(&said).await;
    queue_drained(&a).await;
    let lines = said.lock().unwrap().clone();
    let mail = lines.iter().find(|l| l.starts_with("MAIL")).unwrap();
    assert_eq!(
        mail, "MAIL FROM:<alice@a.test> BODY=8BITMIME RET=HDRS ENVID=R+2B2",
        "{lines:?}"
    );
    assert!(
        lines.contains(
            &"RCPT TO:<y@c.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Y@c.test".to_string()
        ),
        "{lines:?}"
    );
    let all = inbox(&a, "alice", "alice-pw").await;
    let reports: Vec<&String> = all
        .iter()
        .filter(|m| m.contains("MAILER-DAEMON@"))
        .collect();
    assert_eq!(reports.len(), 1, "only the first report: {all:?}");
    mx.abort();
    a.stop().await;
}

const JMAP_SCRIPT: &str = r##"
import sys, requests, urllib3
urllib3.disable_warnings()
https = sys.argv[1]
api = f"https://127.0.0.1:{https}/jmap/api"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission"]
def call(calls):
    r = requests.post(api, auth=("alice", "alice-pw"), verify=False, json={"using": USING, "methodCalls": calls})
    assert r.status_code == 200, r.text
    return r.json()["methodResponses"]
session = requests.get(f"https://127.0.0.1:{https}/jmap/session", auth=("alice", "alice-pw"), verify=False).json()
account = session["primaryAccounts"]["urn:ietf:params:jmap:submission"]
[[_, boxes, _]] = call([["Mailbox/get", {"accountId": account}, "m"]])
drafts = [b["id"] for b in boxes["list"] if b["role"] == "drafts"][0]
draft = {"mailboxIds": {drafts: True}, "from": [{"email": "alice@localhost"}], "to": [{"email": "bob@localhost"}],
         "subject": "by jmap", "textBody": [{"partId": "t", "type": "text/plain"}], "bodyValues": {"t": {"value": "hi bob"}}}
envelope = {"mailFrom": {"email": "alice@localhost", "parameters": {"ENVID": "JMAP1"}},
            "rcptTo": [{"email": "bob@localhost", "parameters": {"NOTIFY": "SUCCESS", "ORCPT": "rfc822;Bob@localhost"}}]}
made = call([["Email/set", {"accountId": account, "create": {"d": draft}}, "0"],
             ["EmailSubmission/set", {"accountId": account, "create": {"s": {"identityId": "i0", "emailId": "#d", "envelope": envelope}}}, "1"]])
assert "s" in made[1][1]["created"], made
print("ok")
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jmap_submission_asks_for_a_delivery_report() {
    let s = TestServer::start_with(|c| c.https_port = Some(0)).await;
    s.add_user("alice", "alice-pw").await;
    s.add_user("bob", "bob-pw").await;
    let https = s.addr_of(jmail::server::Service::Https).port().to_string();
    assert_eq!(
        crate::harness::python(JMAP_SCRIPT, &[https]).await.trim(),
        "ok"
    );
    arrives(&s, "bob", "bob-pw", "INBOX", "hi bob").await;
    let report = arrives(
        &s,
        "alice",
        "alice-pw",
        "INBOX",
        "Original-Envelope-Id: JMAP1",
    )
    .await;
    assert!(
        report.contains(
            "Original-Recipient: rfc822; Bob@localhost\r\nFinal-Recipient: rfc822; bob@localhost\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
        ),
        "{report}"
    );
    s.stop().await;
}
