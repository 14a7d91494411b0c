//! The IMAP side of `jmail bench`: one operation is a client's ordinary round on its INBOX: the headers
//! of the newest messages, one whole message, a flag change, an APPEND, and that message flagged
//! `\Deleted` and expunged again (so the mailbox keeps its size). With a new connection per operation the
//! connect, LOGIN, SELECT and LOGOUT are part of its time. It speaks only what every IMAP server has
//! (plus UIDPLUS, which Dovecot has), so the same run measures Jmail and Dovecot.

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest response line read (literals are read by their length).
const LINE_BYTES_MAX: u64 = 64 * 1024;
/// How many of the newest messages a round lists the headers of.
const HEADERS_LISTED: u32 = 20;

pub struct ImapConn {
    stream: BufReader<TcpStream>,
    /// Messages in the selected INBOX, as the server said.
    exists: u32,
    next_tag: u32,
}

/// The message a round appends.
fn appended(size: usize) -> Vec<u8> {
    let mut m = b"From: bench@localhost\r\nTo: bench@localhost\r\nSubject: bench\r\n\r\n".to_vec();
    m.resize(m.len() + size, b'x');
    m.extend_from_slice(b"\r\n");
    m
}

impl ImapConn {
    /// Connects, logs in and selects INBOX.
    pub async fn connect(server: &str, user: &str, password: &str) -> anyhow::Result<ImapConn> {
        let stream = super::bench::dial(server).await?;
        let mut conn = ImapConn {
            stream: BufReader::new(stream),
            exists: 0,
            next_tag: 0,
        };
        let greeting = conn.line().await?;
        if !greeting.starts_with(b"* OK") {
            bail!(
                "greeting: {}",
                String::from_utf8_lossy(&greeting).trim_end()
            );
        }
        conn.command(format!("LOGIN \"{user}\" \"{password}\"").as_bytes())
            .await?;
        conn.command(b"SELECT INBOX").await?;
        Ok(conn)
    }

    /// Appends messages until INBOX holds at least `count` (setup, untimed).
    pub async fn fill(&mut self, count: u32, size: usize) -> anyhow::Result<()> {
        let message = appended(size);
        while self.exists < count {
            self.append(&message).await?;
            self.command(b"NOOP").await?;
        }
        Ok(())
    }

    /// One round: headers, a body, a flag, an append, and its expunge.
    pub async fn round(&mut self, size: usize) -> anyhow::Result<()> {
        if self.exists == 0 {
            bail!("INBOX is empty: fill it first (--fill)");
        }
        let n = self.exists;
        let first = n.saturating_sub(HEADERS_LISTED - 1).max(1);
        self.command(
            format!(
                "FETCH {first}:{n} (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])"
            )
            .as_bytes(),
        )
        .await?;
        self.command(format!("FETCH {n} (BODY.PEEK[])").as_bytes())
            .await?;
        self.command(format!("STORE {n} +FLAGS (\\Seen)").as_bytes())
            .await?;
        let uid = self.append(&appended(size)).await?;
        self.command(format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)").as_bytes())
            .await?;
        self.command(format!("UID EXPUNGE {uid}").as_bytes())
            .await?;
        Ok(())
    }

    pub async fn logout(mut self) {
        let _ = self.command(b"LOGOUT").await;
    }

    /// APPENDs with a non-synchronizing literal; returns the new UID (APPENDUID).
    async fn append(&mut self, message: &[u8]) -> anyhow::Result<u32> {
        let mut command = format!("APPEND INBOX {{{}+}}\r\n", message.len()).into_bytes();
        command.extend_from_slice(message);
        let done = self.command(&command).await?;
        let text = String::from_utf8_lossy(&done);
        text.split("[APPENDUID ")
            .nth(1)
            .and_then(|rest| rest.split([' ', ']']).nth(1))
            .and_then(|uid| uid.parse().ok())
            .with_context(|| format!("no APPENDUID in {}", text.trim_end()))
    }

    /// Sends one command and reads to its tagged OK, keeping count of EXISTS and EXPUNGE.
    async fn command(&mut self, command: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.next_tag += 1;
        let tag = format!("b{}", self.next_tag);
        let mut out = format!("{tag} ").into_bytes();
        out.extend_from_slice(command);
        out.extend_from_slice(b"\r\n");
        self.stream.get_mut().write_all(&out).await?;
        loop {
            let line = self.line().await?;
            if let Some(rest) = line.strip_prefix(tag.as_bytes()) {
                if !rest.starts_with(b" OK") {
                    bail!("{}", String::from_utf8_lossy(&line).trim_end());
                }
                return Ok(line);
            }
            self.observe(&line);
            self.skip_literal(&line).await?;
        }
    }

