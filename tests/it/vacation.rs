//! The automatic reply while away: set over JMAP (VacationResponse, RFC 8621 §8) by raw HTTP, then sent
//! when mail arrives by SMTP: once per sender, never to a list, an automatic message or a sender
//! nobody vouches for, stored for a local sender and queued with the null sender for a remote one.

use jmail::server::Service;
use jmail::store::{MailStore, QueueStore};

use crate::harness::{TestServer, python};

const SCRIPT: &str = r##"
import sys, json, time, imaplib, smtplib, email
import requests, urllib3
urllib3.disable_warnings()

https, imap_port, smtp_port, submission_port = sys.argv[1:5]
api = f"https://127.0.0.1:{https}/jmap/api"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:vacationresponse"]

def call(user, method, args, using=USING):
    r = requests.post(api, auth=(user, user + "-pw"), verify=False,
                      json={"using": using, "methodCalls": [[method, args, "0"]]})
    assert r.status_code == 200, r.text
    return r.json()["methodResponses"][0]

session = requests.get(f"https://127.0.0.1:{https}/jmap/session", auth=("alice", "alice-pw"), verify=False).json()
assert session["capabilities"]["urn:ietf:params:jmap:vacationresponse"] == {}, session["capabilities"]
account = session["primaryAccounts"]["urn:ietf:params:jmap:vacationresponse"]
assert "urn:ietf:params:jmap:vacationresponse" in session["accounts"][account]["accountCapabilities"]

# Off until set; one object, `singleton`.
name, got, _ = call("alice", "VacationResponse/get", {"accountId": account})
assert name == "VacationResponse/get", got
assert got["state"] == "0" and got["notFound"] == [], got
assert got["list"] == [{"id": "singleton", "isEnabled": False, "fromDate": None, "toDate": None,
                        "subject": None, "textBody": None, "htmlBody": None}], got
name, got, _ = call("alice", "VacationResponse/get", {"accountId": account, "ids": ["other"], "properties": ["isEnabled"]})
assert got["list"] == [] and got["notFound"] == ["other"], got
# Without the capability in `using`, the method is unknown.
name, got, _ = call("alice", "VacationResponse/get", {"accountId": account}, ["urn:ietf:params:jmap:core"])
assert name == "error" and got["type"] == "unknownMethod", got

# What cannot be done: make or destroy one, a wrong type, a date order backwards, a stale state.
name, got, _ = call("alice", "VacationResponse/set", {"accountId": account,
    "create": {"c1": {"isEnabled": True}}, "destroy": ["singleton"],
    "update": {"singleton": {"isEnabled": "yes"}, "other": {"isEnabled": True}}})
assert got["notCreated"]["c1"]["type"] == "singleton", got
assert got["notDestroyed"]["singleton"]["type"] == "singleton", got
assert got["notUpdated"]["singleton"]["type"] == "invalidProperties", got
assert got["notUpdated"]["singleton"]["properties"] == ["isEnabled"], got
assert got["notUpdated"]["other"]["type"] == "notFound", got
assert got["newState"] == got["oldState"] == "0", got
name, got, _ = call("alice", "VacationResponse/set", {"accountId": account, "update": {"singleton": {
    "fromDate": "2030-01-02T00:00:00Z", "toDate": "2030-01-01T00:00:00Z"}}})
assert got["notUpdated"]["singleton"]["properties"] == ["fromDate"], got
name, got, _ = call("alice", "VacationResponse/set", {"accountId": account, "update": {"singleton": {
    "textBody": "x" * (64 * 1024 + 1)}}})
assert got["notUpdated"]["singleton"]["properties"] == ["textBody"], got
name, got, _ = call("alice", "VacationResponse/set", {"accountId": account, "ifInState": "7",
    "update": {"singleton": {"isEnabled": True}}})
assert name == "error" and got["type"] == "stateMismatch", got

# On, from yesterday, with a subject and a text.
name, got, _ = call("alice", "VacationResponse/set", {"accountId": account, "ifInState": "0",
    "update": {"singleton": {"isEnabled": True, "fromDate": "2020-01-01T00:00:00Z",
                             "subject": "Out of office", "textBody": "Back on Monday."}}})
assert got["updated"] == {"singleton": None} and got["oldState"] == "0" and got["newState"] == "1", got
name, got, _ = call("alice", "VacationResponse/get", {"accountId": account, "properties": ["isEnabled", "fromDate"]})
assert got["state"] == "1" and got["list"] == [{"id": "singleton", "isEnabled": True,
                                                "fromDate": "2020-01-01T00:00:00Z"}], got

