//! IMAP over real sockets: exact responses for every command (a client of the test's own that reads
//! literals), two sessions on one mailbox (EXPUNGE and flag news, the rule that no EXPUNGE is sent
//! during FETCH, STORE or SEARCH), IDLE woken by other sessions and other protocols, large messages
//! byte for byte, the plaintext-password rule, and bad input.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jmail::server::Service;
use jmail::store::{AccountStore, MailStore, NewMessage, flags};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::harness::{REPLY_WAIT, TestServer};

/// A test's IMAP connection: sends commands and reads responses, literals included.
pub struct Imap {
    stream: BufReader<TcpStream>,
}

impl Imap {
    /// Connects and returns the greeting line.
    pub async fn connect(addr: SocketAddr) -> (Imap, String) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut imap = Imap {
            stream: BufReader::new(stream),
        };
        let greeting = imap.line().await;
        (imap, greeting)
    }

    /// Connects and logs in.
    pub async fn login(addr: SocketAddr, user: &str, password: &str) -> Imap {
        let (mut imap, _) = Imap::connect(addr).await;
        let done = imap.run(&format!("L LOGIN {user} {password}")).await;
        assert!(done.last().unwrap().starts_with("L OK "), "{done:?}");
        imap
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.unwrap();
    }

    /// One response line; a literal it announces is read too and appended after the line's CRLF, so
    /// a response is one string however it was split.
    pub async fn line(&mut self) -> String {
        let mut out = Vec::new();
        loop {
            let mut raw = Vec::new();
            let n = tokio::time::timeout(REPLY_WAIT, self.stream.read_until(b'\n', &mut raw))
                .await
                .expect("response in time")
                .unwrap();
            assert!(n > 0, "connection closed while a response was expected");
            assert!(raw.ends_with(b"\r\n"), "{raw:?} does not end in CRLF");
            out.extend_from_slice(&raw);
            let text = String::from_utf8_lossy(&raw);
            let literal = text
                .trim_end_matches("\r\n")
                .strip_suffix('}')
                .and_then(|t| t.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok());
            match literal {
                Some(len) => {
                    let mut bytes = vec![0; len];
                    tokio::time::timeout(REPLY_WAIT, self.stream.read_exact(&mut bytes))
                        .await
                        .expect("literal in time")
                        .unwrap();
                    out.extend_from_slice(&bytes);
                }
                None => break,
            }
        }
        let text = String::from_utf8(out).expect("UTF-8 responses in these tests");
        text.strip_suffix("\r\n").unwrap().to_string()
    }

    /// [`Imap::run`] as the bytes sent back, for responses that are not UTF-8.
    pub async fn run_bytes(&mut self, command: &str) -> Vec<u8> {
        let tag = command.split(' ').next().unwrap().to_string();
        self.send(format!("{command}\r\n").as_bytes()).await;
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let n = tokio::time::timeout(REPLY_WAIT, self.stream.read_until(b'\n', &mut out))
                .await
                .expect("response in time")
                .unwrap();
            assert!(n > 0, "connection closed while a response was expected");
            if out[start..].starts_with(format!("{tag} ").as_bytes()) {
                return out;
            }
        }
    }

    /// Sends `command` (tag first) and returns every response up to and including the tagged one.
    pub async fn run(&mut self, command: &str) -> Vec<String> {
        let tag = command.split(' ').next().unwrap().to_string();
        self.send(format!("{command}\r\n").as_bytes()).await;
        self.until(&tag).await
    }

    /// Responses up to and including the one tagged `tag`.
    pub async fn until(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// True when the server closes the connection (after any remaining bytes, which are returned).
    pub async fn closed(&mut self) -> (bool, Vec<u8>) {
        let mut rest = Vec::new();
        let r = tokio::time::timeout(REPLY_WAIT, self.stream.read_to_end(&mut rest)).await;
        (r.is_ok(), rest)
    }
}

pub async fn start_imap() -> TestServer {
    TestServer::start_with(|c| c.imap_port = Some(0)).await
}

pub fn imap_addr(s: &TestServer) -> SocketAddr {
    s.addr_of(Service::Imap)
}

/// Makes a user without the welcome message, so mailboxes hold exactly what a test puts there.
pub async fn bare_user(s: &TestServer, name: &str, password: &str) {
    let hash = jmail::auth::hash_password(password);
    s.store.create_user(name, &hash, None).await.unwrap();
}

/// Delivers `raw` to `to`'s INBOX with a fixed arrival time (2023-11-14 22:13:20 UTC).
pub async fn deliver(s: &TestServer, to: &str, raw: &[u8]) {
    let (from, subject, message_id, _) = jmail::message::summarize(raw);
    let message = NewMessage::new(
        raw.to_vec(),
        from,
        subject,
        message_id,
        1_700_000_000_000_000,
    );
    s.store
        .deliver(&[to.to_string()], message, None)
        .await
        .unwrap();
}

const HELLO: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@localhost\r\nSubject: hello\r\n\
Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nHi Bob.\r\n";
const SECOND: &[u8] = b"From: carol@example.org\r\nSubject: second\r\n\r\nline one\r\nline two\r\n";

pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const CAPS_BEFORE: &str = "IMAP4rev1 IMAP4rev2 STARTTLS AUTH=PLAIN AUTH=LOGIN SASL-IR LITERAL+ ID \
ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CONDSTORE QRESYNC SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES BINARY QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE STATUS=SIZE UTF8=ACCEPT COMPRESS=DEFLATE APPENDLIMIT=10485760";
const CAPS_AFTER: &str = "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT \
UIDPLUS MOVE CONDSTORE QRESYNC SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES BINARY QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE STATUS=SIZE UTF8=ACCEPT COMPRESS=DEFLATE APPENDLIMIT=10485760";

