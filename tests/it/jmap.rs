//! JMAP (RFC 8620, RFC 8621) over HTTPS, driven by an independent client (Python's jmapc) and by raw
//! HTTP for every method: the session, mailboxes, query and get with body values, changes, set,
//! import, parse, threads, snippets, identities, submission to another local user, uploads and
//! downloads, push by EventSource when SMTP delivers, bearer tokens, and the errors a client can cause.
//! What JMAP does is checked against IMAP on the same store; the suite runs on SQLite and PostgreSQL.

use std::sync::Arc;

use jmail::server::Service;
use jmail::store::postgres::PgStore;
use jmail::store::{BodyRef, Store};
use jmail::throttle::LoginThrottle;

const PLAIN: &[u8] = b"From: Carol <carol@example.net>\r\nTo: alice@localhost\r\nSubject: Lunch plans\r\n\
Message-ID: <lunch@example.net>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nShall we meet at noon by the river?\r\n";
const WITH_ATTACHMENT: &[u8] = b"From: dave@example.net\r\nTo: alice@localhost\r\nSubject: Report\r\n\
Message-ID: <report@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe report is attached.\r\n\
--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=report.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n";
const REPLY: &[u8] = b"From: Carol <carol@example.net>\r\nTo: alice@localhost\r\nSubject: Re: Lunch plans\r\n\
Message-ID: <lunch2@example.net>\r\nIn-Reply-To: <lunch@example.net>\r\nReferences: <lunch@example.net>\r\n\
Date: Mon, 1 Jan 2024 11:00:00 +0000\r\n\r\nNoon works.\r\n";

const SCRIPT: &str = r##"
import sys, json, time, threading, base64, imaplib, smtplib
import requests, urllib3
urllib3.disable_warnings()
# The server's certificate is its own self-signed one: the client trusts it for this test.
_request = requests.Session.request
def _unverified(self, *a, **k):
    k["verify"] = False
    return _request(self, *a, **k)
requests.Session.request = _unverified

from jmapc import Client, Ref, EmailQueryFilterCondition, Comparator
from jmapc.methods import (MailboxGet, MailboxGetResponse, EmailQuery, EmailGet, EmailGetResponse,
    EmailSet, IdentityGet, ThreadGet, SearchSnippetGet, EmailChanges)

https, imap_port, smtp_port = sys.argv[1:4]
host = f"127.0.0.1:{https}"
base = f"https://{host}"
alice = Client.create_with_password(host, "alice", "alice-pw")
bob = Client.create_with_password(host, "bob", "bob-pw")
account = alice.account_id
session = alice.jmap_session
assert session.api_url == f"{base}/jmap/api", session.api_url
assert session.username == "alice"

# Mailboxes: the roles every account starts with, and INBOX's counts.
boxes = alice.request(MailboxGet(ids=None), raise_errors=True, single_response=True).data
by_role = {m.role: m for m in boxes}
assert {"inbox", "sent", "drafts", "trash", "junk", "archive"} <= set(by_role), by_role.keys()
inbox = by_role["inbox"]
# The welcome message and the three delivered.
assert (inbox.total_emails, inbox.unread_emails) == (4, 4), (inbox.total_emails, inbox.unread_emails)

# Query with a back-reference into get, newest first.
calls = [
    EmailQuery(filter=EmailQueryFilterCondition(in_mailbox=inbox.id),
               sort=[Comparator(property="receivedAt", is_ascending=False)], calculate_total=True),
    EmailGet(ids=Ref("/ids"), properties=["id", "subject", "from", "preview", "hasAttachment", "threadId",
             "keywords", "mailboxIds", "bodyValues", "textBody", "attachments", "messageId", "receivedAt"],
             fetch_text_body_values=True),
]
results = alice.request(calls, raise_errors=True)
query, got = results[0].response, results[1].response
assert query.total == 4 and len(query.ids) == 4, query
emails = {e.subject: e for e in got.data}
assert {"Lunch plans", "Report", "Re: Lunch plans"} < set(emails), emails.keys()
welcome = [e for e in got.data if e.subject not in ("Lunch plans", "Report", "Re: Lunch plans")][0]
lunch = emails["Lunch plans"]
assert lunch.mail_from[0].email == "carol@example.net" and lunch.mail_from[0].name == "Carol"
assert lunch.preview == "Shall we meet at noon by the river?", lunch.preview
assert lunch.message_id == ["lunch@example.net"], lunch.message_id
assert lunch.mailbox_ids == {inbox.id: True} and not lunch.keywords
part = lunch.text_body[0].part_id
assert lunch.body_values[part].value == "Shall we meet at noon by the river?\r\n", lunch.body_values
report = emails["Report"]
assert report.has_attachment and report.attachments[0].name == "report.pdf", report.attachments
assert report.attachments[0].type == "application/pdf"
# Download the attachment: decoded from base64, served so no browser would run it.
url = session.download_url.format(accountId=account, blobId=report.attachments[0].blob_id, name="report.pdf", type="application/pdf")
r = alice.requests_session.get(url)
assert r.status_code == 200 and r.content == b"%PDF-1.4\n", (r.status_code, r.content)
assert r.headers["Content-Security-Policy"].startswith("sandbox") and r.headers["X-Content-Type-Options"] == "nosniff"
# A reply is in its original's thread.
assert emails["Re: Lunch plans"].thread_id == lunch.thread_id != report.thread_id
thread = alice.request(ThreadGet(ids=[lunch.thread_id]), raise_errors=True, single_response=True).data[0]
assert thread.email_ids == [lunch.id, emails["Re: Lunch plans"].id], thread

