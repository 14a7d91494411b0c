//! POP3 with a real client: Python's poplib, run as a subprocess against a server on 127.0.0.1:0. Each script
//! prints every reply it gets; the tests compare that output exactly, and check stored state.

use std::time::Duration;

use jmail::store::{
    Account, AccountStore, ImportBatch, ImportedMessage, MailStore, NewMessage, flags,
};

use crate::harness::TestServer;
use crate::legacy::V1;

/// How long one poplib script may run before the test fails.
const SCRIPT_WAIT: Duration = Duration::from_secs(60);

/// Helpers every script gets: `connect()`, `login(user, password)`, `r(f, *args)`, which calls a poplib method
/// and prints its reply (an `-ERR` reply too), multi-line replies with their lines indented and the octet
/// count poplib computed (line ends counted as CRLF, dot-stuffing removed); `native_send` (mail over the
/// native protocol) and `plain` (a SASL PLAIN response).
const PRELUDE: &str = r#"
import base64, poplib, socket, sys
HOST, PORT, NATIVE_PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def connect():
    return poplib.POP3(HOST, PORT, timeout=20)

def show(x):
    if isinstance(x, bytes):
        return x.decode('utf-8', 'replace')
    if isinstance(x, str):              # poplib's own errors, e.g. '-ERR EOF' when the server closed
        return x
    if isinstance(x, tuple) and len(x) == 3 and isinstance(x[1], list):
        return '\n'.join([show(x[0])] + ['  ' + show(l) for l in x[1]] + ['  (%d octets)' % x[2]])
    return repr(x)

def r(f, *args):
    try:
        res = f(*args)
    except poplib.error_proto as e:
        res = e.args[0]
    print(show(res))
    return res

def login(user, password):
    p = connect()
    p.user(user)
    p.pass_(password)
    return p

def native_send(user, password, to, body):
    """Sends mail over the native protocol; returns its `OK SENT n` reply, Message-ID cut off."""
    s = socket.create_connection((HOST, NATIVE_PORT), timeout=20)
    s.sendall(b'JMAIL 2.0\r\nLOGIN %s %s\r\nSEND %s {%d+}\r\n%s\r\nLOGOUT\r\n'
              % (user.encode(), password.encode(), to.encode(), len(body), body))
    replies = b''
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        replies += chunk
    sent = [l for l in replies.decode().split('\r\n') if l.startswith('OK SENT')]
    return sent[0].split(' <')[0]

def plain(authzid, user, password):
    return base64.b64encode(('%s\0%s\0%s' % (authzid, user, password)).encode()).decode()
"#;