#[tokio::test]
async fn a_rev1_session_with_exact_responses() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", HELLO).await;
    deliver(&s, "bob", SECOND).await;
    let (mut c, greeting) = Imap::connect(imap_addr(&s)).await;
    assert_eq!(
        greeting,
        format!("* OK [CAPABILITY {CAPS_BEFORE}] Jmail IMAP ready")
    );
    assert_eq!(
        c.run("a CAPABILITY").await,
        strs(&[
            &format!("* CAPABILITY {CAPS_BEFORE}"),
            "a OK CAPABILITY completed"
        ])
    );
    assert_eq!(c.run("b SELECT INBOX").await, strs(&["b BAD Log in first"]));
    assert_eq!(
        c.run("c LOGIN bob wrong").await,
        strs(&["c NO [AUTHENTICATIONFAILED] Invalid credentials"])
    );
    assert_eq!(
        c.run("d LOGIN Bob bob-password").await,
        strs(&[&format!("d OK [CAPABILITY {CAPS_AFTER}] Logged in")])
    );
    assert_eq!(
        c.run("e SELECT inbox").await,
        strs(&[
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted",
            "* 2 EXISTS",
            "* 2 RECENT",
            "* OK [UNSEEN 1] First unseen message",
            "* OK [UIDVALIDITY 1] UIDs valid",
            "* OK [UIDNEXT 3] Predicted next UID",
            "* OK [HIGHESTMODSEQ 2] Highest",
            "e OK [READ-WRITE] SELECT completed",
        ])
    );
    assert_eq!(
        c.run("f FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE)").await,
        strs(&[
            &format!(
                "* 1 FETCH (FLAGS (\\Recent) RFC822.SIZE {} INTERNALDATE \"14-Nov-2023 22:13:20 +0000\")",
                HELLO.len()
            ),
            &format!(
                "* 2 FETCH (FLAGS (\\Recent) RFC822.SIZE {} INTERNALDATE \"14-Nov-2023 22:13:20 +0000\")",
                SECOND.len()
            ),
            "f OK FETCH completed",
        ])
    );
    assert_eq!(
        c.run("g FETCH 1 (ENVELOPE BODY)").await,
        strs(&[
            "* 1 FETCH (ENVELOPE (\"Tue, 14 Nov 2023 22:13:20 +0000\" \"hello\" ((\"Alice\" NIL \"alice\" \"example.org\")) \
((\"Alice\" NIL \"alice\" \"example.org\")) ((\"Alice\" NIL \"alice\" \"example.org\")) ((NIL NIL \"bob\" \"localhost\")) \
NIL NIL NIL \"<1@example.org>\") BODY (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 9 1))",
            "g OK FETCH completed",
        ])
    );
    // BODY[] without PEEK sets \Seen and says so.
    assert_eq!(
        c.run("h UID FETCH 2 (BODY[])").await,
        strs(&[
            &format!(
                "* 2 FETCH (UID 2 BODY[] {{{}}}\r\n{} FLAGS (\\Seen \\Recent))",
                SECOND.len(),
                String::from_utf8_lossy(SECOND)
            ),
            "h OK FETCH completed",
        ])
    );
    assert_eq!(
        c.run("i FETCH 2 (BODY.PEEK[HEADER.FIELDS (subject)] BODY.PEEK[TEXT]<5.100>)")
            .await,
        strs(&[
            "* 2 FETCH (BODY[HEADER.FIELDS (subject)] {19}\r\nSubject: second\r\n\r\n BODY[TEXT]<5> {15}\r\none\r\nline two\r\n)",
            "i OK FETCH completed",
        ])
    );
    assert_eq!(
        c.run("j STORE 1 +FLAGS (\\Flagged $Work)").await,
        strs(&[
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Flags permitted",
            "* 1 FETCH (FLAGS (\\Flagged \\Recent $Work))",
            "j OK STORE completed"
        ])
    );
    assert_eq!(
        c.run("k SEARCH UNSEEN").await,
        strs(&["* SEARCH 1", "k OK SEARCH completed"])
    );
    // Both messages are \Recent to this session, the first session to see them (RFC 3501 §2.3.2).
    assert_eq!(
        c.run("k2 SEARCH NEW").await,
        strs(&["* SEARCH 1", "k2 OK SEARCH completed"])
    );
    assert_eq!(
        c.run("k3 SEARCH OLD").await,
        strs(&["* SEARCH", "k3 OK SEARCH completed"])
    );
    assert_eq!(
        c.run("l UID SEARCH OR KEYWORD $work SUBJECT second").await,
        strs(&["* SEARCH 1 2", "l OK SEARCH completed"])
    );
    assert_eq!(
        c.run("m SEARCH CHARSET KOI8-R ALL").await,
        strs(&["m NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"])
    );
    assert_eq!(
        c.run("n STORE 1 +FLAGS.SILENT (\\Deleted)").await,
        strs(&["n OK STORE completed"])
    );
    assert_eq!(
        c.run("o EXPUNGE").await,
        strs(&["* 1 EXPUNGE", "o OK EXPUNGE completed"])
    );
    assert_eq!(
        c.run("p FETCH 1 (UID FLAGS)").await,
        strs(&[
            "* 1 FETCH (UID 2 FLAGS (\\Seen \\Recent))",
            "p OK FETCH completed"
        ])
    );
    assert_eq!(
        c.run("q FETCH 2 FLAGS").await,
        strs(&["q BAD Invalid sequence number"])
    );
    // To any later session, they are not recent any more.
    let mut later = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    let selected = later.run("a SELECT INBOX").await;
    assert!(selected.contains(&"* 0 RECENT".to_string()), "{selected:?}");
    assert_eq!(
        later.run("b FETCH 1 FLAGS").await,
        strs(&["* 1 FETCH (FLAGS (\\Seen))", "b OK FETCH completed"])
    );
    assert_eq!(
        later.run("c SEARCH RECENT").await,
        strs(&["* SEARCH", "c OK SEARCH completed"])
    );
    assert_eq!(
        c.run("r LOGOUT").await,
        strs(&["* BYE Logging out", "r OK LOGOUT completed"])
    );
    assert!(c.closed().await.0);
    // The store agrees: one message left, seen.
    let bob = jmail::accounts::authenticate(s.store.as_ref(), "bob", "bob-password")
        .await
        .unwrap()
        .unwrap();
    let snapshot = s.store.snapshot(bob.inbox).await.unwrap();
    assert_eq!(snapshot.messages, vec![(2, flags::SEEN)]);
}

/// An APPEND's date keeps its zone: INTERNALDATE comes back as given, a copy keeps it, and SEARCH
/// BEFORE/ON/SINCE take the date in that zone (RFC 9051 §6.4.4: "disregarding time and timezone").
#[tokio::test]
async fn appended_dates_keep_their_zone() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    // 00:30 on the 25th at +0200 is still the 24th in UTC; 23:30 on the 24th at -0500 is the 25th.
    for (tag, date) in [
        ("a", "25-Mar-2007 00:30:00 +0200"),
        ("b", "24-Mar-2007 23:30:00 -0500"),
    ] {
        c.send(format!("{tag} APPEND INBOX \"{date}\" {{5}}\r\n").as_bytes())
            .await;
        assert_eq!(c.line().await, "+ Ready for literal data");
        c.send(b"hello\r\n").await;
        assert!(c.until(tag).await.last().unwrap().contains("OK [APPENDUID"));
    }
    c.run("c SELECT INBOX").await;
    assert_eq!(
        c.run("d FETCH 1:2 INTERNALDATE").await,
        strs(&[
            "* 1 FETCH (INTERNALDATE \"25-Mar-2007 00:30:00 +0200\")",
            "* 2 FETCH (INTERNALDATE \"24-Mar-2007 23:30:00 -0500\")",
            "d OK FETCH completed"
        ])
    );
    assert_eq!(
        c.run("e SEARCH ON 25-Mar-2007").await,
        strs(&["* SEARCH 1", "e OK SEARCH completed"])
    );
    assert_eq!(
        c.run("f SEARCH BEFORE 25-Mar-2007").await,
        strs(&["* SEARCH 2", "f OK SEARCH completed"])
    );
    assert_eq!(
        c.run("g SEARCH SINCE 25-Mar-2007").await,
        strs(&["* SEARCH 1", "g OK SEARCH completed"])
    );
    c.run("h COPY 1:2 Archive").await;
    c.run("i SELECT Archive").await;
    assert_eq!(
        c.run("j FETCH 1:2 INTERNALDATE").await,
        strs(&[
            "* 1 FETCH (INTERNALDATE \"25-Mar-2007 00:30:00 +0200\")",
            "* 2 FETCH (INTERNALDATE \"24-Mar-2007 23:30:00 -0500\")",
            "j OK FETCH completed"
        ])
    );
}

