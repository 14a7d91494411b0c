//! The runtime: listeners, accept loops, connection caps and graceful shutdown.

mod fd_limit;
mod native_port;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::caps::{Caps, Refusal};
use crate::config::Config;
use crate::conn::{Shared, Stream};
use crate::smtp;
use crate::store::{MailStore, Store};
use crate::throttle::LoginThrottle;
use crate::tls::{CertSource, Tls, TlsError};

/// What a listener speaks. Each protocol's connection handling lives in its own module; this enum is the
/// only place the runtime names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The native protocol v2, and Jmail v1.0 clients when `legacy_v1` is on.
    Native,
    /// SMTP for mail from anyone to local users.
    Smtp,
    /// SMTP submission for authenticated users.
    Submission,
    /// POP3 (RFC 1939), when `pop3_port` is set.
    Pop3,
    /// Submission over implicit TLS (RFC 8314).
    Submissions,
    /// POP3 over implicit TLS.
    Pop3s,
    /// The native protocol (and v1 clients, though they cannot speak TLS) over implicit TLS.
    NativeTls,
    /// IMAP (RFC 9051, RFC 3501), with STARTTLS.
    Imap,
    /// IMAP over implicit TLS.
    Imaps,
    /// HTTPS: health, metrics, client autoconfiguration.
    Https,
    /// Plain HTTP: loopback clients served, others sent to HTTPS.
    Http,
}

impl Service {
    /// How the listener is named in logs and start-up errors, with the setting that changes its port.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Service::Native => ("native", "--port or JMAIL_PORT"),
            Service::Smtp => ("SMTP", "--smtp-port, 0 turns it off"),
            Service::Submission => ("submission", "--submission-port, 0 turns it off"),
            Service::Pop3 => ("POP3", "--pop3-port, 0 turns it off"),
            Service::Submissions => ("submission over TLS", "--submissions-port, 0 turns it off"),
            Service::Pop3s => ("POP3 over TLS", "--pop3s-port, 0 turns it off"),
            Service::NativeTls => ("native over TLS", "--native-tls-port, 0 turns it off"),
            Service::Imap => ("IMAP", "--imap-port, 0 turns it off"),
            Service::Imaps => ("IMAP over TLS", "--imaps-port, 0 turns it off"),
            Service::Https => ("HTTPS", "--https-port, 0 turns it off"),
            Service::Http => ("HTTP", "--http-port, 0 turns it off"),
        }
    }

    /// What a client refused by a connection cap is told, in the protocol's own words.
    fn refusal(self, refusal: Refusal) -> &'static [u8] {
        match (self, refusal) {
            (Service::Native | Service::NativeTls, Refusal::ServerFull) => {
                b"BYE LIMIT server is at its connection limit; try again later\r\n"
            }
            (Service::Native | Service::NativeTls, Refusal::TooManyFromIp) => {
                b"BYE LIMIT too many connections from your address\r\n"
            }
            (Service::Smtp | Service::Submission | Service::Submissions, Refusal::ServerFull) => {
                b"421 4.7.0 Server is at its connection limit; try again later\r\n"
            }
            (
                Service::Smtp | Service::Submission | Service::Submissions,
                Refusal::TooManyFromIp,
            ) => b"421 4.7.0 Too many connections from your address\r\n",
            (Service::Pop3 | Service::Pop3s, Refusal::ServerFull) => {
                b"-ERR [SYS/TEMP] server is at its connection limit; try again later\r\n"
            }
            (Service::Pop3 | Service::Pop3s, Refusal::TooManyFromIp) => {
                b"-ERR [SYS/TEMP] too many connections from your address\r\n"
            }
            (Service::Imap | Service::Imaps, Refusal::ServerFull) => {
                b"* BYE [UNAVAILABLE] Server is at its connection limit; try again later\r\n"
            }
            (Service::Imap | Service::Imaps, Refusal::TooManyFromIp) => {
                b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
            }
            // Plain text on either: a TLS client sees a failed handshake, as with any refusal.
            (Service::Https | Service::Http, _) => {
                b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 5\r\n\r\n"
            }
        }
    }

    /// Where the listener's counters are in `metrics::PROTOCOLS`.
    fn metric_index(self) -> usize {
        match self {
            Service::Native => 0,
            Service::Smtp => 1,
            Service::Submission => 2,
            Service::Pop3 => 3,
            Service::Submissions => 4,
            Service::Pop3s => 5,
            Service::NativeTls => 6,
            Service::Imap => 7,
            Service::Imaps => 8,
            Service::Https => 9,
            Service::Http => 10,
        }
    }

    /// Whether the listener starts with a TLS handshake.
    fn implicit_tls(self) -> bool {
        matches!(
            self,
            Service::Submissions
                | Service::Pop3s
                | Service::NativeTls
                | Service::Imaps
                | Service::Https
        )
    }

    async fn serve(self, tcp: TcpStream, peer: SocketAddr, ctx: Shared) {
        let mut stream = Stream::Plain(tcp);
        if self.implicit_tls() {
            stream = match stream.start_tls(&ctx.tls).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
        }
        // Each protocol's future is boxed on its own: unboxed, this future would be as large as the
        // largest of them (HTTP's), and every idle connection of every protocol would carry that size.
        match self {
            Service::Native | Service::NativeTls => {
                Box::pin(native_port::serve(stream, peer, ctx)).await
            }
            Service::Smtp => Box::pin(smtp::serve(stream, peer, ctx, smtp::Mode::Inbound)).await,
            Service::Submission | Service::Submissions => {
                Box::pin(smtp::serve(stream, peer, ctx, smtp::Mode::Submission)).await
            }
            Service::Pop3 | Service::Pop3s => Box::pin(crate::pop3::serve(stream, peer, ctx)).await,
            Service::Imap | Service::Imaps => Box::pin(crate::imap::serve(stream, peer, ctx)).await,
            Service::Https => Box::pin(crate::web::serve(stream, peer, ctx, true)).await,
            Service::Http => Box::pin(crate::web::serve(stream, peer, ctx, false)).await,
        }
    }
}

