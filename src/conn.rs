//! What every protocol's connection driver shares: the socket, plain or TLS (and the STARTTLS upgrade from
//! one to the other), writes with a deadline, and why a connection ended.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::tls::Tls;
use jmail_proto::Pending;

/// What every connection task gets from the server.
#[derive(Clone)]
pub struct Shared {
    pub config: std::sync::Arc<crate::config::Config>,
    pub store: std::sync::Arc<dyn crate::store::MailStore>,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub tls: std::sync::Arc<Tls>,
    /// Failed logins, counted across every listener.
    pub throttle: std::sync::Arc<crate::throttle::LoginThrottle>,
    /// Messages being received from unauthenticated SMTP clients (`smtp_data_unauth_max` in all,
    /// `smtp_data_unauth_per_ip_max` per address).
    pub smtp_data_slots: std::sync::Arc<crate::caps::Caps>,
    /// What unauthenticated SMTP clients had stored this hour, per address
    /// (`smtp_unauth_bytes_per_ip_hour_max`).
    pub smtp_unauth_volume: std::sync::Arc<crate::caps::HourlyVolume>,
    /// Bytes of message bodies arriving on every connection together (`input_bytes_max`).
    pub input: std::sync::Arc<crate::caps::InputBudget>,
    /// Connections compressed at once (IMAP COMPRESS, `compressed_sessions_max`).
    pub compressed: std::sync::Arc<tokio::sync::Semaphore>,
    /// Each account's JMAP API requests in flight (`maxConcurrentRequests`).
    pub jmap_requests: std::sync::Arc<crate::jmap::gate::RequestGate>,
    /// Each account's JMAP event sources open (`EVENT_SOURCES_PER_ACCOUNT_MAX`).
    pub jmap_event_sources: std::sync::Arc<crate::jmap::gate::RequestGate>,
    /// IMAP's sort keys, kept between SORTs (`sort_cache_bytes_max`).
    pub sort_cache: std::sync::Arc<crate::imap::SortCache>,
    /// The whole store, administration too: only the admin page uses it (sessions use `store`).
    pub admin: std::sync::Arc<dyn crate::store::Store>,
    /// DNS, DKIM keys, the sending limit: what mail beyond this server needs.
    pub mailer: std::sync::Arc<crate::outbound::Mailer>,
}

/// Why a connection ended, for the log.
#[derive(Debug)]
pub enum End {
    Closed,
    PeerGone,
    Timeout,
    Shutdown,
    /// The server's input budget was spent (`input_bytes_max`).
    Overloaded,
    Io(std::io::Error),
}

/// A client connection, in clear or in TLS, and perhaps compressed on top (IMAP's COMPRESS).
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Deflated(Box<crate::compress::Deflated>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(_) => true,
            Stream::Deflated(d) => d.is_tls(),
        }
    }

    /// The address the client reached this server at (not kept under compression).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Stream::Plain(tcp) => tcp.local_addr().ok(),
            Stream::Tls(tls) => tls.get_ref().0.local_addr().ok(),
            Stream::Deflated(_) => None,
        }
    }

    /// The same connection, deflated from now on both ways (COMPRESS=DEFLATE, after its OK).
    pub fn deflated(self) -> Stream {
        Stream::Deflated(Box::new(crate::compress::Deflated::new(self)))
    }

    /// The TLS handshake on a plain connection (implicit TLS, or after a STARTTLS reply), within the
    /// handshake deadline (`limits.tls_handshake_secs_max`).
    pub async fn start_tls(self, tls: &Tls) -> io::Result<Stream> {
        let Stream::Plain(tcp) = self else {
            return Err(io::Error::other("TLS is already active"));
        };
        let handshake = tls.acceptor().accept(tcp);
        match tokio::time::timeout(tls.handshake_timeout(), handshake).await {
            Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

impl Stream {
    /// STARTTLS/STLS after its reply: the client's bytes already read in clear are dropped, never obeyed
    /// under TLS (the command-injection attack, CVE-2011-0411), then the handshake.
    pub async fn upgrade(
        self,
        read_so_far: &mut bytes::BytesMut,
        tls: &Tls,
    ) -> Result<Stream, End> {
        read_so_far.clear();
        self.start_tls(tls).await.map_err(End::Io)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Deflated(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Deflated(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Deflated(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Deflated(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Writes all of `bytes` within `limit`, and flushes them (TLS holds written bytes until a flush).
pub async fn write<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), End> {
    if bytes.is_empty() {
        return Ok(());
    }
    let all = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(limit, all).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(End::Io(e)),
        Err(_) => Err(End::Timeout),
    }
}

/// Deadlines on input that has begun: a command line must arrive within `line_secs_max` of its first byte,
/// however slowly its bytes trickle in (slowloris), and bytes thrown away from an over-long line still
/// count as that line; a message body must keep an average of `data_bytes_per_sec_min` once its first
/// `line_secs_max` seconds are over, so a trickled body cannot hold a slot (or a DATA permit) for ever.
/// The idle deadline still applies on top.
pub struct InputClock {
    line_max: Duration,
    body_rate_min: u64,
    /// What has begun, and when.
    started: Option<(Pending, tokio::time::Instant)>,
    /// Bytes read since the body began.
    body_bytes: u64,
}

impl InputClock {
    pub fn new(limits: &crate::config::Limits) -> InputClock {
        InputClock {
            line_max: Duration::from_secs(limits.line_secs_max),
            body_rate_min: limits.data_bytes_per_sec_min.max(1),
            started: None,
            body_bytes: 0,
        }
    }

    /// Called before each wait for input with what the decoder is in the middle of.
    pub fn observe(&mut self, pending: Pending) {
        match (pending, self.started) {
            (Pending::Nothing, _) => self.started = None,
            (now, Some((was, _))) if now == was => {}
            (now, _) => {
                self.started = Some((now, tokio::time::Instant::now()));
                self.body_bytes = 0;
            }
        }
    }

    /// The slowest a body may arrive at, from now (bytes per second).
    pub fn body_rate_min(&mut self, bytes_per_sec: u64) {
        self.body_rate_min = bytes_per_sec.max(1);
    }

    /// Called after each read of `n` bytes.
    pub fn received(&mut self, n: usize) {
        self.body_bytes = self.body_bytes.saturating_add(n as u64);
    }

    /// The earlier of the idle deadline and the deadline of what has begun.
    pub fn deadline(&self, idle: tokio::time::Instant) -> tokio::time::Instant {
        match self.started {
            None | Some((Pending::Nothing, _)) => idle,
            Some((Pending::Line, since)) => idle.min(since + self.line_max),
            Some((Pending::Body, since)) => {
                let earned = Duration::from_secs(self.body_bytes / self.body_rate_min);
                idle.min(since + self.line_max + earned)
            }
        }
    }
}

/// Whether a password may be accepted on this connection: under TLS, from loopback, or when the operator
/// allowed plaintext authentication (as Dovecot's `disable_plaintext_auth = no`).
pub fn plaintext_auth_allowed(peer: std::net::IpAddr, tls: bool, allowed: bool) -> bool {
    tls || allowed || peer.is_loopback()
}
