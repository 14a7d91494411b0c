//! What one JMAP client may make the server hold: a request's calls share one budget for the message
//! bytes they read (32 calls do not get 32 budgets) and one for the text they search; an account runs at
//! most four requests at once and holds at most 32 event sources; a mail list's properties read the first bytes of a large message, not all
//! of it, so a few large messages cannot break an inbox page; and a page of another site cannot use a
//! browser's stored password (its `Origin` is refused).

use jmail::server::Service;
use jmail::store::MailStore;

use crate::harness::{TestServer, python};

const SCRIPT: &str = r##"
import sys, requests, urllib3
urllib3.disable_warnings()
https = sys.argv[1]
base = f"https://127.0.0.1:{https}"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
def api(calls, headers=None, auth=("alice", "alice-pw")):
    return requests.post(f"{base}/jmap/api", auth=auth, verify=False, headers=headers or {},
                         json={"using": USING, "methodCalls": calls})
r = api([["Email/query", {"accountId": "a1", "sort": [{"property": "receivedAt"}]}, "q"]])
assert r.status_code == 200, r.text
ids = r.json()["methodResponses"][0][1]["ids"]
big = ids[1:]
assert len(big) == 9, ids

# The webmail's list of nine 8 MB messages (72 MB): answered from their first bytes.
LIST = ["threadId", "from", "subject", "receivedAt", "keywords", "preview", "hasAttachment", "mailboxIds"]
r = api([["Email/get", {"accountId": "a1", "ids": big, "properties": LIST}, "g"]])
[[name, got, _]] = r.json()["methodResponses"]
assert name == "Email/get", got
assert len(got["list"]) == 9, got
for e in got["list"]:
    assert e["subject"].startswith("big "), e
    assert e["preview"].startswith("the text of big "), e
    assert e["hasAttachment"] is True, e

# Their whole bodies: more than one request reads.
r = api([["Email/get", {"accountId": "a1", "ids": big, "properties": ["bodyValues"], "fetchAllBodyValues": True}, "g"]])
[[name, err, _]] = r.json()["methodResponses"]
assert (name, err["type"]) == ("error", "requestTooLarge"), (name, err)
# Five are within the budget; the same five again in the same request are not: one budget per request.
five = ["Email/get", {"accountId": "a1", "ids": big[:5], "properties": ["attachments"]}, "g"]
r = api([five])
assert r.json()["methodResponses"][0][0] == "Email/get", r.text
r = api([five, five])
[[first, _, _], [second, err, _]] = r.json()["methodResponses"]
assert first == "Email/get" and (second, err["type"]) == ("error", "requestTooLarge"), r.text

# Text searches: a request reads at most 256 MiB of messages (each query here reads the 75 MB mailbox);
# the query that starts past it is refused.
search = ["Email/query", {"accountId": "a1", "filter": {"body": "no such words"}}, "q"]
r = api([search] * 5)
names = [(n, a.get("type")) for n, a, _ in r.json()["methodResponses"]]
assert names == [("Email/query", None)] * 4 + [("error", "requestTooLarge")], names

# At most four of one account's requests run at once (maxConcurrentRequests); the others are refused.
import threading
codes, barrier = [], threading.Barrier(10)
def one():
    barrier.wait()
    r = api([search])
    codes.append((r.status_code, r.json().get("type"), r.json().get("limit")))
threads = [threading.Thread(target=one) for _ in range(10)]
[t.start() for t in threads]
[t.join() for t in threads]
assert (400, "urn:ietf:params:jmap:error:limit", "maxConcurrentRequests") in codes, codes
assert sum(1 for c in codes if c[0] == 200) >= 4, codes
# 33 calls in one request: a limit problem naming maxCallsInRequest (RFC 8620 §3.6.1).
r = api([["Mailbox/get", {"accountId": "a1", "ids": []}, str(n)] for n in range(33)])
assert r.status_code == 400 and r.headers["Content-Type"] == "application/problem+json", r.status_code
assert (r.json()["type"], r.json()["limit"]) == ("urn:ietf:params:jmap:error:limit", "maxCallsInRequest"), r.text

# At most 32 event sources of one account are open at once; a place comes back when one closes.
def source():
    return requests.get(f"{base}/jmap/eventsource?types=*&ping=1", auth=("alice", "alice-pw"), verify=False, stream=True)
sources = [source() for _ in range(32)]
assert all(s.status_code == 200 for s in sources), [s.status_code for s in sources]
extra = source()
assert extra.status_code == 429, extra.status_code
sources.pop().close()
import time
for _ in range(50):
    again = source()
    if again.status_code == 200:
        break
    time.sleep(0.2)
assert again.status_code == 200, again.status_code
for s in sources + [again]:
    s.close()

# Another site's page in a browser that kept alice's password: refused; her own page is not.
r = api([["Mailbox/set", {"accountId": "a1", "create": {"x": {"name": "Planted"}}}, "s"]],
        headers={"Origin": "https://evil.example", "Content-Type": "text/plain"})
assert r.status_code == 403, (r.status_code, r.text)
r = api([["Mailbox/get", {"accountId": "a1", "properties": ["name"]}, "m"]], headers={"Sec-Fetch-Site": "cross-site"})
assert r.status_code == 403, r.status_code
r = api([["Mailbox/get", {"accountId": "a1", "properties": ["name"]}, "m"]], headers={"Origin": base})
assert r.status_code == 200, r.status_code
assert "Planted" not in r.text, r.text
# An upload said to be larger than a message may be is refused before its body is sent.
import http.client, ssl, base64, json
conn = http.client.HTTPSConnection("127.0.0.1", int(https), context=ssl._create_unverified_context())
conn.putrequest("POST", "/jmap/upload/a1/")
conn.putheader("Authorization", "Basic " + base64.b64encode(b"alice:alice-pw").decode())
conn.putheader("Content-Length", str(1 << 30))
conn.endheaders()
resp = conn.getresponse()
assert resp.status == 413, resp.status
assert json.loads(resp.read())["limit"] == "maxSizeUpload"
# A stranger's upload is refused before its body is read.
r = requests.post(f"{base}/jmap/upload/a1/", data=b"x" * 100, verify=False)
assert r.status_code == 401, r.status_code
print("ok")
"##;

/// A message of about 8 MB: a short text part first, then an attachment.
fn big(n: usize) -> Vec<u8> {
    let mut raw = format!(
        "From: stranger@example.org\r\nTo: alice@localhost\r\nSubject: big {n}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
         the text of big {n}\r\n--b\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=blob.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    let line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n";
    while raw.len() < 8 << 20 {
        raw.extend_from_slice(line);
    }
    raw.extend_from_slice(b"--b--\r\n");
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_budget_per_request_a_list_reads_little_and_other_sites_are_refused() {
    let s = TestServer::start_with(|c| c.https_port = Some(0)).await;
    s.add_user("alice", "alice-pw").await;
    for n in 0..9 {
        s.store
            .deliver(
                &["alice".to_string()],
                jmail::message::imported(big(n)),
                None,
            )
            .await
            .unwrap();
    }
    let https = s.addr_of(Service::Https).port().to_string();
    assert_eq!(python(SCRIPT, &[https]).await.trim(), "ok");
    s.stop().await;
}