/// A server that is accepting connections.
pub struct RunningServer {
    /// Where the native listener is bound (the real port when 0 was asked for).
    pub native_addr: SocketAddr,
    /// Every listener and where it is bound.
    pub listeners: Vec<(Service, SocketAddr)>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    store: Arc<dyn MailStore>,
    grace: Duration,
    tls: Arc<Tls>,
    mailer: Arc<crate::outbound::Mailer>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("TLS")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Mailer(#[from] crate::outbound::MailerError),
    #[error("cannot listen on {addr} ({what} port; change it with {flag}){hint}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        flag: &'static str,
        hint: &'static str,
        source: std::io::Error,
    },
}

/// Every listener to open and its port (0 = any free port, for tests). The native one is always there.
fn listeners(config: &Config) -> Vec<(Service, u16)> {
    let mut listeners = vec![(Service::Native, config.port)];
    listeners.extend(config.smtp_port.map(|p| (Service::Smtp, p)));
    listeners.extend(config.submission_port.map(|p| (Service::Submission, p)));
    listeners.extend(config.pop3_port.map(|p| (Service::Pop3, p)));
    listeners.extend(config.submissions_port.map(|p| (Service::Submissions, p)));
    listeners.extend(config.pop3s_port.map(|p| (Service::Pop3s, p)));
    listeners.extend(config.native_tls_port.map(|p| (Service::NativeTls, p)));
    listeners.extend(config.imap_port.map(|p| (Service::Imap, p)));
    listeners.extend(config.imaps_port.map(|p| (Service::Imaps, p)));
    listeners.extend(config.https_port.map(|p| (Service::Https, p)));
    listeners.extend(config.http_port.map(|p| (Service::Http, p)));
    listeners
}