def send(port, user, sender, to, subject, extra="", login=True):
    with smtplib.SMTP("127.0.0.1", int(port)) as s:
        if login:
            s.login(user, user + "-pw")
        msg = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
               f"Message-ID: <{subject.replace(' ', '.')}@x.test>\r\n{extra}\r\nHello\r\n")
        s.sendmail(sender, [to], msg)

def inbox(user):
    m = imaplib.IMAP4("127.0.0.1", int(imap_port))
    m.login(user, user + "-pw")
    m.select("INBOX")
    typ, data = m.fetch("1:*", "(BODY.PEEK[])")
    messages = [email.message_from_bytes(d[1]) for d in data if isinstance(d, tuple)]
    m.logout()
    return messages

def replies(user):
    return [m for m in inbox(user) if m["Auto-Submitted"] == "auto-replied"]

# bob writes twice: one reply, from the address he wrote to, threaded under his first message.
send(submission_port, "bob", "bob@localhost", "Alice <ALICE@localhost>", "first question")
send(submission_port, "bob", "bob@localhost", "alice@localhost", "second question")
got = replies("bob")
assert len(got) == 1, [m["Subject"] for m in got]
reply = got[0]
assert reply["Subject"] == "Out of office", reply["Subject"]
assert reply["From"] == "<alice@localhost>", reply["From"]
assert reply["To"] == "<bob@localhost>", reply["To"]
assert reply["In-Reply-To"] == "<first.question@x.test>", reply["In-Reply-To"]
assert reply.get_payload(decode=True).decode().strip() == "Back on Monday.", reply.get_payload()
# alice still got both.
assert len([m for m in inbox("alice") if "question" in (m["Subject"] or "")]) == 2

# carol writes as a list, as an automatic message, and to someone else with alice only in Bcc: no reply.
send(submission_port, "carol", "carol@localhost", "alice@localhost", "list post", "List-Id: <x.list.test>\r\n")
send(submission_port, "carol", "carol@localhost", "alice@localhost", "auto note", "Auto-Submitted: auto-generated\r\n")
send(submission_port, "carol", "carol@localhost", "alice@localhost", "bulk news", "Precedence: bulk\r\n")
assert replies("carol") == []
# Then as a person: one.
send(submission_port, "carol", "carol@localhost", "alice@localhost", "plain question")
assert len(replies("carol")) == 1

# A stranger from this host on port 25, at another domain: queued for there (the test checks the queue).
send(smtp_port, None, "ann@else.test", "alice@localhost", "from afar", login=False)

# Off: dave is not answered.
name, got, _ = call("alice", "VacationResponse/set", {"accountId": account, "update": {"singleton": {"isEnabled": False}}})
assert got["newState"] == "2", got
send(submission_port, "dave", "dave@localhost", "alice@localhost", "too late")
assert replies("dave") == []
print("ok")
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_away_user_answers_each_person_once_and_no_machine() {
    let server = TestServer::start_with(|config| {
        config.https_port = Some(0);
        config.imap_port = Some(0);
        config.smtp_port = Some(0);
        config.submission_port = Some(0);
    })
    .await;
    for name in ["alice", "bob", "carol", "dave"] {
        server.add_user(name, &format!("{name}-pw")).await;
    }
    let port = |service| server.addr_of(service).port().to_string();
    let ports = [
        Service::Https,
        Service::Imap,
        Service::Smtp,
        Service::Submission,
    ];
    let args: Vec<String> = ports.into_iter().map(port).collect();
    assert_eq!(python(SCRIPT, &args).await.trim(), "ok");
    // The reply to the stranger: queued for else.test with the null sender (RFC 3834 §3.3), DKIM-signed
    // for alice's domain; nothing else went out.
    let store = &server.store;
    let queue = store.queue_list().await.unwrap();
    assert_eq!(queue.len(), 1, "{queue:?}");
    let entry = &queue[0];
    assert_eq!(entry.domain, "else.test");
    assert_eq!(entry.sender, "");
    assert_eq!(entry.recipients, vec!["ann@else.test".to_string()]);
    let body = jmail::store::BodyRef {
        blob: entry.blob,
        len: entry.size,
    };
    let raw = store
        .body_chunk(body, 0, entry.size as usize)
        .await
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("DKIM-Signature:"), "{raw}");
    assert!(raw.contains("d=localhost"), "{raw}");
    assert!(raw.contains("Subject: Out of office\r\n"), "{raw}");
    assert!(raw.contains("To: <ann@else.test>\r\n"), "{raw}");
    server.stop().await;
}