def api(client, calls, using=("urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission")):
    r = client.requests_session.post(f"{base}/jmap/api", json={"using": list(using), "methodCalls": calls})
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["methodResponses"]

# Header fields alone (the server reads only the header then).
[[_, g, _]] = api(alice, [["Email/get", {"accountId": account, "ids": [lunch.id], "properties": ["subject", "from", "messageId", "sentAt", "header:Subject:asText"]}, "g"]])
assert g["list"][0] == {"id": lunch.id, "subject": "Lunch plans", "from": [{"name": "Carol", "email": "carol@example.net"}],
    "messageId": ["lunch@example.net"], "sentAt": "2024-01-01T10:00:00Z", "header:Subject:asText": "Lunch plans"}, g

# Filters: text, from, keyword, size, attachment, operators.
def ids_for(filter):
    [[name, args, _]] = api(alice, [["Email/query", {"accountId": account, "filter": filter}, "q"]])
    assert name == "Email/query", args
    return set(args["ids"])
assert ids_for({"text": "river"}) == {lunch.id}
assert ids_for({"from": "dave"}) == {report.id}
assert ids_for({"hasAttachment": True}) == {report.id}
assert ids_for({"operator": "NOT", "conditions": [{"from": "carol"}]}) == {report.id, welcome.id}
assert ids_for({"subject": "lunch", "inMailbox": by_role["trash"].id}) == set()
[[name, args, _]] = api(alice, [["Email/query", {"accountId": account, "filter": {"allInThreadHaveKeyword": "$seen"}}, "q"]])
assert (name, args["type"]) == ("error", "unsupportedFilter"), args
[[name, args, _]] = api(alice, [["SearchSnippet/get", {"accountId": account, "filter": {"text": "noon"}, "emailIds": [lunch.id]}, "s"]])
assert "<mark>noon</mark>" in args["list"][0]["preview"], args

# Sorting by what delivery stored (sentAt: the Date header; none sorts first), and one Email per thread.
def sorted_ids(**args):
    [[name, a, _]] = api(alice, [["Email/query", dict({"accountId": account, "filter": {"inMailbox": inbox.id}}, **args), "q"]])
    assert name == "Email/query", a
    return a["ids"]
reply = emails["Re: Lunch plans"]
by_sent = [report.id, lunch.id, reply.id, welcome.id]
assert sorted_ids(sort=[{"property": "sentAt", "isAscending": True}]) == by_sent
assert sorted_ids(sort=[{"property": "sentAt", "isAscending": False}]) == by_sent[::-1]
collapsed = sorted_ids(sort=[{"property": "sentAt", "isAscending": True}], collapseThreads=True)
assert collapsed == [report.id, lunch.id, welcome.id], collapsed

# Keywords: mark read through JMAP, seen by IMAP; the change shows in Email/changes.
state0 = got.state
[[_, set_resp, _]] = api(alice, [["Email/set", {"accountId": account, "update": {lunch.id: {"keywords/$seen": True, "keywords/$flagged": True}}}, "s"]])
assert set_resp["updated"] == {lunch.id: None}, set_resp
m = imaplib.IMAP4("127.0.0.1", int(imap_port)); m.login("alice", "alice-pw"); m.select("INBOX")
typ, data = m.search(None, "SEEN FLAGGED")
assert len(data[0].split()) == 1, data
[[_, changes, _]] = api(alice, [["Email/changes", {"accountId": account, "sinceState": state0}, "c"]])
assert changes["updated"] == [lunch.id] and changes["created"] == [] and changes["destroyed"] == [], changes
[[_, tc, _]] = api(alice, [["Thread/changes", {"accountId": account, "sinceState": state0}, "t"]])
assert (tc["created"], tc["updated"], tc["destroyed"]) == ([], [lunch.thread_id], []), tc
# A state no server state ever was (a UIDNEXT or modseq past the mailbox's) cannot be worked from.
assert state0.startswith("v2:"), state0
marks = state0[3:].split(",")
# Nor can a state of the releases whose Email ids named a mailbox and UID (those ids name nothing now).
[[name, args, _]] = api(alice, [["Email/changes", {"accountId": account, "sinceState": "s" + state0[3:]}, "c"]])
assert (name, args.get("type")) == ("error", "cannotCalculateChanges"), (name, args)
for forged in [f"{m.split('.')[0]}.{m.split('.')[1]}.4294967295" for m in marks] + [f"{m.split('.')[0]}.99999999.1" for m in marks]:
    [[name, args, _]] = api(alice, [["Email/changes", {"accountId": account, "sinceState": "v2:" + forged}, "c"]])
    assert (name, args.get("type")) == ("error", "cannotCalculateChanges"), (forged, name, args)
boxes = alice.request(MailboxGet(ids=[inbox.id]), raise_errors=True, single_response=True).data
assert boxes[0].unread_emails == 3, boxes

# A draft with an uploaded attachment, then sent to bob, moved to Sent, Bcc taken off.
upload = alice.requests_session.post(session.upload_url.format(accountId=account), data=b"hello attachment", headers={"Content-Type": "text/plain"})
assert upload.status_code == 201, upload.text
blob = upload.json()["blobId"]
draft = {"mailboxIds": {by_role["drafts"].id: True}, "keywords": {"$draft": True},
         "from": [{"name": "Alice", "email": "alice@localhost"}], "to": [{"email": "bob@localhost"}],
         "bcc": [{"email": "alice@localhost"}], "subject": "Minutes",
         "textBody": [{"partId": "t", "type": "text/plain"}], "bodyValues": {"t": {"value": "See the notes."}},
         "attachments": [{"blobId": blob, "type": "text/plain", "name": "notes.txt"}]}