/// Binds every listener and starts serving. Nothing is served unless every listener could be bound.
/// `throttle` is the failed-login bookkeeping every listener shares (tests hand in one on a manual clock).
pub async fn start(
    config: Config,
    backend: Arc<dyn Store>,
    throttle: Arc<LoginThrottle>,
) -> Result<RunningServer, StartError> {
    let store: Arc<dyn MailStore> = backend.clone();
    let mailer = Arc::new(crate::outbound::Mailer::new(&config)?);
    let connections_max = fd_limit::fit(config.limits.connections_max);
    let mut bound = Vec::new();
    for (service, port) in listeners(&config) {
        let addr = SocketAddr::new(config.bind, port);
        let (what, flag) = service.describe();
        let fail = |source: std::io::Error| StartError::Bind {
            addr,
            what,
            flag,
            hint: if source.kind() == std::io::ErrorKind::PermissionDenied && port < 1024 {
                "; ports below 1024 need root or CAP_NET_BIND_SERVICE"
            } else {
                ""
            },
            source,
        };
        let listener = listen(addr).map_err(fail)?;
        let local = listener.local_addr().map_err(fail)?;
        bound.push((service, listener, local));
    }
    // What the autoconfiguration documents name: the ports really bound (a test's 0 became one).
    let mut config = config;
    for (service, _, local) in &bound {
        let port = Some(local.port());
        match service {
            Service::Imap => config.imap_port = port,
            Service::Imaps => config.imaps_port = port,
            Service::Pop3 => config.pop3_port = port,
            Service::Pop3s => config.pop3s_port = port,
            Service::Submission => config.submission_port = port,
            Service::Submissions => config.submissions_port = port,
            Service::Smtp => config.smtp_port = port,
            Service::Https => config.https_port = port,
            Service::Http => config.http_port = port,
            Service::Native => config.port = local.port(),
            Service::NativeTls => config.native_tls_port = port,
        }
    }
    let mut names = config.domains.clone();
    // The host name is the one other servers check when they deliver here (the MX target).
    names.push(config.hostname().to_string());
    names.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
    names.dedup();
    let source = CertSource::new(
        config.tls_cert.clone(),
        config.tls_key.clone(),
        &config.data_dir,
    );
    let tls = Arc::new(Tls::load(
        source,
        names,
        config.limits.tls_handshake_secs_max,
    )?);
    tracing::info!(
        fingerprint = %tls.fingerprint(),
        cert = %tls.source().cert.display(),
        self_signed = tls.source().self_signed,
        "TLS certificate loaded (SHA-256)"
    );
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let grace = Duration::from_secs(config.limits.shutdown_grace_secs);
    let caps = Arc::new(Caps::new(
        connections_max,
        config.limits.connections_per_ip_max,
    ));
    let config = Arc::new(config);
    let ctx = Shared {
        config: config.clone(),
        store: store.clone(),
        shutdown: shutdown.clone(),
        tls: tls.clone(),
        throttle,
        smtp_data_slots: Arc::new(Caps::new(
            config.limits.smtp_data_unauth_max,
            config.limits.smtp_data_unauth_per_ip_max,
        )),
        smtp_unauth_volume: Arc::new(crate::caps::HourlyVolume::new(
            config.limits.smtp_unauth_bytes_per_ip_hour_max,
        )),
        input: Arc::new(crate::caps::InputBudget::new(
            config.limits.input_budget_bytes(),
        )),
        compressed: Arc::new(tokio::sync::Semaphore::new(
            config.limits.compressed_sessions_max,
        )),
        jmap_requests: Arc::default(),
        jmap_event_sources: Arc::default(),
        sort_cache: Arc::new(crate::imap::SortCache::new(
            usize::try_from(config.limits.sort_cache_bytes_max).unwrap_or(usize::MAX),
        )),
        mailer: mailer.clone(),
        admin: backend.clone(),
    };
    tracker.spawn(crate::outbound::worker::run(
        backend,
        config.clone(),
        mailer.clone(),
        shutdown.clone(),
        tracker.clone(),
    ));
    tracker.spawn(crate::tls::renew_while_running(
        tls.clone(),
        shutdown.clone(),
    ));
    let listeners: Vec<(Service, SocketAddr)> = bound.iter().map(|(s, _, a)| (*s, *a)).collect();
    for (service, listener, _) in bound {
        tracker.spawn(accept_loop(
            service,
            listener,
            ctx.clone(),
            caps.clone(),
            tracker.clone(),
        ));
    }
    let names: Vec<String> = listeners
        .iter()
        .map(|(s, a)| format!("{} on {a}", s.describe().0))
        .collect();
    tracing::info!(
        "jmail ready: {}; data dir {}; TLS certificate SHA-256 {}",
        names.join(", "),
        config.data_dir.display(),
        tls.fingerprint()
    );
    let native_addr = listeners
        .iter()
        .find(|(s, _)| *s == Service::Native)
        .map(|(_, a)| *a)
        .expect("the native listener is always configured");
    Ok(RunningServer {
        native_addr,
        listeners,
        shutdown,
        tracker,
        store,
        grace,
        tls,
        mailer,
    })
}

