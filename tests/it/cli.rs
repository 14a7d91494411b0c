//! The `jmail` binary as a user runs it: accounts, serve, the client commands, signals.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_jmail");

pub fn jmail(args: &[&str], dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("JMAIL_DATA_DIR", dir)
        // Pins go to the test's own file, never the user's ~/.config.
        .env("JMAIL_KNOWN_SERVERS", dir.join("known_servers"))
        .env_remove("JMAIL_PASSWORD")
        .env_remove("RUST_LOG");
    c
}

/// `jmail user add NAME --password-stdin` in data dir `d`; the test fails if it does.
pub fn add_user(d: &std::path::Path, name: &str, password: &str) {
    let out = run_with_stdin(
        jmail(&["user", "add", name, "--password-stdin"], d),
        &format!("{password}\n"),
    );
    assert!(
        out.status.success(),
        "user add {name}: {}",
        text(&out.stderr)
    );
}

pub fn run_with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that exits without reading its input (an error before it asks) closes the pipe first.
    let written = child.stdin.take().unwrap().write_all(input.as_bytes());
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

/// A client command run as `user` against a served `addr`.
pub fn as_user(
    d: &std::path::Path,
    addr: &str,
    user: &str,
    password: &str,
    args: &[&str],
) -> Output {
    let mut c = jmail(args, d);
    c.args(["--server", addr, "--user", user])
        .env("JMAIL_PASSWORD", password);
    c.output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `jmail serve` child and the lines of its log.
pub struct Served {
    pub child: Child,
    pub addr: String,
    /// The server's ready line.
    pub ready: String,
    pub log: mpsc::Receiver<String>,
}

/// A failing test must not leave a server running (it would also hold the test's output open).
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path) -> Served {
    serve_with(dir, &[])
}

/// The listeners besides the native one. Their default ports are fixed (25, 587, 110, 465, 995, 2006, 143,
/// 993), so tests that run servers side by side turn them off unless a test asks for one.
pub const LISTENER_FLAGS: [&str; 10] = [
    "--smtp-port",
    "--submission-port",
    "--pop3-port",
    "--submissions-port",
    "--pop3s-port",
    "--native-tls-port",
    "--imap-port",
    "--imaps-port",
    "--https-port",
    "--http-port",
];

