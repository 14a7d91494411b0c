//! RFC 8620/8621 rules a JMAP conformance audit found unkept, each checked over HTTP: the limit a
//! query applied is told, a patch may name server-set properties only with their values and points no
//! deeper than a value, `mailboxIds` values are `true`, one part per textBody, drafts are not unread,
//! raw header values are raw (for body parts too), Mailbox/query filters and sorts as a tree, a
//! submission's bad recipient is named by address, and Thread/changes tells new threads apart.

const SCRIPT: &str = r##"
import sys, imaplib, requests, urllib3
urllib3.disable_warnings()
https, imap_port = sys.argv[1:3]
base = f"https://127.0.0.1:{https}"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission"]

def call(method, args):
    r = requests.post(f"{base}/jmap/api", auth=("alice", "alice-pw"), verify=False,
                      json={"using": USING, "methodCalls": [[method, dict(accountId="a1", **args), "0"]]})
    assert r.status_code == 200, r.text
    return r.json()["methodResponses"][0]

imap = imaplib.IMAP4("127.0.0.1", int(imap_port))
imap.login("alice", "alice-pw")
imap.append("INBOX", None, None, b"From: a@example.test\r\nSubject: one\r\nMessage-ID: <one@x>\r\n"
            b"X-Custom:  spaced  value  \r\nX-Lead:\t\ttabbed\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
            b"--b\r\nContent-Type: application/pdf;  name=\"a.pdf\"\r\nX-Part: 1\r\n\r\n%PDF\r\n--b--\r\n")

# A query without a limit is told the one the server applied; one within it is not.
_, got, _ = call("Email/query", {})
assert got["limit"] == 1000, got
[eid] = got["ids"]
_, got, _ = call("Email/query", {"limit": 5})
assert "limit" not in got, got

# Raw header values are the bytes after the colon, spaces and tabs kept.
_, got, _ = call("Email/get", {"ids": [eid], "properties": ["header:X-Custom", "header:X-Lead:all",
                 "attachments", "blobId", "threadId", "size"],
                 "bodyProperties": ["partId", "header:Content-Type", "header:X-Part:asText"]})
[email] = got["list"]
assert email["header:X-Custom"] == "  spaced  value  ", email
assert email["header:X-Lead:all"] == ["\t\ttabbed"], email
[att] = email["attachments"]
assert att["header:Content-Type"] == ' application/pdf;  name="a.pdf"', att
assert att["header:X-Part:asText"] == "1", att
name, got, _ = call("Email/get", {"ids": [eid], "properties": ["attachments"], "bodyProperties": ["bogus"]})
assert (name, got["type"]) == ("error", "invalidArguments"), got

# Server-set properties may be sent back as they are, not changed; a patch points no deeper than a value.
same = {k: email[k] for k in ["blobId", "threadId", "size"]}
_, got, _ = call("Email/set", {"update": {eid: dict(same, id=eid, **{"keywords/$flagged": True})}})
assert got["updated"] == {eid: None}, got
_, got, _ = call("Email/set", {"update": {eid: {"size": 1}}})
assert got["notUpdated"][eid] == {"type": "invalidProperties", "properties": ["size"],
                                  "description": "only keywords and mailboxIds can change"}, got
_, got, _ = call("Email/set", {"update": {eid: {"keywords/q/r": True}}})
assert got["notUpdated"][eid]["type"] == "invalidPatch", got
_, got, _ = call("Email/get", {"ids": [eid], "properties": ["keywords"]})
assert got["list"][0]["keywords"] == {"$flagged": True}, got

# mailboxIds values are true; a false is refused, not dropped.
_, got, _ = call("Mailbox/get", {"properties": ["role", "name"]})
boxes = {m["role"] or m["name"]: m["id"] for m in got["list"]}
inbox, drafts = boxes["inbox"], boxes["drafts"]
_, got, _ = call("Email/set", {"update": {eid: {"mailboxIds": {inbox: True, drafts: False}}}})
assert got["notUpdated"][eid]["properties"] == ["mailboxIds"], got

# textBody names one part: a second is refused rather than lost.
draft = {"mailboxIds": {drafts: True}, "from": [{"email": "alice@localhost"}], "subject": "draft",
         "keywords": {"$draft": True},
         "textBody": [{"partId": "t", "type": "text/plain"}], "bodyValues": {"t": {"value": "hi"}}}