    /// Keeps `exists` as the untagged responses say.
    fn observe(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let mut words = text.split_ascii_whitespace();
        if words.next() != Some("*") {
            return;
        }
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            return;
        };
        match (n.parse::<u32>(), what.to_ascii_uppercase().as_str()) {
            (Ok(n), "EXISTS") => self.exists = n,
            (Ok(_), "EXPUNGE") => self.exists = self.exists.saturating_sub(1),
            _ => {}
        }
    }

    /// Reads the literal a line announces, and the rest of its response.
    async fn skip_literal(&mut self, line: &[u8]) -> anyhow::Result<()> {
        let mut line = line.to_vec();
        loop {
            let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
            let Some(len) = trimmed
                .strip_suffix(b"}")
                .and_then(|t| t.iter().rposition(|&b| b == b'{').map(|i| &t[i + 1..]))
                .and_then(|digits| std::str::from_utf8(digits).ok()?.parse::<u64>().ok())
            else {
                return Ok(());
            };
            tokio::io::copy(&mut (&mut self.stream).take(len), &mut tokio::io::sink()).await?;
            line = self.line().await?;
        }
    }

    async fn line(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut line = Vec::new();
        let n = (&mut self.stream)
            .take(LINE_BYTES_MAX)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(line)
    }
}

/// `jmail bench --protocol imap --idle N`: N sessions IDLE on their users' INBOXes (users taken in turn);
/// then `deliveries` messages are APPENDed by another connection (to `append_via`: the same server, or
/// another node on the same database), one user at a time, and each idling
/// session of that user times from the APPEND being sent to its `* n EXISTS`. Returns every wake-up's
/// latency and how many sessions were never woken within `WAKE_WAIT`.
pub async fn idle_wakeups(
    (server, append_via): (&str, &str),
    prefix: &str,
    password: &str,
    users: usize,
    sessions: usize,
    deliveries: usize,
    size: usize,
) -> anyhow::Result<(Vec<std::time::Duration>, usize)> {
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tokio::sync::{Semaphore, mpsc};
    /// How long a delivery waits for every idler of its user.
    const WAKE_WAIT: Duration = Duration::from_secs(10);
    /// Sessions logging in at once while the idlers are set up.
    const SETUP_CONCURRENCY: usize = 32;
    let (woke_tx, mut woke_rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut setups = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let user = i % users;
        let (server, name, password) = (
            server.to_string(),
            format!("{prefix}{user}"),
            password.to_string(),
        );
        let (gate, woke) = (gate.clone(), woke_tx.clone());
        setups.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await?;
            let mut conn = ImapConn::connect(&server, &name, &password).await?;
            conn.next_tag += 1;
            conn.stream.get_mut().write_all(b"idle IDLE\r\n").await?;
            loop {
                let line = conn.line().await?;
                if line.starts_with(b"+") {
                    break;
                }
            }
            drop(permit);
            // Wait for news; each EXISTS is one wake-up.
            tokio::spawn(async move {
                while let Ok(line) = conn.line().await {
                    if line.ends_with(b"EXISTS\r\n") && woke.send((user, Instant::now())).is_err() {
                        break;
                    }
                }
            });
            anyhow::Ok(())
        }));
    }
    for setup in setups {
        setup.await??;
    }
    drop(woke_tx);
    let per_user = |u: usize| sessions / users + usize::from(u < sessions % users);
    // One sending session per user, made before the clock starts (APPEND goes to one's own INBOX).
    let mut senders = Vec::with_capacity(users.min(deliveries));
    for user in 0..users.min(deliveries) {
        senders.push(ImapConn::connect(append_via, &format!("{prefix}{user}"), password).await?);
    }
    let message = appended(size);
    let mut latencies = Vec::with_capacity(deliveries * sessions / users.max(1));
    let mut missed = 0;
    for d in 0..deliveries {
        let user = d % users;
        let t0 = Instant::now();
        senders[user].append(&message).await?;
        let want = per_user(user);
        let mut got = 0;
        while got < want {
            match tokio::time::timeout_at((t0 + WAKE_WAIT).into(), woke_rx.recv()).await {
                Ok(Some((u, at))) if u == user => {
                    latencies.push(at - t0);
                    got += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        missed += want - got;
    }
    for sender in senders {
        sender.logout().await;
    }
    Ok((latencies, missed))
}