/// Starts `jmail serve` on 127.0.0.1 and an OS-chosen port, with extra arguments.
pub fn serve_with(dir: &std::path::Path, extra: &[&str]) -> Served {
    let mut args = vec!["serve"];
    if !extra.contains(&"--bind") {
        args.extend_from_slice(&["--bind", "127.0.0.1"]);
    }
    // Listeners other than the native one are off unless a test asks for them (25, 587 and 110 are shared).
    for flag in LISTENER_FLAGS {
        if !extra.contains(&flag) {
            args.extend_from_slice(&[flag, "0"]);
        }
    }
    args.extend_from_slice(extra);
    let mut child = jmail(&args, dir)
        .env("JMAIL_PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, log) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wrapped at once, so that a failed check below still kills the server (Served's Drop).
    let mut served = Served {
        child,
        addr: String::new(),
        ready: String::new(),
        log,
    };
    let ready = wait_for(&served.log, "jmail ready: native on ");
    assert!(
        extra.contains(&"--pop3-port") || !ready.contains("POP3"),
        "--pop3-port 0 turns POP3 off: {ready}"
    );
    served.addr = ready
        .split("native on ")
        .nth(1)
        .unwrap()
        .split([';', ','])
        .next()
        .unwrap()
        .to_string();
    assert!(
        ready.contains(&format!("data dir {}", dir.display())),
        "{ready}"
    );
    served.ready = ready;
    served
}

pub fn wait_for(log: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = log
            .recv_timeout(Duration::from_secs(20))
            .expect("log line in time");
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn accounts_serve_send_inbox_read_delete_watch_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run_with_stdin(
        jmail(&["user", "add", "alice", "--password-stdin"], d),
        "alice pw\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "added user alice\n");
    let out = run_with_stdin(
        jmail(&["user", "add", "Bob", "--password-stdin"], d),
        "bob pw\n",
    );
    assert_eq!(text(&out.stdout), "added user bob\n");
    let out = run_with_stdin(jmail(&["user", "add", "bob", "--password-stdin"], d), "x\n");
    assert!(!out.status.success());
    assert_eq!(text(&out.stderr), "jmail: user bob already exists\n");
    let out = run_with_stdin(
        jmail(&["user", "add", "no way", "--password-stdin"], d),
        "x\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("jmail: a user name uses only"),
        "{}",
        text(&out.stderr)
    );
    // A password no protocol could send (SASL PLAIN splits at NUL) is refused, and no account is made.
    let out = run_with_stdin(
        jmail(&["user", "add", "dora", "--password-stdin"], d),
        "pass\0word\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "jmail: a password is 1 to 1024 bytes without a line break or NUL (no protocol could send one)\n"
    );
    let list = jmail(&["user", "list"], d).output().unwrap();
    assert!(
        !text(&list.stdout).contains("dora"),
        "{}",
        text(&list.stdout)
    );

    let mut server = serve(d);
    let client = |args: &[&str], user: &str, password: &str| {
        let mut c = jmail(args, d);
        c.env("JMAIL_SERVER", &server.addr)
            .env("JMAIL_USER", user)
            .env("JMAIL_PASSWORD", password);
        c
    };

    // The server is running: accounts can still be managed.
    let out = run_with_stdin(
        jmail(&["user", "add", "carol", "--password-stdin"], d),
        "carol pw\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = jmail(&["user", "list", "--json"], d).output().unwrap();
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["alice", "bob", "carol"]);

    // watch prints new mail as it arrives.
    let mut watcher = client(&["watch", "--json"], "bob", "bob pw")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut watch_out = BufReader::new(watcher.stdout.take().unwrap());
    let mut watch_err = BufReader::new(watcher.stderr.take().unwrap());
    let mut started = String::new();
    // Printed once WATCH is in place (after the notice of the certificate's pinning, if this is the
    // first TLS connection to this server).
    while started.is_empty() || started.starts_with("jmail: first TLS connection") {
        started.clear();
        watch_err.read_line(&mut started).unwrap();
    }
    assert_eq!(started, "watching bob for new mail (Ctrl-C to stop)\n");

    let out = run_with_stdin(
        client(
            &["send", "--subject", "Hello Bob", "bob", "carol"],
            "alice",
            "alice pw",
        ),
        "line one\nline two\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("SENT 2 <"),
        "{}",
        text(&out.stdout)
    );

    let mut pushed = String::new();
    watch_out.read_line(&mut pushed).unwrap();
    let pushed: serde_json::Value = serde_json::from_str(&pushed).unwrap();
    assert_eq!(pushed["subject"], "Hello Bob");
    assert_eq!(pushed["from"], "alice@localhost");
    assert_eq!(pushed["id"], 2);
    watcher.kill().unwrap();
    watcher.wait().unwrap();

    let out = client(&["inbox", "--json"], "bob", "bob pw")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let inbox: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let msgs = inbox["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["subject"], "Hello Bob");
    assert_eq!(msgs[1]["seen"], false);
    assert!(msgs[1]["size"].as_u64().unwrap() > 100);
    assert!(msgs[1]["date"].as_str().unwrap().ends_with('Z'));
    assert_eq!(inbox["modseq"], 2);

    let out = client(&["read", "2"], "bob", "bob pw").output().unwrap();
    let shown = text(&out.stdout);
    assert!(
        shown.starts_with("From: alice@localhost\nTo: bob@localhost, carol@localhost\nDate: "),
        "{shown}"
    );
    assert!(
        shown.ends_with("Subject: Hello Bob\n\nline one\nline two\n"),
        "{shown}"
    );

    let out = client(&["inbox"], "bob", "bob pw").output().unwrap();
    let table = text(&out.stdout);
    assert!(
        table.lines().nth(2).unwrap().starts_with("      2  "),
        "read message has no unread mark:\n{table}"
    );
    assert!(
        table.lines().nth(1).unwrap().starts_with("*     1  "),
        "{table}"
    );

    let out = client(&["delete", "2"], "bob", "bob pw").output().unwrap();
    assert_eq!(text(&out.stdout), "deleted message 2\n");
    let out = client(&["read", "2"], "bob", "bob pw").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "jmail: no message 2 (NOTFOUND)\n");

    let out = client(&["inbox"], "bob", "wrong").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "jmail: login failed: invalid user name or password (AUTH)\n"
    );
    let out = client(&["send", "--message", "x", "nobody"], "alice", "alice pw")
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stderr),
        "jmail: no such user: nobody; nothing was sent (NOUSER)\n"
    );
    let mut unreachable = jmail(&["inbox", "--server", "127.0.0.1:1", "--user", "bob"], d);
    let out = unreachable.env("JMAIL_PASSWORD", "x").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("jmail: cannot connect to 127.0.0.1:1: "),
        "{}",
        text(&out.stderr)
    );

    // Deleting a user asks first; --yes skips the question. Their mail goes with them.
    let out = jmail(&["user", "del", "carol"], d)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stderr),
        "jmail: refusing to delete carol without confirmation; add --yes\n"
    );
    let out = jmail(&["user", "del", "carol", "--yes"], d)
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "deleted user carol and their mail\n");
    let out = client(&["inbox"], "carol", "carol pw").output().unwrap();
    assert_eq!(out.status.code(), Some(1));

    // SIGTERM: a clean stop with exit status 0.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for(&server.log, "stopped");
    assert!(server.child.wait().unwrap().success());

    // The data is still there after the restart.
    let server = serve(d);
    let out = as_user(d, &server.addr, "alice", "alice pw", &["inbox", "--json"]);
    let inbox: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inbox["messages"][0]["subject"], "Welcome to Jmail");
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
}