#[tokio::test]
async fn mailboxes_list_status_append_copy_move() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", HELLO).await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    assert_eq!(
        c.run("a CREATE Work/Projects/").await,
        strs(&["a OK CREATE completed"])
    );
    assert_eq!(
        c.run("b CREATE work/projects").await[0],
        "b OK CREATE completed",
        "names are case-sensitive but INBOX"
    );
    assert_eq!(
        c.run("c CREATE INBOX").await,
        strs(&["c NO [ALREADYEXISTS] Mailbox exists"])
    );
    assert_eq!(
        c.run("d LIST \"\" %").await,
        strs(&[
            "* LIST (\\HasNoChildren \\Archive) \"/\" \"Archive\"",
            "* LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"",
            "* LIST (\\HasNoChildren) \"/\" \"INBOX\"",
            "* LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"",
            "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"",
            "* LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"",
            "* LIST (\\HasChildren) \"/\" \"Work\"",
            "* LIST (\\HasChildren) \"/\" \"work\"",
            "d OK LIST completed",
        ])
    );
    assert_eq!(
        c.run("e LIST Work/ *").await,
        strs(&[
            "* LIST (\\HasNoChildren) \"/\" \"Work/Projects\"",
            "e OK LIST completed"
        ])
    );
    assert_eq!(
        c.run("f LIST \"\" \"\"").await,
        strs(&["* LIST (\\Noselect) \"/\" \"\"", "f OK LIST completed"])
    );
    // A rev1 client's names are modified UTF-7.
    assert_eq!(
        c.run("g CREATE \"Entw&APw-rfe\"").await,
        strs(&["g OK CREATE completed"])
    );
    assert_eq!(
        c.run("h LIST \"\" Entw*").await,
        strs(&[
            "* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe\"",
            "h OK LIST completed"
        ])
    );
    assert_eq!(
        c.run("i CREATE \"Bad&-x&\"").await,
        strs(&["i NO Mailbox name is not modified UTF-7 (RFC 3501 5.1.3)"])
    );
    let appended = b"Subject: draft\r\n\r\nunfinished\r\n";
    c.send(
        format!(
            "j APPEND Drafts (\\Draft $Later) \"05-Jan-2024 10:00:00 +0100\" {{{}}}\r\n",
            appended.len()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(c.line().await, "+ Ready for literal data");
    c.send(appended).await;
    c.send(b"\r\n").await;
    assert_eq!(
        c.until("j").await,
        strs(&["j OK [APPENDUID 3 1] APPEND completed"])
    );
    assert_eq!(
        c.run("k STATUS Drafts (MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE RECENT DELETED)")
            .await,
        strs(&[
            &format!(
                "* STATUS \"Drafts\" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3 UNSEEN 1 SIZE {} RECENT 1 DELETED 0)",
                appended.len()
            ),
            "k OK STATUS completed",
        ])
    );
    assert_eq!(
        c.run("l APPEND Nowhere {3+}\r\nabc").await,
        strs(&["l NO [TRYCREATE] No such mailbox"])
    );
    assert_eq!(
        c.run("m EXAMINE Drafts").await.last().unwrap(),
        "m OK [READ-ONLY] EXAMINE completed"
    );
    assert_eq!(
        c.run("n FETCH 1 (FLAGS INTERNALDATE)").await,
        strs(&[
            "* 1 FETCH (FLAGS (\\Draft \\Recent $Later) INTERNALDATE \"05-Jan-2024 10:00:00 +0100\")",
            "n OK FETCH completed"
        ])
    );
    assert_eq!(
        c.run("o STORE 1 +FLAGS (\\Seen)").await,
        strs(&["o NO [READ-ONLY] Mailbox is read-only"])
    );
    let select = c.run("p SELECT INBOX").await;
    assert_eq!(select[0], "* OK [CLOSED] Previous mailbox closed");
    assert_eq!(
        c.run("q COPY 1 Work/Projects").await,
        strs(&["q OK [COPYUID 8 1 1] COPY completed"])
    );
    assert_eq!(
        c.run("r MOVE 1 Archive").await,
        strs(&[
            "* OK [COPYUID 6 1 1] Moved",
            "* 1 EXPUNGE",
            "r OK MOVE completed"
        ])
    );
    assert_eq!(
        c.run("s COPY 1 Work").await,
        strs(&["s BAD Invalid sequence number"])
    );
    // CREATE subscribes nothing: the client does.
    assert_eq!(
        c.run("t0 LSUB \"\" Work/*").await,
        strs(&["t0 OK LSUB completed"])
    );
    c.run("t1 SUBSCRIBE Work/Projects").await;
    assert_eq!(
        c.run("t RENAME Work Play").await,
        strs(&["t OK RENAME completed"])
    );
    assert_eq!(
        c.run("u LSUB \"\" Play/*").await,
        strs(&[
            "* LSUB (\\HasNoChildren) \"/\" \"Play/Projects\"",
            "u OK LSUB completed"
        ])
    );
    assert_eq!(
        c.run("v UNSUBSCRIBE Play/Projects").await,
        strs(&["v OK UNSUBSCRIBE completed"])
    );
    assert_eq!(
        c.run("w LSUB \"\" Play/*").await,
        strs(&["w OK LSUB completed"])
    );
    // RFC 3501 §6.3.9: `%` passes over a subscribed child; its unsubscribed parent stands in, \Noselect.
    c.run("w1 SUBSCRIBE Play/Projects").await;
    c.run("w2 UNSUBSCRIBE Play").await;
    assert_eq!(
        c.run("w3 LSUB \"\" P%").await,
        strs(&["* LSUB (\\Noselect) \"/\" \"Play\"", "w3 OK LSUB completed"])
    );
    c.run("w4 UNSUBSCRIBE Play/Projects").await;
    assert_eq!(
        c.run("x DELETE Play/Projects").await,
        strs(&["x OK DELETE completed"])
    );
    assert_eq!(
        c.run("y DELETE INBOX").await,
        strs(&["y NO [CANNOT] INBOX cannot be deleted"])
    );
    assert_eq!(
        c.run("z NAMESPACE").await,
        strs(&[
            "* NAMESPACE ((\"\" \"/\")) NIL NIL",
            "z OK NAMESPACE completed"
        ])
    );
}

#[tokio::test]
async fn rev2_gets_utf8_names_esearch_and_no_recent() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", HELLO).await;
    deliver(&s, "bob", SECOND).await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    assert_eq!(
        c.run("a ENABLE IMAP4rev2 CONDSTORE").await,
        strs(&["* ENABLED IMAP4rev2 CONDSTORE", "a OK ENABLE completed"])
    );
    assert_eq!(
        c.run("b CREATE \"Entwürfe\"").await,
        strs(&["b OK CREATE completed"])
    );
    c.run("b1 SUBSCRIBE \"Entwürfe\"").await;
    assert_eq!(
        c.run("c LIST \"\" Entw*").await,
        strs(&[
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Entwürfe\"",
            "c OK LIST completed"
        ])
    );
    assert_eq!(
        c.run("d SELECT INBOX").await,
        strs(&[
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted",
            "* 2 EXISTS",
            "* OK [UIDVALIDITY 1] UIDs valid",
            "* OK [UIDNEXT 3] Predicted next UID",
            "* OK [HIGHESTMODSEQ 2] Highest",
            "* LIST () \"/\" \"INBOX\"",
            "d OK [READ-WRITE] SELECT completed",
        ])
    );
    assert_eq!(
        c.run("e SEARCH ALL").await,
        strs(&["* ESEARCH (TAG \"e\") ALL 1:2", "e OK SEARCH completed"])
    );
    assert_eq!(
        c.run("f UID SEARCH SEEN").await,
        strs(&["* ESEARCH (TAG \"f\") UID", "f OK SEARCH completed"])
    );
    assert_eq!(
        c.run("g STORE 2 +FLAGS (\\Answered)").await,
        strs(&[
            // CONDSTORE is on: UID and MODSEQ in every FETCH a STORE causes (RFC 7162 §3.1).
            "* 2 FETCH (FLAGS (\\Answered) UID 2 MODSEQ (3))",
            "g OK STORE completed"
        ])
    );
    assert_eq!(
        c.run("h STORE 1:2 (UNCHANGEDSINCE 2) +FLAGS (\\Seen)")
            .await,
        strs(&[
            "* 1 FETCH (FLAGS (\\Seen) UID 1 MODSEQ (4))",
            "h OK [MODIFIED 2] Conditional STORE failed for some messages"
        ])
    );
    assert_eq!(
        c.run("i FETCH 1:* (FLAGS) (CHANGEDSINCE 3)").await,
        strs(&[
            "* 1 FETCH (FLAGS (\\Seen) MODSEQ (4))",
            "i OK FETCH completed"
        ])
    );
    assert_eq!(
        c.run("j SEARCH MODSEQ 4").await,
        strs(&[
            "* ESEARCH (TAG \"j\") ALL 1 MODSEQ 4",
            "j OK SEARCH completed"
        ])
    );
}

