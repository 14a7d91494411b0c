//! Crash durability: the real `jmail serve` under native and SMTP load, SIGKILLed at random moments and
//! restarted, then the store checked. Every acknowledged message must be there exactly once and whole,
//! in every recipient's mailbox; a message the server never answered may be there once or not at all
//! (for all recipients alike); one it never received whole, or refused, must not be there; and SQLite's
//! `PRAGMA integrity_check` must say `ok`.
//!
//! Ignored (it is a proof run, not a unit test): `cargo test --test it -- --ignored crash --nocapture`.
//! `JMAIL_CRASH_CYCLES` sets the number of kills (default 20); `bench/crash.sh` runs 100 in release.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jmail::client::{Client, ClientError};
use jmail::store::sqlite::{DB_FILE, SqliteStore};
use jmail::store::{AccountStore, MailStore};
use rand::Rng;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::cli::{free_port, jmail, run_with_stdin, serve_with, text};

const CYCLES_DEFAULT: usize = 20;
const NATIVE_SENDERS: usize = 3;
const SMTP_SENDERS: usize = 3;
/// Every message goes to both: a delivery is all or nothing, so after any crash both have it or neither.
const RECIPIENTS: [&str; 2] = ["rcpt1", "rcpt2"];
const SENDER: &str = "sender";
const PASSWORD: &str = "crash-pw";
/// The kill comes this long after the load starts, uniformly at random.
const KILL_AFTER_MS_MIN: u64 = 50;
const KILL_AFTER_MS_MAX: u64 = 500;
/// Bodies have up to this many filler lines of 76 bytes (random per message), so writes span WAL pages.
const FILLER_LINES_MAX: usize = 60;
/// A sender still talking this long after the kill means a hang, not a crash result.
const SENDER_STOP_WAIT: Duration = Duration::from_secs(60);

/// What the load generator knows about one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The server acknowledged it (`OK SENT`, or `250` after DATA): it must be stored exactly once.
    Acked,
    /// Sent whole, but the server died before answering: stored once or not at all.
    InFlight,
    /// Never sent whole, or refused: it must not be stored.
    NotSent,
}

type Ledger = Vec<(String, Outcome)>;