/// On a terminal with no port configured, `serve` asks for one, as the original did. `script` gives the
/// server a pseudo-terminal; answering 0 lets the OS pick a free port.
#[test]
fn serve_asks_for_the_port_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let off: Vec<String> = LISTENER_FLAGS.iter().map(|f| format!("{f} 0")).collect();
    let command = format!(
        "{BIN} serve --bind 127.0.0.1 {} --data-dir {} --log-level info",
        off.join(" "),
        dir.path().display()
    );
    // A process group of its own: `script` forks, and killing only its first process would leave the
    // server (and a process holding the test's output open) behind.
    let mut child = Command::new("script")
        .process_group(0)
        .args(["-qfc", &command, "/dev/null"])
        .env_remove("JMAIL_PORT")
        .env_remove("JMAIL_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"0\n").unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let ready = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server output in time");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("jmail ready: native on ") {
            break line;
        }
    };
    assert!(seen.contains("Port for Jmail [2005]: "), "{seen}");
    let port: u16 = ready
        .split("127.0.0.1:")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(port, 0);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut greeting = [0u8; 28];
    std::io::Read::read_exact(&mut stream, &mut greeting).unwrap();
    assert_eq!(&greeting, b"You have connected to Jmail.");
    drop(stdin);
    let group = format!("-{}", child.id());
    let killed = Command::new("kill").args(["-KILL", "--", &group]).status();
    assert!(killed.unwrap().success());
    child.wait().unwrap();
}

/// `jmail bench` creates its users, sends what it says it sent, and reports it as JSON.
#[test]
fn bench_sends_every_message_it_reports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (smtp_port, pop3_port) = (free_port().to_string(), free_port().to_string());
    let server = serve_with(d, &["--smtp-port", &smtp_port, "--pop3-port", &pop3_port]);
    let smtp_addr = format!("127.0.0.1:{smtp_port}");
    let pop3_addr = format!("127.0.0.1:{pop3_port}");
    // POP3 last: it retrieves what the others sent.
    for (protocol, addr) in [
        ("native", &server.addr),
        ("smtp", &smtp_addr),
        ("pop3", &pop3_addr),
    ] {
        for reuse in [true, false] {
            let mut args = vec!["bench", "--server", addr, "--protocol", protocol];
            args.extend(["--setup-users", "--clients", "4", "--messages", "30"]);
            args.extend(["--users", "3", "--size", "100", "--json"]);
            if reuse {
                args.push("--reuse-connections");
            }
            let out = jmail(&args, d).output().unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["protocol"], protocol);
            assert_eq!(
                (report["messages"].as_u64(), report["errors"].as_u64()),
                (Some(30), Some(0)),
                "{protocol}, reuse {reuse}"
            );
            assert!(report["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
        }
    }
    let out = jmail(&["user", "list", "--json"], d).output().unwrap();
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total: u64 = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["messages"].as_u64().unwrap())
        .sum();
    assert_eq!(
        total,
        3 + 120,
        "three welcome messages and every message sent (POP3 only reads)"
    );
}