#[tokio::test]
async fn qresync_reports_vanished_and_changes_since() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    for _ in 0..4 {
        deliver(&s, "bob", SECOND).await;
    }
    let addr = imap_addr(&s);
    let mut other = Imap::login(addr, "bob", "bob-password").await;
    other.run("a SELECT INBOX").await;
    other.run("b STORE 2 +FLAGS.SILENT (\\Deleted)").await;
    other.run("c EXPUNGE").await;
    other.run("d STORE 3 +FLAGS.SILENT (\\Flagged)").await;
    // Modseqs: 1-4 arrivals, 5 the \Deleted, 6 the expunge, 7 the \Flagged.
    let mut c = Imap::login(addr, "bob", "bob-password").await;
    assert_eq!(
        c.run("e ENABLE QRESYNC").await,
        strs(&["* ENABLED QRESYNC", "e OK ENABLE completed"])
    );
    let select = c.run("f SELECT INBOX (QRESYNC (1 4))").await;
    assert_eq!(
        select[select.len() - 3..],
        strs(&[
            "* VANISHED (EARLIER) 2",
            "* 3 FETCH (UID 4 FLAGS (\\Flagged) MODSEQ (7))",
            "f OK [READ-WRITE] SELECT completed",
        ])
    );
    other.run("g STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    other.run("h EXPUNGE").await;
    assert_eq!(
        c.run("i NOOP").await,
        strs(&["* VANISHED 1", "i OK NOOP completed"])
    );
    assert_eq!(
        c.run("j UID FETCH 1:* (FLAGS) (CHANGEDSINCE 4 VANISHED)")
            .await,
        strs(&[
            "* VANISHED (EARLIER) 1:2",
            "* 2 FETCH (UID 4 FLAGS (\\Flagged) MODSEQ (7))",
            "j OK FETCH completed"
        ])
    );
    // Its own EXPUNGE: VANISHED, and the tagged OK names the modseq past it (as Dovecot does).
    c.run("k STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(
        c.run("l EXPUNGE").await,
        strs(&["* VANISHED 3", "l OK [HIGHESTMODSEQ 11] EXPUNGE completed"])
    );
}

#[tokio::test]
async fn two_sessions_hear_of_each_other_in_order() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    for _ in 0..3 {
        deliver(&s, "bob", SECOND).await;
    }
    let addr = imap_addr(&s);
    let mut a = Imap::login(addr, "bob", "bob-password").await;
    let mut b = Imap::login(addr, "bob", "bob-password").await;
    a.run("a1 SELECT INBOX").await;
    b.run("b1 SELECT INBOX").await;
    b.run("b2 STORE 1 +FLAGS (\\Deleted \\Seen)").await;
    b.run("b3 EXPUNGE").await;
    b.run("b4 STORE 2 +FLAGS (\\Flagged)").await;
    // No EXPUNGE during FETCH, STORE or SEARCH: message 1 is still 1 for `a`. Its UID is still
    // known (RFC 2180 §4.1.3); its data is not.
    assert_eq!(
        a.run("a2 FETCH 1:3 (UID)").await,
        strs(&[
            "* 3 FETCH (FLAGS (\\Flagged \\Recent))",
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 2)",
            "* 3 FETCH (UID 3)",
            "a2 OK FETCH completed",
        ])
    );
    assert_eq!(
        a.run("a2b FETCH 1:2 (UID FLAGS)").await,
        strs(&[
            "* 2 FETCH (UID 2 FLAGS (\\Recent))",
            "a2b NO [EXPUNGEISSUED] Some of the requested messages no longer exist",
        ])
    );
    assert_eq!(
        a.run("a3 SEARCH ALL").await,
        strs(&["* SEARCH 2 3", "a3 OK SEARCH completed"])
    );
    assert_eq!(
        a.run("a4 NOOP").await,
        strs(&["* 1 EXPUNGE", "a4 OK NOOP completed"])
    );
    assert_eq!(
        a.run("a5 FETCH 1:* (UID FLAGS)").await,
        strs(&[
            "* 1 FETCH (UID 2 FLAGS (\\Recent))",
            "* 2 FETCH (UID 3 FLAGS (\\Flagged \\Recent))",
            "a5 OK FETCH completed"
        ])
    );
    // UID commands may carry EXPUNGE.
    b.run("b5 STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    b.run("b6 EXPUNGE").await;
    assert_eq!(
        a.run("a6 UID FETCH 3 (FLAGS)").await,
        strs(&[
            "* 1 EXPUNGE",
            "* 1 FETCH (UID 3 FLAGS (\\Flagged \\Recent))",
            "a6 OK FETCH completed"
        ])
    );
}