#[test]
#[ignore = "a crash-durability run (seconds in debug, about 30 s for 100 cycles in release): cargo test --test it -- --ignored crash"]
fn sigkill_under_load_loses_and_duplicates_nothing() {
    let cycles = std::env::var("JMAIL_CRASH_CYCLES")
        .map(|v| v.parse().expect("JMAIL_CRASH_CYCLES is a number"))
        .unwrap_or(CYCLES_DEFAULT);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for user in RECIPIENTS.iter().chain([&SENDER]) {
        let out = run_with_stdin(
            jmail(&["user", "add", user, "--password-stdin"], d),
            &format!("{PASSWORD}\n"),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut ledger = Ledger::new();
    let mut errors_before_kill = 0;
    let mut acked_by_smtp = 0;
    for cycle in 0..cycles {
        // serve_with waits for the ready line: a kill that leaves the store unopenable fails here.
        let smtp_port = free_port();
        let mut server = serve_with(d, &["--smtp-port", &smtp_port.to_string()]);
        let native_addr = server.addr.clone();
        let smtp_addr = format!("127.0.0.1:{smtp_port}");
        let kill_after = Duration::from_millis(
            rand::thread_rng().gen_range(KILL_AFTER_MS_MIN..=KILL_AFTER_MS_MAX),
        );
        let killed = Arc::new(AtomicBool::new(false));
        let results = runtime.block_on(async {
            let mut senders = Vec::new();
            let vias = [
                (Via::Native, NATIVE_SENDERS, "n", &native_addr),
                (Via::Smtp, SMTP_SENDERS, "s", &smtp_addr),
            ];
            for (via, count, tag, addr) in vias {
                for s in 0..count {
                    let name = format!("{cycle}-{tag}{s}");
                    let task = tokio::spawn(sender(via, name, addr.clone(), killed.clone()));
                    senders.push((via, task));
                }
            }
            tokio::time::sleep(kill_after).await;
            killed.store(true, Ordering::SeqCst);
            // Child::kill is SIGKILL: no shutdown path runs, the writer may be mid-commit.
            server.child.kill().unwrap();
            let mut results = Vec::new();
            for (via, task) in senders {
                let stopped = tokio::time::timeout(SENDER_STOP_WAIT, task).await;
                let (sent, errors) = stopped
                    .expect("a sender stops once the server is gone")
                    .unwrap();
                results.push((via, sent, errors));
            }
            results
        });
        server.child.wait().unwrap();
        for (via, sent, errors) in results {
            if matches!(via, Via::Smtp) {
                acked_by_smtp += sent.iter().filter(|(_, o)| *o == Outcome::Acked).count();
            }
            ledger.extend(sent);
            errors_before_kill += errors;
        }
    }
    let integrity = integrity_check(&d.join(DB_FILE));
    let stored = runtime.block_on(stored_tokens(d));
    let report = check(&ledger, &stored);
    println!(
        "crash durability: {cycles} cycles (SIGKILL {KILL_AFTER_MS_MIN}-{KILL_AFTER_MS_MAX} ms into \
         {NATIVE_SENDERS} native + {SMTP_SENDERS} SMTP senders, each message to {} recipients)",
        RECIPIENTS.len()
    );
    println!("{report}");
    println!(
        "acknowledged by SMTP: {acked_by_smtp}, by the native protocol: {}",
        report.acked - acked_by_smtp
    );
    println!("sender errors before a kill: {errors_before_kill}");
    println!("integrity_check: {integrity}");
    let clean = report.lost == 0
        && report.duplicated == 0
        && report.split == 0
        && report.damaged == 0
        && report.not_sent_present == 0
        && report.stray == 0
        && integrity == "ok";
    if !clean {
        // Keep the evidence: the data dir outlives the failed test.
        println!("data dir kept at {}", dir.keep().display());
    }
    assert!(clean, "crash durability failed: see the counts above");
}

/// How a sender reaches the server.
#[derive(Clone, Copy)]
enum Via {
    Native,
    /// Port 25, pipelined envelope.
    Smtp,
}

/// One connection sending until the server goes away. Returns its ledger and how many failures came
/// while the server was still meant to be up (0 or 1: a sender stops at its first).
async fn sender(via: Via, name: String, addr: String, killed: Arc<AtomicBool>) -> (Ledger, usize) {
    let mut ledger = Ledger::new();
    let Some(mut conn) = Conn::open(via, &addr).await else {
        return (ledger, failed_while_up(&killed));
    };
    for n in 0.. {
        let token = format!("crash-{name}-{n}");
        let outcome = conn.send(&token).await;
        ledger.push((token, outcome));
        if outcome != Outcome::Acked {
            return (ledger, failed_while_up(&killed));
        }
    }
    unreachable!("the loop ends at the first failed send")
}

enum Conn {
    Native(Client),
    Smtp(Smtp),
}

impl Conn {
    async fn open(via: Via, addr: &str) -> Option<Conn> {
        match via {
            Via::Native => {
                let mut client = Client::connect(addr).await.ok()?;
                client.login(SENDER, PASSWORD).await.ok()?;
                Some(Conn::Native(client))
            }
            Via::Smtp => Smtp::connect(addr).await.ok().map(Conn::Smtp),
        }
    }

    async fn send(&mut self, token: &str) -> Outcome {
        match self {
            Conn::Native(client) => {
                let recipients = RECIPIENTS.map(String::from);
                match client.send(&recipients, token, &body(token)).await {
                    Ok(_) => Outcome::Acked,
                    Err(ClientError::Refused { .. }) => Outcome::NotSent,
                    // The command may have reached the server whole before the connection broke.
                    Err(_) => Outcome::InFlight,
                }
            }
            Conn::Smtp(smtp) => smtp.send(token).await,
        }
    }
}

/// 1 when a sender fails before the kill: the server refused or dropped it while it was meant to be up.
fn failed_while_up(killed: &AtomicBool) -> usize {
    usize::from(!killed.load(Ordering::SeqCst))
}

/// A message body that names its token and its length, so a stored copy can be checked whole.
fn body(token: &str) -> Vec<u8> {
    let lines = rand::thread_rng().gen_range(0..=FILLER_LINES_MAX);
    expected_body(token, lines).into_bytes()
}

fn expected_body(token: &str, lines: usize) -> String {
    let mut b = format!("begin {token} {lines}\r\n");
    for i in 0..lines {
        b.push_str(&format!("{i:04} {}\r\n", "x".repeat(71)));
    }
    b.push_str(&format!("end {token}\r\n"));
    b
}

struct Smtp {
    stream: BufReader<TcpStream>,
}

impl Smtp {
    async fn connect(addr: &str) -> std::io::Result<Smtp> {
        let mut smtp = Smtp {
            stream: BufReader::new(TcpStream::connect(addr).await?),
        };
        smtp.reply().await?;
        smtp.stream
            .get_mut()
            .write_all(b"EHLO crash.test\r\n")
            .await?;
        smtp.reply().await?;
        Ok(smtp)
    }

    /// Sends one message. Anything short of the final `250` leaves it unacknowledged; until the whole
    /// body and its ending dot are written, the server cannot have it.
    async fn send(&mut self, token: &str) -> Outcome {
        let mut envelope = String::from("MAIL FROM:<load@example.org>\r\n");
        for r in RECIPIENTS {
            envelope.push_str(&format!("RCPT TO:<{r}@localhost>\r\n"));
        }
        envelope.push_str("DATA\r\n");
        if self
            .stream
            .get_mut()
            .write_all(envelope.as_bytes())
            .await
            .is_err()
        {
            return Outcome::NotSent;
        }
        for want in std::iter::repeat_n(250, 1 + RECIPIENTS.len()).chain([354]) {
            if self.reply().await.ok() != Some(want) {
                return Outcome::NotSent;
            }
        }
        let mut message = format!(
            "From: <load@example.org>\r\nTo: {}\r\nSubject: {token}\r\nMessage-ID: <{token}@crash.test>\r\n\r\n",
            RECIPIENTS.map(|r| format!("<{r}@localhost>")).join(", ")
        )
        .into_bytes();
        message.extend_from_slice(&body(token));
        message.extend_from_slice(b".\r\n");
        if self.stream.get_mut().write_all(&message).await.is_err() {
            return Outcome::NotSent;
        }
        match self.reply().await {
            Ok(250) => Outcome::Acked,
            Ok(_) => Outcome::NotSent,
            Err(_) => Outcome::InFlight,
        }
    }

    /// Reads one reply, all its lines; returns its code. A closed connection is an error.
    async fn reply(&mut self) -> std::io::Result<u16> {
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line
                    .get(..3)
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| std::io::Error::other(line.clone()));
            }
        }
    }
}