/// Runs a poplib script against the server's POP3 port and returns what it printed.
async fn pop3(s: &TestServer, script: &str) -> String {
    let addr = s.pop3_addr();
    let out = crate::harness::run_client(
        tokio::process::Command::new("python3")
            .arg("-c")
            .arg(format!("{PRELUDE}\n{script}"))
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .arg(s.addr.port().to_string()),
        SCRIPT_WAIT,
    )
    .await;
    assert!(
        out.status.success(),
        "script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Compares printed output line by line with `want` (leading and trailing blank lines ignored).
fn assert_output(got: &str, want: &str) {
    assert_eq!(
        got.trim_matches('\n'),
        want.trim_matches('\n'),
        "got:\n{got}"
    );
}

async fn account(s: &TestServer, user: &str, password: &str) -> Account {
    jmail::accounts::authenticate(s.store.as_ref(), user, password)
        .await
        .unwrap()
        .unwrap()
}

/// A user's INBOX from the store: (uid, POP3 size, stored bytes, seen), by uid.
async fn inbox(s: &TestServer, a: &Account) -> Vec<(u32, u64, Vec<u8>, bool)> {
    let mut out = Vec::new();
    for m in s.store.changes(a.inbox, 0, 1000).await.unwrap().messages {
        let raw = s.store.fetch(a.inbox, m.uid, false).await.unwrap().unwrap();
        out.push((m.uid, m.crlf_size, raw, m.flags & flags::SEEN != 0));
    }
    out.sort_by_key(|m| m.0);
    out
}

async fn deliver(s: &TestServer, to: &str, raw: &[u8]) {
    let message = NewMessage::new(
        raw.to_vec(),
        "alice@localhost".into(),
        String::new(),
        None,
        1_700_000_000_000_000,
    );
    s.store
        .deliver(&[to.to_string()], message, None)
        .await
        .unwrap();
}

/// How poplib prints a multi-line reply's lines: each indented, dot-stuffing removed, then the octets.
fn shown_lines(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    let mut octets = 0;
    for line in text.split_inclusive('\n') {
        let line = line.trim_end_matches('\n').trim_end_matches('\r');
        out.push_str(&format!("  {line}\n"));
        octets += line.len() + 2;
    }
    out.push_str(&format!("  ({octets} octets)"));
    out
}

const M2: &[u8] = b"From: alice@localhost\r\nSubject: two\r\n\r\nline 1\r\n.dotted\r\nline 3\r\n";
const M3: &[u8] = b"Subject: three\r\n\r\nbody\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_with_exact_replies() {
    let s = TestServer::start_pop3().await;
    s.add_user("bob", "pb").await;
    deliver(&s, "bob", M2).await;
    deliver(&s, "bob", M3).await;
    let bob = account(&s, "bob", "pb").await;
    let before = inbox(&s, &bob).await;
    let sizes: Vec<u64> = before.iter().map(|m| m.1).collect();
    assert_eq!(&sizes[1..], &[M2.len() as u64, M3.len() as u64]);
    let total: u64 = sizes.iter().sum();
    let out = pop3(
        &s,
        r#"
p = connect()
print(show(p.getwelcome()))
r(p._longcmd, 'CAPA')
r(p.stat)
r(p._longcmd, 'AUTH')
r(p.user, 'bob')
r(p.pass_, 'pb')
r(p.stat)
r(p.list)
r(p.list, 2)
r(p.list, 4)
r(p.uidl)
r(p.uidl, 3)
r(p.top, 2, 1)
r(p.top, 3, 0)
r(p.retr, 2)
r(p.noop)
r(p.dele, 2)
r(p.dele, 2)
r(p.retr, 2)
r(p.list, 2)
r(p.stat)
r(p.list)
r(p.rset)
r(p.list, 2)
r(p.dele, 3)
r(p.quit)
"#,
    )
    .await;
    let (w, m2, m3) = (sizes[0], sizes[1], sizes[2]);
    let (i, uid) = (bob.inbox, |n: usize| before[n].0);
    let want = format!(
        "+OK Jmail POP3 ready
+OK capability list follows
  TOP
  UIDL
  USER
  RESP-CODES
  AUTH-RESP-CODE
  PIPELINING
  SASL PLAIN
  STLS
  IMPLEMENTATION Jmail
  (97 octets)
-ERR log in first
+OK mechanisms follow
  PLAIN
  (7 octets)
+OK send PASS
+OK bob has 3 messages ({total} octets)
(3, {total})
+OK 3 messages ({total} octets)
  1 {w}
  2 {m2}
  3 {m3}
  ({l} octets)
+OK 2 {m2}
-ERR no such message
+OK unique-id listing follows
  1 {i}.{u1}
  2 {i}.{u2}
  3 {i}.{u3}
  ({ul} octets)
+OK 3 {i}.{u3}
+OK top of message follows
{top2}
+OK top of message follows
{top3}
+OK {m2} octets
{retr2}
+OK
+OK message 2 deleted
-ERR message 2 already deleted
-ERR message 2 already deleted
-ERR message 2 already deleted
(2, {after})
+OK 2 messages ({after} octets)
  1 {w}
  3 {m3}
  ({l2} octets)
+OK 3 messages ({total} octets)
+OK 2 {m2}
+OK message 3 deleted
+OK Jmail POP3 signing off (1 messages deleted)",
        l = format!("1 {w}\r\n2 {m2}\r\n3 {m3}\r\n").len(),
        u1 = uid(0),
        u2 = uid(1),
        u3 = uid(2),
        ul = format!(
            "1 {i}.{}\r\n2 {i}.{}\r\n3 {i}.{}\r\n",
            uid(0),
            uid(1),
            uid(2)
        )
        .len(),
        top2 = shown_lines(b"From: alice@localhost\r\nSubject: two\r\n\r\nline 1\r\n"),
        top3 = shown_lines(b"Subject: three\r\n\r\n"),
        retr2 = shown_lines(M2),
        after = w + m3,
        l2 = format!("1 {w}\r\n3 {m3}\r\n").len(),
    );
    assert_output(&out, &want);
    // RETR marked message 2 seen, TOP left 3 unseen; QUIT removed only what was marked at that time.
    let after = inbox(&s, &bob).await;
    let kept: Vec<(u32, bool)> = after.iter().map(|m| (m.0, m.3)).collect();
    assert_eq!(kept, vec![(uid(0), false), (uid(1), true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_look_alike_and_close_at_the_limit() {
    let s = TestServer::start_pop3().await;
    s.add_user("alice", "wonderland").await;
    let out = pop3(
        &s,
        r#"
p = connect()
r(p.pass_, 'wonderland')
r(p.user, 'alice')
r(p.pass_, 'wrong')
r(p.user, 'ghost')
r(p.pass_, 'wrong')
r(p.user, 'alice@example.org')
r(p.pass_, 'wonderland')
r(p._getresp)                   # nothing more: the server has closed
for name in ['alice', 'ALICE@LOCALHOST', 'Alice@localhost']:
    q = connect()
    r(q.user, name)
    r(q.pass_, 'wonderland')
    r(q.quit)
"#,
    )
    .await;
    let want = "
-ERR send USER first
+OK send PASS
-ERR [AUTH] invalid user name or password
+OK send PASS
-ERR [AUTH] invalid user name or password
+OK send PASS
-ERR [AUTH] invalid user name or password
-ERR EOF
+OK send PASS
+OK alice has 1 messages
+OK Jmail POP3 signing off (0 messages deleted)
+OK send PASS
+OK alice has 1 messages
+OK Jmail POP3 signing off (0 messages deleted)
+OK send PASS
+OK alice has 1 messages
+OK Jmail POP3 signing off (0 messages deleted)";
    let alice = account(&s, "alice", "wonderland").await;
    let welcome = inbox(&s, &alice).await[0].1;
    let want = want.replace("1 messages", &format!("1 messages ({welcome} octets)"));
    assert_output(&out, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_plain_with_and_without_initial_response() {
    let s = TestServer::start_pop3().await;
    s.add_user("alice", "wonder land").await;
    s.add_user("bob", "pb").await;
    let out = pop3(
        &s,
        r#"
p = connect()
r(p._shortcmd, 'AUTH LOGIN')
r(p._shortcmd, 'AUTH PLAIN !!!notbase64')
r(p._shortcmd, 'AUTH PLAIN')
r(p._shortcmd, '*')
r(p._shortcmd, 'AUTH PLAIN')
r(p._shortcmd, 'bm90IHBsYWlu')
r(p._shortcmd, 'AUTH PLAIN ' + plain('bob', 'alice', 'wonder land'))
r(p._shortcmd, 'AUTH PLAIN ' + plain('', 'alice', 'wonder land'))
r(p.stat)
r(p._shortcmd, 'AUTH PLAIN ' + plain('', 'alice', 'wonder land'))
q = connect()
r(q._shortcmd, 'AUTH plain')
r(q._shortcmd, plain('bob', 'bob@localhost', 'pb'))
r(q.quit)
"#,
    )
    .await;
    let alice = account(&s, "alice", "wonder land").await;
    let bob = account(&s, "bob", "pb").await;
    let (a, b) = (inbox(&s, &alice).await[0].1, inbox(&s, &bob).await[0].1);
    let want = format!(
        "
-ERR unsupported mechanism; use PLAIN
-ERR response is not valid base64
+ 
-ERR authentication cancelled
+ 
-ERR response is not authzid NUL user NUL password in UTF-8
-ERR [AUTH] invalid user name or password
+OK alice has 1 messages ({a} octets)
(1, {a})
-ERR already logged in
+ 
+OK bob has 1 messages ({b} octets)
+OK Jmail POP3 signing off (0 messages deleted)"
    );
    assert_output(&out, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_apply_only_at_quit() {
    let s = TestServer::start_pop3().await;
    s.add_user("bob", "pb").await;
    deliver(&s, "bob", M2).await;
    deliver(&s, "bob", M3).await;
    let out = pop3(
        &s,
        r#"
p = login('bob', 'pb')
r(p.dele, 1)
r(p.dele, 2)
p.sock.close()                  # gone without QUIT: nothing is deleted
p = login('bob', 'pb')
r(p.stat)
r(p.dele, 2)
r(p.quit)
p = login('bob', 'pb')
r(p.stat)
r(p.top, 2, 0)
r(p.quit)
"#,
    )
    .await;
    let bob = account(&s, "bob", "pb").await;
    let left = inbox(&s, &bob).await;
    let (w, m3) = (left[0].1, left[1].1);
    let total = w + M2.len() as u64 + m3;
    let want = format!(
        "
+OK message 1 deleted
+OK message 2 deleted
({n}, {total})
+OK message 2 deleted
+OK Jmail POP3 signing off (1 messages deleted)
(2, {after})
+OK top of message follows
{top}
+OK Jmail POP3 signing off (0 messages deleted)",
        n = 3,
        after = w + m3,
        top = shown_lines(b"Subject: three\r\n\r\n"),
    );
    assert_output(&out, &want);
    assert_eq!(left.len(), 2);
    assert_eq!(left[1].2, M3);
    // The native protocol sees the same mailbox.
    let mut native = s.client("bob", "pb").await;
    let ids: Vec<u32> = native
        .list(0)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec![left[0].0, left[1].0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_match_retr_for_imported_bare_lf_mail() {
    let s = TestServer::start_pop3().await;
    s.add_user("bob", "pb").await;
    // mbox-style bytes: bare LF, a line that is a lone dot, one that starts with dots, no final line end.
    let raw = b"Message-ID: <lf@example.org>\nSubject: lf\n\nfirst\n.\n..two dots\nlast".to_vec();
    let message = NewMessage::new(
        raw.clone(),
        "x@example.org".into(),
        "lf".into(),
        Some("lf@example.org".into()),
        1_700_000_000_000_000,
    );
    s.store
        .import(ImportBatch {
            users: vec![],
            messages: vec![ImportedMessage {
                owner: "bob".into(),
                message,
                flags: 0,
            }],
            match_content: true,
        })
        .await
        .unwrap();
    let out = pop3(
        &s,
        r#"
p = login('bob', 'pb')
r(p.list, 2)
r(p.retr, 2)
r(p.top, 2, 2)
"#,
    )
    .await;
    let crlf = raw.len() + 6 + 2; // six bare LFs become CRLF; the last line gets one
    let want = format!(
        "
+OK 2 {crlf}
+OK {crlf} octets
  Message-ID: <lf@example.org>
  Subject: lf
  
  first
  .
  ..two dots
  last
  ({crlf} octets)
+OK top of message follows
{top}",
        top = shown_lines(b"Message-ID: <lf@example.org>\nSubject: lf\n\nfirst\n.\n"),
    );
    assert_output(&out, &want);
    // The stored bytes are untouched.
    let bob = account(&s, "bob", "pb").await;
    assert_eq!(inbox(&s, &bob).await[1].2, raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_v1_mail_is_retrieved_byte_for_byte() {
    let s = TestServer::start_pop3().await;
    s.add_user("alice", "wonderland").await;
    s.add_user("bob", "builder").await;
    let mut alice = s.client("alice", "wonderland").await;
    alice
        .send(
            &["bob".into()],
            "Dots",
            b".leading dot\r\nplain\r\n..two\r\n",
        )
        .await
        .unwrap();
    let mut v1 = V1::login(&s, "alice", "wonderland", false).await;
    v1.expect(b"1969").await;
    v1.mailbox().await;
    v1.send(b"(bob) hi from v1\\nsecond line").await;
    v1.mailbox().await;

    let mut bob = s.client("bob", "builder").await;
    let ids: Vec<u32> = bob
        .list(0)
        .await
        .unwrap()
        .messages
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids.len(), 3);
    let out = pop3(
        &s,
        r#"
p = login('bob', 'builder')
for n in (2, 3):
    resp, lines, octets = p.retr(n)
    print(resp.decode(), octets, (b'\r\n'.join(lines) + b'\r\n').hex())
p.quit()
"#,
    )
    .await;
    let mut want = String::new();
    for id in &ids[1..] {
        let raw = bob.read(*id).await.unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert!(raw.ends_with(b"\r\n"));
        want.push_str(&format!("+OK {0} octets {0} {hex}\n", raw.len()));
    }
    assert_output(&out, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_err_and_the_session_goes_on() {
    let s = TestServer::start_pop3().await;
    s.add_user("bob", "pb").await;
    let out = pop3(
        &s,
        r#"
p = connect()
p._putline(b'X' * 5000)
r(p._getresp)
r(p.noop)
p._putline(b'NO\0OP')
r(p._getresp)
p._putline(b'USER \xff')
r(p._getresp)
r(p._shortcmd, 'USER ' + 'b' * 300)
r(p._shortcmd, 'FROB')
r(p.user, 'bob')
r(p.pass_, 'pb')
r(p.noop)
r(p._shortcmd, 'RETR 0')
r(p._shortcmd, 'RETR -1')
r(p._shortcmd, 'RETR 99')
r(p._shortcmd, 'TOP 1')
r(p._shortcmd, 'STAT now')
r(p.user, 'bob')
r(p._shortcmd, 'STLS')
r(p.noop)
p._putline(b'NOOP\r\nNOOP')     # pipelined
r(p._getresp)
r(p._getresp)
p._putline(b'x' * 2000 + b'\nNOOP')
r(p._getresp)
r(p._getresp)
r(p.quit)
"#,
    )
    .await;
    let want = "
-ERR line too long
-ERR log in first
-ERR command contains a control character
-ERR command is not valid UTF-8
-ERR command line longer than 255 bytes
-ERR unknown command
+OK send PASS
+OK bob has 1 messages
+OK
-ERR expected a message number
-ERR expected a message number
-ERR no such message
-ERR expected TOP msg lines
-ERR this command takes no arguments
-ERR already logged in
-ERR STLS only before login, without TLS
+OK
+OK
+OK
-ERR line too long
+OK
+OK Jmail POP3 signing off (0 messages deleted)";
    let bob = account(&s, "bob", "pb").await;
    let w = inbox(&s, &bob).await[0].1;
    assert_output(
        &out,
        &want.replace("1 messages", &format!("1 messages ({w} octets)")),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_bad_commands_close_the_connection() {
    let s = TestServer::start_with(|c| {
        c.pop3_port = Some(0);
        c.limits.bad_commands_max = 3;
    })
    .await;
    let out = pop3(
        &s,
        r#"
p = connect()
r(p._shortcmd, 'FROB')
r(p.stat)
r(p._shortcmd, 'FROB')
r(p._getresp)                   # nothing more: the server has closed
"#,
    )
    .await;
    assert_output(
        &out,
        "
-ERR unknown command
-ERR log in first
-ERR too many bad commands; closing
-ERR EOF",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_keep_their_snapshots_and_survive_abrupt_disconnects() {
    let s = TestServer::start_pop3().await;
    s.add_user("alice", "pa").await;
    s.add_user("bob", "pb").await;
    deliver(&s, "bob", M2).await;
    let bob = account(&s, "bob", "pb").await;
    let w = inbox(&s, &bob).await[0].1;
    let out = pop3(
        &s,
        r#"
a = login('bob', 'pb')
r(a.stat)
# A session that vanishes in the middle of its commands deletes nothing.
c = login('bob', 'pb')
c._putline(b'DELE 1')
c.sock.sendall(b'RETR 2\r\nQUI')
c.sock.close()
print(native_send('alice', 'pa', 'bob', b'third\r\n'))
b = login('bob', 'pb')
r(b.stat)
r(b.dele, 1)
r(b.quit)
r(a.stat)
r(a.retr, 1)
r(a.dele, 2)
r(a.quit)
d = login('bob', 'pb')
r(d.stat)
r(d.quit)
"#,
    )
    .await;
    let all = inbox(&s, &bob).await;
    assert_eq!(all.len(), 1, "only the third message is left");
    let (m2, m3) = (M2.len() as u64, all[0].1);
    let want = format!(
        "
(2, {before})
OK SENT 1
(3, {now})
+OK message 1 deleted
+OK Jmail POP3 signing off (1 messages deleted)
(2, {before})
-ERR message 1 was deleted by another session
+OK message 2 deleted
+OK Jmail POP3 signing off (1 messages deleted)
(1, {m3})
+OK Jmail POP3 signing off (0 messages deleted)",
        before = w + m2,
        now = w + m2 + m3,
    );
    assert_output(&out, &want);
}