#[tokio::test]
async fn idle_hears_other_sessions_and_other_protocols_at_once() {
    let s = TestServer::start_with(|c| {
        c.imap_port = Some(0);
        c.smtp_port = Some(0);
    })
    .await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", SECOND).await;
    let addr = imap_addr(&s);
    let mut idler = Imap::login(addr, "bob", "bob-password").await;
    idler.run("a SELECT INBOX").await;
    idler.send(b"b IDLE\r\n").await;
    assert_eq!(idler.line().await, "+ idling");

    // Mail by SMTP.
    let started = Instant::now();
    let smtp = s.addr_of(Service::Smtp);
    let mut m = crate::harness::Raw::plain(smtp).await;
    m.expect_prefix("220 ").await;
    m.send(b"HELO t\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n")
        .await;
    for _ in 0..4 {
        m.line().await;
    }
    m.send(b"Subject: by smtp\r\n\r\nhi\r\n.\r\n").await;
    m.expect_prefix("250 ").await;
    assert_eq!(idler.line().await, "* 2 EXISTS");
    // The first message when it selected, the new one when IDLE told of it: both recent to it.
    assert_eq!(idler.line().await, "* 2 RECENT");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A flag change and an expunge by another IMAP session.
    let mut other = Imap::login(addr, "bob", "bob-password").await;
    other.run("c SELECT INBOX").await;
    other.run("d STORE 2 +FLAGS (\\Flagged)").await;
    assert_eq!(idler.line().await, "* 2 FETCH (FLAGS (\\Flagged \\Recent))");
    other.run("e STORE 1 +FLAGS (\\Deleted)").await;
    other.run("f EXPUNGE").await;
    let mut lines = vec![idler.line().await];
    if lines[0].contains("FETCH") {
        lines.push(idler.line().await);
    }
    assert_eq!(lines.last().unwrap(), "* 1 EXPUNGE");

    // Mail delivered by another process's kind of write (straight to the store).
    deliver(&s, "bob", HELLO).await;
    assert_eq!(idler.line().await, "* 2 EXISTS");
    assert_eq!(idler.line().await, "* 2 RECENT");
    idler.send(b"DONE\r\n").await;
    assert_eq!(idler.line().await, "b OK IDLE terminated");
    assert_eq!(
        idler.run("g FETCH 1:* (UID)").await,
        strs(&[
            "* 1 FETCH (UID 2)",
            "* 2 FETCH (UID 3)",
            "g OK FETCH completed"
        ])
    );
}

#[tokio::test]
async fn large_messages_round_trip_byte_for_byte() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let mut raw = b"Subject: big\r\nContent-Type: multipart/mixed; boundary=xx\r\n\r\n--xx\r\n\
Content-Type: text/plain\r\n\r\nsmall part\r\n--xx\r\nContent-Type: application/octet-stream\r\n\r\n"
        .to_vec();
    for i in 0..40_000u32 {
        raw.extend_from_slice(
            format!("{i:08} abcdefghijklmnopqrstuvwxyz0123456789\r\n").as_bytes(),
        );
    }
    raw.extend_from_slice(b"--xx--\r\n");
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.send(format!("a APPEND INBOX {{{}+}}\r\n", raw.len()).as_bytes())
        .await;
    c.send(&raw).await;
    c.send(b"\r\n").await;
    assert_eq!(
        c.until("a").await,
        strs(&["a OK [APPENDUID 1 1] APPEND completed"])
    );
    c.run("b SELECT INBOX").await;
    let got = c.run("c FETCH 1 (BODY.PEEK[])").await;
    let want_head = format!("* 1 FETCH (BODY[] {{{}}}\r\n", raw.len());
    assert!(got[0].starts_with(&want_head));
    assert_eq!(
        got[0].as_bytes()[want_head.len()..got[0].len() - 1],
        raw[..],
        "bytes as stored"
    );
    // A search reads a message too large to come with the listing by itself.
    c.send(b"s APPEND INBOX {28+}\r\nSubject: small\r\n\r\n00039999\r\n\r\n")
        .await;
    c.until("s").await;
    assert_eq!(
        c.run("t SEARCH BODY \"SMALL PART\"").await,
        strs(&["* SEARCH 1", "t OK SEARCH completed"])
    );
    assert_eq!(
        c.run("u UID SEARCH OR TEXT 00039999 SUBJECT big").await,
        strs(&["* SEARCH 1 2", "u OK SEARCH completed"])
    );
    let got = c
        .run("d FETCH 1 (BODY.PEEK[2]<1000.20> BODY.PEEK[1] BODY.PEEK[2.MIME])")
        .await;
    let part2 = raw.windows(9).position(|w| w == b"00000000 ").unwrap();
    assert_eq!(
        got[0],
        format!(
            "* 1 FETCH (BODY[2]<1000> {{20}}\r\n{} BODY[1] {{10}}\r\nsmall part BODY[2.MIME] {{42}}\r\n\
Content-Type: application/octet-stream\r\n\r\n)",
            String::from_utf8_lossy(&raw[part2 + 1000..part2 + 1020])
        )
    );
}