/// A port that was free a moment ago, for a child server that must keep one port across restarts or
/// whose port a test must know.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The client commands switch to TLS when the server offers it; a first certificate is pinned, a changed
/// one refused with a message that says what to do.
#[test]
fn client_commands_use_tls_and_pin_the_certificate() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = free_port().to_string();
    for d in [one.path(), two.path()] {
        let out = run_with_stdin(
            jmail(&["user", "add", "bob", "--password-stdin"], d),
            "pw\n",
        );
        assert!(out.status.success());
    }
    let server = serve_with(one.path(), &["--port", &port]);
    let addr = server.addr.clone();
    let fingerprint = server.ready.rsplit(' ').next().unwrap().to_string();
    let first = as_user(one.path(), &addr, "bob", "pw", &["inbox"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(
        text(&first.stderr),
        format!(
            "jmail: first TLS connection to {addr}: certificate SHA-256 {fingerprint} pinned in {}\n",
            one.path().join("known_servers").display()
        )
    );
    let pins = std::fs::read_to_string(one.path().join("known_servers")).unwrap();
    assert_eq!(pins, format!("{addr} {fingerprint}\n"));
    let again = as_user(one.path(), &addr, "bob", "pw", &["inbox"]);
    assert!(again.status.success());
    assert_eq!(
        text(&again.stderr),
        "",
        "a known certificate is accepted quietly"
    );
    drop(server);

    // Another server (another certificate) at the same address: refused, nothing sent.
    let _other = serve_with(two.path(), &["--port", &port]);
    std::fs::copy(
        one.path().join("known_servers"),
        two.path().join("known_servers"),
    )
    .unwrap();
    let changed = as_user(two.path(), &addr, "bob", "pw", &["inbox"]);
    assert!(!changed.status.success());
    let message = text(&changed.stderr);
    assert!(
        message.starts_with(&format!(
            "jmail: the TLS certificate of {addr} changed: pinned SHA-256 {fingerprint}, now "
        )),
        "{message}"
    );
    assert!(message.contains("remove the line for"), "{message}");
}

/// `jmail deliver` puts a system message into a mailbox, with any sender text, as the original's
/// generator did; unknown users are refused.
#[test]
fn deliver_puts_a_system_message_into_a_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_with_stdin(
        jmail(&["user", "add", "alice", "--password-stdin"], d),
        "pw\n",
    );
    let deliver = |to: &str| {
        jmail(
            &[
                "deliver",
                "--to",
                to,
                "--from",
                "JMailServer",
                "--subject",
                "Notice",
            ],
            d,
        )
    };
    let out = run_with_stdin(deliver("Alice"), "Maintenance tonight.\n");
    assert_eq!(
        text(&out.stdout),
        "delivered to alice\n",
        "{}",
        text(&out.stderr)
    );
    let out = run_with_stdin(deliver("ghost"), "x");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "jmail: no such user: ghost\n");
    // No bigger than any other way in lets a message be (the default 10 MiB here).
    let out = run_with_stdin(deliver("alice"), &"x".repeat((10 << 20) + 1));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "jmail: the message is larger than limits.message_bytes_max (10485760 bytes); nothing was delivered\n"
    );

    let server = serve(d);
    let out = as_user(d, &server.addr, "alice", "pw", &["inbox", "--json"]);
    let inbox: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let notice = &inbox["messages"][1];
    assert_eq!(
        (notice["from"].as_str(), notice["subject"].as_str()),
        (Some("JMailServer"), Some("Notice"))
    );
    let out = jmail(
        &[
            "read",
            "2",
            "--raw",
            "--server",
            &server.addr,
            "--user",
            "alice",
        ],
        d,
    )
    .env("JMAIL_PASSWORD", "pw")
    .output()
    .unwrap();
    let raw = text(&out.stdout);
    assert!(
        raw.contains("From: \"JMailServer\" <postmaster@localhost>\r\n"),
        "{raw}"
    );
    let out = as_user(d, &server.addr, "alice", "pw", &["read", "2"]);
    assert!(
        text(&out.stdout).ends_with("Subject: Notice\n\nMaintenance tonight.\n"),
        "{}",
        text(&out.stdout)
    );
}

