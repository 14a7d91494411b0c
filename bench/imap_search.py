#!/usr/bin/env python3
"""Times IMAP SEARCH on one mailbox: each query RUNS times over one logged-in session (imaplib), after an
untimed SELECT; prints one JSON object of median milliseconds and match counts per query.
Usage: imap_search.py HOST PORT USER PASSWORD RUNS"""
import imaplib, json, statistics, sys, time

QUERIES = [
    ("flag", ("UNSEEN",)),
    ("uid-range", ("UID", "99000:*")),
    ("subject", ("SUBJECT", '"message 99999"')),
    ("from", ("FROM", "sender@example.org")),
    ("sent-date", ("SENTSINCE", "1-Dec-2026")),
    ("body", ("BODY", "zzzz")),
    ("text", ("TEXT", '"message 5"')),
]

host, port, user, password, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
m = imaplib.IMAP4(host, port)
m.login(user, password)
m.select("INBOX")
out = {}
for name, criteria in QUERIES:
    times, found = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        typ, data = m.uid("SEARCH", *criteria) if criteria[0] == "UID" else m.search(None, *criteria)
        times.append((time.perf_counter() - t0) * 1000)
        assert typ == "OK", (name, typ, data)
        found = len(data[0].split())
    out[name] = {"ms": round(statistics.median(times), 1), "found": found}
m.logout()
print(json.dumps(out))