/// Connections the kernel completes and queues before the accept loop takes them (capped by the system's
/// `net.core.somaxconn`). The usual default, 128, overflows under a burst of clients, and an overflowed
/// handshake waits for the kernel's SYN-ACK retries: seconds of stall for the client.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

impl RunningServer {
    /// Stops accepting, tells connected clients, waits up to the grace period for in-flight commands, then
    /// closes the store (which commits everything already acknowledged... and nothing else is pending).
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.tracker.len(),
                "connections still busy after the grace period; closing anyway"
            );
        }
        self.store.close().await;
        tracing::info!("stopped");
    }

    /// Reads the TLS certificate again (SIGHUP); open connections keep the one they started with.
    pub fn reload_tls(&self) {
        match self.tls.reload() {
            Ok(fingerprint) => tracing::info!(%fingerprint, "TLS certificate reloaded (SHA-256)"),
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one")
            }
        }
    }

    /// SHA-256 fingerprint of the certificate in use.
    pub fn tls_fingerprint(&self) -> String {
        self.tls.fingerprint()
    }

    /// A token that is cancelled when shutdown begins.
    /// Makes the DKIM keys of `domains` now, in the background, so the first message does not wait.
    pub fn prepare_dkim_keys(&self, domains: Vec<String>) {
        let mailer = self.mailer.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = mailer.dkim.prepare(&domains) {
                tracing::error!(error = %e, "cannot make the DKIM keys; outbound mail will wait");
            }
        });
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

async fn accept_loop(
    service: Service,
    listener: TcpListener,
    ctx: Shared,
    caps: Arc<Caps>,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // An address no account has logged in from lately is held to fewer connections: without
        // it, 40 addresses holding silent connections filled every slot of every listener.
        let per_ip_max = match ctx.throttle.proven(peer.ip()) {
            true => ctx.config.limits.connections_per_ip_max,
            false => ctx.config.limits.connections_per_new_ip_max,
        };
        let admission = match caps.admit_within(peer.ip(), per_ip_max) {
            Ok(a) => a,
            Err(refusal) => {
                tracker.spawn(refuse(stream, service.refusal(refusal)));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        let open = crate::metrics::METRICS.connection(service.metric_index());
        tracker.spawn(async move {
            service.serve(stream, peer, ctx).await;
            drop(admission);
            drop(open);
        });
    }
}

/// Tells a refused client why, briefly, and closes.
async fn refuse(mut stream: TcpStream, reply: &'static [u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(reply)).await;
}