/// The original's data files come in: users with their old passwords, mail with its senders and times;
/// twice imports nothing twice; a malformed file imports nothing and says where it is wrong.
#[test]
fn import_legacy_is_idempotent_and_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let users = d.join("userdat.txt");
    let mail = d.join("jmail.txt");
    std::fs::write(&users, r#"{"alice": "old pass", "Bob": "b0b"}"#).unwrap();
    std::fs::write(
        &mail,
        r#"{"alice": {"bob At:2023-05-01 10:00:00.123456": "hi alice\\nsee you",
                      "JMailServer At:2023-04-30 09:00:00.000001": "Welcome!"},
            "bob": {"alice At:2023-05-01 10:05:00.000000": "hi bob"},
            "ghost": {"alice At:2023-05-01 10:06:00.000000": "to nobody"}}"#,
    )
    .unwrap();
    let import_files = |users: &std::path::Path, mail: &std::path::Path| {
        let (users, mail) = (users.to_str().unwrap(), mail.to_str().unwrap());
        jmail(&["import-legacy", "--users", users, "--mail", mail], d)
            .output()
            .unwrap()
    };
    let import = || import_files(&users, &mail);
    let out = import();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "imported 2 users (0 already present) and 3 messages (0 already present)\n\
         skipped 1 messages whose mailbox names no user (the original created such mailboxes)\n"
    );
    let out = import();
    assert!(
        text(&out.stdout).starts_with(
            "imported 0 users (2 already present) and 0 messages (3 already present)\n"
        )
    );

    // A malformed file: nothing is imported, and the error names the file and the place.
    let carol = d.join("carol.txt");
    std::fs::write(&carol, r#"{"carol": "pw"}"#).unwrap();
    std::fs::write(&mail, r#"{"carol": {"alice At:yesterday": "x"}}"#).unwrap();
    let out = import_files(&carol, &mail);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "jmail: {}: mailbox \"carol\", key \"alice At:yesterday\": the time is not YYYY-MM-DD HH:MM:SS.ffffff\n",
            mail.display()
        )
    );
    std::fs::write(&mail, "{\"carol\": {\n  \"x\" 1}}").unwrap();
    let out = import_files(&carol, &mail);
    assert!(
        text(&out.stderr).starts_with(&format!("jmail: {}: line 2 column", mail.display())),
        "{}",
        text(&out.stderr)
    );
    let out = jmail(&["user", "list", "--json"], d).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "carol was not imported");

    // Old passwords work; mail keeps its sender and time.
    let server = serve(d);
    let out = as_user(d, &server.addr, "alice", "old pass", &["inbox", "--json"]);
    let inbox: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let msgs = inbox["messages"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = msgs
        .iter()
        .map(|m| (m["from"].as_str().unwrap(), m["date"].as_str().unwrap()))
        .collect();
    assert!(
        summary.contains(&("bob@localhost", "2023-05-01T10:00:00Z")),
        "{summary:?}"
    );
    assert!(
        summary.contains(&("JMailServer", "2023-04-30T09:00:00Z")),
        "{summary:?}"
    );
    let id = msgs.iter().find(|m| m["from"] == "bob@localhost").unwrap()["id"].to_string();
    let out = as_user(d, &server.addr, "alice", "old pass", &["read", &id]);
    assert!(
        text(&out.stdout).ends_with("\n\nhi alice\nsee you\n"),
        "{}",
        text(&out.stdout)
    );
}

