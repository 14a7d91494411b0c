//! Several `jmail serve` nodes on one PostgreSQL database: mail sent to one node reaches IDLE on another,
//! concurrent deliveries by many writers through both into one mailbox get distinct UIDs and rising modseqs, a node
//! killed under load loses nothing it acknowledged, and a database restart under load gives temporary
//! failures, then service again, with nothing acknowledged lost. Skipped without a test server
//! (`JMAIL_TEST_POSTGRES`, which `scripts/test` sets).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::cli::{Served, jmail, run_with_stdin, serve_with, text};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One node: its own data dir (certificate, keys) and ports, the shared database.
struct Node {
    served: Served,
    smtp: u16,
    imap: u16,
    _dir: TempDir,
}

fn node(url: &str) -> Node {
    let dir = TempDir::new().unwrap();
    let (smtp, imap) = (free_port(), free_port());
    let (s, i) = (smtp.to_string(), imap.to_string());
    let served = serve_with(
        dir.path(),
        &["--store", url, "--smtp-port", &s, "--imap-port", &i],
    );
    Node {
        served,
        smtp,
        imap,
        _dir: dir,
    }
}

fn add_user(url: &str, name: &str) {
    let dir = TempDir::new().unwrap();
    let out = run_with_stdin(
        jmail(
            &["user", "add", name, "--password-stdin", "--store", url],
            dir.path(),
        ),
        "pw-for-nodes\n",
    );
    assert!(out.status.success(), "user add: {}", text(&out.stderr));
}

/// Sends `count` messages to bob through SMTP on `port`, one transaction each on reused connections,
/// until done or `secs` have passed. Prints `ack N` for each message the server acknowledged and
/// `temp N CODE` for each temporary refusal; reconnects when a connection fails.
fn load(port: u16, tag: &str, count: usize, secs: u64) -> tokio::process::Child {
    let script = format!(
        r#"
import smtplib, sys, time
deadline = time.time() + {secs}
n = 0
s = None
while n < {count} and time.time() < deadline:
    try:
        if s is None:
            s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
        msg = "From: load@example.org\r\nSubject: {tag}-%d\r\n\r\nbody %d\r\n" % (n, n)
        s.sendmail("load@example.org", ["bob@localhost"], msg)
        print("ack", n, flush=True)
        n += 1
    except smtplib.SMTPResponseException as e:
        print("temp", n, e.smtp_code, flush=True)
        n += 1
        try:
            s.rset()
        except Exception:
            s = None
    except smtplib.SMTPRecipientsRefused as e:
        code = list(e.recipients.values())[0][0]
        print("temp", n, code, flush=True)
        n += 1
    except Exception as e:
        s = None
        time.sleep(0.05)
"#
    );
    tokio::process::Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// What a load run printed: the acknowledged message numbers and the temporary refusals (number, code).
async fn outcome(child: tokio::process::Child) -> (BTreeSet<usize>, Vec<(usize, u16)>) {
    let out = child.wait_with_output().await.unwrap();
    let mut acked = BTreeSet::new();
    let mut temp = Vec::new();
    for line in text(&out.stdout).lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["ack", n] => {
                acked.insert(n.parse().unwrap());
            }
            ["temp", n, code] => temp.push((n.parse().unwrap(), code.parse().unwrap())),
            _ => {}
        }
    }
    (acked, temp)
}

/// A logged-in IMAP connection with INBOX selected, spoken to line by line.
struct Imap {
    read: BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
    tag: u32,
}

impl Imap {
    async fn open(port: u16) -> Imap {
        let (r, w) = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap()
            .into_split();
        let mut imap = Imap {
            read: BufReader::new(r),
            write: w,
            tag: 0,
        };
        imap.line().await;
        imap.command("LOGIN bob pw-for-nodes").await;
        imap.command("SELECT INBOX").await;
        imap
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(30), self.read.read_line(&mut line))
            .await
            .expect("an IMAP line in time")
            .unwrap();
        assert!(!line.is_empty(), "the server closed the connection");
        line
    }

    /// Sends a command and returns its untagged lines; the tagged reply must be OK.
    async fn command(&mut self, command: &str) -> Vec<String> {
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        self.write
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await
            .unwrap();
        let mut untagged = Vec::new();
        loop {
            let line = self.line().await;
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                assert!(rest.starts_with("OK"), "{command}: {line}");
                return untagged;
            }
            untagged.push(line);
        }
    }

    /// Subjects and (UID, MODSEQ) of every message, in UID order.
    async fn listing(&mut self) -> (Vec<String>, Vec<(u32, u64)>) {
        let lines = self
            .command("UID FETCH 1:* (UID MODSEQ BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            .await;
        let mut subjects = Vec::new();
        let mut ids = Vec::new();
        for line in &lines {
            if let Some(s) = line.strip_prefix("Subject: ") {
                subjects.push(s.trim().to_string());
            }
            if line.starts_with("* ") && line.contains("FETCH") {
                let number_after = |key: &str| -> u64 {
                    line.split(key)
                        .nth(1)
                        .unwrap()
                        .trim_start_matches(['(', ' '])
                        .split([' ', ')'])
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap()
                };
                ids.push((number_after("UID ") as u32, number_after("MODSEQ ")));
            }
        }
        ids.sort();
        (subjects, ids)
    }
}