#[tokio::test]
async fn login_needs_tls_off_loopback_and_bad_input_gets_bad() {
    use jmail_proto::imap::{Decoder, Limits};
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    // Off loopback without TLS: LOGINDISABLED, and LOGIN refused (the session, with a remote peer).
    let mut session = jmail::imap::Session::new(
        s.store.clone(),
        Arc::new(s.config.clone()),
        jmail::throttle::LoginThrottle::system(),
        "203.0.113.9:5000".parse().unwrap(),
        false,
        Arc::new(tokio::sync::Semaphore::new(1)),
        Arc::new(jmail::caps::InputBudget::new(1 << 20)),
    );
    let mut decoder = Decoder::new(Limits {
        line_bytes_max: 8192,
        literal_bytes_max: 8192,
        command_bytes_max: 16384,
    });
    let greeting = String::from_utf8(session.greeting()).unwrap();
    assert!(greeting.contains(" LOGINDISABLED "), "{greeting}");
    assert!(!greeting.contains("AUTH=PLAIN"), "{greeting}");
    for (input, want) in [
        (
            &b"a LOGIN bob bob-password\r\n"[..],
            "a NO [PRIVACYREQUIRED] LOGIN is disabled without TLS; use STARTTLS\r\n",
        ),
        (
            b"b AUTHENTICATE PLAIN AGJvYgBib2ItcGFzc3dvcmQ=\r\n",
            "b NO [PRIVACYREQUIRED] Authentication is disabled without TLS; use STARTTLS\r\n",
        ),
        (b"c STARTTLS\r\n", "c OK Begin TLS negotiation now\r\n"),
    ] {
        let (_, event) = decoder.decode(input);
        let reply = session.on_event(event.unwrap()).await.reply;
        assert_eq!(String::from_utf8(reply).unwrap(), want);
    }

    // Over the socket: bad commands get BAD and the session goes on; too many close it.
    let (mut c, _) = Imap::connect(imap_addr(&s)).await;
    assert_eq!(
        c.run("a FROB").await,
        strs(&["a BAD Syntax error or unknown command"])
    );
    assert_eq!(
        c.run("b LOGIN {9000}").await,
        strs(&["b NO [TOOBIG] Literal of 9000 bytes is too large"])
    );
    assert_eq!(
        c.run("c AUTHENTICATE PLAIN AGJvYgBib2ItcGFzc3dvcmQ=").await,
        strs(&[&format!("c OK [CAPABILITY {CAPS_AFTER}] Logged in")])
    );
    assert_eq!(
        c.run("d SELECT INBOX").await.last().unwrap(),
        "d OK [READ-WRITE] SELECT completed"
    );
    assert_eq!(
        c.run("e FETCH 1 (BODY[99])").await,
        strs(&["e BAD Invalid sequence number"])
    );
    assert_eq!(
        c.run("f UID FETCH 1:* (BINARY[1])").await,
        strs(&["f OK FETCH completed"]),
        "UIDs that no message has are passed over"
    );
    for i in 0..20 {
        c.send(format!("x{i} NONSENSE\r\n").as_bytes()).await;
    }
    let mut last = String::new();
    for _ in 0..20 {
        let line = c.line().await;
        last = line.clone();
        if line.starts_with("* BYE") {
            break;
        }
    }
    assert_eq!(last, "* BYE Too many bad commands");
    assert!(c.closed().await.0);
}

/// Forms only Jmail's own reader takes apart (LIST-EXTENDED and the like), made hostile: `~` with no
/// `{`, before login, once panicked the session; a LIST of two million `(` across literals, after
/// login, recursed once per `(` and overflowed the stack, which took the whole server down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_extended_forms_get_bad_and_the_server_lives() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let (mut c, _) = Imap::connect(imap_addr(&s)).await;
    assert_eq!(
        c.run("a LIST (~} \"\" *").await,
        strs(&["a BAD Syntax error or unknown command"])
    );
    assert_eq!(c.run("b NOOP").await, strs(&["b OK NOOP completed"]));
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    let mut deep = b"d LIST ".to_vec();
    for _ in 0..250 {
        deep.extend(std::iter::repeat_n(b'(', 8000));
        deep.extend_from_slice(b" {1+}\r\nx");
    }
    deep.extend_from_slice(b"\r\n");
    c.send(&deep).await;
    let answer = c.until("d").await;
    assert!(answer.last().unwrap().starts_with("d BAD "), "{answer:?}");
    // The same session and a new one are served.
    assert_eq!(c.run("e NOOP").await, strs(&["e OK NOOP completed"]));
    let mut other = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    assert_eq!(
        other.run("f LIST \"\" INBOX").await,
        strs(&[
            "* LIST (\\HasNoChildren) \"/\" \"INBOX\"",
            "f OK LIST completed"
        ])
    );
}

#[tokio::test]
async fn authenticate_login_and_plain_in_steps() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let (mut c, _) = Imap::connect(imap_addr(&s)).await;
    c.send(b"a AUTHENTICATE LOGIN\r\n").await;
    assert_eq!(c.line().await, "+ VXNlcm5hbWU6");
    c.send(b"Ym9i\r\n").await;
    assert_eq!(c.line().await, "+ UGFzc3dvcmQ6");
    c.send(b"Ym9iLXBhc3N3b3Jk\r\n").await;
    assert_eq!(
        c.line().await,
        format!("a OK [CAPABILITY {CAPS_AFTER}] Logged in")
    );
    let (mut c, _) = Imap::connect(imap_addr(&s)).await;
    c.send(b"b AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ ");
    c.send(b"*\r\n").await;
    assert_eq!(c.line().await, "b BAD Authentication cancelled");
    c.send(b"c AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ ");
    // Acting for someone else fails like a wrong password.
    c.send(b"YWxpY2UAYm9iAGJvYi1wYXNzd29yZA==\r\n").await;
    assert_eq!(
        c.line().await,
        "c NO [AUTHENTICATIONFAILED] Invalid credentials"
    );
}