/// `jmail import` and `jmail export` from the command line, with their summary lines.
#[test]
fn import_and_export_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_with_stdin(
        jmail(&["user", "add", "alice", "--password-stdin"], d),
        "pw\n",
    );
    let file = d.join("in.mbox");
    std::fs::write(
        &file,
        "From x Mon Nov 30 12:00:00 2026\nSubject: hi\n\nbody\n\n",
    )
    .unwrap();
    let import = || {
        jmail(
            &[
                "import",
                "--user",
                "Alice",
                "--format",
                "mbox",
                file.to_str().unwrap(),
            ],
            d,
        )
        .output()
        .unwrap()
    };
    let out = import();
    assert_eq!(
        text(&out.stdout),
        "imported 1 messages for alice (0 already present, 0 larger than message_bytes_max skipped)\n",
        "{}",
        text(&out.stderr)
    );
    assert!(text(&import().stdout).starts_with("imported 0 messages for alice (1 already present"));
    let md = d.join("md");
    let out = jmail(
        &[
            "export",
            "--user",
            "alice",
            "--format",
            "maildir",
            md.to_str().unwrap(),
        ],
        d,
    )
    .output()
    .unwrap();
    assert_eq!(
        text(&out.stdout),
        format!("exported 2 messages of alice to {}\n", md.display())
    );
    let out = jmail(&["export", "--user", "nobody", "--format", "mbox", "x"], d)
        .output()
        .unwrap();
    assert_eq!(text(&out.stderr), "jmail: no such user: nobody\n");
}

/// `echo text | jmail send` reads the text from the pipe and asks for the password on the controlling
/// terminal (here `script`'s pseudo-terminal), as ssh and sudo do.
#[test]
fn send_asks_for_the_password_on_the_terminal_when_stdin_is_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, "alice", "alice-pw");
    add_user(d, "bob", "bob-pw");
    let server = serve(d);
    let command = format!(
        "echo 'text from a pipe' | {BIN} send --server {} --user alice --subject piped bob; echo SEND-EXIT=$?",
        server.addr
    );
    let mut child = Command::new("script")
        .process_group(0)
        .args(["-qfc", &command, "/dev/null"])
        .env("JMAIL_KNOWN_SERVERS", d.join("known_servers"))
        .env_remove("JMAIL_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut byte = [0u8; 1];
        while std::io::Read::read(&mut reader, &mut byte).unwrap_or(0) == 1 {
            if tx.send(byte[0]).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !text(&seen).contains(what) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(b) => seen.push(b),
                Err(_) => panic!("no {what:?} in {:?}", text(&seen)),
            }
        }
    };
    wait_for("Password for alice: ");
    stdin.write_all(b"alice-pw\n").unwrap();
    wait_for("SEND-EXIT=0");
    let inbox = as_user(d, &server.addr, "bob", "bob-pw", &["inbox", "--json"]);
    assert!(
        text(&inbox.stdout).contains("\"subject\":\"piped\""),
        "{}",
        text(&inbox.stdout)
    );
    drop(stdin);
    let _ = child.wait();
}

