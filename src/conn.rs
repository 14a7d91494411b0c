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

/// What every connection task gets from the server.
#[derive(Clone)]
pub struct Shared {
    pub config: std::sync::Arc<crate::config::Config>,
    pub store: std::sync::Arc<dyn crate::store::MailStore>,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub tls: std::sync::Arc<Tls>,
    /// Messages being received from unauthenticated SMTP clients (`smtp_data_unauth_max`).
    pub smtp_data_slots: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Why a connection ended, for the log.
#[derive(Debug)]
pub enum End {
    Closed,
    PeerGone,
    Timeout,
    Shutdown,
    Io(std::io::Error),
}

/// A client connection, in clear or in TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
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
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
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

/// How long an unfinished command line has been arriving. A client that trickles a byte now and then keeps
/// the idle timer happy; this deadline still closes it (slowloris) once one line takes longer than
/// `line_secs_max`.
pub struct LineClock {
    since: Option<tokio::time::Instant>,
    max: Duration,
}

impl LineClock {
    pub fn new(line_secs_max: u64) -> LineClock {
        LineClock {
            since: None,
            max: Duration::from_secs(line_secs_max),
        }
    }

    /// Called before each wait for input: `pending` says an unfinished line is buffered.
    pub fn observe(&mut self, pending: bool) {
        match (pending, self.since) {
            (true, None) => self.since = Some(tokio::time::Instant::now()),
            (false, _) => self.since = None,
            (true, Some(_)) => {}
        }
    }

    /// The earlier of the idle deadline and this line's deadline.
    pub fn deadline(&self, idle: tokio::time::Instant) -> tokio::time::Instant {
        self.since.map_or(idle, |since| idle.min(since + self.max))
    }
}

/// Whether a password may be accepted on this connection: under TLS, from loopback, or when the operator
/// allowed plaintext authentication (as Dovecot's `disable_plaintext_auth = no`).
pub fn plaintext_auth_allowed(peer: std::net::IpAddr, tls: bool, allowed: bool) -> bool {
    tls || allowed || peer.is_loopback()
}