responses = api(alice, [
    ["Email/set", {"accountId": account, "create": {"d1": draft}}, "0"],
    ["EmailSubmission/set", {"accountId": account, "create": {"s1": {"identityId": "i0", "emailId": "#d1"}},
        "onSuccessUpdateEmail": {"#s1": {f"mailboxIds/{by_role['drafts'].id}": None, f"mailboxIds/{by_role['sent'].id}": True, "keywords/$draft": None}}}, "1"],
])
assert responses[0][0] == "Email/set" and "d1" in responses[0][1]["created"], responses[0]
assert responses[1][0] == "EmailSubmission/set" and "s1" in responses[1][1]["created"], responses[1]
assert responses[2][0] == "Email/set", responses
draft_id = responses[0][1]["created"]["d1"]["id"]
# Moved to Sent, it keeps its id (RFC 8621: an Email's id never changes).
assert responses[2][1]["updated"] == {draft_id: None}, responses[2]
[[_, sent, _]] = api(alice, [["Email/get", {"accountId": account, "ids": [draft_id], "properties": ["mailboxIds", "keywords", "attachments"]}, "g"]])
assert sent["list"][0]["mailboxIds"] == {by_role["sent"].id: True} and sent["list"][0]["keywords"] == {}, sent
assert sent["list"][0]["attachments"][0]["name"] == "notes.txt"
bob_inbox = [m for m in bob.request(MailboxGet(ids=None), raise_errors=True, single_response=True).data if m.role == "inbox"][0]
[[_, q, _], [_, g, _]] = api(bob, [
    ["Email/query", {"accountId": bob.account_id, "filter": {"inMailbox": bob_inbox.id}}, "q"],
    ["Email/get", {"accountId": bob.account_id, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                   "properties": ["subject", "bcc", "attachments", "from"]}, "g"]])