two = dict(draft, textBody=[{"partId": "t"}, {"partId": "u"}], bodyValues={"t": {"value": "a"}, "u": {"value": "B"}})
_, got, _ = call("Email/set", {"create": {"two": two}})
assert got["notCreated"]["two"]["properties"] == ["textBody"], got
# A draft is not unread.
_, got, _ = call("Email/set", {"create": {"d": draft}})
assert "d" in got["created"], got
_, got, _ = call("Mailbox/get", {"ids": [drafts], "properties": ["totalEmails", "unreadEmails", "unreadThreads"]})
assert got["list"][0] == {"id": drafts, "totalEmails": 1, "unreadEmails": 0, "unreadThreads": 0}, got

# Mailbox/query: AND/OR/NOT, filterAsTree, sortAsTree.
_, got, _ = call("Mailbox/set", {"create": {"p": {"name": "Zparent"}, "c": {"name": "Achild", "parentId": "#p"}}})
parent, child = got["created"]["p"]["id"], got["created"]["c"]["id"]
_, got, _ = call("Mailbox/query", {"filter": {"name": "Achild"}, "filterAsTree": True})
assert got["ids"] == [], got
_, got, _ = call("Mailbox/query", {"filter": {"operator": "OR", "conditions": [{"name": "Achild"}, {"name": "Zparent"}]},
                                   "filterAsTree": True, "sort": [{"property": "name"}], "sortAsTree": True})
assert got["ids"] == [parent, child], got
_, got, _ = call("Mailbox/query", {"filter": {"operator": "NOT", "conditions": [{"hasAnyRole": True}]},
                                   "sort": [{"property": "name"}]})
assert got["ids"] == [child, parent], got
wide = {"operator": "OR", "conditions": [{"name": "x"}] * 300}
name, got, _ = call("Mailbox/query", {"filter": wide})
assert (name, got["type"]) == ("error", "unsupportedFilter"), got
name, got, _ = call("Mailbox/query", {"sortAsTree": "yes"})
assert (name, got["type"]) == ("error", "invalidArguments"), got
# A Mailbox sent back as it was read is no change; a server-set property changed is refused.
_, got, _ = call("Mailbox/get", {"ids": [parent]})
same = {k: v for k, v in got["list"][0].items() if k != "id"}
_, got, _ = call("Mailbox/set", {"update": {parent: dict(same, id=parent)}})
assert got["updated"] == {parent: None}, got
_, got, _ = call("Mailbox/set", {"update": {parent: {"totalEmails": 7, "myRights": {}}}})
assert sorted(got["notUpdated"][parent]["properties"]) == ["myRights", "totalEmails"], got
# A mailbox moved under its own child is refused for its parentId.
_, got, _ = call("Mailbox/set", {"update": {parent: {"parentId": child}}})
assert got["notUpdated"][parent]["properties"] == ["parentId"], got

# A submission to a local address nobody has names that address.
_, got, _ = call("Identity/get", {})
identity = got["list"][0]["id"]
r = requests.post(f"{base}/jmap/api", auth=("alice", "alice-pw"), verify=False, json={"using": USING, "methodCalls": [
    ["Email/set", {"accountId": "a1", "create": {"m": dict(draft, keywords={})}}, "0"],
    ["EmailSubmission/set", {"accountId": "a1", "create": {"s": {"identityId": identity, "emailId": "#m",
        "envelope": {"mailFrom": {"email": "alice@localhost"}, "rcptTo": [{"email": "Nobody@localhost"}]}}}}, "1"]]})
sub = r.json()["methodResponses"][1][1]
assert sub["notCreated"]["s"] == {"type": "invalidRecipients", "invalidRecipients": ["Nobody@localhost"]}, sub

# Thread/changes: a new conversation is created, a reply to an old one updates it.
_, got, _ = call("Email/get", {"ids": [], "properties": ["id"]})
state = got["state"]
imap.append("INBOX", None, None, b"From: b@example.test\r\nSubject: new\r\nMessage-ID: <new@x>\r\n\r\nn\r\n")
imap.append("INBOX", None, None, b"From: c@example.test\r\nSubject: Re: one\r\nMessage-ID: <r@x>\r\nReferences: <one@x>\r\n\r\nr\r\n")
_, got, _ = call("Email/query", {"filter": {"subject": "new"}})
_, new, _ = call("Email/get", {"ids": got["ids"], "properties": ["threadId"]})
_, got, _ = call("Thread/changes", {"sinceState": state})
assert got["created"] == [new["list"][0]["threadId"]], got
assert got["updated"] == [email["threadId"]], got
print("ok")
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_jmap_audit_found_unkept() {
    crate::jmap_conformance::run_script(SCRIPT, |_| {}).await;
}