/// `PRAGMA integrity_check` on the database as the last kill left it (read-only: nothing recovers or
/// checkpoints it first, beyond what SQLite does to read a WAL).
fn integrity_check(db: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.join("; ")
}

/// For each recipient, every load message in its mailbox: token (subject) and whether its body is whole.
async fn stored_tokens(d: &Path) -> Vec<HashMap<String, StoredCopies>> {
    let store = SqliteStore::open(d).unwrap();
    let mut per_recipient = Vec::new();
    for r in RECIPIENTS {
        let mailbox = store.inbox_of(r).await.unwrap().expect("recipient exists");
        let mut copies: HashMap<String, StoredCopies> = HashMap::new();
        let mut since = 0;
        loop {
            let changes = store.changes(mailbox, since, 1000).await.unwrap();
            for m in changes.messages {
                if !m.subject.starts_with("crash-") {
                    continue; // the welcome message
                }
                let raw = store.fetch(mailbox, m.uid, false).await.unwrap().unwrap();
                let entry = copies.entry(m.subject.clone()).or_default();
                entry.count += 1;
                entry.damaged += usize::from(!is_whole(&m.subject, &raw));
            }
            since = changes.through_modseq;
            if !changes.more {
                break;
            }
        }
        per_recipient.push(copies);
    }
    store.close().await;
    per_recipient
}

#[derive(Default)]
struct StoredCopies {
    count: usize,
    damaged: usize,
}