minutes = [e for e in g["list"] if e["subject"] == "Minutes"]
assert len(minutes) == 1 and minutes[0]["bcc"] is None, g
assert minutes[0]["from"] == [{"name": "Alice", "email": "alice@localhost"}]
# Sending as someone else is refused.
forged = dict(draft, **{"from": [{"email": "bob@localhost"}], "attachments": []})
responses = api(alice, [
    ["Email/set", {"accountId": account, "create": {"f": forged}}, "0"],
    ["EmailSubmission/set", {"accountId": account, "create": {"s": {"identityId": "i0", "emailId": "#f"}}}, "1"],
])
assert responses[1][1]["notCreated"]["s"]["type"] == "forbiddenFrom", responses[1]
# Header text with a line break would write fields of its own (a From after the checked one): refused.
injected = dict(draft, **{"subject": "Hi\r\nFrom: ceo@bank.example", "attachments": []})
[[_, made, _]] = api(alice, [["Email/set", {"accountId": account, "create": {"i": injected}}, "0"]])
assert made["notCreated"]["i"]["type"] == "invalidProperties", made
assert made["notCreated"]["i"]["properties"] == ["subject"], made
# To another domain: queued for the delivery worker in the same call (checked in the store below),
# with DSN parameters in the envelope (RFC 8621 §7), which the session offers.
offered = alice.requests_session.get(f"{base}/.well-known/jmap").json()["accounts"][account]["accountCapabilities"]["urn:ietf:params:jmap:submission"]
assert offered["submissionExtensions"] == {"DSN": []}, offered
outward = dict(draft, **{"to": [{"email": "ext@example.net"}], "bcc": [{"email": "hidden@example.net"}], "attachments": [], "subject": "Outward"})
envelope = {"mailFrom": {"email": "alice@localhost", "parameters": {"ENVID": "J 1", "RET": "hdrs"}},
            "rcptTo": [{"email": "ext@example.net", "parameters": {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;Ext@example.net"}},
                       {"email": "hidden@example.net", "parameters": None}]}
responses = api(alice, [
    ["Email/set", {"accountId": account, "create": {"o": outward}}, "0"],
    ["EmailSubmission/set", {"accountId": account, "create": {"s": {"identityId": "i0", "emailId": "#o", "envelope": envelope}}}, "1"],
])
assert "s" in responses[1][1]["created"], responses[1]
# Parameters it does not take, or values that would forge a report's fields, are refused.
for bad in [{"mailFrom": {"email": "alice@localhost", "parameters": {"HOLDFOR": "10"}}, "rcptTo": [{"email": "ext@example.net"}]},
            {"mailFrom": {"email": "alice@localhost", "parameters": {"ENVID": "a\r\nX-Evil: 1"}}, "rcptTo": [{"email": "ext@example.net"}]},
            {"mailFrom": {"email": "alice@localhost"}, "rcptTo": [{"email": "ext@example.net", "parameters": {"NOTIFY": "NEVER,SUCCESS"}}]}]:
    [[_, sub, _]] = api(alice, [["EmailSubmission/set", {"accountId": account, "create": {"b": {"identityId": "i0", "emailId": responses[0][1]["created"]["o"]["id"], "envelope": bad}}}, "1"]])
    assert sub["notCreated"]["b"]["type"] == "invalidProperties" and sub["notCreated"]["b"]["properties"] == ["envelope"], sub

# Another account's ids name nothing for bob.
[[_, g, _]] = api(bob, [["Email/get", {"accountId": bob.account_id, "ids": [lunch.id], "properties": ["subject"]}, "g"]])
assert g["list"] == [] and g["notFound"] == [lunch.id], g
r = bob.requests_session.get(session.download_url.format(accountId=bob.account_id, blobId=report.attachments[0].blob_id, name="x", type="x/y"))
assert r.status_code == 404, r.status_code
[[name, err, _]] = api(bob, [["Email/get", {"accountId": account, "ids": [lunch.id]}, "g"]])
assert (name, err["type"]) == ("error", "accountNotFound"), err

# Import and parse an uploaded message.
raw = b"From: eve@example.net\r\nTo: alice@localhost\r\nSubject: Imported\r\nMessage-ID: <imp@x>\r\n\r\nimported body\r\n"
blob = alice.requests_session.post(session.upload_url.format(accountId=account), data=raw, headers={"Content-Type": "message/rfc822"}).json()["blobId"]
[[_, parsed, _], [_, imported, _]] = api(alice, [
    ["Email/parse", {"accountId": account, "blobIds": [blob], "properties": ["subject", "from", "size"]}, "p"],
    ["Email/import", {"accountId": account, "emails": {"i": {"blobId": blob, "mailboxIds": {by_role["archive"].id: True}, "keywords": {"$seen": True}, "receivedAt": "2023-05-06T07:08:09Z"}}}, "i"],
])
assert parsed["parsed"][blob]["subject"] == "Imported" and parsed["parsed"][blob]["size"] == len(raw), parsed
imported_id = imported["created"]["i"]["id"]
[[_, g, _]] = api(alice, [["Email/get", {"accountId": account, "ids": [imported_id], "properties": ["receivedAt", "keywords", "blobId"]}, "g"]])
assert g["list"][0]["receivedAt"] == "2023-05-06T07:08:09Z" and g["list"][0]["keywords"] == {"$seen": True}, g
r = alice.requests_session.get(session.download_url.format(accountId=account, blobId=g["list"][0]["blobId"], name="m.eml", type="message/rfc822"))
assert r.content == raw, r.content
# Blob/copy within the account gives back the ids that name the bytes; another's blobs are not found,
# nor is another account reached.
email_blob, part_blob = g["list"][0]["blobId"], report.attachments[0].blob_id
[[_, c, _]] = api(alice, [["Blob/copy", {"fromAccountId": account, "accountId": account, "blobIds": [blob, email_blob, part_blob, "Bnope"]}, "c"]],
                  using=("urn:ietf:params:jmap:core",))
assert c["copied"] == {blob: blob, email_blob: email_blob, part_blob: part_blob}, c
assert c["notCopied"] == {"Bnope": {"type": "notFound"}} and c["fromAccountId"] == account, c
[[_, c, _]] = api(bob, [["Blob/copy", {"fromAccountId": bob.account_id, "accountId": bob.account_id, "blobIds": [email_blob, part_blob]}, "c"]])
assert c["copied"] is None and set(c["notCopied"]) == {email_blob, part_blob}, c
[[name, err, _]] = api(bob, [["Blob/copy", {"fromAccountId": account, "accountId": bob.account_id, "blobIds": [email_blob]}, "c"]])
assert (name, err["type"]) == ("error", "fromAccountNotFound"), err
# A move told a page at a time (maxChanges 1): one half of it on each page; the Email the client has
# is updated on both, never destroyed or created.
def state_now(client, acct):
    return api(client, [["Email/get", {"accountId": acct, "ids": []}, "g"]])[0][1]["state"]
before_move = state_now(alice, account)
[[_, s, _]] = api(alice, [["Email/set", {"accountId": account, "update": {imported_id: {"mailboxIds": {inbox.id: True}}}}, "s"]])
assert s["updated"] == {imported_id: None}, s
[[_, p1, _]] = api(alice, [["Email/changes", {"accountId": account, "sinceState": before_move, "maxChanges": 1}, "c"]])
assert (p1["created"], p1["updated"], p1["destroyed"], p1["hasMoreChanges"]) == ([], [imported_id], [], True), p1
[[_, p2, _]] = api(alice, [["Email/changes", {"accountId": account, "sinceState": p1["newState"], "maxChanges": 1}, "c"]])
assert (p2["created"], p2["updated"], p2["destroyed"], p2["hasMoreChanges"]) == ([], [imported_id], [], False), p2
assert p2["newState"] == state_now(alice, account), p2
[[_, s, _]] = api(alice, [["Email/set", {"accountId": account, "update": {imported_id: {"mailboxIds": {by_role["archive"].id: True}}}}, "s"]])
assert s["updated"] == {imported_id: None}, s

# Mailboxes: make, rename, refuse to destroy one with mail, destroy; changes say so.
mstate = boxes_state = api(alice, [["Mailbox/get", {"accountId": account, "ids": []}, "m"]])[0][1]["state"]
[[_, made, _]] = api(alice, [["Mailbox/set", {"accountId": account, "create": {"p": {"name": "Projects"}, "c": {"name": "Jmail", "parentId": "#p"}}}, "m"]])
projects, child = made["created"]["p"]["id"], made["created"]["c"]["id"]
[[_, mb, _]] = api(alice, [["Mailbox/get", {"accountId": account, "ids": [child], "properties": ["name", "parentId"]}, "m"]])
assert mb["list"][0] == {"id": child, "name": "Jmail", "parentId": projects}, mb
assert "Projects/Jmail" in [x.decode() for x in m.list()[1] if b"Projects/Jmail" in x][0]
[[_, renamed, _]] = api(alice, [["Mailbox/set", {"accountId": account, "update": {projects: {"name": "Work"}}, "destroy": [projects]}, "m"]])
assert renamed["updated"] == {projects: None} and renamed["notDestroyed"][projects]["type"] == "mailboxHasChild", renamed
[[_, mc, _]] = api(alice, [["Mailbox/changes", {"accountId": account, "sinceState": mstate}, "m"]])
assert set(mc["created"]) == {projects, child}, mc
[[_, q, _]] = api(alice, [["Mailbox/query", {"accountId": account, "filter": {"parentId": projects}}, "m"]])
assert q["ids"] == [child], q

# Destroy: gone for IMAP too.
[[_, d, _]] = api(alice, [["Email/set", {"accountId": account, "destroy": [report.id]}, "d"]])
assert d["destroyed"] == [report.id], d
m.noop(); typ, data = m.search(None, "ALL")
assert len(data[0].split()) == 4, data  # welcome, lunch, its reply, and the Minutes alice sent herself as Bcc

# An Email's id and blobId never change: IMAP's COPY puts the same Email in a second mailbox, IMAP's MOVE
# and JMAP's mailboxIds move it, and Email/changes calls all of that an update of the one Email.
archive, trash = by_role["archive"].id, by_role["trash"].id
def lunch_now(props=("blobId", "mailboxIds", "keywords")):
    [[_, g, _]] = api(alice, [["Email/get", {"accountId": account, "ids": [lunch.id], "properties": list(props)}, "g"]])
    return g
def changes_since(state):
    [[_, c, _]] = api(alice, [["Email/changes", {"accountId": account, "sinceState": state}, "c"]])
    return (c["created"], c["updated"], c["destroyed"]), c["newState"]
def lunch_in_inbox():
    m.select("INBOX")
    typ, data = m.search(None, 'HEADER Message-ID "<lunch@example.net>"')
    return data[0].split()
g = lunch_now()
lunch_blob, state = g["list"][0]["blobId"], g["state"]
typ, _ = m.copy(lunch_in_inbox()[0], "Archive")
assert typ == "OK"
g = lunch_now()
assert g["list"][0]["mailboxIds"] == {inbox.id: True, archive: True} and g["list"][0]["blobId"] == lunch_blob, g
assert ids_for({"text": "river"}) == {lunch.id}
[[_, q, _]] = api(alice, [["Email/query", {"accountId": account, "filter": {"text": "river"}, "calculateTotal": True}, "q"]])
assert q["ids"] == [lunch.id] and q["total"] == 1, q
changed, state = changes_since(state)
assert changed == ([], [lunch.id], []), changed
typ, _ = m._simple_command("MOVE", lunch_in_inbox()[0], "Archive")
assert typ == "OK" and lunch_in_inbox() == []
g = lunch_now()
assert g["list"][0]["mailboxIds"] == {archive: True} and g["list"][0]["keywords"] == {"$seen": True, "$flagged": True}, g
changed, state = changes_since(state)
assert changed == ([], [lunch.id], []), changed
[[_, s, _]] = api(alice, [["Email/set", {"accountId": account, "update": {lunch.id: {"mailboxIds": {inbox.id: True}}}}, "s"]])
assert s["updated"] == {lunch.id: None}, s
assert len(lunch_in_inbox()) == 2  # both Archive copies moved back
[[_, s, _]] = api(alice, [["Email/set", {"accountId": account, "update": {lunch.id: {f"mailboxIds/{trash}": True, f"mailboxIds/{inbox.id}": None, "keywords/$seen": None}}}, "s"]])
assert s["updated"] == {lunch.id: None}, s
g = lunch_now()
assert g["list"][0]["mailboxIds"] == {trash: True} and g["list"][0]["keywords"] == {"$flagged": True}, g
assert lunch_in_inbox() == [] and g["list"][0]["blobId"] == lunch_blob
[[_, s, _]] = api(alice, [["Email/set", {"accountId": account, "update": {lunch.id: {"mailboxIds": {}}}}, "s"]])
assert s["notUpdated"][lunch.id]["type"] == "invalidProperties", s
[[_, t, _]] = api(alice, [["Thread/get", {"accountId": account, "ids": [lunch.thread_id]}, "t"]])
assert t["list"][0]["emailIds"][0] == lunch.id, t
changed, state = changes_since(state)
assert changed == ([], [lunch.id], []), changed
[[_, d, _]] = api(alice, [["Email/set", {"accountId": account, "destroy": [lunch.id]}, "d"]])
assert d["destroyed"] == [lunch.id], d
assert lunch_now()["notFound"] == [lunch.id]
changed, state = changes_since(state)
assert changed == ([], [], [lunch.id]), changed
[[_, made, _]] = api(alice, [["Email/import", {"accountId": account, "emails": {"n": {"blobId": lunch_blob, "mailboxIds": {inbox.id: True}}}}, "i"]])
assert made["notCreated"]["n"]["type"] == "blobNotFound", made  # its bytes went with its last copy
# Made in two mailboxes and moved since a state: created, once, as it is now.
[[_, made, _], [_, moved, _]] = api(alice, [
    ["Email/set", {"accountId": account, "create": {"n": {"mailboxIds": {inbox.id: True, trash: True}, "subject": "Twice"}}}, "c"],
    ["Email/set", {"accountId": account, "update": {"#n": {"mailboxIds": {archive: True, trash: True}}}}, "u"]])
twice = made["created"]["n"]["id"]
assert moved["updated"] == {twice: None}, moved
changed, state = changes_since(state)
assert changed == ([twice], [], []), changed
[[_, g, _]] = api(alice, [["Email/get", {"accountId": account, "ids": [twice], "properties": ["mailboxIds", "subject"]}, "g"]])
assert g["list"][0] == {"id": twice, "mailboxIds": {archive: True, trash: True}, "subject": "Twice"}, g
m.logout()

# Carol's quota has room for two more messages: a create into three mailboxes, and an update that moves
# one copy and makes four more, are refused whole, with nothing of them left behind.
carol = Client.create_with_password(host, "carol", "carol-pw")
cacct = carol.account_id
[[_, cb, _]] = api(carol, [["Mailbox/get", {"accountId": cacct, "ids": None}, "m"]])
crole = {b["role"]: b["id"] for b in cb["list"]}
[[_, q, _]] = api(carol, [["Email/query", {"accountId": cacct}, "q"]])
[cwelcome] = q["ids"]
three = {crole[r]: True for r in ("drafts", "archive", "trash")}
[[_, made, _]] = api(carol, [["Email/set", {"accountId": cacct, "create": {"n": {"mailboxIds": three, "subject": "Thrice"}}}, "c"]])
assert made["notCreated"]["n"]["type"] == "overQuota", made
five = {crole[r]: True for r in ("trash", "archive", "junk", "drafts", "sent")}
[[_, s, _]] = api(carol, [["Email/set", {"accountId": cacct, "update": {cwelcome: {"mailboxIds": five, "keywords/$flagged": True}}}, "u"]])
assert s["notUpdated"][cwelcome]["type"] == "overQuota", s
[[_, q, _], [_, g, _], [_, cb, _]] = api(carol, [
    ["Email/query", {"accountId": cacct}, "q"],
    ["Email/get", {"accountId": cacct, "ids": [cwelcome], "properties": ["mailboxIds", "keywords"]}, "g"],
    ["Mailbox/get", {"accountId": cacct, "ids": None, "properties": ["totalEmails"]}, "m"]])
assert q["ids"] == [cwelcome], q
assert g["list"][0]["mailboxIds"] == {crole["inbox"]: True} and g["list"][0]["keywords"] == {}, g
assert sum(b["totalEmails"] for b in cb["list"]) == 1, cb
# Within the quota, the same update is made whole.
[[_, s, _]] = api(carol, [["Email/set", {"accountId": cacct, "update": {cwelcome: {"mailboxIds": {crole["trash"]: True, crole["archive"]: True}, "keywords/$flagged": True}}}, "u"]])
assert s["updated"] == {cwelcome: None}, s
[[_, g, _]] = api(carol, [["Email/get", {"accountId": cacct, "ids": [cwelcome], "properties": ["mailboxIds", "keywords"]}, "g"]])
assert g["list"][0] == {"id": cwelcome, "mailboxIds": {crole["trash"]: True, crole["archive"]: True}, "keywords": {"$flagged": True}}, g
# A change refused in one mailbox is refused whole (RFC 8620 §5.3): once Trash has seen as many keywords
# as a mailbox may (keywords_per_mailbox_max, 256 by default), moving the Archive copy to Junk while adding
# a new keyword leaves the Email as it was, in Trash and Archive.
many = {f"k{i}": True for i in range(256)}
[[_, s, _], [_, s2, _]] = api(carol, [
    ["Email/set", {"accountId": cacct, "update": {cwelcome: {"keywords": many}}}, "u"],
    ["Email/set", {"accountId": cacct, "update": {cwelcome: {"keywords": {"$flagged": True}}}}, "u2"]])
assert s["updated"] == {cwelcome: None} and s2["updated"] == {cwelcome: None}, (s, s2)
patch = {f"mailboxIds/{crole['junk']}": True, f"mailboxIds/{crole['archive']}": None, "keywords/one-more": True}
[[_, s, _]] = api(carol, [["Email/set", {"accountId": cacct, "update": {cwelcome: patch}}, "u"]])
assert s["notUpdated"][cwelcome]["type"] == "tooManyKeywords", s
[[_, g, _]] = api(carol, [["Email/get", {"accountId": cacct, "ids": [cwelcome], "properties": ["mailboxIds", "keywords"]}, "g"]])
assert g["list"][0] == {"id": cwelcome, "mailboxIds": {crole["trash"]: True, crole["archive"]: True}, "keywords": {"$flagged": True}}, g
both = {"mailboxIds": {crole["trash"]: True}, f"mailboxIds/{crole['junk']}": True}
[[_, s, _]] = api(carol, [["Email/set", {"accountId": cacct, "update": {cwelcome: both}}, "u"]])
assert s["notUpdated"][cwelcome]["type"] == "invalidPatch", s
# Mailbox conditions hold for the Email, in Trash and Archive both, not for one copy at a time.
def cquery(filter):
    [[name, q, _]] = api(carol, [["Email/query", {"accountId": cacct, "filter": filter}, "q"]])
    assert name == "Email/query", q
    return q["ids"]
NOT, AND = (lambda *c: {"operator": "NOT", "conditions": list(c)}), (lambda *c: {"operator": "AND", "conditions": list(c)})
assert cquery(NOT({"inMailbox": crole["trash"]})) == []
assert cquery(NOT({"inMailbox": crole["inbox"]})) == [cwelcome]
assert cquery(AND({"inMailbox": crole["trash"]}, {"inMailbox": crole["archive"]})) == [cwelcome]
assert cquery(AND({"inMailbox": crole["trash"]}, NOT({"inMailbox": crole["archive"]}))) == []
assert cquery({"inMailboxOtherThan": [crole["trash"]]}) == [cwelcome]
assert cquery({"inMailbox": crole["trash"], "inMailboxOtherThan": [crole["trash"]]}) == [cwelcome]
assert cquery(AND({"inMailbox": crole["trash"]}, {"inMailbox": crole["junk"]})) == []

# The admin API is for the config's admins only (none here).
r = bob.requests_session.get(f"{base}/admin/api/status")
assert r.status_code == 403, r.status_code
r = requests.get(f"{base}/admin/api/users")
assert r.status_code == 401, r.status_code
# ...and never for another site's page, before anything else is checked.
r = requests.post(f"{base}/admin/api/users", auth=("alice", "alice-pw"), verify=False, data='{"name": "mallory", "password": "x"}',
                  headers={"Origin": "https://evil.example", "Content-Type": "text/plain"})
assert r.status_code == 403 and "other sites" in r.text, (r.status_code, r.text)

# Identities and errors a client can cause.
[[_, ids, _]] = api(alice, [["Identity/get", {"accountId": account}, "i"]])
assert ids["list"][0]["email"] == "alice@localhost", ids
[[name, err, _]] = api(alice, [["Email/copy", {"accountId": account, "fromAccountId": "a999", "create": {}}, "x"]])
assert (name, err["type"]) == ("error", "fromAccountNotFound"), err
# A call's cost is bounded: at most 64 properties, 8 comparators.
many = [f"header:X-{i}" for i in range(65)]
[[name, err, _]] = api(alice, [["Email/get", {"accountId": account, "ids": [lunch.id], "properties": many}, "x"]])
assert (name, err["type"]) == ("error", "invalidArguments"), err
[[name, err, _]] = api(alice, [["Email/query", {"accountId": account, "sort": [{"property": "size"}] * 9}, "x"]])
assert (name, err["type"]) == ("error", "invalidArguments"), err
# Snippets parse at most 64 MiB of messages a call: one 300 KB message named 300 times is refused.
big = b"From: eve@example.net\r\nSubject: Big\r\n\r\n" + b"river noon words " * 18000 + b"\r\n"
bblob = bob.requests_session.post(session.upload_url.format(accountId=bob.account_id), data=big, headers={"Content-Type": "message/rfc822"}).json()["blobId"]
[[_, bobboxes, _]] = api(bob, [["Mailbox/get", {"accountId": bob.account_id, "ids": None, "properties": ["role"]}, "m"]])
barchive = [b["id"] for b in bobboxes["list"] if b["role"] == "archive"][0]
[[_, bimp, _]] = api(bob, [["Email/import", {"accountId": bob.account_id, "emails": {"b": {"blobId": bblob, "mailboxIds": {barchive: True}}}}, "i"]])
bigid = bimp["created"]["b"]["id"]
[[name, s, _]] = api(bob, [["SearchSnippet/get", {"accountId": bob.account_id, "filter": {"text": "river"}, "emailIds": [bigid] * 3}, "s"]])
assert name == "SearchSnippet/get" and len(s["list"]) == 3 and "<mark>river</mark>" in s["list"][0]["preview"], s
[[name, err, _]] = api(bob, [["SearchSnippet/get", {"accountId": bob.account_id, "filter": {"text": "river"}, "emailIds": [bigid] * 300}, "s"]])
assert (name, err["type"]) == ("error", "requestTooLarge"), (name, err)
[[name, err, _]] = api(alice, [["Email/frobnicate", {"accountId": account}, "x"]])
assert (name, err["type"]) == ("error", "unknownMethod")
[[name, err, _]] = api(alice, [["Email/get", {"accountId": account, "ids": ["e1u1"]}, "x"]], using=("urn:ietf:params:jmap:core",))
assert (name, err["type"]) == ("error", "unknownMethod"), err
[[name, err, _]] = api(alice, [["Email/get", {"accountId": account, "#ids": {"resultOf": "nope", "name": "Email/query", "path": "/ids"}}, "x"]])
assert err["type"] == "invalidResultReference", err
r = alice.requests_session.post(f"{base}/jmap/api", data=b"{not json")
assert r.status_code == 400 and r.json()["type"] == "urn:ietf:params:jmap:error:notJSON", r.text
r = alice.requests_session.post(f"{base}/jmap/api", json={"using": ["urn:example:nope"], "methodCalls": []})
assert r.json()["type"] == "urn:ietf:params:jmap:error:unknownCapability", r.text
r = requests.get(f"{base}/.well-known/jmap")
assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic"), r.status_code
r = requests.get(f"{base}/.well-known/jmap", auth=("alice", "wrong"))
assert r.status_code == 401
r = requests.get(f"{base}/.well-known/jmap", auth=("nobody", "wrong"))
assert r.status_code == 401

# Push: an EventSource sees SMTP's delivery as a new Email state.
events = []
def listen():
    with alice.requests_session.get(f"{base}/jmap/eventsource?types=*&closeafter=state&ping=0", stream=True, timeout=30) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        for line in r.iter_lines():
            if line.startswith(b"data:"):
                events.append(json.loads(line[5:]))
listener = threading.Thread(target=listen); listener.start()
time.sleep(1.0)
estate = api(alice, [["Email/get", {"accountId": account, "ids": []}, "g"]])[0][1]["state"]
with smtplib.SMTP("127.0.0.1", int(smtp_port)) as s:
    s.sendmail("frank@example.net", ["alice@localhost"], b"Subject: Pushed\r\nFrom: frank@example.net\r\n\r\nhi\r\n")
listener.join(20)
assert not listener.is_alive(), "the event stream closed after its state event"
assert events and events[0]["@type"] == "StateChange", events
new_state = events[0]["changed"][account]["Email"]
assert new_state != estate
[[_, changes, _]] = api(alice, [["Email/changes", {"accountId": account, "sinceState": estate}, "c"]])
assert len(changes["created"]) == 1 and changes["newState"] == new_state, (changes, new_state)

# A bearer token for the web page; printed so the test can check it dies with a password change.
r = requests.post(f"{base}/jmap/token", json={"username": "alice", "password": "alice-pw"})
token = r.json()["accessToken"]
r = requests.get(f"{base}/.well-known/jmap", headers={"Authorization": f"Bearer {token}"})
assert r.status_code == 200 and r.json()["username"] == "alice"
r = requests.post(f"{base}/jmap/token", data="username=alice&password=alice-pw", headers={"Content-Type": "application/x-www-form-urlencoded"})
assert r.status_code == 415, "a cross-site form cannot get a token"
# Signing out ends every token issued until then, this one and an earlier one, on the server.
earlier = token
r = requests.post(f"{base}/jmap/token", json={"username": "alice", "password": "alice-pw"})
token = r.json()["accessToken"]
r = requests.post(f"{base}/jmap/logout", headers={"Authorization": f"Bearer {token}"})
assert r.status_code == 204, r.status_code
for ended in (token, earlier):
    r = requests.get(f"{base}/.well-known/jmap", headers={"Authorization": f"Bearer {ended}"})
    assert r.status_code == 401, r.status_code
r = requests.post(f"{base}/jmap/logout")
assert r.status_code == 401, r.status_code
r = requests.post(f"{base}/jmap/token", json={"username": "alice", "password": "alice-pw"})
token = r.json()["accessToken"]
r = requests.get(f"{base}/.well-known/jmap", headers={"Authorization": f"Bearer {token}"})
assert r.status_code == 200, "a token after the sign-out works"
print(token)
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jmap_client_reads_changes_sends_and_is_pushed_to() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(jmail::store::sqlite::SqliteStore::open(dir.path()).unwrap());
    suite(store, dir.path()).await;
}

/// The same on the PostgreSQL store (skipped, and said so, without a test server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jmap_client_on_postgresql() {
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let limits = jmail::store::ModelLimits::default();
    let store = Arc::new(PgStore::open(&url, limits).await.unwrap());
    suite(store, dir.path()).await;
}

