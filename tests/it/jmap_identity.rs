//! JMAP's Identity (RFC 8621 §6) over HTTP: each of the account's own addresses is an identity whose
//! name, replyTo, bcc and signatures the account sets; it may add identities for its own addresses only,
//! remove those and not its own; states move with each change and `ifInState` is kept; and a submission
//! sends with an identity the account added, not with one removed.

const SCRIPT: &str = r##"

_, got, _ = call("Identity/get", {})
assert got["state"] == "0", got
assert got["list"] == [{"id": "i0", "name": "", "email": "alice@localhost", "replyTo": None, "bcc": None,
                        "textSignature": "", "htmlSignature": "", "mayDelete": False}], got

# Set a name, signatures and a reply address; the state moves and get shows them.
_, got, _ = call("Identity/set", {"ifInState": "0", "update": {"i0": {
    "name": "Alice Liddell", "textSignature": "-- \nAlice", "htmlSignature": "<p>Alice</p>",
    "replyTo": [{"name": "Alice", "email": "alice@localhost"}]}}})
assert got["updated"] == {"i0": None} and got["oldState"] == "0" and got["newState"] == "1", got
_, got, _ = call("Identity/get", {"ids": ["i0"], "properties": ["name", "textSignature", "replyTo"]})
assert got["list"] == [{"id": "i0", "name": "Alice Liddell", "textSignature": "-- \nAlice",
                        "replyTo": [{"name": "Alice", "email": "alice@localhost"}]}], got
assert got["state"] == "1", got

# An old state is refused; the address, the id and mayDelete do not change; bad values are refused.
name, got, _ = call("Identity/set", {"ifInState": "0", "update": {"i0": {"name": "x"}}})
assert (name, got["type"]) == ("error", "stateMismatch"), got
_, got, _ = call("Identity/set", {"update": {"i0": {"email": "mallory@localhost"}}})
assert got["notUpdated"]["i0"]["properties"] == ["email"], got
_, got, _ = call("Identity/set", {"update": {"i0": {"email": "alice@localhost", "mayDelete": False}}})
assert got["updated"] == {"i0": None} and got["newState"] == "1", got
for bad in [{"name": "a\r\nBcc: x@y"}, {"name": "x" * 257}, {"bcc": [{"email": "not an address"}]},
            {"replyTo": [{"email": "a@b", "extra": 1}]}, {"textSignature": "x" * 20000}, {"color": "red"},
            {"replyTo/0/name": "x"}]:
    _, got, _ = call("Identity/set", {"update": {"i0": bad}})
    assert got["notUpdated"]["i0"]["type"] == "invalidProperties", (bad, got)

# Another identity for her own address, not for anyone else's; her own address's stays.
_, got, _ = call("Identity/set", {"create": {
    "work": {"email": "alice@localhost", "name": "A. Liddell (work)", "bcc": [{"email": "archive@localhost"}]},
    "theft": {"email": "bob@localhost", "name": "Bob"}, "bare": {"email": "alice"},
    "mine": {"id": "n9", "email": "alice@localhost"}}, "destroy": ["i0"]})
assert got["created"] == {"work": {"id": "n1", "mayDelete": True}}, got
assert got["notCreated"]["theft"]["type"] == "forbiddenFrom", got
assert got["notCreated"]["bare"]["type"] == "forbiddenFrom", got
assert got["notCreated"]["mine"]["properties"] == ["id"], got
assert got["notDestroyed"]["i0"]["type"] == "forbidden", got
assert got["newState"] == "2", got
_, got, _ = call("Identity/get", {"ids": ["n1"]})
assert got["list"][0]["name"] == "A. Liddell (work)" and got["list"][0]["mayDelete"] is True, got
assert got["list"][0]["bcc"] == [{"name": None, "email": "archive@localhost"}], got

# The settings as a whole are bounded: ten identities with the largest signatures are too much at once.
big = {f"b{i}": {"email": "alice@localhost", "textSignature": "x" * 16000, "htmlSignature": "y" * 16000}
       for i in range(10)}
name, got, _ = call("Identity/set", {"create": big})
assert (name, got["type"]) == ("error", "requestTooLarge"), got

# Changes: none since the current state; an older one is read again.
_, got, _ = call("Identity/changes", {"sinceState": "2"})
assert got["created"] == [] and got["newState"] == "2", got
name, got, _ = call("Identity/changes", {"sinceState": "1"})
assert (name, got["type"]) == ("error", "cannotCalculateChanges"), got

# A submission with the added identity sends as her address.
_, boxes, _ = call("Mailbox/get", {"properties": ["role"]})
drafts = [b["id"] for b in boxes["list"] if b["role"] == "drafts"][0]
r = calls([
    ["Email/set", {"accountId": "a1", "create": {"m": {"mailboxIds": {drafts: True},
        "from": [{"email": "alice@localhost"}], "to": [{"email": "alice@localhost"}], "subject": "as n1",
        "textBody": [{"partId": "t", "type": "text/plain"}], "bodyValues": {"t": {"value": "hi"}}}}}, "0"],
    ["EmailSubmission/set", {"accountId": "a1", "create": {"s": {"identityId": "n1", "emailId": "#m"}}}, "1"]])
assert "s" in r[1][1]["created"], r

# The added one goes; gone, it cannot be sent with.
_, got, _ = call("Identity/set", {"destroy": ["n1"]})
assert got["destroyed"] == ["n1"] and got["newState"] == "3", got
r = calls([["EmailSubmission/set", {"accountId": "a1", "create": {"s": {"identityId": "n1", "emailId": "x"}}}, "1"]])
assert r[0][1]["notCreated"]["s"]["properties"] == ["identityId"], r
print("ok")
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_are_set_added_and_removed_by_their_account() {
    let script = format!("{}{SCRIPT}", crate::jmap_conformance::ALICE_CALLS);
    crate::jmap_conformance::run_script(&script, |_| {}).await;
}