/// The stored message renders to the body its first line promises, token for token.
fn is_whole(token: &str, raw: &[u8]) -> bool {
    let rendered = jmail::message::render(raw);
    let lines = |b: &str| -> Vec<String> {
        b.lines()
            .map(|l| l.trim_end().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let got = lines(&String::from_utf8_lossy(&rendered.body));
    let promised = got.first().and_then(|first| {
        let mut words = first.split(' ');
        (words.next() == Some("begin") && words.next() == Some(token))
            .then(|| words.next()?.parse::<usize>().ok())
            .flatten()
    });
    rendered.subject == token && promised.is_some_and(|n| got == lines(&expected_body(token, n)))
}

#[derive(Default)]
struct Report {
    acked: usize,
    in_flight: usize,
    not_sent: usize,
    /// Acknowledged messages stored (counted once per message, in every recipient's mailbox).
    present: usize,
    lost: usize,
    duplicated: usize,
    in_flight_present: usize,
    in_flight_absent: usize,
    not_sent_present: usize,
    /// In one recipient's mailbox but not the other's: a delivery that was not all or nothing.
    split: usize,
    damaged: usize,
    /// Stored, but no sender ever sent that token.
    stray: usize,
}

fn check(ledger: &Ledger, stored: &[HashMap<String, StoredCopies>]) -> Report {
    let mut r = Report::default();
    let count = |token: &str| -> Vec<usize> {
        stored
            .iter()
            .map(|m| m.get(token).map_or(0, |c| c.count))
            .collect()
    };
    for (token, outcome) in ledger {
        let counts = count(token);
        let (lowest, highest) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        r.duplicated += usize::from(*highest > 1);
        r.split += usize::from(lowest != highest);
        match outcome {
            Outcome::Acked => {
                r.acked += 1;
                if *lowest == 0 {
                    r.lost += 1;
                } else {
                    r.present += 1;
                }
            }
            Outcome::InFlight => {
                r.in_flight += 1;
                if *highest > 0 {
                    r.in_flight_present += 1;
                } else {
                    r.in_flight_absent += 1;
                }
            }
            Outcome::NotSent => {
                r.not_sent += 1;
                r.not_sent_present += usize::from(*highest > 0);
            }
        }
    }
    let known: HashMap<&str, Outcome> = ledger.iter().map(|(t, o)| (t.as_str(), *o)).collect();
    for mailbox in stored {
        for (token, copies) in mailbox {
            r.damaged += copies.damaged;
            r.stray += usize::from(!known.contains_key(token.as_str()));
        }
    }
    r
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "acknowledged: {}  present: {}  lost: {}  duplicated: {}",
            self.acked, self.present, self.lost, self.duplicated
        )?;
        writeln!(
            f,
            "in flight at a kill (no answer): {}  present: {}  absent: {}",
            self.in_flight, self.in_flight_present, self.in_flight_absent
        )?;
        writeln!(
            f,
            "never sent whole or refused: {}  present: {}",
            self.not_sent, self.not_sent_present
        )?;
        write!(
            f,
            "split between recipients: {}  damaged copies: {}  stray: {}",
            self.split, self.damaged, self.stray
        )
    }
}

/// The checker itself: a run that says "0 lost" is only worth something if a loss would show.
#[test]
fn the_checker_counts_losses_duplicates_splits_and_strays() {
    let ledger: Ledger = [
        ("acked-ok", Outcome::Acked),
        ("acked-lost", Outcome::Acked),
        ("acked-twice", Outcome::Acked),
        ("acked-split", Outcome::Acked),
        ("flight-in", Outcome::InFlight),
        ("flight-out", Outcome::InFlight),
        ("never", Outcome::NotSent),
    ]
    .map(|(t, o)| (t.to_string(), o))
    .to_vec();
    let mailbox = |entries: &[(&str, usize)]| -> HashMap<String, StoredCopies> {
        entries
            .iter()
            .map(|&(t, count)| (t.to_string(), StoredCopies { count, damaged: 0 }))
            .collect()
    };
    let mut first = mailbox(&[("acked-ok", 1), ("acked-twice", 2), ("acked-split", 1)]);
    first.extend(mailbox(&[
        ("flight-in", 1),
        ("never", 1),
        ("nobody-sent", 1),
    ]));
    first.get_mut("acked-ok").unwrap().damaged = 1;
    let second = mailbox(&[
        ("acked-ok", 1),
        ("acked-twice", 1),
        ("flight-in", 1),
        ("never", 1),
    ]);
    let r = check(&ledger, &[first, second]);
    assert_eq!(
        (r.acked, r.present, r.lost),
        (4, 2, 2),
        "acked-split is lost for one recipient"
    );
    assert_eq!((r.duplicated, r.split, r.damaged, r.stray), (1, 2, 1, 1));
    assert_eq!((r.in_flight_present, r.in_flight_absent), (1, 1));
    assert_eq!((r.not_sent, r.not_sent_present), (1, 1));
}

#[test]
fn a_stored_message_is_whole_only_with_its_whole_body() {
    let message = |body: &str| format!("Subject: crash-t\r\n\r\n{body}").into_bytes();
    let full = expected_body("crash-t", 3);
    assert!(is_whole("crash-t", &message(&full)));
    let cut = &full[..full.len() - "end crash-t\r\n".len()];
    assert!(!is_whole("crash-t", &message(cut)));
    assert!(
        !is_whole("crash-u", &message(&full)),
        "another message's body"
    );
    let lines_dropped = full.replacen(&format!("0001 {}\r\n", "x".repeat(71)), "", 1);
    assert!(!is_whole("crash-t", &message(&lines_dropped)));
}