#[tokio::test]
async fn list_extended_list_status_esearch_and_appendlimit() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", HELLO).await;
    deliver(&s, "bob", SECOND).await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.run("a CREATE Work/Reports").await;
    c.run("a1 SUBSCRIBE Work/Reports").await;
    c.run("c UNSUBSCRIBE Junk").await;
    // RFC 5258 §3.5: a parent is listed for a subscribed child the patterns do not list themselves.
    assert_eq!(
        c.run("d LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (Work J*)")
            .await,
        strs(&[
            "* LIST (\\HasChildren) \"/\" \"Work\" (\"CHILDINFO\" (\"SUBSCRIBED\"))",
            "d OK LIST completed",
        ])
    );
    assert_eq!(
        c.run("d1 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (Work* J*)")
            .await,
        strs(&[
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Work/Reports\"",
            "d1 OK LIST completed",
        ])
    );
    assert_eq!(
        c.run("e LIST (SPECIAL-USE) \"\" * RETURN (SUBSCRIBED)")
            .await,
        strs(&[
            "* LIST (\\HasNoChildren \\Archive \\Subscribed) \"/\" \"Archive\"",
            "* LIST (\\HasNoChildren \\Drafts \\Subscribed) \"/\" \"Drafts\"",
            "* LIST (\\HasNoChildren \\Junk) \"/\" \"Junk\"",
            "* LIST (\\HasNoChildren \\Sent \\Subscribed) \"/\" \"Sent\"",
            "* LIST (\\HasNoChildren \\Trash \\Subscribed) \"/\" \"Trash\"",
            "e OK LIST completed",
        ])
    );
    assert_eq!(
        c.run("f LIST \"\" (INBOX Sent) RETURN (STATUS (MESSAGES UNSEEN APPENDLIMIT))")
            .await,
        strs(&[
            "* LIST (\\HasNoChildren) \"/\" \"INBOX\"",
            "* STATUS \"INBOX\" (MESSAGES 2 UNSEEN 2 APPENDLIMIT 10485760)",
            "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"",
            "* STATUS \"Sent\" (MESSAGES 0 UNSEEN 0 APPENDLIMIT 10485760)",
            "f OK LIST completed",
        ])
    );
    assert_eq!(
        c.run("g LIST \"\" * RETURN (BOGUS)").await,
        strs(&["g BAD Syntax error or unknown command"])
    );
    assert_eq!(
        c.run("h STATUS INBOX (APPENDLIMIT)").await,
        strs(&[
            "* STATUS \"INBOX\" (APPENDLIMIT 10485760)",
            "h OK STATUS completed"
        ])
    );
    c.run("i SELECT INBOX").await;
    assert_eq!(
        c.run("j SEARCH RETURN (MIN MAX COUNT) ALL").await,
        strs(&[
            "* ESEARCH (TAG \"j\") MIN 1 MAX 2 COUNT 2",
            "j OK SEARCH completed"
        ])
    );
    assert_eq!(
        c.run("k UID SEARCH RETURN () SUBJECT hello").await,
        strs(&["* ESEARCH (TAG \"k\") UID ALL 1", "k OK SEARCH completed"])
    );
    assert_eq!(
        c.run("l SEARCH RETURN (COUNT MIN) DELETED").await,
        strs(&["* ESEARCH (TAG \"l\") COUNT 0", "l OK SEARCH completed"])
    );
}

#[tokio::test]
async fn binary_undoes_transfer_encodings_and_quota_reports_usage() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let raw = b"Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe=\r\n!\r\n\
--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n\
--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b--\r\n";
    deliver(&s, "bob", raw).await;
    jmail::store::AccountStore::set_quota(
        s.store.as_ref(),
        "bob",
        Some(jmail::store::QuotaSetting::Limit(10 * 1024 * 1024)),
        Some(jmail::store::QuotaSetting::Limit(500)),
    )
    .await
    .unwrap();
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.run("a SELECT INBOX").await;
    assert_eq!(
        c.run("b FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[2] BINARY.PEEK[2]<1.5> BINARY.PEEK[2])")
            .await,
        vec![
            "* 1 FETCH (BINARY[1] {8}\r\nGrüße! BINARY.SIZE[2] 3 BINARY[2]<1> {2}\r\n\u{1}\u{2} \
BINARY[2] ~{3}\r\n\u{0}\u{1}\u{2})"
                .to_string(),
            "b OK FETCH completed".to_string(),
        ]
    );
    assert_eq!(
        c.run("c FETCH 1 (BINARY.PEEK[3])").await,
        strs(&[
            "* 1 FETCH (BINARY[3] NIL)",
            "c NO [UNKNOWN-CTE] A part's transfer encoding cannot be decoded"
        ])
    );
    // BINARY.SIZE must be a number: one that cannot be known is left out (alone: no FETCH at all).
    assert_eq!(
        c.run("c2 FETCH 1 (BINARY.SIZE[3] UID)").await,
        strs(&[
            "* 1 FETCH (UID 1)",
            "c2 NO [UNKNOWN-CTE] A part's transfer encoding cannot be decoded"
        ])
    );
    assert_eq!(
        c.run("c3 FETCH 1 (BINARY.SIZE[3])").await,
        strs(&["c3 NO [UNKNOWN-CTE] A part's transfer encoding cannot be decoded"])
    );
    assert_eq!(
        c.run("d GETQUOTAROOT INBOX").await,
        strs(&[
            "* QUOTAROOT \"INBOX\" \"\"",
            "* QUOTA \"\" (STORAGE 1 10240 MESSAGE 1 500)",
            "d OK GETQUOTAROOT completed"
        ])
    );
    assert_eq!(
        c.run("e GETQUOTA \"\"").await,
        strs(&[
            "* QUOTA \"\" (STORAGE 1 10240 MESSAGE 1 500)",
            "e OK GETQUOTA completed"
        ])
    );
    assert_eq!(
        c.run("f SETQUOTA \"\" (STORAGE 1)").await,
        strs(&["f NO [NOPERM] Quotas are set by the administrator (jmail user quota)"])
    );
    assert_eq!(
        c.run("g GETQUOTA other").await,
        strs(&["g NO [NONEXISTENT] No such quota root"])
    );
    // A keyword in use is named in SELECT's FLAGS and PERMANENTFLAGS; EXAMINE permits no change.
    c.run("h STORE 1 +FLAGS ($Later)").await;
    let select = c.run("i EXAMINE INBOX").await;
    assert_eq!(
        select[1..3],
        strs(&[
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Later)",
            "* OK [PERMANENTFLAGS ()] Read-only mailbox",
        ])
    );
    let select = c.run("j SELECT INBOX").await;
    assert_eq!(
        select[1..3],
        strs(&[
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Later)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Later \\*)] Flags permitted",
        ])
    );
}

#[tokio::test]
async fn compress_deflate_carries_the_session_on() {
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", HELLO).await;
    let (mut plain, _) = Imap::connect(imap_addr(&s)).await;
    assert_eq!(
        plain.run("a COMPRESS DEFLATE").await,
        strs(&["a BAD Log in first"]),
        "not before login"
    );
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    assert_eq!(
        c.run("a COMPRESS DEFLATE").await,
        strs(&["a OK DEFLATE active"])
    );
    // From here on, raw deflate both ways.
    let mut tcp = c.stream.into_inner();
    let mut deflate = Compress::new(Compression::default(), false);
    // A message large enough to be streamed in pieces (over 256 KiB), appended and fetched back.
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    for i in 0..12_000u32 {
        big.extend_from_slice(
            format!("line {i:05} {}\r\n", i.wrapping_mul(2_654_435_761)).as_bytes(),
        );
    }
    let mut commands = b"b SELECT INBOX\r\nc FETCH 1 (BODY.PEEK[])\r\n".to_vec();
    commands.extend_from_slice(format!("x APPEND INBOX {{{}+}}\r\n", big.len()).as_bytes());
    commands.extend_from_slice(&big);
    commands
        .extend_from_slice(b"\r\ny FETCH 2 (BODY.PEEK[])\r\nd COMPRESS DEFLATE\r\ne LOGOUT\r\n");
    let mut wire = Vec::with_capacity(commands.len() + 1024);
    deflate
        .compress_vec(&commands, &mut wire, FlushCompress::Sync)
        .unwrap();
    tcp.write_all(&wire).await.unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(REPLY_WAIT, tcp.read_to_end(&mut received))
        .await
        .expect("the server closes after LOGOUT")
        .unwrap();
    let mut inflate = Decompress::new(false);
    let mut text = Vec::with_capacity(4 << 20);
    inflate
        .decompress_vec(&received, &mut text, FlushDecompress::Sync)
        .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("* 1 EXISTS\r\n"), "{text}");
    assert!(
        text.contains(&format!(
            "* 1 FETCH (BODY[] {{{}}}\r\n{})\r\nc OK FETCH completed\r\n",
            HELLO.len(),
            String::from_utf8_lossy(HELLO)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "* 2 FETCH (BODY[] {{{}}}\r\n{})\r\ny OK FETCH completed\r\n",
            big.len(),
            String::from_utf8_lossy(&big)
        )),
        "the large message comes back whole"
    );
    assert!(
        text.contains("d NO [COMPRESSIONACTIVE] DEFLATE is already active\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("* BYE Logging out\r\ne OK LOGOUT completed\r\n"),
        "{text}"
    );
}

