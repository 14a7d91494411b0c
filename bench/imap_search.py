#!/usr/bin/env python3
"""Times IMAP SEARCH, SORT and THREAD on one mailbox: each query RUNS times over one logged-in session
(imaplib), after an untimed SELECT; prints one JSON object of median milliseconds and match counts per
query (for THREAD, the messages named and the threads).
Usage: imap_search.py HOST PORT USER PASSWORD RUNS"""
import imaplib, json, re, statistics, sys, time

QUERIES = [
    ("flag", ("UNSEEN",)),
    ("uid-range", ("UID", "99000:*")),
    ("subject", ("SUBJECT", '"message 99999"')),
    ("from", ("FROM", "sender@example.org")),
    ("sent-date", ("SENTSINCE", "1-Dec-2026")),
    ("body", ("BODY", "zzzz")),
    ("text", ("TEXT", '"message 5"')),
    ("sort-subject", ("SORT", "(SUBJECT)", "UTF-8", "ALL")),
    ("sort-date", ("SORT", "(REVERSE DATE)", "UTF-8", "ALL")),
    ("thread-subject", ("THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL")),
    ("thread-refs", ("THREAD", "REFERENCES", "UTF-8", "ALL")),
]


def run(criteria):
    if criteria[0] == "UID":
        return m.uid("SEARCH", *criteria)
    if criteria[0] == "SORT":
        return m.sort(*criteria[1:])
    if criteria[0] == "THREAD":
        return m.thread(*criteria[1:])
    return m.search(None, *criteria)


def threads(response):
    """The number of top-level threads in a THREAD response."""
    depth, count = 0, 0
    for ch in response:
        if ch == ord("("):
            count += depth == 0
            depth += 1
        elif ch == ord(")"):
            depth -= 1
    return count


host, port, user, password, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
m = imaplib.IMAP4(host, port)
m.login(user, password)
m.select("INBOX")
out = {}
for name, criteria in QUERIES:
    times, found = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        typ, data = run(criteria)
        times.append((time.perf_counter() - t0) * 1000)
        assert typ == "OK", (name, typ, data)
        found = len(re.findall(rb"\d+", data[0]))
    out[name] = {"ms": round(statistics.median(times), 1), "found": found}
    if criteria[0] == "THREAD":
        out[name]["threads"] = threads(data[0])
m.logout()
print(json.dumps(out))
