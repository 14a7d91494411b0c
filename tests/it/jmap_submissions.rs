//! JMAP's EmailSubmission objects after sending (RFC 8621 §7) over HTTP: a submission is kept and read
//! back with its envelope and each recipient's delivery status; queried by its filters and sorts;
//! `final` from the start, so undoing it is `cannotUnsend`; forgotten on destroy; states move with each
//! change and `ifInState` is kept.

const SCRIPT: &str = r##"

_, got, _ = call("EmailSubmission/get", {})
assert got["list"] == [] and got["state"] == "0-0", got
_, boxes, _ = call("Mailbox/get", {"properties": ["role"]})
drafts = [b["id"] for b in boxes["list"] if b["role"] == "drafts"][0]

def send(subject, envelope=None):
    sub = {"identityId": "i0", "emailId": "#m"}
    if envelope:
        sub["envelope"] = envelope
    r = calls([
        ["Email/set", {"accountId": "a1", "create": {"m": {"mailboxIds": {drafts: True},
            "from": [{"email": "alice@localhost"}], "to": [{"email": "alice@localhost"}], "subject": subject,
            "textBody": [{"partId": "t", "type": "text/plain"}], "bodyValues": {"t": {"value": "hi"}}}}}, "0"],
        ["EmailSubmission/set", {"accountId": "a1", "create": {"s": sub}}, "1"]])
    email = r[0][1]["created"]["m"]["id"]
    return email, r[1][1]

email1, got = send("first")
made = got["created"]["s"]
sid1 = made["id"]
assert made["undoStatus"] == "final", made
assert made["envelope"] == {"mailFrom": {"email": "alice@localhost", "parameters": None},
                            "rcptTo": [{"email": "alice@localhost", "parameters": None}]}, made
assert made["deliveryStatus"]["alice@localhost"]["delivered"] == "yes", made
assert got["oldState"] == "0-0" and got["newState"] != "0-0", got

_, got, _ = call("EmailSubmission/get", {"ids": [sid1, "s999999"]})
[kept] = got["list"]
assert got["notFound"] == ["s999999"], got
assert (kept["identityId"], kept["emailId"], kept["undoStatus"]) == ("i0", email1, "final"), kept
assert kept["threadId"] == made["threadId"] and kept["sendAt"] == made["sendAt"], kept
assert kept["dsnBlobIds"] == [] and kept["mdnBlobIds"] == [], kept
_, got, _ = call("EmailSubmission/get", {"ids": [sid1], "properties": ["emailId"]})
assert got["list"] == [{"id": sid1, "emailId": email1}], got

# A second, with an envelope of its own: queried by filters and sorted.
email2, got = send("second", {"mailFrom": {"email": "alice@localhost", "junk": "x" * 10000},
                               "rcptTo": [{"email": "alice@localhost"}]})
sid2 = got["created"]["s"]["id"]
assert "envelope" not in got["created"]["s"], "the client's own envelope is not echoed"
_, got, _ = call("EmailSubmission/get", {"ids": [sid2], "properties": ["envelope"]})
assert got["list"][0]["envelope"] == {"mailFrom": {"email": "alice@localhost", "parameters": None},
    "rcptTo": [{"email": "alice@localhost", "parameters": None}]}, "only addresses and parameters are kept"
_, got, _ = call("EmailSubmission/query", {"filter": {"emailIds": [email2]}})
assert got["ids"] == [sid2], got
_, got, _ = call("EmailSubmission/query", {"filter": {"undoStatus": "pending"}})
assert got["ids"] == [], got
_, got, _ = call("EmailSubmission/query", {"filter": {"operator": "NOT", "conditions": [{"emailIds": [email2]}]},
                                           "calculateTotal": True})
assert got["ids"] == [sid1] and got["total"] == 1, got
_, got, _ = call("EmailSubmission/query", {"sort": [{"property": "emailId", "isAscending": False}]})
assert got["ids"] == sorted([sid1, sid2], key=lambda s: {sid1: email1, sid2: email2}[s], reverse=True), got
name, got, _ = call("EmailSubmission/query", {"sort": [{"property": "size"}]})
assert (name, got["type"]) == ("error", "unsupportedSort"), got
name, got, _ = call("EmailSubmission/query", {"filter": {"color": "red"}})
assert (name, got["type"]) == ("error", "unsupportedFilter"), got

# Sent at once: it cannot be undone; naming its values as they are is no change.
_, got, _ = call("EmailSubmission/get", {"ids": []})
state = got["state"]
_, got, _ = call("EmailSubmission/set", {"update": {sid1: {"undoStatus": "canceled"}, sid2: {"undoStatus": "final"}}})
assert got["notUpdated"][sid1]["type"] == "cannotUnsend", got
assert got["updated"] == {sid2: None} and got["newState"] == state, got
_, got, _ = call("EmailSubmission/changes", {"sinceState": state})
assert got["created"] == [] and got["newState"] == state, got
name, got, _ = call("EmailSubmission/set", {"ifInState": "0-0", "destroy": [sid1]})
assert (name, got["type"]) == ("error", "stateMismatch"), got

# Destroyed, it is forgotten; the state moves and older ones cannot be caught up with.
_, got, _ = call("EmailSubmission/set", {"ifInState": state, "destroy": [sid1, "s999999"]})
assert got["destroyed"] == [sid1] and got["notDestroyed"]["s999999"]["type"] == "notFound", got
assert got["newState"] != state, got
_, got, _ = call("EmailSubmission/get", {"ids": [sid1]})
assert got["notFound"] == [sid1], got
name, got, _ = call("EmailSubmission/changes", {"sinceState": state})
assert (name, got["type"]) == ("error", "cannotCalculateChanges"), got
print("ok")
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_are_kept_queried_and_forgotten() {
    let script = format!("{}{SCRIPT}", crate::jmap_conformance::ALICE_CALLS);
    crate::jmap_conformance::run_script(&script, |_| {}).await;
}