/// Mail stored by another process (`jmail deliver`) reaches a session in IDLE, and `jmail user del` from
/// another process ends the session at its next command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_hears_another_processs_delivery() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    c.run("a SELECT INBOX").await;
    c.send(b"b IDLE\r\n").await;
    assert_eq!(c.line().await, "+ idling");
    crate::cli::deliver_from_another_process(s.dir.path(), "bob", "from outside").await;
    assert_eq!(c.line().await, "* 1 EXISTS");
    assert_eq!(c.line().await, "* 1 RECENT");
    c.send(b"DONE\r\n").await;
    assert_eq!(c.line().await, "b OK IDLE terminated");
    crate::cli::delete_user_from_another_process(s.dir.path(), "bob").await;
    c.send(b"c NOOP\r\n").await;
    assert_eq!(
        c.line().await,
        "* BYE The account was deleted or its password changed"
    );
    assert!(c.closed().await.0);
}

/// A BINARY of a large part, or a SEARCH through a large message, holds the message whole: both draw on
/// the server's budget for large messages in memory, and are refused (the session goes on) when it is
/// spent. Driven on a session whose budget is empty.
#[tokio::test]
async fn large_decodes_and_searches_draw_on_the_budget() {
    use jmail_proto::imap::{Decoder, Limits};
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    let mut raw = b"Subject: att\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    for _ in 0..8000 {
        raw.extend_from_slice(
            b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\r\n",
        );
    }
    raw.extend_from_slice(b"--b--\r\n");
    deliver(&s, "bob", &raw).await;
    let mut session = jmail::imap::Session::new(
        s.store.clone(),
        Arc::new(s.config.clone()),
        jmail::throttle::LoginThrottle::system(),
        "127.0.0.1:5000".parse().unwrap(),
        false,
        Arc::new(tokio::sync::Semaphore::new(1)),
        Arc::new(jmail::caps::InputBudget::new(0)),
    );
    let mut decoder = Decoder::new(Limits {
        line_bytes_max: 8192,
        literal_bytes_max: 8192,
        command_bytes_max: 16384,
    });
    let mut run = async |input: &[u8]| {
        let (_, event) = decoder.decode(input);
        let outcome = session.on_event(event.unwrap()).await;
        let mut reply = outcome.reply;
        if let Some(mut stream) = outcome.stream {
            while let Some(piece) = stream.next().await.unwrap() {
                reply.extend(piece);
            }
        }
        String::from_utf8(reply).unwrap()
    };
    run(b"a LOGIN bob bob-password\r\n").await;
    run(b"b SELECT INBOX\r\n").await;
    assert_eq!(
        run(b"c FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[2])\r\n").await,
        "* 1 FETCH (BINARY.SIZE[1] 12 BINARY[2] NIL)\r\n\
c NO [UNAVAILABLE] Server is busy with large messages; try again later\r\n"
    );
    assert_eq!(
        run(b"d SEARCH BODY attached\r\n").await,
        "d NO [UNAVAILABLE] Server is busy with large messages; try again later\r\n"
    );
    assert_eq!(
        run(b"e SEARCH SUBJECT att\r\n").await,
        "* SEARCH 1\r\ne OK SEARCH completed\r\n",
        "what needs no whole message goes on"
    );
}

#[tokio::test]
async fn appends_and_copies_past_the_quota_store_nothing() {
    let s = start_imap().await;
    bare_user(&s, "bob", "bob-password").await;
    deliver(&s, "bob", HELLO).await;
    jmail::store::AccountStore::set_quota(
        s.store.as_ref(),
        "bob",
        None,
        Some(jmail::store::QuotaSetting::Limit(2)),
    )
    .await
    .unwrap();
    let mut c = Imap::login(imap_addr(&s), "bob", "bob-password").await;
    assert_eq!(
        c.run("a APPEND Drafts {10+}\r\nSubject: 1").await,
        strs(&["a OK [APPENDUID 3 1] APPEND completed"])
    );
    assert_eq!(
        c.run("b APPEND Drafts {10+}\r\nSubject: 2").await,
        strs(&["b NO [OVERQUOTA] Quota exceeded"])
    );
    c.run("c SELECT INBOX").await;
    assert_eq!(
        c.run("d COPY 1 Archive").await,
        strs(&["d NO [OVERQUOTA] Quota exceeded"])
    );
    assert_eq!(
        c.run("e GETQUOTAROOT Drafts").await,
        strs(&[
            "* QUOTAROOT \"Drafts\" \"\"",
            "* QUOTA \"\" (MESSAGE 2 2)",
            "e OK GETQUOTAROOT completed"
        ])
    );
    assert_eq!(
        c.run("f MOVE 1 Archive").await[..2],
        strs(&["* OK [COPYUID 6 1 1] Moved", "* 1 EXPUNGE"]),
        "a move takes no more room"
    );
}

/// A command line trickled a byte at a time does not hold the connection: the line must arrive within
/// `line_secs_max` of its first byte, whatever the idle timer says.
#[tokio::test]
async fn a_trickled_command_line_is_cut_off() {
    let s = TestServer::start_with(|c| {
        c.imap_port = Some(0);
        c.limits.line_secs_max = 1;
    })
    .await;
    let (mut c, _) = Imap::connect(imap_addr(&s)).await;
    let started = Instant::now();
    let mut cut_off = false;
    for byte in b"a CAPABILITY but very slowly ".iter().cycle().take(60) {
        if c.stream.get_mut().write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let (closed, rest) = c.closed().await;
    assert!(cut_off || closed, "the connection stays open");
    assert_eq!(
        String::from_utf8_lossy(&rest),
        "* BYE Autologout; idle for too long\r\n"
    );
}
