//! Messages built to hurt a MIME parser, sent by a stranger over SMTP: nested as deep as their size
//! allows, or with a hundred thousand parts or addresses, or a million RFC 2231 continuations. Each is
//! taken, IMAP and JMAP describe it within their bounds, and the server lives. Before, the first one
//! aborted the whole server (a stack overflow dropping mail-parser's tree), JMAP took 1.6 GB to describe
//! the many parts of a 1.5 MB message, and each parse of the continuations took 75 s of CPU.

use jmail::server::Service;

use crate::harness::{TestServer, python};

const SCRIPT: &str = r##"
import sys, ssl, json, base64, smtplib, imaplib, urllib.request
smtp, imap, https = map(int, sys.argv[1:4])

def message(subject, rest):
    return ("From: stranger@example.org\r\nTo: alice@localhost\r\nSubject: %s\r\nMIME-Version: 1.0\r\n" % subject) + rest
def nested_messages(levels):
    return "Content-Type: message/rfc822\r\n\r\n" * levels + "Subject: leaf\r\n\r\nleaf\r\n"
bombs = {
    "nested messages": nested_messages(50000),
    "nested in base64": "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(("From: x@example.org\r\n" + nested_messages(5000)).encode()).decode().replace("\n", "\r\n"),
    "nested multiparts": "".join("Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (k, k) for k in range(100000))
        + "Content-Type: text/plain\r\n\r\nleaf\r\n",
    "many parts": "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + "--b\r\n\r\nx\r\n" * 100000 + "--b--\r\n",
    "countless continuations": "Content-Type: text/plain; " + "name*1*=b;" * 900000 + "name*0*=x\r\n\r\nbody\r\n",
}
s = smtplib.SMTP("127.0.0.1", smtp)
for subject, rest in bombs.items():
    s.sendmail("stranger@example.org", ["alice@localhost"], message(subject, rest))
many = ",\r\n ".join("u%d@example.org" % k for k in range(50000))
s.sendmail("stranger@example.org", ["alice@localhost"],
           "From: stranger@example.org\r\nTo: %s\r\nSubject: many addresses\r\n\r\nhi\r\n" % many)
s.sendmail("friend@example.org", ["alice@localhost"], "From: friend@example.org\r\nSubject: after\r\n\r\nstill here\r\n")
s.quit()

m = imaplib.IMAP4("127.0.0.1", imap)
m.login("alice", "alice-pw")
m.select("INBOX")
typ, data = m.fetch("1:*", "(BODYSTRUCTURE)")
assert typ == "OK", (typ, data)
# 50,000 addresses listed whole would be a line of 1.5 MB, past what imaplib reads (1 MB).
typ, data = m.fetch("1:*", "(ENVELOPE)")
assert typ == "OK", (typ, data)
typ, data = m.search(None, "TEXT", "still")
assert typ == "OK" and len(data[0].split()) == 1, data
m.logout()

ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def jmap(calls):
    request = urllib.request.Request("https://127.0.0.1:%d/jmap/api" % https, method="POST",
        data=json.dumps({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"], "methodCalls": calls}).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(b"alice:alice-pw").decode()})
    return json.load(urllib.request.urlopen(request, context=ctx))["methodResponses"]
account = "a1"
replies = jmap([["Email/query", {"accountId": account}, "q"],
                ["Email/get", {"accountId": account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                               "properties": ["subject", "to", "bodyStructure", "attachments", "textBody", "headers"]}, "g"]])
emails = {e["subject"]: e for e in replies[1][1]["list"]}
assert set(emails) >= set(bombs) | {"many addresses", "after"}, sorted(emails)
def depth(part):
    deepest, stack = 0, [(part, 1)]
    while stack:
        p, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((c, d + 1) for c in p.get("subParts") or [])
    return deepest
for subject, e in emails.items():
    assert depth(e["bodyStructure"]) <= 33, (subject, depth(e["bodyStructure"]))
    assert len(e["attachments"]) <= 1000 and len(e["textBody"]) <= 1000, subject
assert len(emails["many addresses"]["to"]) == 1000, len(emails["many addresses"]["to"])
assert len(emails["many parts"]["textBody"]) == 1000, len(emails["many parts"]["textBody"])
assert emails["nested multiparts"]["bodyStructure"]["type"] == "multipart/mixed"
print("ok")
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_built_to_hurt_a_mime_parser_are_taken_described_within_bounds_and_the_server_lives()
 {
    let s = TestServer::start_with(|c| {
        c.smtp_port = Some(0);
        c.imap_port = Some(0);
        c.https_port = Some(0);
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    let port = |service| s.addr_of(service).port().to_string();
    python(
        SCRIPT,
        &[
            port(Service::Smtp),
            port(Service::Imap),
            port(Service::Https),
        ],
    )
    .await;
    // And a new session is served.
    let mut c = s.client("alice", "alice-pw").await;
    assert!(c.list(0).await.unwrap().messages.len() >= 7);
    s.stop().await;
}
