//! `jmail bench`: a load generator for the native protocol and SMTP, in the spirit of redis-benchmark and
//! Postfix's smtp-source. Clients log in as `<prefix>0..<prefix>U-1` and send to each other; every send is timed from
//! the command to the server's durable acknowledgement (with a new connection per message, the connect and
//! login are part of each message's time, as with smtp-source without -d).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Barrier;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::bench_imap::ImapConn;
use super::bench_pop3::Pop3Conn;
use super::bench_smtp::{SmtpConn, message};
use super::{StoreArgs, serve};
use crate::accounts;
use crate::client::Client;
use crate::store::StoreError;

#[derive(Clone, Copy, ValueEnum)]
pub enum Protocol {
    Native,
    /// SMTP to the inbound port (no AUTH): `--server` names the SMTP listener.
    Smtp,
    /// POP3 RETR of the users' messages (send some first): `--server` names the POP3 listener.
    Pop3,
    /// IMAP rounds on each user's INBOX (headers of the newest 20, one whole message, a flag, an APPEND
    /// and its expunge): `--server` names the IMAP listener; `--fill` puts mail there first.
    Imap,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "127.0.0.1:2005")]
    server: String,
    #[arg(long, value_enum, default_value = "native")]
    protocol: Protocol,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Messages in all.
    #[arg(long, default_value_t = 10_000)]
    messages: usize,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Users to send between (they must exist, or use --setup-users).
    #[arg(long, default_value_t = 16)]
    users: usize,
    #[arg(long, default_value = "bench")]
    user_prefix: String,
    #[arg(long, default_value = "bench-password")]
    password: String,
    /// The mail domain in SMTP addresses.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// Create the users first, in the store named by --data-dir / --config.
    #[arg(long)]
    setup_users: bool,
    /// Keep one connection per client (otherwise every message opens, logs in and closes one).
    #[arg(long)]
    reuse_connections: bool,
    /// Measure refresh instead of send: each client asks for changes since its mailbox's current state
    /// (nothing is new), `--messages` times in all, over reused connections. Native protocol only.
    #[arg(long)]
    refresh: bool,
    /// Native sends also keep a copy in the sender's Sent folder (`SEND ... KEEP`, as `jmail send` does).
    #[arg(long)]
    keep_sent: bool,
    /// Time the set operations on N messages straight on the store (--data-dir), without a server: one
    /// flag change, copy, move and expunge of all N each.
    #[arg(long, value_name = "N")]
    store_ops: Option<usize>,
    /// IMAP: hold this many sessions in IDLE (users in turn), then time how long each takes to hear of
    /// `--messages` APPENDs (one user at a time) instead of running rounds.
    #[arg(long, value_name = "N")]
    idle: Option<usize>,
    /// With --idle: APPEND through this server instead (another node on the same PostgreSQL database):
    /// the wake-ups then measure push across nodes.
    #[arg(long, value_name = "ADDR", requires = "idle")]
    append_via: Option<String>,
    /// IMAP: before the clock starts, APPEND until each user's INBOX holds this many messages.
    #[arg(long, default_value_t = 0)]
    fill: u32,
    /// SMTP: log in (AUTH PLAIN as each sending user) before sending, as submission wants.
    #[arg(long)]
    auth: bool,
    /// SMTP: the recipients' domain, when it is not --domain (mail to be relayed elsewhere; an address
    /// literal such as `[127.0.0.9]` names a host without DNS).
    #[arg(long)]
    to_domain: Option<String>,
    /// Relaying: start an SMTP sink on this address that takes every message, and time the run until it
    /// has received them all (the server under test relays to it).
    #[arg(long, value_name = "ADDR")]
    sink: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// What one client measured.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: usize,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.users == 0 {
        bail!("--clients and --users must be at least 1");
    }
    if args.refresh && !matches!(args.protocol, Protocol::Native) {
        bail!("--refresh measures the native protocol's LIST; it has no SMTP form");
    }
    super::init_quiet_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(count) = args.store_ops {
        let (config, _) = serve::resolve(&args.store, Vec::new())?;
        crate::datadir::prepare(&config.data_dir)?;
        return runtime.block_on(super::bench_store::run(&config, count, args.json));
    }
    runtime.block_on(async {
        if args.setup_users {
            setup_users(&args).await?;
        }
        if let Some(sessions) = args.idle {
            if !matches!(args.protocol, Protocol::Imap) {
                bail!("--idle measures IMAP IDLE: use --protocol imap");
            }
            let started = Instant::now();
            let (latencies, missed) = super::bench_imap::idle_wakeups(
                (
                    &args.server,
                    args.append_via.as_deref().unwrap_or(&args.server),
                ),
                &args.user_prefix,
                &args.password,
                args.users,
                sessions,
                args.messages,
                args.size,
            )
            .await?;
            let total = Tally {
                latencies,
                errors: missed,
            };
            report(&args, total, started.elapsed());
            return Ok(());
        }
        let sink = match &args.sink {
            Some(addr) => Some(super::bench_sink::start(addr).await?),
            None => None,
        };
        // With reused connections, every client connects and logs in before the clock starts, so the
        // figures measure sends, not argon2 logins.
        let ready = Arc::new(Barrier::new(args.clients + 1));
        let mut tasks = Vec::with_capacity(args.clients);
        for c in 0..args.clients {
            let share =
                args.messages / args.clients + usize::from(c < args.messages % args.clients);
            tasks.push(tokio::spawn(client(
                c,
                share,
                bench_params(&args),
                ready.clone(),
            )));
        }
        ready.wait().await;
        let started = Instant::now();
        let mut total = Tally::default();
        for t in tasks {
            let tally = t.await.context("bench client panicked")?;
            total.latencies.extend(tally.latencies);
            total.errors += tally.errors;
        }
        if let Some(sink) = sink {
            let want = total.latencies.len();
            let relayed = tokio::time::timeout(SINK_WAIT, async {
                loop {
                    let bell = sink.bell.notified();
                    if sink.received.load(std::sync::atomic::Ordering::Relaxed) >= want {
                        return;
                    }
                    bell.await;
                }
            })
            .await;
            if relayed.is_err() {
                bail!(
                    "the sink received {} of {want} messages within {} s",
                    sink.received.load(std::sync::atomic::Ordering::Relaxed),
                    SINK_WAIT.as_secs()
                );
            }
        }
        report(&args, total, started.elapsed());
        Ok(())
    })
}

