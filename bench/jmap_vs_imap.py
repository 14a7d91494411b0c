#!/usr/bin/env python3
"""JMAP against Jmail's own IMAP, the same work on the same mailbox in the same run (docs/benchmarks.md).

  bench/jmap_vs_imap.py HOST HTTP_PORT IMAP_PORT USER PASSWORD SECONDS CLIENTS

Both in clear on loopback (Jmail's plain HTTP port serves JMAP to this machine), so neither side pays TLS.

Setup (untimed): the INBOX is filled to 2,000 messages over IMAP (APPEND), each with a word of its own
and one of 50 shared words. Then, each for SECONDS with CLIENTS processes on persistent connections:
  get:   20 messages' from, subject, arrival, flags, size and a 256-byte preview.
         JMAP Email/get of 20 ids;  IMAP UID FETCH of 20 UIDs (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE
         BODY.PEEK[TEXT]<0.256>).
  query: the messages holding one of the shared words, newest first.
         JMAP Email/query {inMailbox, text} sorted by receivedAt;  IMAP UID SEARCH TEXT word.
  push:  how long after a message's APPEND is sent (its commit included) a watcher hears of it, 40 times:
         a JMAP event source's state event;  an IMAP IDLE's EXISTS.
Prints one JSON line: operations per second per side and their ratio, the server's CPU milliseconds per
operation (from /proc, when JMAIL_PID names the server), and push latency p50/p99 (ms).
The client is Python on both sides, on the same machine: the ratios compare the server's two protocols,
with the same client cost on each side.
"""
import base64
import http.client
import imaplib
import json
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time