async fn suite(store: Arc<dyn Store>, dir: &std::path::Path) {
    let mut config = jmail::config::Config::for_data_dir(dir);
    config.https_port = Some(0);
    config.imap_port = Some(0);
    config.smtp_port = Some(0);
    for (name, password) in [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
    ] {
        jmail::accounts::add_user(store.as_ref(), &config, name, password)
            .await
            .unwrap();
    }
    // Her welcome message and two more.
    let three = Some(jmail::store::QuotaSetting::Limit(3));
    store.set_quota("carol", None, three).await.unwrap();
    for raw in [PLAIN, WITH_ATTACHMENT, REPLY] {
        store
            .deliver(
                &["alice".to_string()],
                jmail::message::imported(raw.to_vec()),
                None,
            )
            .await
            .unwrap();
    }
    let server = jmail::server::start(config.clone(), store.clone(), LoginThrottle::system())
        .await
        .unwrap();
    let addr_of = |service: Service| {
        server
            .listeners
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, a)| *a)
            .unwrap()
    };
    let port = |service| addr_of(service).port().to_string();
    let out = tokio::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .args([
            port(Service::Https),
            port(Service::Imap),
            port(Service::Smtp),
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The message for another domain was queued, DKIM-signed, without its Bcc field (the worker may have
    // tried it already: this test's DNS answers nothing, so it waits for a retry).
    let queue = store.queue_list().await.unwrap();
    assert_eq!(store.queue_depth().await.unwrap(), queue.len() as u64);
    let entry = queue
        .iter()
        .find(|q| q.domain == "example.net")
        .expect("queued for example.net");
    assert_eq!(entry.sender, "alice@localhost");
    let mut recipients = entry.recipients.clone();
    recipients.sort();
    assert_eq!(recipients, ["ext@example.net", "hidden@example.net"]);
    let dsn: serde_json::Value = serde_json::from_str(entry.dsn.as_deref().unwrap()).unwrap();
    assert_eq!(
        dsn,
        serde_json::json!({"ret": "hdrs", "envid": "J 1", "recipients": {"ext@example.net": {
            "notify": {"success": true, "failure": true}, "orcpt": "Ext@example.net"}}})
    );
    let raw = store
        .body_chunk(
            BodyRef {
                blob: entry.blob,
                len: entry.size,
            },
            0,
            entry.size as usize,
        )
        .await
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("DKIM-Signature:"), "{raw}");
    assert!(!raw.contains("hidden@example.net"), "Bcc taken off: {raw}");
    // The token stops working once the password changes.
    let token = stdout.lines().last().unwrap().trim().to_string();
    let url = format!(
        "https://127.0.0.1:{}/.well-known/jmap",
        addr_of(Service::Https).port()
    );
    let status = |token: String, url: String| async move {
        let out = tokio::process::Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .arg(url)
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(status(token.clone(), url.clone()).await, "200");
    jmail::accounts::set_password(store.as_ref(), "alice", "new-pw")
        .await
        .unwrap();
    assert_eq!(status(token, url.clone()).await, "401");
    // An account deleted and made again with the same password is the new account, not the one the
    // password was last checked for.
    jmail::accounts::delete_user(store.as_ref(), "alice")
        .await
        .unwrap();
    jmail::accounts::add_user(store.as_ref(), &config, "alice", "alice-pw")
        .await
        .unwrap();
    let out = tokio::process::Command::new("curl")
        .args(["-sk", "-u", "alice:alice-pw"])
        .arg(&url)
        .output()
        .await
        .unwrap();
    let session: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let new_id = store.credentials("alice").await.unwrap().unwrap().id;
    assert_eq!(
        session["primaryAccounts"]["urn:ietf:params:jmap:mail"],
        format!("a{new_id}")
    );
    server.shutdown().await;
}