/// `jmail user away`: shows the reply, switches it on with its text and days, is refused a bad
/// setting, and the running server answers with what it set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_the_reply_the_server_sends() {
    let server = TestServer::start_with(|config| config.submission_port = Some(0)).await;
    for name in ["alice", "bob", "carol"] {
        server.add_user(name, &format!("{name}-pw")).await;
    }
    let dir = server.dir.path().to_path_buf();
    let away = |args: &[&str]| {
        let mut all = vec!["user", "away", "alice"];
        all.extend_from_slice(args);
        crate::cli::jmail(&all, &dir).output().unwrap()
    };
    let out = away(&[]);
    assert!(out.status.success(), "{}", crate::cli::text(&out.stderr));
    assert!(
        crate::cli::text(&out.stdout).starts_with("away:    off\nfrom:    -\nuntil:   -\n"),
        "{}",
        crate::cli::text(&out.stdout)
    );
    let out = away(&[
        "--on",
        "--subject",
        "Out until Friday",
        "--text",
        "Back on Monday.",
        "--from",
        "2020-01-01",
        "--until",
        "2099-12-31",
    ]);
    assert!(out.status.success(), "{}", crate::cli::text(&out.stderr));
    assert_eq!(
        crate::cli::text(&out.stdout),
        "away:    on\nfrom:    2020-01-01\nuntil:   2099-12-31\nsubject: Out until Friday\ntext:    Back on Monday.\n"
    );
    let id = server.store.recipient("alice").await.unwrap().unwrap().user;
    let (v, _) = server.store.vacation(id).await.unwrap();
    assert!(v.enabled);
    assert_eq!(
        v.from_micros,
        Some(1_577_836_800_000_000),
        "2020-01-01T00:00Z"
    );
    assert_eq!(
        v.to_micros,
        Some(4_102_444_800_000_000),
        "2100-01-01T00:00Z: the last day included"
    );
    // Refused: the last day before the first, a subject of two lines, an unknown user.
    let out = away(&["--until", "2019-01-01"]);
    assert!(!out.status.success());
    assert!(
        crate::cli::text(&out.stderr).contains("after toDate"),
        "{}",
        crate::cli::text(&out.stderr)
    );
    let out = away(&["--subject", "a\nb"]);
    assert!(!out.status.success());
    let out = crate::cli::jmail(&["user", "away", "nobody"], &dir)
        .output()
        .unwrap();
    assert!(crate::cli::text(&out.stderr).contains("no user named nobody"));
    assert_eq!(
        server.store.vacation(id).await.unwrap().0,
        v,
        "unchanged by what was refused"
    );
    // The server answers bob with it.
    let script = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.login("bob", "bob-pw")
s.sendmail("bob@localhost", ["alice@localhost"], b"From: bob@localhost\r\nTo: alice@localhost\r\nSubject: lunch?\r\n\r\nhi\r\n")
s.quit()
print("ok")
"#;
    let port = server.addr_of(Service::Submission).port().to_string();
    assert_eq!(python(script, &[port]).await.trim(), "ok");
    let reply =
        crate::federation::arrives(&server, "bob", "bob-pw", "INBOX", "Back on Monday.").await;
    assert!(reply.contains("Subject: Out until Friday\r\n"), "{reply}");
    // A send over the native protocol (`jmail send`) is answered too.
    let native = server.addr.to_string();
    let args = [
        "send",
        "alice",
        "--subject",
        "native hello",
        "--message",
        "hi",
    ];
    let out = crate::cli::as_user(&dir, &native, "carol", "carol-pw", &args);
    assert!(out.status.success(), "{}", crate::cli::text(&out.stderr));
    let reply =
        crate::federation::arrives(&server, "carol", "carol-pw", "INBOX", "Back on Monday.").await;
    assert!(reply.contains("Subject: Out until Friday\r\n"), "{reply}");
    assert!(reply.contains("In-Reply-To: <"), "{reply}");
    // Off keeps the text.
    let out = away(&["--off"]);
    assert!(crate::cli::text(&out.stdout).starts_with("away:    off\n"));
    let (off, _) = server.store.vacation(id).await.unwrap();
    assert!(!off.enabled && off.text_body.as_deref() == Some("Back on Monday."));
    server.stop().await;
}