/// Longest wait for relayed mail to reach the sink once every message was submitted.
const SINK_WAIT: Duration = Duration::from_secs(600);

#[derive(Clone)]
struct Params {
    server: String,
    users: usize,
    prefix: String,
    password: String,
    body: Vec<u8>,
    reuse: bool,
    refresh: bool,
    protocol: Protocol,
    domain: String,
    to_domain: String,
    auth: bool,
    keep_sent: bool,
    size: usize,
    fill: u32,
}

fn bench_params(args: &BenchArgs) -> Params {
    Params {
        server: args.server.clone(),
        users: args.users,
        prefix: args.user_prefix.clone(),
        password: args.password.clone(),
        body: vec![b'x'; args.size],
        reuse: args.reuse_connections || args.refresh,
        refresh: args.refresh,
        protocol: args.protocol,
        domain: args.domain.clone(),
        to_domain: args
            .to_domain
            .clone()
            .unwrap_or_else(|| args.domain.clone()),
        auth: args.auth,
        keep_sent: args.keep_sent,
        size: args.size,
        fill: args.fill,
    }
}

async fn setup_users(args: &BenchArgs) -> anyhow::Result<()> {
    let (config, _) = serve::resolve(&args.store, Vec::new())?;
    let store = crate::store::open::open(&config).await?;
    for u in 0..args.users {
        let name = format!("{}{u}", args.user_prefix);
        match accounts::add_user(store.as_ref(), &config, &name, &args.password).await {
            Ok(_) | Err(accounts::AccountError::Store(StoreError::UserExists(_))) => {}
            Err(e) => return Err(e.into()),
        }
    }
    store.close().await;
    Ok(())
}

/// One benchmark connection, logged in (native) or greeted (SMTP).
enum Conn {
    Native(Client),
    Smtp(SmtpConn),
    Pop3(Pop3Conn),
    Imap(ImapConn),
}

impl Conn {
    async fn open(p: &Params, me: &str) -> anyhow::Result<Conn> {
        Ok(match p.protocol {
            Protocol::Native => {
                let mut c = Client::connect(&p.server).await?;
                c.login(me, &p.password).await?;
                Conn::Native(c)
            }
            Protocol::Smtp => {
                let auth = p.auth.then_some((me, p.password.as_str()));
                Conn::Smtp(SmtpConn::connect(&p.server, auth).await?)
            }
            Protocol::Pop3 => Conn::Pop3(Pop3Conn::connect(&p.server, me, &p.password).await?),
            Protocol::Imap => {
                let mut c = ImapConn::connect(&p.server, me, &p.password).await?;
                c.fill(p.fill, p.size).await?;
                Conn::Imap(c)
            }
        })
    }

    async fn send(&mut self, p: &Params, me: &str, to: &str) -> anyhow::Result<()> {
        match self {
            Conn::Native(c) if p.keep_sent => c
                .send_and_keep(&[to.to_string()], "bench", &p.body)
                .await
                .map(drop)?,
            Conn::Native(c) => c
                .send(&[to.to_string()], "bench", &p.body)
                .await
                .map(drop)?,
            Conn::Smtp(c) => {
                let (from, to) = (
                    format!("{me}@{}", p.domain),
                    format!("{to}@{}", p.to_domain),
                );
                c.send(&from, &to, &message(&from, &to, p.body.len()))
                    .await?
            }
            Conn::Pop3(c) => drop(c.retrieve().await?),
            Conn::Imap(c) => c.round(p.size).await?,
        }
        Ok(())
    }