/// `jmail read` shows the sender's name, LF line ends and the attachments, and saves them inside the
/// folder it is given, whatever names the sender chose, never over an existing file.
#[test]
fn read_shows_names_and_attachments_and_saves_them_safely() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, "bob", "pw");
    let mbox = d.join("in.mbox");
    std::fs::write(
        &mbox,
        "From alice@example.org Thu Dec  3 12:00:00 2026\n\
From: Alice Example <alice@example.org>\nTo: bob@localhost\nSubject: report\nMessage-ID: <r1@example.org>\n\
MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n\
--b\nContent-Type: text/plain\n\nSee attached.\nTwo lines.\n\
--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"../../evil.pdf\"\n\
Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--b--\n",
    )
    .unwrap();
    let out = jmail(
        &[
            "import",
            "--user",
            "bob",
            "--format",
            "mbox",
            mbox.to_str().unwrap(),
        ],
        d,
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let server = serve(d);
    let saved = d.join("saved");
    let read = |extra: &[&str]| {
        let mut args = vec!["read", "2"];
        args.extend_from_slice(extra);
        as_user(d, &server.addr, "bob", "pw", &args)
    };
    let out = read(&["--save-attachments", saved.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(!shown.contains('\r'), "{shown:?}");
    assert!(
        shown.starts_with("From: Alice Example <alice@example.org>\nTo: bob@localhost\n"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "Subject: report\n\nSee attached.\nTwo lines.\n\nAttachments:\n  1. ../../evil.pdf (application/pdf, 9 bytes)\n"
        ),
        "{shown}"
    );
    assert!(
        shown.ends_with(&format!("saved {}\n", saved.join("evil.pdf").display())),
        "{shown}"
    );
    assert_eq!(
        std::fs::read(saved.join("evil.pdf")).unwrap(),
        b"%PDF-1.4\n"
    );
    assert!(
        !d.join("evil.pdf").exists() && !dir.path().parent().unwrap().join("evil.pdf").exists()
    );
    // Again: the first file stays, the second gets its own name.
    let out = read(&["--save-attachments", saved.to_str().unwrap()]);
    assert!(
        text(&out.stdout).ends_with(&format!("saved {}\n", saved.join("evil (2).pdf").display())),
        "{}",
        text(&out.stdout)
    );
}

/// `jmail config check` says OK or names every error, as `jmail serve` would meet them; completions and
/// man pages come from the CLI definition.
#[test]
fn config_check_completions_and_man_pages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let check = |body: &str| {
        let file = d.join("jmail.toml");
        std::fs::write(&file, body).unwrap();
        jmail(&["config", "check", "--config", file.to_str().unwrap()], d)
            .output()
            .unwrap()
    };
    let good = check("port = 2005\nlog_level = \"info\"\n[limits]\nidle_secs_auth = 600\n");
    assert_eq!(good.status.code(), Some(0), "{}", text(&good.stderr));
    assert_eq!(
        text(&good.stdout),
        format!("{}: OK\n", d.join("jmail.toml").display())
    );
    for (body, says) in [
        (
            "[limits]\nidle_secs_auth = 9223372036854775807\nconnections_per_ip_max = 0\n",
            "limits.connections_per_ip_max is 0; it must be from 1 to 1000000; limits.idle_secs_auth is 9223372036854775807; it must be from 1 to 86400",
        ),
        ("log_level = \"inof\"\n", "log level \"inof\" is not one of"),
        ("prot = 25\n", "unknown field `prot`"),
        (
            "postmaster = \"ops team\"\n",
            "postmaster = \"ops team\" is not a user name",
        ),
        (
            "tls_cert = \"/nonexistent/cert.pem\"\n",
            "tls_cert and tls_key go together",
        ),
        (
            "tls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n",
            "/nonexistent/cert.pem",
        ),
        (
            "hostname = \"evil.example\\r\\nX-Injected: yes\"\n",
            "hostname must be a plain host name",
        ),
        ("relay_host = \"::::\"\n", "relay_host must be"),
        (
            "[limits]\nrecipients_max = \"many\"\n",
            "recipients_max: invalid type",
        ),
    ] {
        let out = check(body);
        assert_eq!(out.status.code(), Some(1), "{body}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with("jmail: ") && err.contains(says),
            "{body}: {err}"
        );
        // One line, its cause said once.
        assert_eq!(err.lines().count(), 1, "{body}: {err}");
        assert_eq!(err.matches(says).count(), 1, "{body}: {err}");
    }

    let bash = jmail(&["completions", "bash"], d).output().unwrap();
    assert!(bash.status.success());
    let script = text(&bash.stdout);
    assert!(
        script.contains("complete -F _jmail") && script.contains("--save-attachments"),
        "{script}"
    );
    let man = jmail(&["man"], d).output().unwrap();
    let page = text(&man.stdout);
    assert!(
        page.contains("\n.TH jmail 1 ") && page.contains("\n.SH SUBCOMMANDS\n"),
        "{page}"
    );
    let pages = d.join("man");
    let out = jmail(&["man", "--dir", pages.to_str().unwrap()], d)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in [
        "jmail.1",
        "jmail-serve.1",
        "jmail-user-add.1",
        "jmail-config-check.1",
    ] {
        let roff = std::fs::read_to_string(pages.join(page)).unwrap();
        assert!(roff.contains(".TH "), "{page}");
    }
    let usage = jmail(&["serve", "--no-such-flag"], d).output().unwrap();
    assert_eq!(
        usage.status.code(),
        Some(2),
        "usage errors exit 2, as the README says"
    );
}

/// `--log-format json` writes one JSON object per line, and a start with default settings does not warn
/// about the open-file limit (the connection cap is derived from it).
#[test]
fn json_logs_and_no_open_file_warning_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, "alice", "pw");
    let mut args = vec!["serve", "--bind", "127.0.0.1", "--log-format", "json"];
    for flag in LISTENER_FLAGS {
        args.extend_from_slice(&[flag, "0"]);
    }
    let mut child = jmail(&args, d)
        .env("JMAIL_PORT", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let ready = line.contains("jmail ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    for line in &lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            event["level"].is_string() && event["fields"]["message"].is_string(),
            "{line}"
        );
        assert!(!line.contains("open-file limit"), "{line}");
    }
    let ready: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(ready["level"], "INFO");
    assert!(
        ready["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("jmail ready: native on 127.0.0.1:")
    );
}