/// Every UID distinct and every modseq rising with the UID (deliveries number a mailbox in the order
/// they commit, whichever node made them).
fn assert_numbered_in_order(ids: &[(u32, u64)]) {
    for pair in ids.windows(2) {
        assert!(pair[0].0 < pair[1].0, "UIDs repeat: {pair:?}");
        assert!(pair[0].1 < pair[1].1, "modseqs do not rise: {pair:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_mail_push_and_numbering() {
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    add_user(&url, "bob");
    let a = node(&url);
    let b = node(&url);

    // Sent on node A, seen by IDLE on node B.
    let mut watcher = Imap::open(b.imap).await;
    watcher.tag += 1;
    watcher
        .write
        .write_all(format!("a{} IDLE\r\n", watcher.tag).as_bytes())
        .await
        .unwrap();
    assert!(watcher.line().await.starts_with("+ "));
    let sent = Instant::now();
    let (acked, _) = outcome(load(a.smtp, "first", 1, 30)).await;
    assert_eq!(acked.len(), 1);
    let exists = watcher.line().await;
    assert_eq!(
        exists, "* 2 EXISTS\r\n",
        "the welcome message and the new one"
    );
    eprintln!("cross-node IDLE wake-up after {:?}", sent.elapsed());
    watcher.write.write_all(b"DONE\r\n").await.unwrap();
    let done = format!("a{} ", watcher.tag);
    loop {
        let line = watcher.line().await;
        if let Some(rest) = line.strip_prefix(&done) {
            assert!(rest.starts_with("OK"), "{line}");
            break;
        }
    }

    // Many writers on both nodes deliver into bob's INBOX at once: four SMTP clients per node.
    let (writers, each) = (4, 40);
    let mut loads = Vec::new();
    for w in 0..writers {
        loads.push(load(a.smtp, &format!("a{w}"), each, 120));
        loads.push(load(b.smtp, &format!("b{w}"), each, 120));
    }
    let mut total = 0;
    for l in loads {
        let (acked, temp) = outcome(l).await;
        assert_eq!(acked.len(), each, "refused: {temp:?}");
        total += acked.len();
    }
    let (subjects, ids) = Imap::open(a.imap).await.listing().await;
    assert_eq!(ids.len(), 2 + total);
    assert_eq!(
        ids.iter().map(|(uid, _)| *uid).collect::<Vec<_>>(),
        (1..=(2 + total) as u32).collect::<Vec<_>>(),
        "UIDs handed out once each, none skipped"
    );
    assert_numbered_in_order(&ids);
    for n in 0..each {
        for w in 0..writers {
            for node in ["a", "b"] {
                let subject = format!("{node}{w}-{n}");
                assert!(subjects.contains(&subject), "{subject}");
            }
        }
    }
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_under_load_loses_nothing_and_the_other_serves_on() {
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    add_user(&url, "bob");
    let mut a = node(&url);
    let b = node(&url);
    let on_a = load(a.smtp, "a", 100_000, 4);
    let on_b = load(b.smtp, "b", 300, 60);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.served.child.kill().unwrap(); // SIGKILL
    let ((acked_a, _), (acked_b, temp_b)) = tokio::join!(outcome(on_a), outcome(on_b));
    eprintln!(
        "node A acknowledged {} before SIGKILL; node B {}",
        acked_a.len(),
        acked_b.len()
    );
    assert!(!acked_a.is_empty(), "node A took mail before it died");
    assert_eq!(acked_b.len(), 300, "node B kept serving: {temp_b:?}");
    let (subjects, ids) = Imap::open(b.imap).await.listing().await;
    assert_numbered_in_order(&ids);
    for n in &acked_a {
        assert!(
            subjects.contains(&format!("a-{n}")),
            "acknowledged a-{n} is lost"
        );
    }
    for n in &acked_b {
        assert!(
            subjects.contains(&format!("b-{n}")),
            "acknowledged b-{n} is lost"
        );
    }
}

/// The test's own PostgreSQL server (it is stopped and started again, which the shared one must not be).
struct OwnServer {
    dir: std::path::PathBuf,
    url: String,
}

impl OwnServer {
    fn script() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/throwaway-postgres")
    }

    fn run(args: &[&str]) -> String {
        let out = std::process::Command::new(Self::script())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }

    fn start() -> OwnServer {
        let dir = std::env::temp_dir().join(format!("jmail-own-pg-{:016x}", rand::random::<u64>()));
        let url = Self::run(&["start", dir.to_str().unwrap()]);
        OwnServer { dir, url }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        Self::run(&["stop", self.dir.to_str().unwrap()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_under_load_gives_temporary_failures_then_service() {
    if crate::pg::fresh_database().await.is_none() {
        return;
    }
    let server = OwnServer::start();
    add_user(&server.url, "bob");
    let a = node(&server.url);
    let running = load(a.smtp, "r", 100_000, 8);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dir = server.dir.to_str().unwrap();
    OwnServer::run(&["pause", dir]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    OwnServer::run(&["resume", dir]);
    let (acked, temp) = outcome(running).await;
    assert!(
        !temp.is_empty() && temp.iter().all(|(_, c)| (400..500).contains(c)),
        "the outage gave temporary failures: {temp:?}"
    );
    eprintln!(
        "{} acknowledged, {} refused for a while",
        acked.len(),
        temp.len()
    );
    let last_refused = temp.iter().map(|(n, _)| *n).max().unwrap();
    let after = acked.iter().filter(|n| **n > last_refused).count();
    assert!(
        after > 0,
        "mail is accepted again once the database is back ({temp:?})"
    );
    let (subjects, ids) = Imap::open(a.imap).await.listing().await;
    assert_numbered_in_order(&ids);
    for n in &acked {
        assert!(
            subjects.contains(&format!("r-{n}")),
            "acknowledged r-{n} is lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_on_one_node_count_on_every_node() {
    use jmail::store::postgres::PgStore;
    use jmail::throttle::{LoginResult, LoginThrottle, login};
    // A shared failure that could not be recorded is only logged: shown if this test fails.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::WARN)
        .try_init();
    use std::sync::Arc;
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let limits = jmail::store::ModelLimits::default();
    let (a, b) = (
        Arc::new(PgStore::open(&url, limits).await.unwrap()),
        Arc::new(PgStore::open(&url, limits).await.unwrap()),
    );
    let dir = TempDir::new().unwrap();
    let mut config = jmail::config::Config::for_data_dir(dir.path());
    config.limits.login_block_failures = 3;
    config.limits.login_penalty_secs_max = 0;
    jmail::accounts::add_user(a.as_ref(), &config, "bob", "right-pw")
        .await
        .unwrap();
    let throttle_a = LoginThrottle::system_shared(Some(a.shared_failures()));
    let throttle_b = LoginThrottle::system_shared(Some(b.shared_failures()));
    let attacker: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    let other: std::net::IpAddr = "192.0.2.8".parse().unwrap();
    for _ in 0..3 {
        let r = login(a.as_ref(), &config, &throttle_a, attacker, "bob", "guess").await;
        assert!(matches!(r, LoginResult::Failed));
    }
    let ip_key = "ip:192.0.2.7".to_string();
    let recorded = a
        .shared_failures()
        .failures(std::slice::from_ref(&ip_key), 300)
        .await;
    assert!(
        matches!(recorded.as_deref(), Ok([(3, blocked)]) if *blocked > 0),
        "node A's three failures as the database holds them: {recorded:?}"
    );
    // Node B never saw a failure itself, and still refuses the address: one budget for all nodes.
    let r = login(
        b.as_ref(),
        &config,
        &throttle_b,
        attacker,
        "bob",
        "right-pw",
    )
    .await;
    let seen = match &r {
        LoginResult::Ok(_) => "Ok".to_string(),
        LoginResult::Failed => "Failed".to_string(),
        LoginResult::Blocked => "Blocked".to_string(),
        LoginResult::Unavailable(e) => format!("Unavailable({e})"),
    };
    assert!(
        matches!(r, LoginResult::Blocked),
        "node B answered {seen}; the shared counts: {:?}",
        b.shared_failures()
            .failures(&[ip_key, "user:bob".to_string()], 300)
            .await
    );
    let r = login(b.as_ref(), &config, &throttle_b, other, "bob", "right-pw").await;
    assert!(
        matches!(r, LoginResult::Ok(_)),
        "another address is not blocked"
    );
}

/// The sweep of old shared failure counts runs (it once failed to, 42725, taking the failure being
/// recorded with it: one failed login in 64 went uncounted), and keeps a count that still blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_shared_login_failures_are_swept_and_blocks_are_kept() {
    use jmail::store::postgres::PgStore;
    use std::sync::Arc;
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let store = Arc::new(
        PgStore::open(&url, jmail::store::ModelLimits::default())
            .await
            .unwrap(),
    );
    let shared = store.shared_failures();
    let (old, blocking) = ("ip:203.0.113.1".to_string(), "ip:203.0.113.2".to_string());
    shared
        .failed(std::slice::from_ref(&old), 300, 10, 300)
        .await
        .unwrap();
    shared
        .failed(std::slice::from_ref(&blocking), 300, 1, 300)
        .await
        .unwrap();
    assert_eq!(store.forget_login_failures(300).await.unwrap(), 0);
    // With a window of nothing every count is old; the one still blocking stays.
    assert_eq!(store.forget_login_failures(0).await.unwrap(), 1);
    let counts = shared.failures(&[old, blocking], 300).await.unwrap();
    assert_eq!(counts[0], (0, 0), "the old count is gone");
    assert_eq!(counts[1].0, 1, "the blocking count stays");
    assert!(counts[1].1 > 0, "and still blocks: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_database_of_a_newer_schema_and_migrations_run_once() {
    use jmail::store::postgres::PgStore;
    let Some(url) = crate::pg::fresh_database().await else {
        return;
    };
    let limits = jmail::store::ModelLimits::default();
    // Four nodes starting at once: each migration is applied once, and all of them open.
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            async move { PgStore::open(&url, limits).await.map(drop) }
        })
        .collect();
    let opened = futures_join_all(starts).await;
    assert!(opened.iter().all(|o| o.is_ok()), "{opened:?}");
    let version = crate::pg::count(&url, "SELECT version FROM jmail_schema").await;
    assert_eq!(version as usize, jmail::store::postgres::schema_version());
    assert_eq!(
        crate::pg::count(&url, "SELECT count(*) FROM jmail_schema").await,
        1
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute("UPDATE jmail_schema SET version = version + 1", &[])
        .await
        .unwrap();
    let refused = PgStore::open(&url, limits).await.err().unwrap().to_string();
    assert!(refused.contains("written by a newer Jmail"), "{refused}");
}

/// Runs futures side by side (tokio has no join_all of its own).
async fn futures_join_all<F: std::future::Future + Send + 'static>(all: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = all.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sslmode_require_every_connection_is_tls_and_the_certificate_is_checked() {
    use jmail::store::postgres::PgStore;
    if crate::pg::fresh_database().await.is_none() {
        return;
    }
    let server = OwnServer::start();
    let cert = OwnServer::run(&["tls", server.dir.to_str().unwrap()]);
    let url = format!("{}?sslmode=require", server.url);
    let limits = jmail::store::ModelLimits::default();
    // A certificate nobody vouches for is refused.
    let refused = PgStore::open_with_tls(&url, limits, None)
        .await
        .err()
        .unwrap();
    assert!(refused.to_string().contains("PostgreSQL"), "{refused}");
    // Trusted through store_tls_roots: it works, over TLS.
    let store = PgStore::open_with_tls(&url, limits, Some(Path::new(&cert)))
        .await
        .unwrap();
    jmail::store::AccountStore::create_user(&store, "ann", "hash", None)
        .await
        .unwrap();
    // The listener connects on its own task: on a busy machine it may not be there yet.
    let mut tls = 0;
    for _ in 0..100 {
        tls = crate::pg::count(&server.url, "SELECT count(*) FROM pg_stat_ssl WHERE ssl").await;
        if tls >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        tls >= 2,
        "the pool's and the listener's connections use TLS ({tls})"
    );
    jmail::store::MailStore::close(&store).await;
}
