//! What RFC 8620 and RFC 8621 ask that a compliance suite checks, by raw HTTP: an attached message's
//! own bytes, grouped addresses, keywords in lower case, raw header values without their CRLF, each
//! id once, unknown properties refused, the inbox never renamed, the server's sort order told back,
//! and `maxChanges` kept by Mailbox/changes.

use jmail::server::Service;

use crate::harness::{TestServer, python};

const SCRIPT: &str = r##"
import sys, imaplib, requests, urllib3
urllib3.disable_warnings()
https, imap_port = sys.argv[1:3]
base = f"https://127.0.0.1:{https}"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]

def call(method, args):
    r = requests.post(f"{base}/jmap/api", auth=("alice", "alice-pw"), verify=False,
                      json={"using": USING, "methodCalls": [[method, dict(accountId="a1", **args), "0"]]})
    assert r.status_code == 200, r.text
    return r.json()["methodResponses"][0]

inner = (b"From: inner@example.test\r\nTo: alice@localhost\r\nSubject: inner msg\r\n"
         b"Message-ID: <inner@example.test>\r\n\r\nThe forwarded text.\r\n")
outer = (b"From: Zed <zed@example.test>\r\nTo: alice@localhost\r\n"
         b"Cc: undisclosed-recipients:;, Team: x@example.test, y@example.test;\r\n"
         b"Subject: forwarded\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
         b"--b\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
         b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--b--\r\n")
imap = imaplib.IMAP4("127.0.0.1", int(imap_port))
imap.login("alice", "alice-pw")
imap.append("INBOX", "($Forwarded NonJunk)", None, outer)

_, got, _ = call("Email/query", {"filter": {"subject": "forwarded"}})
[eid] = got["ids"]
_, got, _ = call("Email/get", {"ids": [eid, eid], "properties": [
    "attachments", "keywords", "headers", "header:Cc:asGroupedAddresses", "header:To:asGroupedAddresses",
    "header:Cc:asAddresses"]})
# Each id once.
[email] = got["list"]
# The attached message is its own bytes, and parses as itself.
[att] = email["attachments"]
assert att["type"] == "message/rfc822" and att["size"] == len(inner), (att, len(inner))
r = requests.get(f"{base}/jmap/download/a1/{att['blobId']}/m.eml", auth=("alice", "alice-pw"), verify=False)
assert r.status_code == 200 and r.content == inner, r.content[:200]
_, parsed, _ = call("Email/parse", {"blobIds": [att["blobId"]], "properties": ["subject", "from", "id", "keywords"]})
assert parsed["parsed"][att["blobId"]]["subject"] == "inner msg", parsed
assert parsed["parsed"][att["blobId"]]["id"] is None and parsed["parsed"][att["blobId"]]["keywords"] is None, parsed
# Groups keep their names; addresses outside any group make a group without one.
assert email["header:Cc:asGroupedAddresses"] == [
    {"name": "undisclosed-recipients", "addresses": []},
    {"name": "Team", "addresses": [{"name": None, "email": "x@example.test"},
                                   {"name": None, "email": "y@example.test"}]}], email
assert email["header:To:asGroupedAddresses"] == [
    {"name": None, "addresses": [{"name": None, "email": "alice@localhost"}]}], email
assert email["header:Cc:asAddresses"] == [{"name": None, "email": "x@example.test"},
                                          {"name": None, "email": "y@example.test"}], email
# Keywords in lower case, however IMAP spelled them.
assert email["keywords"] == {"$forwarded": True, "nonjunk": True}, email["keywords"]
# Raw values from after the colon, without the CRLF that ends the field.
assert {"name": "Subject", "value": " forwarded"} in email["headers"], email["headers"]

# A header form its field cannot take, an unknown form, or an unknown collation: refused.
for bad in ["header:Subject:asDate", "header:X-A:asFoo", "header:X-A:all:asText"]:
    name, got, _ = call("Email/get", {"ids": [eid], "properties": [bad]})
    assert (name, got["type"]) == ("error", "invalidArguments"), (bad, got)
name, got, _ = call("Email/query", {"sort": [{"property": "subject", "collation": "i;nope"}]})
assert (name, got["type"]) == ("error", "unsupportedSort"), got
name, got, _ = call("Email/query", {"sort": [{"property": "subject", "collation": "i;unicode-casemap"}]})
assert name == "Email/query", got

# An inline image shown in both bodies is no attachment (RFC 8621 §4.1.4); the PDF is.
mixed = (b"From: a@example.test\r\nTo: alice@localhost\r\nSubject: pictures\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=m\r\n\r\n"
         b"--m\r\nContent-Type: text/plain\r\n\r\nHere.\r\n"
         b"--m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\n%PDF\r\n"
         b"--m\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=pic.png\r\n\r\nPNG\r\n--m--\r\n")
imap.append("INBOX", None, None, mixed)
_, got, _ = call("Email/query", {"filter": {"subject": "pictures"}})
_, got, _ = call("Email/get", {"ids": got["ids"], "properties": ["attachments", "textBody", "htmlBody"]})
[pictures] = got["list"]
assert [a["type"] for a in pictures["attachments"]] == ["application/pdf"], pictures
assert "image/png" in [p["type"] for p in pictures["textBody"]], pictures

# A charset nobody knows is an encoding problem; well-known ones are not.
for cs, problem in [("x-unknown-cs", True), ("utf-8", False), ("iso-8859-1", False), ("US-ASCII", False)]:
    imap.append("INBOX", None, None, f"From: a@example.test\r\nSubject: cs {cs}\r\nContent-Type: text/plain; charset={cs}\r\n\r\nhello\r\n".encode())
    _, got, _ = call("Email/query", {"filter": {"subject": f"cs {cs}"}})
    _, got, _ = call("Email/get", {"ids": got["ids"], "properties": ["bodyValues"], "fetchTextBodyValues": True})
    [value] = got["list"][0]["bodyValues"].values()
    assert value["isEncodingProblem"] is problem, (cs, value)

# Mailbox/get: an unknown property is refused; each id once.
name, got, _ = call("Mailbox/get", {"properties": ["name", "nope"]})
assert (name, got["type"]) == ("error", "invalidArguments"), got
_, got, _ = call("Mailbox/get", {"properties": ["role"]})
inbox = next(m["id"] for m in got["list"] if m["role"] == "inbox")
state = got["state"]
_, got, _ = call("Mailbox/get", {"ids": [inbox, inbox], "properties": ["name"]})
assert len(got["list"]) == 1, got
# The inbox is not renamed (its mail would move out); a sort order not the server's is told back.
_, got, _ = call("Mailbox/set", {"update": {inbox: {"name": "Foo"}}})
assert got["notUpdated"][inbox]["type"] == "forbidden", got
_, got, _ = call("Mailbox/get", {"ids": [inbox], "properties": ["name", "totalEmails"]})
assert got["list"][0]["name"] == "INBOX" and got["list"][0]["totalEmails"] == 6, got
_, got, _ = call("Mailbox/set", {"update": {inbox: {"sortOrder": 5}}})
assert got["updated"] == {inbox: {"sortOrder": 1}}, got
# header: properties on a created Email become its fields; ones that clash are refused, not dropped.
draft = {"mailboxIds": {inbox: True}, "from": [{"email": "alice@localhost"}], "subject": "with fields",
         "header:X-Custom:asText": "Grüße", "header:X-Raw": " raw value",
         "header:List-Unsubscribe:asURLs": ["mailto:leave@example.test"],
         "textBody": [{"partId": "t", "type": "text/plain"}], "bodyValues": {"t": {"value": "hi"}}}
_, got, _ = call("Email/set", {"create": {"d": draft}})
made = got["created"]["d"]["id"]
_, got, _ = call("Email/get", {"ids": [made], "properties": [
    "header:X-Custom:asText", "header:X-Raw", "header:List-Unsubscribe:asURLs"]})
[fields] = got["list"]
assert fields["header:X-Custom:asText"] == "Grüße", fields
assert fields["header:X-Raw"] == " raw value", fields
assert fields["header:List-Unsubscribe:asURLs"] == ["mailto:leave@example.test"], fields
for clash in [{"header:Subject:asText": "again"}, {"header:Content-Type": " text/html"}, {"header:X-A:asFoo": "x"}]:
    _, got, _ = call("Email/set", {"create": {"c": dict(draft, **clash)}})
    assert got["notCreated"]["c"]["type"] == "invalidProperties", (clash, got)
    assert got["notCreated"]["c"]["properties"] == list(clash), (clash, got)
# A body given as bodyStructure: alternative text and HTML, and an uploaded attachment.
up = requests.post(f"{base}/jmap/upload/a1/", data=b"%PDF-1.4 tiny", auth=("alice", "alice-pw"),
                   verify=False, headers={"Content-Type": "application/pdf"}).json()
structured = {"mailboxIds": {inbox: True}, "from": [{"email": "alice@localhost"}], "subject": "structured",
    "bodyStructure": {"type": "multipart/mixed", "subParts": [
        {"type": "multipart/alternative", "subParts": [
            {"partId": "t", "type": "text/plain"}, {"partId": "h", "type": "text/html"}]},
        {"blobId": up["blobId"], "type": "application/pdf", "name": "tiny.pdf", "disposition": "attachment"}]},
    "bodyValues": {"t": {"value": "plain words"}, "h": {"value": "<p>html words</p>"}}}
_, got, _ = call("Email/set", {"create": {"s": structured}})
made = got["created"]["s"]["id"]
_, got, _ = call("Email/get", {"ids": [made], "fetchAllBodyValues": True,
                               "properties": ["textBody", "htmlBody", "attachments", "bodyValues"]})
[e] = got["list"]
assert [e["bodyValues"][p["partId"]]["value"].strip() for p in e["textBody"]] == ["plain words"], e
assert [e["bodyValues"][p["partId"]]["value"].strip() for p in e["htmlBody"]] == ["<p>html words</p>"], e
assert [(a["name"], a["type"], a["size"]) for a in e["attachments"]] == [("tiny.pdf", "application/pdf", 13)], e
both = dict(structured, textBody=[{"partId": "t", "type": "text/plain"}])
_, got, _ = call("Email/set", {"create": {"b": both}})
assert got["notCreated"]["b"]["properties"] == ["bodyStructure"], got
# Blobs past what a message may hold (256 KiB here) are refused as tooLarge, both ways of giving them.
big = requests.post(f"{base}/jmap/upload/a1/", data=b"x" * (200 * 1024), auth=("alice", "alice-pw"),
                    verify=False, headers={"Content-Type": "application/octet-stream"}).json()["blobId"]
two = [{"blobId": big, "type": "application/octet-stream", "name": f"{n}.bin"} for n in range(2)]
_, got, _ = call("Email/set", {"create": {"a": dict(draft, attachments=two)}})
assert got["notCreated"]["a"]["type"] == "tooLarge", got
tree = {"type": "multipart/mixed", "subParts": [dict(p, disposition="attachment") for p in two]}
_, got, _ = call("Email/set", {"create": {"a": dict(structured, bodyStructure=tree)}})
assert got["notCreated"]["a"]["type"] == "tooLarge", got
# sentAt keeps its zone in the one Date field.
_, got, _ = call("Email/set", {"create": {"z": dict(draft, sentAt="2026-01-02T03:04:05+01:00")}})
_, got, _ = call("Email/get", {"ids": [got["created"]["z"]["id"]], "properties": ["sentAt", "header:Date:all"]})
[dated] = got["list"]
assert dated["sentAt"] == "2026-01-02T03:04:05+01:00", dated
assert len(dated["header:Date:all"]) == 1 and dated["header:Date:all"][0].endswith("+0100"), dated
# A textBody part that is not text/plain is refused, not rewritten.
_, got, _ = call("Email/set", {"create": {"h": dict(draft, textBody=[{"partId": "t", "type": "text/html"}])}})
assert got["notCreated"]["h"]["properties"] == ["textBody"], got
# Properties the server sets, or that do not exist, are refused on create.
_, got, _ = call("Email/set", {"create": {"x": dict(draft, id="e1"), "y": dict(draft, bogus=1)}})
assert got["notCreated"]["x"]["properties"] == ["id"] and got["notCreated"]["y"]["properties"] == ["bogus"], got
_, got, _ = call("Mailbox/set", {"create": {"z": {"name": "R9", "totalEmails": 5}}})
assert got["notCreated"]["z"]["properties"] == ["totalEmails"], got
# Thread counts: two messages of one conversation and one of another, the other read.
imap.create("T")
imap.append("T", None, None, b"From: a@example.test\r\nSubject: q\r\nMessage-ID: <q1@x>\r\n\r\nq\r\n")
imap.append("T", None, None, b"From: b@example.test\r\nSubject: Re: q\r\nMessage-ID: <q2@x>\r\nIn-Reply-To: <q1@x>\r\nReferences: <q1@x>\r\n\r\nr\r\n")
imap.append("T", "(\\Seen)", None, b"From: c@example.test\r\nSubject: other\r\nMessage-ID: <o1@x>\r\n\r\no\r\n")
_, got, _ = call("Mailbox/get", {"properties": ["name", "totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]})
[t] = [m for m in got["list"] if m["name"] == "T"]
assert (t["totalEmails"], t["unreadEmails"], t["totalThreads"], t["unreadThreads"]) == (3, 2, 2, 1), t
# More changes than maxChanges: the client is asked to read them afresh, never given more.
for n in range(3):
    call("Mailbox/set", {"create": {f"c{n}": {"name": f"Box {n}"}}})
name, got, _ = call("Mailbox/changes", {"sinceState": state, "maxChanges": 2})
assert (name, got["type"]) == ("error", "cannotCalculateChanges"), got
name, got, _ = call("Mailbox/changes", {"sinceState": state, "maxChanges": 10})
assert name == "Mailbox/changes" and len(got["created"]) == 4, got
print("ok")
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_jmap_rfcs_ask_of_emails_and_mailboxes() {
    run_script(SCRIPT, |c| c.limits.message_bytes_max = 256 * 1024).await;
}

/// The start of a [`run_script`] script for alice's account `a1`: `calls(methods)` sends one request
/// and returns its method responses, `call(method, args)` one method's.
pub const ALICE_CALLS: &str = r##"
import sys, requests, urllib3
urllib3.disable_warnings()
https, _ = sys.argv[1:3]
base = f"https://127.0.0.1:{https}"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission"]

def calls(methods):
    r = requests.post(f"{base}/jmap/api", auth=("alice", "alice-pw"), verify=False,
                      json={"using": USING, "methodCalls": methods})
    assert r.status_code == 200, r.text
    return r.json()["methodResponses"]

def call(method, args):
    return calls([[method, dict(accountId="a1", **args), "0"]])[0]
"##;

/// Runs a Python `script` (given the HTTPS and IMAP ports; it prints `ok` when every check held)
/// against a server with both listeners and a user alice (`alice-pw`) with no mail yet.
pub async fn run_script(script: &str, tune: impl FnOnce(&mut jmail::config::Config)) {
    let s = TestServer::start_with(|c| {
        c.https_port = Some(0);
        c.imap_port = Some(0);
        tune(c);
    })
    .await;
    crate::imap::bare_user(&s, "alice", "alice-pw").await;
    let port = |service| s.addr_of(service).port().to_string();
    let out = python(script, &[port(Service::Https), port(Service::Imap)]).await;
    assert_eq!(out.trim(), "ok");
    s.stop().await;
}