HOST, HTTP, IMAP, USER, PASSWORD = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
SECONDS, CLIENTS = float(sys.argv[6]), int(sys.argv[7])
MESSAGES = 2000
WORDS = [f"topic{i:02d}" for i in range(50)]
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class Jmap:
    def __init__(self):
        self.conn = http.client.HTTPConnection(HOST, HTTP)
        session = self.request("GET", "/.well-known/jmap")
        self.account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        inbox = self.call([["Mailbox/query", {"accountId": self.account, "filter": {"role": "inbox"}}, "m"]])
        self.inbox = inbox[0][1]["ids"][0]

    def request(self, method, path, body=None):
        self.conn.request(method, path, body=body, headers={"Authorization": AUTH, "Content-Type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        assert r.status == 200, (r.status, data[:200])
        return json.loads(data)

    def call(self, calls):
        out = self.request("POST", "/jmap/api", json.dumps({"using": USING, "methodCalls": calls}))["methodResponses"]
        assert all(name != "error" for name, _, _ in out), out
        return out

    def ids(self):
        q = self.call([["Email/query", {"accountId": self.account, "filter": {"inMailbox": self.inbox}, "limit": 1000}, "q"]])
        return q[0][1]["ids"]

    def get(self, ids):
        out = self.call([["Email/get", {"accountId": self.account, "ids": ids,
                                        "properties": ["from", "subject", "receivedAt", "keywords", "size", "preview"]}, "g"]])
        assert len(out[0][1]["list"]) == len(ids)

    def query(self, word):
        out = self.call([["Email/query", {"accountId": self.account, "filter": {"inMailbox": self.inbox, "text": word},
                                          "sort": [{"property": "receivedAt", "isAscending": False}]}, "q"]])
        return len(out[0][1]["ids"])


class Imap:
    def __init__(self):
        self.m = imaplib.IMAP4(HOST, IMAP)
        self.m.login(USER, PASSWORD)
        self.m.select("INBOX")

    def uids(self):
        return self.m.uid("SEARCH", None, "ALL")[1][0].split()[:1000]

    def get(self, uids):
        typ, data = self.m.uid("FETCH", b",".join(uids).decode(),
                               "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY.PEEK[TEXT]<0.256>)")
        assert typ == "OK" and sum(1 for d in data if isinstance(d, tuple)) == len(uids), (typ, len(data))

    def query(self, word):
        typ, data = self.m.uid("SEARCH", None, "TEXT", word)
        assert typ == "OK"
        return len(data[0].split())


def fill():
    m = Imap()
    have = int(m.m.select("INBOX")[1][0])
    for i in range(have, MESSAGES):
        body = (f"From: sender{i % 97}@example.net\r\nTo: {USER}@localhost\r\nSubject: message {i} about {WORDS[i % 50]}\r\n"
                f"Message-ID: <bench{i}@example.net>\r\n\r\nThis is message {i}, unique{i}, on {WORDS[i % 50]}.\r\n"
                + "filler text " * 40 + "\r\n")
        m.m.append("INBOX", None, None, body.encode())
    return m


def worker(args):
    side, op, seconds, seed = args
    rng = random.Random(seed)
    client = Jmap() if side == "jmap" else Imap()
    ids = client.ids() if side == "jmap" else client.uids()
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if op == "get":
            start = rng.randrange(0, len(ids) - 20)
            client.get(ids[start:start + 20])
        else:
            client.query(rng.choice(WORDS))
        done += 1
    return done


def server_cpu_secs():
    """The server's CPU time so far (user + system), when bench/run.sh says which process it is."""
    pid = os.environ.get("JMAIL_PID")
    if not pid:
        return None
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(side, op):
    """Operations per second, and the server's CPU milliseconds per operation (None if unknown)."""
    cpu = server_cpu_secs()
    with multiprocessing.Pool(CLIENTS) as pool:
        counts = pool.map(worker, [(side, op, SECONDS, i) for i in range(CLIENTS)])
    done = sum(counts)
    cpu_ms = None if cpu is None else round((server_cpu_secs() - cpu) * 1000 / max(done, 1), 3)
    return done / SECONDS, cpu_ms


def push_latency(side, rounds=40):
    appender = Imap()
    # The APPEND's literal goes out at once (without it, Nagle's wait on the client adds 40 ms to both sides).
    import socket
    appender.m.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    heard = threading.Event()
    latencies = []
    stop = threading.Event()
    if side == "jmap":
        conn = http.client.HTTPConnection(HOST, HTTP)
        conn.request("GET", "/jmap/eventsource?types=Email&closeafter=no&ping=0", headers={"Authorization": AUTH})
        r = conn.getresponse()
        assert r.status == 200

        def listen():
            while not stop.is_set():
                line = r.fp.readline()
                if not line:
                    return
                if line.startswith(b"event: state"):
                    heard.set()
    else:
        watcher = Imap()
        watcher.m.send(b"I1 IDLE\r\n")
        assert watcher.m.readline().startswith(b"+")

        def listen():
            while not stop.is_set():
                line = watcher.m.readline()
                if not line:
                    return
                if line.endswith(b"EXISTS\r\n"):
                    heard.set()
    t = threading.Thread(target=listen, daemon=True)
    t.start()
    time.sleep(0.5)
    for i in range(rounds):
        heard.clear()
        appended = time.perf_counter()
        appender.m.append("INBOX", None, None, f"Subject: push {i}\r\n\r\nhi\r\n".encode())
        assert heard.wait(10), f"{side}: no push within 10 s"
        latencies.append((time.perf_counter() - appended) * 1000)
        time.sleep(0.05)
    stop.set()
    latencies.sort()
    return {"p50": round(statistics.median(latencies), 2), "p99": round(latencies[int(len(latencies) * 0.99) - 1], 2)}


def main():
    fill()
    # The same words both ways find the same messages.
    j, m = Jmap(), Imap()
    for word in WORDS[:3]:
        assert j.query(word) == m.query(word), word
    out = {"clients": CLIENTS, "seconds": SECONDS, "messages": MESSAGES}
    for op in ["get", "query"]:
        (jmap_rate, jmap_cpu), (imap_rate, imap_cpu) = throughput("jmap", op), throughput("imap", op)
        out[op] = {"jmap_per_sec": round(jmap_rate, 1), "imap_per_sec": round(imap_rate, 1),
                   "jmap_over_imap": round(jmap_rate / imap_rate, 2),
                   "jmap_server_cpu_ms": jmap_cpu, "imap_server_cpu_ms": imap_cpu}
    out["push_ms"] = {"jmap": push_latency("jmap"), "imap": push_latency("imap")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