    async fn close(self) {
        match self {
            Conn::Native(c) => drop(c.logout().await),
            Conn::Smtp(c) => c.quit().await,
            Conn::Pop3(c) => c.quit().await,
            Conn::Imap(c) => c.logout().await,
        }
    }
}

async fn client(index: usize, messages: usize, p: Params, ready: Arc<Barrier>) -> Tally {
    let me = format!("{}{}", p.prefix, index % p.users);
    let to = format!("{}{}", p.prefix, (index + 1) % p.users);
    let mut tally = Tally {
        latencies: Vec::with_capacity(messages),
        errors: 0,
    };
    let mut conn = None;
    if p.reuse {
        conn = Conn::open(&p, &me).await.ok();
    } else if matches!(p.protocol, Protocol::Imap) && p.fill > 0 {
        // The mailbox is filled before the clock starts, not by the first timed round.
        if let Ok(c) = Conn::open(&p, &me).await {
            c.close().await;
        }
    }
    if p.refresh {
        return refresh(conn, messages, ready, tally).await;
    }
    ready.wait().await;
    for _ in 0..messages {
        let t0 = Instant::now();
        if conn.is_none() {
            match Conn::open(&p, &me).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    note_error(&mut tally, &e);
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        match c.send(&p, &me, &to).await {
            Ok(()) => tally.latencies.push(t0.elapsed()),
            Err(e) => {
                note_error(&mut tally, &e);
                conn = None;
                continue;
            }
        }
        if !p.reuse {
            conn.take().expect("connected above").close().await;
        }
    }
    tally
}

/// Counts a failed message; the first of each client is told on stderr (the figures stay on stdout).
fn note_error(tally: &mut Tally, e: &anyhow::Error) {
    if tally.errors == 0 {
        eprintln!("jmail bench: a message failed: {e:#}");
    }
    tally.errors += 1;
}

/// Times `LIST <modseq>` when nothing changed since `modseq`: what a client's refresh costs.
async fn refresh(conn: Option<Conn>, times: usize, ready: Arc<Barrier>, mut tally: Tally) -> Tally {
    let mut client = match conn {
        Some(Conn::Native(c)) => Some(c),
        _ => None,
    };
    let mut modseq = 0;
    if let Some(c) = client.as_mut() {
        match c.list(0).await {
            Ok(listing) => modseq = listing.modseq,
            Err(_) => client = None,
        }
    }
    ready.wait().await;
    let Some(mut c) = client else {
        tally.errors += times;
        return tally;
    };
    for _ in 0..times {
        let t0 = Instant::now();
        match c.list(modseq).await {
            Ok(listing) if listing.messages.is_empty() => tally.latencies.push(t0.elapsed()),
            _ => tally.errors += 1,
        }
    }
    tally
}

/// A benchmark connection: TCP to `server`, Nagle off (each command is written whole).
pub(super) async fn dial(server: &str) -> anyhow::Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(server)
        .await
        .with_context(|| format!("connecting to {server}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(args: &BenchArgs, mut total: Tally, elapsed: Duration) {
    total.latencies.sort_unstable();
    let sent = total.latencies.len();
    let rate = sent as f64 / elapsed.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let l = &total.latencies;
    let (p50, p99, p999) = (
        percentile(l, 50.0),
        percentile(l, 99.0),
        percentile(l, 99.9),
    );
    let max = l.last().copied().unwrap_or_default();
    let protocol = match (args.protocol, args.refresh) {
        (_, true) => "native-refresh",
        (Protocol::Imap, false) if args.idle.is_some() => "imap-idle-wakeup",
        (Protocol::Native, false) => "native",
        (Protocol::Smtp, false) if args.sink.is_some() => "smtp-relayed",
        (Protocol::Smtp, false) => "smtp",
        (Protocol::Pop3, false) => "pop3",
        (Protocol::Imap, false) => "imap",
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "protocol": protocol, "clients": args.clients, "size": args.size,
                "reuse_connections": args.reuse_connections, "messages": sent, "errors": total.errors,
                "seconds": elapsed.as_secs_f64(), "messages_per_sec": rate,
                "latency_ms": {"p50": ms(p50), "p99": ms(p99), "p99_9": ms(p999), "max": ms(max)},
            })
        );
    } else {
        println!(
            "{protocol}: {sent} messages of {} bytes, {} clients{}, in {:.2} s: {rate:.0} messages/s; \
             latency p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms; {} errors",
            args.size,
            args.clients,
            if args.reuse_connections {
                " (connections reused)"
            } else {
                " (one connection per message)"
            },
            elapsed.as_secs_f64(),
            ms(p50),
            ms(p99),
            ms(p999),
            ms(max),
            total.errors
        );
    }
}