/// Listing commands whose reader went away (`jmail user list | head -1`) end quietly, without a panic.
#[test]
fn a_listing_whose_reader_is_gone_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_user(d, "alice", "alice-pw-123");
    for _ in 0..3 {
        let mut child = jmail(&["user", "list"], d)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The read end closes before the command has opened the store, let alone written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(text(&out.stderr), "", "no panic, no message");
    }
}

/// `jmail deliver` run as its own process on the data dir `dir` (beside a running server): a message
/// "hello from another process" from Admin to `to`.
pub async fn deliver_from_another_process(dir: &std::path::Path, to: &str, subject: &str) {
    let (dir, to, subject) = (dir.to_path_buf(), to.to_string(), subject.to_string());
    let out = tokio::task::spawn_blocking(move || {
        run_with_stdin(
            jmail(
                &[
                    "deliver",
                    "--to",
                    &to,
                    "--from",
                    "Admin",
                    "--subject",
                    &subject,
                ],
                &dir,
            ),
            "hello from another process\n",
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// `jmail user del NAME --yes` run as its own process on the data dir `dir`, beside a running server.
pub async fn delete_user_from_another_process(dir: &std::path::Path, name: &str) {
    let (dir, name) = (dir.to_path_buf(), name.to_string());
    let out = tokio::task::spawn_blocking(move || {
        run_with_stdin(jmail(&["user", "del", &name, "--yes"], &dir), "")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn dns_records_name_every_record_and_make_the_keys_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let records = |domain: &str| {
        let out = jmail(&["dns", "records", "--domain", domain], d)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let first = records("example.org");
    for want in [
        "example.org.\tIN\tMX\t10 example.org.",
        "example.org.\tIN\tTXT\t\"v=spf1 mx -all\"",
        "jmail-ed25519._domainkey.example.org.\tIN\tTXT\t\"v=DKIM1; k=ed25519; p=",
        "jmail-rsa._domainkey.example.org.\tIN\tTXT\t( \"v=DKIM1; k=rsa; p=MII",
        "_dmarc.example.org.\tIN\tTXT\t\"v=DMARC1; p=quarantine; adkim=s; aspf=s\"",
    ] {
        assert!(first.contains(want), "{want:?} in\n{first}");
    }
    assert_eq!(records("example.org"), first, "the keys are made once");
    use std::os::unix::fs::PermissionsExt;
    let key = d.join("dkim/example.org.rsa.pem");
    assert_eq!(
        std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
